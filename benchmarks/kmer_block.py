"""Benchmark of the baselines' 3-mer count of one large repertoire (`baselines.kmer_frequencies`).

The largest repertoire of a CMV-sized cohort holds ~2.8 M sequences (~42 M residues), and the k-mer count works at
~60 bytes a residue. The reference ways: `whole` counts the whole repertoire at once (as the code did before
session 25); `per_residue` computes every residue's place in its core and keeps those where a k-mer starts (as the
code did before session 27), in blocks; the default (`blocks`) reads only the positions where a k-mer starts, in
blocks of `baselines.KMER_BLOCK` residues (whole sequences). A synthetic repertoire stands in: `--sequences`
CDR3s of 8-20 random residues. Each way runs in a fresh process: the peak resident memory of the count above the
repertoire already held (VmHWM, reset before it), the median seconds of `--repeats` counts, and a sha256 of the
frequencies, which must agree.

    python benchmarks/kmer_block.py [--sequences 2800000] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from deeprc_hopfield import baselines
from deeprc_hopfield.cdr3 import core_bounds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_clone_fit import memory_kb  # noqa: E402
from run_record import each_way_in_a_child, median_seconds, provenance, same_every_way, write_result  # noqa: E402

WAYS = ("whole", "per_residue", "blocks")


def per_residue_counts(codes: np.ndarray, lengths: np.ndarray, k: int, trim: int) -> np.ndarray:
    """The reference count of one block: each residue's position in its core, kept where a k-mer starts."""
    residues = np.asarray(codes, dtype=np.int64) - 1
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    first, core = (np.repeat(a, lengths) for a in core_bounds(lengths, trim))
    position = np.arange(len(residues)) - starts - first
    valid = (position >= 0) & (position <= core - k)
    index = np.zeros(len(residues) - k + 1 if len(residues) >= k else 0, dtype=np.int64)
    for offset in range(k):
        index = index * 20 + residues[offset:len(residues) - k + 1 + offset]
    return np.bincount(index[valid[:len(index)]], minlength=20 ** k)


def repertoire(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Residue codes (uint8, 1..20) and lengths of `n` random CDR3s of 8-20 residues."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 21, n)
    return rng.integers(1, 21, int(lengths.sum()), dtype=np.uint8), lengths


def count_once(args: argparse.Namespace, way: str) -> dict:
    """The count, one way, in this process: its median seconds, peak growth and sha256."""
    codes, lengths = repertoire(args.sequences)
    block = len(codes) + 1 if way == "whole" else baselines.KMER_BLOCK
    if way != "blocks":
        baselines._kmer_counts = per_residue_counts
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    held = memory_kb("VmRSS")
    seconds, frequencies = median_seconds(lambda: baselines.kmer_frequencies(codes, lengths, block=block),
                                          args.repeats)
    return {"way": way, "sequences": args.sequences, "residues": int(len(codes)), "seconds": round(seconds, 2),
            "peak_above_held_mb": round((memory_kb("VmHWM") - held) / 1024),
            "sha256": hashlib.sha256(frequencies.tobytes()).hexdigest()[:16]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=2_800_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.way:
        print(json.dumps(count_once(args, args.way)))
        return
    results = each_way_in_a_child(__file__, ["--sequences", str(args.sequences), "--repeats", str(args.repeats)], WAYS)
    same_every_way(results, [r["sha256"] for r in results], "frequencies", "peak_above_held_mb", "repertoire")
    write_result(args.json, {**provenance("1 thread"), "results": results})


if __name__ == "__main__":
    main()
