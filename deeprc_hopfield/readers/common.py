"""What every reader shares: transparent gzip, header sniffing, column reading with clear errors,
and the tidy table that every reader returns.

A file's bad values (a count that is no number, an unknown yes/no flag, ...) are gathered while it is read
(:func:`bad_values_collected`, which `read_repertoire_file` opens) and refused in one error that lists the first
:data:`LISTED_PROBLEMS` with their lines and columns and counts the rest, so that one run shows what to fix; rows of
another field count than the header's (:func:`scan_file`) are listed in the same error, in line order.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import re
import zlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, TypeVar

import numpy as np
import pandas as pd

from deeprc_hopfield.errors import InputFormatError
from deeprc_hopfield.genes import gene_categorical

#: Columns of the tidy table every reader returns (AIRR names). `locus` is the chain when known.
TIDY_COLUMNS = ["junction_aa", "v_call", "j_call", "duplicate_count", "productive", "locus"]

#: The delimiters a table may use, the first preferred on a tie (Excel writes semicolons where the comma is the
#: decimal mark).
DELIMITERS = ("\t", ",", ";")

_GZIP_MAGIC = b"\x1f\x8b"
_CORRUPT = (EOFError, zlib.error, gzip.BadGzipFile)
Parsed = TypeVar("Parsed")  # what a parse beside the scan gives (parsed_and_scanned)

#: Problems (bad values, rows of another field count) one file's error lists with their lines; the rest are counted.
LISTED_PROBLEMS = 10


@dataclass(frozen=True)
class Problem:
    """One bad value or row of a file: where (line; column, where one) and what is wrong."""

    line: int
    message: str
    column: str | None = None

    def __str__(self) -> str:
        column = f", column '{self.column}'" if self.column is not None else ""
        return f"line {self.line}{column}: {self.message}"


@dataclass
class Problems:
    """The problems found in one file: the first :data:`LISTED_PROBLEMS` (by line) kept, all counted, for one error
    that lists them (:meth:`error`)."""

    path: Path
    listed: list[Problem] = field(default_factory=list)
    count: int = 0

    def add(self, rows: np.ndarray, describe: Callable[[int], str], column: str | None = None, first_line: int = 2
            ) -> None:
        """Add the problems at `rows` (increasing; line = row + `first_line`: data rows by default), each described by
        `describe(row)` (called for the listed ones only)."""
        self.count += len(rows)
        self.listed += [Problem(int(row) + first_line, describe(int(row)), column) for row in rows[:LISTED_PROBLEMS]]
        self.listed = sorted(self.listed, key=lambda problem: problem.line)[:LISTED_PROBLEMS]

    def extend(self, other: Problems) -> None:
        """Add `other`'s problems (another check of the same file), in line order, ahead of these on a line they
        share, so that one error lists both."""
        self.count += other.count
        self.listed = sorted(other.listed + self.listed, key=lambda problem: problem.line)[:LISTED_PROBLEMS]

    def error(self) -> InputFormatError | None:
        """One error for them all (None where there is none): the first's line and column, its message, and the
        others listed below it, one a line (their count beyond :data:`LISTED_PROBLEMS`)."""
        if not self.count:
            return None
        first, others = self.listed[0], self.listed[1:]
        message = first.message
        if self.count > 1:
            more = self.count - 1
            message += f"; {more} more problem{'s' if more > 1 else ''} in this file:" + "".join(
                f"\n  {problem}" for problem in others)
            if self.count > len(self.listed):
                message += f"\n  ... and {self.count - len(self.listed)} more"
        return InputFormatError(message, self.path, line=first.line, column=first.column)


_COLLECTED: ContextVar[Problems | None] = ContextVar("bad_values", default=None)


@contextlib.contextmanager
def bad_values_collected(path: Path) -> Iterator[Problems]:
    """Gather the bad values that the parsers (:func:`parse_counts`, :func:`parse_productive`, ...) find while a file is
    read inside the block, rather than stop at the first: they are read as missing, and the caller refuses the file
    with ``problems.error()`` once it is read. Outside such a block a parser refuses its column's bad values at
    once."""
    problems = Problems(path)
    token = _COLLECTED.set(problems)
    try:
        yield problems
    finally:
        _COLLECTED.reset(token)


def report_bad_values(path: Path, rows: np.ndarray, describe: Callable[[int], str], column: str | None = None) -> None:
    """Report the bad values at data rows `rows` (increasing; row i is line i + 2) of `column`: into the file's
    collection where :func:`bad_values_collected` is open (the caller reads them as missing), else at once, as an
    error listing them."""
    collected = _COLLECTED.get()
    problems = collected if collected is not None else Problems(path)
    problems.add(rows, describe, column)
    if collected is None:
        raise problems.error()


def _report_rows(rows: Problems | None) -> None:
    """Report a file's rows of another field count (:func:`_scanned_rows`; None: none): into the file's collection
    where :func:`bad_values_collected` is open, so that one error lists them with its bad values, else at once."""
    if rows is None:
        return
    collected = _COLLECTED.get()
    if collected is None:
        raise rows.error()
    collected.extend(rows)


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes (the extension is not trusted)."""
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file for reading (a UTF-8 byte-order mark is skipped)."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def not_utf8(path: Path, block: int = 1 << 20) -> InputFormatError:
    """The error for a file that does not decode as UTF-8, naming the line and character of the first bad byte
    (found by a second, streamed read: this runs only once decoding has failed), or what the file is instead of
    text where its first bytes say (a workbook, UTF-16 text, another compression)."""
    kind = _not_text(path)
    if kind is not None:
        return InputFormatError(kind, path)
    try:
        return _first_undecodable(path, block)
    except _CORRUPT as exc:
        return InputFormatError(f"truncated or corrupt gzip file ({exc})", path)


