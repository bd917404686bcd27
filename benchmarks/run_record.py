"""What a benchmark's raw JSON records besides its figures: the commit and machine, and the file itself."""

from __future__ import annotations

import hashlib
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np


def provenance(threads: str) -> dict[str, str]:
    """The short commit of the working tree's HEAD and the machine, with `threads` (e.g. "2 threads")."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {"commit": commit, "machine": f"{platform.node()} {platform.machine()}, {threads}"}


def csr_sha256(matrix) -> str:  # noqa: ANN001 (a scipy CSR matrix)
    """The first 16 hex digits of the sha256 of a CSR matrix's row pointers and indices (whatever their int types)."""
    data = matrix.indptr.astype(np.int64).tobytes() + matrix.indices.astype(np.int32).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def write_result(path: Path | None, result: dict) -> None:
    """Write `result` as indented JSON to `path` (folders made), when a path is given."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")


def median_seconds(function, repeats: int) -> tuple[float, object]:
    """The median wall seconds of `repeats` calls of `function`, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def each_way_in_a_child(script: str, options: list[str], ways: Sequence[str]) -> list[dict]:
    """Run `script` once per way, each in a fresh process (`options` and ``--way W``), which prints one JSON line:
    those results, each also printed as one line here."""
    results = []
    for way in ways:
        child = subprocess.run([sys.executable, script, *options, "--way", way], capture_output=True, text=True,
                               check=True)
        results.append(json.loads(child.stdout))
        print("  ".join(f"{k} {v}" for k, v in results[-1].items()), flush=True)
    return results


def same_every_way(results: list[dict], found: Sequence[object], what: str, peak: str, above: str) -> None:
    """Print each way's seconds and peak (`peak`: its key, `above`: what it is above) and whether every way `found`
    the same `what`; stop the benchmark where they differ."""
    same = all(f == found[0] for f in found)
    print(f"the same {what} every way: {same}; " + "; ".join(
        f"{r['way']} {r['seconds']} s, peak above the {above} {r[peak]} MB" for r in results), flush=True)
    if not same:
        raise SystemExit(f"the ways gave different {what}")
