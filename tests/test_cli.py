"""The command line through its own `main` (conftest's `deeprc_cli`; the installed entry point and signals in a real
process): help, ingest, inspect, and every user mistake refused with one line, a non-zero exit and nothing left
behind."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeprc_hopfield.store import RepertoireStore
from conftest import deeprc_cli, write_airr


def run_cli(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess:
    result = deeprc_cli(*args)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def ingest_args(metadata: Path, folder: Path, out: Path, *extra: str) -> list:
    return ["ingest", "--metadata", metadata, "--repertoires", folder, "--out", out, *extra]


def test_version_and_help():
    entry_point = Path(sys.executable).parent / "deeprc-hopfield"  # the installed command, in a process of its own
    installed = subprocess.run([str(entry_point), "--version"], capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0 and installed.stdout.startswith("deeprc-hopfield ")
    assert run_cli("--version", check=True).stdout == installed.stdout
    top = run_cli("--help", check=True).stdout
    assert "ingest" in top and "inspect" in top
    for command in ("ingest", "inspect"):
        text = run_cli(command, "--help", check=True).stdout
        assert "usage: deeprc-hopfield " + command in text
    assert "--label-column" in run_cli("ingest", "--help").stdout
    from deeprc_hopfield.training.config import TrainingConfig  # the help states the default it does not import

    train_help = " ".join(run_cli("train", "--help", check=True).stdout.split())
    assert f"n_updates; default {TrainingConfig.n_updates})" in train_help
    assert f"checkpoint_every; default {TrainingConfig.checkpoint_every})" in train_help
    assert f"embed_chunk; default {TrainingConfig.embed_chunk})" in train_help
    assert "deeprc_hopfield/data/config.schema.yaml" in train_help


def test_ingest_then_inspect(cohort, tmp_path):
    metadata, folder = cohort
    out = tmp_path / "cohort.h5"
    result = run_cli(*ingest_args(metadata, folder, out, "--threads", "2"), check=True)
    assert "format airr" in result.stderr  # the log names the detected format of each file
    assert "label 'label': binary, negative 'False', positive 'True'" in result.stderr  # which class is which
    assert (tmp_path / "cohort.qc.tsv").read_text().startswith("subject_id\tinput_rows")
    summary = run_cli("inspect", out, check=True).stdout
    assert "repertoires  6" in summary and "label (binary): False 3, True 3" in summary
    assert "formats: airr 6" in summary


def test_threads_do_not_change_the_store(cohort, tmp_path):
    metadata, folder = cohort
    run_cli(*ingest_args(metadata, folder, tmp_path / "one.h5"), check=True)
    run_cli(*ingest_args(metadata, folder, tmp_path / "two.h5", "--threads", "2"), check=True)
    with RepertoireStore(tmp_path / "one.h5") as a, RepertoireStore(tmp_path / "two.h5") as b:
        assert a.n_repertoires == b.n_repertoires == 6 and a.subject_ids == b.subject_ids
        assert a.label("label").values.tolist() == b.label("label").values.tolist()
        assert a.metadata().equals(b.metadata()) and a.qc().equals(b.qc())
        for i in range(a.n_repertoires):
            assert a.table(i).equals(b.table(i))


def test_drop_unlabelled_stores_the_labelled_subjects_and_names_the_others(cohort, tmp_path):
    """`ingest --drop-unlabelled`: a subject of unknown status is left out of the store, which names it."""
    metadata, folder = cohort
    metadata.write_text(metadata.read_text().replace("rep2.tsv,False", "rep2.tsv,unknown"))
    result = run_cli(*ingest_args(metadata, folder, tmp_path / "s.h5", "--drop-unlabelled"), check=True)
    assert "1 of 6 subjects have no value for label 'label' and are left out of the store" in result.stderr
    with RepertoireStore(tmp_path / "s.h5") as store:
        assert store.subject_ids == ["P0", "P1", "P3", "P4", "P5"]
        assert store.parameters["unlabelled_left_out"] == ["P2"]
        assert store.label("label").values.tolist() == [0, 1, 1, 0, 1]
    assert "unlabelled_left_out=['P2']" in run_cli("inspect", tmp_path / "s.h5", check=True).stdout


def _break_truncated_gzip(metadata: Path, folder: Path) -> None:
    data = gzip.compress((folder / "rep2.tsv").read_bytes())
    (folder / "rep2.tsv.gz").write_bytes(data[: len(data) // 2])
    (folder / "rep2.tsv").unlink()


def _break_empty_after_qc(metadata: Path, folder: Path) -> None:
    lines = (folder / "rep1.tsv").read_text().splitlines()
    (folder / "rep1.tsv").write_text("\n".join([lines[0]] + [line[:-1] + "F" for line in lines[1:]]) + "\n")


BREAKAGES = {
    "missing file": (lambda m, f: (f / "rep3.tsv").unlink(), "line 5, column 'filename': repertoire file"),
    "duplicate subject": (lambda m, f: m.write_text(m.read_text().replace("P4,", "P0,")), "duplicate subject_id"),
    "missing label": (lambda m, f: m.write_text(m.read_text().replace("rep2.tsv,False", "rep2.tsv,")),
                      "line 4, column 'label': missing label value"),
    "unknown format": (lambda m, f: (f / "rep0.tsv").write_text("a\tb\n1\t2\n"), "unrecognised repertoire format"),
    "required column": (lambda m, f: m.write_text(m.read_text().replace("subject_id", "id")),
                        "required column 'subject_id' is missing"),
    "truncated gzip": (_break_truncated_gzip, "truncated or corrupt gzip"),
    "empty after QC": (_break_empty_after_qc, "no sequence left after quality control"),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_user_mistakes_get_one_line_and_no_store(cohort, tmp_path, name):
    metadata, folder = cohort
    breakage, words = BREAKAGES[name]
    breakage(metadata, folder)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli(*ingest_args(metadata, folder, out_dir / "cohort.h5", "--threads", "2"))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and words in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert list(out_dir.iterdir()) == []  # no store, no QC table, no temporary file


def _set_counts(path: Path, values: dict[int, str]) -> None:
    """Write `values` (line -> text) into the count column (the fifth) of a repertoire file of the shared cohort."""
    lines = path.read_text().splitlines()
    for line, value in values.items():
        fields = lines[line - 1].split("\t")
        fields[4] = value
        lines[line - 1] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("threads", ["1", "2"])
def test_every_file_that_cannot_be_used_is_named_in_one_error(cohort, tmp_path, threads):
    """Two files of six that cannot be used (bad counts in one, nothing left after QC in the other): every file is
    read, and one error names both, each with its problems, rather than the first alone; nothing is written."""
    metadata, folder = cohort
    _set_counts(folder / "rep1.tsv", {3: "ten", 5: "-2"})
    lines = (folder / "rep4.tsv").read_text().splitlines()
    (folder / "rep4.tsv").write_text("\n".join([lines[0]] + [line[:-1] + "F" for line in lines[1:]]) + "\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli(*ingest_args(metadata, folder, out_dir / "cohort.h5", "--threads", threads))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    told = result.stderr[result.stderr.index("error:"):].splitlines()
    assert told[0] == "error: 2 of 6 repertoire files cannot be used, and nothing was written; fix them (or leave " \
                      "them out) and run again:"
    assert told[1] == f"  {folder / 'rep1.tsv'}, line 3, column 'duplicate_count': count 'ten' is not a " \
                      "non-negative number; 1 more problem in this file:"
    assert told[2] == "    line 5, column 'duplicate_count': count '-2' is not a non-negative number"
    assert told[3].startswith(f"  {folder / 'rep4.tsv'}: no sequence left after quality control")
    assert "the 4 files left are still read, to report every problem at once" in result.stderr
    assert list(out_dir.iterdir()) == []


def test_missing_counts_are_counted_in_the_qc_table(cohort, tmp_path):
    """Counts written `NA` or left empty are kept as missing and counted (`count_missing`), in the QC table, the
    store's QC counts and `inspect`."""
    metadata, folder = cohort
    _set_counts(folder / "rep2.tsv", {2: "NA", 3: ""})
    result = run_cli(*ingest_args(metadata, folder, tmp_path / "cohort.h5"), check=True)
    assert "2 of " in result.stderr and "sequences kept have no clone count (NA or empty in the file)" in result.stderr
    qc = pd.read_csv(tmp_path / "cohort.qc.tsv", sep="\t").set_index("subject_id")
    assert qc["count_missing"].to_dict() == {"P0": 0, "P1": 0, "P2": 2, "P3": 0, "P4": 0, "P5": 0}
    with RepertoireStore(tmp_path / "cohort.h5") as store:
        assert store.qc()["count_missing"].tolist() == qc["count_missing"].tolist()
    assert "without a clone count 2" in run_cli("inspect", tmp_path / "cohort.h5", check=True).stdout


