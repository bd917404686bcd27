"""Metrics per task, computed on held-out repertoires (never on data a model was trained on)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score


def task_metrics(kind: str, scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Metrics of one task.

    Parameters
    ----------
    kind
        'binary' (scores: probability of the positive class, shape (n,)), 'categorical' (scores:
        class probabilities, shape (n, k)) or 'numeric' (scores: predicted values, shape (n,)).
    targets
        True class codes (binary/categorical) or values (numeric), shape (n,).
    """
    if kind == "binary":
        auc = roc_auc_score(targets, scores) if len(np.unique(targets)) == 2 else float("nan")
        return {"auc": float(auc), "balanced_accuracy": float(balanced_accuracy_score(targets, scores >= 0.5))}
    if kind == "categorical":
        predicted = np.argmax(scores, axis=1)
        return {"accuracy": float(accuracy_score(targets, predicted)),
                "balanced_accuracy": float(balanced_accuracy_score(targets, predicted))}
    if kind == "numeric":
        mse = float(np.mean((scores - targets) ** 2))
        r = float(np.corrcoef(scores, targets)[0, 1]) if len(targets) > 1 and np.std(scores) > 0 else float("nan")
        return {"mse": mse, "pearson_r": r}
    raise ValueError(f"unknown task kind '{kind}'")
