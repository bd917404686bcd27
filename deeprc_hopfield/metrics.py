"""Metrics per task, computed on held-out repertoires (never on data a model was trained on)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit
from scipy.stats import norm, rankdata
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


def paired_auc_difference(targets: np.ndarray, first: np.ndarray, second: np.ndarray,
                          clusters: np.ndarray | None = None) -> tuple[float, float]:
    """ROC AUC of `second` minus that of `first` (scores of the same repertoires, binary `targets`), and the
    standard error of that difference (DeLong et al. 1988: paired, so what both scores share cancels); NaN
    where a class has one repertoire only (the difference is defined, its standard error is not).

    `clusters` (one id a repertoire, e.g. its donor) makes the error that of Obuchowski (1997): repertoires of one
    cluster are not independent, so their components are summed a cluster before their spread is taken (each
    repertoire its own cluster: DeLong's error exactly); NaN where a class comes from one cluster only.
    """
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
    contrast = np.array([-1.0, 1.0])
    if clusters is None:
        if min(m, n) < 2:  # a class of one repertoire: its components have no sample variance
            return float(aucs[1] - aucs[0]), float("nan")
        variance = contrast @ (np.cov(of_positive) / m + np.cov(of_negative) / n) @ contrast
    else:
        variance = contrast @ _clustered_covariance(of_positive, of_negative, aucs, np.asarray(clusters)[targets],
                                                    np.asarray(clusters)[~targets]) @ contrast
        if not np.isfinite(variance):
            return float(aucs[1] - aucs[0]), float("nan")
    return float(aucs[1] - aucs[0]), float(np.sqrt(max(variance, 0.0)))


def _clustered_covariance(of_positive: np.ndarray, of_negative: np.ndarray, aucs: np.ndarray,
                          positive_clusters: np.ndarray, negative_clusters: np.ndarray) -> np.ndarray:
    """The covariance of the AUCs of the scores (rows) under Obuchowski's clustered variance: each cluster's
    components less its share of the AUC, summed; then their spread over clusters (NaN where a class comes from
    fewer than 2 clusters)."""
    names, codes = np.unique(np.r_[positive_clusters, negative_clusters], return_inverse=True)
    m, n, k = of_positive.shape[1], of_negative.shape[1], len(names)
    sums_positive = np.zeros((len(aucs), k))
    sums_negative = np.zeros((len(aucs), k))
    for row in range(len(aucs)):  # a cluster's components less its expected share: (scores, clusters)
        sums_positive[row] = np.bincount(codes[:m], of_positive[row] - aucs[row], minlength=k)
        sums_negative[row] = np.bincount(codes[m:], of_negative[row] - aucs[row], minlength=k)
    with_positive, with_negative = len(np.unique(codes[:m])), len(np.unique(codes[m:]))
    if min(with_positive, with_negative) < 2:
        return np.full((len(aucs), len(aucs)), np.nan)
    s10 = with_positive / (with_positive - 1) * sums_positive @ sums_positive.T / m
    s01 = with_negative / (with_negative - 1) * sums_negative @ sums_negative.T / n
    s11 = k / (k - 1) * sums_positive @ sums_negative.T
    return s10 / m + s01 / n + (s11 + s11.T) / (m * n)


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


#: The coverage of the ROC AUC intervals `evaluate` writes.
INTERVAL_LEVEL = 0.95


def auc_interval(targets: np.ndarray, scores: np.ndarray, level: float = INTERVAL_LEVEL,
                 clusters: np.ndarray | None = None) -> tuple[float, float]:
    """A confidence interval of the ROC AUC of `scores`: the wider, at each end, of two. One is DeLong's standard
    error (Obuchowski's with `clusters`: see :func:`paired_auc_difference`) on the logit scale, so that the bounds
    stay within (0, 1); it is too narrow near an AUC of 1 (at 1 its error is 0) and where a class has few members.
    The other is Newcombe's score interval (:func:`_score_interval`, on the clusters' counts with `clusters`), which
    is not. Their union held the true AUC in 96-99% of the small, unequal and clustered cohorts of
    `benchmarks/intervals.py`. NaN where a class has fewer than 2 members (or clusters) or every score is equal
    (an AUC of 0.5 by construction)."""
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if targets.sum() < 2 or (~targets).sum() < 2 or np.ptp(scores) == 0:
        return float("nan"), float("nan")
    gain, se = paired_auc_difference(targets, np.zeros(len(targets)), scores, clusters)  # a constant: AUC 0.5
    if not np.isfinite(se):
        return float("nan"), float("nan")
    auc = 0.5 + gain
    if clusters is None:
        m, n = int(targets.sum()), int((~targets).sum())
    else:
        m, n = (len(np.unique(np.asarray(clusters)[side])) for side in (targets, ~targets))
    low, high = _score_interval(auc, m, n, level)
    if 0 < auc < 1 and se > 0:
        half = norm.ppf(0.5 + level / 2) * se / (auc * (1 - auc))  # the delta method: d logit(a) = da / (a (1 - a))
        low, high = min(low, float(expit(logit(auc) - half))), max(high, float(expit(logit(auc) + half)))
    return low, high


def _score_interval(auc: float, positives: int, negatives: int, level: float) -> tuple[float, float]:
    """Newcombe's (2006, Stat Med 25:559, method 5) interval of an AUC on `positives` x `negatives` subjects: the
    AUCs theta from which `auc` lies within `z` of Hanley and McNeil's standard errors (their variance at theta,
    with (m + n) / 2 - 1 for both class sizes). Defined at an AUC of 0 or 1, where DeLong's is a point."""
    z2, pairs, size = norm.ppf(0.5 + level / 2) ** 2, positives * negatives, (positives + negatives) / 2 - 1

    def excess(theta: float) -> float:  # (auc - theta)^2 less z^2 Var(theta): <= 0 inside the interval
        variance = theta * (1 - theta) * (1 + size * (1 - theta) / (2 - theta) + size * theta / (1 + theta)) / pairs
        return (auc - theta) ** 2 - z2 * variance

    inside = 1e-9  # Var(theta) is 0 at 0 and 1, so the search starts just inside them, where excess < 0
    low = brentq(excess, 0.0, min(auc, 1 - inside)) if auc > 0 else 0.0
    high = brentq(excess, max(auc, inside), 1.0) if auc < 1 else 1.0
    return float(low), float(high)