def test_unwritable_store_path_and_unreadable_store(cohort, tmp_path):
    metadata, folder = cohort
    result = run_cli(*ingest_args(metadata, folder, tmp_path / "new" / "dir" / "s.h5"))
    assert result.returncode == 0 and (tmp_path / "new" / "dir" / "s.h5").is_file()  # missing folders are made
    (tmp_path / "file").write_text("x")
    result = run_cli(*ingest_args(metadata, folder, tmp_path / "file" / "s.h5"))
    assert result.returncode != 0 and "is a file, not a folder" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "junk.h5").write_text("hello")
    result = run_cli("inspect", tmp_path / "junk.h5")
    assert result.returncode != 0 and "not a readable HDF5 file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_ingest_leaves_no_store(tmp_path, sig):
    rng = np.random.default_rng(1)
    folder = tmp_path / "reps"
    folder.mkdir()
    write_airr(folder / "big.tsv", rng, 60_000)
    lines = ["subject_id,filename"] + [f"S{i},big_{i}.tsv" for i in range(40)]
    for i in range(40):
        os.link(folder / "big.tsv", folder / f"big_{i}.tsv")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "deeprc_hopfield", *map(str, ingest_args(
        tmp_path / "m.csv", folder, out_dir / "s.h5"))], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(out_dir.iterdir()) and time.time() < deadline:  # the temporary store exists: mid-ingest
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + sig, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(out_dir.iterdir()) == []


