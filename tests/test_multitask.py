"""Several labels at once: numeric labels standardised on the fitting repertoires, predicted in their
own units, and task losses balanced (real torch, a small cohort of random repertoires)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_airr

from deeprc_hopfield.infer import predict, subjects_from_store
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.model import ModelConfig, TaskSpec
from deeprc_hopfield.model.heads import OutputNetwork, balanced_loss, task_losses
from deeprc_hopfield.saved_model import load_model
from deeprc_hopfield.training import train

QUICK = {"n_updates": 6, "evaluate_every": 3, "checkpoint_every": 6, "sample_size": 100,
         "repertoires_per_update": 4, "seed_filters": 0, "clone_memory": False}
N_REPERTOIRES = 20


@pytest.fixture(scope="module")
def two_label_cohort(tmp_path_factory) -> dict:
    """20 random AIRR repertoires with a binary `status` and a numeric `age` (mean ~50, sd ~10); split:
    fold 0 (4 repertoires, their ages far above the others) held out."""
    root = tmp_path_factory.mktemp("multitask")
    rng = np.random.default_rng(16)
    folder = root / "repertoires"
    folder.mkdir()
    age = rng.normal(50, 10, N_REPERTOIRES).round(1)
    fold = np.arange(N_REPERTOIRES) % 5 == 0
    age[fold] += 100  # held out: must not move the mean the model learns from
    rows = []
    for i in range(N_REPERTOIRES):
        write_airr(folder / f"rep{i}.tsv", rng, int(rng.integers(40, 80)))
        rows.append({"subject_id": f"P{i}", "filename": f"rep{i}.tsv", "status": "yes" if i % 2 else "no",
                     "age": age[i]})
    metadata = root / "metadata.csv"
    pd.DataFrame(rows).to_csv(metadata, index=False)
    store = ingest(metadata, folder, root / "store.h5", label_columns=["status", "age"], positive_class="yes",
                   progress=False)
    split = root / "split.csv"
    pd.DataFrame({"subject_id": [f"P{i}" for i in range(N_REPERTOIRES)], "fold": np.where(fold, 0, 1)}
                 ).to_csv(split, index=False)
    return {"root": root, "store": store, "split": split, "age": dict(zip([f"P{i}" for i in range(N_REPERTOIRES)],
                                                                         age))}


def _config(path: Path, **training) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"model": {"n_filters": 8, "attention_dim": 8, "head_hidden": 8},
                                    "training": {**QUICK, **training}}))
    return path


@pytest.fixture(scope="module")
def two_label_model(two_label_cohort, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("model")
    return train(two_label_cohort["store"], root / "model", _config(root / "config.yaml"),
                 label_columns=["status", "age"], split=two_label_cohort["split"], fold=0, device="cpu",
                 progress=False)


def test_numeric_label_standardised_on_fitting_repertoires_only(two_label_cohort, two_label_model):
    config = json.loads((two_label_model / "config.json").read_text())
    status, age = config["model"]["tasks"]
    assert (status["kind"], status["mean"], status["scale"]) == ("binary", None, None)
    fit = np.array([two_label_cohort["age"][s] for s in config["training"]["fit_subjects"]])
    validation = np.array([two_label_cohort["age"][s] for s in config["training"]["validation_subjects"]])
    assert age["kind"] == "numeric"
    assert age["mean"] == pytest.approx(fit.mean()) and age["scale"] == pytest.approx(fit.std())
    assert age["mean"] != pytest.approx(np.concatenate([fit, validation]).mean())  # validation not read
    assert 30 < age["mean"] < 70  # the held-out fold (ages above 100) not read either


def test_losses_of_order_one_from_the_start(two_label_model):
    """Before standardisation the age's squared error (~2,500) was almost the whole loss."""
    metrics = pd.read_csv(two_label_model / "metrics.csv")
    assert {"val_loss", "val_status_loss", "val_age_loss", "val_status_auc", "val_age_pearson_r"} <= set(metrics)
    first = metrics.iloc[0]
    assert first["loss"] < 3 and first["val_loss"] < 3
    assert first["val_age_loss"] < 10  # squared standard deviations, not years


