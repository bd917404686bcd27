"""Repertoire readers, one module per input format, all returning the same tidy table.

Columns of the tidy table: `junction_aa`, `v_call`, `j_call` (IMGT names, None when unknown),
`duplicate_count` (float, NaN when the file has no counts), `productive` (nullable boolean) and
`locus` (the chain, when the file says). Use :func:`read_repertoire`; the format is detected from
the header unless given.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from deeprc_hopfield.errors import InputFormatError
from deeprc_hopfield.readers import airr, immunoseq, mixcr, tenx, vdjtools
from deeprc_hopfield.readers.common import TIDY_COLUMNS, read_header

log = logging.getLogger(__name__)

#: Readers by format name, in the order detection tries them (most specific first).
READERS = {module.NAME: module for module in (tenx, mixcr, immunoseq, vdjtools, airr)}
FORMATS = list(READERS)

__all__ = ["FORMATS", "READERS", "TIDY_COLUMNS", "detect_format", "read_repertoire"]


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
        f"{', '.join(FORMATS)} (columns found: {', '.join(header[:12])}{' ...' if len(header) > 12 else ''})",
        path,
        line=1,
    )


def read_repertoire(path: str | Path, fmt: str = "auto") -> tuple[pd.DataFrame, str]:
    """Read one repertoire file (plain or gzip) into the tidy table.

    Parameters
    ----------
    path
        The repertoire file.
    fmt
        'auto' to detect from the header, or one of :data:`FORMATS`.

    Returns
    -------
    table, format
        The tidy table (one row per input row, before quality control) and the format used.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFormatError("file not found", path)
    header, delimiter = read_header(path)
    if fmt == "auto":
        fmt = detect_format(path)
        log.debug("%s: detected format %s", path, fmt)
    elif fmt not in READERS:
        raise InputFormatError(f"unknown format '{fmt}'; choose one of auto, {', '.join(FORMATS)}", path)
    table = READERS[fmt].read(path, header, delimiter)
    return table[TIDY_COLUMNS], fmt
