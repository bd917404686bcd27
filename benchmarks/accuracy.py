"""Benchmark: held-out accuracy on a simulated cohort, next to two simple baselines on the same split.

One run: simulate a cohort (`deeprc_hopfield.simulate`), ingest it into a store, make a stratified,
seeded split into `--folds` folds, and for the held-out fold (`--fold`, or every fold with
`--all-folds`):

- train the model with the package's defaults on the other folds only (`deeprc_hopfield.train`;
  `--updates` and `--config` override), predict the held-out repertoires and report their ROC AUC;
- the share of implanted sequences (from `truth/implanted.tsv`, matched on repertoire and
  junction_aa) among the `--top` most-attended sequences of each held-out positive repertoire;
- baseline 1: L1-penalised logistic regression on 3-mer frequencies (distinct sequences, all 8,000
  3-mers of the 20 amino acids, standardised), C chosen by 5-fold inner CV (ROC AUC) on the
  training folds only;
- baseline 2: an Emerson-style public-clone test. For every clone (junction_aa + V + J, or
  junction_aa with `--clone-key aa`) found in >= 2 training repertoires, a one-sided Fisher's exact
  test (hypergeometric upper tail) for enrichment in the positives; clones with p below a threshold
  are "associated"; a repertoire's score is the number of associated clones it carries. The
  threshold is chosen from 1e-2 .. 1e-5 by 5-fold inner CV (ROC AUC) on the training folds only;
- seconds of simulate, ingest, train (and per update), predict.

    python benchmarks/accuracy.py --repertoires 200 --sequences 10000 --witness-rate 0.001 \\
        --motif GR.DT --threads 2 [--updates N] [--config train.yaml] [--all-folds] [--keep DIR]

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
import scipy.sparse as sp
import torch
from scipy.stats import hypergeom
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deeprc_hopfield.infer import predict, subjects_from_store
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.saved_model import load_model
from deeprc_hopfield.simulate import SimulationSettings, parse_motifs, simulate
from deeprc_hopfield.store import RepertoireStore
from deeprc_hopfield.train import train

LABEL = "label"
INNER_FOLDS = 5
L1_CS = np.logspace(-3, 1, 9)
FISHER_THRESHOLDS = (1e-2, 1e-3, 1e-4, 1e-5)


@contextmanager
def timed(seconds: dict, key: str):
    """Adds the wall-clock seconds of the `with` block to `seconds[key]`."""
    start = time.perf_counter()
    yield
    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start


# --- cohort, store and split -------------------------------------------------------------------
def settings_from(args: argparse.Namespace) -> SimulationSettings:
    return SimulationSettings(
        n_repertoires=args.repertoires, sequences_per_repertoire=args.sequences, witness_rate=args.witness_rate,
        seed=args.seed, motifs=parse_motifs(args.motif), public_clones=args.public_clones,
        public_rate=args.public_rate, nucleotides=False)


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
        ingest(cohort / "metadata.csv", cohort / "repertoires", store, threads=threads, progress=False)
    stamp.write_text(wanted)
    return cohort, store


def stratified_split(subject_ids: list[str], labels: np.ndarray, folds: int, seed: int) -> pd.DataFrame:
    """subject_id -> fold (0..folds-1), stratified by label and seeded."""
    fold = np.empty(len(subject_ids), dtype=int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold[test] = k
    return pd.DataFrame({"subject_id": subject_ids, "fold": fold})


# --- features of the baselines ---------------------------------------------------------------------
def kmer_frequencies(store: RepertoireStore, k: int = 3) -> np.ndarray:
    """(n_repertoires, 20**k) frequencies of the k-mers of each repertoire's distinct sequences."""
    out = np.zeros((len(store), 20**k))
    for i in range(len(store)):
        rep = store.repertoire(i)
        codes = rep.codes.astype(np.int64) - 1  # 0..19
        starts = np.repeat(np.cumsum(rep.lengths.astype(np.int64)) - rep.lengths, rep.lengths)
        position = np.arange(len(codes)) - starts
        valid = position <= np.repeat(rep.lengths.astype(np.int64), rep.lengths) - k
        index = np.zeros(int(valid.sum()), dtype=np.int64)
        where = np.flatnonzero(valid)
        for offset in range(k):
            index = index * 20 + codes[where + offset]
        counts = np.bincount(index, minlength=20**k)
        out[i] = counts / max(1, counts.sum())
    return out