def test_predictions_of_a_numeric_label_in_its_units(two_label_cohort, two_label_model):
    saved = load_model(two_label_model)
    held_out = {f"P{i}" for i in range(0, N_REPERTOIRES, 5)}
    table, _ = predict([saved], subjects_from_store(two_label_cohort["store"], saved, only=held_out),
                       torch.device("cpu"))
    assert {"status_probability", "status_predicted", "age_predicted", "age_true"} <= set(table.columns)
    assert list(saved.labels) == ["status", "age"]  # the training order (config.json sorts its keys)
    columns = [c for c in table.columns if c.startswith(("status_", "age_"))]
    assert columns.index("status_probability") < columns.index("age_predicted")
    age_task = saved.model.config.tasks[1]
    # a short training on random repertoires predicts about the fitting mean, in years (not ~0)
    assert abs(table["age_predicted"].mean() - age_task.mean) < 0.5 * age_task.scale
    assert 40 < table["age_predicted"].mean() < 60
    assert (table["age_true"] > 100).all()


def test_model_saved_without_mean_and_scale_still_loads(two_label_model, tmp_path):
    """A config.json written before standardisation (no mean/scale keys) loads: its numeric unit is the value."""
    import shutil

    old = tmp_path / "old_model"
    shutil.copytree(two_label_model, old)
    config = json.loads((old / "config.json").read_text())
    for task in config["model"]["tasks"]:
        del task["mean"], task["scale"]
    (old / "config.json").write_text(json.dumps(config))
    saved = load_model(old)
    age = saved.model.config.tasks[1]
    assert (age.mean, age.scale) == (None, None)
    pooled = torch.randn(3, saved.model.head.body[0].in_features)
    standardised = load_model(two_label_model).model.config.tasks[1]
    torch.testing.assert_close(load_model(two_label_model).model.head(pooled)["age"],
                               saved.model.head(pooled)["age"] * standardised.scale + standardised.mean)


def test_task_spec_mean_and_scale_checked_and_round_trip():
    task = TaskSpec("age", "numeric", mean=50, scale=10)
    assert (task.mean, task.scale) == (50.0, 10.0)
    config = ModelConfig(tasks=[TaskSpec("status", "binary"), task])
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    for bad, message in [({"mean": 50.0}, "go together"), ({"mean": 50.0, "scale": 0.0}, "scale must be > 0"),
                         ({"mean": math.nan, "scale": 1.0}, "finite"), ({"mean": 1.0, "scale": math.inf}, "finite")]:
        with pytest.raises(ValueError, match=message):
            TaskSpec("age", "numeric", **bad)
    with pytest.raises(ValueError, match="numeric tasks only"):
        TaskSpec("status", "binary", mean=0.0, scale=1.0)


def test_head_outputs_label_units_and_loss_in_standard_deviations():
    tasks = [TaskSpec("status", "binary"), TaskSpec("kind", "categorical", 3), TaskSpec("age", "numeric", mean=50.0,
                                                                                         scale=10.0)]
    head = OutputNetwork(4, tasks, layers=0)
    with torch.no_grad():
        head.output.weight.zero_()
        head.output.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.5]))
    outputs = head(torch.randn(2, 4))
    torch.testing.assert_close(outputs["age"], torch.tensor([55.0, 55.0]))
    targets = {"status": torch.tensor([0.0, 1.0]), "kind": torch.tensor([0, 2]), "age": torch.tensor([60.0, 35.0])}
    losses = task_losses(outputs, targets, tasks)
    assert losses["age"].item() == pytest.approx((0.5**2 + 2.0**2) / 2)  # ((55-60)/10)^2, ((55-35)/10)^2
    # at a constant prediction every task scores ln 2: the balanced loss is ln 2, whatever the kinds
    chance = {"status": torch.zeros(2), "kind": torch.zeros(2, 3), "age": torch.tensor([50.0, 50.0])}
    at_mean = {**targets, "age": torch.tensor([60.0, 40.0])}  # sd 10 around the mean: MSE 1
    assert balanced_loss(chance, at_mean, tasks).item() == pytest.approx(math.log(2))
    # one binary task: its BCE unchanged (single-label runs train as before)
    logits = {"status": torch.tensor([2.0, -1.0])}
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits["status"], targets["status"])
    assert balanced_loss(logits, targets, tasks[:1]).item() == pytest.approx(bce.item())


def test_a_numeric_first_label_says_that_seeding_and_the_clone_memory_are_off(two_label_cohort, tmp_path, caplog):
    """They need a binary first label: with `age` first they are off, and the log says how to have them."""
    torch.set_num_threads(1)
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        train(two_label_cohort["store"], tmp_path / "model", _config(tmp_path / "config.yaml", n_updates=2),
              label_columns=["age", "status"], split=two_label_cohort["split"], fold=0, device="cpu", progress=False)
    assert "the first label 'age' is numeric: the k-mer seeding and the clone memory" in caplog.text
    assert "give a binary label first (--label-column order)" in caplog.text
