"""The scoring guard of `predict`, `attend` and `interpret`: a subject is never scored by a model that was
fitted or validated on it, unless --allow-training-subjects, which the outputs then say in a column."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import deeprc_cli

from deeprc_hopfield.infer import TRAINING_SUBJECT_COLUMN, TrainingSubjectsError, held_out_models
from deeprc_hopfield.interpret import summarise
from deeprc_hopfield.saved_model import SavedModel
from deeprc_hopfield.training import train
from test_train import _config, easy_cohort  # noqa: F401  (the module-scoped cohort fixture)


def _saved(name: str, fit: list[str], validation: list[str]) -> SavedModel:
    return SavedModel(model=None, labels={}, v_genes=[], j_genes=[], path=Path("models") / name,
                      training={"fit_subjects": fit, "validation_subjects": validation})


def test_held_out_models_keeps_the_models_that_never_saw_the_subjects():
    fold0 = _saved("fold0", ["c", "d"], ["e"])  # holds out a, b
    fold1 = _saved("fold1", ["a", "b"], ["e"])  # holds out c, d
    assert held_out_models([fold0, fold1], ["b", "a"]) == ([fold0], set())
    assert held_out_models([fold0, fold1], ["new"]) == ([fold0, fold1], set())
    assert held_out_models([SavedModel(None, {}, [], [])], ["a"])[1] == set()  # nothing recorded: nothing known

    with pytest.raises(TrainingSubjectsError) as refused:
        held_out_models([fold0, fold1], ["a", "c", "new"])
    message = str(refused.value)
    assert message.startswith("models: each of the 2 models was fitted or validated on some of the 3 subjects "
                              "to score (2 in all: a, c)") and "--allow-training-subjects" in message
    assert held_out_models([fold0, fold1], ["a", "c", "new"], allow=True) == ([fold0, fold1], {"a", "c"})

    many = _saved("big", [f"s{i}" for i in range(8)], ["v"])
    with pytest.raises(TrainingSubjectsError, match=r"^models/big: the model was fitted or validated on 9 of the 10 "
                                                    r"subjects to score \(s0, s1, s2, s3, s4 and 4 more\)"):
        held_out_models([many], ["new", *(f"s{i}" for i in range(8)), "v"])


@pytest.fixture(scope="module")
def fold0_model(easy_cohort, tmp_path_factory) -> Path:  # noqa: F811
    """A quick model of fold 0 (fitted and validated on folds 1-3)."""
    root = tmp_path_factory.mktemp("guard")
    return train(easy_cohort["store"], root / "fold0", _config(root, n_updates=2), split=easy_cohort["split"], fold=0,
                 device="cpu", progress=False)


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    return deeprc_cli(*args, "--threads", "1")


def _held_out(cohort: dict) -> set[str]:
    return set(cohort["meta"]["subject_id"].astype(str)[cohort["folds"] == 0])


def test_training_subjects_are_refused_in_one_line_writing_nothing(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    store, files = ["--store", easy_cohort["store"]], ["--repertoires", easy_cohort["repertoires"], "--metadata",
                                                      easy_cohort["metadata"]]
    cases = [("predict", store, tmp_path / "p.csv"), ("attend", files, tmp_path / "a.tsv"),
             ("interpret", store, tmp_path / "interpretation"),
             ("predict", [*store, "--split", easy_cohort["split"], "--fold", "1"], tmp_path / "p1.csv")]
    for command, source, out in cases:
        result = _cli(command, "--model", fold0_model, *source, "--out", out)
        assert result.returncode == 1, (command, result.stderr)
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and "Traceback" not in result.stderr
        assert errors[0].startswith(f"deeprc-hopfield {command}: error: {fold0_model}: the model was fitted or "
                                    "validated on ")
        seen = re.search(r"on (\d+) of the (\d+) subjects to score \((.*) and (\d+) more\)", errors[0])
        named = seen.group(3).split(", ")  # five named, then the count of the others
        assert len(named) == 5 and int(seen.group(4)) == int(seen.group(1)) - 5
        assert not set(named) & _held_out(easy_cohort) and "--allow-training-subjects" in errors[0]
        assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_allowed_training_subjects_are_marked_in_every_output(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    held_out = _held_out(easy_cohort)
    predicted = _cli("predict", "--model", fold0_model, "--store", easy_cohort["store"], "--allow-training-subjects",
                     "--out", tmp_path / "p.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert "WARNING the model was fitted or validated on 30 of the 40 subjects to score" in predicted.stderr
    table = pd.read_csv(tmp_path / "p.csv", dtype={"subject_id": str})
    assert list(table.columns) == ["subject_id", "probability", "predicted", "true_label", TRAINING_SUBJECT_COLUMN]
    assert (table[TRAINING_SUBJECT_COLUMN] == ~table["subject_id"].isin(held_out)).all()

    attended = _cli("attend", "--model", fold0_model, "--store", easy_cohort["store"], "--top", "3",
                    "--allow-training-subjects", "--out", tmp_path / "a.tsv")
    assert attended.returncode == 0, attended.stderr
    top = pd.read_csv(tmp_path / "a.tsv", sep="\t", dtype={"repertoire_id": str})
    assert len(top) == 120 and (top[TRAINING_SUBJECT_COLUMN] == ~top["repertoire_id"].isin(held_out)).all()

    # interpret: two held-out and two training repertoires, marked in every table and listed in the info
    chosen = sorted(held_out)[:2] + sorted(set(easy_cohort["meta"]["subject_id"].astype(str)) - held_out)[:2]
    out = tmp_path / "interpretation"
    interpreted = _cli("interpret", "--model", fold0_model, "--store", easy_cohort["store"], "--subjects", *chosen,
                       "--top", "2", "--allow-training-subjects", "--out", out)
    assert interpreted.returncode == 0, interpreted.stderr
    for name in ("ranked_sequences.tsv", "motifs.tsv", "contributions.tsv"):
        assert pd.read_csv(out / name, sep="\t")[TRAINING_SUBJECT_COLUMN].all(), name
    assert json.loads((out / "interpretation.json").read_text())[TRAINING_SUBJECT_COLUMN] == chosen[2:]
    summary = summarise([out], easy_cohort["store"], tmp_path / "summary", top=2)  # carried into the summary
    assert pd.read_csv(summary / "ranked_sequences.tsv", sep="\t")[TRAINING_SUBJECT_COLUMN].all()
    assert json.loads((summary / "interpretation.json").read_text())[TRAINING_SUBJECT_COLUMN] == chosen[2:]


def test_held_out_subjects_are_scored_as_before(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    fold = ["--split", easy_cohort["split"], "--fold", "0"]
    predicted = _cli("predict", "--model", fold0_model, "--store", easy_cohort["store"], *fold, "--out",
                     tmp_path / "p.csv")
    assert predicted.returncode == 0 and "WARNING" not in predicted.stderr, predicted.stderr
    table = pd.read_csv(tmp_path / "p.csv", dtype={"subject_id": str})
    assert list(table.columns) == ["subject_id", "probability", "predicted", "true_label"]
    assert set(table["subject_id"]) == _held_out(easy_cohort)

    out = tmp_path / "interpretation"
    interpreted = _cli("interpret", "--model", fold0_model, "--store", easy_cohort["store"], *fold, "--top", "2",
                       "--out", out)
    assert interpreted.returncode == 0, interpreted.stderr
    assert TRAINING_SUBJECT_COLUMN not in pd.read_csv(out / "ranked_sequences.tsv", sep="\t")
    assert TRAINING_SUBJECT_COLUMN not in json.loads((out / "interpretation.json").read_text())

    # the flag on held-out subjects: the column is there, and false
    allowed = _cli("predict", "--model", fold0_model, "--store", easy_cohort["store"], *fold,
                   "--allow-training-subjects", "--out", tmp_path / "q.csv")
    assert allowed.returncode == 0 and "WARNING" not in allowed.stderr, allowed.stderr
    assert not pd.read_csv(tmp_path / "q.csv")[TRAINING_SUBJECT_COLUMN].any()
