"""AIRR Rearrangement TSV (the community standard): `junction_aa`, `v_call`, `j_call`, `duplicate_count`.

Each row's junction comes from the first of its :data:`SOURCES` that holds one: `junction_aa`, else
`cdr3_aa` (anchors added), else the nucleotide `junction` translated with Biopython, else the nucleotide
`cdr3` translated (anchors added). AIRR allows any of them to be blank, and exports fill different ones
(iReceptor and the AIRR Data Commons often only the nucleotide `junction`), so a column that is present
but empty throughout decides nothing. A translation whose length is not a multiple of 3 is out of frame
(no junction, non-productive); one with a stop codon keeps its '*' (quality control drops and counts both).
A file whose only CDR3s are IMGT CDR3s (`cdr3_aa`, `cdr3`) is returned as such, for
:func:`deeprc_hopfield.cdr3.recognise` to confirm from the anchors. What was read is in the table's
``attrs["cdr3_column"]``: (a phrase naming the columns, e.g. `junction_aa (+ junction translated for 12
rows)`, and its convention).
`junction_aa`/`junction` hold junctions, `cdr3_aa`/`cdr3` IMGT CDR3s (see `deeprc_hopfield.cdr3`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.cdr3 import IMGT_CDR3, JUNCTION, add_anchors
from deeprc_hopfield.genes import normalise_genes
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.readers.common import (
    column_or_missing,
    first_present,
    parse_counts,
    parse_productive,
    read_columns,
    report_bad_values,
    require,
    tidy,
)

log = logging.getLogger(__name__)

NAME = "airr"
AA_COLUMNS = ["junction_aa", "cdr3_aa"]
NT_COLUMNS = ["junction", "cdr3"]
#: Where a row's junction comes from, in order of preference.
SOURCES = ["junction_aa", "cdr3_aa", "junction", "cdr3"]
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
    """The CDR3 column that the header names first and its convention: `junction_aa`/`junction` junctions,
    `cdr3_aa`/`cdr3` IMGT CDR3s. :func:`read` says what it read instead (``attrs["cdr3_column"]``): a column that
    is empty throughout is passed over."""
    column = first_present(header, AA_COLUMNS) or first_present(header, NT_COLUMNS) or AA_COLUMNS[0]
    return column, JUNCTION if column.startswith("junction") else IMGT_CDR3


def _translate(nucleotides: pd.Series, path: Path, column: str) -> tuple[pd.Series, pd.Series]:
    """Translate distinct nucleotide junctions; out-of-frame ones give no CDR3 and productive False.

    A junction with letters that are not nucleotides (a gap '-', a digit) is a bad value naming its line (the
    series' index is the row of the file; :func:`~deeprc_hopfield.readers.common.report_bad_values`).
    """
    from Bio.Data.CodonTable import TranslationError
    from Bio.Seq import Seq

    codes, uniques = pd.factorize(nucleotides)
    aa, in_frame, bad = [], [], []
    for k, seq in enumerate(uniques):
        seq = str(seq).strip().upper()
        ok = len(seq) % 3 == 0
        in_frame.append(ok)
        try:
            aa.append(str(Seq(seq).translate()) if ok else None)
        except TranslationError:
            aa.append(None)
            bad.append(k)
    if bad:
        rows = nucleotides.index.to_numpy()[np.isin(codes, bad)]
        report_bad_values(path, rows, lambda row: f"'{str(nucleotides.loc[row]).strip().upper()}' is not a "
                                                  "nucleotide sequence", column)
    aa_arr = np.array(aa + [None], dtype=object)
    frame_arr = np.array(in_frame + [True], dtype=bool)
    return (
        pd.Series(aa_arr[codes], index=nucleotides.index, dtype=object),
        pd.Series(frame_arr[codes], index=nucleotides.index),
    )


def _blank(text: pd.Series) -> np.ndarray:
    """Which entries hold no sequence (missing, empty or spaces)."""
    return (text.isna() | (text.astype(str).str.strip() == "")).to_numpy()


def _rows(count: int) -> str:
    """`1 row`, `12 rows`."""
    return f"{count} row" if count == 1 else f"{count} rows"


def _junctions(cdr3: dict[str, pd.Series], j_call: pd.Series, locus: pd.Series, path: Path
               ) -> tuple[pd.Series, np.ndarray, str, str]:
    """Each row's CDR3 from the first of `cdr3` (the file's :data:`SOURCES` columns, in that order) that holds
    one, translating nucleotides for those rows only.

    Returns the CDR3s, which rows are in frame, a phrase naming what was read and its convention: junctions
    (IMGT CDR3s given their anchors) where a junction column holds any value, else the IMGT CDR3s as they are.
    """
    columns = list(cdr3)
    if len(columns) == 1 and columns[0] in AA_COLUMNS:  # the fast path: one column, nothing to fill or translate
        return cdr3[columns[0]], np.ones(len(cdr3[columns[0]]), dtype=bool), columns[0], (
            JUNCTION if columns[0] == "junction_aa" else IMGT_CDR3)
    filled = {column: ~_blank(values) for column, values in cdr3.items()}
    first = next((column for column in columns if filled[column].any()), columns[0])
    in_frame = np.ones(len(filled[first]), dtype=bool)
    as_junctions = first.startswith("junction") or any(filled[column].any() for column in ("junction_aa", "junction")
                                                        if column in filled)
    out = np.full(len(in_frame), None, dtype=object)
    todo = np.ones(len(in_frame), dtype=bool)
    read: list[tuple[str, int]] = []
    for column in columns:
        take = todo & filled[column]
        if not take.any():
            continue
        values = cdr3[column][take]
        if column in NT_COLUMNS:
            values, frame = _translate(values, path, column)
            in_frame[take] = frame.to_numpy()
        if as_junctions and column.startswith("cdr3"):
            values = add_anchors(values, j_call[take], locus[take])
        out[take], todo = values.to_numpy(dtype=object), todo & ~take
        read.append((column, int(take.sum())))
    phrase = _source(read[0][0]) if read else first
    if len(read) > 1:
        phrase += " (+ " + ", ".join(f"{_source(column)} for {_rows(n)}" for column, n in read[1:]) + ")"
        log.info("%s: CDR3s read from %s", path, phrase)
    return pd.Series(out, index=cdr3[first].index, dtype=object), in_frame, phrase, (
        JUNCTION if as_junctions else IMGT_CDR3)


def _source(column: str) -> str:
    """How one column gave its rows' CDR3s, for the phrase of what was read."""
    return f"{column} translated" if column in NT_COLUMNS else column


