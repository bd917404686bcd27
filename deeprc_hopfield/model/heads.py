"""Output network, losses and probabilities for one or several tasks at once.

Output shapes per task: binary (B,) logits, categorical (B, n_classes) logits, numeric (B,) values.
Targets: binary float (B,) in {0, 1}, categorical long (B,) class codes, numeric float (B,);
a missing target (NaN, or -1 for a categorical code) is left out of that task's loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deeprc_hopfield.model.config import TaskSpec
from deeprc_hopfield.model.embedding import _lecun_init


class OutputNetwork(nn.Module):
    """Self-normalising MLP with one output block per task.

    Input: pooled bag vectors (B, input_dim). Output: dict task name -> (B,) or (B, n_classes).
    `layers` hidden layers of `hidden` units with SELU (0 layers = one linear map).
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
        out = self.output(self.body(pooled))  # (B, total outputs)
        result, start = {}, 0
        for task in self.tasks:
            block = out[:, start:start + task.n_outputs]
            start += task.n_outputs
            result[task.name] = block if task.kind == "categorical" else block[:, 0]
        return result


def task_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
              tasks: Sequence[TaskSpec]) -> torch.Tensor:
    """Sum over tasks of each task's mean loss.

    Binary: BCE with logits (pos_weight = w_positive / w_negative from class_weights); categorical:
    cross-entropy with class weights; numeric: mean squared error. Rows with a missing target are
    skipped; a task with no target in the batch adds 0.
    """
    total = None
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
            else:
                loss = F.mse_loss(out[keep], target[keep])
        total = loss if total is None else total + loss
    if total is None:
        raise ValueError("task_loss needs at least one task")
    return total


def probabilities(outputs: dict[str, torch.Tensor], tasks: Sequence[TaskSpec]) -> dict[str, torch.Tensor]:
    """Binary: P(positive) (B,); categorical: class probabilities (B, n_classes); numeric: the value (B,)."""
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
