"""Benchmark of reading candidate clones' sequences over the clone rules (`clone_rules.clone_sequences`).

A training fold's rule choice asks the pgen filter for each rule's candidate clones, and for each rule
`clone_sequences` reads and keys the repertoires that carry them: at full CMV size ~500 fitting repertoires of
~200,000 sequences, six rules, and keying costs ~3x reading. The reference way keys every repertoire again for
each rule (as the code did before); the default keys each once through one `KeyedRows` shared by the rules.
Synthetic repertoires stand in: `--repertoires` x `--sequences` random CDR3s with random V genes, and `--public`
public CDR3s each planted in 2-10 random repertoires under a V gene of one family. Every rule's columns are asked
for (as a rule's pgen request is, up to 20,000 candidates). Prints the median seconds over `--runs` runs of all
rules, each way, and whether both found the same (junction, V) for every key (they must).

    python benchmarks/clone_sequences.py [--repertoires 100] [--sequences 50000] [--public 3000] [--runs 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from deeprc_hopfield.clone_rules import KeyedRows, clone_rules, clone_sequences, cohort_clones
from deeprc_hopfield.store import Repertoire

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import provenance, write_result  # noqa: E402

V_GENES = ["TRBV5-1", "TRBV5-4", "TRBV6-1", "TRBV6-5", "TRBV7-2", "TRBV7-9", "TRBV20-1", "TRBV27", "TRBV28"]


def random_cdr3s(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, lengths) of `n` random CDR3s of 10-20 residues that start with C and end with F."""
    lengths = rng.integers(10, 21, n).astype(np.uint8)
    codes = rng.integers(1, 21, int(lengths.sum()), dtype=np.uint8)
    ends = np.cumsum(lengths.astype(np.int64))
    codes[ends - lengths] = 2  # C (encoding.AMINO_ACIDS, from code 1: A=1, C=2, F=5)
    codes[ends - 1] = 5  # F
    return codes, lengths


def cohort(n: int, size: int, public: int, seed: int) -> list[Repertoire]:
    """`n` repertoires of `size` random CDR3s each, `public` shared ones planted 2-10 times."""
    rng = np.random.default_rng(seed)
    shared_codes, shared_lengths = random_cdr3s(rng, public)
    shared_starts = np.cumsum(shared_lengths.astype(np.int64)) - shared_lengths
    shared_v = rng.integers(0, len(V_GENES), public)
    holders: list[list[int]] = [[] for _ in range(n)]
    for clone in range(public):
        for row in rng.choice(n, int(rng.integers(2, 11)), replace=False):
            holders[row].append(clone)
    reps = []
    for row in range(n):
        codes, lengths = random_cdr3s(rng, size - len(holders[row]))
        v = rng.integers(0, len(V_GENES), len(lengths)).astype(np.int16)
        planted = np.array(holders[row], dtype=np.int64)
        parts = [shared_codes[s:s + int(l)] for s, l in zip(shared_starts[planted], shared_lengths[planted])]
        codes = np.concatenate([codes, *parts]) if parts else codes
        lengths = np.concatenate([lengths, shared_lengths[planted]])
        v = np.concatenate([v, shared_v[planted].astype(np.int16)])
        missing = np.full(len(lengths), -1, np.int16)
        reps.append(Repertoire(f"r{row}", codes, lengths, np.full(len(lengths), np.nan), v, missing))
    return reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repertoires", type=int, default=100)
    parser.add_argument("--sequences", type=int, default=50_000, help="sequences a repertoire")
    parser.add_argument("--public", type=int, default=3_000, help="public CDR3s planted")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    reps = cohort(args.repertoires, args.sequences, args.public, seed=0)
    rules = clone_rules()
    all_clones = cohort_clones(reps, V_GENES, rules)
    columns = {str(c.rule): int(c.incidence.shape[1]) for c in all_clones}
    print(f"{args.repertoires} repertoires x {args.sequences:,} sequences; candidate columns per rule: {columns}",
          flush=True)
    times: dict[str, list[float]] = {"each rule keys again": [], "keyed once": []}
    found: dict[str, list] = {}
    for _ in range(args.runs):
        for way in times:
            rows = (lambda row: reps[row]) if way == "each rule keys again" else KeyedRows(lambda row: reps[row])
            start = time.perf_counter()
            found[way] = [clone_sequences(rows, c.incidence[:, :20_000], c.keys[:20_000], V_GENES, c.rule.v_level)
                          for c in all_clones]
            times[way].append(time.perf_counter() - start)
    same = found["each rule keys again"] == found["keyed once"]
    medians = {way: round(statistics.median(t), 3) for way, t in times.items()}
    ratio = medians["each rule keys again"] / medians["keyed once"]
    print(f"{len(rules)} rules, median of {args.runs} runs: each rule keys again {medians['each rule keys again']} s, "
          f"keyed once {medians['keyed once']} s ({ratio:.2f}x); the same clones found: {same}", flush=True)
    if not same:
        raise SystemExit("the two ways found different clones")
    write_result(args.json, {**provenance("1 thread"), "repertoires": args.repertoires, "sequences": args.sequences,
                             "public": args.public, "columns": columns, "median_seconds": medians, "seconds": times})


if __name__ == "__main__":
    main()
