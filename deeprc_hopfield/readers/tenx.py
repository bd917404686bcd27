"""10x Genomics `filtered_contig_annotations.csv`: one row per contig (`barcode`, `chain`, `cdr3`,
`productive`, `umis`/`reads`; Cell Ranger writes `None` for a missing value). The chain to keep is
chosen at QC (TRB unless told otherwise); the count of a sequence is its UMIs summed over the cells
that carry it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.cdr3 import JUNCTION
from deeprc_hopfield.errors import InputFormatError
from deeprc_hopfield.genes import normalise_genes
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.readers.common import (
    column_or_missing,
    parse_counts,
    parse_productive,
    read_columns,
    require,
    tidy,
)

NAME = "10x"
COUNT_COLUMNS = ["umis", "reads"]
#: Cell Ranger's flags of a contig that filtered_contig_annotations.csv keeps only when true.
CELL_COLUMNS = ["is_cell", "high_confidence"]
DEFAULT_CHAIN = "TRB"


def _refuse_other_contigs(frame: pd.DataFrame, path: Path) -> None:
    """Contigs of barcodes that are no cell, or of low confidence, are in Cell Ranger's all_contig_annotations.csv,
    not in its filtered_contig_annotations.csv: the wrong file, refused rather than read with its background."""
    for column in CELL_COLUMNS:
        flags = parse_productive(frame, column, path)
        no = np.flatnonzero((flags == False).fillna(False).to_numpy())  # noqa: E712
        if len(no):
            raise InputFormatError(f"{len(no)} contig(s) with {column} false (the first on this line): this looks "
                                   "like Cell Ranger's all_contig_annotations.csv; give its "
                                   "filtered_contig_annotations.csv, which holds the contigs of cells only", path,
                                   line=int(no[0]) + 2, column=column)


def matches(header: list[str]) -> bool:
    """10x contig annotations have `barcode`, `chain` and `cdr3` columns."""
    return {"barcode", "chain", "cdr3"} <= set(header)


def cdr3_column(header: list[str]) -> tuple[str, str]:
    """The CDR3 column and its convention: Cell Ranger's `cdr3` includes the conserved C and F/W (a junction)."""
    return "cdr3", JUNCTION


def read(path: Path, header: list[str], delimiter: str, species: str = DEFAULT_SPECIES) -> pd.DataFrame:
    """Read 10x contig annotations into the tidy table (all chains; `locus` says which)."""
    require(header, ["cdr3"], path, "10x")
    columns = ["cdr3", "chain", "v_gene", "j_gene", "productive", *CELL_COLUMNS, *COUNT_COLUMNS]
    frame = read_columns(path, delimiter, columns, missing=("", "None"), text=("cdr3",))  # Cell Ranger writes 'None'
    _refuse_other_contigs(frame, path)
    return tidy(
        column_or_missing(frame, "cdr3"),
        normalise_genes(column_or_missing(frame, "v_gene"), species=species),
        normalise_genes(column_or_missing(frame, "j_gene"), species=species),
        parse_counts(frame, COUNT_COLUMNS, path),
        parse_productive(frame, "productive", path),
        column_or_missing(frame, "chain"),
    )
