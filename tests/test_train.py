"""Training, model files, prediction and attention on a small, easy simulated cohort (real torch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import deeprc_cli, simulated_store, write_airr
from sklearn.metrics import roc_auc_score

from deeprc_hopfield import __version__
from deeprc_hopfield.infer import UNKNOWN_V_COLUMN, WARNINGS_COLUMN, predict_outputs
from deeprc_hopfield.saved_model import ModelFileError, load_model
from deeprc_hopfield.simulate import SimulationSettings
from deeprc_hopfield.store import RepertoireStore
from deeprc_hopfield.training import train

#: The columns that end every predictions table (the share of V genes the model does not know, and the notes).
CHECKS = [UNKNOWN_V_COLUMN, WARNINGS_COLUMN]

QUICK = {"n_updates": 8, "evaluate_every": 4, "checkpoint_every": 4, "sample_size": 200,
         "repertoires_per_update": 4}


@pytest.fixture(scope="module")
def easy_cohort(tmp_path_factory) -> dict:
    """40 repertoires x 300 sequences, motif GRDT in 5% of each positive's sequences; split: fold 0 held out."""
    return simulated_store(tmp_path_factory.mktemp("easy"), SimulationSettings(
        n_repertoires=40, sequences_per_repertoire=300, witness_rate=0.05, seed=3, motifs=("GRDT",)))


def _config(tmp_path: Path, **training) -> Path:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"training": {**QUICK, **training}}))
    return path


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "weights.safetensors"))


@pytest.mark.slow
def test_training_learns_and_predicts_held_out_fold(easy_cohort, tmp_path):
    torch.set_num_threads(1)
    config = _config(tmp_path, n_updates=300, evaluate_every=100, checkpoint_every=100, sample_size=300)
    model_dir = train(easy_cohort["store"], tmp_path / "model", config, split=easy_cohort["split"], fold=0,
                      device="cpu", progress=False)
    metrics = pd.read_csv(model_dir / "metrics.csv")
    assert list(metrics["update"]) == [100, 200, 300] and {"loss", "val_loss", "val_auc", "seconds"} <= set(metrics)
    held_out = set(easy_cohort["meta"]["subject_id"].astype(str)[easy_cohort["folds"] == 0])
    training = json.loads((model_dir / "config.json").read_text())["training"]
    assert held_out.isdisjoint(training["fit_subjects"]) and held_out.isdisjoint(training["validation_subjects"])
    assert "GRDT" in training["seeded_kmers"]  # counted on the fitting repertoires only
    assert training["memory_clones"] == []  # a motif cohort has no public-clone signal to store

    out = tmp_path / "predictions.csv"
    assert deeprc_cli("predict", "--model", model_dir, "--store", easy_cohort["store"], "--split", easy_cohort["split"],
                      "--fold", "0", "--out", out, "--threads", "1").returncode == 0
    test = pd.read_csv(out, dtype={"subject_id": str})
    assert list(test.columns) == ["subject_id", "probability", "predicted", "true_label", *CHECKS]
    assert set(test["subject_id"]) == held_out
    assert roc_auc_score(test["true_label"], test["probability"]) >= 0.9
    # the probabilities are the raw output through the calibration fitted on the validation repertoires
    calibration = training["calibration"]["label"]
    assert calibration["n_validation"] == len(training["validation_subjects"]) and calibration["slope"] > 0
    assert calibration["validation_log_loss_after"] <= calibration["validation_log_loss_before"] + 1e-9
    with RepertoireStore(easy_cohort["store"]) as store:
        repertoires = [store.repertoire(store.index_of(s)) for s in test["subject_id"]]
    raw = predict_outputs(load_model(model_dir).model, repertoires, torch.device("cpu"))["label"]
    raw = raw.reshape(-1).double().numpy()
    expected = 1 / (1 + np.exp(-(calibration["slope"] * raw + calibration["intercept"])))
    np.testing.assert_allclose(test["probability"], expected, atol=1e-5)

    # every repertoire, the 30 training ones too (so marked): where does the attention go?
    attended = tmp_path / "attended.tsv"
    assert deeprc_cli("attend", "--model", model_dir, "--repertoires", easy_cohort["repertoires"], "--metadata",
                      easy_cohort["metadata"], "--top", "5", "--allow-training-subjects", "--out", attended).returncode == 0
    top = pd.read_csv(attended, sep="\t", dtype={"repertoire_id": str})
    assert list(top.columns) == ["repertoire_id", "probability", "predicted", "rank", "attention", "junction_aa",
                                 "v_call", "j_call", "duplicate_count", "family", "family_size",
                                 "scored_by_training_model"]
    assert (top["scored_by_training_model"] == ~top["repertoire_id"].isin(held_out)).all()
    assert top.groupby("repertoire_id")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    assert (top.groupby("repertoire_id")["attention"].diff().dropna() <= 0).all()
    positives = set(easy_cohort["meta"]["subject_id"].astype(str)[easy_cohort["meta"]["label"] == 1])
    in_positives = top[top["repertoire_id"].isin(positives) & (top["rank"] == 1)]
    assert in_positives["junction_aa"].str.contains("GRDT").mean() >= 0.7  # 0.75 when written


