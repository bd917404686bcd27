"""Repertoire readers, one module per input format, all returning the same tidy table.

Columns of the tidy table: `junction_aa`, `v_call`, `j_call` (IMGT names as categoricals, so that QC
and the store use their codes; missing when unknown),
`duplicate_count` (float, NaN when the file has no counts), `productive` (nullable boolean) and
`locus` (the chain, when the file says). Use :func:`read_repertoire`; the format is detected from
the header unless given. `junction_aa` always holds junctions: a file of IMGT CDR3s is recognised and
given its anchors back (`deeprc_hopfield.cdr3`); :func:`read_repertoire_file` also says what was found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deeprc_hopfield.cdr3 import IMGT_CDR3, Cdr3Convention, add_anchors, recognise
from deeprc_hopfield.encoding import JoinedSequences
from deeprc_hopfield.errors import InputFormatError
from deeprc_hopfield.readers import airr, immunoseq, mixcr, tenx, vdjtools
from deeprc_hopfield.readers.common import TIDY_COLUMNS, bad_values_collected, parsed_and_scanned, read_header
from deeprc_hopfield.species import DEFAULT_SPECIES

log = logging.getLogger(__name__)

#: Readers by format name, in the order detection tries them (most specific first).
READERS = {module.NAME: module for module in (tenx, mixcr, immunoseq, vdjtools, airr)}
FORMATS = list(READERS)

__all__ = ["FORMATS", "READERS", "TIDY_COLUMNS", "RepertoireFile", "detect_format", "read_repertoire",
           "read_repertoire_file"]


@dataclass
class RepertoireFile:
    """One repertoire file read: the tidy table (junctions), the format, what its CDR3 column held and
    the table's junctions joined into bytes (for quality control, which reads the same buffer)."""

    table: pd.DataFrame
    fmt: str
    cdr3: Cdr3Convention
    junctions: JoinedSequences
    sha256: str | None = None  # of the file as stored, where asked for
    unresolved_genes: dict[str, int] = field(default_factory=dict)  # V/J names not resolved, rows of each


def detect_format(path: str | Path) -> str:
    """Name of the format of a repertoire file, judged from its header line.

    Raises
    ------
    InputFormatError
        When no known format matches, naming the columns that were found.
    """
    header, _ = read_header(Path(path))
    for name, module in READERS.items():
        if module.matches(header):
            return name
    raise InputFormatError(
        "unrecognised repertoire format: the header matches none of "
        f"{', '.join(FORMATS)} (columns found: {', '.join(header[:12])}{' ...' if len(header) > 12 else ''})"
        f"{_case_hint(header)}",
        path,
        line=1,
    )


def _case_hint(header: list[str]) -> str:
    """A hint where the header would match a format in lower case (column names are case-sensitive)."""
    lower = [name.lower() for name in header]
    found = next((name for name, module in READERS.items() if module.matches(lower)), None)
    if found is None:
        return ""
    renamed = ", ".join(f"{a} -> {b}" for a, b in zip(header, lower) if a != b)
    return f"; column names are case-sensitive: in lower case ({renamed[:120]}) it would be read as {found}"


def read_repertoire(path: str | Path, fmt: str = "auto", species: str = DEFAULT_SPECIES) -> tuple[pd.DataFrame, str]:
    """Read one repertoire file (plain or gzip) into the tidy table.

    Parameters
    ----------
    path
        The repertoire file.
    fmt
        'auto' to detect from the header, or one of :data:`FORMATS`.
    species
        Whose genes the V/J names are (`deeprc_hopfield.species.SPECIES`); a name of no gene of it is missing.

    Returns
    -------
    table, format
        The tidy table (one row per input row, before quality control; `junction_aa` junctions) and
        the format used.
    """
    read = read_repertoire_file(path, fmt, species=species)
    return read.table, read.fmt


def read_repertoire_file(path: str | Path, fmt: str = "auto", digest: bool = False,
                         species: str = DEFAULT_SPECIES) -> RepertoireFile:
    """:func:`read_repertoire`, also saying what the file's CDR3 column held: a file of IMGT CDR3s
    (recognised by its column and its sequences' anchors, `deeprc_hopfield.cdr3.recognise`) gets
    the conserved C and F/W added, so that `junction_aa` holds junctions whatever the file gave.

    V/J names are read as genes of `species`. Every row's field count is checked beside the parse
    (:func:`~deeprc_hopfield.readers.common.scan_file`), in the same pass as the file's sha256 where `digest` asks
    for it. Bad values (a count that is no number, ...) and rows of another field count are refused together, in one
    error that lists the file's first ten with their lines (and columns), and counts the rest."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError("file not found", path)
    header, delimiter = read_header(path)
    if fmt == "auto":
        fmt = detect_format(path)
        log.debug("%s: detected format %s", path, fmt)
    elif fmt not in READERS:
        raise InputFormatError(f"unknown format '{fmt}'; choose one of auto, {', '.join(FORMATS)}", path)
    module = READERS[fmt]
    with bad_values_collected(path) as problems:  # every bad value and bad row of the file in one error
        table, sha256 = parsed_and_scanned(path, delimiter,
                                           lambda: module.read(path, header, delimiter, species)[TIDY_COLUMNS], digest)
    refused = problems.error()
    if refused is not None:
        raise refused
    junctions = JoinedSequences.of(table["junction_aa"])
    column = table.attrs.get("cdr3_column") or module.cdr3_column(header)  # a reader that chose by the values says
    convention = recognise(junctions, *column, path)
    if convention.found == IMGT_CDR3:
        table = table.assign(junction_aa=add_anchors(table["junction_aa"], table["j_call"], table["locus"]))
        junctions = JoinedSequences.of(table["junction_aa"])
    log.debug("%s: %s", path, convention.describe())
    return RepertoireFile(table, fmt, convention, junctions, sha256, dict(table.attrs.get("unresolved_genes", {})))