#: What a file is by its first bytes, where that is not UTF-8 text, and what to do.
_NOT_TEXT = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one), not a text table: save the sheet as "
                    "tab-separated text, or unzip the file"),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls workbook, not a text table: save the sheet as tab-separated text"),
    (b"\xff\xfe", "UTF-16 text (Excel's 'Unicode text'): save it as UTF-8, e.g. `iconv -f utf-16 -t utf-8`"),
    (b"\xfe\xff", "UTF-16 text (Excel's 'Unicode text'): save it as UTF-8, e.g. `iconv -f utf-16 -t utf-8`"),
    (b"BZh", "bzip2-compressed: only gzip is read; `bunzip2` it, or recompress it with gzip"),
    (b"\xfd7zXZ\x00", "xz-compressed: only gzip is read; `unxz` it, or recompress it with gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: only gzip is read; `unzstd` it, or recompress it with gzip"),
)


def _not_text(path: Path) -> str | None:
    """What the file is, by its first bytes, when they say it is not UTF-8 text (:data:`_NOT_TEXT`)."""
    with open(path, "rb") as handle:
        start = handle.read(8)
    return next((what for magic, what in _NOT_TEXT if start.startswith(magic)), None)


def _first_undecodable(path: Path, block: int) -> InputFormatError:
    line, rest = 1, b""
    with (gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")) as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1  # whole lines only, so that no character straddles two pieces
            piece, rest = (data[:cut], data[cut:]) if cut else (b"", data)
            where = _bad_byte(piece, line)
            if where is not None:
                return InputFormatError(where, path, line=line + piece.count(b"\n", 0, _first_bad(piece)))
            line += piece.count(b"\n")
    where = _bad_byte(rest, line)
    if where is not None:
        return InputFormatError(where, path, line=line)
    return InputFormatError("not a text file (cannot decode as UTF-8)", path)


def _first_bad(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return -1


def _bad_byte(data: bytes, line: int) -> str | None:
    """What is wrong with the first undecodable byte of whole lines `data`, or None when they decode."""
    at = _first_bad(data)
    if at < 0:
        return None
    start = data.rfind(b"\n", 0, at) + 1
    character = len(data[start:at].decode("utf-8-sig" if line == 1 and start == 0 else "utf-8")) + 1
    return (f"byte 0x{data[at]:02x} at character {character} is not UTF-8 text; save the file as UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`)")


def read_header(path: Path) -> tuple[list[str], str]:
    """The column names and the delimiter (tab, comma or semicolon: the most frequent in the header line) of a
    delimited text file."""
    try:
        with open_text(path) as handle:
            first = handle.readline()
    except _CORRUPT as exc:
        raise InputFormatError(f"truncated or corrupt gzip file ({exc})", path) from None
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    first = first.rstrip("\r\n")
    if not first.strip():
        raise InputFormatError("file is empty or has no header line", path, line=1)
    delimiter = max(DELIMITERS, key=first.count)  # the first of equals: tab
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
    kept (as all-missing rows) so that row i is line i + 2 of the file. Field counts are not checked here:
    :func:`scan_file` does that beside the parse.
    """
    dtype = {name: (object if name in text else "category") for name in columns}
    try:
        frame = _parsed(path, delimiter, columns, dtype, missing)
    except _CORRUPT as exc:
        raise InputFormatError(f"truncated or corrupt gzip file ({exc})", path) from None
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except pd.errors.ParserError as exc:
        match = _PANDAS_LINE.search(str(exc))
        line = int(match.group(1)) if match else None
        raise InputFormatError(f"malformed table: {str(exc).strip()}", path, line=line) from None
    frame.columns = [name.strip() for name in frame.columns]
    return frame


def _parsed(path: Path, delimiter: str, columns: list[str], dtype: dict, missing: tuple[str, ...]) -> pd.DataFrame:
    """The columns of :func:`read_columns`, as pandas' C parser reads them."""
    return pd.read_csv(
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


def scan_file(path: Path, delimiter: str, digest: bool = False, block: int = 1 << 22) -> str | None:
    """One streamed pass over a delimited file's bytes: refuse rows of a field count that the parse would not read
    as the header's (a shifted or cut row, which a column read would keep with empty or wrong cells), naming their
    lines (the first :data:`LISTED_PROBLEMS`, and how many), and, with `digest`, return the sha256 of the file as
    stored (compressed or not; else None).

    What pandas reads rightly passes (:class:`_RowShape`): rows of the header's count, rows without the header's
    trailing empty fields, and rows that all have one more field (R's row names); blank and whitespace-only lines
    too. A last line cut short without a line end is called truncated; a file with quote characters is left to the
    parser, whose quoting rules may put delimiters inside fields. Each `block`-byte piece of whole lines whose
    delimiters add up to one count per line passes (a short and a long row in one piece would cancel); any other is
    counted line by line."""
    sha256, rows = _scanned_rows(path, delimiter, digest, block)
    if rows is not None:
        raise rows.error()
    return sha256


def _scanned_rows(path: Path, delimiter: str, digest: bool = False, block: int = 1 << 22
                 ) -> tuple[str | None, Problems | None]:
    """:func:`scan_file`'s pass, its rows of another field count returned (None: none) rather than raised, for a
    caller that lists them with the file's bad values."""
    try:
        return _scanned(path, delimiter, digest, block)
    except _CORRUPT as exc:
        raise InputFormatError(f"truncated or corrupt gzip file ({exc})", path) from None


def parsed_and_scanned(path: Path, delimiter: str, parse: Callable[[], Parsed], digest: bool = False
                       ) -> tuple[Parsed, str | None]:
    """`parse()` of a delimited file with :func:`scan_file` beside it in a thread (numpy, reads and hashes release
    the GIL): what the parse gives, and the file's sha256 where `digest` asks for it. Bad rows join the file's bad
    values where :func:`bad_values_collected` is open (one error for both: :func:`_report_rows`), else are refused;
    where the parse fails, their error comes first: it names the line where the parse's may not."""
    with ThreadPoolExecutor(max_workers=1) as scanner:
        scanned = scanner.submit(_scanned_rows, path, delimiter, digest)
        try:
            parsed = parse()
        except Exception:
            rows = scanned.result()[1]
            if rows is not None:
                raise rows.error() from None
            raise
        sha256, rows = scanned.result()
    _report_rows(rows)
    return parsed, sha256


def _scanned(path: Path, delimiter: str, digest: bool, block: int) -> tuple[str | None, Problems | None]:
    hashed = hashlib.sha256() if digest else None
    shape, line, checking = _RowShape(ord(delimiter)), 1, True
    buffer, filled = bytearray(block), 0
    with open(path, "rb") as raw:
        hashing = _Hashing(raw, hashed.update if hashed is not None else None)
        stream = gzip.GzipFile(fileobj=hashing, mode="rb") if is_gzip(path) else hashing
        while True:
            if filled == len(buffer):  # a line longer than the buffer
                buffer = buffer + bytearray(len(buffer))
            n = stream.readinto(memoryview(buffer)[filled:])
            if not n:
                break
            filled += n
            if not checking:
                filled = 0
                continue
            if buffer.find(b'"', filled - n, filled) >= 0:
                checking, filled = False, 0
                continue
            data = np.frombuffer(buffer, np.uint8, count=filled)
            ends = np.flatnonzero(data == NEWLINE)
            if len(ends):
                shape.check(data[:ends[-1] + 1], ends, line, path)
                line += len(ends)
                rest = filled - int(ends[-1]) - 1
                del data
                buffer[:rest] = buffer[filled - rest:filled]
                filled = rest
        while stream.read(block):  # the digest covers every byte (a gzip stream reads to the end anyway)
            pass
    last = bytes(buffer[:filled])
    if checking and last.strip():  # a last line without a line end
        shape.check(np.frombuffer(last + b"\n", np.uint8), np.array([filled]), line, path, unended=True)
    return (hashed.hexdigest() if hashed is not None else None), shape.problems


class _Hashing(io.RawIOBase):
    """A binary file that hands what is read from it to `update` (a hash's; None: to nothing)."""

    def __init__(self, raw: io.BufferedReader, update: Callable[[memoryview], None] | None) -> None:
        self.raw, self.update = raw, update

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview | bytearray) -> int:
        n = self.raw.readinto(target)
        if n and self.update is not None:
            self.update(memoryview(target)[:n])
        return n


NEWLINE, RETURN, SPACE = ord("\n"), ord("\r"), ord(" ")


def _fields(n: int) -> str:
    return f"{n} field" if n == 1 else f"{n} fields"


class _RowShape:
    """The field counts a row may have, as pandas reads the file: the header's (`header`), or down to its count
    without trailing empty names (a header that ends in a delimiter); or, where the first row has one field more,
    that count for every row (R's `write.table` row names, which pandas takes as the index). Set by the header
    line and the first data row, in :meth:`check`."""

    def __init__(self, sep: int) -> None:
        self.sep, self.header, self.low, self.high, self.settled = sep, 0, 0, 0, False
        self.problems: Problems | None = None  # the rows of a field count the parse would misread, where any

    def check(self, data: np.ndarray, ends: np.ndarray, first_line: int, path: Path, unended: bool = False) -> None:
        """Note the lines of whole lines `data` (bytes ending in a newline at each of `ends`, from line `first_line`
        on) whose field count the parse would misread, in :attr:`problems`."""
        is_sep = data == self.sep
        starts = np.concatenate([[0], ends[:-1] + 1])
        empty = (ends - starts) - (data[np.maximum(ends - 1, 0)] == RETURN) <= 0
        header_seps = self._header(data, ends) if first_line == 1 else 0
        if not self.settled:
            self._first_row(data, ends, starts, empty, int(first_line == 1))
        rows = len(ends) - int(np.count_nonzero(empty)) - (first_line == 1)
        if self.settled and self.low == self.high and (
                np.count_nonzero(is_sep) - header_seps == (self.high - 1) * rows):
            return
        fields = np.add.reduceat(is_sep, starts, dtype=np.int64) + 1
        spaces = is_sep | (data == SPACE) | (data == RETURN) | (data == NEWLINE)
        blank = np.add.reduceat(~spaces, starts, dtype=np.int64) == 0
        blank[0] |= first_line == 1  # the header
        bad = np.flatnonzero(((fields < self.low) | (fields > self.high)) & ~blank)
        if len(bad):
            wanted = (f"the header has {self.header}" if self.low <= self.header else
                      f"the first row has {self.low} (a row name and the header's {self.header})")

            def describe(k: int) -> str:
                found = int(fields[k])
                ending = " and no line end: the file looks truncated" if unended and found < self.low else ""
                return f"{_fields(found)} where {wanted}{ending}"

            self.problems = self.problems or Problems(path)
            self.problems.add(bad, describe, first_line=first_line)

    def _header(self, data: np.ndarray, ends: np.ndarray) -> int:
        """Read the header line (the first of `data`); its delimiter count."""
        header = bytes(data[:ends[0]]).rstrip(b"\r")
        seps = header.count(self.sep)
        self.header = self.high = seps + 1
        self.low = self.header - (len(header) - len(header.rstrip(bytes([self.sep]))))
        return seps

    def _first_row(self, data: np.ndarray, ends: np.ndarray, starts: np.ndarray, empty: np.ndarray, skip: int) -> None:
        """Settle the shape on the first data row when it is in `data` (past its first `skip` lines)."""
        first = next((i for i in np.flatnonzero(~empty[skip:]) + skip
                      if bytes(data[starts[i]:ends[i]]).strip(b" \r" + bytes([self.sep]))), None)
        if first is not None:
            if bytes(data[starts[first]:ends[first]]).count(self.sep) == self.header:  # one field more
                self.low = self.high = self.header + 1  # R's row names: pandas takes the first field as the index
            self.settled = True


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
    """Clone counts from the first candidate column that holds any value; NaN where missing (empty, `NA`, `nan`,
    `null`).

    A value that is not a non-negative number (`ten`, `-2`, `1,234`) is a bad value naming its line and column
    (:func:`report_bad_values`: every one of the file is listed in one error); counts are never invented.
    """
    for name in candidates:
        if name not in frame.columns:
            continue
        codes, categories = _categories(frame[name])
        numbers = pd.to_numeric(categories, errors="coerce").to_numpy(dtype=np.float64)
        said_missing = np.append(categories.str.strip().str.lower().isin(["na", "nan", "null"]), True)
        if said_missing[codes].all():  # e.g. `templates` written as NA throughout: try the next column
            continue
        wrong = (np.isnan(numbers) & ~said_missing[:-1]) | (numbers < 0)
        bad = np.append(wrong, False)[codes]
        if bad.any():
            report_bad_values(path, np.flatnonzero(bad), lambda row: _bad_count(str(categories[codes[row]])), name)
            numbers = np.where(wrong, np.nan, numbers)
        return np.append(numbers, np.nan)[codes]
    return np.full(len(frame), np.nan)


_THOUSANDS = re.compile(r"\d{1,3}([,.' ]\d{3})+")


def _bad_count(value: str) -> str:
    """What is wrong with a count that is no non-negative number; for `1,234`, that it has thousands separators
    (refused rather than read: `1,234` is 1.234 where the comma is the decimal mark)."""
    hint = " (write counts without thousands separators)" if _THOUSANDS.fullmatch(value.strip()) else ""
    return f"count '{value}' is not a non-negative number{hint}"


_TRUE = {"t", "true", "1", "yes", "y", "in"}
_FALSE = {"f", "false", "0", "no", "n", "out", "stop"}


def parse_productive(frame: pd.DataFrame, column: str | None, path: Path) -> pd.Series:
    """A boolean column (T/F, true/false, In/Out/Stop, ...) as a nullable boolean Series; a value that is none of
    these is a bad value naming its line (:func:`report_bad_values`), missing here."""
    if column is None or column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="boolean")
    codes, categories = _categories(frame[column])
    words = categories.str.strip().str.lower()
    unknown = ~words.isin(_TRUE | _FALSE | {"", "na", "nan", "null"})
    if unknown.any():
        rows = np.flatnonzero(np.isin(codes, np.flatnonzero(unknown)))
        report_bad_values(path, rows, lambda row: f"'{categories[codes[row]]}' is not a recognised yes/no value",
                          column)
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
    """Assemble the tidy table that every reader returns; ``attrs["unresolved_genes"]`` counts the rows of each
    gene name that normalisation could not resolve (:func:`deeprc_hopfield.genes.normalise_genes`)."""
    index = junction_aa.index
    unresolved = {**v_call.attrs.get("unresolved", {}), **j_call.attrs.get("unresolved", {})}
    table = pd.DataFrame(
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
    table.attrs["unresolved_genes"] = unresolved
    return table
