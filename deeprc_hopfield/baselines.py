"""Simple baselines on the same cross-validation folds as the model (`deeprc-hopfield baselines`).

* ``kmer``: L1-penalised logistic regression on the 3-mer frequencies of each repertoire (every
  distinct sequence counted once, its CDR3 core only: `deeprc_hopfield.cdr3`; frequencies
  standardised on the training repertoires). The penalty C is chosen by an inner stratified
  cross-validation (ROC AUC) inside the training folds. The simple baseline that Kanduri et al.
  2022 found hard to beat.
* ``public_clones``: Emerson et al. 2017, :class:`deeprc_hopfield.public_clones.PublicCloneTest`. What
  makes one clone (the CDR3 core with its V family, its V gene or alone; exact or within one
  substitution: `deeprc_hopfield.clone_rules`) is chosen by inner cross-validation on the training
  repertoires of each fold, as for the model's clone memory, and so is leaving out chance-public clones
  (generation probability above a cutoff, OLGA). On the training repertoires each clone gets a one-sided
  Fisher's exact test of enrichment in the positives; the clones with p below a threshold (chosen
  by inner cross-validation) are *associated*. A repertoire's score is the number of associated
  clones it carries (not divided by its size), its probability a logistic fit of the inner
  out-of-fold scores.

For every outer fold K, both are fitted on the repertoires whose fold is not K only, then score
fold K: no label of fold K reaches a fit, and no clone that only fold K holds is a candidate (at
radius 1, a clone of fold K would otherwise count the training repertoires near it). The clones are
collected once for the whole cohort, label-free: only those carried by enough repertoires to reach
significance in some fit are kept, and a CDR3 without a V call is resolved to the clones of its core
that the cohort holds with one (the clone memory resolves it among its training repertoires).
Binary labels only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deeprc_hopfield.errors import DeepRCError, InnerFoldsError
from deeprc_hopfield.interrupts import raise_if_interrupted
from deeprc_hopfield.metadata import Label
from deeprc_hopfield.progress import logged
from deeprc_hopfield.cdr3 import ANCHOR, core_bounds
from deeprc_hopfield.clone_rules import (CloneRule, CohortClones, RuleChoice, choose_clone_rule, clone_rules,
                                         cohort_clones, pgen_for)
from deeprc_hopfield.public_clones import (CLONE_INNER_FOLDS, P_THRESHOLDS, PGEN_LIMIT, FitCandidates, groups_at,
                                           inner_cv, min_carriers, most_inner_folds, positive_rows, row_indices)
from deeprc_hopfield.shared_clones import SharedClones, StoredClones
from deeprc_hopfield.split import Split, choose_label
from deeprc_hopfield.store import RepertoireStore, StoreRepertoires

log = logging.getLogger(__name__)

METHODS = ("kmer", "public_clones")
K = 3
N_KMERS = 20 ** K
KMER_BLOCK = 1 << 22  # residues counted at once by kmer_frequencies (~250 MB)
#: Inverse L1 penalties tried by the inner cross-validation of the k-mer baseline.
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass
class CollectedClones:
    """Every rule's clones of a cohort, collected and held (:class:`shared_clones.StoredClones` reads them from a
    clones file instead)."""

    clones: list[CohortClones]

    @property
    def rules(self) -> list[CloneRule]:
        return [c.rule for c in self.clones]

    def held_by(self, holders: np.ndarray, rows: np.ndarray, rules: Sequence[CloneRule] | None = None
                ) -> Iterator[CohortClones]:
        """Each rule's clones (of `rules`, default all) that one of the repertoires `holders` holds itself, for the
        repertoires `rows`."""
        rows = row_indices(rows)
        for rule in self.rules if rules is None else rules:
            held = next(c for c in self.clones if c.rule == rule).held_by(holders)
            yield held if np.array_equal(rows, np.arange(held.incidence.shape[0])) else held.rows(rows)


@dataclass
class CohortFeatures:
    """What the baselines need of a cohort, read from the store in one pass.

    kmers: float64 (n_repertoires, 8000) 3-mer frequencies; clones: the clone incidence of each clone
    rule (`clone_rules.CohortClones`; held, or read from a clones file as asked for), only clones carried by at
    least two repertoires (a clone seen
    once can never be significant; with fold fits, by as many positive repertoires as some fit needs);
    y: int64 (n_repertoires,) class codes; classes: the label's two
    class names; groups: each repertoire's group (e.g. its donor; None: each its own), kept whole in the
    baselines' inner folds.
    """

    subject_ids: list[str]
    store_path: Path
    v_genes: list[str]
    y: np.ndarray
    classes: list[str]
    kmers: np.ndarray | None
    clones: CollectedClones | StoredClones | None
    groups: np.ndarray | None = None


# --- features ------------------------------------------------------------------------------------
def kmer_frequencies(codes: np.ndarray, lengths: np.ndarray, k: int = K, trim: int = ANCHOR,
                     block: int = KMER_BLOCK) -> np.ndarray:
    """Frequencies of the 20^k overlapping k-mers of a repertoire's CDR3 cores (each sequence counted
    once; `trim` residues left out at each end: :func:`deeprc_hopfield.cdr3.core_bounds`), counted about
    `block` residues at a time (whole sequences; ~60 bytes a residue while counting, so a repertoire of
    millions of sequences is not counted at once).

    Parameters
    ----------
    codes
        uint8 (n_residues,), residue codes 1..20 of all sequences concatenated.
    lengths
        (n_sequences,) sequence lengths.

    Returns
    -------
    float64 (20^k,), summing to 1 (all zeros when no core has k residues).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    counts = np.zeros(20 ** k, dtype=np.int64)
    first = 0
    while first < len(lengths):  # a k-mer never crosses a sequence's end, so blocks of whole sequences add up
        last = max(first + 1, int(np.searchsorted(ends, ends[first] - lengths[first] + block, side="right")))
        start, stop = ends[first] - lengths[first], ends[last - 1]
        counts += _kmer_counts(codes[start:stop], lengths[first:last], k, trim)
        first = last
    total = counts.sum()
    return counts / total if total > 0 else counts.astype(np.float64)


