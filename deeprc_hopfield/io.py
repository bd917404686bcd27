"""Writing outputs whole or not at all, and file checksums.

Every output of the package (a table, a figure, a model directory, an interpretation folder) is
written to a temporary path beside its target and renamed onto it at the end, so an error or an
interrupt (Ctrl-C, SIGTERM: see :mod:`deeprc_hopfield.interrupts`) never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd

from deeprc_hopfield.errors import DeepRCError


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _concerns(exc: OSError, path: Path) -> bool:
    """Whether an error is about `path`, a folder above it, or a temporary beside it (or a file in one)."""
    for name in (exc.filename, exc.filename2):
        if name is None:
            continue
        name = Path(name)
        if name == path or name in path.parents:
            return True
        if any(p.parent == path.parent and p.name.startswith(f".{path.name}.") for p in (name, *name.parents)):
            return True
    return False


@contextlib.contextmanager
def _user_facing(path: Path) -> Iterator[None]:
    """A permission problem writing `path` becomes a one-line :class:`DeepRCError` naming it; other errors pass."""
    try:
        yield
    except PermissionError as exc:
        if not _concerns(exc, path):
            raise
        raise DeepRCError(f"cannot write output: {exc.strerror}", path) from None


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (`.NAME.PID.partial`); renamed onto `path` on success.

    The parent folder is created if missing. On any error (or interrupt) the temporary file is
    removed and the error re-raised; a permission problem writing the output becomes a
    :class:`DeepRCError` naming `path`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with _user_facing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; on success it replaces `path`.

    An existing folder at `path` is removed only once the new one is complete (renamed aside, the
    new one renamed in, the old one removed). The parent folder is created if missing. On any error
    (or interrupt) the temporary folder is removed and the error re-raised; a permission problem
    writing the output becomes a :class:`DeepRCError` naming `path`, as does a file at `path`.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DeepRCError("output exists and is not a folder", path)
    with _user_facing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        try:
            yield tmp
            tmp.chmod(0o777 & ~_umask())  # mkdtemp made it private; give it normal permissions
            _replace_folder(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_folder(new: Path, path: Path) -> None:
    """Rename folder `new` to `path`; an existing folder there is renamed aside first, removed last."""
    if not path.exists():
        os.replace(new, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old)  # onto the empty folder mkdtemp made
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns `path`."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_table(frame: pd.DataFrame, path: str | Path, sep: str = ",") -> Path:
    """Write a table (no index) to `path` atomically; returns `path`."""
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, sep=sep, index=False)
    return Path(path)


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks of `block` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
