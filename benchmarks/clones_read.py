"""Benchmark of a job reading its part's one-substitution clones from the clones file (`deeprc-hopfield clones`).

A training fold (and the baselines) reads, for each one-substitution rule, the clones of every repertoire that
its rows hold, for its rows. The reference reads the rule's matrices whole and keeps those rows and columns
(`read_clones(...).held_by(rows).rows(rows)`, as the code did before); `read_held_clones` reads a block of
carriers at a time and keeps only the rows' own. Each way, each rule, runs in a fresh process: its wall time and
peak RSS (`ru_maxrss`, above what the process held before reading), and a sha256 of what it read, which must agree.

    python benchmarks/clones_read.py --clones CLONES.h5 [--part fold0.training] [--rules family.1] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from deeprc_hopfield.clone_rules import CloneRule
from deeprc_hopfield.shared_clones import read_clones, read_held_clones

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import provenance, write_result  # noqa: E402

WAYS = ("whole", "streamed")


def read_once(clones: Path, part: str, rule_name: str, way: str) -> dict:
    """Read one rule's clones of `part` one `way`; its seconds, peak RSS growth, carriers and sha256."""
    level, radius = rule_name.split(".")
    rule = CloneRule(level, int(radius))
    with h5py.File(clones, "r") as h5:
        rows, group = h5["parts"][part]["rows"][()], h5["every"][rule_name]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        if way == "whole":
            read = read_clones(group, rule, int(h5["every"].attrs["repertoires"])).held_by(rows).rows(rows)
        else:
            read = read_held_clones(group, rule, rows, with_held=True)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    digest = hashlib.sha256(read.keys.tobytes())
    for matrix in (read.incidence, read.held):
        matrix.sort_indices()
        for array in (matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32)):
            digest.update(array.tobytes())
    return {"rule": rule_name, "way": way, "seconds": round(seconds, 2), "peak_growth_mb": round((peak - before) / 1024),
            "clones": len(read.keys), "carriers": int(read.incidence.nnz), "sha256": digest.hexdigest()[:16]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clones", type=Path, required=True, help="a clones file (`deeprc-hopfield clones`)")
    parser.add_argument("--part", default="fold0.training", help="the part whose rows are read (default: %(default)s)")
    parser.add_argument("--rules", help="comma-separated one-substitution rules to read, e.g. family.1 (default: all)")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--one", nargs=2, metavar=("RULE", "WAY"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(read_once(args.clones, args.part, *args.one)))
        return
    with h5py.File(args.clones, "r") as h5:
        rules = sorted(h5["every"]) if args.rules is None else args.rules.split(",")
        print(f"{args.clones}: part {args.part}, {len(h5['parts'][args.part]['rows'])} of "
              f"{h5['every'].attrs['repertoires']} repertoires; rules {', '.join(rules)}", flush=True)
    results = []
    for rule in rules:
        for way in WAYS:
            child = subprocess.run([sys.executable, __file__, "--clones", str(args.clones), "--part", args.part,
                                    "--one", rule, way], capture_output=True, text=True, check=True)
            results.append(json.loads(child.stdout))
            print("  ".join(f"{k} {v}" for k, v in results[-1].items()), flush=True)
        same = results[-1]["sha256"] == results[-2]["sha256"]
        print(f"{rule}: the same clones and carriers both ways: {same}; peak growth "
              f"{results[-2]['peak_growth_mb']} -> {results[-1]['peak_growth_mb']} MB", flush=True)
        if not same:
            raise SystemExit(f"{rule}: the two ways read different clones")
    write_result(args.json, {**provenance("1 thread"), "clones": str(args.clones), "part": args.part,
                             "results": results})


if __name__ == "__main__":
    main()
