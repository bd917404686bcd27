"""Benchmark of making one join group's neighbour matrix from its pairs (`neighbours.bool_csr`, then
`sum_duplicates`), as `neighbours.CoreNeighbours.group` does for each group of the clones job's one-substitution join.

At full size (786 repertoires) the groups' matrices were ~91 s of the clones job's main thread, most of it a stable
argsort of each part's rows (session 28's py-spy recording). The ways: `coo` (scipy: `coo_matrix((ones, (rows,
columns))).tocsr()`, which sums duplicates itself; the simple reference, holding every pair at once); `sorted` (the
code before session 30: each part of `neighbours.PAIRS_PLACED` pairs sorted by row into place); `counted` (now: a
part large beside the group's rows placed by a counting sort, scipy's CSC-to-CSR conversion). Synthetic pairs stand
in: a group of `--rows` cores with `--pairs` neighbours each on average (Poisson; the full-size join had ~13-26)
among `--columns` cores. Each way runs in a fresh process: the median seconds of `--repeats` makings, the peak
resident memory above the pairs (VmHWM, reset before), a sha256 of the matrix.

    python benchmarks/bool_csr.py [--rows 2097152] [--pairs 13] [--repeats 3] [--json OUT]

`--crossover` instead times one part placed each way (`bool_csr` with `ROWS_PER_COUNTED_VALUE` 0 and a large one)
for parts of 1/32 to 2 values per row of a `--rows` matrix (median of `--repeats`), where the two ways cross.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse

from deeprc_hopfield import neighbours

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_clone_fit import memory_kb  # noqa: E402
from run_record import (csr_sha256, each_way_in_a_child, median_seconds, provenance,  # noqa: E402
                        same_every_way, write_result)

WAYS = ("coo", "sorted", "counted")


def group_pairs(rows: int, pairs: float, columns: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (row, column), int32 each, in a random order as the join finds them, a few found twice."""
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(rows, dtype=np.int32), rng.poisson(pairs, rows))
    b = rng.integers(0, columns, len(a), dtype=np.int32)
    twice = rng.random(len(a)) < 0.01
    a, b = np.concatenate([a, a[twice]]), np.concatenate([b, b[twice]])
    order = rng.permutation(len(a))
    return a[order], b[order]


def coo_way(a: np.ndarray, b: np.ndarray, rows: int, columns: int) -> sparse.csr_matrix:
    """scipy's: every pair at once, duplicates summed by the conversion."""
    return sparse.coo_matrix((np.ones(len(a), dtype=bool), (a, b)), shape=(rows, columns)).tocsr()


def placed_way(a: np.ndarray, b: np.ndarray, rows: int, columns: int) -> sparse.csr_matrix:
    """As `CoreNeighbours.group`: parts of `PAIRS_PLACED` pairs placed by `bool_csr`, then duplicates summed."""
    counts = np.bincount(a, minlength=rows)
    step = neighbours.PAIRS_PLACED
    matrix = neighbours.bool_csr(((a[s:s + step], b[s:s + step]) for s in range(0, len(a), step)), counts, columns)
    matrix.sum_duplicates()
    return matrix


def make_once(args: argparse.Namespace, way: str) -> dict:
    """The group's matrix, one way, in this process: its median seconds, peak growth and sha256."""
    if way == "sorted":
        neighbours.ROWS_PER_COUNTED_VALUE = 0  # every part sorted, as before the counting placement
    make = coo_way if way == "coo" else placed_way
    a, b = group_pairs(args.rows, args.pairs, args.columns)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    held = memory_kb("VmRSS")
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        matrix = make(a, b, args.rows, args.columns)
        times.append(time.perf_counter() - start)
        digest = csr_sha256(matrix)
        del matrix
    return {"way": way, "rows": args.rows, "pairs": len(a), "seconds": round(statistics.median(times), 2),
            "peak_above_pairs_mb": round((memory_kb("VmHWM") - held) / 1024), "sha256": digest}


def crossover(rows: int, repeats: int) -> None:
    """Seconds to place one part by sorting and by counting, for parts of several sizes beside `rows` rows."""
    rng = np.random.default_rng(0)
    for per_row in (1 / 32, 1 / 16, 1 / 8, 1 / 4, 2):
        row = rng.integers(0, rows, int(rows * per_row)).astype(np.int32)
        column = rng.integers(0, 1 << 20, len(row)).astype(np.int32)
        counts = np.bincount(row, minlength=rows)
        seconds = {}
        for way, limit in (("sorted", 0), ("counted", 1 << 62)):
            neighbours.ROWS_PER_COUNTED_VALUE = limit
            seconds[way] = median_seconds(lambda: neighbours.bool_csr(iter([(row, column)]), counts, 1 << 20),
                                          repeats)[0]
        print(f"{len(row):>10,} values, {rows:,} rows ({per_row:g} a row): sorted {seconds['sorted']:.3f} s, "
              f"counted {seconds['counted']:.3f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=neighbours.CORES_PER_GROUP, help="cores of the group")
    parser.add_argument("--pairs", type=float, default=13.0, help="mean neighbours a core")
    parser.add_argument("--columns", type=int, default=30_000_000, help="cores of the cohort")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--crossover", action="store_true", help="time one part each way at several sizes")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.crossover:
        crossover(args.rows, args.repeats)
        return
    if args.way:
        print(json.dumps(make_once(args, args.way)))
        return
    options = ["--rows", str(args.rows), "--pairs", str(args.pairs), "--columns", str(args.columns),
               "--repeats", str(args.repeats)]
    results = each_way_in_a_child(__file__, options, WAYS)
    same_every_way(results, [r["sha256"] for r in results], "matrix", "peak_above_pairs_mb", "pairs")
    write_result(args.json, {**provenance("1 thread"), "results": results})


if __name__ == "__main__":
    main()