def clone_incidence(store: RepertoireStore, key: str) -> sp.csr_matrix:
    """(n_repertoires, n_clones) 0/1 matrix: does a repertoire carry a clone (`key` 'aa' or 'aa_vj')."""
    rows, names = [], []
    for i in range(len(store)):
        table = store.table(i)
        clone = table["junction_aa"] if key == "aa" else (
            table["junction_aa"] + "|" + table["v_call"].astype(str) + "|" + table["j_call"].astype(str))
        names.append(clone.to_numpy())
        rows.append(np.full(len(table), i))
    ids, _ = pd.factorize(np.concatenate(names))
    rows = np.concatenate(rows)
    matrix = sp.csr_matrix((np.ones(len(ids), dtype=np.int8), (rows, ids)), shape=(len(store), ids.max() + 1))
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


# --- baselines -------------------------------------------------------------------------------------
def l1_logistic_auc(features: np.ndarray, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
                    seed: int) -> tuple[float, float]:
    """Held-out AUC of L1 logistic regression with C chosen by inner CV on the training rows; and that C."""
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(
        l1_ratio=1.0, solver="liblinear", max_iter=2000, class_weight="balanced"))
    search = GridSearchCV(pipeline, {"logisticregression__C": L1_CS}, scoring="roc_auc",
                          cv=StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed))
    search.fit(features[train_idx], y[train_idx])
    score = search.predict_proba(features[test_idx])[:, 1]
    return roc_auc_score(y[test_idx], score), float(search.best_params_["logisticregression__C"])


