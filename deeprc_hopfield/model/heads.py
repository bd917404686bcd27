"""Output network, losses and probabilities for one or several tasks at once.

Output shapes per task: binary (B,) logits, categorical (B, n_classes) logits, numeric (B,) values
in the label's units. Targets: binary float (B,) in {0, 1}, categorical long (B,) class codes,
numeric float (B,) in the label's units; a missing target (NaN, or -1 for a categorical code) is left
out of that task's loss.

Several tasks: a numeric task with `mean`/`scale` (set by training from the fitting repertoires) is
learnt in standard deviations, and `balanced_loss` puts every task on the scale of a binary one
before averaging, so that no task's units decide how much it counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deeprc_hopfield.model.config import TaskSpec
from deeprc_hopfield.model.embedding import _lecun_init


class OutputNetwork(nn.Module):
    """Self-normalising MLP with one output block per task.

    Input: pooled bag vectors (B, input_dim). Output: dict task name -> (B,) or (B, n_classes).
    `layers` hidden layers of `hidden` units with SELU (0 layers = one linear map). A numeric task
    with `mean`/`scale` has its unit in standard deviations and its output (float32) in the label's
    units: unit * scale + mean, so an untrained network starts near the label's mean.
    """

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], hidden: int = 32, layers: int = 1) -> None:
        super().__init__()
        self.tasks = list(tasks)
        blocks: list[nn.Module] = []
        width = input_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.SELU()]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.output = nn.Linear(width, sum(t.n_outputs for t in self.tasks))
        _lecun_init(self)

    def forward(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        # float32 under autocast too: the network is tiny, and bfloat16 rounds an energy feature of 8 by
        # 0.03, once per head, straight into the logit
        with torch.autocast(pooled.device.type, enabled=False):
            out = self.output(self.body(pooled.float()))  # (B, total outputs)
        result, start = {}, 0
        for task in self.tasks:
            block = out[:, start:start + task.n_outputs]
            start += task.n_outputs
            if task.kind == "categorical":
                result[task.name] = block
            elif task.kind == "numeric" and task.mean is not None:
                result[task.name] = block[:, 0].float() * task.scale + task.mean  # float32 under autocast too
            else:
                result[task.name] = block[:, 0]
        return result


def task_losses(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                tasks: Sequence[TaskSpec]) -> dict[str, torch.Tensor]:
    """Each task's mean loss over the rows with a target (scalar tensors, by task name).

    Binary: BCE with logits (pos_weight = w_positive / w_negative from class_weights); categorical:
    cross-entropy with class weights; numeric: mean squared error, in standard deviations of the
    fitting repertoires' labels when the task has `mean`/`scale` ((output - target) / scale), else in
    the label's units. Rows with a missing target are skipped; a task with no target in the batch has
    loss 0 (still attached to the graph).
    """
    losses = {}
    for task in tasks:
        out = outputs[task.name]
        target = targets[task.name].to(out.device)
        if task.kind == "categorical":
            target = target.long()
            weight = (torch.tensor(task.class_weights, device=out.device, dtype=out.dtype)
                      if task.class_weights else None)
            keep = target >= 0
            loss = (F.cross_entropy(out[keep], target[keep], weight=weight) if bool(keep.any())
                    else out.sum() * 0)
        else:
            target = target.to(out.dtype)
            keep = ~torch.isnan(target)
            if not bool(keep.any()):
                loss = out.sum() * 0
            elif task.kind == "binary":
                pos_weight = (torch.tensor(task.class_weights[1] / task.class_weights[0], device=out.device,
                                           dtype=out.dtype) if task.class_weights else None)
                loss = F.binary_cross_entropy_with_logits(out[keep], target[keep], pos_weight=pos_weight)
            elif task.scale is not None:
                loss = torch.mean(((out[keep] - target[keep]) / task.scale) ** 2)
            else:
                loss = F.mse_loss(out[keep], target[keep])
        losses[task.name] = loss
    if not losses:
        raise ValueError("task_loss needs at least one task")
    return losses


def task_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
              tasks: Sequence[TaskSpec]) -> torch.Tensor:
    """Plain sum over tasks of each task's mean loss (`task_losses`); training uses `balanced_loss`."""
    return sum(task_losses(outputs, targets, tasks).values())


def chance_loss(task: TaskSpec) -> float:
    """A task's loss at the best constant prediction without looking at the repertoire (class-balanced):
    ln 2 (binary), ln(n_classes) (categorical), 1 (a numeric task in standard deviations: predicting
    the mean). A numeric task without `scale` (a model saved before standardisation) counts as 1."""
    if task.kind == "binary":
        return math.log(2)
    if task.kind == "categorical":
        return math.log(task.n_classes)
    return 1.0


def balanced_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                  tasks: Sequence[TaskSpec]) -> torch.Tensor:
    """The loss training minimises and validation reports: the mean over tasks of each task's loss
    rescaled so that chance scores ln 2, as a balanced binary task does (loss * ln 2 / `chance_loss`).

    Every task then counts alike whatever its kind, classes or units: each adds ln 2 / n_tasks when no
    better than a constant and 0 when perfect. With one binary task this is its BCE unchanged, so
    single-label runs train and report as before, and 0.693 means chance for any set of tasks.
    """
    losses = task_losses(outputs, targets, tasks)
    total = None
    for task in tasks:
        loss = losses[task.name]
        if task.kind != "binary":
            loss = loss * (math.log(2) / chance_loss(task))
        total = loss if total is None else total + loss
    return total / len(tasks) if len(tasks) > 1 else total


def probabilities(outputs: dict[str, torch.Tensor], tasks: Sequence[TaskSpec]) -> dict[str, torch.Tensor]:
    """Binary: P(positive) (B,); categorical: class probabilities (B, n_classes); numeric: the value in
    the label's units (B,)."""
    result = {}
    for task in tasks:
        out = outputs[task.name]
        if task.kind == "binary":
            result[task.name] = torch.sigmoid(out)
        elif task.kind == "categorical":
            result[task.name] = torch.softmax(out, dim=-1)
        else:
            result[task.name] = out
    return result
