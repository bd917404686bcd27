"""The package's message helpers: a near path for a 'did you mean', and the error a failed job's log ends with, as the
workflow's summary of a failed run shows it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deeprc_hopfield.errors import InputFormatError, files_error, logged_error, near_path


def test_a_failed_ingests_log_shows_each_file_under_its_error_line(tmp_path: Path):
    """Several files refused at ingest: the summary keeps the indented line of each file (and a file's bad values,
    further in), not only the line that ends with a colon."""
    failed = [InputFormatError("unrecognised repertoire format", f"reps/bad{i}.tsv", line=1) for i in range(2)]
    failed.append(InputFormatError("2 bad values:\n  line 4: 'X'\n  line 9: 'Y'", "reps/bad2.tsv", column="v_call"))
    log = tmp_path / "ingest.log"
    log.write_text("reading 52 files\n" + f"deeprc-hopfield ingest: error: {files_error(failed, 52)}\n")
    assert logged_error(log) == [
        f"{log}: deeprc-hopfield ingest: error: 3 of 52 repertoire files cannot be used, and nothing was written; fix "
        "them (or leave them out) and run again:",
        "  reps/bad0.tsv, line 1: unrecognised repertoire format",
        "  reps/bad1.tsv, line 1: unrecognised repertoire format",
        "  reps/bad2.tsv, column 'v_call': 2 bad values:",
        "    line 4: 'X'",
        "    line 9: 'Y'",
    ]
    capped = logged_error(log, limit=2)
    assert capped[1:] == ["  reps/bad0.tsv, line 1: unrecognised repertoire format",
                          "  reps/bad1.tsv, line 1: unrecognised repertoire format",
                          f"  ... 3 more line(s) in {log}"]


@pytest.mark.parametrize("text, shown", [
    ("deeprc-hopfield train: error: no GPU\n", ["deeprc-hopfield train: error: no GPU"]),
    ("step 1\ndeeprc-hopfield train: interrupted; nothing was written\n",
     ["deeprc-hopfield train: interrupted; nothing was written"]),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad\n",
     ["ValueError: bad"]),
    ("wrote results/x.tsv\n  a note indented\n", []),  # no error: nothing shown
])
def test_a_logs_error_line_alone_where_nothing_goes_on_from_it(tmp_path: Path, text: str, shown: list[str]):
    log = tmp_path / "job.log"
    log.write_text(text)
    assert logged_error(log) == ([f"{log}: {shown[0]}", *shown[1:]] if shown else [])


def test_a_near_path_is_offered_where_one_part_is_a_slip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "lab" / "export").mkdir(parents=True)
    (tmp_path / "lab" / "samples.csv").write_text("subject_id,filename\n")
    monkeypatch.chdir(tmp_path)
    assert near_path("lab/exports", folder=True) == os.path.join("lab", "export")
    assert near_path("labs/samples.csv") == os.path.join("lab", "samples.csv")
    assert near_path(tmp_path / "lab" / "sample.csv") == str(tmp_path / "lab" / "samples.csv")
    assert near_path("lab/exports") is None  # a folder where a file is asked for
    assert near_path("elsewhere/exports", folder=True) is None
    # a relative path the user wrote from the config file's folder
    config_folder = tmp_path / "cohort"
    (config_folder / "data").mkdir(parents=True)
    assert near_path("data", folder=True, beside=[config_folder]) == str(config_folder / "data")


def test_a_folder_that_cannot_be_listed_gives_no_hint_rather_than_a_traceback(tmp_path: Path, monkeypatch):
    """On a shared cluster a folder on the way may be closed to the user (listing it raises PermissionError; root, as
    tests may run, can list anything, so the refusal is the operating system's answer played back): no hint, and the
    workflow's 'not found' line stands."""
    (tmp_path / "lab" / "export").mkdir(parents=True)

    def closed(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", closed)
    assert near_path(tmp_path / "lab" / "exports", folder=True) is None
