"""Using a reference of known receptors: whether it helps, at which match radius, and how it starts.

Each training repertoire's distinct reference receptors matched are counted once, over the whole
repertoire, exactly and within one substitution (`deeprc_hopfield.neighbours`). The radius is chosen
on the fitting repertoires by the ROC AUC of the counts, and judged by inner cross-validation there
(chosen on each inner training part, scored on its inner test part) and on the validation
repertoires (chosen on all fitting ones). The reference is used only when both reach
`reference_min_auc`; otherwise the model is built without it, so an irrelevant reference changes
nothing. The held-out fold is never read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from deeprc_hopfield.encoding import encode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.neighbours import ReceptorIndex
from deeprc_hopfield.public_clones import groups_at, inner_cv, name_codes
from deeprc_hopfield.reference import Reference
from deeprc_hopfield.sampling import RepertoireCache
from deeprc_hopfield.training.clone_memory import carried_auc, evidence_regression
from deeprc_hopfield.training.config import TrainingConfig

log = logging.getLogger(__name__)

RADII = (0, 1)  # match radii compared: exact, or one substitution (same length)


@dataclass
class ReferenceFit:
    """What training decided about a reference.

    radius: the match radius chosen on the fitting repertoires; carried: float (n_store,), the
    distinct receptors each training repertoire matches at that radius (0 elsewhere); radius_auc: the
    ROC AUC of the counts on the fitting repertoires per radius; inner_auc, validation_auc: how the
    choice fares in inner CV and on the validation repertoires; used: whether the model uses it;
    weight, intercept: a class-balanced logistic regression of the label on log1p(carried) over the
    fitting repertoires (the evidence weight and the first task's bias to start from).
    """

    reference: Reference
    radius: int
    carried: np.ndarray
    radius_auc: dict[int, float]
    inner_auc: float
    validation_auc: float
    used: bool
    weight: float = 0.0
    intercept: float = 0.0

    def summary(self) -> dict:
        """What the model's `config.json` records (JSON types)."""
        return {**self.reference.provenance(), "used": self.used, "radius": self.radius,
                "radius_auc": {str(r): round(a, 4) for r, a in self.radius_auc.items()},
                "inner_auc": round(self.inner_auc, 4), "validation_auc": round(self.validation_auc, 4)}

    def receptors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat residue codes, lengths and V family codes of the reference's receptors (the model's state)."""
        table = self.reference.table
        codes, lengths = encode(table["junction_aa"].tolist())
        return codes, lengths, name_codes(table["v_call"].to_numpy())


def reference_index(reference: Reference, radius: int) -> ReceptorIndex:
    """The match index of a reference's receptors at `radius`."""
    table = reference.table
    return ReceptorIndex.from_sequences(table["junction_aa"].tolist(), name_codes(table["v_call"].to_numpy()), radius)


def matched_receptors(index: ReceptorIndex, repertoire, v_genes: list[str]) -> dict[int, int]:
    """Distinct receptors of `index` (radius 1) a store `Repertoire` matches, per radius of :data:`RADII`."""
    _, ref, distance = index.pairs_of(repertoire, v_genes)
    return {radius: len(np.unique(ref[distance <= radius])) for radius in RADII}


def _best_radius(counts: dict[int, np.ndarray], labels: np.ndarray) -> int:
    """The radius whose counts rank `labels` best (the smaller on a tie)."""
    return max(RADII, key=lambda r: (carried_auc(counts[r], labels), -r))


def _inner_auc(counts: dict[int, np.ndarray], labels: np.ndarray, seed: int,
               groups: np.ndarray | None = None) -> float:
    """Mean ROC AUC, over inner folds of the fitting repertoires (each of `groups` whole), of the radius chosen on
    the rest."""
    try:
        folds = inner_cv(labels, seed, groups=groups)
    except DeepRCError:
        return 0.5
    aucs = []
    for train, test in folds.split(np.zeros(len(labels)), labels):
        radius = _best_radius({r: c[train] for r, c in counts.items()}, labels[train])
        aucs.append(carried_auc(counts[radius][test], labels[test]))
    return float(np.mean(aucs))


def fit_reference(cache: RepertoireCache, labels: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray,
                  config: TrainingConfig, reference: Reference, v_genes: list[str],
                  groups: np.ndarray | None = None) -> ReferenceFit:
    """Decide whether and how the model uses `reference` for a binary task with store-wide `labels` (`groups`,
    store-wide: kept whole in the inner folds)."""
    started = time.perf_counter()
    index = reference_index(reference, max(RADII))
    train_idx = np.concatenate((fit_idx, val_idx))
    matched = [matched_receptors(index, cache[int(i)], v_genes) for i in train_idx]
    counts = {r: np.zeros(len(labels)) for r in RADII}
    for i, found in zip(train_idx, matched):
        for r in RADII:
            counts[r][i] = found[r]
    fitting = {r: c[fit_idx] for r, c in counts.items()}
    radius_auc = {r: carried_auc(fitting[r], labels[fit_idx]) for r in RADII}
    radius = _best_radius(fitting, labels[fit_idx])
    inner = _inner_auc(fitting, labels[fit_idx], config.seed, groups_at(groups, fit_idx))
    validation = carried_auc(counts[radius][val_idx], labels[val_idx])
    used = min(inner, validation) >= config.reference_min_auc
    carried = np.zeros(len(labels))
    carried[train_idx] = counts[radius][train_idx]
    fit = ReferenceFit(reference, radius, carried, radius_auc, inner, validation, used)
    what = (f"{reference.name}: matched receptors per fitting repertoire, positives {_mean(fitting[radius], labels[fit_idx], 1)}"
            f" / negatives {_mean(fitting[radius], labels[fit_idx], 0)} at radius {radius}; AUC by radius "
            + ", ".join(f"{r}: {a:.2f}" for r, a in radius_auc.items())
            + f"; {inner:.2f} in inner CV, {validation:.2f} on validation ({time.perf_counter() - started:.1f} s)")
    if not used:
        log.info("reference not used (needs AUC %.2f in inner CV and on validation): %s",
                 config.reference_min_auc, what)
        return fit
    fit.weight, fit.intercept = evidence_regression(carried[fit_idx], labels[fit_idx])
    log.info("reference used: %s; evidence weight starts at %.2f per log1p(receptor matched)", what, fit.weight)
    return fit


def _mean(counts: np.ndarray, labels: np.ndarray, value: int) -> str:
    chosen = counts[labels == value]
    return f"{chosen.mean():.1f}" if len(chosen) else "-"