def test_resume_reaches_the_same_weights(easy_cohort, tmp_path):
    torch.set_num_threads(1)
    full = train(easy_cohort["store"], tmp_path / "full", _config(tmp_path), device="cpu", progress=False)
    first = train(easy_cohort["store"], tmp_path / "part", _config(tmp_path, n_updates=4), device="cpu",
                  progress=False)
    assert first.is_dir()
    resumed = train(easy_cohort["store"], tmp_path / "part", _config(tmp_path), device="cpu", resume=True,
                    progress=False)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = train(easy_cohort["store"], tmp_path / "again", _config(tmp_path), device="cpu", progress=False)
    assert all(torch.equal(a[k], v) for k, v in _weights(again).items())  # CPU runs are deterministic


def test_resume_if_possible_continues_only_a_checkpoint_of_the_same_run(easy_cohort, tmp_path, monkeypatch):
    """The workflow's train jobs run with --resume-if-possible: an interrupted job continues from its
    checkpoint to the weights of an uninterrupted run; a checkpoint of another config starts afresh."""
    from deeprc_hopfield import interrupts

    torch.set_num_threads(1)
    fold = {"split": easy_cohort["split"], "fold": 0, "device": "cpu", "progress": False}
    config = _config(tmp_path)  # 8 updates, a checkpoint every 4
    full = train(easy_cohort["store"], tmp_path / "full", config, **fold)

    class Interrupted(Exception):
        pass

    calls = []

    def interrupt_during_update_5() -> None:  # called once per update, after the step
        calls.append(1)
        if len(calls) == 5:
            raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(interrupts, "raise_if_interrupted", interrupt_during_update_5)
        with pytest.raises(Interrupted):
            train(easy_cohort["store"], tmp_path / "part", config, **fold)
    checkpoint = tmp_path / "part.checkpoint"
    assert not (tmp_path / "part").exists()
    assert json.loads((checkpoint / "progress.json").read_text())["update"] == 4

    def cli(*extra: str | Path) -> subprocess.CompletedProcess:
        return deeprc_cli("train", "--store", easy_cohort["store"], "--split", easy_cohort["split"], "--out",
                          tmp_path / "part", "--device", "cpu", "--threads", "1", *extra)

    # continued although it runs with other checkpoint_every and embed_chunk: how training runs, not what it learns
    # (a checkpoint of an earlier version holds them in its identity)
    # and by another package version: the version is kept beside the identity, not in it
    progress = json.loads((checkpoint / "progress.json").read_text())
    assert progress["package_version"] == __version__ and "package_version" not in progress["identity"]
    progress["identity"]["training"].update(checkpoint_every=4, embed_chunk=8192)
    progress["package_version"] = "0.0.9"
    (checkpoint / "progress.json").write_text(json.dumps(progress))
    resumed = cli("--fold", "0", "--config", config, "--resume-if-possible", "--checkpoint-every", "3",
                  "--embed-chunk", "7")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {checkpoint} at update 4" in resumed.stderr
    assert f"the checkpoint was written by deeprc-hopfield 0.0.9; continuing it with {__version__}" in resumed.stderr
    a, b = _weights(full), _weights(tmp_path / "part")  # chunks of 7 sum in another order: float rounding apart
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-5) for k in a)
    assert pd.read_csv(tmp_path / "part" / "metrics.csv")["update"].tolist() == [4, 8]  # history kept

    # --resume insists: a checkpoint of another fold is refused in one line
    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("the clone memory was fitted before the checkpoint was judged")

    with monkeypatch.context() as patch:  # refused before the memory's fit (minutes on a large cohort)
        patch.setattr("deeprc_hopfield.training.loop.fit_clone_memory", no_fit)
        refused = cli("--fold", "1", "--config", config, "--resume")
    assert refused.returncode == 1 and "of another run (its subjects differ)" in refused.stderr
    assert "Traceback" not in refused.stderr

    # another training config: the checkpoint is left aside and training starts from update 0
    (tmp_path / "other").mkdir()
    other = _config(tmp_path / "other", n_updates=6)
    fresh = cli("--fold", "0", "--config", other, "--resume-if-possible")
    assert fresh.returncode == 0, fresh.stderr
    assert "not resuming" in fresh.stderr and "its training differ" in fresh.stderr
    assert "resumed from" not in fresh.stderr
    expected = train(easy_cohort["store"], tmp_path / "expected", other, **fold)
    c, d = _weights(expected), _weights(tmp_path / "part")
    assert all(torch.equal(c[k], d[k]) for k in c)
    assert pd.read_csv(tmp_path / "part" / "metrics.csv")["update"].tolist() == [4, 6]


