"""Benchmark of `public_clones.FitCandidates`: which clones one fit of the public-clone test can use.

The clones file (`deeprc-hopfield clones`) asks, for every block of one-substitution clones, whether some fit
of some part (each fold's fitting and training rows; 31 fits each) finds the clone's Fisher p below the
loosest threshold. A synthetic block stands in for one of the cohort's: `--clones` clones over `--repertoires`
repertoires, carried by a geometric number of them (mean `--carriers`), 30% drawn from the positives only.
Times (median of `--repeats`) of `FitCandidates.union` (every fit's carriers and positive carriers by one
exact int8 product per 8,192 clones) against the simple way, as the code did before: per part, its columns sliced
out, the clones with enough positive carriers in it, and each fit's counts of those by a sparse product with the
fits' row indicators, then the table lookup.
Both must keep the same clones. One torch thread by default, as the simple way runs on one.

    python benchmarks/fit_candidates.py [--repertoires 786] [--clones 65536] [--carriers 30] [--repeats 3]
    python benchmarks/fit_candidates.py --carriers 150 --clones 32768   # radius-1 clones at full size
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import sparse

from deeprc_hopfield.public_clones import P_THRESHOLDS, FitCandidates, fit_rows, min_carriers, positive_rows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import median_seconds  # noqa: E402


def cohort(n: int, folds: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels and the parts of a `folds`-fold cross-validation: each fold's fitting (80%) and training rows."""
    y = (rng.random(n) < 0.45).astype(int)
    fold = rng.integers(0, folds, n)
    parts = []
    for k in range(folds):
        training = np.flatnonzero(fold != k)
        parts += [np.sort(rng.choice(training, int(len(training) * 0.8), replace=False)), training]
    return y, parts


def carried_block(n: int, clones: int, carriers: float, y: np.ndarray, rng: np.random.Generator) -> sparse.csr_matrix:
    """Bool CSR (clones, repertoires): who carries each clone."""
    per = np.minimum(rng.geometric(1 / carriers, clones), n)
    positives = np.flatnonzero(y == 1)
    leaning = (rng.random(clones) < 0.3) & (per <= len(positives))
    columns = [rng.choice(positives if lean else n, k, replace=False) for lean, k in zip(leaning, per)]
    rows = np.repeat(np.arange(clones), per)
    return sparse.csr_matrix((np.ones(len(rows), dtype=bool), (rows, np.concatenate(columns))), shape=(clones, n))


class PerPartProducts:
    """The simple way, as the code did before: per part, its columns of the block, the clones with its
    `min_carriers` positive carriers, then each fit's carriers and positive carriers of those by a sparse product
    with the fits' row indicators, looked up in each fit's table of the most positive carriers."""

    def __init__(self, y: np.ndarray, parts: list[np.ndarray], seed: int = 0) -> None:
        self.parts = []
        for rows in parts:
            fits = fit_rows(y[rows], seed)
            indicator = np.zeros((len(rows), len(fits)), dtype=np.float32)
            most = np.full((len(rows) + 1, len(fits)), len(rows) + 1, dtype=np.int64)
            for f, train in enumerate(fits):
                indicator[train, f] = 1
                most[:len(train) + 1, f] = FitCandidates._most_positive(y[rows][train], max(P_THRESHOLDS) * (1 + 1e-9))
            positive = positive_rows(y[rows])
            self.parts.append((rows, min_carriers(y[rows], seed), positive, indicator, indicator * positive[:, None],
                               most))

    def __call__(self, carried: sparse.csr_matrix) -> np.ndarray:
        keep = np.zeros(carried.shape[0], dtype=bool)
        by_column = carried.tocsc()
        for rows, fewest, positive, indicator, positive_indicator, most in self.parts:
            own = by_column[:, rows].tocsr()
            wanted = np.flatnonzero(np.asarray(own[:, positive].sum(axis=1)).ravel() >= fewest)
            own = own[wanted].astype(np.float32)
            carriers = np.rint(own @ indicator).astype(np.int64)
            positives = np.rint(own @ positive_indicator).astype(np.int64)
            keep[wanted] |= (positives > np.take_along_axis(most, carriers, axis=0)).any(axis=1)
        return keep


def main() -> None:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repertoires", type=int, default=786)
    p.add_argument("--clones", type=int, default=65536)
    p.add_argument("--carriers", type=float, default=30.0, help="mean carriers per clone")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the simple way uses one)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    y, parts = cohort(args.repertoires, args.folds, rng)
    carried = carried_block(args.repertoires, args.clones, args.carriers, y, rng)
    union = FitCandidates.union([(rows, FitCandidates(y[rows], 0)) for rows in parts], args.repertoires)
    simple = PerPartProducts(y, parts)
    fits = union.membership.shape[1]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"{args.repertoires} repertoires, {len(parts)} parts, {fits} distinct fits; block of {args.clones:,} clones "
          f"carried {carried.nnz:,} times (mean {carried.nnz / args.clones:.1f})")
    union(carried[:64])  # torch's first product builds its kernels
    simple_s, expected = median_seconds(lambda: simple(carried), args.repeats)
    union_s, kept = median_seconds(lambda: union(carried), args.repeats)
    print(f"per-part sparse products: {simple_s:.3f} s ({args.clones / simple_s:,.0f} clones/s)")
    print(f"FitCandidates.union:      {union_s:.3f} s ({args.clones / union_s:,.0f} clones/s)")
    print(f"ratio {simple_s / union_s:.1f}x; kept {int(kept.sum()):,} clones; the same: {np.array_equal(kept, expected)}")
    if not np.array_equal(kept, expected):
        raise SystemExit("the two ways keep different clones")


if __name__ == "__main__":
    main()
