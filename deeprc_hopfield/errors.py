"""The package's own exception types: user mistakes that the CLI turns into one clear line."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


def named_list(items: Sequence[object], limit: int = 5) -> str:
    """The first `limit` of `items` for a message, then how many more: `a, b, c and 4 more`."""
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one choice clearly closest to a mistyped `word`: the same letters in another case, else difflib's ratio
    >= 0.75 and ahead of the next by 0.05 (among `rep004`..`rep094` no guess is better than none); else None."""
    from difflib import SequenceMatcher

    choices = list(choices)
    same = [c for c in choices if c.casefold() == word.casefold()]
    if len(same) == 1:
        return same[0]
    scored = sorted(((SequenceMatcher(None, word, c).ratio(), c) for c in choices), reverse=True)
    best, runner_up = (scored + [(0.0, ""), (0.0, "")])[:2]
    return best[1] if best[0] >= 0.75 and best[0] - runner_up[0] >= 0.05 else None


def did_you_mean(words: str | Sequence[str], choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for a mistyped word with a :func:`closest` choice; for several, each named
    (" (did you mean 'x' for 'a', 'y' for 'b'?)"); '' where none has one."""
    choices = list(choices)
    found = [(word, closest(word, choices)) for word in ([words] if isinstance(words, str) else words)]
    found = [(word, match) for word, match in found if match is not None]
    if not found:
        return ""
    if isinstance(words, str) or len(words) == 1:
        return f" (did you mean '{found[0][1]}'?)"
    return " (did you mean " + ", ".join(f"'{match}' for '{word}'" for word, match in found) + "?)"


def near_path(path: str | Path, folder: bool = False, beside: Iterable[str | Path] = ()) -> str | None:
    """A path that is there where `path` (a file; a folder where `folder`) is not, for a 'did you mean': a relative
    `path` taken from a folder of `beside` (a config file's, which the user may have meant it from), else `path` with
    the first of its parts that is not there changed to the :func:`closest` name beside it (`lab/export` for
    `lab/exports`); None where neither is there."""
    try:
        return _near_path(Path(path), Path.is_dir if folder else Path.is_file, beside)
    except OSError:  # a folder on the way that cannot be listed or entered: no hint, the error stands as it is
        return None


def _near_path(path: Path, there: Callable[[Path], bool], beside: Iterable[str | Path]) -> str | None:
    """:func:`near_path`'s search, which may meet a folder it cannot read."""
    for base in [] if path.is_absolute() else beside:
        if there(Path(base) / path):
            return str(Path(base) / path)
    parts = path.parts
    for i, part in enumerate(parts):
        head = Path(*parts[:i])
        if not (head / part).exists():  # the first part that is not there
            if not head.is_dir():
                return None
            near = closest(part, [entry.name for entry in os.scandir(head)])
            fixed = head.joinpath(near, *parts[i + 1:]) if near is not None else None
            return str(fixed) if fixed and there(fixed) else None
    return None


def logged_error(path: str | Path, limit: int = 12) -> list[str]:
    """The error a failed job's log `path` ends with, as the workflow's summary of a failed run shows it: its last
    error line (the CLI's `...: error: ...` or `...: interrupted; ...`, else a traceback's last line) after the log's
    path, then the indented lines that go on from it (a :func:`files_error`'s files), the first `limit` of them and
    how many more the log holds; [] for a log with no error."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = [line.rstrip() for line in handle if line.strip()]
    errors = [i for i, line in enumerate(lines) if ": error: " in line or ": interrupted; " in line]
    if not errors and not any(line.lstrip().startswith("Traceback") for line in lines):
        return []
    first = errors[-1] if errors else len(lines) - 1
    below = list(itertools.takewhile(lambda line: line[:1].isspace(), lines[first + 1:]))
    more = [f"  ... {len(below) - limit} more line(s) in {path}"] if len(below) > limit else []
    return [f"{path}: {lines[first].strip()}", *below[:limit], *more]


class DeepRCError(Exception):
    """A problem with the user's input or environment (not a bug): reported in one line, no traceback."""

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __reduce__(self) -> tuple:  # keep file/line/column across process pools
        return (self.__class__, (self.message, self.path, self.line, self.column))

    def location(self) -> str:
        """Where the problem is, as messages name it: `PATH, line N, column 'C'` (the parts known); '' where none is."""
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return ", ".join(where)

    def __str__(self) -> str:
        prefix = self.location()
        return f"{prefix}: {self.message}" if prefix else self.message


class InputFormatError(DeepRCError):
    """A repertoire file that cannot be read: unknown format, missing column, bad value, corrupt gzip."""


class MetadataError(DeepRCError):
    """A metadata table that does not describe the cohort: missing columns, files, labels or duplicates."""


class RepertoireFilesError(DeepRCError):
    """Several repertoire files of one command that cannot be used, each with its own error, reported together (see
    :func:`files_error`)."""


def files_error(failed: Sequence[DeepRCError], total: int) -> DeepRCError:
    """One error for the files of a command that cannot be used (every file is read before any is refused, so that one
    run shows every problem): a file's own error where it is the only one, else a :class:`RepertoireFilesError` that
    says how many of the `total` failed and lists each file's error below, indented, its own lines (a file's bad
    values) further in."""
    if len(failed) == 1:
        return failed[0]
    listed = "".join("\n" + "\n".join("  " + line for line in str(error).splitlines()) for error in failed)
    return RepertoireFilesError(f"{len(failed)} of {total} repertoire files cannot be used, and nothing was written; "
                                f"fix them (or leave them out) and run again:{listed}")


class ConfigError(DeepRCError):
    """A workflow config that the workflow refuses (not YAML, a key given twice, a key or value the schema refuses, a
    run without its cohort), in one line that starts with `config`, then names the file and line where known, then the
    key's path (`config $.training.n_updates: 0 is less than the minimum of 1`)."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.key = key
        super().__init__(message, path, line)

    def __reduce__(self) -> tuple:  # keep the key too
        return (self.__class__, (self.message, self.path, self.line, self.key))

    def __str__(self) -> str:
        where = " ".join(part for part in ("config", self.location(), self.key) if part)
        return f"{where}: {self.message}"


class QCError(DeepRCError):
    """Quality control left nothing usable (e.g. a repertoire with no sequence left)."""


class StoreError(DeepRCError):
    """A repertoire store that cannot be written or read (bad path, wrong schema version, not HDF5)."""


class SimulationError(DeepRCError):
    """Simulation parameters that cannot make a cohort (a rate out of range, a motif that does not fit, ...)."""


class SplitError(DeepRCError):
    """A split table that cannot be used: unreadable, a subject or fold it lacks, --split without --fold."""


class InnerFoldsError(DeepRCError):
    """Too few repertoires (or groups) of a class for inner cross-validation: a fit on those rows is refused."""


class DeviceError(DeepRCError):
    """A compute device that is unknown or absent (e.g. --device cuda without a CUDA GPU)."""