def test_ctrl_c_during_training_keeps_the_checkpoint_and_says_how_to_go_on(easy_cohort, tmp_path):
    """A real SIGINT to `train`: no model folder, the last checkpoint kept, and a last line that names it."""
    out, checkpoint = tmp_path / "m", tmp_path / "m.checkpoint"
    config = _config(tmp_path, n_updates=100_000, checkpoint_every=2, evaluate_every=2)
    process = subprocess.Popen([sys.executable, "-m", "deeprc_hopfield", "train", "--store", easy_cohort["store"],
                                "--split", easy_cohort["split"], "--fold", "0", "--out", out, "--config", config,
                                "--device", "cpu", "--threads", "1"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (checkpoint / "progress.json").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGINT, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        f"deeprc-hopfield train: interrupted; the model was not written; its checkpoint {checkpoint} is kept: run "
        "the command again with --resume-if-possible (or --resume) to go on from it")
    assert json.loads((checkpoint / "progress.json").read_text())["update"] >= 2
    assert not out.exists() and "Traceback" not in stderr


def test_inspect_summarises_a_model_and_a_folder_of_models(easy_cohort, tmp_path):
    models = tmp_path / "models"
    model = train(easy_cohort["store"], models / "fold0", _config(tmp_path, n_updates=2), split=easy_cohort["split"],
                  fold=0, device="cpu", progress=False)
    training = json.loads((model / "config.json").read_text())["training"]
    summary = deeprc_cli("inspect", model)
    assert summary.returncode == 0, summary.stderr
    lines = {line[:14].strip(): line[14:] for line in summary.stdout.splitlines()}  # a column of names, then text
    assert lines["model"].startswith(f"{model} (saved by deeprc-hopfield {__version__}, schema 1; weights sha256 ")
    assert lines["labels"] == "label (binary: 0, 1)"
    assert lines["seeded k-mers"] == ", ".join(training["seeded_kmers"])
    assert lines["new files QC"] == ("junctions (CDR3 + anchors) of 4-40 residues, every locus (10x files: TRB) (as its "
                                     "store was ingested)")
    assert lines["trained on"] == (f"{easy_cohort['store']}: {len(training['fit_subjects'])} fitting and "
                                   f"{len(training['validation_subjects'])} validation repertoires")
    assert lines["training"].startswith("best update ") and "validation repertoires (Brier" in lines["calibration"]
    assert (models / "fold0.checkpoint").is_dir()  # training keeps it beside the model: it is no model
    folder = deeprc_cli("inspect", models).stdout  # the folder's one model, after a summary of the folder
    assert folder.startswith(f"fold models   1 in {models}: fold0\n") and folder.endswith("\n\n" + summary.stdout)
    (models / "fold1").mkdir()
    neither = deeprc_cli("inspect", models / "fold1")
    assert neither.returncode == 1 and neither.stderr.strip().splitlines() == [
        f"deeprc-hopfield inspect: error: {models / 'fold1'}: a folder, but neither a model (config.json) nor a "
        "folder of models; inspect reads a store (.h5) or a model folder"]


def test_tampered_truncated_and_wrong_version_models_are_refused(easy_cohort, tmp_path):
    model_dir = train(easy_cohort["store"], tmp_path / "m", _config(tmp_path, n_updates=2), device="cpu",
                      progress=False)
    assert load_model(model_dir).labels == {"label": {"kind": "binary", "classes": ["0", "1"]}}
    weights = model_dir / "weights.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-10] + bytes(10))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(model_dir)
    weights.write_bytes(original[: len(original) // 2])
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(model_dir)
    weights.write_bytes(original)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "schema_version": 99}))
    with pytest.raises(ModelFileError, match="version 99"):
        load_model(model_dir)


