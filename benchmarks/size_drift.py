"""Benchmark: do predicted probabilities hold when a repertoire is scored whole rather than as a sample?

Training sees samples of `sample_size` sequences (10,000 by default); `predict` scores whole
repertoires, in real cohorts 100,000 to over 1,000,000 sequences. This simulates a cohort of large
repertoires, trains the held-out fold's model at the package's defaults and scores each held-out
repertoire twice: whole, and as `--samples` seeded samples of `sample_size` sequences (the mean of
their probabilities), with the model's calibration (what `predict` reports), without it, and
without calibration or subset pooling (`pool_subset_size` 0: how it scored before). It prints, per class, the mean probability both ways and the shift; the ROC
AUC, the Brier score and the balanced accuracy at the reported threshold (0.5) and at the best
threshold of the whole-repertoire scores (issue 14's goals: shift < 0.05 per class, balanced
accuracy at 0.5 within 0.03 of the best).

    python benchmarks/size_drift.py --repertoires 60 --sequences 100000 --folds 3 --threads 2 \\
        [--keep DIR] [--json benchmarks/results/size_drift.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import LABEL, simulated_cohort, timed  # noqa: E402  (the benchmark's cohort and timing)
from run_record import provenance, write_result  # noqa: E402

from deeprc_hopfield.infer import score_repertoire, subjects_from_store  # noqa: E402
from deeprc_hopfield.sampling import sample_indices  # noqa: E402
from deeprc_hopfield.saved_model import load_model  # noqa: E402
from deeprc_hopfield.training import train  # noqa: E402


def balanced_accuracy(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    called = p >= threshold
    return 0.5 * (called[y == 1].mean() + (~called[y == 0]).mean())


def best_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The threshold (a midpoint between sorted scores) with the highest balanced accuracy, and that accuracy."""
    values = np.unique(p)
    cuts = np.concatenate(([values[0] - 1e-9], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-9]))
    scores = [balanced_accuracy(y, p, c) for c in cuts]
    k = int(np.argmax(scores))
    return float(cuts[k]), float(scores[k])


def score_fold(store: Path, model_dir: Path, test_ids: set[str], samples: int, seed: int) -> pd.DataFrame:
    """P(positive) of each held-out repertoire scored whole and as samples of the training sample size,
    through the model's calibration (`p_whole`, `p_sample`) and without it (`p_whole_raw`, `p_sample_raw`)."""
    saved = load_model(model_dir)
    raw = replace(saved, training={**saved.training, "calibration": {}})
    whole_bag = load_model(model_dir)  # as before subsets: a whole repertoire pooled at once, uncalibrated
    whole_bag.model.pooling.subset_size = 0
    whole_bag = replace(whole_bag, training=raw.training)
    size = int(saved.training["sample_size"]) if "sample_size" in saved.training else 10_000
    rng = np.random.default_rng(seed)
    rows = []
    for subject in subjects_from_store(store, saved, only=test_ids):
        rep = subject.repertoire
        reps = {"whole": [rep], "sample": [rep.subset(np.sort(sample_indices(rep, size, rng))) for _ in range(samples)]}
        row = {"subject_id": subject.subject_id, "y": int(str(subject.truth[LABEL]) == "1"),
               "n_sequences": len(rep), "sample_size": size}
        for name, model in (("", saved), ("_raw", raw), ("_whole_bag", whole_bag)):
            for kind, parts in reps.items():
                row[f"p_{kind}{name}"] = float(np.mean([score_repertoire([model], part, torch.device("cpu"))[0][LABEL][0, 0]
                                                        for part in parts]))
        rows.append(row)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, suffix: str = "") -> dict:
    """Drift and threshold figures of the probabilities `p_whole{suffix}` and `p_sample{suffix}`."""
    y, whole, sample = table["y"].to_numpy(), table[f"p_whole{suffix}"].to_numpy(), table[f"p_sample{suffix}"].to_numpy()
    threshold, best = best_threshold(y, whole)
    out = {"n": len(table), "auc_whole": float(roc_auc_score(y, whole)), "auc_sample": float(roc_auc_score(y, sample)),
           "brier_whole": float(np.mean((whole - y) ** 2)), "brier_sample": float(np.mean((sample - y) ** 2)),
           "balanced_accuracy_0.5": float(balanced_accuracy(y, whole, 0.5)), "balanced_accuracy_best": best,
           "best_threshold": threshold}
    for cls, name in ((0, "negative"), (1, "positive")):
        m = y == cls
        out[f"mean_p_whole_{name}"] = float(whole[m].mean())
        out[f"mean_p_sample_{name}"] = float(sample[m].mean())
        out[f"shift_{name}"] = float(whole[m].mean() - sample[m].mean())
    return out


def summaries(table: pd.DataFrame) -> dict:
    """Calibrated (what `predict` reports), uncalibrated (the raw output) and whole-bag (no subsets, no
    calibration: the model as it scored before either) figures."""
    return {"calibrated": summary(table), "uncalibrated": summary(table, "_raw"),
            "whole_bag": summary(table, "_whole_bag")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repertoires", type=int, default=60)
    p.add_argument("--sequences", type=int, default=100_000, help="sequences per repertoire")
    p.add_argument("--witness-rate", type=float, default=0.001)
    p.add_argument("--motif", default="SA.FY")
    p.add_argument("--public-clones", type=int, default=0)
    p.add_argument("--public-rate", type=float, default=0.0)
    p.add_argument("--public-v-noise", type=float, default=0.0)
    p.add_argument("--public-variants", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--updates", type=int, help="training updates (default: the package's)")
    p.add_argument("--config", help="training/model YAML passed to train (default: the package's defaults)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--fold-list", type=lambda t: [int(x) for x in t.split(",")], default=[0])
    p.add_argument("--samples", type=int, default=3, help="samples per held-out repertoire")
    p.add_argument("--keep", type=Path, help="work folder to keep (and reuse the cohort from)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with simulated_cohort(args, "size-drift-") as (work, _cohort, store, split, seconds):
        tables = []
        for fold in args.fold_list:
            model_dir = work / f"model_fold{fold}"
            with timed(seconds, "train"):
                train(store, model_dir, config_path=args.config, split=work / "split.csv", fold=fold, device="cpu",
                      seed=args.seed, n_updates=args.updates, progress=False, force=True)
            test_ids = set(split.loc[split["fold"] == fold, "subject_id"].astype(str))
            with timed(seconds, "score"):
                tables.append(score_fold(store, model_dir, test_ids, args.samples, args.seed).assign(fold=fold))
        table = pd.concat(tables, ignore_index=True)
    result = {"summary": summaries(table), "per_fold": {int(f): summaries(t) for f, t in table.groupby("fold")},
              "repertoires": table.to_dict(orient="records"), "seconds": seconds, "argv": sys.argv,
              **provenance(f"{torch.get_num_threads()} torch threads")}
    print(json.dumps(result["summary"], indent=2))
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
