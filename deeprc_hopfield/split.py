"""Stratified, seeded k-fold assignment of a store's repertoires (`deeprc-hopfield split`).

The split table (`subject_id,fold`, folds 0..k-1) is what `train --split/--fold`, `baselines` and
`evaluate` share, so every method is trained and tested on exactly the same repertoires. A split
table is read once into a :class:`Split`, which answers "which fold is this subject in" for every
command; :func:`choose_label` picks the label of a store that the cross-validation commands use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from deeprc_hopfield.errors import DeepRCError, SplitError
from deeprc_hopfield.metadata import DEFAULT_LABEL_COLUMN, Label
from deeprc_hopfield.store import RepertoireStore

log = logging.getLogger(__name__)

#: Most quantile bins a numeric label is stratified by (fewer when the cohort is small).
MAX_NUMERIC_BINS = 5


def choose_label(store: RepertoireStore, name: str | None) -> Label:
    """The label to stratify or learn: `name`, else the store's only label, else its `label` column."""
    if name is not None:
        return store.label(name)
    names = store.label_names
    if len(names) == 1:
        return store.label(names[0])
    if DEFAULT_LABEL_COLUMN in names:
        return store.label(DEFAULT_LABEL_COLUMN)
    if not names:
        raise DeepRCError("store has no labels (it was ingested without a label column)", store.path)
    raise DeepRCError(f"store has several labels ({', '.join(names)}); choose one with --label-column", store.path)


