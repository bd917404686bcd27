"""Benchmark: seconds to train one fold at the package's defaults, this checkout against an earlier commit.

Both run in the same session on the same cohort and split (`accuracy.py`'s), alternating, each in
its own process with one torch thread: the earlier commit from `git archive` of `--baseline` into a
temporary folder, the current code from this checkout. Prints each run's seconds and the ratio of
the medians (the issue's goal: at most 1.5).

    python benchmarks/train_speed.py --baseline 67a301b --repertoires 200 --sequences 5000 \\
        --public-clones 20 --public-rate 0.3 --repeats 2 --keep /tmp/speed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

from accuracy import simulated_cohort

HERE = Path(__file__).resolve().parent
TRAIN = """
import sys, time, torch
torch.set_num_threads(1)
from deeprc_hopfield.training import train
started = time.perf_counter()
train(sys.argv[1], sys.argv[2], split=sys.argv[3], fold=0, device="cpu", progress=False, force=True)
print(time.perf_counter() - started)
"""


def checkout(rev: str, into: Path) -> Path:
    """The package of commit `rev`, unpacked under `into`."""
    archive = subprocess.run(["git", "archive", rev, "deeprc_hopfield"], cwd=HERE.parent, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def train_seconds(code: Path, store: Path, model: Path, split: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run([sys.executable, "-c", TRAIN, str(store), str(model), str(split)], env=env,
                         capture_output=True, text=True, check=True, cwd=code)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default="67a301b", help="the earlier commit")
    p.add_argument("--repertoires", type=int, default=200)
    p.add_argument("--sequences", type=int, default=5000)
    p.add_argument("--witness-rate", type=float, default=0.0001)
    p.add_argument("--motif", default="GR.DT", help="GR.DT at 0.01%%: in 0.23%% of OLGA backgrounds, so no signal")
    p.add_argument("--public-clones", type=int, default=20)
    p.add_argument("--public-rate", type=float, default=0.3)
    p.add_argument("--public-v-noise", type=float, default=0.0)
    p.add_argument("--public-variants", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="simulate/ingest workers")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--keep", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="train_speed.") as tmp, \
            simulated_cohort(args, "train_speed.") as (work, _, store, _, _):
        codes = {"baseline": checkout(args.baseline, Path(tmp) / "baseline"), "current": HERE.parent}
        seconds: dict[str, list[float]] = {name: [] for name in codes}
        for repeat in range(args.repeats):
            for name, code in codes.items():
                seconds[name].append(train_seconds(code, store, work / f"model_{name}", work / "split.csv"))
                print(f"repeat {repeat}: {name} {seconds[name][-1]:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        medians = {name: float(np.median(s)) for name, s in seconds.items()}
        ratio = medians["current"] / medians["baseline"]
        print(f"median seconds per fold: baseline {args.baseline} {medians['baseline']:.1f}, current "
              f"{medians['current']:.1f}; ratio {ratio:.2f} (goal <= 1.5)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "seconds": seconds,
                                         "medians": medians, "ratio": ratio, "date": time.strftime("%Y-%m-%d"),
                                         "cpus": os.cpu_count()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
