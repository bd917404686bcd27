"""Benchmark: OLGA's pgen in worker processes against one process (`PgenModel.pgen(..., workers=N)`).

The clone-rule choice asks OLGA's pgen of thousands of candidate clones on large cohorts (5,000-13,000
per rule at 196 repertoires x 50,000), one sequence at a time in pure Python; a job now computes them
in as many processes as its threads. This draws `--n` fresh junctions with V calls from OLGA's own
model of `--chain`, then times, on fresh models (nothing cached), one process (the reference) and
each of `--workers`, `--repeats` times in turn, and prints sequences/s, the median ratio to one
process, and whether every value is identical.

    python benchmarks/pgen_workers.py [--chain TRB] [--n 1000] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from deeprc_hopfield.pgen import PgenModel  # noqa: E402
from deeprc_hopfield.simulate.background import background_model  # noqa: E402


def timed(junctions: list[str], v_calls: list[str], chain: str, workers: int) -> tuple[float, np.ndarray]:
    """Seconds and values of one pgen call on a fresh model."""
    model = PgenModel(chain)
    start = time.perf_counter()
    values = model.pgen(junctions, v_calls, workers=workers)
    return time.perf_counter() - start, values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chain", default="TRB")
    p.add_argument("--n", type=int, default=1000, help="fresh junctions")
    p.add_argument("--workers", type=int, nargs="+", default=[2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    drawn = background_model(args.chain).generate(args.n, np.random.default_rng(args.seed))
    junctions, v_calls = list(drawn.junction_aa), list(drawn.v_call)
    print(f"{args.n} {args.chain} junctions with V calls; cores: {os.cpu_count()}; load {os.getloadavg()}")
    seconds: dict[int, list[float]] = {w: [] for w in [1, *args.workers]}
    reference, same = None, True
    for _ in range(args.repeats):
        for workers in seconds:
            took, values = timed(junctions, v_calls, args.chain, workers)
            seconds[workers].append(took)
            reference = values if reference is None else reference
            same &= bool(np.array_equal(values, reference))
    one = statistics.median(seconds[1])
    for workers, runs in seconds.items():
        median = statistics.median(runs)
        print(f"workers {workers}: median {median:.1f} s ({args.n / median:.0f} sequences/s), "
              f"{one / median:.2f}x one process; runs {', '.join(f'{s:.1f}' for s in runs)} s")
    print(f"values identical across runs and workers: {same}")


if __name__ == "__main__":
    main()
