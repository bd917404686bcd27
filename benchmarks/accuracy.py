"""Benchmark: held-out accuracy on a simulated cohort, next to two simple baselines on the same split.

One run: simulate a cohort (`deeprc_hopfield.simulate`), ingest it into a store, make a stratified,
seeded split into `--folds` folds, and for the held-out fold (`--fold`, or every fold with
`--all-folds`):

- train the model with the package's defaults on the other folds only (`deeprc_hopfield.training`;
  `--updates` and `--config` override), predict the held-out repertoires and report their ROC AUC;
- the share of implanted sequences (from `truth/implanted.tsv`, matched on repertoire and
  junction_aa) among the `--top` most-attended sequences of each held-out positive repertoire;
- the package's two baselines (`deeprc_hopfield.baselines`), fitted on the same training folds:
  L1-penalised logistic regression on 3-mer frequencies (C by inner CV) and the Emerson-style
  public-clone test (Fisher's exact test per junction_aa + V clone, p threshold by inner CV; score =
  associated clones carried);
- seconds of simulate, ingest, train (and per update), predict.

    python benchmarks/accuracy.py --repertoires 200 --sequences 10000 --witness-rate 0.001 \\
        --motif SA.FY --threads 2 [--updates N] [--config train.yaml] [--all-folds] [--keep DIR]

With `--keep DIR` the cohort, store and models stay in DIR, and a later run with the same cohort
options reuses the cohort and store (their seconds are then reported as reused).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from deeprc_hopfield.clone_rules import CloneRule
from deeprc_hopfield.baselines import CohortFeatures, fit_kmer, fit_public_clone_baseline, read_features
from deeprc_hopfield.infer import predict, subjects_from_store
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.reference import ReferenceOptions
from deeprc_hopfield.saved_model import load_model
from deeprc_hopfield.simulate import SimulationSettings, parse_motifs, simulate
from deeprc_hopfield.split import make_split
from deeprc_hopfield.training import train

LABEL = "label"


@contextmanager
def timed(seconds: dict, key: str):
    """Adds the wall-clock seconds of the `with` block to `seconds[key]`."""
    start = time.perf_counter()
    yield
    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start


# --- cohort, store and split -------------------------------------------------------------------
def with_cohort_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """`args` of another benchmark, given this one's defaults for every option it does not have itself (so that
    :func:`settings_from` reads them as this benchmark would)."""
    for name, value in vars(parse_args([])).items():
        setattr(args, name, getattr(args, name, value))
    return args


def settings_from(args: argparse.Namespace) -> SimulationSettings:
    """The cohort of the options (or `args.settings`, where a benchmark built its own)."""
    if getattr(args, "settings", None) is not None:
        return args.settings
    return SimulationSettings(
        n_repertoires=args.repertoires, sequences_per_repertoire=args.sequences, witness_rate=args.witness_rate,
        seed=args.seed, motifs=parse_motifs(args.motif), public_clones=args.public_clones,
        public_rate=args.public_rate, public_v_noise=args.public_v_noise, public_variants=args.public_variants,
        nucleotides=False)


@contextmanager
def simulated_cohort(args: argparse.Namespace, prefix: str):  # noqa: ANN201 (a context manager)
    """A work folder (`--keep`, or a temporary one) with the simulated cohort, its store and a seeded
    split (also written to split.csv); yields (work, cohort, store, split, seconds)."""
    seconds: dict = {}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cohort, store = cohort_and_store(settings_from(args), work, args.threads, seconds)
        split = make_split(store, args.folds, args.seed, LABEL)
        split.to_csv(work / "split.csv", index=False)
        yield work, cohort, store, split, seconds


def cohort_and_store(settings: SimulationSettings, work: Path, threads: int, seconds: dict) -> tuple[Path, Path]:
    """Simulate and ingest into `work`, or reuse what an earlier run with the same settings left there."""
    cohort, store = work / "cohort", work / "store.h5"
    stamp = work / "settings.json"
    wanted = json.dumps(settings.as_dict(), sort_keys=True)
    if store.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        seconds["simulate"] = seconds["ingest"] = float("nan")  # reused
        return cohort, store
    with timed(seconds, "simulate"):
        simulate(settings, cohort, threads=threads, force=True)
    store.unlink(missing_ok=True)
    with timed(seconds, "ingest"):
        ingest(cohort / "metadata.csv", cohort / "repertoires", store, threads=threads, progress=False, force=True)
    stamp.write_text(wanted)
    return cohort, store


# --- the model -------------------------------------------------------------------------------------
def train_and_predict(store: Path, work: Path, split_csv: Path, fold: int, args: argparse.Namespace,
                      test_ids: set[str], seconds: dict) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Train on every fold but `fold`; predictions and top attended sequences of the held-out repertoires."""
    model_dir = work / f"model_fold{fold}"
    reference = getattr(args, "reference", None)
    with timed(seconds, "train"):
        train(store, model_dir, config_path=args.config, split=split_csv, fold=fold, device="cpu", seed=args.seed,
              n_updates=args.updates, progress=False, force=True,  # replaces a kept (--keep) earlier model
              reference=ReferenceOptions(reference) if reference else None)
    saved = load_model(model_dir)
    with timed(seconds, "predict"):
        predictions, attended = predict([saved], subjects_from_store(store, saved, only=test_ids),
                                        torch.device("cpu"), top=args.top)
    return predictions, attended, model_dir