def _kmer_counts(codes: np.ndarray, lengths: np.ndarray, k: int, trim: int) -> np.ndarray:
    """Counts of the 20^k k-mers of these sequences' cores (int64), read at the positions where a k-mer starts
    and ends in its core only (not a pass over every residue)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    first, core = core_bounds(lengths, trim)
    fits = np.maximum(core - k + 1, 0)  # k-mers of each core
    core_starts = np.cumsum(lengths) - lengths + first  # flat position of each core's first residue
    at = np.repeat(core_starts - (np.cumsum(fits) - fits), fits) + np.arange(int(fits.sum()), dtype=np.int64)
    index = codes[at].astype(np.int64) - 1  # residue codes 1..20 -> 0..19
    for offset in range(1, k):
        index = index * 20 + (codes[at + offset].astype(np.int64) - 1)
    return np.bincount(index, minlength=20 ** k)


def read_features(store_path: str | Path, label_column: str | None, methods: tuple[str, ...],
                  rules: tuple[CloneRule, ...] | None = None,
                  fits: Callable[[list[str]], list[np.ndarray]] | None = None,
                  seed: int = 0, workers: int = 1, shared: tuple[str | Path, Split] | None = None,
                  groups: Callable[[list[str]], np.ndarray | None] | None = None) -> CohortFeatures:
    """Read every repertoire of a store once and build the features of the requested methods (the clone
    incidence of each of `rules`, default every rule).

    `fits(subject_ids)`: the training rows (masks or indices) the public-clone test will be fitted
    on, seeded by `seed`; then only clones that it could find in one of them are collected
    (`public_clones.min_carriers` positive carriers in the cohort, at least those of any fit's training
    rows; at radius 1 only those below the test's loosest p in one of its fits, `public_clones.FitCandidates`),
    which bounds memory on large cohorts and changes no result. `workers`: threads reading ahead (the same result).
    `groups(subject_ids)`: each repertoire's group (e.g. its donor; None: none), kept whole in the fits' inner folds.
    `shared`: (a clones file of this store, the split it was made for: `deeprc-hopfield clones`), where those
    clones are read if it holds them.
    """
    with RepertoireStore(store_path) as store, contextlib.ExitStack() as stack:
        label = _binary_label(store, label_column)
        file = (stack.enter_context(SharedClones.open(shared[0], store, label.name, seed, shared[1]))
                if "public_clones" in methods and shared is not None and fits else None)  # refused before any work
        y, subjects = np.asarray(label.values, dtype=np.int64), list(store.subject_ids)
        repertoires = StoreRepertoires(store)
        counted = logged(repertoires, log, "kmer: counting 3-mers")  # ~2 min at 786 x 200,000
        kmers = [kmer_frequencies(rep.codes, rep.lengths) for rep in counted] if "kmer" in methods else []
        parts = fits(subjects) if fits else []
        grouped = groups(subjects) if groups else None
        fewest = min((min_carriers(y[rows], seed, groups=groups_at(grouped, rows))
                      for rows in parts), default=2)
        clones = file.source(np.arange(len(store)), rules or clone_rules()) if file is not None else None
        read = clones is not None
        if "public_clones" in methods and clones is None:
            clones = CollectedClones(cohort_clones(repertoires, store.v_genes, rules or clone_rules(),
                                                   min_carriers=fewest, positives=positive_rows(y) if fits else None,
                                                   candidates=FitCandidates(y, seed, within=parts, groups=grouped)
                                                   if fits else None,
                                                   workers=workers))
        v_genes = list(store.v_genes)
    if clones is not None and fewest > 2:
        log.info("public clones: these fits use only clones carried by %d positive repertoires or more (fewer cannot "
                 "reach p < %g in any of them)%s", fewest, max(P_THRESHOLDS),
                 "; read from the clones file" if read else ", the only ones collected")
    return CohortFeatures(subjects, Path(store_path), v_genes, y, list(label.classes),
                          np.vstack(kmers) if kmers else None, clones, grouped)


def fit_public_clone_baseline(features: CohortFeatures, train: np.ndarray, seed: int, use_pgen: bool = True,
                              threads: int = 1, rules: Sequence[CloneRule] | None = None,
                              inner_folds: int = CLONE_INNER_FOLDS, pgen_limit: int | None = PGEN_LIMIT,
                              scored: np.ndarray | None = None) -> RuleChoice:
    """The public-clone test of the rule (and pgen cutoff) chosen by inner CV (`inner_folds` folds) on the
    repertoires at `train` (store indices): its `test` scores the repertoires `scored` (store indices; default
    the whole cohort) by the rows of ``choice.clones.incidence``, in that order. Its candidate clones are those a
    repertoire at `train` holds itself, as the clone memory collects them from its training repertoires. `rules`:
    choose among these only (default: every rule of `features`); `pgen_limit`: the most candidate clones a fit asks
    pgen for."""
    train = row_indices(train)
    rules = [rule for rule in features.clones.rules if rules is None or rule in rules]
    with RepertoireStore(features.store_path) as store:  # the pgen filter reads candidate clones' sequences
        pgen = pgen_for(lambda row: store.repertoire(int(train[row])), features.v_genes, use_pgen, threads,
                        store.species)
        choice = choose_clone_rule(features.clones.held_by(train, train, rules), features.y[train], seed, pgen,
                                   inner_folds, expected=len(rules), pgen_limit=pgen_limit,
                                   groups=groups_at(features.groups, train))
        del pgen  # and the repertoires' keys it kept, before the scored rows' clones are read
    scored = np.arange(len(features.y)) if scored is None else row_indices(scored)
    return replace(choice, clones=next(features.clones.held_by(train, scored, [choice.rule])))


def _binary_label(store: RepertoireStore, label_column: str | None) -> Label:
    """The store's label that `label_column` names (see `split.choose_label`), refused unless binary."""
    label = choose_label(store, label_column)
    if label.kind != "binary":
        raise DeepRCError(f"the baselines need a binary label; '{label.name}' is {label.kind}", store.path)
    return label


# --- k-mer logistic regression ------------------------------------------------------------------
def _l1_logistic(seed: int) -> LogisticRegression:
    """An L1-penalised logistic regression (scikit-learn >= 1.8 spells the penalty `l1_ratio=1`)."""
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    penalty = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(solver="liblinear", max_iter=1000, random_state=seed, **penalty)


def fit_kmer(x: np.ndarray, y: np.ndarray, seed: int = 0, threads: int = 1,
             groups: np.ndarray | None = None) -> GridSearchCV:
    """L1 logistic regression on standardised 3-mer frequencies, C chosen by inner CV on (x, y) only (each of
    `groups` whole in one inner fold, where given).

    Returns the fitted search; its `predict_proba` scores new repertoires.
    """
    model = make_pipeline(VarianceThreshold(0.0), StandardScaler(), _l1_logistic(seed))  # drop k-mers never seen
    search = GridSearchCV(model, {"logisticregression__C": list(C_GRID)}, scoring="roc_auc",
                          cv=inner_cv(y, seed, groups=groups), n_jobs=threads, error_score=np.nan)
    return search.fit(x, y)


# --- cross-validation ----------------------------------------------------------------------------
def cross_validate(store_path: str | Path, split_path: str | Path, methods: tuple[str, ...] = METHODS,
                   label_column: str | None = None, seed: int = 0, threads: int = 1,
                   rules: tuple[CloneRule, ...] | None = None, use_pgen: bool = True,
                   pgen_limit: int | None = PGEN_LIMIT, clones: str | Path | None = None,
                   fold: int | None = None) -> dict[str, pd.DataFrame]:
    """Held-out predictions of each baseline: for every fold K (only `fold`, where given: one job a fold), fit on
    the other folds, score fold K.
    The public-clone test chooses among `rules` (default: every :func:`clone_rules.clone_rules`), with the
    pgen filter where `use_pgen` (asked for at most `pgen_limit` clones a fit); its clones are read from the
    clones file `clones` (`deeprc-hopfield clones`) where it holds them.

    A fold whose training part holds too few repertoires (or groups) of a class for the inner cross-validation is
    refused as `fold` alone would be: with `fold`, in one line; among every fold, logged and left out, the others
    scored (:func:`_scorable_folds`).

    Returns
    -------
    For each method, a table with columns `subject_id`, `fold`, `probability` (of the positive
    class), `true_label` (class name) and `score` (k-mer: the same probability; public clones:
    the number of associated clones carried), in store order (the rows of the folds scored only).
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise DeepRCError(f"unknown baseline method '{unknown[0] if unknown else ''}' "
                          f"(choose from {', '.join(METHODS)})")
    split = Split.from_options(split_path, fold) if fold is not None else Split.read(split_path)
    scored = _scorable_folds(store_path, label_column, split, fold)
    features = read_features(store_path, label_column, methods, rules=rules,
                             fits=lambda subjects: _training_rows(split, subjects, scored), seed=seed,
                             workers=threads, shared=(clones, split) if clones is not None else None,
                             groups=split.groups_of)
    folds = split.fold_of(features.subject_ids)
    y = features.y
    out = {m: pd.DataFrame({"subject_id": features.subject_ids, "fold": folds, "probability": np.nan,
                            "true_label": np.asarray(features.classes, dtype=object)[y], "score": np.nan})
           for m in methods}
    for k in scored:
        train, test = folds != k, folds == k
        if "kmer" in methods:
            search = fit_kmer(features.kmers[train], y[train], seed, threads,
                              groups_at(features.groups, train))
            prob = search.predict_proba(features.kmers[test])[:, 1]
            out["kmer"].loc[test, ["probability", "score"]] = np.column_stack([prob, prob])
            log.info("kmer, fold %d: C = %g (inner AUC %.3f)", k, search.best_params_["logisticregression__C"],
                     search.best_score_)
        if "public_clones" in methods:
            choice = fit_public_clone_baseline(features, train, seed, use_pgen, threads, pgen_limit=pgen_limit,
                                               scored=np.flatnonzero(test))  # the chosen rule's clones of fold k only
            model, held_out = choice.test, choice.clones.incidence
            out["public_clones"].loc[test, "probability"] = model.predict_proba(held_out)[:, 1]
            out["public_clones"].loc[test, "score"] = model.decision_function(held_out)
            log.info("public clones, fold %d: %s, %d associated clones at p < %g", k, choice.rule,
                     len(model.associated_), model.threshold_)
            del choice, model, held_out  # not held through the next fold's rule choice
        raise_if_interrupted()
    kept = np.isin(folds, scored)
    return {m: table if kept.all() else table[kept].reset_index(drop=True) for m, table in out.items()}


def _scorable_folds(store_path: str | Path, label_column: str | None, split: Split, fold: int | None) -> list[int]:
    """The folds to score (`fold`, else every fold of `split`) but those whose training part (the other folds) holds
    too few repertoires, or groups, of a class for the baselines' inner cross-validation: each of those is logged
    and left out, as its own job (`--fold`) refuses it, so that one thin fold does not stop the others; where none
    is left, the first one's refusal is raised (one line). Read before the cohort, which a refused fold never needs."""
    with RepertoireStore(store_path) as store:
        y, subjects = np.asarray(_binary_label(store, label_column).values, dtype=np.int64), list(store.subject_ids)
    of_fold, groups = split.fold_of(subjects), split.groups_of(subjects)
    asked, refused = split.folds if fold is None else [fold], {}
    for k in asked:
        try:
            most_inner_folds(y[of_fold != k], groups_at(groups, of_fold != k))
        except InnerFoldsError as exc:
            refused[k] = InnerFoldsError(f"fold {k}, its training part (the other folds): {exc.message}", split.path)
    scorable = [k for k in asked if k not in refused]
    if not scorable:
        raise next(iter(refused.values()))
    for k, exc in refused.items():
        log.warning("%s; not scored: its %d repertoires are left out of the predictions", exc,
                    int(np.sum(of_fold == k)))
    return scorable


def _training_rows(split: Split, subjects: list[str], folds: Sequence[int] | None = None) -> list[np.ndarray]:
    """The training rows (bool masks over `subjects`) of each fold of `split` (of `folds`, where given)."""
    fold = split.fold_of(subjects)
    return [fold != k for k in (np.unique(fold) if folds is None else folds)]


def is_baselines_folder(folder: Path) -> bool:
    """Whether `folder` holds only predictions `baselines` writes (`<method>_predictions.csv`): how an
    output folder written before output markers is known (see :func:`deeprc_hopfield.io.check_output`)."""
    names = {p.name for p in folder.iterdir()}
    return bool(names) and names <= {f"{method}_predictions.csv" for method in METHODS}
