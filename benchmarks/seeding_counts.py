"""Benchmark of the filter seeding's gapped k-mer counts of one fitting sample (`training.seeding.count_kmers`).

At full CMV size a training fold seeds from ~400 fitting repertoires, a sample of `seed_sample` (100,000) sequences
each: 13+ minutes of its time went to counting k-mers and grouping them. The reference way (as the code did before)
reads k-mers from a matrix of residue codes padded to the sample's longest sequence, so a few 40-residue CDR3s make
every sequence cost 40 columns; the default reads them from the flat residue codes. Synthetic samples stand in:
`--sequences` CDR3s, lengths drawn around 15 with a tail to 40 (as QC keeps them). Prints the median seconds of each
way over `--samples` samples and whether the hashes agree (they must, in the same order).

    python benchmarks/seeding_counts.py [--sequences 100000] [--samples 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from deeprc_hopfield.store import Repertoire
from deeprc_hopfield.training.seeding import BASE, kmer_hashes, kmer_patterns

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import provenance, write_result  # noqa: E402


def padded_kmer_hashes(repertoire: Repertoire, patterns: list[tuple[int, ...]]) -> np.ndarray:
    """The reference: each pattern's hashes over an (n, longest) matrix of codes, kept where every residue is inside."""
    k, span = len(patterns[0]), max(p[-1] for p in patterns) + 1
    lengths = repertoire.lengths.astype(np.int64)
    width = int(lengths.max())
    codes = np.zeros((len(lengths), width + span), dtype=np.int64)
    valid = np.arange(width)[None, :] < lengths[:, None]
    codes[:, :width][valid] = repertoire.codes
    hashes = []
    for index, pattern in enumerate(patterns):
        h = np.zeros((len(lengths), width), dtype=np.int64)
        inside = np.ones_like(h, dtype=bool)
        for offset in pattern:
            residue = codes[:, offset:offset + width]
            h = h * BASE + residue
            inside &= residue > 0
        hashes.append(h[inside] + index * BASE ** k)
    return np.concatenate(hashes)


def sample(n: int, seed: int) -> Repertoire:
    """`n` random CDR3s of 6-40 residues, most 12-18."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.normal(15, 2.5, n)), 6, 40).astype(np.uint8)
    lengths[rng.random(n) < 0.002] = 40  # the tail that sets a padded matrix's width
    codes = rng.integers(1, 21, int(lengths.sum()), dtype=np.uint8)
    missing = np.full(n, -1, np.int16)
    return Repertoire(f"s{seed}", codes, lengths, np.full(n, np.nan), missing, missing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=100_000, help="sequences a sample (seed_sample)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    patterns = kmer_patterns(4, 6)  # the defaults seed_kmer, seed_span
    times: dict[str, list[float]] = {"padded": [], "flat": []}
    same = True
    for seed in range(args.samples):
        rep = sample(args.sequences, seed)
        results = {}
        for way, count in (("padded", padded_kmer_hashes), ("flat", kmer_hashes)):
            start = time.perf_counter()
            hashes = count(rep, patterns)
            np.bincount(hashes, minlength=len(patterns) * BASE ** 4)  # count_kmers' own count, both ways
            times[way].append(time.perf_counter() - start)
            results[way] = hashes
        same &= np.array_equal(results["padded"], results["flat"])
    medians = {way: round(statistics.median(t), 3) for way, t in times.items()}
    print(f"{args.samples} samples of {args.sequences:,} sequences: padded {medians['padded']} s, flat "
          f"{medians['flat']} s a sample ({medians['padded'] / medians['flat']:.2f}x); the same hashes: {same}",
          flush=True)
    if not same:
        raise SystemExit("the two ways hashed differently")
    write_result(args.json, {**provenance("1 thread"), "sequences": args.sequences, "samples": args.samples,
                             "median_seconds": medians, "seconds": times})


if __name__ == "__main__":
    main()
