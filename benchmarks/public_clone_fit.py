"""Benchmark of the memory of one public-clone test fit (`public_clones.PublicCloneTest.fit`) on a large incidence.

At 786 repertoires x 200,000 a one-substitution rule's incidence holds ~400-800 M carriers, which a training fold
and the baselines fit the test on. Its Fisher counts are counted in place, a block of carriers at a time
(`public_clones.column_counts`): the whole's once, and each of the 30 inner folds' as the whole's less its test
rows' (a tenth of the carriers). The reference ways, as the code did before: `scipy_sums` copies each inner fold's
training rows and sums columns with scipy (an int64 copy of every carrier); `in_place_counts` counts each inner
fold's training rows (nine tenths of the carriers) in place. A synthetic incidence
stands in: `--repertoires` rows (45% positive), `--carriers` million carriers spread uniformly over `--clones`
columns, the first 10% of columns three times likelier in positives. Each way runs in a fresh process: the peak
resident memory of the fit above the incidence already held (VmHWM, reset before the fit), its seconds, and what it
found (threshold, inner AUC, associated clones), which must agree.

    python benchmarks/public_clone_fit.py [--repertoires 786] [--clones 1000000] [--carriers 100] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse

from deeprc_hopfield import public_clones
from deeprc_hopfield.public_clones import PublicCloneTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import each_way_in_a_child, provenance, same_every_way, write_result  # noqa: E402

WAYS = ("scipy_sums", "in_place_counts", "held_out_subtracted")


def incidence(n: int, clones: int, carriers: int, seed: int = 0) -> tuple[sparse.csr_matrix, np.ndarray]:
    """A bool CSR (n, clones) of about `carriers` carriers, and the labels."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.45).astype(np.int64)
    per_row, leaning = carriers // n, clones // 10
    rows = []
    for label in y:
        columns = np.unique(rng.integers(0, clones, per_row))
        keep = (columns >= leaning) | (rng.random(len(columns)) < (1.0 if label else 1 / 3))
        rows.append(columns[keep].astype(np.int32))
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    indices = np.concatenate(rows)
    del rows
    return sparse.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(n, clones)), y


def scipy_associated(totals: tuple, clones: sparse.csr_matrix, y: np.ndarray, inner_test: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """A reference: the inner fold's training rows' incidence copied, its columns summed by scipy."""
    train = np.setdiff1d(np.arange(len(y)), inner_test)
    part, y = clones[train], y[train]
    positive = np.asarray(part[y == 1].sum(axis=0)).ravel().astype(np.int64)
    carriers = np.asarray(part.sum(axis=0)).ravel().astype(np.int64)
    return public_clones._associated(positive, carriers, y)


def in_place_associated(totals: tuple, clones: sparse.csr_matrix, y: np.ndarray, inner_test: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """A reference: the inner fold's training rows counted in place."""
    train = np.setdiff1d(np.arange(len(y)), inner_test)
    return public_clones._associated(*public_clones.carrier_counts(clones, y[train], train), y[train])


def memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def fit_once(args: argparse.Namespace, way: str) -> dict:
    """One fit, one way, in this process: its seconds, peak growth and findings."""
    x, y = incidence(args.repertoires, args.clones, args.carriers * 1_000_000)
    if way != "held_out_subtracted":
        public_clones.inner_train_associated = scipy_associated if way == "scipy_sums" else in_place_associated
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    held = memory_kb("VmRSS")
    start = time.perf_counter()
    test = PublicCloneTest(random_state=0).fit(x, y)
    seconds = time.perf_counter() - start
    return {"way": way, "carriers": int(x.nnz), "incidence_mb": round((x.indices.nbytes + x.data.nbytes) / 2**20),
            "seconds": round(seconds, 1), "peak_above_held_mb": round((memory_kb("VmHWM") - held) / 1024),
            "threshold": test.threshold_, "inner_auc": round(float(test.inner_auc), 6),
            "associated": int(len(test.associated_)), "associated_sum": int(test.associated_.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repertoires", type=int, default=786)
    parser.add_argument("--clones", type=int, default=1_000_000)
    parser.add_argument("--carriers", type=int, default=100, help="millions of carriers (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.way:
        print(json.dumps(fit_once(args, args.way)))
        return
    results = each_way_in_a_child(__file__, ["--repertoires", str(args.repertoires), "--clones", str(args.clones),
                                              "--carriers", str(args.carriers)], WAYS)
    found = [{k: r[k] for k in ("threshold", "inner_auc", "associated", "associated_sum")} for r in results]
    same_every_way(results, found, "fit", "peak_above_held_mb", "incidence")
    write_result(args.json, {**provenance("1 thread"), "repertoires": args.repertoires, "clones": args.clones,
                             "results": results})


if __name__ == "__main__":
    main()
