"""The scoring guard of `predict`, `attend` and `interpret`: a subject is never scored by a model that was
fitted or validated on it, unless --allow-training-subjects, which the outputs then say in a column."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import numpy as np
from conftest import deeprc_cli, write_airr

from deeprc_hopfield import __version__
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.infer import (TRAINING_SUBJECT_COLUMN, UNKNOWN_V_COLUMN, UNKNOWN_V_WARNING, WARNINGS_COLUMN,
                                   TrainingGuard, TrainingSubjectsError, file_entries, held_out_models, load_models,
                                   subject_groups, subjects_from_files, subjects_from_store)
from deeprc_hopfield.interpret import interpret, summarise
from deeprc_hopfield.saved_model import ModelFileError, SavedModel, load_model
from deeprc_hopfield.training import train
from test_train import CHECKS, _config, easy_cohort  # noqa: F401  (the module-scoped cohort fixture)


def _saved(name: str, fit: list[str], validation: list[str]) -> SavedModel:
    return SavedModel(model=None, labels={}, v_genes=[], j_genes=[], path=Path("models") / name,
                      training={"fit_subjects": fit, "validation_subjects": validation})


def test_an_ensemble_of_two_cross_validations_is_warned_of_naming_the_odd_model(caplog):
    """fold0 and fold1 of a 2-fold split beside fold2 of an earlier 3-fold one: warned, naming fold2; the folds of one
    split (all or some), or models each trained on the whole cohort, say nothing."""
    import logging

    from deeprc_hopfield.infer import _check_ensemble

    subjects = [f"s{i}" for i in range(12)]
    two = [_saved(f"fold{k}", subjects[6 - 6 * k:12 - 6 * k][:4], subjects[6 - 6 * k:12 - 6 * k][4:]) for k in (0, 1)]
    stale = _saved("fold2", subjects[:6], subjects[6:8])  # trained on 8 of 12: a third held out
    whole = [_saved(f"seed{k}", subjects[:10], subjects[10:]) for k in range(2)]
    partial = [_saved(f"fold{k}", [s for s in subjects if s not in subjects[3 * k:3 * k + 3]], [])
               for k in (0, 1)]  # 2 of the 4 folds of one split
    for models, warned in ((two, False), (whole, False), (partial, False), (two + [stale], True)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="deeprc_hopfield"):
            _check_ensemble(models, Path("models"))
        said = [r.getMessage() for r in caplog.records if "not the folds of one cross-validation" in r.getMessage()]
        assert bool(said) == warned, said
    assert "fold2 may be of another split" in said[0]


def test_held_out_models_keeps_the_models_that_never_saw_the_subjects():
    fold0 = _saved("fold0", ["c", "d"], ["e"])  # holds out a, b
    fold1 = _saved("fold1", ["a", "b"], ["e"])  # holds out c, d
    assert held_out_models([fold0, fold1], ["b", "a"]) == ([fold0], set())
    assert held_out_models([fold0, fold1], ["new"]) == ([fold0, fold1], set())
    assert held_out_models([SavedModel(None, {}, [], [])], ["a"])[1] == set()  # nothing recorded: nothing known

    guard = TrainingGuard([fold0, fold1])  # predict and attend: each subject by the models that held it out
    plan = guard.planned(["a", "c", "new"])
    assert plan == {"a": [fold0], "c": [fold1], "new": [fold0, fold1]}
    with pytest.raises(TrainingSubjectsError, match=r"^models: all 2 models were fitted or validated on 1 of the 2 "
                                                    r"subjects to score \(e\): .*--split/--fold K keeps fold K's"):
        guard.planned(["e", "new"])
    hashed = replace(fold0, training={**fold0.training, "subject_sha256": {"c": "cafe", "d": "beef"}})
    with pytest.raises(TrainingSubjectsError, match=r"^models/fold0: the model was fitted or validated on 1 of the 2 "
                                                    r"subjects to score \(PAT1 \(a copy of training subject d's file\)\)"):
        held_out_models([hashed], ["a", "PAT1"], digests={"a": "0000", "PAT1": "beef"})  # interpret: a store's copies
    assert TrainingGuard([hashed, fold1]).planned(["PAT1"], {"PAT1": "beef"}) == {"PAT1": [fold1]}

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


@pytest.fixture(scope="module")
def fold_models(easy_cohort, fold0_model, tmp_path_factory) -> Path:  # noqa: F811
    """A folder of two fold models: fold0 (fitted and validated on folds 1-3) and fold1 (on folds 0, 2, 3)."""
    root = tmp_path_factory.mktemp("folds")
    shutil.copytree(fold0_model, root / "models" / "fold0")
    train(easy_cohort["store"], root / "models" / "fold1", _config(root, n_updates=2), split=easy_cohort["split"],
          fold=1, device="cpu", progress=False)
    return root / "models"


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
    assert list(table.columns) == ["subject_id", "probability", "predicted", "true_label", TRAINING_SUBJECT_COLUMN,
                                   *CHECKS]
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
    assert list(table.columns) == ["subject_id", "probability", "predicted", "true_label", *CHECKS]
    assert set(table["subject_id"]) == _held_out(easy_cohort)
    assert (table[UNKNOWN_V_COLUMN] == 0).all() and table[WARNINGS_COLUMN].isna().all()  # its own store's genes
    written = pd.read_csv(tmp_path / "p.csv", dtype=str)["probability"]  # 7 significant digits, not float64's 16
    digits = written.str.replace(r"e-\d+$", "", regex=True).str.replace(".", "", regex=False).str.lstrip("0")
    assert (digits.str.len() <= 7).all() and written.str.len().max() > 3, written.tolist()
    assert (table["predicted"].astype(str) == np.where(table["probability"] >= 0.5, "1", "0")).all()

    # each attended row carries its repertoire's call: read alone, a control's top sequences look like a positive's
    both = _cli("predict", "--model", fold0_model, "--store", easy_cohort["store"], *fold, "--out", tmp_path / "b.csv",
                "--attended", tmp_path / "b.tsv", "--top", "3")
    assert both.returncode == 0, both.stderr
    attend = _cli("attend", "--model", fold0_model, "--store", easy_cohort["store"], *fold, "--top", "3", "--out",
                  tmp_path / "a.tsv")
    assert attend.returncode == 0, attend.stderr
    top = pd.read_csv(tmp_path / "b.tsv", sep="\t", dtype={"repertoire_id": str})
    assert list(top.columns) == ["repertoire_id", "probability", "predicted", "rank", "attention", "junction_aa",
                                 "v_call", "j_call", "duplicate_count", "family", "family_size"]
    calls = table.set_index("subject_id")
    assert len(top) == 3 * len(table) and (top["probability"].to_numpy() ==
                                           calls.loc[top["repertoire_id"], "probability"].to_numpy()).all()
    assert (top["predicted"].to_numpy() == calls.loc[top["repertoire_id"], "predicted"].to_numpy()).all()
    pd.testing.assert_frame_equal(top, pd.read_csv(tmp_path / "a.tsv", sep="\t", dtype={"repertoire_id": str}))
    from deeprc_hopfield.infer import is_attended_table
    assert is_attended_table(tmp_path / "b.tsv") and not is_attended_table(tmp_path / "b.csv")
    again = _cli("attend", "--model", fold0_model, "--store", easy_cohort["store"], *fold, "--top", "3", "--out",
                 tmp_path / "a.tsv", "--force")  # known as its own output: replaced
    assert again.returncode == 0, again.stderr

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


def _new_patients(cohort: dict, folder: Path, names: dict[str, str]) -> Path:
    """Held-out repertoire files of `cohort` copied into `folder` under new names (new name -> cohort file)."""
    folder.mkdir()
    for new, old in names.items():
        (folder / new).write_bytes((cohort["repertoires"] / old).read_bytes())
    return folder


def test_new_patient_files_are_named_by_their_name_less_extensions_and_never_twice(easy_cohort, fold0_model,
                                                                                   tmp_path):  # noqa: F811
    """Without --metadata a file's subject is its name less a table and a gzip extension (dots elsewhere kept); two
    files of one subject, as `a.tsv` beside `a.tsv.gz`, are refused; outputs of `predict` in the folder are skipped,
    as are broken links, each with a note; every file's dropped rows are logged by reason."""
    held = sorted(_held_out(easy_cohort))[:3]
    folder = _new_patients(easy_cohort, tmp_path / "new", {"Pat.day0.tsv": f"{held[0]}.tsv",
                                                           "Pat.day30.TSV": f"{held[1]}.tsv",
                                                           "2024.03.01_P7.airr.tsv": f"{held[2]}.tsv"})
    with open(folder / "Pat.day0.tsv", "a") as handle:  # one row with a stop codon: dropped, and said so
        handle.write("\t".join(["x1", "", "CASS*LGF", "TRBV5-1*01", "TRBJ2-7*01", "3", "T", "TRB"]) + "\n")
    (folder / "gone.tsv").symlink_to(tmp_path / "nowhere.tsv")
    (folder / "more").mkdir()
    first = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", folder / "p.csv",
                 "--attended", folder / "a.tsv")
    assert first.returncode == 0, first.stderr
    assert pd.read_csv(folder / "p.csv")["subject_id"].tolist() == ["2024.03.01_P7", "Pat.day0", "Pat.day30"]
    assert "broken link(s)" in first.stderr and "gone.tsv" in first.stderr
    assert "1 folder(s) in" in first.stderr and "are not read (only the folder's own files are): more" in first.stderr
    assert re.search(r"Pat\.day0: .*Pat\.day0\.tsv, format airr, 301 rows, 300 sequences kept \(dropped: stop_codon 1",
                     first.stderr), first.stderr

    again = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", tmp_path / "q.csv")
    assert again.returncode == 0, again.stderr
    assert "2 file(s) in" in again.stderr and "outputs of deeprc-hopfield" in again.stderr
    assert len(pd.read_csv(tmp_path / "q.csv")) == 3
    alone = _cli("predict", "--model", fold0_model, "--repertoires", folder / "Pat.day30.TSV", "--out", tmp_path / "o.csv")
    assert alone.returncode == 0, alone.stderr  # one file: that patient alone, named as in the folder, scored the same
    one = pd.read_csv(tmp_path / "o.csv")
    assert one["subject_id"].tolist() == ["Pat.day30"]
    assert one["probability"].iloc[0] == pytest.approx(
        pd.read_csv(tmp_path / "q.csv").set_index("subject_id").loc["Pat.day30", "probability"])

    (folder / "README.txt").write_text("sample sheet\tnotes\nP1\tday 0\n")  # no repertoire: how to leave it out
    notes = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", tmp_path / "n.csv")
    assert notes.returncode == 1 and "README.txt" in notes.stderr and "unrecognised repertoire format" in notes.stderr
    assert "move it out of the folder, or name the files to read with --metadata" in notes.stderr
    (folder / "README.txt").unlink()
    (folder / "Pat.day0.tsv.gz").write_bytes(gzip.compress((folder / "Pat.day0.tsv").read_bytes()))
    twice = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", tmp_path / "r.csv")
    assert twice.returncode == 1 and "Traceback" not in twice.stderr
    assert "files Pat.day0.tsv and Pat.day0.tsv.gz would both be subject 'Pat.day0'" in twice.stderr
    assert not (tmp_path / "r.csv").exists()


