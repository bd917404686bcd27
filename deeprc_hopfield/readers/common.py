"""What every reader shares: transparent gzip, header sniffing, column reading with clear errors,
and the tidy table that every reader returns."""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.errors import InputFormatError

#: Columns of the tidy table every reader returns (AIRR names). `locus` is the chain when known.
TIDY_COLUMNS = ["junction_aa", "v_call", "j_call", "duplicate_count", "productive", "locus"]

_GZIP_MAGIC = b"\x1f\x8b"
_CORRUPT = (EOFError, zlib.error, gzip.BadGzipFile)


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes (the extension is not trusted)."""
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file for reading (a UTF-8 byte-order mark is skipped)."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_header(path: Path) -> tuple[list[str], str]:
    """The column names and the delimiter (tab or comma) of a delimited text file."""
    try:
        with open_text(path) as handle:
            first = handle.readline()
    except _CORRUPT as exc:
        raise InputFormatError(f"truncated or corrupt gzip file ({exc})", path) from None
    except UnicodeDecodeError:
        raise InputFormatError("not a text file (cannot decode as UTF-8)", path) from None
    first = first.rstrip("\r\n")
    if not first.strip():
        raise InputFormatError("file is empty or has no header line", path, line=1)
    delimiter = "\t" if first.count("\t") >= first.count(",") else ","
    names = next(csv.reader([first], delimiter=delimiter))
    return [name.strip() for name in names], delimiter


_PANDAS_LINE = re.compile(r"line (\d+)")


def read_columns(
    path: Path, delimiter: str, columns: list[str], missing: tuple[str, ...] = ("",)
) -> pd.DataFrame:
    """Read only `columns` of a delimited file, every value as a string (missing as NaN).

    `missing` are the cell values that mean "no value" (Cell Ranger writes `None`). Blank lines are
    kept (as all-missing rows) so that row i is line i + 2 of the file.
    """
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            usecols=lambda name: name.strip() in columns,
            dtype=str,
            compression="gzip" if is_gzip(path) else None,
            encoding="utf-8-sig",
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=list(missing),
            quoting=csv.QUOTE_MINIMAL,
            low_memory=False,
        )
    except _CORRUPT as exc:
        raise InputFormatError(f"truncated or corrupt gzip file ({exc})", path) from None
    except UnicodeDecodeError:
        raise InputFormatError("not a text file (cannot decode as UTF-8)", path) from None
    except pd.errors.ParserError as exc:
        match = _PANDAS_LINE.search(str(exc))
        line = int(match.group(1)) if match else None
        raise InputFormatError(f"malformed table: {str(exc).strip()}", path, line=line) from None
    frame.columns = [name.strip() for name in frame.columns]
    return frame


def first_present(header: list[str], candidates: list[str]) -> str | None:
    """The first of `candidates` that is a column of `header`, or None."""
    present = set(header)
    return next((name for name in candidates if name in present), None)


def require(header: list[str], candidates: list[str], path: Path, fmt: str) -> str:
    """Like :func:`first_present` but a missing column is an :class:`InputFormatError`."""
    found = first_present(header, candidates)
    if found is None:
        wanted = " or ".join(f"'{c}'" for c in candidates)
        raise InputFormatError(f"{fmt} file needs a column {wanted}; found: {', '.join(header)}", path)
    return found


def parse_counts(frame: pd.DataFrame, candidates: list[str], path: Path) -> np.ndarray:
    """Clone counts from the first candidate column that holds any value; NaN where missing.

    A value that is not a number is an error naming its line and column; counts are never invented.
    """
    for name in candidates:
        if name not in frame.columns:
            continue
        raw = frame[name]
        values = pd.to_numeric(raw, errors="coerce")
        said_missing = raw.isna() | raw.str.strip().str.lower().isin(["na", "nan", "null"])
        if said_missing.all():  # e.g. `templates` written as NA throughout: try the next column
            continue
        bad = values.isna() & ~said_missing
        bad |= values < 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputFormatError(
                f"count '{raw.iloc[row]}' is not a non-negative number", path, line=row + 2, column=name
            )
        return values.to_numpy(dtype=np.float64)
    return np.full(len(frame), np.nan)


_TRUE = {"t", "true", "1", "yes", "y", "in"}
_FALSE = {"f", "false", "0", "no", "n", "out", "stop"}


def parse_productive(frame: pd.DataFrame, column: str | None, path: Path) -> pd.Series:
    """A boolean column (T/F, true/false, In/Out/Stop, ...) as a nullable boolean Series."""
    if column is None or column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="boolean")
    raw = frame[column].str.strip().str.lower()
    result = pd.Series(pd.NA, index=frame.index, dtype="boolean")
    result[raw.isin(_TRUE)] = True
    result[raw.isin(_FALSE)] = False
    unknown = raw.notna() & ~raw.isin(_TRUE | _FALSE) & ~raw.isin(["", "na", "nan", "null"])
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputFormatError(
            f"'{frame[column].iloc[row]}' is not a recognised yes/no value", path, line=row + 2, column=column
        )
    return result


def column_or_missing(frame: pd.DataFrame, column: str | None) -> pd.Series:
    """A string column, or an all-missing one when the file has no such column."""
    if column is None or column not in frame.columns:
        return pd.Series(None, index=frame.index, dtype=object)
    return frame[column].astype(object).where(frame[column].notna(), None)


def tidy(
    junction_aa: pd.Series,
    v_call: pd.Series,
    j_call: pd.Series,
    duplicate_count: np.ndarray,
    productive: pd.Series,
    locus: pd.Series | None = None,
) -> pd.DataFrame:
    """Assemble the tidy table that every reader returns (raw gene names; QC normalises them)."""
    index = junction_aa.index
    return pd.DataFrame(
        {
            "junction_aa": junction_aa.astype(object).where(junction_aa.notna(), None),
            "v_call": v_call.to_numpy(dtype=object),
            "j_call": j_call.to_numpy(dtype=object),
            "duplicate_count": duplicate_count,
            "productive": productive.to_numpy(),
            "locus": (locus if locus is not None else pd.Series(None, index=index, dtype=object)).to_numpy(
                dtype=object
            ),
        },
        index=index,
    )
