"""Simple baselines on the same cross-validation folds as the model (`deeprc-hopfield baselines`).

* ``kmer``: L1-penalised logistic regression on the 3-mer frequencies of each repertoire (every
  distinct sequence counted once; frequencies standardised on the training repertoires). The
  penalty C is chosen by an inner stratified cross-validation (ROC AUC) inside the training folds.
  The simple baseline that Kanduri et al. 2022 found hard to beat.
* ``public_clones``: Emerson et al. 2017. A clone is a CDR3 (`junction_aa`) with its V gene (a
  sequence without a V gene is keyed by its CDR3 and 'no V'). On the training repertoires each clone
  gets a one-sided Fisher's exact test of enrichment in the positives; the clones with p below a
  threshold are *associated*. A repertoire's score is the number of associated clones it carries
  (not divided by its size). The threshold is chosen from :data:`P_THRESHOLDS` by inner
  cross-validation (ROC AUC), and the score is turned into a probability by a logistic fit of the
  inner out-of-fold scores (as a share of the associated clones), so 0.5 is a usable threshold.

For every outer fold K, both are fitted on the repertoires whose fold is not K only, then score
fold K: no label of fold K reaches a fit. (One label-free step sees the whole cohort: only clones
carried by two repertoires or more are kept, since a clone seen once can never reach significance.)
Binary labels only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from scipy import sparse
from scipy.stats import hypergeom
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deeprc_hopfield.encoding import decode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.interrupts import raise_if_interrupted
from deeprc_hopfield.metadata import Label
from deeprc_hopfield.split import choose_label, read_split
from deeprc_hopfield.store import RepertoireStore

log = logging.getLogger(__name__)

METHODS = ("kmer", "public_clones")
K = 3
N_KMERS = 20 ** K
#: Inverse L1 penalties tried by the inner cross-validation of the k-mer baseline.
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
#: Fisher p-value thresholds tried by the inner cross-validation of the public-clone baseline.
P_THRESHOLDS = (1e-2, 1e-3, 1e-4, 1e-5)
INNER_FOLDS = 5


@dataclass
class CohortFeatures:
    """What the baselines need of a cohort, read from the store in one pass.

    kmers: float64 (n_repertoires, 8000) 3-mer frequencies; clones: bool CSR (n_repertoires,
    n_shared_clones), only clones carried by at least two repertoires (a clone seen once can never
    be significant); y: int64 (n_repertoires,) class codes; classes: the label's two class names.
    """

    subject_ids: list[str]
    y: np.ndarray
    classes: list[str]
    kmers: np.ndarray | None
    clones: sparse.csr_matrix | None


# --- features ------------------------------------------------------------------------------------
def kmer_frequencies(codes: np.ndarray, lengths: np.ndarray, k: int = K) -> np.ndarray:
    """Frequencies of the 20^k overlapping k-mers of a repertoire (each sequence counted once).

    Parameters
    ----------
    codes
        uint8 (n_residues,), residue codes 1..20 of all sequences concatenated.
    lengths
        (n_sequences,) sequence lengths.

    Returns
    -------
    float64 (20^k,), summing to 1 (all zeros when no sequence has k residues).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    residues = np.asarray(codes, dtype=np.int64) - 1  # 0..19
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(residues)) - starts  # position of each residue within its sequence
    valid = position <= np.repeat(lengths, lengths) - k  # a k-mer starts here and ends in the same sequence
    index = np.zeros(len(residues) - k + 1 if len(residues) >= k else 0, dtype=np.int64)
    for offset in range(k):
        index = index * 20 + residues[offset:len(residues) - k + 1 + offset]
    counts = np.bincount(index[valid[:len(index)]], minlength=20 ** k).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def clone_keys(codes: np.ndarray, lengths: np.ndarray, v_index: np.ndarray) -> np.ndarray:
    """Distinct 64-bit keys of the clones (CDR3 + V gene index; -1 = no V) of one repertoire."""
    frame = pd.DataFrame({"junction_aa": decode(codes, lengths), "v": np.asarray(v_index, dtype=np.int64)})
    return np.unique(pd.util.hash_pandas_object(frame, index=False).to_numpy())


