"""Diagnostic: does the clone rule chosen by inner CV generalise? Each rule's inner and held-out AUC.

The public-clone path (the `public_clones` baseline and the clone memory) fits the test under every
clone rule (V level, match radius) and keeps the rule of the best inner-CV ROC AUC on the training
repertoires, unless it does not beat a rule of smaller radius significantly. This fits the test of each
rule alone on the training folds of a matrix cohort (`benchmarks/matrix.py` keeps them under its
`--work` folder) and prints, per fold, each rule's inner
AUC (what chooses) and its held-out AUC (what the choice should have maximised), the rule chosen, and
the held-out AUC of the best rule in hindsight.

    python benchmarks/clone_rule_choice.py /tmp/deeprc-matrix/cohort-reference [--inner-folds 10] [--json FILE]

`--seed` sets the inner CV's split (the package uses the training seed, 0 by default) and `--exact` fits
the exact rules only: across seeds, this shows how much an inner AUC owes to the inner split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from deeprc_hopfield.baselines import fit_public_clone_baseline, read_features  # noqa: E402
from deeprc_hopfield.clone_rules import clone_rules, prefer_exact_rules  # noqa: E402
from deeprc_hopfield.public_clones import CLONE_INNER_FOLDS  # noqa: E402


def fold_rules(features, folds: np.ndarray, fold: int, inner_folds: int, seed: int = 0,
               exact: bool = False) -> dict:
    """Each rule's (inner AUC, held-out AUC) on one fold, and which rule inner CV chooses."""
    train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    rules, fits = {}, []
    for rule in clone_rules():
        if exact and rule.radius:
            continue
        choice = fit_public_clone_baseline(features, train, seed=seed, rules=[rule], inner_folds=inner_folds)
        score = choice.test.decision_function(choice.clones.incidence[test])
        held_out = roc_auc_score(features.y[test], score) if np.ptp(score) > 0 else 0.5
        rules[str(rule)] = {"inner_auc": round(float(choice.test.inner_auc), 3), "held_out_auc": round(held_out, 3)}
        fits.append(choice)
    chosen = str(prefer_exact_rules(fits, features.y[train]).rule)  # as choose_clone_rule chooses
    best = max(rules, key=lambda r: rules[r]["held_out_auc"])
    return {"fold": fold, "rules": rules, "chosen": chosen, "chosen_held_out": rules[chosen]["held_out_auc"],
            "best_in_hindsight": best, "best_held_out": rules[best]["held_out_auc"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cohort", type=Path, help="a matrix cohort folder (store.h5, split.csv)")
    p.add_argument("--inner-folds", type=int, default=CLONE_INNER_FOLDS, help="inner CV folds (the package's: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the inner CV's seed (default %(default)s)")
    p.add_argument("--exact", action="store_true", help="the exact rules only")
    p.add_argument("--json", type=Path, help="write the per-fold results here")
    args = p.parse_args()
    features = read_features(args.cohort / "store.h5", "label", ("public_clones",))
    split = pd.read_csv(args.cohort / "split.csv", dtype={"subject_id": str})
    fold_of = dict(zip(split["subject_id"], split["fold"]))
    folds = np.array([fold_of[s] for s in features.subject_ids])
    results = []
    for fold in sorted(set(folds.tolist())):
        row = fold_rules(features, folds, fold, args.inner_folds, args.seed, args.exact)
        results.append(row)
        print(f"fold {fold}: chosen {row['chosen']} (held-out {row['chosen_held_out']:.3f}); best in hindsight "
              f"{row['best_in_hindsight']} ({row['best_held_out']:.3f})", flush=True)
        for rule, aucs in row["rules"].items():
            print(f"    {rule:34s} inner {aucs['inner_auc']:.3f}  held-out {aucs['held_out_auc']:.3f}", flush=True)
    chosen = np.mean([r["chosen_held_out"] for r in results])
    best = np.mean([r["best_held_out"] for r in results])
    print(f"mean held-out AUC: the rule chosen by inner CV {chosen:.3f}; the best rule in hindsight {best:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"cohort": str(args.cohort), "inner_folds": args.inner_folds, "seed": args.seed,
                                         "exact": args.exact, "folds": results,
                                         "command": " ".join(sys.argv)}, indent=1))


if __name__ == "__main__":
    main()