def associated_clones(incidence: sp.csr_matrix, y: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of clones enriched in the positives (one-sided Fisher's exact test, p < threshold)."""
    carriers = np.asarray(incidence.sum(axis=0)).ravel()
    positive_carriers = np.asarray(incidence[y == 1].sum(axis=0)).ravel()
    tested = carriers >= 2
    p = np.ones(incidence.shape[1])
    p[tested] = hypergeom.sf(positive_carriers[tested] - 1, len(y), int(y.sum()), carriers[tested])
    return p < threshold


def public_clone_scores(incidence: sp.csr_matrix, y: np.ndarray, fit_idx: np.ndarray, score_idx: np.ndarray,
                        threshold: float) -> np.ndarray:
    """Number of clones associated in `fit_idx` that each repertoire of `score_idx` carries."""
    mask = associated_clones(incidence[fit_idx], y[fit_idx], threshold)
    return np.asarray(incidence[score_idx] @ mask.astype(np.float64)).ravel()


def _safe_auc(y: np.ndarray, score: np.ndarray) -> float:
    return roc_auc_score(y, score) if len(np.unique(y)) == 2 else float("nan")


def public_clone_auc(incidence: sp.csr_matrix, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
                     seed: int) -> tuple[float, float, int]:
    """Held-out AUC of the public-clone score, the threshold chosen by inner CV, and the clones it keeps."""
    inner = StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed)
    mean_auc = {}
    for threshold in FISHER_THRESHOLDS:
        aucs = [_safe_auc(y[train_idx[b]], public_clone_scores(incidence, y, train_idx[a], train_idx[b], threshold))
                for a, b in inner.split(train_idx, y[train_idx])]
        mean_auc[threshold] = np.nanmean(aucs)
    best = max(FISHER_THRESHOLDS, key=lambda t: (mean_auc[t], -t))  # ties: the looser threshold
    score = public_clone_scores(incidence, y, train_idx, test_idx, best)
    n_clones = int(associated_clones(incidence[train_idx], y[train_idx], best).sum())
    return roc_auc_score(y[test_idx], score), best, n_clones


# --- the model -------------------------------------------------------------------------------------
def train_and_predict(store: Path, work: Path, split_csv: Path, fold: int, args: argparse.Namespace,
                      test_ids: set[str], seconds: dict) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Train on every fold but `fold`; predictions and top attended sequences of the held-out repertoires."""
    model_dir = work / f"model_fold{fold}"
    with timed(seconds, "train"):
        train(store, model_dir, config_path=args.config, split=split_csv, fold=fold, device="cpu", seed=args.seed,
              n_updates=args.updates, progress=False)
    saved = load_model(model_dir)
    subjects = (s for s in subjects_from_store(store, saved) if s.subject_id in test_ids)
    with timed(seconds, "predict"):
        predictions, attended = predict(saved, subjects, torch.device("cpu"), top=args.top)
    return predictions, attended, model_dir


def implanted_share(attended: pd.DataFrame, truth: pd.DataFrame, positives: set[str]) -> pd.Series:
    """Per held-out positive repertoire: the share of its top attended sequences that are implanted."""
    implanted = set(zip(truth["subject_id"], truth["junction_aa"]))
    top = attended[attended["repertoire_id"].isin(positives)]
    hit = [(r, a) in implanted for r, a in zip(top["repertoire_id"], top["junction_aa"])]
    return pd.Series(hit, index=top.index).groupby(top["repertoire_id"]).mean()


def updates_run(model_dir: Path) -> int:
    metrics = pd.read_csv(model_dir / "metrics.csv")
    return int(metrics["update"].max())


# --- one fold and the report -----------------------------------------------------------------------
def evaluate_fold(fold: int, split: pd.DataFrame, y: np.ndarray, features: dict, store: Path, work: Path,
                  truth: pd.DataFrame, args: argparse.Namespace) -> dict:
    seconds: dict = {}
    test_idx = np.flatnonzero(split["fold"].to_numpy() == fold)
    train_idx = np.flatnonzero(split["fold"].to_numpy() != fold)
    ids = split["subject_id"].to_numpy()
    predictions, attended, model_dir = train_and_predict(store, work, work / "split.csv", fold, args,
                                                          set(ids[test_idx]), seconds)
    truth_of = dict(zip(ids, y))
    model_auc = roc_auc_score([truth_of[s] for s in predictions["subject_id"]], predictions["probability"])
    share = implanted_share(attended, truth, set(ids[test_idx][y[test_idx] == 1]))
    with timed(seconds, "kmer_lr"):
        kmer_auc, c = l1_logistic_auc(features["kmers"], y, train_idx, test_idx, args.seed)
    with timed(seconds, "public_clone"):
        clone_auc, threshold, n_clones = public_clone_auc(features["clones"], y, train_idx, test_idx, args.seed)
    n_updates = updates_run(model_dir)
    return {"fold": fold, "n_test": len(test_idx), "model_auc": model_auc, "kmer_l1_auc": kmer_auc, "kmer_l1_C": c,
            "public_clone_auc": clone_auc, "fisher_threshold": threshold, "associated_clones": n_clones,
            "top_implanted_mean": float(share.mean()), "top_implanted_min": float(share.min()),
            "train_s": seconds["train"], "updates": n_updates, "s_per_update": seconds["train"] / n_updates,
            "predict_s": seconds["predict"], "kmer_lr_s": seconds["kmer_lr"], "public_clone_s": seconds["public_clone"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repertoires", type=int, default=200)
    p.add_argument("--sequences", type=int, default=10_000, help="sequences per repertoire")
    p.add_argument("--witness-rate", type=float, default=0.001)
    p.add_argument("--motif", default="GR.DT", help="motif(s), comma-separated; '.' is a gap")
    p.add_argument("--public-clones", type=int, default=0)
    p.add_argument("--public-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the cohort, the split, training and inner CVs")
    p.add_argument("--updates", type=int, help="training updates (default: the package's)")
    p.add_argument("--config", help="training/model YAML passed to train (default: the package's defaults)")
    p.add_argument("--threads", type=int, default=2, help="simulate/ingest workers and torch threads")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold", type=int, default=0, help="the held-out fold (without --all-folds)")
    p.add_argument("--all-folds", action="store_true", help="hold out each fold in turn (k trainings)")
    p.add_argument("--top", type=int, default=20, help="attended sequences checked per positive repertoire")
    p.add_argument("--clone-key", choices=("aa_vj", "aa"), default="aa_vj")
    p.add_argument("--keep", type=Path, help="work folder to keep (and reuse the cohort from)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    return p.parse_args(argv)


def report(settings: SimulationSettings, seconds: dict, rows: list[dict]) -> dict:
    table = pd.DataFrame(rows)
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
    seconds: dict = {}
    with tempfile.TemporaryDirectory(prefix="accuracy.") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cohort, store_path = cohort_and_store(settings, work, args.threads, seconds)
        truth = pd.read_csv(cohort / "truth" / "implanted.tsv", sep="\t", dtype=str)
        with RepertoireStore(store_path) as store, timed(seconds, "features"):
            label = store.label(LABEL)
            assert str(label.classes[1]) == "1", f"positive class is not '1': {label.classes}"
            y = label.values.astype(int)
            split = stratified_split(store.subject_ids, y, args.folds, args.seed)
            features = {"kmers": kmer_frequencies(store), "clones": clone_incidence(store, args.clone_key)}
        split.to_csv(work / "split.csv", index=False)
        folds = range(args.folds) if args.all_folds else [args.fold]
        rows = [evaluate_fold(k, split, y, features, store_path, work, truth, args) for k in folds]
        result = report(settings, seconds, rows)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