def strata(label: Label, folds: int) -> np.ndarray:
    """Stratum of each repertoire: its class code, or for a numeric label its quantile bin.

    Numeric labels get up to :data:`MAX_NUMERIC_BINS` equal-count bins, each large enough to hold at
    least `folds` repertoires (ties can merge bins).
    """
    if label.kind != "numeric":
        return np.asarray(label.values, dtype=np.int64)
    n_bins = max(1, min(MAX_NUMERIC_BINS, len(label.values) // (2 * folds)))
    return pd.qcut(label.values, q=n_bins, labels=False, duplicates="drop").astype(np.int64)


def assign_folds(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold (0..folds-1) of each item, stratified by `groups` and seeded.

    Parameters
    ----------
    groups
        Stratum of each item, shape (n,); every stratum needs at least `folds` members.
    folds
        Number of folds, >= 2.
    seed
        Seed of the shuffle: the same groups and seed always give the same folds.

    Returns
    -------
    int64 array of shape (n,).
    """
    fold = np.full(len(groups), -1, dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(groups)), groups)):
        fold[test] = k
    return fold


def _check_folds(label: Label, groups: np.ndarray, folds: int, path: Path) -> None:
    if folds < 2:
        raise DeepRCError(f"--folds must be at least 2, got {folds}")
    if len(groups) < folds:
        raise DeepRCError(f"{len(groups)} repertoires cannot fill {folds} folds", path)
    if label.kind == "numeric":
        return
    counts = np.bincount(groups, minlength=len(label.classes))
    small = [(label.classes[c], int(counts[c])) for c in range(len(counts)) if counts[c] < folds]
    if small:
        cls, n = small[0]
        raise DeepRCError(f"class '{cls}' of label '{label.name}' has {n} repertoire(s), fewer than the "
                          f"{folds} folds; use fewer --folds", path)


def make_split(store_path: str | Path, folds: int = 5, seed: int = 0, label_column: str | None = None) -> pd.DataFrame:
    """Stratified, seeded k-fold split of a store.

    Returns
    -------
    Table with columns `subject_id` and `fold` (0..folds-1), one row per repertoire in store order.
    """
    with RepertoireStore(store_path) as store:
        label = choose_label(store, label_column)
        groups = strata(label, max(folds, 2))
        _check_folds(label, groups, folds, store.path)
        fold = assign_folds(groups, folds, seed)
        subjects = list(store.subject_ids)
    log.info("split %d repertoires into %d folds stratified by '%s' (%s), seed %d; fold sizes %s", len(subjects),
             folds, label.name, label.kind, seed, np.bincount(fold).tolist())
    return pd.DataFrame({"subject_id": subjects, "fold": fold})


def read_split(path: str | Path) -> pd.DataFrame:
    """A split table (`subject_id`, `fold` as int), checked: readable, both columns, no repeated subject."""
    path = Path(path)
    try:
        split = pd.read_csv(path, sep=None, engine="python", dtype={"subject_id": str})
    except FileNotFoundError:
        raise SplitError("split table not found", path) from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SplitError(f"cannot read split table: {exc}", path) from None
    missing = {"subject_id", "fold"} - set(split.columns)
    if missing:
        raise SplitError("split table needs columns subject_id and fold", path, column=sorted(missing)[0])
    fold = pd.to_numeric(split["fold"], errors="coerce")
    bad = np.flatnonzero(fold.isna().to_numpy() | (fold.to_numpy() % 1 != 0))
    if len(bad):
        raise SplitError(f"fold '{split['fold'].iloc[bad[0]]}' is not a whole number", path, int(bad[0]) + 2, "fold")
    repeated = split["subject_id"].duplicated()
    if repeated.any():
        row = int(np.flatnonzero(repeated.to_numpy())[0])
        raise SplitError(f"subject '{split['subject_id'].iloc[row]}' appears twice", path, row + 2, "subject_id")
    return pd.DataFrame({"subject_id": split["subject_id"], "fold": fold.astype(np.int64)})


class Split:
    """A split table read once: the fold of every subject, and the file it came from (named in errors).

    Parameters
    ----------
    table
        Columns `subject_id` (str) and `fold` (int), one row per subject (see :func:`read_split`).
    path
        The file the table was read from.
    """

    def __init__(self, table: pd.DataFrame, path: str | Path) -> None:
        self.table = table
        self.path = Path(path)
        self._fold = dict(zip(table["subject_id"], table["fold"].tolist()))

    @classmethod
    def read(cls, path: str | Path) -> Split:
        """Read and check a split table (see :func:`read_split`)."""
        return cls(read_split(path), path)

    @classmethod
    def from_options(cls, split_path: str | Path | None, fold: int | None) -> Split | None:
        """The split of `--split PATH --fold K` (None when neither is given), with fold K checked to exist."""
        if (split_path is None) != (fold is None):
            raise SplitError("--split and --fold go together")
        if split_path is None:
            return None
        split = cls.read(split_path)
        split._check_fold(fold)
        return split

    def __len__(self) -> int:
        return len(self._fold)

    def __contains__(self, subject_id: object) -> bool:
        return subject_id in self._fold

    @property
    def subject_ids(self) -> list[str]:
        """Subject ids in the table's order."""
        return list(self._fold)

    @property
    def folds(self) -> list[int]:
        """The folds of the split, ascending."""
        return sorted(set(self._fold.values()))

    def _check_fold(self, fold: int) -> None:
        if fold not in self.folds:
            raise SplitError(f"fold {fold} is not in the split (folds: {self.folds})", self.path)

    def fold_of(self, subject_ids: Sequence[str]) -> np.ndarray:
        """Fold of each subject, int64 of shape (len(subject_ids),); a subject not in the split is an error."""
        missing = [s for s in subject_ids if s not in self._fold]
        if missing:
            raise SplitError(f"subject '{missing[0]}' is not in the split", self.path)
        return np.array([self._fold[s] for s in subject_ids], dtype=np.int64)

    def training(self, subject_ids: Sequence[str], fold: int) -> np.ndarray:
        """Indices into `subject_ids` of the training subjects of `fold` (those in any other fold), int64."""
        folds = self.fold_of(subject_ids)
        self._check_fold(fold)
        return np.flatnonzero(folds != fold).astype(np.int64)

    def held_out(self, fold: int) -> set[str]:
        """Subject ids of fold `fold` (the repertoires it holds out)."""
        self._check_fold(fold)
        return {s for s, k in self._fold.items() if k == fold}