def read(path: Path, header: list[str], delimiter: str, species: str = DEFAULT_SPECIES) -> pd.DataFrame:
    """Read an AIRR Rearrangement file into the tidy table (``attrs["cdr3_column"]``: what was read, and its
    convention)."""
    present = [column for column in SOURCES if column in header] or [require(header, SOURCES, path, "AIRR")]
    first = present[0]
    frame = read_columns(path, delimiter, [first, *COUNT_COLUMNS, *_OTHER], text=(first,))
    cdr3 = {first: column_or_missing(frame, first)}
    if len(present) > 1 and _blank(cdr3[first]).any():  # the other CDR3 columns are read only then
        others = read_columns(path, delimiter, present[1:], text=tuple(present[1:]))
        cdr3.update({column: column_or_missing(others, column) for column in present[1:]})
    j_call = normalise_genes(column_or_missing(frame, "j_call"), species=species)
    locus = column_or_missing(frame, "locus")
    junction_aa, in_frame, column, convention = _junctions(cdr3, j_call, locus, path)
    table = tidy(
        junction_aa,
        normalise_genes(column_or_missing(frame, "v_call"), species=species),
        j_call,
        parse_counts(frame, COUNT_COLUMNS, path),
        parse_productive(frame, "productive", path).mask(~in_frame, False),
        locus,
    )
    table.attrs["cdr3_column"] = (column, convention)
    return table
