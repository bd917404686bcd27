"""Benchmark: OLGA's pgen with the disk cache shared by jobs against each job computing its own.

The clone-rule choice of every training fold (and of the baselines) asks OLGA's pgen of the
candidate clones of its own training repertoires, one sequence at a time in pure Python; the folds
of one cohort share most of their training repertoires, hence most of their chance-public
candidates. This simulates a cohort (OLGA TRB backgrounds, public clones), collects each fold's
clones once, then runs each fold's rule choice as its job would (a fresh process: nothing cached in
memory) twice: without the disk cache (the reference: every job computes its own) and with one shared
folder (`pgen.disk_cache`, what `train` and `baselines` now open). It prints per fold the values
OLGA computed and the seconds of the rule choice, the totals and their ratio, and whether every
fold chose the same rule, threshold, cutoff and clones both ways.

    python benchmarks/pgen_cache.py [--repertoires 100] [--sequences 50000] [--folds 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from accuracy import LABEL, simulated_cohort  # noqa: E402
from deeprc_hopfield import pgen  # noqa: E402
from deeprc_hopfield.clone_rules import choose_clone_rule, clone_rules, cohort_clones, pgen_for  # noqa: E402
from deeprc_hopfield.public_clones import min_carriers  # noqa: E402
from deeprc_hopfield.simulate import SimulationSettings, parse_motifs  # noqa: E402
from deeprc_hopfield.store import RepertoireStore  # noqa: E402


def fold_choice(store: RepertoireStore, rows: np.ndarray, y: np.ndarray, candidates: list, seed: int,
                workers: int) -> tuple[dict, float, int]:
    """One fold's rule choice as a fresh job makes it: (what it chose, seconds, values OLGA computed)."""
    pgen._shared_model.cache_clear()  # a new process: no value in memory
    started = time.perf_counter()
    choice = choose_clone_rule(candidates, y[rows], seed,
                               pgen_for(lambda row: store.repertoire(int(rows[row])), store.v_genes, True, workers))
    seconds = time.perf_counter() - started
    computed = sum(pgen.pgen_model("TRB", v_level=level).computed for level in pgen.V_LEVELS)
    chosen = {"rule": str(choice.rule), "threshold": choice.test.threshold, "cutoff": choice.test.pgen_cutoff,
              "clones": sorted(int(k) for k in choice.clones.keys[choice.test.associated])}
    return chosen, seconds, computed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repertoires", type=int, default=100)
    p.add_argument("--sequences", type=int, default=50_000)
    p.add_argument("--public-clones", type=int, default=20)
    p.add_argument("--public-rate", type=float, default=0.15)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="pgen processes per job (train --threads)")
    p.add_argument("--threads", type=int, default=2, help="simulate/ingest workers")
    p.add_argument("--keep", type=Path, help="work folder to keep (and reuse the cohort from)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    settings = SimulationSettings(n_repertoires=args.repertoires, sequences_per_repertoire=args.sequences,
                                  witness_rate=0.0001, seed=args.seed, motifs=parse_motifs("GR.DT"),
                                  public_clones=args.public_clones, public_rate=args.public_rate, nucleotides=False)
    ns = argparse.Namespace(settings=settings, keep=args.keep, threads=args.threads, folds=args.folds, seed=args.seed)
    rows_out = []
    with simulated_cohort(ns, "pgen_cache.") as (_, _, store_path, split, seconds), \
            RepertoireStore(store_path) as store, tempfile.TemporaryDirectory(prefix="pgen-cache.") as folder:
        y = np.asarray(store.label(LABEL).values, dtype=np.int64)
        print(f"cohort {args.repertoires} x {args.sequences:,} (simulate {seconds.get('simulate', float('nan')):.0f} s,"
              f" ingest {seconds.get('ingest', float('nan')):.0f} s); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        order = {s: i for i, s in enumerate(store.subject_ids)}
        for fold in range(args.folds):
            rows = np.sort([order[s] for s in split["subject_id"][split["fold"] != fold]])
            started = time.perf_counter()
            candidates = cohort_clones([store.repertoire(int(i)) for i in rows], store.v_genes, clone_rules(),
                                       min_carriers=min_carriers(y[rows], args.seed))
            collect_s = time.perf_counter() - started
            row = {"fold": fold, "training": len(rows), "collect_s": collect_s}
            for mode, where in (("alone", None), ("shared", folder)):
                with pgen.disk_cache(where):
                    chosen, took, computed = fold_choice(store, rows, y, candidates, args.seed, args.workers)
                row.update({f"{mode}_s": took, f"{mode}_computed": computed, f"{mode}_choice": chosen})
            row["same"] = row["alone_choice"] == row["shared_choice"]
            print(f"fold {fold}: clones collected in {collect_s:.0f} s; rule choice without the cache "
                  f"{row['alone_s']:.1f} s ({row['alone_computed']} pgen values computed), with it "
                  f"{row['shared_s']:.1f} s ({row['shared_computed']} computed); same choice: {row['same']}", flush=True)
            rows_out.append(row)
    alone = sum(r["alone_s"] for r in rows_out)
    shared = sum(r["shared_s"] for r in rows_out)
    print(f"all {args.folds} folds: rule choice {alone:.1f} s without the cache, {shared:.1f} s with it "
          f"({alone / shared:.2f}x); pgen values computed {sum(r['alone_computed'] for r in rows_out)} -> "
          f"{sum(r['shared_computed'] for r in rows_out)}; every fold the same choice: "
          f"{all(r['same'] for r in rows_out)}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "folds": rows_out},
                                        indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
