"""Filling the clone memory: the public clones that the public-clone test associates with positives.

The test (`deeprc_hopfield.public_clones`) is checked first: fitted on the fitting repertoires, it
must reach `clone_memory_min_auc` in inner cross-validation there and, with the clones it finds, on
the validation repertoires. The clones stored are those it then finds on all training repertoires
(fitting and validation, as the baseline does): a clone that few patients carry needs every carrier
to pass. The held-out fold is never read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from deeprc_hopfield.encoding import decode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.public_clones import (clone_incidence, fit_public_clones, repertoire_clones, repertoire_keys,
                                           resolve_wildcards, v_codes)
from deeprc_hopfield.sampling import RepertoireCache
from deeprc_hopfield.training.config import TrainingConfig

log = logging.getLogger(__name__)


@dataclass
class MemoryFit:
    """What training stores in the clone memory and how it starts.

    clones: (CDR3, V index; -1 = unknown) of each stored clone; carried: float (n_store,), the
    distinct stored clones of each fitting repertoire as the test found them without it (inner
    CV; 0 elsewhere); validation_carried: the same, counted, for the validation repertoires;
    weight, intercept: a class-balanced logistic regression of the label on log1p(carried) over
    the fitting repertoires (the memory's evidence weight and the first task's bias to start from).
    """

    clones: list[tuple[str, int]]
    carried: np.ndarray
    validation_carried: np.ndarray
    weight: float
    intercept: float

    def names(self, v_genes: list[str]) -> list[str]:
        """'CDR3 V-gene' (or the CDR3 alone where the V gene is unknown) of each clone."""
        return clone_names(self.clones, v_genes)


def clone_names(clones: list[tuple[str, int]], v_genes: list[str]) -> list[str]:
    """'CDR3 V-gene' (or the CDR3 alone where the V gene is unknown) of each (CDR3, V index) clone."""
    return [f"{junction} {v_genes[v]}" if v >= 0 else junction for junction, v in clones]


def fit_clone_memory(cache: RepertoireCache, labels: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray,
                     config: TrainingConfig, v_genes: list[str]) -> MemoryFit | None:
    """The clone memory of a binary task with store-wide `labels`; None when the cohort shows no such signal."""
    started = time.perf_counter()
    train_idx = np.sort(np.concatenate((fit_idx, val_idx)))
    # each repertoire's distinct clones, a CDR3 without a V call resolved over the training repertoires
    sets = [repertoire_clones(cache[int(i)], v_genes) for i in train_idx]
    keys = dict(zip(train_idx.tolist(), resolve_wildcards(sets)))
    checked = _clone_test(keys, labels, fit_idx, config.seed)
    if checked is None:
        return None
    test, stored = checked
    validation_auc = _carried_auc([keys[int(i)] for i in val_idx], stored, labels[val_idx])
    if min(test.inner_auc, validation_auc) < config.clone_memory_min_auc or len(stored) == 0:
        log.info("clone memory: left empty; the public-clone test reaches AUC %.2f in inner CV on the fitting "
                 "repertoires and %.2f on the validation ones (needs %.2f on both)", test.inner_auc,
                 validation_auc, config.clone_memory_min_auc)
        return None
    final = _clone_test(keys, labels, train_idx, config.seed)
    stored = final[1] if final is not None and len(final[1]) else stored
    # what training sees: each fitting repertoire's clones as the test found them without it (inner CV);
    # counted with the clones chosen on it, its positives would all look like carriers
    carried = np.zeros(len(labels))
    carried[fit_idx] = test.out_of_fold
    validation_carried = np.array([len(np.intersect1d(keys[int(i)], stored, assume_unique=True)) for i in val_idx],
                                  dtype=np.float64)
    clones = _clones(cache, keys, train_idx, stored, v_genes)
    weight, intercept = evidence_regression(carried[fit_idx], labels[fit_idx])
    named = clone_names(clones, v_genes)
    log.info("clone memory: %d public clones (p < %g; AUC %.2f in inner CV, %.2f on validation) in %.1f s: %s",
             len(clones), final[0].threshold if final else test.threshold, test.inner_auc, validation_auc,
             time.perf_counter() - started, ", ".join(named[:10]) + (" ..." if len(named) > 10 else ""))
    log.info("clone memory: evidence weight starts at %.2f per log1p(clone carried)", weight)
    return MemoryFit(clones, carried, validation_carried, weight, intercept)


def _clone_test(keys: dict[int, np.ndarray], labels: np.ndarray, indices: np.ndarray, seed: int) -> tuple | None:
    """The public-clone test fitted on the repertoires at `indices` (their distinct clone `keys`) and
    the keys of the clones it associates; None when no clone is shared or a class is too small."""
    incidence, shared = clone_incidence([keys[int(i)] for i in indices])
    if incidence.shape[1] == 0:
        return None
    try:
        test = fit_public_clones(incidence, labels[indices], seed)
    except DeepRCError as exc:
        log.info("clone memory: left empty (%s)", exc)
        return None
    return test, shared[test.associated]


def _clones(cache: RepertoireCache, keys: dict[int, np.ndarray], indices: np.ndarray,
            stored: np.ndarray, v_genes: list[str]) -> list[tuple[str, int]]:
    """(CDR3, V index) of every stored key, read from the repertoires at `indices` that carry them (a
    clone with a V call from a sequence that has it, one without from a sequence that has none)."""
    found: dict[int, tuple[str, int]] = {}
    for i in indices:
        if len(found) == len(stored):
            break
        if not np.isin(stored, keys[int(i)], assume_unique=True).any():
            continue
        rep = cache[int(i)]
        rep_keys = repertoire_keys(rep, v_codes(rep, v_genes))
        hit = np.flatnonzero(np.isin(rep_keys, stored))
        carriers = rep.subset(hit)
        found.update(zip(rep_keys[hit].tolist(), zip(decode(carriers.codes, carriers.lengths),
                                                     carriers.v_index.astype(int).tolist())))
    return sorted(set(found.values()))


def evidence_regression(carried: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(weight, intercept) of a class-balanced logistic regression of the label on log1p(`carried`), so
    that the clones explain the positives from the first update and the CNN is not pushed to
    memorise them one by one."""
    fit = LogisticRegression(C=1.0, class_weight="balanced").fit(np.log1p(carried)[:, None], labels)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def carried_auc(carried: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of clones-carried counts; 0.5 when they or the labels do not vary."""
    if np.ptp(carried) == 0 or len(np.unique(labels)) < 2:
        return 0.5
    return float(roc_auc_score(labels, carried))


def _carried_auc(keys: list[np.ndarray], stored: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of the number of distinct `stored` clones among each repertoire's distinct clone `keys`."""
    return carried_auc(np.array([len(np.intersect1d(k, stored, assume_unique=True)) for k in keys]), labels)