def test_interrupt_while_the_options_are_read_is_one_line(tmp_path, monkeypatch):
    """Checking some options imports torch, seconds in which a job stopped with its workflow gets the signal (a
    Ctrl-C logged a 40-line traceback ending in `KeyboardInterrupt` for the workflow's summary)."""
    from deeprc_hopfield import cli

    def interrupted_import(text: str) -> tuple[str, ...]:
        raise KeyboardInterrupt("signal 2")

    monkeypatch.setattr(cli, "_methods", interrupted_import)
    try:
        result = run_cli("baselines", "--store", tmp_path / "s.h5", "--split", tmp_path / "split.csv", "--fold", 0,
                         "--out", tmp_path / "b", "--methods", "kmer")
    except KeyboardInterrupt:  # not to pytest, which would stop the session
        pytest.fail("the interrupt left main")
    assert result.returncode == 130
    assert result.stderr == "deeprc-hopfield: interrupted; nothing was written\n"
    assert list(tmp_path.iterdir()) == []


def test_output_that_is_an_input_or_a_folder_is_refused_before_work(cohort, tmp_path):
    metadata, folder = cohort
    before = metadata.read_bytes(), (folder / "rep0.tsv").read_bytes()
    for out, words in [(metadata, "would overwrite the input file"),
                       (folder / "rep0.tsv", "would overwrite the input file"),
                       (folder, "is a folder")]:
        result = run_cli(*ingest_args(metadata, folder, out))
        assert result.returncode == 1 and words in result.stderr and "Traceback" not in result.stderr
    assert (metadata.read_bytes(), (folder / "rep0.tsv").read_bytes()) == before


def test_positive_class_option(cohort, tmp_path):
    metadata, folder = cohort
    out = tmp_path / "s.h5"
    run_cli(*ingest_args(metadata, folder, out, "--positive-class", "False"), check=True)
    with RepertoireStore(out) as store:
        label = store.label("label")
        assert label.classes == ["True", "False"]
        assert label.values.tolist() == [1, 0, 1, 0, 1, 0]  # P0, P2, P4 ("False") are the positives


def test_an_output_that_cannot_be_written_is_refused_before_work(cohort, tmp_path):
    """A file where the output's folder should be, or a folder that takes no file (/proc here), is refused in one
    line before any work, by every command that writes; nothing is left behind."""
    metadata, folder = cohort
    store = tmp_path / "s.h5"
    run_cli(*ingest_args(metadata, folder, store), check=True)
    run_cli("split", "--store", store, "--out", tmp_path / "split.csv", "--folds", 3, check=True)
    before = sorted(os.listdir(tmp_path))
    blocked = [store / "out"]  # under a file
    if Path("/proc/self").is_dir():  # Linux: a folder that exists and takes no new file
        blocked.append(Path("/proc") / "deeprc-out")
    for parent in blocked:
        commands = {
            "ingest": ingest_args(metadata, folder, parent / "s.h5"),
            "split": ["split", "--store", store, "--out", parent / "split.csv", "--folds", 3],
            "simulate": ["simulate", "--out", parent / "sim", "--n-repertoires", 4, "--sequences-per-repertoire", 20,
                         "--witness-rate", 0.05],
            "train": ["train", "--store", store, "--split", tmp_path / "split.csv", "--fold", 0, "--out",
                      parent / "model", "--updates", 1],
        }
        for name, args in commands.items():
            result = run_cli(*args)
            errors = [line for line in result.stderr.splitlines() if "error" in line]
            assert result.returncode == 1 and "Traceback" not in result.stderr, (name, result.stderr)
            assert len(errors) == 1 and "cannot write output" in errors[0], (name, result.stderr)
            assert "is a file, not a folder" in errors[0] or "takes no new file" in errors[0], (name, errors)
    assert sorted(os.listdir(tmp_path)) == before