def test_a_model_of_another_package_version_loads_with_one_warning_naming_both(easy_cohort, tmp_path, caplog,
                                                                                 monkeypatch):
    """A model records the package version that saved it; one saved by another version (or by none recorded) loads,
    with one warning line a process for each such version however often it is loaded, and `inspect` says both."""
    from deeprc_hopfield import saved_model

    monkeypatch.setattr(saved_model, "_versions_noted", set())  # as a new process: none warned of yet
    model = train(easy_cohort["store"], tmp_path / "m", _config(tmp_path, n_updates=2), device="cpu", progress=False)
    config = json.loads((model / "config.json").read_text())
    assert config["package_version"] == __version__
    caplog.set_level("INFO", logger="deeprc_hopfield")
    load_model(model)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # this version's own model: nothing said

    (model / "config.json").write_text(json.dumps({**config, "package_version": "0.0.9"}))
    caplog.clear()
    for _ in range(2):
        assert load_model(model).labels == {"label": {"kind": "binary", "classes": ["0", "1"]}}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{model} was saved by deeprc-hopfield 0.0.9 and is loaded by {__version__}: its scores may differ from "
        "those 0.0.9 gave (said once for the models of 0.0.9)"]
    shown = deeprc_cli("inspect", model)
    assert shown.returncode == 0 and f"{model} (saved by deeprc-hopfield 0.0.9; this is {__version__}, schema 1;" \
        in shown.stdout, shown.stdout

    del config["package_version"]  # a config.json without it: loads, with a note
    (model / "config.json").write_text(json.dumps(config))
    caplog.clear()
    for _ in range(2):
        load_model(model)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{model}: its config.json names no deeprc-hopfield version (saved by a version before "
        f"{saved_model.VERSION_RECORDED_SINCE} recorded it, or edited); loaded by {__version__} as it is"]
    shown = deeprc_cli("inspect", model)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr
    assert f"{model} (saved by a deeprc-hopfield before {saved_model.VERSION_RECORDED_SINCE} recorded its version; " \
           f"this is {__version__}, schema 1;" in shown.stdout, shown.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["predict", "--model", "{tmp}/nope", "--store", "{store}", "--out", "{tmp}/p.csv"], "model directory not found"),
        (["train", "--store", "{store}", "--out", "{tmp}/m", "--label-column", "cmv"], "no label 'cmv'"),
        (["train", "--store", "{store}", "--out", "{tmp}/m", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "--store", "{tmp}/missing.h5", "--out", "{tmp}/m"], "store not found"),
        (["train", "--store", "{store}", "--out", "{tmp}/m", "--resume"], "--resume, but there is no checkpoint"),
    ],
)
def test_bad_input_gets_one_line(easy_cohort, tmp_path, args, words):
    args = [a.format(tmp=tmp_path, store=easy_cohort["store"]) for a in args]
    result = deeprc_cli(*args)
    assert result.returncode == 1 and words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # refused before any work: nothing logged before it
    assert not (tmp_path / "m").exists() and not (tmp_path / "p.csv").exists()