def _set_cells(path: Path, column: str, values: dict[int, str]) -> None:
    """Write `values` (line -> value; line 1 is the header) into `column` of a TSV file."""
    lines = path.read_text().splitlines()
    at = lines[0].split("\t").index(column)
    for line, value in values.items():
        fields = lines[line - 1].split("\t")
        fields[at] = value
        lines[line - 1] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")


def test_predict_names_every_file_that_cannot_be_used_and_writes_nothing(easy_cohort, fold0_model,
                                                                         tmp_path):  # noqa: F811
    """The audit's folder: a file with a count 'ten' on line 13, '-2' on line 19 and '1,234' on line 25, and a file
    that QC leaves empty, among good ones. Every file is read and one error names both files, each with its
    problems, as `ingest` does, before anything is written (no predictions, attended table or attention file)."""
    held = sorted(_held_out(easy_cohort))[:4]
    folder = _new_patients(easy_cohort, tmp_path / "new", {"PT01.tsv": f"{held[0]}.tsv", "PT03.tsv": f"{held[1]}.tsv",
                                                           "PT04_badrows.tsv": f"{held[2]}.tsv",
                                                           "PT05.tsv": f"{held[3]}.tsv"})
    _set_cells(folder / "PT04_badrows.tsv", "duplicate_count", {13: "ten", 19: "-2", 25: "1,234"})
    rows = len((folder / "PT05.tsv").read_text().splitlines())
    _set_cells(folder / "PT05.tsv", "junction_aa", {line: "CASS*GF" for line in range(2, rows + 1)})
    out = tmp_path / "out"
    result = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", out / "p.csv",
                  "--attended", out / "a.tsv", "--attention", out / "attention.h5")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    told = result.stderr[result.stderr.index("error:"):].splitlines()
    assert told == [
        "error: 2 of 4 repertoire files cannot be used, and nothing was written; fix them (or leave them out) and "
        "run again:",
        f"  {folder / 'PT04_badrows.tsv'}, line 13, column 'duplicate_count': count 'ten' is not a non-negative "
        "number; 2 more problems in this file:",
        "    line 19, column 'duplicate_count': count '-2' is not a non-negative number",
        "    line 25, column 'duplicate_count': count '1,234' is not a non-negative number (write counts without "
        "thousands separators)",
        f"  {folder / 'PT05.tsv'}: no sequence left after quality control ({rows - 1} rows; dropped: "
        f"stop_codon={rows - 1})"]
    assert not out.exists() or not list(out.iterdir())


