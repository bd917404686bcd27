"""Benchmark: seconds and peak memory of the clone rules' collection alone (`clone_rules.cohort_clones`).

Collects the clones of every repertoire of a store under all six clone rules, keeping those carried by
`--min-carriers` repertoires or more (as `baselines` does with `public_clones.min_carriers`), in this
process, and prints its seconds, its peak resident memory (VmHWM), the columns of each rule and a sha256
of every rule's keys and incidence, so that two versions of the package can be compared on the same
store (`--package-root DIR` imports DIR/deeprc_hopfield instead of this working tree's):

    python benchmarks/clone_collection.py --store results/cohort_scale/cohort.h5 --min-carriers 7
    python benchmarks/clone_collection.py --store ... --min-carriers 7 --package-root /tmp/before

Each rule's clones are hashed (and fitted) as they come, then let go of, as training does (with a package that has
`clone_rules.each_cohort_clones`; older ones make every rule's at once); the seconds leave that work out, the
VmHWM includes the fits where `--fit` is given.

`--fit-candidates` leaves out the radius-1 clones whose Fisher p passes the loosest threshold in none of the
fits that `--fit` makes (`public_clones.FitCandidates`, as training does for its own fits): the collection's
sha256 changes, what `--fit` finds must not.

`--split FILE` takes the collection of the `baselines` job instead, which fits the test once per outer fold of
that split: `--min-carriers auto` is the smallest figure of the folds' training rows and `--fit-candidates` keeps
the clones one fit of one fold can use (`FitCandidates(within=...)`); `--fit` still fits on every row.

`--positives` counts only the store label's positive repertoires towards `--min-carriers`, as `train` and
`baselines` now do (`cohort_clones(positives=...)`); `--fit` then fits the public-clone test (no pgen) on
every rule's clones and prints a sha256 of what it found (the associated clones' keys, the chosen threshold,
the inner AUCs), which must not change with `--positives`. `--min-carriers auto` takes the baselines'
figure (`public_clones.min_carriers` of the store's labels, seed 0).

`--steps` logs the start and end (seconds) of each step of the collection (the `clone_rules` functions named in
`STEPS`) and the collection's debug lines, so that a peak in the `--rss-every` lines can be put to a step.

Run each in a fresh process (VmHWM is the process's whole-life peak).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--min-carriers", default="2", help="a number, or 'auto'")
    p.add_argument("--positives", action="store_true", help="count the positive repertoires' carriers only")
    p.add_argument("--fit", action="store_true", help="fit the public-clone test on each rule's clones")
    p.add_argument("--fit-candidates", action="store_true",
                   help="leave out the radius-1 clones that no fit (seed 0) can use, as training does")
    p.add_argument("--pgen-requests", action="store_true",
                   help="with --fit: print how many candidate clones each fit would ask OLGA's pgen for, per p threshold")
    p.add_argument("--workers", type=int, default=1,
                   help="threads reading and keying each pass's repertoires ahead (clone_rules.each_cohort_clones)")
    p.add_argument("--split", type=Path, help="the baselines' outer folds (see above)")
    p.add_argument("--package-root", type=Path, help="folder holding the deeprc_hopfield package to measure")
    p.add_argument("--steps", action="store_true", help="log each step's start and end, and the debug lines")
    p.add_argument("--rss-every", type=float, default=0.0, metavar="S",
                   help="log this process's resident memory every S seconds, beside the collection's progress lines")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sys.path.insert(0, str(args.package_root or Path(__file__).resolve().parent.parent))
    from deeprc_hopfield import clone_rules
    from deeprc_hopfield.public_clones import PublicCloneTest, min_carriers, positive_rows
    from deeprc_hopfield.split import choose_label
    from deeprc_hopfield.store import RepertoireStore

    if args.steps:
        _log_steps()
    each_rule = getattr(clone_rules, "each_cohort_clones", clone_rules.cohort_clones)  # older: all rules at once
    with RepertoireStore(args.store) as store:
        y = np.asarray(choose_label(store, None).values) if args.positives or args.fit or args.fit_candidates \
            or args.min_carriers == "auto" else None
        parts = _training_rows(args.split, store.subject_ids) if args.split else None
        fewest = (int(args.min_carriers) if args.min_carriers != "auto" else
                  min(min_carriers(y[rows], seed=0) for rows in parts) if parts else min_carriers(y, seed=0))
        options = {"positives": positive_rows(y)} if args.positives else {}
        if args.fit_candidates:
            from deeprc_hopfield.public_clones import FitCandidates
            options["candidates"] = FitCandidates(y, 0, within=parts) if parts else FitCandidates(y, 0)
        lazily = _Lazily(store)
        if args.rss_every > 0:
            threading.Thread(target=_log_rss, args=(args.rss_every,), daemon=True).start()
        digest, fitted, columns, aside = hashlib.sha256(), hashlib.sha256(), [], 0.0
        start = time.perf_counter()
        if args.workers > 1:
            options["workers"] = args.workers
        for clones in each_rule(lazily, store.v_genes, clone_rules.clone_rules(), min_carriers=fewest, **options):
            began = time.perf_counter()
            columns.append(clones.incidence.shape[1])
            _hash(digest, clones)
            if args.fit:
                _fit(fitted, clones, y, PublicCloneTest, args.pgen_requests)
            del clones  # as training lets go of a rule it will not choose
            aside += time.perf_counter() - began
        seconds = time.perf_counter() - start - aside
    peak_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    print(f"{args.package_root or 'working tree'}: min carriers {fewest}{' positive' if args.positives else ''}, "
          f"{seconds:.0f} s, VmHWM {peak_kb / 1024:.0f} MB, columns {columns}, sha256 {digest.hexdigest()[:16]}",
          flush=True)
    if args.fit:
        print(f"  fits {aside:.0f} s (with hashing), sha256 of what they found {fitted.hexdigest()[:16]}")


def _training_rows(split: Path, subjects) -> list[np.ndarray]:  # noqa: ANN001 (the store's subject ids)
    """The training rows of each outer fold of `split`, as the baselines job takes them."""
    from deeprc_hopfield.baselines import _training_rows as rows_of
    from deeprc_hopfield.split import Split

    return rows_of(Split.read(split), list(subjects))


def _hash(digest, clones) -> None:  # noqa: ANN001 (a hashlib digest, a CohortClones)
    """Add a rule's keys and incidence to `digest`, as int64, a slice at a time (the peak stays the collection's)."""
    incidence = clones.incidence.tocsr()
    for part in (clones.keys, incidence.indptr, incidence.indices):
        for start in range(0, len(part), 1 << 20):
            digest.update(np.asarray(part[start:start + (1 << 20)], dtype=np.int64).tobytes())


def _fit(digest, clones, y: np.ndarray, test_class, requests: bool = False) -> None:  # noqa: ANN001
    """Fit the public-clone test (no pgen) on a rule's clones, print what it found, add it to `digest`.
    `requests`: with a pgen that knows no value (so the same fit), print the candidates pgen would be asked
    for below each threshold."""
    unknown = {"pgen": lambda columns: np.full(len(columns), np.nan), "pgen_limit": None} if requests else {}
    test = test_class(random_state=0).fit(clones.incidence, y, **unknown)
    for part in (clones.keys[test.associated_], test.pgen_inner_aucs_[:1], [test.threshold_]):
        digest.update(np.asarray(part).tobytes())
    asked = dict(zip(test.thresholds, test.pgen_candidates_.tolist())) if requests else None
    print(f"  {clones.rule}: {len(test.associated_)} associated at p < {test.threshold_:g}, inner AUC "
          f"{test.inner_auc_:.4f}" + (f"; pgen candidates per threshold {asked}" if requests else ""), flush=True)


#: The steps of `clone_rules.cohort_clones` that `--steps` logs (those missing from a package version are skipped).
STEPS = ("shareable_cores", "_shared_counts", "_bounded_wildcards", "_core_neighbours", "_neighbour_clones", "_level_clones",
         "resolve_wildcards", "clone_incidence")


def _log_steps() -> None:
    """Wrap the `STEPS` of the imported `clone_rules` so that each logs its start and end."""
    from deeprc_hopfield import clone_rules

    logging.getLogger(clone_rules.__name__).setLevel(logging.DEBUG)
    for name in STEPS:
        if hasattr(clone_rules, name):
            setattr(clone_rules, name, _logged(getattr(clone_rules, name), name))


def _logged(function, name: str):  # noqa: ANN001, ANN202
    @functools.wraps(function)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        logging.info("STEP %s start", name)
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            logging.info("STEP %s end %.1f s", name, time.perf_counter() - start)
    return wrapper


def _log_rss(every: float) -> None:
    """Log VmRSS and VmHWM every `every` seconds, for ever (a daemon thread)."""
    while True:
        status = open("/proc/self/status").read()
        rss, peak = (int(status.split(f"{name}:")[1].split()[0]) // 1024 for name in ("VmRSS", "VmHWM"))
        logging.info("RSS %d MB (peak %d MB)", rss, peak)
        time.sleep(every)


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
