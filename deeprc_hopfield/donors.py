"""Samples of one donor, told by the clones they share.

Two blood samples of one donor (time points, tissues, replicates) share their expanded clones: the most abundant
CDR3s of a T-cell repertoire persist for years, while two donors' most abundant CDR3s hardly meet (a public CDR3 is
rarely among a donor's most expanded). A cross-validation that puts one donor's samples on both sides of a fold, or
a new time point of a training donor scored as a new patient, measures the donor's memory, not the disease.

**The sketch** of a repertoire (:func:`clone_sketch`) is the set of its :data:`SKETCH_SIZE` most abundant distinct
CDR3s (amino-acid junctions, the V and J calls ignored so that annotations that disagree do not matter; counts of
one CDR3 summed), ties broken by a hash of the CDR3, as 64-bit keys. Without counts (all equal) it is a uniform
sample of the distinct CDR3s by hash (a bottom-k MinHash). **The share** two repertoires have in common is the
size of their sketches' intersection over the smaller sketch (:func:`sketch_overlap`): near 0 for two donors, near
the persistence of expanded clones (typically well above half) for two samples of one. :data:`RELATED_SHARE` is
the bar above which two samples are taken to be one donor's. Without counts, two samples of one donor share little
of their samples of distinct CDR3s, so they may go unnoticed: the check then errs towards saying nothing.

`split` warns of related repertoires in different groups (or with no groups at all), training records its
repertoires' sketches in the model folder (:data:`SKETCH_FILE`), and `predict` scores a new sample related to a
training repertoire by the models that held that repertoire out, saying so in its `warnings` column.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from deeprc_hopfield.store import Repertoire, comparable_keys, sequence_keys

log = logging.getLogger(__name__)

#: Most abundant distinct CDR3s kept per repertoire (2 KB each).
SKETCH_SIZE = 256
#: Share of the smaller sketch two repertoires must have in common to be taken for samples of one donor.
RELATED_SHARE = 0.2
#: Fewest distinct CDR3s a sketch needs to tell anything (a tiny repertoire's few CDR3s are too few to compare: a
#: handful of public CDR3s would make a share).
MIN_SKETCH = 100
#: The model folder's file of its training repertoires' sketches (numpy's npz: `subjects`, `sketches`, `sizes`).
SKETCH_FILE = "training_sketches.npz"
#: Related pairs named in a warning.
NAMED_PAIRS = 5

_MIX = np.uint64(0x9E3779B97F4A7C15)  # a CDR3 key scrambled by it orders ties as a uniform hash would


def clone_sketch(repertoire: Repertoire, keys: np.ndarray | None = None, size: int = SKETCH_SIZE) -> np.ndarray:
    """The sorted uint64 keys of the repertoire's `size` most abundant distinct CDR3s (see the module docstring), the
    same keys in every repertoire; `keys`: its :func:`store.sequence_keys`, where already computed."""
    keys = sequence_keys(repertoire.codes, repertoire.lengths) if keys is None else keys
    if len(keys) == 0:
        return np.zeros(0, dtype=np.uint64)
    keys = comparable_keys(keys, repertoire.lengths)
    counts = np.nan_to_num(np.asarray(repertoire.counts, dtype=np.float64), nan=1.0)
    distinct, inverse = np.unique(keys, return_inverse=True)
    abundance = np.bincount(inverse.ravel(), weights=np.maximum(counts, 0.0), minlength=len(distinct))
    with np.errstate(over="ignore"):
        tie = distinct * _MIX
    order = np.lexsort((tie, -abundance))[:size]
    return np.sort(distinct[order])


def sketch_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """The share of the smaller of two sketches that the other holds too (NaN where either is below
    :data:`MIN_SKETCH`)."""
    if min(len(a), len(b)) < MIN_SKETCH:
        return float("nan")
    return len(np.intersect1d(a, b, assume_unique=True)) / min(len(a), len(b))


def sketch_shares(sketches: Sequence[np.ndarray]) -> np.ndarray:
    """The :func:`sketch_overlap` of every pair of sketches at once (n, n), float64, NaN on the diagonal and where a
    sketch is too small: one sparse product of the repertoires' incidence of the sketches' keys."""
    n = len(sketches)
    sizes = np.array([len(s) for s in sketches], dtype=np.int64)
    if n == 0:
        return np.zeros((0, 0))
    keys, column = np.unique(np.concatenate(sketches), return_inverse=True) if sizes.sum() else (np.zeros(0), [])
    incidence = sparse.csr_matrix((np.ones(int(sizes.sum()), dtype=np.float64), np.asarray(column).ravel(),
                                   np.concatenate([[0], np.cumsum(sizes)])), shape=(n, len(keys)))
    common = (incidence @ incidence.T).toarray()
    smaller = np.minimum(sizes[:, None], sizes[None, :]).astype(np.float64)
    shares = np.where(smaller >= MIN_SKETCH, common / np.maximum(smaller, 1), np.nan)
    np.fill_diagonal(shares, np.nan)
    return shares


def related_pairs(subject_ids: Sequence[str], sketches: Sequence[np.ndarray], groups: np.ndarray | None = None,
                  threshold: float = RELATED_SHARE) -> pd.DataFrame:
    """Pairs of repertoires whose sketches share at least `threshold` (columns `subject_a`, `subject_b`, `share`,
    most shared first), left out where both are of one of `groups` (already kept together)."""
    shares = sketch_shares(sketches)
    a, b = np.nonzero(np.triu(np.nan_to_num(shares, nan=0.0) >= threshold, k=1))
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        apart = groups[a] != groups[b]
        a, b = a[apart], b[apart]
    ids = np.asarray(subject_ids, dtype=object)
    pairs = pd.DataFrame({"subject_a": ids[a], "subject_b": ids[b], "share": shares[a, b]})
    return pairs.sort_values("share", ascending=False, kind="stable").reset_index(drop=True)


def explaining_columns(metadata: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    """Columns of the metadata table (by subject_id) that hold one value for both repertoires of every related pair
    and between 3 values and one a repertoire: a donor column, likely (not a label, not an id)."""
    if pairs.empty:
        return []
    table = metadata.astype({"subject_id": str}).drop_duplicates("subject_id").set_index("subject_id")
    found = []
    for column in table.columns.drop(["filename"], errors="ignore"):
        values = table[column].astype("string").str.strip()
        a, b = values.reindex(pairs["subject_a"].astype(str)), values.reindex(pairs["subject_b"].astype(str))
        if 3 <= values.nunique() < len(values) and a.notna().all() and a.eq(b.to_numpy()).fillna(False).all():
            found.append(str(column))
    return found


def warn_related(pairs: pd.DataFrame, grouped: bool, n: int, columns: Sequence[str] = ()) -> None:
    """Warn of repertoires that look like samples of one donor but may land on both sides of a fold (`columns`: the
    metadata columns that name one value for every pair, the likely donor column)."""
    if pairs.empty:
        return
    shown = "; ".join(f"{row.subject_a} and {row.subject_b} ({row.share:.0%})"
                      for row in pairs.head(NAMED_PAIRS).itertuples())
    more = f" and {len(pairs) - NAMED_PAIRS} more" if len(pairs) > NAMED_PAIRS else ""
    where = ("in different groups: the same donor under two group names?" if grouped else
             "samples of one donor? cross-validation may put them on both sides of a fold (a donor's own clones then "
             "look like signal): name each repertoire's donor in a metadata column and give it as the workflow's "
             "group_column (split --group-column)")
    hint = (f"; metadata column '{columns[0]}' holds one value for both repertoires of every pair"
            if columns and not grouped else "")
    log.warning("%d pair(s) of the %d repertoires share %d%% or more of their %d most abundant CDR3s (%s%s), %s%s",
                len(pairs), n, round(100 * RELATED_SHARE), SKETCH_SIZE, shown, more, where, hint)


def sketches_file(subjects: Sequence[str], sketches: Sequence[np.ndarray]) -> bytes:
    """The bytes of :data:`SKETCH_FILE` for these subjects' sketches."""
    sizes = np.array([len(s) for s in sketches], dtype=np.int64)
    table = np.zeros((len(sketches), int(sizes.max()) if len(sizes) else 0), dtype=np.uint64)
    for i, sketch in enumerate(sketches):
        table[i, :len(sketch)] = sketch
    out = io.BytesIO()
    np.savez_compressed(out, subjects=np.asarray(list(subjects), dtype=str), sketches=table, sizes=sizes)
    return out.getvalue()


