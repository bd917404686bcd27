"""Calibration of a binary output on validation repertoires scored whole (Platt scaling with a prior).

Training fits on samples of `sample_size` sequences and prediction scores whole repertoires; inputs of
the output network such as the energy feature (a log-mean-exp over the bag) grow with the bag when the
attention logits are heavy-tailed, so probabilities drift with repertoire size. After model selection
the validation repertoires are scored whole, as `predict` scores, and an affine map of the logit,
``slope * logit + intercept``, is fitted to their labels by maximum a posteriori logistic regression
(Platt scaling). Classes weigh alike (training's loss is class-balanced, so 0.5 stays the
balanced-accuracy threshold); a Gaussian prior around the identity keeps the fit finite on separable
or small validation sets (Platt's smoothed targets would instead pull every confident, correct
probability towards (N+1)/(N+2)). The map is monotone, so it never changes a model's ranking (its
AUC), only its probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

# Gaussian prior of the fit, as the standard deviation of the slope around 1 and of the intercept
# around 0: wide enough for a validation set of ~10 repertoires to move the intercept by several
# logits, narrow enough that two of them cannot make the slope explode.
SLOPE_PRIOR_SD = 1.0
INTERCEPT_PRIOR_SD = 2.0


def fit_calibration(logits: np.ndarray, labels: np.ndarray) -> dict[str, float] | None:
    """Slope and intercept mapping `logits` (n,) of repertoires with 0/1 `labels` to calibrated logits;
    None when the labels hold a single class (nothing to calibrate against)."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(int)
    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0 or not np.isfinite(logits).all():
        return None
    weights = len(labels) / (2.0 * counts[labels])  # each class weighs half

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        slope, intercept = params
        z = slope * logits + intercept
        # class-weighted binary cross-entropy, stable for large |z|
        loss = weights * (np.logaddexp(0.0, z) - labels * z)
        residual = weights * (expit(z) - labels)
        prior = ((slope - 1) / SLOPE_PRIOR_SD) ** 2 / 2 + (intercept / INTERCEPT_PRIOR_SD) ** 2 / 2
        grad = np.array([residual @ logits + (slope - 1) / SLOPE_PRIOR_SD ** 2,
                         residual.sum() + intercept / INTERCEPT_PRIOR_SD ** 2])
        return float(loss.sum() + prior), grad

    fit = minimize(objective, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[(1e-3, None), (None, None)])
    slope, intercept = (float(v) for v in fit.x)
    after = slope * logits + intercept
    return {"slope": slope, "intercept": intercept, "n_validation": int(len(labels)),
            "validation_log_loss_before": balanced_log_loss(logits, labels),
            "validation_log_loss_after": balanced_log_loss(after, labels),
            "validation_brier_before": brier(logits, labels), "validation_brier_after": brier(after, labels)}


def balanced_log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    """Binary cross-entropy of `logits` against 0/1 `labels`, each class weighing half (training's loss)."""
    logits = np.asarray(logits, dtype=np.float64)
    losses = np.logaddexp(0.0, logits) - labels * logits
    return float(np.mean([losses[labels == c].mean() for c in (0, 1)]))


def brier(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared error of the probabilities sigmoid(`logits`) against 0/1 `labels`."""
    probabilities = expit(np.asarray(logits, dtype=np.float64))
    return float(np.mean((probabilities - np.asarray(labels, dtype=np.float64)) ** 2))


def calibrated_logit(logit: np.ndarray, calibration: dict | None) -> np.ndarray:
    """`logit` through a stored calibration (unchanged when there is none)."""
    if not calibration:
        return logit
    return calibration["slope"] * logit + calibration["intercept"]


def describe(calibration: dict | None, on: str = "validation repertoires scored whole") -> str:
    """One line for the training log; `on`: what the repertoires counted in `n_validation` are."""
    if not calibration:
        return "no calibration (one class among the validation repertoires)"
    return (f"calibrated on {calibration['n_validation']} {on}: logit x "
            f"{calibration['slope']:.3f} {'+' if calibration['intercept'] >= 0 else '-'} "
            f"{abs(calibration['intercept']):.3f}; validation loss {calibration['validation_log_loss_before']:.4f} "
            f"-> {calibration['validation_log_loss_after']:.4f}, Brier {calibration['validation_brier_before']:.4f} "
            f"-> {calibration['validation_brier_after']:.4f}")


__all__ = ["fit_calibration", "calibrated_logit", "balanced_log_loss", "brier", "describe"]