def implanted_share(attended: pd.DataFrame, truth: pd.DataFrame, positives: set[str]) -> pd.DataFrame:
    """Per held-out positive repertoire: the share of its top attended sequences that are implanted
    (`top`), and the share among its top n, n = min(top, implanted sequences it holds) (`top_n`):
    at 0.1% of 10,000 a repertoire holds ~10 implanted sequences, so at most ~50% of a top 20 can be."""
    implanted = set(zip(truth["subject_id"], truth["junction_aa"]))
    held = truth.groupby("subject_id").size()
    top = attended[attended["repertoire_id"].isin(positives)].copy()
    top["hit"] = [(r, a) in implanted for r, a in zip(top["repertoire_id"], top["junction_aa"])]
    top["within_n"] = top["rank"] <= top["repertoire_id"].map(held).fillna(0)
    by = top.groupby("repertoire_id")
    return pd.DataFrame({"top": by["hit"].mean(),
                         "top_n": top[top["within_n"]].groupby("repertoire_id")["hit"].mean()})


def recall_at_top(attended: pd.DataFrame, truth: pd.DataFrame, positives: set[str], top: int) -> dict[str, float]:
    """Mean over held-out positives of recall@top: the implanted sequences (distinct junctions) among its
    `top` most-attended, over min(top, implanted it holds); overall (`recall`) and per signal
    (`recall_<signal>`: a motif, or `public_clone`/the truth's kind for whole receptors)."""
    truth = truth[truth["subject_id"].isin(positives)].copy()
    truth["group"] = np.where(truth["kind"] == "motif", truth["signal"].astype(str), truth["kind"].astype(str))
    seen = attended[attended["repertoire_id"].isin(positives) & (attended["rank"] <= top)]
    found = set(zip(seen["repertoire_id"], seen["junction_aa"]))
    out = {}
    for group, rows in [("recall", truth), *((f"recall_{g}", t) for g, t in truth.groupby("group"))]:
        held = rows.drop_duplicates(["subject_id", "junction_aa"])
        hit = np.array([(s, j) in found for s, j in zip(held["subject_id"], held["junction_aa"])])
        per = pd.DataFrame({"s": held["subject_id"].to_numpy(), "hit": hit}).groupby("s")["hit"].agg(["sum", "size"])
        out[group] = float((per["sum"] / np.minimum(per["size"], top)).mean()) if len(per) else float("nan")
    return out


def updates_run(model_dir: Path) -> int:
    metrics = pd.read_csv(model_dir / "metrics.csv")
    return int(metrics["update"].max())


# --- one fold and the report -----------------------------------------------------------------------
#: The public-clone test as Emerson et al. 2017 ran it: one clone key (CDR3 + V gene), exact matches.
PLAIN_RULE = CloneRule("gene", 0)


def baselines(features: CohortFeatures, train_idx: np.ndarray, test_idx: np.ndarray, seed: int,
              seconds: dict) -> dict:
    """Held-out AUCs of the package's k-mer and public-clone baselines, and of the plain public-clone test
    (:data:`PLAIN_RULE`, no pgen filter), fitted on `train_idx` only."""
    y = features.y
    with timed(seconds, "kmer_lr"):
        search = fit_kmer(features.kmers[train_idx], y[train_idx], seed)
        kmer_auc = roc_auc_score(y[test_idx], search.predict_proba(features.kmers[test_idx])[:, 1])
    with timed(seconds, "public_clone"):
        choice = fit_public_clone_baseline(features, train_idx, seed)
        clone_auc = roc_auc_score(y[test_idx], choice.test.decision_function(choice.clones.incidence[test_idx]))
    with timed(seconds, "plain_clone"):  # Emerson et al. 2017 as published: CDR3 + V gene, exact, no pgen filter
        plain = fit_public_clone_baseline(features, train_idx, seed, use_pgen=False, rules=[PLAIN_RULE])
        plain_auc = roc_auc_score(y[test_idx], plain.test.decision_function(plain.clones.incidence[test_idx]))
    return {"kmer_l1_auc": kmer_auc, "kmer_l1_C": search.best_params_["logisticregression__C"],
            "plain_clone_auc": plain_auc,
            "public_clone_auc": clone_auc, "public_clone_rule": str(choice.rule),
            "fisher_threshold": choice.test.threshold, "pgen_cutoff": choice.test.pgen_cutoff,
            "associated_clones": len(choice.test.associated)}


