"""VDJtools clonotype tables: `count`, `freq`, `cdr3nt`, `cdr3aa`, `v`, `d`, `j` (the first column
is sometimes written `#count`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deeprc_hopfield.cdr3 import JUNCTION
from deeprc_hopfield.genes import normalise_genes
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.readers.common import column_or_missing, parse_counts, read_columns, require, tidy

NAME = "vdjtools"


def matches(header: list[str]) -> bool:
    """VDJtools has `cdr3aa` and `count` (or `#count`)."""
    names = {h.lstrip("#") for h in header}
    return {"cdr3aa", "count"} <= names


def cdr3_column(header: list[str]) -> tuple[str, str]:
    """The CDR3 column and its convention: VDJtools' `cdr3aa` includes the conserved C and F/W (a junction)."""
    return "cdr3aa", JUNCTION


def read(path: Path, header: list[str], delimiter: str, species: str = DEFAULT_SPECIES) -> pd.DataFrame:
    """Read a VDJtools table into the tidy table."""
    require(header, ["cdr3aa"], path, "VDJtools")
    count_col = require(header, ["count", "#count"], path, "VDJtools")
    frame = read_columns(path, delimiter, [count_col, "cdr3aa", "v", "j"], text=("cdr3aa",))
    return tidy(
        column_or_missing(frame, "cdr3aa"),
        normalise_genes(column_or_missing(frame, "v"), species=species),
        normalise_genes(column_or_missing(frame, "j"), species=species),
        parse_counts(frame, [count_col], path),
        pd.Series(pd.NA, index=frame.index, dtype="boolean"),
    )