class TrainingSketches:
    """A model's training repertoires' sketches (its :data:`SKETCH_FILE`), held as one sorted array of keys with
    their owners, so that a new repertoire is compared with all of them at once."""

    def __init__(self, subjects: np.ndarray, sketches: np.ndarray, sizes: np.ndarray) -> None:
        owner = np.repeat(np.arange(len(subjects)), sizes)
        keys = np.concatenate([row[:size] for row, size in zip(sketches, sizes)]) if len(sizes) else np.zeros(0)
        order = np.argsort(keys, kind="stable")
        self.subjects, self.sizes = [str(s) for s in subjects], np.asarray(sizes, dtype=np.int64)
        self.keys, self.owner = keys[order].astype(np.uint64), owner[order]

    @classmethod
    def read(cls, folder: Path | None) -> "TrainingSketches | None":
        """The sketches of a model folder; None where it has none (a model of an earlier version, or a folder
        whose file was left out when it was shared: `recorded` in its config says which, and that is warned of)."""
        path = None if folder is None else Path(folder) / SKETCH_FILE
        if path is None or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            subjects, sketches, sizes = data["subjects"], data["sketches"], data["sizes"]  # each decompressed once
        return cls(subjects, sketches, sizes)

    def closest(self, sketch: np.ndarray, threshold: float = RELATED_SHARE) -> tuple[str, float] | None:
        """The training subject whose sketch shares the most with `sketch` (:func:`sketch_overlap`), and that share,
        where it reaches `threshold`; else None."""
        if len(sketch) < MIN_SKETCH or not len(self.keys):
            return None
        at = np.searchsorted(self.keys, sketch, side="left")
        stop = np.searchsorted(self.keys, sketch, side="right")
        hits = np.concatenate([self.owner[a:b] for a, b in zip(at[stop > at], stop[stop > at])]) \
            if (stop > at).any() else np.zeros(0, dtype=np.int64)
        common = np.bincount(hits, minlength=len(self.subjects))
        smaller = np.minimum(self.sizes, len(sketch))
        shares = np.where(smaller >= MIN_SKETCH, common / np.maximum(smaller, 1), 0.0)
        best = int(np.argmax(shares)) if len(shares) else 0
        return (self.subjects[best], float(shares[best])) if len(shares) and shares[best] >= threshold else None
