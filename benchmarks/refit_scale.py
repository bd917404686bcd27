"""Does a refit clone memory's calibration run high because its inner folds' memories are smaller?

A memory kept alone is refit on all training repertoires (`training.clone_memory.refit_clone_memory`); its evidence
regression and calibration are fitted on each training repertoire's count of clones as the inner fold that left it
out found them, and a held-out repertoire is counted against every clone of the refit. An inner fold's test sees a
tenth fewer repertoires and associates fewer clones, so the counts it is fitted on run low, and held-out
probabilities would run high (the matrix's negative calibration intercepts). This script measures, on the matrix's
memory-alone cohorts and two seeds, three ways to fit the regression and calibration: the package's (raw
out-of-fold counts), the counts scaled by the refit's clones over the inner fold's (linear), and by the square root
of that ratio; and it reports, pooled over 5 folds, the held-out log loss, Brier score and calibration line. The
held-out counts and the clones are the package's: only the fit of the map from count to probability differs.

    python benchmarks/refit_scale.py --rows cmv-vdjdb-rare,reference-none,cmv-vdjdb,clones-neighbours,clones-150 \
        --seeds 0,1 --work /tmp/refit-scale
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit

import matrix
from accuracy import simulated_cohort
from deeprc_hopfield.calibration import calibrated_logit, fit_calibration
from deeprc_hopfield.metrics import calibration_line
from deeprc_hopfield.sampling import RepertoireCache
from deeprc_hopfield.store import RepertoireStore
from deeprc_hopfield.clone_rules import AUTO, clone_rules
from deeprc_hopfield.training.clone_memory import associated_clones, carried_by, clone_matcher, evidence_regression
from deeprc_hopfield.training.config import TrainingConfig

HERE = Path(__file__).resolve().parent
VARIANTS = ("raw", "linear", "sqrt")


def radius_of(row: str) -> int:
    """The match radius the matrix's models refit with on this row (the most common over its folds)."""
    folds = json.loads((HERE / "results" / "matrix" / f"{row}.json").read_text())["folds"]
    rules = Counter(f["refit_rule"] for f in folds if f.get("refit_rule"))
    return int(rules.most_common(1)[0][0].split("/")[1]) if rules else 0


def scaled_counts(out_of_fold: np.ndarray, inner: list, full: int, power: float) -> np.ndarray:
    """Out-of-fold counts (rows: the fitted repertoires) times (the refit's clones / the inner fold's) ** `power`."""
    counts = np.array(out_of_fold, dtype=np.float64)
    for rows, columns in inner:
        counts[rows] *= (full / max(len(columns), 1)) ** power
    return counts


def fold_probabilities(cache, labels, train, test, radius) -> dict | None:
    """Held-out probabilities of each variant for one outer fold; None where the refit keeps no clone. The clones
    are chosen as `refit_clone_memory` chooses them (its rules for `radius`, its bar on the inner AUC)."""
    config = TrainingConfig()
    rules = clone_rules(config.clone_keys, AUTO if radius == 1 and config.clone_radius == AUTO else radius)
    choice, clones, _ = associated_clones(cache, labels, train, config, cache.store.v_genes, rules)
    test_of = choice.test
    if not clones or test_of.inner_auc < config.clone_memory_min_auc:
        return None
    matcher = clone_matcher(clones, cache.store.v_genes, choice.rule)
    held = np.array([carried_by(matcher, cache[int(i)]) for i in test], dtype=np.float64)
    out = {"held_out_count": float(held.mean()), "clones": len(clones)}
    for name, power in zip(VARIANTS, (0.0, 1.0, 0.5)):
        counts = np.zeros(len(labels))
        counts[train] = scaled_counts(test_of.out_of_fold, test_of.inner_associated_, len(test_of.associated), power)
        weight, intercept = evidence_regression(counts[train], labels[train])
        calibration = fit_calibration(weight * np.log1p(counts[train]) + intercept, labels[train])
        out[name] = expit(calibrated_logit(weight * np.log1p(held) + intercept, calibration))
        out[f"{name}_count"] = float(counts[train].mean())
    return out


def scores(y: np.ndarray, p: np.ndarray) -> dict:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    intercept, slope = calibration_line(y, p)
    return {"log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
            "brier": float(np.mean((p - y) ** 2)), "intercept": intercept, "slope": slope, "mean_p": float(p.mean())}


def run_cohort(row: str, seed: int, work: Path) -> dict:
    base = matrix.ROWS[row]
    spec = dataclasses.replace(base, settings={**base.settings, "seed": seed})
    ns, _ = matrix.row_namespace(spec, argparse.Namespace(work=work / f"seed{seed}", threads=2, folds=5, seed=seed))
    with simulated_cohort(ns, "refit-scale.") as (_, _, store_path, split, _):
        store = RepertoireStore(store_path)
        cache = RepertoireCache(store)
        labels = store.metadata()["label"].astype(int).to_numpy()
        fold = split.set_index("subject_id").loc[store.subject_ids, "fold"].to_numpy()
        radius, folds, ys, ps = radius_of(row), [], [], {v: [] for v in VARIANTS}
        for k in sorted(set(fold)):
            train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            result = fold_probabilities(cache, labels, train, test, radius)
            if result is None:
                folds.append({"fold": int(k), "refit": False})
                continue
            ys.append(labels[test])
            for v in VARIANTS:
                ps[v].append(result.pop(v))
            folds.append({"fold": int(k), "refit": True, **result})
    y = np.concatenate(ys) if ys else np.zeros(0)
    pooled = {v: scores(y, np.concatenate(ps[v])) for v in VARIANTS} if ys else {}
    return {"row": row, "seed": seed, "radius": radius, "folds": folds, "pooled": pooled}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="cmv-vdjdb-rare,reference-none,cmv-vdjdb,clones-neighbours,clones-150")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--work", type=Path, default=Path("/tmp/refit-scale"))
    p.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    started, results = time.perf_counter(), []
    for seed in (int(s) for s in args.seeds.split(",")):
        for row in args.rows.split(","):
            result = run_cohort(row, seed, args.work)
            results.append(result)
            print(f"{row} seed {seed} (radius {result['radius']}; refit in "
                  f"{sum(f['refit'] for f in result['folds'])} of {len(result['folds'])} folds)", flush=True)
            for f in result["folds"]:
                if f["refit"]:
                    print(f"  fold {f['fold']}: {f['clones']} clones; mean count of the training repertoires "
                          + ", ".join(f"{v} {f[f'{v}_count']:.2f}" for v in VARIANTS)
                          + f"; of the held-out ones {f['held_out_count']:.2f}", flush=True)
            for v, s in result["pooled"].items():
                print(f"  {v:6s} log loss {s['log_loss']:.4f}  Brier {s['brier']:.4f}  calibration intercept "
                      f"{s['intercept']:+.2f} slope {s['slope']:.2f}  mean p {s['mean_p']:.3f}", flush=True)
    print(f"{time.perf_counter() - started:.0f} s; commit {matrix.commit()}; {matrix.machine()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
