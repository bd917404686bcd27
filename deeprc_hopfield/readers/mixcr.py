"""MiXCR clone tables (`mixcr exportClones`): `aaSeqCDR3`, `cloneCount`, `allVHitsWithScore` or
`bestVGene` (the best hit is kept); MiXCR 2's column names (`AA. Seq. CDR3`, `Clone count`, `All V hits`) alike.
An `_` in the CDR3 marks an out-of-frame clone (non-productive)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deeprc_hopfield.cdr3 import JUNCTION
from deeprc_hopfield.genes import normalise_genes
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.readers.common import (
    column_or_missing,
    first_present,
    parse_counts,
    read_columns,
    require,
    tidy,
)

NAME = "mixcr"
# MiXCR 3 and 4 names first, then MiXCR 2's (its default export: `Clone count`, `All V hits`, `AA. Seq. CDR3`)
AA_COLUMNS = ["aaSeqCDR3", "aaSeqImputedCDR3", "AA. Seq. CDR3"]
COUNT_COLUMNS = ["cloneCount", "readCount", "uniqueMoleculeCount", "Clone count"]
V_COLUMNS = ["bestVGene", "bestVHit", "allVHitsWithScore", "allVHits", "Best V hit", "Best V Hit", "All V hits"]
J_COLUMNS = ["bestJGene", "bestJHit", "allJHitsWithScore", "allJHits", "Best J hit", "Best J Hit", "All J hits"]


def matches(header: list[str]) -> bool:
    """MiXCR names its CDR3 `aaSeqCDR3` (or `aaSeqImputedCDR3`; MiXCR 2: `AA. Seq. CDR3`)."""
    return any(c in header for c in AA_COLUMNS)


def cdr3_column(header: list[str]) -> tuple[str, str]:
    """The CDR3 column and its convention: MiXCR's CDR3 runs from the conserved Cys to the conserved
    Phe/Trp, both included (a junction)."""
    return first_present(header, AA_COLUMNS) or AA_COLUMNS[0], JUNCTION


def _best_hit(hits: pd.Series) -> pd.Series:
    """`TRBV5-1*00(1234),TRBV5-4*00(800)` -> `TRBV5-1*00` (hits are sorted best first)."""
    return hits.str.split(",", n=1).str[0].str.replace(r"\(.*$", "", regex=True)


def read(path: Path, header: list[str], delimiter: str, species: str = DEFAULT_SPECIES) -> pd.DataFrame:
    """Read a MiXCR clone table into the tidy table."""
    aa_col = require(header, AA_COLUMNS, path, "MiXCR")
    v_col, j_col = first_present(header, V_COLUMNS), first_present(header, J_COLUMNS)
    frame = read_columns(path, delimiter, [c for c in [aa_col, v_col, j_col, *COUNT_COLUMNS] if c], text=(aa_col,))
    junction_aa = column_or_missing(frame, aa_col)
    productive = pd.Series(pd.NA, index=frame.index, dtype="boolean")
    productive[junction_aa.str.contains("_", regex=False).fillna(False).astype(bool)] = False
    return tidy(
        junction_aa,
        normalise_genes(_best_hit(column_or_missing(frame, v_col)), species=species),
        normalise_genes(_best_hit(column_or_missing(frame, j_col)), species=species),
        parse_counts(frame, COUNT_COLUMNS, path),
        productive,
    )
