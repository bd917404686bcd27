"""Quality control of one repertoire: drop unusable rows (each counted by reason), merge duplicates.

Every row is counted under the first reason that applies, in the order of :data:`DROP_REASONS`,
so the counts add up: ``input_rows = sum(drops) + merged_duplicates + kept``. A row without a clone count (`NA`
or empty in the file) is kept, its count missing, never invented; ``count_missing`` counts the kept sequences whose
count is missing, as ``v_missing`` and ``j_missing`` count those without a V or J gene. All junctions are
checked in one byte buffer, which also gives the kept junctions' residue codes, so a repertoire is
joined into bytes once between reading and the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deeprc_hopfield.encoding import AMINO_ACIDS, JoinedSequences, encode
from deeprc_hopfield.genes import gene_categorical

DROP_REASONS = (
    "other_chain",  # the file says the row is another locus than the one asked for
    "non_productive",  # out of frame or stop codon, as the file says
    "empty_junction",  # no CDR3 amino-acid sequence
    "stop_codon",  # a '*' in the CDR3
    "non_standard",  # a letter that is not one of the 20 standard amino acids
    "too_short",
    "too_long",
)
#: The QC counts of a repertoire: rows read, dropped by reason, merged and kept, then the kept sequences without a V
#: gene, a J gene or a clone count (a store written before `count_missing` lacks it).
QC_COLUMNS = ("input_rows", *DROP_REASONS, "merged_duplicates", "kept", "v_missing", "j_missing", "count_missing")

_V_LOCUS = r"(?i)^(TR[ABDG]|IG[HKL])V"  # a V call's locus: its first three letters
_J_LOCUS = r"(?i)^(TR[ABDG]|IG[HKL])J"  # a J call's, read where the row has no V call
_ALPHA_DELTA = r"^TRAV[^/]*/DV"  # a V gene used by α and δ chains alike (TRAV29/DV5)
# What each byte of a junction says, as bits: a stop codon, a letter outside the 20 amino acids,
# a character that `strip().upper()` would change (lower case, white space).
_STOP, _OTHER, _UNCLEAN = 1, 2, 4
_RESIDUE_FLAGS = np.full(256, _OTHER, dtype=np.uint8)
_RESIDUE_FLAGS[np.frombuffer(AMINO_ACIDS.encode(), dtype=np.uint8)] = 0
_RESIDUE_FLAGS[ord("*")] = _STOP
_RESIDUE_FLAGS[[*range(ord("a"), ord("z") + 1), *b" \t\r\n"]] |= _UNCLEAN
# Residue codes by byte, taken from the encoder itself so that the two can never disagree.
_RESIDUE_CODES = np.zeros(256, dtype=np.uint8)
_RESIDUE_CODES[np.frombuffer(AMINO_ACIDS.encode(), dtype=np.uint8)] = encode([AMINO_ACIDS])[0]


@dataclass(frozen=True)
class QCSettings:
    """Quality-control limits; the defaults suit TCRβ/IGH junctions with their conserved ends."""

    min_length: int = 4
    max_length: int = 40
    chain: str | None = None  # keep only this locus (TRB, TRA, IGH, ...) where the file names one

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length <= 255:
            raise ValueError(f"need 1 <= min_length <= max_length <= 255, got {self.min_length}, {self.max_length}")


def row_loci(table: pd.DataFrame) -> pd.Series:
    """Each row's locus: the file's (`locus`), else its V call's (`TRBV5-1` -> TRB; a V gene of both α and δ
    chains, `TRAV29/DV5`, -> TRA/TRD), else its J call's (`TRAJ33` -> TRA, for a row with no V call); missing where
    none says."""
    v = _call_loci(table["v_call"], _V_LOCUS, _ALPHA_DELTA)
    j = _call_loci(table["j_call"], _J_LOCUS) if "j_call" in table else None
    called = table["locus"].fillna(v)
    return called if j is None else called.fillna(j)


def _call_loci(calls: pd.Series, pattern: str, alpha_delta: str | None = None) -> pd.Series:
    """The locus each gene call names (its first three letters where it matches `pattern`; `TRA/TRD` where it
    matches `alpha_delta`), missing otherwise; one lookup per distinct call."""
    calls = pd.Series(calls, dtype="category")
    names = calls.cat.categories.astype(str)
    loci = np.where(names.str.match(pattern), names.str[:3].str.upper(), None)
    if alpha_delta is not None:
        loci = np.where(names.str.upper().str.match(alpha_delta), "TRA/TRD", loci)
    return pd.Series(np.append(loci, None)[calls.cat.codes.to_numpy()], index=calls.index)


def _other_chain(locus: pd.Series, chain: str) -> np.ndarray:
    """Rows whose locus is known and is not `chain` (`TRA/TRD` is either), as a mask."""
    values = pd.Series(locus, dtype="category")
    names = values.cat.categories.astype(str).str.upper()
    other = np.append(~names.str.split("/").map(lambda loci: chain.upper() in loci).to_numpy(dtype=bool), False)
    return other[values.cat.codes.to_numpy()]


def describe_counts(counts: dict[str, int]) -> str:
    """One repertoire's QC counts in a log line: rows read, sequences kept, every dropped row by reason, and the kept
    sequences without a clone count (all of them: the file has no counts)."""
    dropped = ", ".join(f"{reason} {counts[reason]}" for reason in DROP_REASONS if counts.get(reason))
    merged = counts.get("merged_duplicates", 0)
    return (f"{counts['input_rows']} rows, {counts['kept']} sequences kept (dropped: {dropped or 'none'}"
            + (f"; {merged} duplicate rows merged" if merged else "") + ")" + _missing_counts(counts))


def _missing_counts(counts: dict[str, int]) -> str:
    """What :func:`describe_counts` says of kept sequences without a clone count: nothing where none lacks one."""
    missing, kept = counts.get("count_missing", 0), counts["kept"]
    if not missing:
        return ""
    if missing == kept:
        return "; no clone counts in the file (recorded as missing)"
    return f"; {missing} without a clone count (NA or empty in the file: recorded as missing, count_missing)"


@dataclass
class CleanRepertoire:
    """One repertoire after quality control: what the store needs of it.

    table: the kept rows (`junction_aa`, `v_call`, `j_call`, `duplicate_count`), duplicates merged;
    codes: uint8 (n_residues,) their junctions concatenated, codes as :func:`encoding.encode` gives;
    lengths: int64 (n,) junction lengths; v_call, j_call: (n,) their genes as categoricals (sorted
    names, as `pd.Categorical(table["v_call"])` gives); counts: rows by reason (keys :data:`QC_COLUMNS`).
    """

    table: pd.DataFrame
    codes: np.ndarray
    lengths: np.ndarray
    v_call: pd.Categorical
    j_call: pd.Categorical
    counts: dict[str, int]


def _drop(keep: np.ndarray, reason_mask: np.ndarray, counts: dict[str, int], reason: str) -> None:
    """Mark rows still kept that fail `reason` as dropped, counting them."""
    hit = keep & reason_mask
    counts[reason] = int(hit.sum())
    keep &= ~hit


def _codes(column: pd.Series | np.ndarray) -> np.ndarray:
    """Non-negative integer codes of a column's values, missing included as a value of its own."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64) + 1
    return pd.factorize(np.asarray(column, dtype=object), use_na_sentinel=False)[0]


