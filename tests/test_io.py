"""Atomic outputs and checksums: an output is whole or absent, an earlier one kept until the new one is."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.io import atomic_file, atomic_folder, sha256_file, write_text


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
