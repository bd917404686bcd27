"""Benchmark: seconds and peak memory of the clone rules' collection alone (`clone_rules.cohort_clones`).

Collects the clones of every repertoire of a store under all six clone rules, keeping those carried by
`--min-carriers` repertoires or more (as `baselines` does with `public_clones.min_carriers`), in this
process, and prints its seconds, its peak resident memory (VmHWM), the columns of each rule and a sha256
of every rule's keys and incidence, so that two versions of the package can be compared on the same
store (`--package-root DIR` imports DIR/deeprc_hopfield instead of the installed one):

    python benchmarks/clone_collection.py --store results/cohort_scale/cohort.h5 --min-carriers 7
    python benchmarks/clone_collection.py --store ... --min-carriers 7 --package-root /tmp/before

Run each in a fresh process (VmHWM is the process's whole-life peak).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--min-carriers", type=int, default=2)
    p.add_argument("--package-root", type=Path, help="folder holding the deeprc_hopfield package to measure")
    args = p.parse_args()
    sys.path.insert(0, str(args.package_root or Path(__file__).resolve().parent.parent))
    from deeprc_hopfield.clone_rules import clone_rules, cohort_clones
    from deeprc_hopfield.store import RepertoireStore

    with RepertoireStore(args.store) as store:
        lazily = _Lazily(store)
        start = time.perf_counter()
        found = cohort_clones(lazily, store.v_genes, clone_rules(), min_carriers=args.min_carriers)
        seconds = time.perf_counter() - start
    digest = hashlib.sha256()
    for clones in found:
        incidence = clones.incidence.tocsr()
        for part in (clones.keys, incidence.indptr, incidence.indices):
            digest.update(np.asarray(part, dtype=np.int64).tobytes())
    peak_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    print(f"{args.package_root or 'installed package'}: {seconds:.0f} s, VmHWM {peak_kb / 1024:.0f} MB, "
          f"columns {[c.incidence.shape[1] for c in found]}, sha256 {digest.hexdigest()[:16]}")


class _Lazily:
    """The repertoires of an open store, read when indexed."""

    def __init__(self, store) -> None:  # noqa: ANN001 (a RepertoireStore)
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int):  # noqa: ANN204
        return self.store.repertoire(i)


if __name__ == "__main__":
    main()
