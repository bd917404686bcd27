"""Writing outputs whole or not at all, and file checksums.

Every output of the package (a table, a figure, a model directory, an interpretation folder) is
written to a temporary path beside its target and renamed onto it at the end, so an error or an
interrupt (Ctrl-C, SIGTERM: see :mod:`deeprc_hopfield.interrupts`) never leaves a half-written file.

No command overwrites what it did not write: :func:`check_output` is the one rule, applied before
any work (a missing target or an empty folder is written; an earlier output of the same command
only with ``--force``; anything else never). Output folders carry a marker file,
:data:`OUTPUT_MARKER`, naming the command that wrote them.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Hashable
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from deeprc_hopfield import __version__
from deeprc_hopfield.errors import DeepRCError

#: The file in every output folder that names the command which wrote it (JSON: command, package_version).
OUTPUT_MARKER = ".deeprc-hopfield.json"


class OutputExistsError(DeepRCError):
    """An output path that is taken: by anything but an earlier output of the same command (refused even
    with --force), or by such an output (refused without --force)."""


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
    """A system error writing `path` (no permission, a file where a folder should be, a read-only or full disk)
    becomes a one-line :class:`DeepRCError` naming it; other errors pass."""
    try:
        yield
    except OSError as exc:
        if not _concerns(exc, path):
            raise
        raise DeepRCError(f"cannot write output: {exc.strerror or exc}", path) from None


def check_writable_location(path: str | Path) -> None:
    """Refuse, before any work, an output whose folder cannot be made or written: a file where a folder above
    it should be, or a folder that takes no new file (no permission, a read-only or virtual file system).

    A probe file is made and removed in the nearest existing folder above `path` (nothing else is created)."""
    path = Path(path)
    above = next((p for p in path.absolute().parents if p.exists() or p.is_symlink()), None)
    if above is None:
        return
    if not above.is_dir():
        raise DeepRCError(f"cannot write output: '{above}' is a file, not a folder", path)
    try:
        with tempfile.TemporaryFile(dir=above, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise DeepRCError(f"cannot write output: folder '{above}' takes no new file ({exc.strerror or exc})",
                          path) from None


def output_command(folder: str | Path) -> str | None:
    """The command that wrote `folder`, as its :data:`OUTPUT_MARKER` says; None without a readable marker."""
    try:
        marker = json.loads((Path(folder) / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker.get("command") if isinstance(marker, dict) else None


def first_line(path: str | Path, limit: int = 1 << 16) -> str:
    """The first line of a text file (at most `limit` characters, no line end); "" when unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline(limit).rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return ""


