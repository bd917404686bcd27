"""Metrics per task, computed on held-out repertoires (never on data a model was trained on)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, roc_auc_score


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
        return {"auc": float(auc), "balanced_accuracy": balanced_accuracy(targets, scores >= 0.5)}
    if kind == "categorical":
        predicted = np.argmax(scores, axis=1)
        return {"accuracy": float(accuracy_score(targets, predicted)),
                "balanced_accuracy": balanced_accuracy(targets, predicted)}
    if kind == "numeric":
        mse = float(np.mean((scores - targets) ** 2))
        defined = len(targets) > 1 and np.std(scores) > 0 and np.std(targets) > 0  # else r is 0/0
        r = float(np.corrcoef(scores, targets)[0, 1]) if defined else float("nan")
        return {"mse": mse, "pearson_r": r}
    raise ValueError(f"unknown task kind '{kind}'")


def balanced_accuracy(targets: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall of the classes present in `targets` (sklearn's balanced accuracy, without its warning when a
    predicted class is absent from `targets`, as in a small validation set of one class)."""
    targets, predicted = np.asarray(targets).astype(np.int64), np.asarray(predicted).astype(np.int64)
    return float(np.mean([np.mean(predicted[targets == c] == c) for c in np.unique(targets)]))


def paired_auc_difference(targets: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """ROC AUC of `second` minus that of `first` (scores of the same repertoires, binary `targets`), and the
    standard error of that difference (DeLong et al. 1988: paired, so what both scores share cancels); NaN
    where a class has one repertoire only (the difference is defined, its standard error is not)."""
    targets = np.asarray(targets).astype(bool)
    if targets.all() or not targets.any():
        raise ValueError("a paired AUC difference needs both classes")
    scores = np.vstack([np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)])
    positive, negative = scores[:, targets], scores[:, ~targets]
    m, n = positive.shape[1], negative.shape[1]
    within = rankdata(scores[:, np.r_[np.flatnonzero(targets), np.flatnonzero(~targets)]], axis=1)
    of_positive = (within[:, :m] - rankdata(positive, axis=1)) / n  # per positive: share of negatives below
    of_negative = 1 - (within[:, m:] - rankdata(negative, axis=1)) / m  # per negative: share of positives above
    aucs = of_positive.mean(axis=1)
    if min(m, n) < 2:  # a class of one repertoire: its components have no sample variance
        return float(aucs[1] - aucs[0]), float("nan")
    contrast = np.array([-1.0, 1.0])
    variance = contrast @ (np.cov(of_positive) / m + np.cov(of_negative) / n) @ contrast
    return float(aucs[1] - aucs[0]), float(np.sqrt(max(variance, 0.0)))


#: How far, in paired standard errors, one ROC AUC must exceed another to count as higher: 1.645, a
#: one-sided DeLong test at the 5% level.
SIGNIFICANT_GAIN_Z = 1.645


def significantly_higher(targets: np.ndarray, first: np.ndarray, second: np.ndarray | None = None) -> bool:
    """Whether `second` ranks `targets` better than `first` by a one-sided paired DeLong test at the 5% level
    (:data:`SIGNIFICANT_GAIN_Z`); with `second` None, whether `first` ranks them better than chance."""
    if second is None:  # a constant score: AUC 0.5 with no variance
        first, second = np.zeros(len(targets)), first
    gain, se = paired_auc_difference(targets, first, second)
    return gain > SIGNIFICANT_GAIN_Z * se