def test_a_log_file_that_cannot_be_opened_is_one_line(cohort, tmp_path):
    (tmp_path / "file").write_text("")
    result = run_cli("--log", tmp_path / "file" / "log.txt", "inspect", tmp_path / "missing.h5")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot open the log file" in result.stderr and "log.txt" in result.stderr
    made = run_cli("--log", tmp_path / "no" / "log.txt", "inspect", tmp_path / "missing.h5")  # missing folders: made
    assert made.returncode == 1 and "store not found" in made.stderr and (tmp_path / "no" / "log.txt").is_file()
    result = run_cli("ingest", "--threads", "two")
    assert result.returncode == 2 and "must be a whole number >= 1, got 'two'" in result.stderr


def test_quiet_quiets_the_console_not_the_log_file(cohort, tmp_path):
    metadata, folder = cohort
    result = run_cli(*ingest_args(metadata, folder, tmp_path / "s.h5"), "-q", "--log", tmp_path / "ingest.log")
    assert result.returncode == 0 and " INFO " not in result.stderr
    assert " INFO wrote " in (tmp_path / "ingest.log").read_text()


def test_training_on_a_label_of_one_class_is_one_line(cohort, tmp_path):
    metadata, folder = cohort
    metadata.write_text(metadata.read_text().replace(",True", ",False"))
    store = tmp_path / "s.h5"
    result = run_cli(*ingest_args(metadata, folder, store), check=True)
    assert "single value" in result.stderr
    run_cli("split", "--store", store, "--out", tmp_path / "split.csv", "--folds", 3, check=True)
    result = run_cli("train", "--store", store, "--split", tmp_path / "split.csv", "--fold", 0, "--out",
                     tmp_path / "model", "--updates", 1)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "label 'label' has one class only (False)" in result.stderr and not (tmp_path / "model").exists()


def _brace_expanded(word: str) -> list[str]:
    """`word` as the shell's brace expansion gives it (`fold{0,1}.csv`: fold0.csv fold1.csv), the examples' one
    shorthand."""
    import re

    found = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if found is None:
        return [word]
    return [expanded for part in found.group(1).split(",")
            for expanded in _brace_expanded(word[:found.start()] + part + word[found.end():])]


def test_every_command_ends_its_help_with_examples_that_its_parser_takes(monkeypatch):
    """Each subcommand's --help ends with an 'examples:' block of its own command lines, kept as written (a
    narrow terminal wraps the description, never an example), and each line parses with that command's parser
    (an option renamed or removed fails here); the files need not exist to parse."""
    import argparse
    import shlex

    from deeprc_hopfield import cli

    monkeypatch.setenv("COLUMNS", "60")  # argparse wraps to the terminal's width
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert len(commands) == len(cli.COMMANDS)
    longest = 0
    for name, command in commands.items():
        text = run_cli(name, "--help", check=True).stdout
        assert "\nexamples:\n" in text, name
        description = text.split("\n\n")[1].split("\n")
        assert len(description) > 1 and max(map(len, description)) <= 60, name  # the description is wrapped
        block = text.split("\nexamples:\n")[1].rstrip("\n").split("\n")
        written = command.epilog.split("\n")[1:]
        assert 1 <= len(block) <= 3 and block == ["  " + line.strip() for line in written], name  # not rewrapped
        for line in block:
            assert line.startswith(f"  deeprc-hopfield {name} "), line
            longest = max(longest, len(line))
            words = [w for word in shlex.split(line, comments=True)[1:] for w in _brace_expanded(word)]
            args = parser.parse_args(words)  # exits (a failed test) on an unknown option or a bad value
            assert args.command == name and args.func is command.get_default("func"), line
    assert longest > 150  # lines a rewrapping formatter would have split
