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
from deeprc_hopfield.genes import gene_categorical

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
    path: Path, delimiter: str, columns: list[str], missing: tuple[str, ...] = ("",), text: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Read only `columns` of a delimited file (missing values as NaN).

    `text` columns (CDR3s, mostly distinct) are read as strings; the others (genes, counts, flags:
    few distinct values) as categoricals, which is several times faster to parse and to normalise.
    `missing` are the cell values that mean "no value" (Cell Ranger writes `None`). Blank lines are
    kept (as all-missing rows) so that row i is line i + 2 of the file.
    """
    dtype = {name: (object if name in text else "category") for name in columns}
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            usecols=lambda name: name.strip() in columns,
            dtype=dtype,
            compression="gzip" if is_gzip(path) else None,
            encoding="utf-8-sig",
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=list(missing),
            quoting=csv.QUOTE_MINIMAL,
            low_memory=True,  # faster here: every column's dtype is fixed
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
    if not is_gzip(path):  # a gzip stream's own checks catch truncation; a plain file needs a look
        _check_last_line(path, delimiter, len(frame))
    return frame


def _check_last_line(path: Path, delimiter: str, n_rows: int) -> None:
    """A plain file cut off mid-row ends without a newline and with too few fields: refuse it."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read()
        handle.seek(0)
        header = handle.readline()
    if not tail or tail.endswith(b"\n") or n_rows == 0:
        return
    last = tail.rsplit(b"\n", 1)[-1].rstrip(b"\r")
    sep = delimiter.encode()
    if last.count(sep) < header.count(sep):
        raise InputFormatError(
            f"the last line has {last.count(sep) + 1} of {header.count(sep) + 1} fields and no line end: "
            "the file looks truncated", path, line=n_rows + 1)


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


def _categories(raw: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes (-1 = missing) and distinct values of a column, so checks run once per distinct value."""
    if not isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype("category")
    return raw.cat.codes.to_numpy(), raw.cat.categories.astype(str)


def parse_counts(frame: pd.DataFrame, candidates: list[str], path: Path) -> np.ndarray:
    """Clone counts from the first candidate column that holds any value; NaN where missing.

    A value that is not a number is an error naming its line and column; counts are never invented.
    """
    for name in candidates:
        if name not in frame.columns:
            continue
        codes, categories = _categories(frame[name])
        numbers = pd.to_numeric(categories, errors="coerce").to_numpy(dtype=np.float64)
        said_missing = np.append(categories.str.strip().str.lower().isin(["na", "nan", "null"]), True)
        if said_missing[codes].all():  # e.g. `templates` written as NA throughout: try the next column
            continue
        bad = np.append((np.isnan(numbers) & ~said_missing[:-1]) | (numbers < 0), False)[codes]
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputFormatError(
                f"count '{categories[codes[row]]}' is not a non-negative number", path, line=row + 2, column=name
            )
        return np.append(numbers, np.nan)[codes]
    return np.full(len(frame), np.nan)


_TRUE = {"t", "true", "1", "yes", "y", "in"}
_FALSE = {"f", "false", "0", "no", "n", "out", "stop"}


def parse_productive(frame: pd.DataFrame, column: str | None, path: Path) -> pd.Series:
    """A boolean column (T/F, true/false, In/Out/Stop, ...) as a nullable boolean Series."""
    if column is None or column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="boolean")
    codes, categories = _categories(frame[column])
    words = categories.str.strip().str.lower()
    unknown = ~words.isin(_TRUE | _FALSE | {"", "na", "nan", "null"})
    if unknown.any():
        row = int(np.flatnonzero(np.isin(codes, np.flatnonzero(unknown)))[0])
        raise InputFormatError(
            f"'{categories[codes[row]]}' is not a recognised yes/no value", path, line=row + 2, column=column
        )
    value = pd.array(np.where(words.isin(_TRUE), True, np.where(words.isin(_FALSE), False, None)).tolist() + [None],
                     dtype="boolean")
    return pd.Series(value[codes], index=frame.index)


def _none_where_missing(column: pd.Series) -> pd.Series:
    """A column as Python objects with None where a value is missing (one copy, one missing-value scan)."""
    values = column.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return pd.Series(values, index=column.index, dtype=object, name=column.name, copy=False)


def column_or_missing(frame: pd.DataFrame, column: str | None) -> pd.Series:
    """A column as read (strings or categorical), or an all-missing one when the file has no such column."""
    if column is None or column not in frame.columns:
        return pd.Series(None, index=frame.index, dtype=object)
    if isinstance(frame[column].dtype, pd.CategoricalDtype):
        return frame[column]
    return _none_where_missing(frame[column])


def _genes(column: pd.Series) -> pd.Categorical | np.ndarray:
    """A gene column as the tidy table holds it: a categorical stays one, of the names it uses, sorted
    (QC and the store use its codes); anything else becomes Python objects."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return gene_categorical(column)
    return column.to_numpy()


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
            "junction_aa": _none_where_missing(junction_aa),
            "v_call": _genes(v_call),
            "j_call": _genes(j_call),
            "duplicate_count": duplicate_count,
            "productive": productive.to_numpy(),
            "locus": (locus if locus is not None else pd.Series(None, index=index, dtype=object)).to_numpy(
                dtype=object
            ),
        },
        index=index,
    )
