"""Benchmark: a fold's scoring in one pass (issue 14, item 3) against the three passes it replaced.

Given a store, a split and a fold's model (e.g. kept by `size_drift.py --keep DIR`), it runs the
commands the workflow runs on the fold's held-out repertoires, as subprocesses, `--repeats` times
each way, alternating:

- three passes (the workflow before): `predict`, `attend --top K`, `interpret`;
- one pass (now): `predict --attended --top K --attention`, then `interpret --attention`.

It prints the median seconds of each command, each way's sum of them and their ratio, and checks that both ways write the same predictions, attended sequences and ranking.

    python benchmarks/scoring_pass.py --work /tmp/sd40 --fold 0 --threads 2 --repeats 2 \\
        --json benchmarks/results/scoring_pass.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import provenance, write_result  # noqa: E402


def run(args: list) -> float:
    """Seconds of one `deeprc-hopfield` command."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deeprc_hopfield", "-q", *map(str, args)], check=True)
    return time.perf_counter() - start


def three_passes(common: list, out: Path, top: int, threads: int) -> dict[str, float]:
    return {"predict": run(["predict", *common, "--out", out / "p.csv", "--threads", threads]),
            "attend": run(["attend", *common, "--top", top, "--out", out / "a.tsv", "--threads", threads]),
            "interpret": run(["interpret", *common, "--out", out / "i", "--threads", threads])}


def one_pass(common: list, out: Path, top: int, threads: int) -> dict[str, float]:
    return {"predict+attend+attention": run(["predict", *common, "--out", out / "p.csv", "--attended", out / "a.tsv",
                                             "--top", top, "--attention", out / "att.h5", "--threads", threads]),
            "interpret --attention": run(["interpret", *common, "--attention", out / "att.h5", "--out", out / "i",
                                          "--threads", threads])}


def same_outputs(a: Path, b: Path) -> bool:
    """Both ways wrote the same predictions, attended sequences and ranking (floats to 1e-5)."""
    pairs = [("p.csv", ","), ("a.tsv", "\t"), ("i/ranked_sequences.tsv", "\t")]
    for name, sep in pairs:
        x, y = pd.read_csv(a / name, sep=sep), pd.read_csv(b / name, sep=sep)
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            return False
        numeric = x.select_dtypes("number").columns
        if not np.allclose(x[numeric].to_numpy(float), y[numeric].to_numpy(float), atol=1e-5, equal_nan=True):
            return False
        if not x.drop(columns=numeric).equals(y.drop(columns=numeric)):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True, help="folder with store.h5, split.csv and model_fold<K>/")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    common = ["--model", args.work / f"model_fold{args.fold}", "--store", args.work / "store.h5",
              "--split", args.work / "split.csv", "--fold", args.fold]
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for way, fn in (("three", three_passes), ("one", one_pass)):
                out = Path(tmp) / f"{way}{repeat}"
                out.mkdir()
                results = fn(common, out, args.top, args.threads)
                for command, seconds in results.items():
                    times.setdefault(command, []).append(seconds)
                times.setdefault(f"{way} pass(es), total", []).append(sum(results.values()))
        identical = same_outputs(Path(tmp) / "three0", Path(tmp) / "one0")
    medians = {k: float(np.median(v)) for k, v in times.items()}
    # each way as the sum of its commands' medians: one slow outlier (a shared machine) moves one command only
    sums = {way: sum(medians[c] for c in commands) for way, commands in
            (("three", ("predict", "attend", "interpret")), ("one", ("predict+attend+attention", "interpret --attention")))}
    result = {"median_seconds": medians, "seconds": times, "sum_of_medians": sums,
              "ratio_three_over_one": sums["three"] / sums["one"],
              "identical_outputs": identical, "argv": sys.argv,
              **provenance(f"{args.threads} threads")}
    print(json.dumps({k: result[k] for k in ("median_seconds", "sum_of_medians", "ratio_three_over_one",
                                                 "identical_outputs")},
                     indent=2))
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
