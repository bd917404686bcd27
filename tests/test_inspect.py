"""`inspect` of a model: what its config.json says, in the words training used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import deeprc_cli, simulated_store

from deeprc_hopfield.saved_model import MODEL_FORMAT, MODEL_SCHEMA_VERSION
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
    relative = os.path.relpath(cohort["store"])  # as the workflow gives it: relative to where train runs
    result = deeprc_cli("train", "--store", relative, "--split", cohort["split"], "--fold", 0, "--config",
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
    # trained with a relative --store: recorded as the absolute path, which means the same wherever inspect runs
    store = memory_alone_model.parent / "store.h5"
    assert training["store"] == str(store) and lines["trained on"].startswith(f"{store}: ")
    calibration = lines["calibration"]
    assert f"fitted on {n_fit + n_validation} training repertoires, each by the clones found without it (the " \
           "memory alone, refit; Brier " in calibration and "validation repertoires" not in calibration, calibration


def _fake_model(folder: Path, training: dict) -> Path:
    """A model folder holding only a config.json with these `training` entries (inspect reads nothing else)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"format": MODEL_FORMAT, "schema_version": MODEL_SCHEMA_VERSION,
                                                    "training": training}))
    return folder


def test_inspect_of_a_folder_of_fold_models_summarises_them_first(tmp_path):
    """The workflow's models folder: how many fold models, which give their clone memory alone, their stored clones
    and how predict uses them together, in a few lines before each model's own summary."""
    models = tmp_path / "models"
    _fake_model(models / "fold0", {"memory_alone": True, "memory_clones": ["CASSLGQAYEQYF TRBV5-1*01", "CSARF"]})
    _fake_model(models / "fold1", {"memory_alone": False, "memory_clones": []})
    _fake_model(models / "fold2", {"memory_alone": True, "memory_clones": ["CASSLGQAYEQYF TRBV5-1*01"],
                                   "store": "results/cmvlab/cohort.h5"})
    result = deeprc_cli("inspect", models)
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.rstrip("\n").split("\n\n")
    assert blocks[0].splitlines() == [
        f"fold models   3 in {models}: fold0, fold1, fold2",
        "output        the clone memory alone in 2 (fold0, fold2); the trained model in 1 (fold1)",
        "stored clones 2 distinct over the 3 models (fold0 2, fold1 0, fold2 1)",
        f"ensemble      `deeprc-hopfield predict --model {models} --repertoires DIR --out p.csv` scores each new "
        "repertoire by all 3 and gives the mean probability and its spread (probability_sd); each model follows"]
    assert len(blocks) == 4 and [block.splitlines()[0].split()[1] for block in blocks[1:]] == [
        str(models / f"fold{k}") for k in range(3)]
    # a model saved before training recorded the store's absolute path: the path as given, said to be relative
    trained_on = next(line for line in blocks[3].splitlines() if line.startswith("trained on"))
    assert trained_on == ("trained on    results/cmvlab/cohort.h5 (relative to the folder train ran in): 0 fitting "
                          "and 0 validation repertoires")
