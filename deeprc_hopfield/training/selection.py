"""Model selection on the validation repertoires: the best update, then the trained model or its clone memory alone.

Where the rest of the model has nothing to add to the stored clones (a cohort whose only signal is
public clones), training fits noise of the fitting repertoires and the held-out ranking gets worse
than counting clones. The memory alone is kept unless the trained model ranks the validation
repertoires better (a tie goes to the simpler model; the loss would favour the more confident
one). Only validation repertoires judge; the held-out fold is never read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from deeprc_hopfield.model import RepertoireClassifier, SequenceBags, TaskSpec
from deeprc_hopfield.model.heads import balanced_loss
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


def keep_memory_alone(model: RepertoireClassifier, memory: MemoryFit, progress: Progress,
                      validation_labels: np.ndarray, sample: SequenceBags, chunk_size: int) -> bool:
    """Choose between the trained `model` (at its best update) and its clone memory alone by validation
    ROC AUC; when the memory wins, make the model's output the memory's regression alone."""
    alone = carried_auc(memory.validation_carried, validation_labels)
    trained = progress.best_row().get("val_auc", math.nan)
    if not alone >= trained:  # a NaN (no evaluation) keeps the trained model
        return False
    model.use_memory_alone(memory.weight, memory.intercept, sample, chunk_size)
    log.info("clone memory alone: validation AUC %.3f, at least the trained model's %.3f; its regression on "
             "the clones carried is the output (attention bonus now %s)", alone, trained,
             ", ".join(f"{b:.1f}" for b in model.memory.bonus.tolist()))
    return True