#: A row that makes a copy of a cohort file another repertoire (a renamed training file is that training subject).
NEW_ROW = "\t".join(["x1", "", "CASSLGQGF", "TRBV5-1*01", "TRBJ2-7*01", "3", "T", "TRB"]).encode() + b"\n"


def test_predict_from_files_without_metadata_and_an_empty_repertoire(easy_cohort, tmp_path):
    model_dir = train(easy_cohort["store"], tmp_path / "m", _config(tmp_path, n_updates=2), device="cpu",
                      progress=False)
    folder = tmp_path / "new"
    folder.mkdir()
    for name in ("rep001.tsv", "rep002.tsv"):  # new names and one row more: the model was trained on rep001, rep002
        (folder / f"new_{name}").write_bytes((easy_cohort["repertoires"] / name).read_bytes() + NEW_ROW)
    out = tmp_path / "p.csv"
    result = deeprc_cli("predict", "--model", model_dir, "--repertoires", folder, "--out", out)
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(out)
    assert predictions["subject_id"].tolist() == ["new_rep001", "new_rep002"] and "true_label" not in predictions
    assert predictions["probability"].between(0, 1).all()

    lines = (folder / "new_rep002.tsv").read_text().splitlines()
    unproductive = [line.replace("\tT\t", "\tF\t") for line in lines[1:]]
    (folder / "new_rep002.tsv").write_text("\n".join([lines[0]] + unproductive))
    out.unlink()
    result = deeprc_cli("predict", "--model", model_dir, "--repertoires", folder, "--out", out)
    assert result.returncode == 1 and "no sequence left after quality control" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_fold_ensemble_scores_each_fold_with_the_models_that_held_it_out(easy_cohort, tmp_path):
    """A folder of fold models with --split/--fold K scores fold K with the models that never saw it (here
    fold K's own), never with a model fitted or validated on it; on subjects that every model held out it
    is the ensemble (mean probability and spread)."""
    from deeprc_hopfield.infer import file_entries, predict, subjects_from_files, subjects_from_store

    models = tmp_path / "models"
    for fold in (0, 1):
        train(easy_cohort["store"], models / f"fold{fold}", _config(tmp_path, n_updates=2), split=easy_cohort["split"],
              fold=fold, device="cpu", progress=False)
    single = [load_model(models / f"fold{k}") for k in (0, 1)]
    for fold in (0, 1):
        out = tmp_path / f"fold{fold}.csv"
        result = deeprc_cli("predict", "--model", models, "--store", easy_cohort["store"], "--split",
                            easy_cohort["split"], "--fold", fold, "--out", out)
        assert result.returncode == 0, result.stderr
        assert f"with the 1 of 2 models that held them all out: fold{fold}" in result.stderr
        predictions = pd.read_csv(out, dtype={"subject_id": str})
        assert list(predictions.columns) == ["subject_id", "probability", "probability_sd", "predicted", "true_label",
                                             *CHECKS]
        assert predictions["probability_sd"].isna().all()  # an ensemble's columns, empty: one model scored each
        held_out = set(easy_cohort["meta"]["subject_id"].astype(str)[easy_cohort["folds"] == fold])
        assert set(predictions["subject_id"]) == held_out
        alone = predict([single[fold]], subjects_from_store(easy_cohort["store"], single[fold], held_out),
                        torch.device("cpu"))[0]
        np.testing.assert_allclose(predictions["probability"], alone["probability"], rtol=1e-6)

    # new patients (repertoires of no training donor: a training file with a row more would be a sample of that
    # training subject's donor, scored by the model that held it out) were held out by both models: the ensemble
    # scores them
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(2)
    for name in ("rep000.tsv", "rep001.tsv", "rep002.tsv"):
        write_airr(new / f"new_{name}", rng, 300)
    out = tmp_path / "new.csv"
    result = deeprc_cli("predict", "--model", models, "--repertoires", new, "--out", out)
    assert result.returncode == 0, result.stderr
    ensemble = pd.read_csv(out)
    assert list(ensemble.columns) == ["subject_id", "probability", "probability_sd", "predicted", *CHECKS]
    per_model = [predict([m], subjects_from_files(file_entries(new, None), m), torch.device("cpu"))[0] for m in single]
    expected = (per_model[0]["probability"] + per_model[1]["probability"]) / 2
    np.testing.assert_allclose(ensemble["probability"], expected, rtol=2e-6, atol=1e-12)  # each of the three to 7 digits
    assert (ensemble["probability_sd"] > 0).all()


