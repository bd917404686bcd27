"""Benchmark of stacking a one-substitution rule's carrier blocks into its incidence (`clone_rules._stacked_transposed`).

A one-substitution rule counts its candidates' carriers in blocks (CSR, kept clones x repertoires) and stacks them,
each clone at its place in key order, into the rule's incidence (CSR, repertoires x clones, sorted indices). At full
size (786 repertoires) that stacking was 166 s of the clones job's main thread (session 28's py-spy recording). The
ways: `vstack` (scipy: `vstack(blocks)[order].T.tocsr()`, the simple reference); `argsort` (the code before session
29: each block's values sorted by repertoire into place (`neighbours.bool_csr`), then every row's indices sorted);
`placed` (now: each block's rows copied to their places, then scipy's linear transpose). Synthetic blocks stand in:
`--clones` clones of `--carriers` carriers on average (Poisson) among `--repertoires`, in blocks of
`clone_rules.CARRIED_BLOCK`, placed in a random order. Each way runs in a fresh process: the median seconds of
`--repeats` stackings, each of blocks made afresh and handed over (as in the job, a way may let go of each block
once it is placed; no earlier result held), the peak resident memory above the first blocks (VmHWM, reset before),
a sha256 of the result.

    python benchmarks/stacked_transposed.py [--clones 4000000] [--carriers 10] [--repeats 3] [--json OUT]
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

from deeprc_hopfield import clone_rules, neighbours
from deeprc_hopfield.neighbours import bool_csr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_clone_fit import memory_kb  # noqa: E402
from run_record import csr_sha256, each_way_in_a_child, provenance, same_every_way, write_result  # noqa: E402

WAYS = ("vstack", "argsort", "placed")


def carrier_blocks(clones: int, carriers: float, repertoires: int, seed: int = 0
                   ) -> tuple[list[sparse.csr_matrix], list[np.ndarray]]:
    """Blocks of bool CSR (clones, repertoires), each clone's carriers distinct and sorted, and each block's places."""
    rng = np.random.default_rng(seed)
    blocks = []
    for start in range(0, clones, clone_rules.CARRIED_BLOCK):
        n = min(clone_rules.CARRIED_BLOCK, clones - start)
        counts = np.minimum(rng.poisson(carriers, n) + 2, repertoires)
        columns = rng.integers(0, repertoires, int(counts.sum()), dtype=np.int32)
        rows = np.repeat(np.arange(n), counts)
        block = sparse.csr_matrix((np.ones(len(rows), dtype=bool), (rows, columns)), shape=(n, repertoires))
        block.sum_duplicates()
        blocks.append(block)
    order = rng.permutation(clones)
    return blocks, np.split(order, np.cumsum([b.shape[0] for b in blocks])[:-1])


def vstack_way(blocks: list[sparse.csr_matrix], n_columns: int, places: list[np.ndarray]) -> sparse.csr_matrix:
    """scipy's: stack, reorder the rows, transpose."""
    inverse = np.empty(sum(len(p) for p in places), dtype=np.int64)
    inverse[np.concatenate(places)] = np.arange(len(inverse))
    return sparse.vstack(blocks, format="csr")[inverse].T.tocsr()


def argsort_way(blocks: list[sparse.csr_matrix], n_columns: int, places: list[np.ndarray]) -> sparse.csr_matrix:
    """The code before session 29: each block's values sorted by repertoire into place, then each row sorted."""
    neighbours.ROWS_PER_COUNTED_VALUE = 0  # `bool_csr` sorts every part, as it did then (this is a child process)
    counts = np.zeros(n_columns, dtype=np.int64)
    for block in blocks:
        counts += np.bincount(block.indices, minlength=n_columns)
    rows = sum(block.shape[0] for block in blocks)

    def parts():  # noqa: ANN202
        blocks.reverse()
        places.reverse()
        while blocks:
            block, place = blocks.pop(), places.pop()
            yield block.indices, np.repeat(place.astype(np.int32), np.diff(block.indptr))

    stacked = bool_csr(parts(), counts, rows)
    stacked.sort_indices()
    return stacked


def stack_once(args: argparse.Namespace, way: str) -> dict:
    """The stacking, one way, in this process: its median seconds, peak growth and sha256."""
    stack = {"vstack": vstack_way, "argsort": argsort_way, "placed": clone_rules._stacked_transposed}[way]
    blocks, places = carrier_blocks(args.clones, args.carriers, args.repertoires)
    nnz = sum(block.nnz for block in blocks)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    held = memory_kb("VmRSS")
    times = []
    for repeat in range(args.repeats):
        if repeat:
            blocks, places = carrier_blocks(args.clones, args.carriers, args.repertoires)
        start = time.perf_counter()
        result = stack(blocks, args.repertoires, places)
        times.append(time.perf_counter() - start)
        del blocks, places
        digest = csr_sha256(result)
        del result
    return {"way": way, "clones": args.clones, "carriers": nnz, "seconds": round(statistics.median(times), 2),
            "peak_above_blocks_mb": round((memory_kb("VmHWM") - held) / 1024), "sha256": digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clones", type=int, default=4_000_000)
    parser.add_argument("--carriers", type=float, default=10.0, help="mean carriers a clone (beyond 2)")
    parser.add_argument("--repertoires", type=int, default=786)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.way:
        print(json.dumps(stack_once(args, args.way)))
        return
    options = ["--clones", str(args.clones), "--carriers", str(args.carriers), "--repertoires",
               str(args.repertoires), "--repeats", str(args.repeats)]
    results = each_way_in_a_child(__file__, options, WAYS)
    same_every_way(results, [r["sha256"] for r in results], "incidence", "peak_above_blocks_mb", "blocks")
    write_result(args.json, {**provenance("1 thread"), "results": results})


if __name__ == "__main__":
    main()