def clone_incidence(keys: list[np.ndarray]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Repertoire-by-clone presence matrix of the clones shared by two repertoires or more, and
    their keys (one per column, sorted).

    `keys` holds each repertoire's distinct clone keys. Memory stays near one copy of all keys: the
    shared keys are found on one sorted copy, then each repertoire is looked up in them.
    """
    everything = np.concatenate(keys)
    everything.sort()
    shared = np.unique(everything[1:][everything[1:] == everything[:-1]])
    del everything
    rows, columns = [], []
    for i, k in enumerate(keys):
        position = np.minimum(np.searchsorted(shared, k), max(len(shared) - 1, 0))
        hit = shared[position] == k if len(shared) else np.zeros(len(k), dtype=bool)
        columns.append(position[hit])
        rows.append(np.full(int(hit.sum()), i, dtype=np.int64))
    row, column = np.concatenate(rows), np.concatenate(columns)
    matrix = sparse.csr_matrix((np.ones(len(row), dtype=bool), (row, column)), shape=(len(keys), len(shared)))
    return matrix, shared


def read_features(store_path: str | Path, label_column: str | None, methods: tuple[str, ...]) -> CohortFeatures:
    """Read every repertoire of a store once and build the features of the requested methods."""
    with RepertoireStore(store_path) as store:
        label = choose_label(store, label_column)
        _check_binary(label, store.path)
        kmers, keys = [], []
        for i in range(len(store)):
            rep = store.repertoire(i)
            if "kmer" in methods:
                kmers.append(kmer_frequencies(rep.codes, rep.lengths))
            if "public_clones" in methods:
                keys.append(clone_keys(rep.codes, rep.lengths, rep.v_index))
            raise_if_interrupted()
        subjects = list(store.subject_ids)
    return CohortFeatures(subjects, np.asarray(label.values, dtype=np.int64), list(label.classes),
                          np.vstack(kmers) if kmers else None, clone_incidence(keys)[0] if keys else None)


def _check_binary(label: Label, path: Path) -> None:
    if label.kind != "binary":
        raise DeepRCError(f"the baselines need a binary label; '{label.name}' is {label.kind}", path)


# --- k-mer logistic regression ------------------------------------------------------------------
def _inner_cv(y: np.ndarray, seed: int) -> StratifiedKFold:
    smallest = int(np.bincount(y, minlength=2).min())
    if smallest < 2:
        raise DeepRCError("a training part has fewer than 2 repertoires of a class: too few for inner "
                          "cross-validation; use fewer folds")
    return StratifiedKFold(n_splits=min(INNER_FOLDS, smallest), shuffle=True, random_state=seed)


def _l1_logistic(seed: int) -> LogisticRegression:
    """An L1-penalised logistic regression (scikit-learn >= 1.8 spells the penalty `l1_ratio=1`)."""
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    penalty = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(solver="liblinear", max_iter=1000, random_state=seed, **penalty)


def fit_kmer(x: np.ndarray, y: np.ndarray, seed: int = 0, threads: int = 1) -> GridSearchCV:
    """L1 logistic regression on standardised 3-mer frequencies, C chosen by inner CV on (x, y) only.

    Returns the fitted search; its `predict_proba` scores new repertoires.
    """
    model = make_pipeline(VarianceThreshold(0.0), StandardScaler(), _l1_logistic(seed))  # drop k-mers never seen
    search = GridSearchCV(model, {"logisticregression__C": list(C_GRID)}, scoring="roc_auc",
                          cv=_inner_cv(y, seed), n_jobs=threads, error_score=np.nan)
    return search.fit(x, y)


# --- public clones (Emerson 2017) ----------------------------------------------------------------
def fisher_enrichment(clones: sparse.csr_matrix, y: np.ndarray) -> np.ndarray:
    """One-sided Fisher's exact p-value of each clone's enrichment in the positive repertoires.

    p = P(X >= a) for X hypergeometric (population: the repertoires; successes: the positives;
    draws: the clone's carriers) and a the positive carriers. Shape (n_clones,).
    """
    carriers = np.asarray(clones.sum(axis=0)).ravel()
    positive = np.asarray(clones[y == 1].sum(axis=0)).ravel()
    return hypergeom.sf(positive - 1, len(y), int(y.sum()), carriers)


@dataclass
class PublicCloneModel:
    """Associated clones (column indices), and the logistic map from their share carried to a probability;
    `inner_auc` is the inner-CV ROC AUC of the chosen threshold and `out_of_fold` each training
    repertoire's number of associated clones at that threshold, chosen without it (inner CV)."""

    associated: np.ndarray
    threshold: float
    calibration: LogisticRegression | None
    base_rate: float
    inner_auc: float
    out_of_fold: np.ndarray

    def score(self, clones: sparse.csr_matrix) -> np.ndarray:
        """Number of associated clones each repertoire carries, shape (n,)."""
        return np.asarray(clones[:, self.associated].sum(axis=1)).ravel().astype(np.float64)

    def probability(self, clones: sparse.csr_matrix) -> np.ndarray:
        """Probability of the positive class, from the share of associated clones carried."""
        if self.calibration is None:
            return np.full(clones.shape[0], self.base_rate)
        share = self.score(clones) / max(len(self.associated), 1)
        return self.calibration.predict_proba(share[:, None])[:, 1]


def _associated(clones: sparse.csr_matrix, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fisher p-values of the clones that some training positive carries, and their columns."""
    present = np.flatnonzero(np.asarray(clones[y == 1].sum(axis=0)).ravel() > 0)
    return fisher_enrichment(clones[:, present], y), present


def fit_public_clones(clones: sparse.csr_matrix, y: np.ndarray, seed: int = 0) -> PublicCloneModel:
    """Choose the p threshold by inner CV (ROC AUC of the associated-clone count), then find the
    associated clones on all of (clones, y) and calibrate the score on the inner out-of-fold scores."""
    cv = _inner_cv(y, seed)
    shares = np.zeros((len(P_THRESHOLDS), len(y)))
    counts = np.zeros((len(P_THRESHOLDS), len(y)))
    for inner_train, inner_test in cv.split(np.zeros(len(y)), y):
        p, columns = _associated(clones[inner_train], y[inner_train])
        carried = clones[inner_test][:, columns]
        for t, threshold in enumerate(P_THRESHOLDS):
            chosen = p < threshold
            counts[t, inner_test] = np.asarray(carried[:, chosen].sum(axis=1)).ravel()
            shares[t, inner_test] = counts[t, inner_test] / max(int(chosen.sum()), 1)
    aucs = [roc_auc_score(y, s) if np.ptp(s) > 0 else 0.5 for s in shares]
    best = int(np.argmax(aucs))
    p, columns = _associated(clones, y)
    associated = columns[p < P_THRESHOLDS[best]]
    calibration = None
    if np.ptp(shares[best]) > 0:
        calibration = LogisticRegression(C=1e4).fit(shares[best][:, None], y)
    log.debug("public clones: inner AUC %s per threshold %s; %d associated clones at p < %g",
              np.round(aucs, 3).tolist(), P_THRESHOLDS, len(associated), P_THRESHOLDS[best])
    return PublicCloneModel(associated, P_THRESHOLDS[best], calibration, float(y.mean()), float(aucs[best]),
                            counts[best])


# --- cross-validation ----------------------------------------------------------------------------
def _fold_of(features: CohortFeatures, split_path: str | Path) -> np.ndarray:
    split = read_split(split_path)
    fold_of = dict(zip(split["subject_id"], split["fold"]))
    missing = [s for s in features.subject_ids if s not in fold_of]
    if missing:
        raise DeepRCError(f"subject '{missing[0]}' of the store is not in the split", split_path)
    return np.array([fold_of[s] for s in features.subject_ids], dtype=np.int64)


def cross_validate(store_path: str | Path, split_path: str | Path, methods: tuple[str, ...] = METHODS,
                   label_column: str | None = None, seed: int = 0, threads: int = 1) -> dict[str, pd.DataFrame]:
    """Held-out predictions of each baseline: for every fold K, fit on the other folds, score fold K.

    Returns
    -------
    For each method, a table with columns `subject_id`, `fold`, `probability` (of the positive
    class), `true_label` (class name) and `score` (k-mer: the same probability; public clones:
    the number of associated clones carried), in store order.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise DeepRCError(f"unknown baseline method '{unknown[0] if unknown else ''}' "
                          f"(choose from {', '.join(METHODS)})")
    features = read_features(store_path, label_column, methods)
    fold = _fold_of(features, split_path)
    y = features.y
    out = {m: pd.DataFrame({"subject_id": features.subject_ids, "fold": fold, "probability": np.nan,
                            "true_label": np.asarray(features.classes, dtype=object)[y], "score": np.nan})
           for m in methods}
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        if len(np.unique(y[train])) < 2:
            raise DeepRCError(f"the training part of fold {k} holds a single class; cannot fit a baseline", split_path)
        if "kmer" in methods:
            search = fit_kmer(features.kmers[train], y[train], seed, threads)
            prob = search.predict_proba(features.kmers[test])[:, 1]
            out["kmer"].loc[test, ["probability", "score"]] = np.column_stack([prob, prob])
            log.info("kmer, fold %d: C = %g (inner AUC %.3f)", k, search.best_params_["logisticregression__C"],
                     search.best_score_)
        if "public_clones" in methods:
            model = fit_public_clones(features.clones[train], y[train], seed)
            out["public_clones"].loc[test, "probability"] = model.probability(features.clones[test])
            out["public_clones"].loc[test, "score"] = model.score(features.clones[test])
            log.info("public clones, fold %d: %d associated clones at p < %g", k, len(model.associated),
                     model.threshold)
        raise_if_interrupted()
    return out