KILL_BETWEEN_RENAMES = """
import os, signal, sys
real_replace = os.replace

def replace(src, dst):  # the checkpoint's replacement: old renamed aside, then (never) the new one in
    real_replace(src, dst)
    if str(src).endswith(".checkpoint") and str(dst).endswith(".old"):
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace
from deeprc_hopfield.training import train
train(sys.argv[1], sys.argv[2], sys.argv[3], device="cpu", progress=False)
"""


def test_a_kill_between_the_checkpoint_renames_loses_one_checkpoint_at_most(easy_cohort, tmp_path):
    """Checkpoints are replaced as new beside, old aside, new in, old removed: killed (SIGKILL) right after
    the old one went aside, a resumed run continues from it to the weights of an uninterrupted run."""
    torch.set_num_threads(1)
    config = _config(tmp_path, n_updates=12)  # checkpoints at updates 4, 8 (killed), 12
    full = train(easy_cohort["store"], tmp_path / "full", config, device="cpu", progress=False)
    killed = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(easy_cohort["store"]),
                             str(tmp_path / "part"), str(config)], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -signal.SIGKILL
    checkpoint = tmp_path / "part.checkpoint"
    assert not checkpoint.exists() and len(list(tmp_path.glob(".part.checkpoint.*.old"))) == 1
    resumed = train(easy_cohort["store"], tmp_path / "part", config, device="cpu", resume=True, progress=False)
    assert json.loads((checkpoint / "progress.json").read_text())["update"] == 12
    assert not list(tmp_path.glob(".part.checkpoint.*"))  # the aside copy went back, the partial one away
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bfloat16_training_and_prediction_match_float32(easy_cohort, tmp_path):
    """The mixed-precision path (CUDA's default) runs here on the CPU: a model trained and scored with
    bfloat16 autocast gives the probabilities of float32 within 0.03 (measured: 0.015 at most, near p = 0.5
    where the sigmoid is steepest; bfloat16 keeps about 3 significant digits)."""
    from deeprc_hopfield.devices import autocast
    from deeprc_hopfield.infer import predict_outputs
    from deeprc_hopfield.store import RepertoireStore

    torch.set_num_threads(1)
    probabilities = {}
    with RepertoireStore(easy_cohort["store"]) as store:
        repertoires = [store.repertoire(i) for i in range(len(store))]
    for precision in ("float32", "bfloat16"):
        model_dir = train(easy_cohort["store"], tmp_path / precision, _config(tmp_path, precision=precision),
                          split=easy_cohort["split"], fold=0, device="cpu", progress=False)
        model = load_model(model_dir).model
        for scored in ("float32", "bfloat16"):
            with autocast(torch.device("cpu"), None if scored == "float32" else torch.bfloat16):
                outputs = predict_outputs(model, repertoires, torch.device("cpu"))
            probabilities[precision, scored] = torch.sigmoid(outputs["label"].float())
    reference = probabilities["float32", "float32"]
    for key, value in probabilities.items():
        assert float((value - reference).abs().max()) < 0.03, key
    assert not torch.equal(probabilities["float32", "bfloat16"], reference)  # autocast did change the arithmetic


