"""Quality control of one repertoire: drop unusable rows (each counted by reason), merge duplicates.

Every row is counted under the first reason that applies, in the order of :data:`DROP_REASONS`,
so the counts add up: ``input_rows = sum(drops) + merged_duplicates + kept``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deeprc_hopfield.encoding import residue_flags

DROP_REASONS = (
    "other_chain",  # the file says the row is another locus than the one asked for
    "non_productive",  # out of frame or stop codon, as the file says
    "empty_junction",  # no CDR3 amino-acid sequence
    "stop_codon",  # a '*' in the CDR3
    "non_standard",  # a letter that is not one of the 20 standard amino acids
    "too_short",
    "too_long",
)
QC_COLUMNS = ("input_rows", *DROP_REASONS, "merged_duplicates", "kept", "v_missing", "j_missing")


@dataclass(frozen=True)
class QCSettings:
    """Quality-control limits; the defaults suit TCRβ/IGH junctions with their conserved ends."""

    min_length: int = 4
    max_length: int = 40
    chain: str | None = None  # keep only this locus (TRB, TRA, IGH, ...) where the file names one

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length <= 255:
            raise ValueError(f"need 1 <= min_length <= max_length <= 255, got {self.min_length}, {self.max_length}")


def _drop(keep: np.ndarray, reason_mask: np.ndarray, counts: dict[str, int], reason: str) -> None:
    """Mark rows still kept that fail `reason` as dropped, counting them."""
    hit = keep & reason_mask
    counts[reason] = int(hit.sum())
    keep &= ~hit


def _codes(column: pd.Series) -> np.ndarray:
    """Non-negative integer codes of a column's values, missing included as a value of its own."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64) + 1
    return pd.factorize(column.to_numpy(dtype=object), use_na_sentinel=False)[0]


def merge_duplicates(table: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct (junction_aa, v_call, j_call), counts summed, first-seen order kept.

    The merged count is missing only when every merged row's count is missing.
    """
    keys = [_codes(table[c]) for c in ("junction_aa", "v_call", "j_call")]
    key = keys[0].astype(np.int64)
    for part in keys[1:]:
        key = key * (int(part.max(initial=0)) + 1) + part
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # groups in first-seen order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse.ravel()]
    counts = table["duplicate_count"].to_numpy(dtype=np.float64)
    known = ~np.isnan(counts)
    summed = np.bincount(group, weights=np.where(known, counts, 0.0), minlength=len(order))
    any_known = np.bincount(group, weights=known, minlength=len(order)) > 0
    merged = table.iloc[first[order]].reset_index(drop=True)
    merged["duplicate_count"] = np.where(any_known, summed, np.nan)
    return merged


def quality_control(table: pd.DataFrame, settings: QCSettings) -> tuple[pd.DataFrame, dict[str, int]]:
    """Apply QC to a tidy table.

    Returns
    -------
    clean, counts
        The kept rows (columns `junction_aa`, `v_call`, `j_call`, `duplicate_count`) with exact
        duplicates merged, and the row counts by reason (keys: :data:`QC_COLUMNS`).
    """
    n = len(table)
    counts: dict[str, int] = {"input_rows": n}
    keep = np.ones(n, dtype=bool)

    locus = table["locus"]
    if settings.chain is not None:
        other = locus.notna().to_numpy() & (locus.astype(str).str.upper() != settings.chain.upper()).to_numpy()
    else:
        other = np.zeros(n, dtype=bool)
    _drop(keep, other, counts, "other_chain")
    _drop(keep, (table["productive"] == False).fillna(False).to_numpy(dtype=bool), counts, "non_productive")  # noqa: E712

    junction = table["junction_aa"].to_numpy(dtype=object)
    junction = np.where(pd.isna(junction), "", junction).astype(object)
    nonempty = np.fromiter(map(len, junction), dtype=np.int64, count=n) > 0
    has_stop, has_other, lengths, needs_cleaning = residue_flags(junction[nonempty])
    if needs_cleaning:  # lower case or white space somewhere: clean every junction, then look again
        junction = np.array([j.strip().upper() for j in junction], dtype=object)
        nonempty = np.fromiter(map(len, junction), dtype=np.int64, count=n) > 0
        has_stop, has_other, lengths, _ = residue_flags(junction[nonempty])
    _drop(keep, ~nonempty, counts, "empty_junction")

    candidates = np.flatnonzero(keep)
    subset = keep[nonempty]  # rows among the non-empty ones still kept
    has_stop, has_other, lengths = has_stop[subset], has_other[subset], lengths[subset]
    for reason, flags in (
        ("stop_codon", has_stop),
        ("non_standard", has_other),
        ("too_short", lengths < settings.min_length),
        ("too_long", lengths > settings.max_length),
    ):
        mask = np.zeros(n, dtype=bool)
        mask[candidates] = flags
        _drop(keep, mask, counts, reason)

    clean = table.loc[keep, ["junction_aa", "v_call", "j_call", "duplicate_count"]].copy()
    clean["junction_aa"] = junction[keep]
    merged = merge_duplicates(clean)
    counts["merged_duplicates"] = len(clean) - len(merged)
    counts["kept"] = len(merged)
    counts["v_missing"] = int(merged["v_call"].isna().sum())
    counts["j_missing"] = int(merged["j_call"].isna().sum())
    return merged, counts
