"""Atomic outputs and checksums: an output is whole or absent, an earlier one kept until the new one is."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.io import (OUTPUT_MARKER, OutputExistsError, atomic_file, atomic_folder, check_output,
                                output_command, sha256_file, write_text)


def test_atomic_file_renames_on_success_and_removes_on_error(tmp_path: Path) -> None:
    target = tmp_path / "new" / "out.txt"  # the missing folder is created
    with atomic_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.txt.") and tmp.name.endswith(".partial")
        tmp.write_text("first")
        assert not target.exists()
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("second")
        raise RuntimeError("boom")
    assert target.read_text() == "first" and os.listdir(target.parent) == ["out.txt"]


def test_atomic_folder_replaces_an_earlier_folder_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("1")
    umask = os.umask(0)
    os.umask(umask)
    assert (target / "a.txt").read_text() == "1" and target.stat().st_mode & 0o777 == 0o777 & ~umask  # not private
    with pytest.raises(KeyboardInterrupt), atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("2")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert os.listdir(tmp_path) == ["model"]  # no temporary or old folder left


def test_a_permission_problem_writing_the_output_is_a_one_line_error(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(DeepRCError, match="out.txt: cannot write output: Permission denied"):
        with atomic_file(target) as tmp:
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    with pytest.raises(DeepRCError, match="model: cannot write output"), atomic_folder(tmp_path / "model") as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp / "weights"))
    with pytest.raises(PermissionError), atomic_file(target):  # about an input, not the output: passes unchanged
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "input.tsv"))
    assert os.listdir(tmp_path) == []


def test_sha256_file(tmp_path: Path) -> None:
    data = os.urandom(3000)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", block=1000) == hashlib.sha256(data).hexdigest()


# --- the rule of every --out: a missing target or an empty folder is written; an earlier output of the
# same command only with --force; anything else never ------------------------------------------------
def _marked(folder: Path, command: str) -> Path:
    with atomic_folder(folder, command) as tmp:
        (tmp / "result.txt").write_text(command)
    return folder


def test_an_output_folder_carries_the_marker_of_its_command(tmp_path: Path) -> None:
    target = _marked(tmp_path / "model", "train")
    assert output_command(target) == "train" and sorted(os.listdir(target)) == [OUTPUT_MARKER, "result.txt"]
    assert json.loads((target / OUTPUT_MARKER).read_text())["command"] == "train"
    assert output_command(tmp_path) is None  # no marker
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / OUTPUT_MARKER).write_text("not json")
    assert output_command(tmp_path / "bad") is None


def test_a_missing_target_or_an_empty_folder_is_free(tmp_path: Path) -> None:
    check_output(tmp_path / "absent", "train")
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", "train")
    with atomic_folder(tmp_path / "empty", "train") as tmp:
        (tmp / "a.txt").write_text("1")
    assert output_command(tmp_path / "empty") == "train"


@pytest.mark.parametrize("force", [False, True])
def test_a_folder_that_is_not_an_output_of_the_command_is_refused_even_with_force(tmp_path: Path, force: bool) -> None:
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    other = _marked(tmp_path / "evaluation", "evaluate")  # another command's output
    afile = tmp_path / "afile"
    afile.write_text("keep me too")
    for target in (mine, other, afile):
        with pytest.raises(OutputExistsError) as refused:
            check_output(target, "train", force)
        assert str(refused.value).startswith(f"{target}: exists and is not an earlier output of "
                                             "`deeprc-hopfield train`") and "\n" not in str(refused.value)
        with pytest.raises(OutputExistsError), atomic_folder(target, "train", force) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(os.listdir(mine)) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    assert (other / "result.txt").read_text() == "evaluate" and afile.read_text() == "keep me too"
    assert sorted(os.listdir(tmp_path)) == ["afile", "evaluation", "results"]  # no temporary left


def test_an_earlier_output_of_the_same_command_is_replaced_only_with_force(tmp_path: Path) -> None:
    target = _marked(tmp_path / "model", "train")
    with pytest.raises(OutputExistsError, match=r"model: holds an earlier output of `deeprc-hopfield train`; "
                                                r"nothing was written \(add --force to replace it\)"):
        with atomic_folder(target, "train") as tmp:
            (tmp / "new.txt").write_text("new")
    assert (target / "result.txt").read_text() == "train"
    with atomic_folder(target, "train", force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(os.listdir(target)) == [OUTPUT_MARKER, "new.txt"] and output_command(target) == "train"


def test_outputs_written_before_markers_are_known_by_their_own_files(tmp_path: Path) -> None:
    old = tmp_path / "old_model"
    old.mkdir()
    (old / "config.json").write_text("{}")
    recognise = lambda folder: (folder / "config.json").is_file()  # noqa: E731
    with pytest.raises(OutputExistsError, match="add --force"):
        check_output(old, "train", recognise=recognise)
    with atomic_folder(old, "train", force=True, recognise=recognise) as tmp:
        (tmp / "config.json").write_text('{"new": 1}')
    assert output_command(old) == "train"


def test_file_outputs_follow_the_same_rule(tmp_path: Path) -> None:
    ours = lambda path: path.read_text().startswith("subject_id,fold")  # noqa: E731
    table = write_text(tmp_path / "split.csv", "subject_id,fold\nA,0\n")
    with pytest.raises(OutputExistsError, match="add --force"):
        check_output(table, "split", folder=False, recognise=ours)
    check_output(table, "split", force=True, folder=False, recognise=ours)
    theirs = write_text(tmp_path / "metadata.csv", "subject_id,filename\n")
    with pytest.raises(OutputExistsError, match="not an earlier output of `deeprc-hopfield split`"):
        check_output(theirs, "split", force=True, folder=False, recognise=ours)
    (tmp_path / "empty").mkdir()  # a folder is never a file output, empty or not: the error says so
    with pytest.raises(OutputExistsError, match="is a folder, where `deeprc-hopfield split` writes a file"):
        check_output(tmp_path / "empty", "split", force=True, folder=False, recognise=ours)
    with pytest.raises(DeepRCError, match="output goes to a file, not to standard output"):
        check_output("-", "split", folder=False)


def test_a_target_taken_while_the_output_was_written_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with pytest.raises(OutputExistsError, match="not an earlier output"), atomic_folder(target, "train") as tmp:
        (tmp / "weights").write_text("new")
        target.mkdir()
        (target / "theirs.txt").write_text("keep me")  # made by someone else meanwhile
    assert sorted(os.listdir(target)) == ["theirs.txt"] and os.listdir(tmp_path) == ["model"]


def test_a_link_is_never_taken_for_an_earlier_output(tmp_path: Path) -> None:
    target = _marked(tmp_path / "model", "train")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OutputExistsError, match="not an earlier output"):
        check_output(tmp_path / "link", "train", force=True)
    assert output_command(target) == "train"