#: Probabilities are held this far from 0 and 1 before their logit is taken for the calibration line.
CALIBRATION_CLIP = 1e-6


def calibration_line(targets: np.ndarray, probability: np.ndarray) -> tuple[float, float]:
    """The calibration intercept and slope of `probability` against binary `targets` (Van Calster et al. 2019):
    the intercept of a logistic regression of the targets on the logit of the probability taken as an offset
    (0 when the probabilities are right on average; above 0 when they are too low), and the slope of that logit
    when fitted (1 when the probabilities are neither too extreme, below 1, nor too timid, above 1). The slope is NaN
    where the logit separates the classes (every positive at or above every negative: no finite fit) or where every
    probability is one (nothing to fit); both are NaN with one class. A probability of exactly 0 or 1 is held
    :data:`CALIBRATION_CLIP` from it (its logit is infinite): a method of hard 0/1 calls gets a slope of that clip's
    making."""
    y = np.asarray(targets).astype(np.float64)
    if y.min() == y.max():
        return float("nan"), float("nan")
    x = logit(np.clip(np.asarray(probability, dtype=np.float64), CALIBRATION_CLIP, 1 - CALIBRATION_CLIP))
    intercept = brentq(lambda a: float(np.sum(y - expit(a + x))), -50.0, 50.0)
    separated = x[y == 1].min() >= x[y == 0].max() or x[y == 0].min() >= x[y == 1].max()  # or all equal
    return float(intercept), float("nan") if separated else _logistic_slope(y, x)


def _logistic_slope(y: np.ndarray, x: np.ndarray, steps: int = 100) -> float:
    """The slope of a maximum-likelihood logistic regression of `y` on `x` with an intercept (Newton's method;
    the classes overlap in `x`, so the fit is finite)."""
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(steps):
        p = expit(design @ beta)
        hessian = design.T @ (design * (p * (1 - p))[:, None])
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), design.T @ (y - p))
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(beta[1])