def evaluate_fold(fold: int, split: pd.DataFrame, features: CohortFeatures, store: Path, work: Path,
                  truth: pd.DataFrame, args: argparse.Namespace) -> dict:
    seconds: dict = {}
    y = features.y
    test_idx = np.flatnonzero(split["fold"].to_numpy() == fold)
    train_idx = np.flatnonzero(split["fold"].to_numpy() != fold)
    ids = split["subject_id"].to_numpy()
    predictions, attended, model_dir = train_and_predict(store, work, work / "split.csv", fold, args,
                                                          set(ids[test_idx]), seconds)
    truth_of = dict(zip(ids, y))
    model_auc = roc_auc_score([truth_of[s] for s in predictions["subject_id"]], predictions["probability"])
    share = implanted_share(attended, truth, set(ids[test_idx][y[test_idx] == 1]))
    base = baselines(features, train_idx, test_idx, args.seed, seconds)
    n_updates = updates_run(model_dir)
    training = load_model(model_dir).training
    rule = training.get("clone_rule") or {}
    calls = [[s, int(truth_of[s]), float(p)] for s, p in zip(predictions["subject_id"], predictions["probability"])]
    return {"fold": fold, "n_test": len(test_idx), "model_auc": model_auc, **base, "calls": calls,
            "top_implanted_mean": float(share["top"].mean()), "top_implanted_min": float(share["top"].min()),
            "top_n_implanted_mean": float(share["top_n"].mean()),
            **recall_at_top(attended, truth, set(ids[test_idx][y[test_idx] == 1]), args.top),
            "memory_clones": len(training.get("memory_clones", [])), "memory_alone": training.get("memory_alone"),
            "clone_rule": f"{rule.get('v_level')}/{rule.get('radius')}" if rule else None,
            "refit_rule": (f"{rule['refit'].get('v_level')}/{rule['refit'].get('radius')}"
                           if rule and rule.get("refit") else None),
            "reference_used": (training.get("reference") or {}).get("used"),
            **{f"validation_{k}": v for k, v in (training.get("memory_choice") or {}).items() if k != "trained_wins"},
            "train_s": seconds["train"], "updates": n_updates, "s_per_update": seconds["train"] / n_updates,
            "predict_s": seconds["predict"], "kmer_lr_s": seconds["kmer_lr"], "public_clone_s": seconds["public_clone"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repertoires", type=int, default=200)
    p.add_argument("--sequences", type=int, default=10_000, help="sequences per repertoire")
    p.add_argument("--witness-rate", type=float, default=0.001)
    p.add_argument("--motif", default="SA.FY", help="motif(s), comma-separated; '.' is a gap (SA.FY: in 0.005%% of OLGA TRB backgrounds, GR.DT in 0.23%%)")
    p.add_argument("--public-clones", type=int, default=0)
    p.add_argument("--public-rate", type=float, default=0.0)
    p.add_argument("--public-v-noise", type=float, default=0.0, help="share of public-clone occurrences with another V call")
    p.add_argument("--public-variants", type=int, default=1, help="CDR3s per public clone family (one substitution apart)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cohort, the split, training and inner CVs")
    p.add_argument("--updates", type=int, help="training updates (default: the package's)")
    p.add_argument("--config", help="training/model YAML passed to train (default: the package's defaults)")
    p.add_argument("--threads", type=int, default=2, help="simulate/ingest workers and torch threads")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold", type=int, default=0, help="the held-out fold (without --all-folds)")
    p.add_argument("--all-folds", action="store_true", help="hold out each fold in turn (k trainings)")
    p.add_argument("--top", type=int, default=20, help="attended sequences checked per positive repertoire")
    p.add_argument("--keep", type=Path, help="work folder to keep (and reuse the cohort from)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    return p.parse_args(argv)


def report(settings: SimulationSettings, seconds: dict, rows: list[dict]) -> dict:
    table = pd.DataFrame(rows).drop(columns="calls", errors="ignore")  # each subject's call: in the JSON only
    print(f"cohort: {settings}")
    print(f"simulate {seconds['simulate']:.1f} s, ingest {seconds['ingest']:.1f} s, "
          f"features {seconds['features']:.1f} s (nan = reused); load average at the end "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(table.to_string(index=False))
    if len(table) > 1:
        print("mean over folds:")
        print(table.drop(columns="fold").mean().round(3).to_string())
    return {"settings": settings.as_dict(), "seconds": seconds, "folds": rows}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = settings_from(args)
    with simulated_cohort(args, "accuracy.") as (work, cohort, store_path, split, seconds):
        truth = pd.read_csv(cohort / "truth" / "implanted.tsv", sep="\t", dtype=str)
        with timed(seconds, "features"):
            features = read_features(store_path, LABEL, ("kmer", "public_clones"))
        assert str(features.classes[1]) == "1", f"positive class is not '1': {features.classes}"
        folds = range(args.folds) if args.all_folds else [args.fold]
        rows = [evaluate_fold(k, split, features, store_path, work, truth, args) for k in folds]
        result = report(settings, seconds, rows)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