def test_train_never_replaces_a_folder_it_did_not_write(easy_cohort, tmp_path):
    """`train --out results` must not delete the user's folder: refused in one line before any work, --force
    or not; an earlier model is replaced only with --force; an OUT.checkpoint that is not a checkpoint is kept."""
    from deeprc_hopfield.io import OUTPUT_MARKER
    from deeprc_hopfield.saved_model import is_model_folder

    config = _config(tmp_path, n_updates=2)

    def cli(out: Path, *extra: str) -> subprocess.CompletedProcess:
        return deeprc_cli("train", "--store", easy_cohort["store"], "--out", out, "--config", config, "--device", "cpu",
                          "--threads", "1", *extra)

    results = tmp_path / "results"
    results.mkdir()
    (results / "analysis.csv").write_text("keep me")
    for force in ((), ("--force",), ("--resume-if-possible",)):  # resuming replaces only an earlier model too
        refused = cli(results, *force)
        assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [  # one line: no training began
            f"deeprc-hopfield train: error: {results}: exists and is not an earlier output of `deeprc-hopfield "
            "train`; it was left as it is and nothing was written (choose another --out; --force replaces only an "
            "earlier output of the same command)"]
    assert os.listdir(results) == ["analysis.csv"] and (results / "analysis.csv").read_text() == "keep me"
    assert not (tmp_path / "results.checkpoint").exists()

    model = tmp_path / "model"
    assert cli(model).returncode == 0 and (model / OUTPUT_MARKER).is_file()
    first = (model / "config.json").read_text()
    refused = cli(model, "--seed", "1")
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        f"deeprc-hopfield train: error: {model}: holds an earlier output of `deeprc-hopfield train`; nothing was "
        "written (add --force to replace it)"]
    assert (model / "config.json").read_text() == first
    assert cli(model, "--seed", "1", "--force").returncode == 0
    assert json.loads((model / "config.json").read_text())["training"]["seed"] == 1
    (model / OUTPUT_MARKER).unlink()  # a model written before output markers is known by its config.json
    assert is_model_folder(model) and not is_model_folder(results)

    other = tmp_path / "other"
    (tmp_path / "other.checkpoint").mkdir()
    (tmp_path / "other.checkpoint" / "mine.txt").write_text("keep me")
    refused = cli(other, "--force")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert f"{other}.checkpoint: exists and is not a training checkpoint" in refused.stderr
    assert not other.exists() and os.listdir(tmp_path / "other.checkpoint") == ["mine.txt"]


def test_predict_and_attend_know_their_own_tables(tmp_path):
    """How `predict --force` and `attend --force` tell their earlier output from a user's table: the header."""
    from deeprc_hopfield.infer import is_attended_table, is_predictions_table

    tables = {"p.csv": "subject_id,probability,predicted,true_label\n", "m.csv": "subject_id,cmv_predicted,x\n",
              "meta.csv": "subject_id,filename,label\n", "b.csv": "subject_id,fold,probability,true_label,score\n",
              "a.tsv": "repertoire_id\trank\tattention\tjunction_aa\n", "x.tsv": "repertoire_id\tjunction_aa\n",
              "c.tsv": "repertoire_id\tprobability\tpredicted\trank\tattention\tjunction_aa\n",  # with the call
              "r.tsv": "repertoire_id\tscore\trank\tjunction_aa\tattention\n"}
    for name, header in tables.items():
        (tmp_path / name).write_text(header)
    assert [n for n in tables if is_predictions_table(tmp_path / n)] == ["p.csv", "m.csv"]
    assert [n for n in tables if is_attended_table(tmp_path / n)] == ["a.tsv", "c.tsv"]
    assert not is_predictions_table(tmp_path / "absent.csv") and not is_attended_table(tmp_path)