def _first_seen_groups(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by equal keys: each row's group (numbered in first-seen order) and each group's
    first row (increasing), from non-negative integer key columns of the same length."""
    key = keys[0].astype(np.int64)
    for part in keys[1:]:
        key = key * (int(part.max(initial=0)) + 1) + part
    group = pd.factorize(key)[0]  # groups numbered as they first appear
    seen = np.maximum.accumulate(group)
    new = np.ones(len(group), dtype=bool)
    new[1:] = seen[1:] > seen[:-1]
    return group, np.flatnonzero(new)


def _summed_counts(counts: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Counts summed per group; a missing count adds nothing, all missing stays missing."""
    known = ~np.isnan(counts)
    summed = np.bincount(group, weights=np.where(known, counts, 0.0), minlength=n_groups)
    any_known = np.bincount(group, weights=known, minlength=n_groups) > 0
    return np.where(any_known, summed, np.nan)


def merge_duplicates(table: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct (junction_aa, v_call, j_call), counts summed, first-seen order kept.

    The merged count is missing only when every merged row's count is missing.
    """
    group, first = _first_seen_groups([_codes(table[c]) for c in ("junction_aa", "v_call", "j_call")])
    merged = table.iloc[first].reset_index(drop=True)
    merged["duplicate_count"] = _summed_counts(table["duplicate_count"].to_numpy(dtype=np.float64), group, len(first))
    return merged


def _sequence_flags(buffer: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per junction, the OR of its residues' `_RESIDUE_FLAGS` bits (0 for an empty one)."""
    flags = np.zeros(len(lengths), dtype=np.uint8)
    nonempty = lengths > 0
    if nonempty.any():
        starts = np.cumsum(lengths)[nonempty] - lengths[nonempty]
        flags[nonempty] = np.bitwise_or.reduceat(_RESIDUE_FLAGS[buffer], starts)
    return flags


def _checked_junctions(joined: JoinedSequences) -> tuple[JoinedSequences, np.ndarray]:
    """The junctions (all cleaned by `strip().upper()` when any has lower case or white space) and
    their residue flags."""
    flags = _sequence_flags(joined.buffer, joined.lengths)
    if np.any(flags & _UNCLEAN):
        joined = joined.cleaned()
        flags = _sequence_flags(joined.buffer, joined.lengths)
    return joined, flags


def _merged(table: pd.DataFrame, junction: np.ndarray, kept: np.ndarray
            ) -> tuple[pd.DataFrame, np.ndarray, list[pd.Categorical]]:
    """The kept rows with duplicates merged (first-seen order), the rows of the table they come from
    (increasing), and their V and J genes as categoricals (see :class:`CleanRepertoire`)."""
    genes = [gene_categorical(table[c].iloc[kept]) for c in ("v_call", "j_call")]
    junction_codes, distinct = pd.factorize(junction[kept])
    if len(distinct) == len(kept):  # no junction seen twice: nothing to merge
        group = first = np.arange(len(kept))
    else:
        group, first = _first_seen_groups([junction_codes, *(g.codes + 1 for g in genes)])
    rows = kept[first]
    merged = table[["v_call", "j_call"]].iloc[rows].reset_index(drop=True)
    merged.insert(0, "junction_aa", junction[rows])
    counts = table["duplicate_count"].to_numpy(dtype=np.float64)[kept]
    merged["duplicate_count"] = _summed_counts(counts, group, len(rows))
    return merged, rows, [g[first] for g in genes]


def check_repertoire(table: pd.DataFrame, settings: QCSettings,
                     junctions: JoinedSequences | None = None) -> CleanRepertoire:
    """Apply QC to a tidy table and encode the kept junctions (see :class:`CleanRepertoire`);
    `junctions`: the table's `junction_aa` already joined, as the reader gives it."""
    n = len(table)
    if junctions is not None and len(junctions.lengths) != n:
        raise ValueError(f"junctions hold {len(junctions.lengths)} sequences for a table of {n} rows")
    counts: dict[str, int] = {"input_rows": n}
    keep = np.ones(n, dtype=bool)
    other = _other_chain(row_loci(table), settings.chain) if settings.chain is not None else np.zeros(n, dtype=bool)
    _drop(keep, other, counts, "other_chain")
    _drop(keep, (table["productive"] == False).fillna(False).to_numpy(dtype=bool), counts, "non_productive")  # noqa: E712
    joined, flags = _checked_junctions(JoinedSequences.of(table["junction_aa"]) if junctions is None else junctions)
    junction, buffer, lengths = joined.values, joined.buffer, joined.lengths
    for reason, mask in (
        ("empty_junction", lengths == 0),
        ("stop_codon", (flags & _STOP) > 0),
        ("non_standard", (flags & _OTHER) > 0),
        ("too_short", lengths < settings.min_length),
        ("too_long", lengths > settings.max_length),
    ):
        _drop(keep, mask, counts, reason)
    kept = np.flatnonzero(keep)
    merged, rows, (v_call, j_call) = _merged(table, junction, kept)
    selected = np.zeros(n, dtype=bool)
    selected[rows] = True  # rows increase, so their bytes are a masked copy of the buffer, in order
    codes = _RESIDUE_CODES[buffer[np.repeat(selected, lengths)]]
    counts.update(merged_duplicates=len(kept) - len(rows), kept=len(rows),
                  v_missing=int(v_call.isna().sum()), j_missing=int(j_call.isna().sum()),
                  count_missing=int(np.isnan(merged["duplicate_count"].to_numpy(dtype=np.float64)).sum()))
    return CleanRepertoire(merged, codes, lengths[rows], v_call, j_call, counts)


def quality_control(table: pd.DataFrame, settings: QCSettings) -> tuple[pd.DataFrame, dict[str, int]]:
    """Apply QC to a tidy table.

    Returns
    -------
    clean, counts
        The kept rows (columns `junction_aa`, `v_call`, `j_call`, `duplicate_count`) with exact
        duplicates merged, and the row counts by reason (keys: :data:`QC_COLUMNS`).
    """
    clean = check_repertoire(table, settings)
    return clean.table, clean.counts
