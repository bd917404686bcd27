"""`inspect` of a model: what its config.json says, in the words training used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import deeprc_cli, simulated_store

from deeprc_hopfield.simulate import SimulationSettings


@pytest.fixture(scope="module")
def memory_alone_model(tmp_path_factory) -> Path:
    """A model of a 20-repertoire cohort with public clones, trained a few updates on folds 1-3 (2 validation
    repertoires): its clone memory is chosen on all 14 training repertoires and kept alone."""
    root = tmp_path_factory.mktemp("public")
    cohort = simulated_store(root, SimulationSettings(n_repertoires=20, sequences_per_repertoire=300,
                                                      witness_rate=0.05, public_clones=5, public_rate=0.6))
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({"training": {"n_updates": 20, "sample_size": 300, "evaluate_every": 10}}))
    result = deeprc_cli("train", "--store", cohort["store"], "--split", cohort["split"], "--fold", 0, "--config",
                        config, "--out", root / "m0", "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    return root / "m0"


def test_inspect_names_the_repertoires_a_refit_memory_alone_was_calibrated_on(memory_alone_model):
    training = json.loads((memory_alone_model / "config.json").read_text())["training"]
    n_fit, n_validation = len(training["fit_subjects"]), len(training["validation_subjects"])
    assert training["memory_alone"] and training["clone_rule"]["refit"]["repertoires"] == n_fit + n_validation
    assert training["calibration"]["label"]["n_validation"] == n_fit + n_validation  # the name says otherwise
    result = deeprc_cli("inspect", memory_alone_model)
    assert result.returncode == 0, result.stderr
    lines = {line[:14].strip(): line[14:] for line in result.stdout.splitlines()}
    assert lines["trained on"].endswith(f"{n_fit} fitting and {n_validation} validation repertoires")
    calibration = lines["calibration"]
    assert f"fitted on {n_fit + n_validation} training repertoires, each by the clones found without it (the " \
           "memory alone, refit; Brier " in calibration and "validation repertoires" not in calibration, calibration
