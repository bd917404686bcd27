"""Calibration of binary outputs on validation repertoires (`deeprc_hopfield.calibration`)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from deeprc_hopfield.calibration import brier, calibrated_logit, fit_calibration


def _shifted_cohort(n: int, shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(true logit); the model's logit is the true one plus `shift`
    (what scoring whole repertoires does to a model trained on samples)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 2.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-true))).astype(int)
    return true + shift, labels


def test_a_shifted_output_gets_its_shift_back_and_a_lower_brier():
    logits, labels = _shifted_cohort(2000, shift=2.0)
    fit = fit_calibration(logits, labels)
    assert abs(fit["intercept"] + 2.0 * fit["slope"]) < 0.4  # slope * (true + 2) + intercept ~ true
    assert 0.8 < fit["slope"] < 1.2
    assert fit["validation_brier_after"] < fit["validation_brier_before"] - 0.01
    assert fit["validation_log_loss_after"] < fit["validation_log_loss_before"]
    assert np.isclose(fit["validation_brier_after"], brier(calibrated_logit(logits, fit), labels))


def test_a_calibrated_output_is_left_nearly_alone():
    logits, labels = _shifted_cohort(2000, shift=0.0, seed=1)
    fit = fit_calibration(logits, labels)
    assert abs(fit["slope"] - 1) < 0.15 and abs(fit["intercept"]) < 0.2


def test_a_small_separable_validation_set_gets_a_finite_monotone_map():
    logits = np.array([-9.0, -7.5, -6.0, 1.0, 2.0, 2.5, 3.0, 4.0])  # every negative below every positive
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    fit = fit_calibration(logits, labels)
    assert np.isfinite(fit["slope"]) and np.isfinite(fit["intercept"]) and 0 < fit["slope"] < 5
    mapped = calibrated_logit(logits, fit)
    assert (rankdata(mapped) == rankdata(logits)).all()  # the ranking (AUC) never changes
    # the negatives sat close to the threshold side of 0 they belong to; after the fit the
    # threshold 0.5 separates both classes as well as before
    assert ((mapped > 0) == labels.astype(bool)).all()


def test_one_class_or_a_nan_is_not_calibrated():
    assert fit_calibration(np.array([0.1, 0.2]), np.array([1, 1])) is None
    assert fit_calibration(np.array([0.1, np.nan]), np.array([0, 1])) is None
    assert calibrated_logit(np.array([1.5]), None)[0] == 1.5