def hdf5_attribute(path: str | Path, name: str) -> object | None:
    """The root attribute `name` of the HDF5 file at `path`; None where it has none or is not a readable HDF5 file
    (how `--force` knows an earlier store or clones file)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return handle.attrs.get(name)
    except OSError:
        return None


def _is_empty_folder(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except OSError:
        return False


def own_output(path: Path, command: str, folder: bool = True,
               recognise: Callable[[Path], bool] | None = None) -> bool:
    """Whether the existing `path` is an earlier output of `command` (see :func:`check_output`); a link
    never is (replacing it would not replace what it points to)."""
    if path.is_symlink():
        return False
    try:
        if folder:
            return path.is_dir() and (output_command(path) == command or (recognise is not None and recognise(path)))
        return path.is_file() and recognise is not None and recognise(path)
    except OSError:  # unreadable: not known to be ours
        return False


def check_output(path: str | Path, command: str, force: bool = False, *, folder: bool = True,
                 recognise: Callable[[Path], bool] | None = None, option: str = "--out") -> None:
    """Refuse, before any work, an output path that is taken or cannot be written (:func:`check_writable_location`);
    the one rule of every command's ``--out``.

    A path that does not exist, or (for a folder output) an empty folder, is free. One that holds an
    earlier output of the same `command` is replaced only with `force`; anything else is refused,
    `force` or not, so ``--force`` never deletes what the command did not write. An earlier output
    folder is known by its :data:`OUTPUT_MARKER`; `recognise` (a test of the path) knows the rest:
    folders written before markers existed, and files, which carry none.

    Parameters
    ----------
    path
        The output (a folder when `folder`, else a file).
    command
        The subcommand writing it, e.g. ``"train"``; the marker must name the same one.
    force
        Replace an earlier output of `command`.
    folder
        Whether the output is a folder.
    recognise
        Whether an existing `path` without a marker is an earlier output of `command`.
    option
        The option that named `path` (``--attention``, ...), for the advice of a refusal.

    Raises
    ------
    OutputExistsError
        One line naming `path`: what is there and what to do.
    """
    path = Path(path)
    if str(path) == "-":
        raise DeepRCError("--out -: output goes to a file, not to standard output; give a file name")
    if not folder and path.is_dir():
        raise OutputExistsError(f"is a folder, where `deeprc-hopfield {command}` writes a file: give the file's name "
                                "(in that folder, if you like); nothing was written", path)
    check_writable_location(path)
    if not path.exists() and not path.is_symlink():
        return
    if folder and _is_empty_folder(path):
        return
    if not own_output(path, command, folder, recognise):
        raise OutputExistsError(f"exists and is not an earlier output of `deeprc-hopfield {command}`; it was left "
                                f"as it is and nothing was written (choose another {option}; --force replaces only "
                                "an earlier output of the same command)", path)
    if not force:
        raise OutputExistsError(f"holds an earlier output of `deeprc-hopfield {command}`; nothing was written "
                                "(add --force to replace it)", path)


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
def atomic_folder(path: str | Path, command: str | None = None, force: bool = False,
                  recognise: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; on success it replaces `path`.

    An existing folder at `path` is removed only once the new one is complete (renamed aside, the
    new one renamed in, the old one removed). The parent folder is created if missing. On any error
    (or interrupt) the temporary folder is removed and the error re-raised; a permission problem
    writing the output becomes a :class:`DeepRCError` naming `path`, as does a file at `path`.

    With `command` (a command's output, not an internal folder such as a checkpoint) the folder gets
    the :data:`OUTPUT_MARKER` of `command`, and :func:`check_output` (`force`, `recognise`) is applied
    on entry and again just before the replacement, so a target taken meanwhile is still kept.
    """
    path = Path(path)
    if command is not None:
        check_output(path, command, force, recognise=recognise)
    if path.exists() and not path.is_dir():
        raise DeepRCError("output exists and is not a folder", path)
    with _user_facing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        try:
            yield tmp
            tmp.chmod(0o777 & ~_umask())  # mkdtemp made it private; give it normal permissions
            if command is not None:
                marker = {"command": command, "package_version": __version__}
                (tmp / OUTPUT_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
                check_output(path, command, force, recognise=recognise)
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


def restore_folder(path: str | Path) -> bool:
    """Undo a crash inside `_replace_folder`: when `path` is missing but its previous version lies renamed
    aside (a kill between the two renames), rename that back; returns whether it did. Leftover
    temporaries of `path` are removed either way (a `.partial` may be incomplete; the aside copy is whole)."""
    path = Path(path)
    asides = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.old"), key=lambda p: p.stat().st_mtime)
    restored = False
    if not path.exists() and asides:
        os.replace(asides.pop(), path)
        restored = True
    for leftover in [*asides, *path.parent.glob(f".{glob.escape(path.name)}.*.partial")]:
        shutil.rmtree(leftover, ignore_errors=True)
    return restored


def publish_file(tmp: str | Path, path: str | Path) -> Path:
    """Rename a finished temporary file onto `path`, with the permissions a new file gets (mkstemp makes
    it private); for writers that hold their temporary open over many calls (the HDF5 store)."""
    Path(tmp).chmod(0o666 & ~_umask())
    os.replace(tmp, path)
    return Path(path)


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


@functools.lru_cache(maxsize=1)
def _unique_key_loader() -> type:
    """A safe YAML loader that refuses a mapping naming a key twice, where PyYAML silently keeps the last (a
    second `training:` section in a config would drop every setting of the first)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
            first: dict = {}  # a key as Python holds it (`1` and `01` are one) -> its line
            for key_node, _ in node.value:  # the mapping's own keys: a merge key's (`<<: *base`) may be overridden
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, Hashable) and key in first:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value!r} appears twice (first on line {first[key]}), and YAML "
                        "would keep only the last; merge the two", key_node.start_mark)
                if isinstance(key, Hashable):
                    first[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def read_yaml(path: str | Path, error: type[DeepRCError] = DeepRCError) -> object:
    """A YAML file's contents; one that cannot be read, is not YAML or names a key of a mapping twice raises
    `error` in one line, naming the line and character where the parser stopped (PyYAML's own message spans
    four lines)."""
    import yaml

    path = Path(path)
    text = ""
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character, NUL)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise error(f"not valid YAML at character {column}: the character #x{exc.character:04x} is not allowed",
                    path, line=line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not YAML"
        where = f" at character {mark.column + 1}" if mark is not None else ""
        raise error(f"not valid YAML{where}: {problem}", path, line=None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}", path) from None
    except UnicodeDecodeError:
        raise error("not a UTF-8 text file", path) from None
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror}", path) from None