def test_resume_finds_a_checkpoint_left_aside_whatever_its_name(tmp_path):
    """A checkpoint renamed aside by an interrupted replacement counts for --resume, also where the model's name
    holds characters a glob pattern would read (`m[1]`); an unreadable one is refused at once."""
    from deeprc_hopfield.training.checkpoint import require_checkpoint
    from deeprc_hopfield.training.config import TrainingError

    checkpoint = tmp_path / "m[1].checkpoint"
    with pytest.raises(TrainingError, match=r"--resume, but there is no checkpoint"):
        require_checkpoint(checkpoint)
    (tmp_path / ".m[1].checkpoint.x1y2.old").mkdir()
    require_checkpoint(checkpoint)
    checkpoint.mkdir()
    (checkpoint / "progress.json").write_text('{"update": 4}')
    (checkpoint / "state.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(TrainingError, match=r"--resume, but the checkpoint .* is unreadable"):
        require_checkpoint(checkpoint)  # before any work, not after the clone memory's fit


@pytest.fixture(scope="module")
def public_cohort(tmp_path_factory) -> dict:
    """20 repertoires x 300 sequences with 5 public clones in 60% of positives; fold 0 of 4 held out (2 validation
    repertoires, one of each class: a DeLong standard error is undefined there)."""
    from deeprc_hopfield.simulate import SimulationSettings

    return simulated_store(tmp_path_factory.mktemp("public"), SimulationSettings(
        n_repertoires=20, sequences_per_repertoire=300, witness_rate=0.05, public_clones=5, public_rate=0.6))


def test_quiet_training_on_a_small_validation_set_prints_no_warning(public_cohort, tmp_path):
    config = _config(tmp_path, n_updates=20, evaluate_every=10, sample_size=300)
    result = deeprc_cli("train", "--store", public_cohort["store"], "--split", public_cohort["split"], "--fold", 0,
                        "--config", config, "--out", tmp_path / "m", "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    training = json.loads((tmp_path / "m" / "config.json").read_text())["training"]
    assert len(training["validation_subjects"]) == 2 and training["memory_choice"]["gain_z"] is None
    assert "RuntimeWarning" not in result.stderr and "UserWarning" not in result.stderr, result.stderr


def test_a_label_column_given_twice_is_refused_in_one_line(public_cohort, tmp_path):
    result = deeprc_cli("train", "--store", public_cohort["store"], "--out", tmp_path / "m", "--label-column", "label",
                        "--label-column", "label")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "deeprc-hopfield train: error: --label-column 'label' given twice; name each label once"]
    assert not (tmp_path / "m").exists()


def test_too_few_repertoires_for_inner_cv_without_a_split_are_not_told_to_use_fewer_folds(public_cohort, tmp_path):
    meta = public_cohort["meta"]
    few = pd.concat([meta[meta["label"] == c].head(2) for c in (0, 1)])  # 1 of each class left to fit on
    few[["subject_id", "filename", "label"]].to_csv(tmp_path / "few.csv", index=False)
    store = tmp_path / "few.h5"
    assert deeprc_cli("ingest", "--metadata", tmp_path / "few.csv", "--repertoires", public_cohort["repertoires"],
                      "--out", store, "-q").returncode == 0
    result = deeprc_cli("train", "--store", store, "--config", _config(tmp_path, n_updates=2), "--out", tmp_path / "m",
                        "--device", "cpu")
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "clone memory: left empty (" in line]
    assert len(said) == 1 and "inner cross-validation" in said[0], result.stderr
    assert "fewer folds" not in said[0].replace("a split with fewer folds", ""), said[0]  # advice for a split only