def test_predict_reads_files_as_the_format_it_is_given(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    """A file of one `cdr3_aa` column matches no format by its header alone: `predict --format airr` reads it, as
    `ingest --format airr` does (IMGT CDR3s, given their anchors back); --format with --store is refused."""
    held = sorted(_held_out(easy_cohort))[0]
    junctions = pd.read_csv(easy_cohort["repertoires"] / f"{held}.tsv", sep="\t")["junction_aa"]
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "PT07.tsv").write_text("cdr3_aa\n" + "".join(f"{junction[1:-1]}\n" for junction in junctions))
    refused = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", tmp_path / "p.csv")
    assert refused.returncode == 1 and "unrecognised repertoire format" in refused.stderr
    assert "(columns found: cdr3_aa)" in refused.stderr
    read = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--format", "airr", "--out",
                tmp_path / "p.csv")
    assert read.returncode == 0, read.stderr
    assert "PT07: " in read.stderr and "format airr" in read.stderr
    assert pd.read_csv(tmp_path / "p.csv")["subject_id"].tolist() == ["PT07"]
    stored = _cli("predict", "--model", fold0_model, "--store", easy_cohort["store"], "--format", "airr", "--out",
                  tmp_path / "s.csv")
    assert stored.returncode == 1 and "--format goes with --repertoires" in stored.stderr
    from deeprc_hopfield.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # one definition: ingest's values and help
    given = {command: next((action.choices, action.default, action.help) for action in commands[command]._actions
                           if "--format" in action.option_strings) for command in ("ingest", "predict", "attend")}
    assert given["ingest"] == given["predict"] == given["attend"] and "airr" in given["ingest"][0]


def test_mixcr_default_file_names_give_the_sample_as_subject_id(tmp_path):
    """MiXCR's analyze names a sample's clone tables `<sample>.clones_TRB.tsv` (MiXCR 4) or
    `<sample>.clonotypes.TRB.txt` (MiXCR 3): the subject id is the sample; two chains of one sample are refused,
    naming MiXCR's one table a chain."""
    from deeprc_hopfield.infer import file_subject_id

    for name, subject in (("PT03.clones_TRB.tsv", "PT03"), ("PT03.clones_IGH.tsv.gz", "PT03"),
                          ("s11_LN.clonotypes.TRB.txt", "s11_LN"), ("s11.clonotypes.ALL.txt", "s11"),
                          ("PT03.clones.tsv", "PT03"), ("Pat.day0.tsv.gz", "Pat.day0"), ("rep1.airr.tsv", "rep1"),
                          ("clones.tsv", "clones"), ("x.clones_final.tsv", "x.clones_final")):
        assert file_subject_id(Path(name)) == subject, name
    folder = tmp_path / "mixcr"
    folder.mkdir()
    for name in ("PT03.clones_TRB.tsv", "PT04.clones_TRB.tsv"):
        (folder / name).write_text("cloneCount\taaSeqCDR3\n3\tCASSLGF\n")
    assert [entry.subject_id for entry in file_entries(folder, None)] == ["PT03", "PT04"]
    (folder / "PT03.clones_TRA.tsv").write_text("cloneCount\taaSeqCDR3\n3\tCAVSGF\n")
    with pytest.raises(DeepRCError, match=r"files PT03.clones_TRA.tsv and PT03.clones_TRB.tsv would both be subject "
                                          r"'PT03' .*\(MiXCR writes a clone table for each chain: keep those of the "
                                          r"model's chain in the folder\)"):
        file_entries(folder, None)


def test_predict_refuses_outputs_and_options_that_clash_before_any_work(easy_cohort, fold0_model,
                                                                        tmp_path):  # noqa: F811
    """Two outputs at one path (the second would replace the first), --top without --attended (it would be
    ignored), --metadata with --store (a store has its own): one line each, nothing written."""
    fold = ["--model", fold0_model, "--store", easy_cohort["store"], "--split", easy_cohort["split"], "--fold", "0"]
    cases = [(["--out", tmp_path / "p.csv", "--attended", tmp_path / "p.csv"], "--out and --attended name one file"),
             (["--out", tmp_path / "p.csv", "--attention", tmp_path / "." / "p.csv"], "--out and --attention name one"),
             (["--out", tmp_path / "p.csv", "--top", "5"], "--top goes with --attended"),
             (["--out", tmp_path / "p.csv", "--metadata", easy_cohort["metadata"]], "--metadata goes with --repertoires")]
    for options, message in cases:
        result = _cli("predict", *fold, *options)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not list(tmp_path.iterdir())


def test_new_patients_of_unknown_status_are_scored_with_an_empty_true_label(easy_cohort, fold0_model,
                                                                            tmp_path):  # noqa: F811
    """A new patient's label is often unknown: with --metadata, a missing label leaves `true_label` empty; a known one
    is spelled as the model's classes are (`1.0` is class '1')."""
    held = sorted(_held_out(easy_cohort))[:2]
    folder = _new_patients(easy_cohort, tmp_path / "new", {f"n{k}.tsv": f"{sid}.tsv" for k, sid in enumerate(held)})
    for text in ("subject_id\tfilename\tlabel\nn0\tn0.tsv\t1.0\nn1\tn1.tsv\tNA\n",
                 "subject_id;filename;label\n\nn0;n0.tsv;1,0\nn1;n1.tsv;\n"):  # Excel's decimal comma, a blank line
        (tmp_path / "meta.csv").write_text(text)
        result = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--metadata", tmp_path / "meta.csv",
                      "--out", tmp_path / "p.csv", "--force")
        assert result.returncode == 0, result.stderr
        table = pd.read_csv(tmp_path / "p.csv", dtype={"true_label": str})
        assert table["subject_id"].tolist() == ["n0", "n1"] and table["true_label"].tolist()[0] == "1"
        assert pd.isna(table["true_label"].iloc[1])
    (tmp_path / "meta.csv").write_text("subject_id,filename,label\n\nn0,n0.tsv,yes\nn1,n1.tsv,Yes\n")
    refused = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--metadata", tmp_path / "meta.csv",
                   "--out", tmp_path / "q.csv")
    assert refused.returncode == 1 and "values 'yes' (line 3) and 'Yes' (line 4) differ only in case" in refused.stderr


