"""Benchmark of the one-substitution join of a cohort's distinct CDR3 cores (`neighbours.core_neighbours`) in threads.

At full CMV size the `clones` job joins ~100 M distinct cores in ~80 parts, 13-18 minutes in one thread, the longest
stretch of the job that used one core only. The reference way pairs the parts one at a time (`workers=1`, as the code
did before); the others pair `--workers` parts at once. Synthetic cores stand in: `--cores` distinct cores of 8-14
residues drawn with skewed residue frequencies, a fifth of them one substitution from another, a third of them wanted
(as the centres are). Each way runs in a fresh process: its seconds, the peak resident memory of the join above the
cores already held (VmHWM, reset before it) and a sha256 of the pairs found, which must agree.

    python benchmarks/join_threads.py [--cores 6000000] [--keys-per-part 8388608] [--workers 1 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from deeprc_hopfield import neighbours

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_clone_fit import memory_kb  # noqa: E402
from run_record import each_way_in_a_child, provenance, write_result  # noqa: E402


def distinct_cores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residue codes (uint8, flat), lengths (uint8) of ~`n` distinct junctions (cores of 8-14 residues within 3-residue
    anchors), a fifth of them one substitution from another, and the wanted rows (int64, a third)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(20, 0.7))
    lengths = rng.integers(8, 15, n) + 2 * neighbours.ANCHOR
    codes = rng.choice(np.arange(1, 21, dtype=np.uint8), size=int(lengths.sum()), p=weights)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    twins = rng.choice(n, n // 5, replace=False)  # each copies its predecessor of equal length, one residue changed
    for length in np.unique(lengths):
        same = np.flatnonzero(lengths == length)
        mine = np.intersect1d(twins, same[1:])
        source = same[np.searchsorted(same, mine) - 1]
        codes[starts[mine, None] + np.arange(length)] = codes[starts[source, None] + np.arange(length)]
        at = starts[mine] + neighbours.ANCHOR + rng.integers(0, length - 2 * neighbours.ANCHOR, len(mine))
        codes[at] = rng.integers(1, 21, len(mine), dtype=np.uint8)
    first_of_its_kind = np.zeros(n, dtype=bool)  # one of each distinct junction (a copy may equal its source)
    for length in np.unique(lengths):
        same = np.flatnonzero(lengths == length)
        mix = rng.integers(1, 1 << 62, length, dtype=np.int64).astype(np.uint64)  # a random linear hash
        hashed = (codes[starts[same, None] + np.arange(length)].astype(np.uint64) * mix).sum(axis=1, dtype=np.uint64)
        _, first = np.unique(hashed, return_index=True)
        first_of_its_kind[same[first]] = True
    keep = np.flatnonzero(first_of_its_kind)
    kept_codes = codes[np.repeat(first_of_its_kind, lengths)]
    wanted = np.sort(rng.choice(len(keep), len(keep) // 3, replace=False))
    return kept_codes, lengths[keep].astype(np.uint8), wanted


def join_once(args: argparse.Namespace, workers: int) -> dict:
    """The join with `workers` threads, in this process: seconds, peak growth, pairs and their sha256."""
    codes, lengths, wanted = distinct_cores(args.cores)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    held = memory_kb("VmRSS")
    start = time.perf_counter()
    found = neighbours.core_neighbours(codes, lengths, wanted, keys_per_part=args.keys_per_part, workers=workers)
    matrix = found.matrix()
    seconds = time.perf_counter() - start
    digest = hashlib.sha256(matrix.indptr.tobytes() + matrix.indices.tobytes()).hexdigest()[:16]
    return {"workers": workers, "cores": len(lengths), "wanted": len(wanted), "pairs": int(matrix.nnz),
            "seconds": round(seconds, 1), "peak_above_held_mb": round((memory_kb("VmHWM") - held) / 1024),
            "sha256": digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=6_000_000, help="distinct cores to draw")
    parser.add_argument("--keys-per-part", type=int, default=1 << 23,
                        help="wildcard keys a part (the code's KEYS_PER_PART is 2^25; fewer make more parts here)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="the ways: threads, the first the reference")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--way", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.way:
        print(json.dumps(join_once(args, int(args.way))))
        return
    options = ["--cores", str(args.cores), "--keys-per-part", str(args.keys_per_part)]
    results = each_way_in_a_child(__file__, options, [str(w) for w in args.workers])
    same = len({r["sha256"] for r in results}) == 1
    print(f"the same pairs every way: {same}; seconds " + " / ".join(f"{r['seconds']}" for r in results)
          + f" ({results[0]['seconds'] / results[-1]['seconds']:.2f}x), peak above the cores "
          + " / ".join(f"{r['peak_above_held_mb']}" for r in results) + " MB", flush=True)
    if not same:
        raise SystemExit("the ways found different pairs")
    write_result(args.json, {**provenance("threads as given"), "options": options, "results": results})


if __name__ == "__main__":
    main()
