"""Metrics on the degenerate inputs small validation sets give: what is defined is computed, the rest is NaN,
and nothing is printed (warnings raised as errors here)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from deeprc_hopfield.metrics import balanced_accuracy, paired_auc_difference, significantly_higher, task_metrics
from deeprc_hopfield.training.selection import trained_model_wins


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize("targets", [[1, 0, 0], [0, 1, 1], [1, 0]])
def test_a_class_of_one_repertoire_gives_the_auc_difference_and_no_standard_error(targets):
    targets = np.array(targets)
    first, second = np.linspace(0.1, 0.9, len(targets)), np.where(targets == 1, 0.8, 0.2)
    gain, se = paired_auc_difference(targets, first, second)
    assert gain == pytest.approx(roc_auc_score(targets, second) - roc_auc_score(targets, first))
    assert np.isnan(se)
    assert not significantly_higher(targets, first, second)  # no standard error: no evidence of a gain
    choice = trained_model_wins(first, second, targets)  # what training's memory choice does with it
    assert choice["gain_z"] is None and not choice["trained_wins"] and choice["trained_auc"] == 1.0


def test_two_of_each_class_still_get_a_standard_error():
    targets = np.array([0, 1, 0, 1])
    gain, se = paired_auc_difference(targets, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.9, 0.2, 0.8]))
    assert gain == pytest.approx(0.25) and np.isfinite(se) and se > 0


def test_task_metrics_of_one_class_and_of_constant_values_are_nan_where_undefined():
    binary = task_metrics("binary", np.array([0.2, 0.7, 0.9]), np.array([1, 1, 1]))
    assert np.isnan(binary["auc"]) and binary["balanced_accuracy"] == pytest.approx(2 / 3)
    categorical = task_metrics("categorical", np.eye(3)[[0, 2, 1]], np.array([0, 0, 0]))
    assert categorical["accuracy"] == pytest.approx(1 / 3) and categorical["balanced_accuracy"] == pytest.approx(1 / 3)
    numeric = task_metrics("numeric", np.array([1.0, 2.0, 4.0]), np.array([3.0, 3.0, 3.0]))
    assert numeric["mse"] == pytest.approx(2.0) and np.isnan(numeric["pearson_r"])
    assert np.isnan(task_metrics("numeric", np.array([2.0]), np.array([3.0]))["pearson_r"])


def test_balanced_accuracy_equals_sklearn_where_both_classes_are_present():
    rng = np.random.default_rng(0)
    targets, predicted = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    assert balanced_accuracy(targets, predicted) == pytest.approx(balanced_accuracy_score(targets, predicted))
    assert balanced_accuracy(targets > 0, predicted > 0) == pytest.approx(balanced_accuracy_score(targets > 0,
                                                                                                  predicted > 0))