def test_new_patient_files_get_the_qc_of_the_models_store(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    """`predict --repertoires` reads files with the QC settings the model's store was ingested with (kept in its
    config.json), not the defaults; a store ingested otherwise is scored with a warning."""
    config = json.loads((fold0_model / "config.json").read_text())
    assert config["training"]["qc"] == {"min_length": 4, "max_length": 40, "chain": None}
    model = tmp_path / "short"
    shutil.copytree(fold0_model, model)
    config["training"]["qc"]["max_length"] = 12
    (model / "config.json").write_text(json.dumps(config))
    held = sorted(_held_out(easy_cohort))[0]
    folder = _new_patients(easy_cohort, tmp_path / "new", {"n0.tsv": f"{held}.tsv"})
    result = _cli("predict", "--model", model, "--repertoires", folder, "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    assert re.search(r"n0: .* \(dropped: too_long [1-9]", result.stderr), result.stderr
    stored = _cli("predict", "--model", model, "--store", easy_cohort["store"], "--split", easy_cohort["split"],
                  "--fold", "0", "--out", tmp_path / "s.csv")
    assert stored.returncode == 0 and "was ingested with other QC settings than the model's store (max_length 40 " \
                                      "against max_length 12)" in stored.stderr, stored.stderr


def test_a_file_the_user_cannot_read_is_one_line(easy_cohort, fold0_model, tmp_path, monkeypatch):  # noqa: F811
    """A permission error (or a full disk) is the state of the user's files, not a fault of the package: one line
    naming the file, no traceback. Permissions are simulated: the tests may run as root, who reads anything."""
    import deeprc_hopfield.readers.common as common

    def denied(path: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(common, "is_gzip", denied)
    folder = _new_patients(easy_cohort, tmp_path / "new", {"n0.tsv": f"{sorted(_held_out(easy_cohort))[0]}.tsv"})
    result = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", tmp_path / "p.csv")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"deeprc-hopfield predict: error: {folder / 'n0.tsv'}: " \
                                                     "permission denied"
    assert not (tmp_path / "p.csv").exists()


def test_a_folder_of_models_with_a_half_copied_one_is_refused(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    """A fold folder without its config.json (a half-finished copy) is refused by `predict` and `inspect`, not left
    out of the ensemble without a word; checkpoint folders beside the models are not models and are passed over."""
    models = tmp_path / "models"
    for name in ("fold0", "fold1"):
        shutil.copytree(fold0_model, models / name)
    (models / "fold0.checkpoint").mkdir()
    held = sorted(_held_out(easy_cohort))[:2]
    fold = ["--store", easy_cohort["store"], "--split", easy_cohort["split"], "--fold", "0"]
    whole = _cli("predict", "--model", models, *fold, "--out", tmp_path / "p.csv")
    assert whole.returncode == 0 and "ensemble of 2 models" in whole.stderr, whole.stderr
    (models / "fold2").mkdir()
    (models / "fold2" / "metrics.csv").write_text((fold0_model / "metrics.csv").read_text())
    for command, extra in (("predict", [*fold, "--out", tmp_path / "q.csv"]), ("inspect", [])):
        result = deeprc_cli(command, models if command == "inspect" else "--model", *([] if command == "inspect"
                                                                                     else [models]), *extra)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"{models}: fold2 holds no config.json beside the models fold0, fold1: not a whole model" \
               in result.stderr
    assert not (tmp_path / "q.csv").exists() and len(held) == 2


def test_a_repertoire_of_genes_the_model_never_saw_is_scored_with_a_warning(easy_cohort, fold0_model,
                                                                           tmp_path):  # noqa: F811
    """A TRA repertoire given to a TRB model is scored (the user may know better), with a warning that most of its
    V genes are unknown to the model, in the log and in predictions.csv (unknown_v_share 1 and a note in warnings,
    for whoever reads the table alone); a repertoire of the model's own genes gets none (share 0, no note). The
    columns do not disturb `evaluate` of the table (an external cohort's, true labels from --metadata)."""
    labels = easy_cohort["meta"].astype({"subject_id": str}).set_index("subject_id")["label"]
    held = sorted(_held_out(easy_cohort))
    held = [held[0], next(s for s in held if labels[s] != labels[held[0]])]  # one of each class, for evaluate
    folder = _new_patients(easy_cohort, tmp_path / "new", {"trb.tsv": f"{held[0]}.tsv"})
    rows = (easy_cohort["repertoires"] / f"{held[1]}.tsv").read_text().splitlines()
    alpha = [rows[0]] + [line.replace("TRBV", "TRAV").replace("TRBJ", "TRAJ").replace("\tTRB", "\tTRA")
                         for line in rows[1:]]
    (folder / "tra.tsv").write_text("\n".join(alpha) + "\n")
    metadata = tmp_path / "new.csv"
    metadata.write_text(f"subject_id,filename,label\ntrb,trb.tsv,{labels[held[0]]}\ntra,tra.tsv,{labels[held[1]]}\n")
    result = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--metadata", metadata,
                  "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "V genes are unknown to the model" in line]
    assert len(warned) == 1 and f"WARNING tra ({folder / 'tra.tsv'}): 100% of" in warned[0], result.stderr
    assert "(by locus: TRA 100%; e.g. TRAV" in warned[0] and "give --chain TRB to score its TRB sequences" in warned[0]
    table = pd.read_csv(tmp_path / "p.csv", dtype={"true_label": str}).set_index("subject_id")
    assert list(table.columns) == ["probability", "predicted", "true_label", *CHECKS]
    assert table.loc["tra", UNKNOWN_V_COLUMN] == 1 and table.loc["trb", UNKNOWN_V_COLUMN] == 0
    assert table.loc["tra", WARNINGS_COLUMN] == ("100% of V genes unknown to the model (TRA 100%; it knows TRB): "
                                                 "another chain or species than it learnt from? its score means "
                                                 "little")
    assert pd.isna(table.loc["trb", WARNINGS_COLUMN])  # empty for a clean subject
    assert '"' not in (tmp_path / "p.csv").read_text()  # the note needs no quoting: a CSV cell as simple as the rest

    scored = deeprc_cli("evaluate", "--predictions", f"deeprc={tmp_path / 'p.csv'}", "--out", tmp_path / "ev")
    assert scored.returncode == 0, scored.stderr
    metrics = pd.read_csv(tmp_path / "ev" / "metrics.tsv", sep="\t", dtype={"fold": str}).set_index("fold")
    assert metrics.loc["0", "n"] == 2


def _immunoseq(airr: Path, out: Path, family_only: float, unresolved: float, seed: int) -> pd.DataFrame:
    """An immunoSEQ v1 export of an AIRR repertoire file: genes as Adaptive names them (`TCRBV05-01*01`), a
    `family_only` share of the rows with `v_gene` 'unresolved' and the family alone (`TCRBV05`), as real exports
    have about a fifth, and an `unresolved` share with neither (no V call). Returns the AIRR rows, as read."""
    rows = pd.read_csv(airr, sep="\t", dtype=str)
    rng = np.random.default_rng(seed)
    draw = rng.random(len(rows))

    def adaptive(name: str, family: bool) -> str:
        found = re.fullmatch(r"TR([AB])([VJ])(\d+)(?:-(\d+))?\*?(\d+)?", name)
        if found is None:  # a name Adaptive has no form of (an orphon): kept
            return name
        head = f"TCR{found[1]}{found[2]}{int(found[3]):02d}"
        return head if family else f"{head}-{int(found[4] or 1):02d}*{found[5] or '01'}"

    v_gene = [("unresolved" if d < family_only + unresolved else adaptive(v, False))
              for v, d in zip(rows["v_call"], draw)]
    v_family = ["unresolved" if d < unresolved else adaptive(v, True) for v, d in zip(rows["v_call"], draw)]
    pd.DataFrame({"amino_acid": rows["junction_aa"], "templates": rows["duplicate_count"], "v_family": v_family,
                  "v_gene": v_gene, "j_gene": [adaptive(j, False) for j in rows["j_call"]],
                  "frame_type": "In"}).to_csv(out, sep="\t", index=False)
    return rows


def test_immunoseq_family_only_calls_are_no_unknown_genes(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    """An ordinary immunoSEQ export (a fifth of its rows with the V gene unresolved and the family alone,
    `TCRBV10` -> TRBV10, a few with no V call at all) to a TRB model: a family-only call of a family the model knows
    genes of is no unknown gene (it once warned "TRB 15% ... the model's store held TRB", contradicting itself, on
    every such export), nor is a missing call: no warning, share 0, no note. The same export's TRA twin (TCRAV
    families and genes) is still warned of: those are another chain's genes, families or not."""
    saved = load_model(fold0_model)
    held = sorted(_held_out(easy_cohort))[0]
    beta, alpha = tmp_path / "beta", tmp_path / "alpha"
    beta.mkdir()
    alpha.mkdir()
    rows = _immunoseq(easy_cohort["repertoires"] / f"{held}.tsv", beta / "trb.tsv", 0.2, 0.05, seed=1)
    rows.assign(v_call=rows["v_call"].str.replace("TRBV", "TRAV"), j_call=rows["j_call"].str.replace("TRBJ", "TRAJ"),
                locus="TRA").to_csv(tmp_path / "tra.airr.tsv", sep="\t", index=False)
    _immunoseq(tmp_path / "tra.airr.tsv", alpha / "tra.tsv", 0.2, 0.05, seed=1)
    families = {re.sub(r"-\d+$", "", v.split("*")[0]) for v in rows["v_call"]}
    assert families - set(saved.v_genes)  # the family names are no rows of its table: unknown before the fix

    result = _cli("predict", "--model", fold0_model, "--repertoires", beta, "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    assert re.search(r"trb: .*format immunoseq", result.stderr) and "unknown to the model" not in result.stderr
    table = pd.read_csv(tmp_path / "p.csv").set_index("subject_id")
    assert table.loc["trb", UNKNOWN_V_COLUMN] == 0 and pd.isna(table.loc["trb", WARNINGS_COLUMN])

    other = _cli("predict", "--model", fold0_model, "--repertoires", alpha, "--out", tmp_path / "q.csv")
    assert other.returncode == 0, other.stderr
    warned = [line for line in other.stderr.splitlines() if "V genes are unknown to the model" in line]
    assert len(warned) == 1 and f"WARNING tra ({alpha / 'tra.tsv'}): 100% of its" in warned[0] and \
        "(by locus: TRA 100%" in warned[0], other.stderr
    assert "the model reads no V genes, so these do not change its score, but its CDR3s are of a chain it never " \
           "learnt" in warned[0]  # the quick model embeds no genes and stores no clones
    table = pd.read_csv(tmp_path / "q.csv").set_index("subject_id")
    assert table.loc["tra", UNKNOWN_V_COLUMN] == 1 and table.loc["tra", WARNINGS_COLUMN].startswith(
        "100% of V genes unknown to the model (TRA 100%; it knows TRB)")


def test_unknown_genes_of_the_models_own_locus_are_warned_of_where_the_model_reads_genes(caplog):
    """Genes of the model's own locus that its table lacks (a gene its training never met, another species' named
    like its own) are embedded as unknown by a model that reads V genes: warned of, with a note that does not
    say it is another chain; a model that reads none (gene_embedding_dim 0, no V-keyed memory) cannot score them
    otherwise, so only an INFO line gives the share. Another chain is warned of either way; missing calls and
    family-only calls of families the model knows count for nothing."""
    import logging

    from deeprc_hopfield.infer import _unknown_genes, reads_v_genes, unknown_v_calls
    from deeprc_hopfield.model.config import ModelConfig, TaskSpec
    from deeprc_hopfield.model.model import RepertoireClassifier

    genes = ["TRBV10-1", "TRBV10-3", "TRBV5-1", "TRBV2"]
    blind = SavedModel(RepertoireClassifier(ModelConfig(tasks=[TaskSpec("status", "binary")], n_v_genes=4)),
                       {}, genes, [])
    reader = SavedModel(RepertoireClassifier(ModelConfig(tasks=[TaskSpec("status", "binary")], n_v_genes=4,
                                                         gene_embedding_dim=4)), {}, genes, [])
    assert not reads_v_genes(blind) and reads_v_genes(reader)

    names = np.array(["TRBV10-1", "TRBV10", "TRBV5", "TRBV7-9", "TRBV2", None, "TRAV1-2", "TRBV7"], dtype=object)
    index = np.array([0, -1, -1, -1, 3, -1, -1, -1])
    called = np.array([n is not None for n in names])
    # a family of genes it knows: known; a family it knows no gene of (TRBV7), a gene it lacks, another chain: unknown
    assert unknown_v_calls(called, index, names, genes).tolist() == [False, False, False, True, False, False, True,
                                                                     True]
    own = np.array(["TRBV5-1"] * 8 + ["TRBV7-9"] * 2, dtype=object)  # 20% of its own locus that the table lacks
    own_index = np.array([2] * 8 + [-1] * 2)
    for saved, warned in ((reader, True), (blind, False)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="deeprc_hopfield"):
            share, note = _unknown_genes("s1", np.ones(10, bool), own_index, own, genes, "s1.tsv", reads_v_genes(saved))
        assert share == pytest.approx(0.2)
        said = [r for r in caplog.records if "s1 (s1.tsv): 20% of its sequences' V genes" in r.getMessage()]
        assert len(said) == 1 and (said[0].levelname == "WARNING") == warned
        if warned:
            assert note == ("20% of V genes unknown to the model (TRB 20%: genes of its locus its training never met): "
                            "another species than it learnt from? its score may mean little") and "," not in note
            assert "genes of its locus that its training never met, embedded as unknown" in said[0].getMessage()
        else:
            assert note == "" and "the model reads no V genes, so they do not change its score" in said[0].getMessage()
    for saved in (reader, blind):  # another chain: warned of whatever the model reads
        assert _unknown_genes("s2", np.ones(4, bool), np.full(4, -1), np.array(["TRAV1-2"] * 4, dtype=object), genes,
                              reads_v=reads_v_genes(saved))[1].startswith("100% of V genes unknown to the model (TRA")


def test_a_file_of_two_chains_is_warned_of_and_read_with_chain(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    """TRA and TRB contigs of one sample in one AIRR file, to a TRB model: a warning names the file, the share of
    sequences of the locus the model's store never held and --chain; `predict --chain TRB` keeps the TRB rows alone
    (as `ingest --chain`), with no warning; predictions.csv keeps its columns."""
    held = sorted(_held_out(easy_cohort))[0]
    rows = (easy_cohort["repertoires"] / f"{held}.tsv").read_text().splitlines()
    alpha = [line.replace("TRBV", "TRAV").replace("TRBJ", "TRAJ").replace("\tTRB", "\tTRA") for line in rows[1:]]
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "tenx.tsv").write_text("\n".join(rows + alpha) + "\n")
    mixed = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", tmp_path / "p.csv")
    assert mixed.returncode == 0, mixed.stderr
    warned = [line for line in mixed.stderr.splitlines() if "unknown to the model" in line]
    assert len(warned) == 1 and f"WARNING tenx ({folder / 'tenx.tsv'}): " in warned[0], mixed.stderr
    share = re.search(r"(\d+)% of its sequences' V genes .*by locus: TRA (\d+)%", warned[0])  # some TRAV names made up
    assert 10 < int(share.group(1)) == int(share.group(2)) <= 50 and "give --chain TRB" in warned[0]
    mixed_table = pd.read_csv(tmp_path / "p.csv")  # the warning in the table too, the share as the log's
    assert list(mixed_table.columns) == ["subject_id", "probability", "predicted", *CHECKS]
    assert round(100 * mixed_table[UNKNOWN_V_COLUMN].iloc[0]) == int(share.group(1)) and UNKNOWN_V_WARNING < \
        mixed_table[UNKNOWN_V_COLUMN].iloc[0] < 1
    assert mixed_table[WARNINGS_COLUMN].iloc[0].startswith(f"{share.group(1)}% of V genes unknown to the model (TRA ")

    chosen = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--chain", "trb", "--out",
                  tmp_path / "q.csv")
    assert chosen.returncode == 0 and "unknown to the model" not in chosen.stderr, chosen.stderr
    assert re.search(r"tenx: .* 600 rows, 300 sequences kept \(dropped: other_chain 300", chosen.stderr), chosen.stderr
    clean = pd.read_csv(tmp_path / "q.csv")  # its TRB rows alone: nothing unknown, nothing to say
    assert clean[UNKNOWN_V_COLUMN].tolist() == [0] and clean[WARNINGS_COLUMN].isna().all()
    stored = _cli("predict", "--model", fold0_model, "--store", easy_cohort["store"], "--chain", "TRB", "--out",
                  tmp_path / "s.csv")
    assert stored.returncode == 1 and "--chain goes with --repertoires" in stored.stderr
    assert "in place of the chain of the QC the model's store was ingested" in " ".join(_cli("predict", "--help").stdout.split())


def test_a_new_patient_named_like_a_training_subject_is_told_apart_by_its_file(easy_cohort, fold0_model,
                                                                              tmp_path):  # noqa: F811
    """Two cohorts may both name their files `rep000...`: a file named like a training subject but holding another
    repertoire (its sha256 is not the training file's) is scored as a new patient, with a warning; the training
    file itself is still refused."""
    held = sorted(_held_out(easy_cohort))
    trained = sorted(set(easy_cohort["meta"]["subject_id"].astype(str)) - set(held))[0]
    other = _new_patients(easy_cohort, tmp_path / "other", {f"{trained}.tsv": f"{held[0]}.tsv"})
    scored = _cli("predict", "--model", fold0_model, "--repertoires", other, "--out", tmp_path / "p.csv")
    assert scored.returncode == 0, scored.stderr
    assert f"1 subject(s) named like training subjects have other files than those the model was trained on " \
           f"({trained})" in scored.stderr
    same = _new_patients(easy_cohort, tmp_path / "same", {f"{trained}.tsv": f"{trained}.tsv"})
    refused = _cli("predict", "--model", fold0_model, "--repertoires", same, "--out", tmp_path / "q.csv")
    assert refused.returncode == 1 and "the model was fitted or validated on 1 of the 1 subjects" in refused.stderr


def test_a_mouse_model_reads_new_files_as_mouse_and_refuses_a_human_store(mouse_cohort, tmp_path, caplog):
    """A model records its store's species; predict reads new files' gene names as that species' genes (mouse
    TRBV13-2 kept, not missing), and a store of another species is refused in one line."""
    from deeprc_hopfield.ingest import ingest
    from deeprc_hopfield.inspect import model_summary

    mouse = ingest(*mouse_cohort, tmp_path / "mouse.h5", progress=False, species="mouse")
    model = train(mouse, tmp_path / "model", _config(tmp_path, n_updates=2), device="cpu", progress=False)
    saved = load_model(model)
    assert saved.training["species"] == "mouse"
    assert "species       mouse (its store's; predict reads new files' gene names as mouse genes)" in \
        model_summary(model).splitlines()
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        subjects = list(subjects_from_files(file_entries(mouse_cohort[1], mouse_cohort[0]), saved))
    assert "TRBV13-2" in set(subjects[1].v_names) and not any(pd.isna(subjects[1].v_names))
    assert (subjects[1].repertoire.v_index >= 0).all() and "V/J genes" not in caplog.text
    human = ingest(*mouse_cohort, tmp_path / "human.h5", progress=False)
    with pytest.raises(DeepRCError, match=r"human\.h5: a human store \(ingest --species\), but the model .* was "
                                          r"trained on mouse repertoires: score it with a model of human repertoires$"):
        next(subjects_from_store(human, saved))
    with pytest.raises(DeepRCError, match=r"a human store \(ingest --species\), but the model"):  # before its genes
        interpret(model, human, tmp_path / "interpretation")
    caplog.clear()
    as_human = replace(saved, training={**saved.training, "species": "human"})
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        list(subjects_from_files(file_entries(mouse_cohort[1], mouse_cohort[0]), as_human))
    assert "rows of the files name mouse V/J genes" in caplog.text  # a human model given mouse files
    assert json.loads((model / "config.json").read_text())["schema_version"] == 2  # older versions refuse it
    twin = tmp_path / "twin"  # the same model said to be human: not one ensemble with the mouse one
    shutil.copytree(model, twin)
    config = json.loads((twin / "config.json").read_text())
    (twin / "config.json").write_text(json.dumps({**config, "schema_version": 1,
                                                   "training": {**config["training"], "species": "human"}}))
    with pytest.raises(ModelFileError, match="has other labels, gene tables or species than"):
        load_models([model, twin], torch.device("cpu"))


def _fold(cohort: dict, k: int) -> list[str]:
    return sorted(cohort["meta"]["subject_id"].astype(str)[cohort["folds"] == k])


def test_a_renamed_copy_of_a_training_file_is_that_training_subject(easy_cohort, fold0_model, fold_models,
                                                                    tmp_path):  # noqa: F811
    """`cp rep001.tsv PAT1.tsv`: the file's sha256 (computed as it is read) is a training file's, so it is that
    training subject: refused in one line naming the file and the subject, writing nothing; with
    --allow-training-subjects scored and marked; with fold models, scored by the model that held it out."""
    trained, held = _fold(easy_cohort, 1)[0], _fold(easy_cohort, 0)[0]
    folder = _new_patients(easy_cohort, tmp_path / "new", {"n0.tsv": f"{held}.tsv", "PAT1.tsv": f"{trained}.tsv"})
    refused = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", tmp_path / "p.csv",
                   "--attended", tmp_path / "a.tsv")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if "error:" in line]
    assert errors == [f"deeprc-hopfield predict: error: {folder / 'PAT1.tsv'}: a copy of training subject {trained}'s "
                      "repertoire (the same file, or the same sequences and counts), which the model was fitted or "
                      "validated on: its score would not be a held-out one; leave the file out or pass "
                      "--allow-training-subjects"]
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "a.tsv").exists()
    # compressed (other bytes, another sha256) and renamed: the same sequences and counts, the same training subject
    gzipped = tmp_path / "gz"
    gzipped.mkdir()
    (gzipped / "PAT2.tsv.gz").write_bytes(gzip.compress((folder / "PAT1.tsv").read_bytes()))
    hidden = _cli("predict", "--model", fold0_model, "--repertoires", gzipped, "--out", tmp_path / "g.csv")
    assert hidden.returncode == 1 and f"{gzipped / 'PAT2.tsv.gz'}: a copy of training subject {trained}'s" \
        in hidden.stderr, hidden.stderr

    allowed = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--allow-training-subjects", "--out",
                   tmp_path / "p.csv")
    assert allowed.returncode == 0, allowed.stderr
    assert f"WARNING PAT1: its repertoire is training subject {trained}'s (the same file, or sequences and counts)" \
        in allowed.stderr
    table = pd.read_csv(tmp_path / "p.csv")
    assert dict(zip(table["subject_id"], table[TRAINING_SUBJECT_COLUMN])) == {"PAT1": True, "n0": False}
    assert dict(zip(table["subject_id"], table[WARNINGS_COLUMN].fillna(""))) == {  # the table says it without the log
        "PAT1": f"a copy of training subject {trained}'s repertoire: scored by a model trained on it "
                "(--allow-training-subjects): not a held-out score", "n0": ""}

    ensemble = _cli("predict", "--model", fold_models, "--repertoires", folder, "--out", tmp_path / "e.csv")
    assert ensemble.returncode == 0, ensemble.stderr
    assert "scored as that subject, by the 1 of 2 models that held it out (fold1)" in ensemble.stderr
    scored = pd.read_csv(tmp_path / "e.csv").set_index("subject_id")
    assert pd.isna(scored.loc["PAT1", "probability_sd"])
    assert scored.loc["PAT1", WARNINGS_COLUMN] == (f"a copy of training subject {trained}'s repertoire: scored as "
                                                   "that subject by the models that held it out (fold1)")
    assert scored.loc["n0", WARNINGS_COLUMN] == (f"a copy of training subject {held}'s repertoire: scored as that "
                                                 "subject by the models that held it out (fold0)")  # fold1's, held by 0
    assert '"' not in (tmp_path / "e.csv").read_text()


def _time_point(source: Path, out: Path, seed: int) -> None:
    """Another blood sample of the donor of repertoire file `source`: 80% of its clones (counts drawn again around
    theirs) and 20% clones it did not hold."""
    rng = np.random.default_rng(seed)
    table = pd.read_csv(source, sep="\t")
    kept = table.sample(frac=0.8, random_state=seed)
    kept = kept.assign(duplicate_count=np.maximum(1, rng.poisson(kept["duplicate_count"])))
    write_airr(out.with_suffix(".new"), rng, len(table) - len(kept))
    fresh = pd.read_csv(out.with_suffix(".new"), sep="\t")
    out.with_suffix(".new").unlink()
    pd.concat([kept, fresh], ignore_index=True).to_csv(out, sep="\t", index=False)


def test_another_sample_of_a_training_donor_is_scored_by_the_models_that_held_the_donor_out(
        easy_cohort, fold0_model, fold_models, tmp_path):  # noqa: F811
    """A new time point of a training subject's donor (not a copy: 80% of its clones, counts drawn again) shares its
    most abundant CDR3s with that training repertoire: scored by the fold model that held the subject out, not by
    the one that trained on it, and said in the warnings column; a model that trained on it alone still scores it,
    saying the score may not be a held-out one. A new donor's sample says nothing."""
    trained = _fold(easy_cohort, 1)[0]  # fitted or validated on by fold0's model, held out by fold1's
    folder = tmp_path / "new"
    folder.mkdir()
    _time_point(easy_cohort["repertoires"] / f"{trained}.tsv", folder / "PAT1.tsv", seed=4)
    write_airr(folder / "PAT2.tsv", np.random.default_rng(5), 300)
    assert (fold_models / "fold0" / "training_sketches.npz").is_file()
    result = _cli("predict", "--model", fold_models, "--repertoires", folder, "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False).set_index("subject_id")
    note = table.loc["PAT1", WARNINGS_COLUMN]
    assert re.fullmatch(rf"shares \d+% of its most abundant CDR3s with training subject {trained} \(a sample of one "
                        r"donor\?\): scored by the models that held it out \(fold1\)", note), note
    assert int(re.search(r"(\d+)%", note).group(1)) >= 50 and "," not in note
    assert table.loc["PAT1", "probability_sd"] == "" and table.loc["PAT2", "probability_sd"] != ""
    assert table.loc["PAT2", WARNINGS_COLUMN] == ""
    assert f"WARNING PAT1 ({folder / 'PAT1.tsv'}): shares" in result.stderr

    one_set = _cli("predict", "--model", fold_models, "--repertoires", folder, "--out", tmp_path / "a.csv",
                   "--attention", tmp_path / "a.h5")  # an attention file holds one set's: the note, every model
    assert one_set.returncode == 0, one_set.stderr
    table = pd.read_csv(tmp_path / "a.csv", keep_default_na=False).set_index("subject_id")
    assert table.loc["PAT1", "probability_sd"] != "" and "the score may not be a held-out one" in \
        table.loc["PAT1", WARNINGS_COLUMN]

    alone = _cli("predict", "--model", fold0_model, "--repertoires", folder, "--out", tmp_path / "q.csv")
    assert alone.returncode == 0, alone.stderr
    note = pd.read_csv(tmp_path / "q.csv", keep_default_na=False).set_index("subject_id").loc["PAT1", WARNINGS_COLUMN]
    assert note.endswith("a model that scores it trained on it or on a sample like it: the score may not be a "
                         "held-out one"), note


def test_one_training_subject_in_a_batch_weakens_no_new_patients_ensemble(easy_cohort, fold_models,
                                                                         tmp_path):  # noqa: F811
    """A folder of fold models scores each subject with the models that held it out: new patients keep every model
    (and their spread) beside a training subject of fold0's model (held out by fold1 alone); the columns are the ensemble's whatever the
    batch (the spread empty where one model scored), and a warning names who got fewer models and which."""
    fold1 = _fold(easy_cohort, 1)
    folder = _new_patients(easy_cohort, tmp_path / "new", {f"{fold1[0]}.tsv": f"{fold1[0]}.tsv"})
    rng = np.random.default_rng(11)
    for name in ("n0.tsv", "n1.tsv"):  # repertoires of no training donor: new patients to both models
        write_airr(folder / name, rng, 300)
    result = _cli("predict", "--model", fold_models, "--repertoires", folder, "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    assert f"WARNING 1 of the 3 subjects were scored by fewer than the 2 models, by those that held them out" \
           in result.stderr and f"{fold1[0]} by fold1" in result.stderr, result.stderr
    table = pd.read_csv(tmp_path / "p.csv").set_index("subject_id")
    assert list(table.columns) == ["probability", "probability_sd", "predicted", *CHECKS]
    assert table.loc[["n0", "n1"], "probability_sd"].notna().all() and pd.isna(table.loc[fold1[0], "probability_sd"])

    one_fold = _cli("predict", "--model", fold_models, "--store", easy_cohort["store"], "--split",
                    easy_cohort["split"], "--fold", "0", "--out", tmp_path / "f.csv")  # a held-out fold: no warning
    assert one_fold.returncode == 0 and "WARNING" not in one_fold.stderr, one_fold.stderr
    assert "with the 1 of 2 models that held them all out: fold0" in one_fold.stderr
    assert list(pd.read_csv(tmp_path / "f.csv").columns) == ["subject_id", "probability", "probability_sd",
                                                             "predicted", "true_label", *CHECKS]

    attention = _cli("predict", "--model", fold_models, "--repertoires", folder, "--out", tmp_path / "q.csv",
                     "--attention", tmp_path / "q.h5")  # one set of models' attention per file
    assert attention.returncode == 1 and "--attention holds the attention of one set of models" in attention.stderr
    assert not (tmp_path / "q.csv").exists() and not (tmp_path / "q.h5").exists()
    split = _cli("predict", "--model", fold_models, "--repertoires", folder, "--split", easy_cohort["split"],
                 "--fold", "0", "--out", tmp_path / "r.csv")
    assert split.returncode == 1 and "with --repertoires, name the files to score with --metadata" in split.stderr


def test_predict_with_models_of_another_package_version_warns_once(easy_cohort, fold_models, tmp_path):  # noqa: F811
    """An ensemble saved by another package version scores as before, with one warning line naming both versions
    (not one a fold model)."""
    models = tmp_path / "models"
    shutil.copytree(fold_models, models)
    for fold in ("fold0", "fold1"):
        config = json.loads((models / fold / "config.json").read_text())
        (models / fold / "config.json").write_text(json.dumps({**config, "package_version": "0.0.9"}))
    result = _cli("predict", "--model", models, "--store", easy_cohort["store"], "--split", easy_cohort["split"],
                  "--fold", "0", "--out", tmp_path / "p.csv")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warned = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warned) == 1 and f"{models / 'fold0'} was saved by deeprc-hopfield 0.0.9 and is loaded by " \
        f"{__version__}" in warned[0], result.stderr
    expected = _cli("predict", "--model", fold_models, "--store", easy_cohort["store"], "--split",
                    easy_cohort["split"], "--fold", "0", "--out", tmp_path / "q.csv")
    assert expected.returncode == 0, expected.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "q.csv"))


def test_small_frictions_of_predict_are_said_plainly(easy_cohort, fold0_model, tmp_path):  # noqa: F811
    """A file given as --model says what it is; --attention on a store names --attention; two patients of one
    file are warned of; a metadata table whose label column is named otherwise is noted; --log makes its folder."""
    held = sorted(_held_out(easy_cohort))[:2]
    folder = _new_patients(easy_cohort, tmp_path / "new", {"a.tsv": f"{held[0]}.tsv", "b.tsv": f"{held[0]}.tsv",
                                                          "c.tsv": f"{held[1]}.tsv"})
    source = ["--repertoires", folder, "--out", tmp_path / "p.csv"]
    for given, said in ((easy_cohort["store"], "a repertoire store (ingest's output), not a model folder: give it "
                                               "with --store"),
                        (fold0_model / "config.json", f"a model's config.json, not its folder: give the folder, "
                                                      f"{fold0_model}"),
                        (folder / "a.tsv", "a file, not a model folder")):
        result = _cli("predict", "--model", given, *source)
        assert result.returncode == 1 and f"error: {given}: {said}" in result.stderr, result.stderr
    taken = _cli("predict", "--model", fold0_model, *source, "--attention", easy_cohort["store"])
    assert taken.returncode == 1 and "(choose another --attention;" in taken.stderr, taken.stderr

    (tmp_path / "meta.csv").write_text("subject_id,filename,CMV_status\na,a.tsv,1\nb,b.tsv,0\nc,c.tsv,1\n")
    log_file = tmp_path / "logs" / "deep" / "predict.log"
    result = _cli("predict", "--model", fold0_model, *source, "--metadata", tmp_path / "meta.csv", "--log", log_file)
    assert result.returncode == 0, result.stderr
    assert "WARNING subjects a (a.tsv), b (b.tsv) have byte-identical repertoire files" in result.stderr
    assert "meta.csv: no column 'label' (the model's label), so the predictions get no true label; its other " \
           "columns are CMV_status" in result.stderr
    assert "true_label" not in pd.read_csv(tmp_path / "p.csv").columns
    assert "byte-identical" in log_file.read_text()


def test_a_group_column_the_table_lacks_names_the_column_it_is_likely_a_slip_of():
    table = pd.DataFrame({"subject_id": ["P1", "P2"], "filename": ["a.tsv", "b.tsv"], "Donor": ["D1", "D2"]})
    assert subject_groups(table, "Donor", "new.csv") == {"P1": "D1", "P2": "D2"}
    with pytest.raises(DeepRCError) as refused:
        subject_groups(table, "donor", "new.csv")
    assert str(refused.value) == ("new.csv: --group-column 'donor' is not a column of the metadata table (columns: "
                                  "subject_id, filename, Donor) (did you mean 'Donor'?)")
