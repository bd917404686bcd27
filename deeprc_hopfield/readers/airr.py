"""AIRR Rearrangement TSV (the community standard): `junction_aa`, `v_call`, `j_call`, `duplicate_count`.

The CDR3 comes from `junction_aa`, else `cdr3_aa`, else the nucleotide `junction`/`cdr3`
translated with Biopython (a length that is not a multiple of 3 is out of frame: non-productive).
A row whose `junction_aa` is empty takes its junction from a filled `cdr3_aa` (anchors added):
AIRR allows either field to be blank, and some tools fill only the CDR3.
`junction_aa`/`junction` hold junctions, `cdr3_aa`/`cdr3` IMGT CDR3s (see `deeprc_hopfield.cdr3`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.cdr3 import IMGT_CDR3, JUNCTION, add_anchors
from deeprc_hopfield.errors import InputFormatError
from deeprc_hopfield.genes import normalise_genes
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.readers.common import (
    column_or_missing,
    first_present,
    parse_counts,
    parse_productive,
    read_columns,
    require,
    tidy,
)

log = logging.getLogger(__name__)

NAME = "airr"
AA_COLUMNS = ["junction_aa", "cdr3_aa"]
NT_COLUMNS = ["junction", "cdr3"]
COUNT_COLUMNS = ["duplicate_count", "consensus_count", "umi_count"]
_OTHER = ["v_call", "j_call", "productive", "locus"]


def matches(header: list[str]) -> bool:
    """AIRR files name their CDR3 `junction_aa` or `junction` (AIRR's own names: enough alone, as in a bare list of
    CDR3s), or `cdr3_aa`/`cdr3` beside an AIRR field such as `v_call`."""
    names = set(header)
    if names & {"junction_aa", "junction"}:
        return True
    has_cdr3 = bool(names & set(AA_COLUMNS)) or bool(names & set(NT_COLUMNS))
    return has_cdr3 and bool(names & {"v_call", "sequence_id", "duplicate_count", "productive"})


def cdr3_column(header: list[str]) -> tuple[str, str]:
    """The CDR3 column read and its convention: `junction_aa`/`junction` junctions, `cdr3_aa`/`cdr3` IMGT CDR3s."""
    column = first_present(header, AA_COLUMNS) or first_present(header, NT_COLUMNS) or AA_COLUMNS[0]
    return column, JUNCTION if column.startswith("junction") else IMGT_CDR3


def _translate(nucleotides: pd.Series, path: Path, column: str) -> tuple[pd.Series, pd.Series]:
    """Translate distinct nucleotide junctions; out-of-frame ones give no CDR3 and productive False.

    A junction with letters that are not nucleotides (a gap '-', a digit) is an error naming its line.
    """
    from Bio.Data.CodonTable import TranslationError
    from Bio.Seq import Seq

    codes, uniques = pd.factorize(nucleotides)
    aa, in_frame = [], []
    for k, seq in enumerate(uniques):
        seq = str(seq).strip().upper()
        ok = len(seq) % 3 == 0
        in_frame.append(ok)
        try:
            aa.append(str(Seq(seq).translate()) if ok else None)
        except TranslationError:
            row = int(np.flatnonzero(codes == k)[0])
            message = f"'{seq}' is not a nucleotide sequence"
            raise InputFormatError(message, path, line=row + 2, column=column) from None
    aa_arr = np.array(aa + [None], dtype=object)
    frame_arr = np.array(in_frame + [True], dtype=bool)
    return (
        pd.Series(aa_arr[codes], index=nucleotides.index, dtype=object),
        pd.Series(frame_arr[codes], index=nucleotides.index),
    )


def _blank(text: pd.Series) -> np.ndarray:
    """Which entries hold no sequence (missing, empty or spaces)."""
    return (text.isna() | (text.astype(str).str.strip() == "")).to_numpy()


def _junctions_from_cdr3(junction_aa: pd.Series, cdr3_aa: pd.Series, j_call: pd.Series, locus: pd.Series,
                         path: Path) -> pd.Series:
    """`junction_aa`, its blank rows filled from `cdr3_aa` where that holds a CDR3 (anchors added)."""
    filled = _blank(junction_aa) & ~_blank(cdr3_aa)
    if not filled.any():
        return junction_aa
    rows = junction_aa.index[filled]
    junctions = add_anchors(cdr3_aa.loc[rows], j_call.loc[rows], locus.loc[rows])
    log.info("%s: %d rows with an empty junction_aa took their junction from cdr3_aa (conserved C and F/W added)",
             path, int(filled.sum()))
    return junction_aa.astype(object).where(~filled, junctions)


def read(path: Path, header: list[str], delimiter: str, species: str = DEFAULT_SPECIES) -> pd.DataFrame:
    """Read an AIRR Rearrangement file into the tidy table."""
    aa_col = first_present(header, AA_COLUMNS)
    nt_col = None if aa_col else require(header, AA_COLUMNS + NT_COLUMNS, path, "AIRR")
    wanted = [c for c in [aa_col, nt_col, *COUNT_COLUMNS, *_OTHER] if c]
    frame = read_columns(path, delimiter, wanted, text=(aa_col or nt_col,))
    productive = parse_productive(frame, "productive", path)
    j_call = normalise_genes(column_or_missing(frame, "j_call"), species=species)
    if aa_col:
        junction_aa = column_or_missing(frame, aa_col)
        if aa_col == "junction_aa" and "cdr3_aa" in header and _blank(junction_aa).any():  # read again only then
            cdr3 = read_columns(path, delimiter, ["cdr3_aa"], text=("cdr3_aa",))["cdr3_aa"]
            junction_aa = _junctions_from_cdr3(junction_aa, cdr3, j_call, column_or_missing(frame, "locus"), path)
    else:
        junction_aa, in_frame = _translate(column_or_missing(frame, nt_col), path, nt_col)
        productive = productive.mask(~in_frame.to_numpy(), False)
    return tidy(
        junction_aa,
        normalise_genes(column_or_missing(frame, "v_call"), species=species),
        j_call,
        parse_counts(frame, COUNT_COLUMNS, path),
        productive,
        column_or_missing(frame, "locus"),
    )
