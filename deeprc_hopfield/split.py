"""Stratified, seeded k-fold assignment of a store's repertoires (`deeprc-hopfield split`).

The split table (`subject_id,fold`, folds 0..k-1) is what `train --split/--fold`, `baselines` and
`evaluate` share, so every method is trained and tested on exactly the same repertoires. A split
table is read once into a :class:`Split`, which answers "which fold is this subject in" for every
command; :func:`choose_label` picks the label of a store that the cross-validation commands use.

With a group column (e.g. the donor of several samples: time points, tissues), every group's
repertoires go to one fold, so clones private to a donor cannot be seen in training and again in
the held-out fold; the folds stay stratified by the label as far as the groups allow.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.errors import DeepRCError, MetadataError, SplitError, did_you_mean, named_list
from deeprc_hopfield.io import first_line
from deeprc_hopfield.metadata import DEFAULT_LABEL_COLUMN, MISSING_VALUES, Label
from deeprc_hopfield.store import RepertoireStore

log = logging.getLogger(__name__)

#: Most quantile bins a numeric label is stratified by (fewer when the cohort is small).
MAX_NUMERIC_BINS = 5
#: Repertoires of each class a fold's training part must hold for the baselines, whose inner cross-validation splits
#: it by class (training copes with fewer: its clone memory is then left empty).
TRAINING_PART_MINIMUM = 2


def thin_training_part(n: int, folds: int) -> str | None:
    """Why `n` members of a class (repertoires, or groups) dealt into `folds` stratified folds leave a fold's
    training part with fewer than :data:`TRAINING_PART_MINIMUM` of them, and what would do; None when they do not
    (nor when `n` is below `folds`, refused on its own)."""
    kept = n - math.ceil(n / folds)
    if n < folds or kept >= TRAINING_PART_MINIMUM:
        return None
    fix = (f"{n} folds would keep {n - 1}" if n > TRAINING_PART_MINIMUM
           else f"a class needs at least {TRAINING_PART_MINIMUM + 1}")
    return (f"with {folds} folds a fold's training part would hold {kept} of them, fewer than the "
            f"{TRAINING_PART_MINIMUM} that the baselines' inner cross-validation needs ({fix})")


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
    from sklearn.model_selection import StratifiedKFold  # imported here: the workflow's plan reads this module

    fold = np.full(len(groups), -1, dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(groups)), groups)):
        fold[test] = k
    return fold


def assign_group_folds(stratum: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold (0..folds-1) of each item, each group whole in one fold, stratified by `stratum` as far as
    the groups allow, and seeded.

    Parameters
    ----------
    stratum
        Stratum of each item (see :func:`strata`), shape (n,).
    groups
        Group of each item (e.g. its donor), shape (n,); the items of one group share a fold.
    folds
        Number of folds, >= 2 and at most the number of groups.
    seed
        Seed of the shuffle of the groups (scikit-learn's `StratifiedGroupKFold`).

    Returns
    -------
    int64 array of shape (n,).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.full(len(stratum), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(stratum)), stratum, groups)):
        fold[test] = k
    return fold


def read_groups(store: RepertoireStore, column: str) -> np.ndarray:
    """The group of each repertoire (store order): column `column` of the metadata table kept by `ingest`.

    A column the table lacks, or a repertoire without a value in it, is a :class:`MetadataError`
    naming the column (and the subjects).
    """
    table = store.metadata()
    if column not in table.columns:
        raise MetadataError(f"group column '{column}' is not in the store's metadata table "
                            f"(columns: {', '.join(table.columns)}){did_you_mean(column, table.columns)}", store.path)
    values = table[column].astype(str).str.strip()
    empty = values.str.lower().isin(MISSING_VALUES).to_numpy()
    if empty.any():
        subjects = [s for s, e in zip(store.subject_ids, empty) if e]
        raise MetadataError(f"no group for subject(s) {named_list(subjects)}", store.path, column=column)
    _warn_groups_of_one_name(values, column)
    return values.to_numpy(dtype=object)


#: Starts the donor name of a subject without a group: a donor of its own, whose name no group can take.
UNGROUPED = "\x00"


def donor_names(subjects: Sequence[str], groups: Mapping[str, str] | None) -> list[str]:
    """Each subject's donor: its group, else a donor of its own (:data:`UNGROUPED` + its id, whatever the groups)."""
    groups = groups or {}
    return [groups[s] if s in groups else UNGROUPED + s for s in subjects]


def group_key(name: object) -> str:
    """A group name as one donor's names are told alike: case and spaces aside (`D004` is `d004 `)."""
    return "".join(str(name).split()).casefold()


def _warn_groups_of_one_name(values: pd.Series, column: str) -> None:
    """Warn of group names that differ only in case or inner spaces (`D004` and `d004`): two groups to `split`, which
    may put them in two folds, though most likely one donor."""
    canonical = values.map(group_key)
    names = pd.DataFrame({"name": values, "canonical": canonical}).drop_duplicates()
    spelt = names.groupby("canonical")["name"].agg(sorted)
    twice = spelt[spelt.map(len) > 1]
    if len(twice):
        shown = "; ".join(" and ".join(f"'{name}'" for name in spellings) for spellings in twice.iloc[:5])
        log.warning("group column '%s': %d group name(s) written more than one way (%s): each spelling is a group of "
                    "its own, which the folds may part; write each donor's one way if they are one", column,
                    len(twice), shown)


def _check_groups(label: Label, stratum: np.ndarray, groups: np.ndarray, subjects: Sequence[str], folds: int,
                  column: str, path: Path) -> None:
    """Refuse groups that cannot be kept whole: a group mixing the classes of a binary label, fewer
    groups than folds, or a class held by fewer groups than folds."""
    frame = pd.DataFrame({"subject": subjects, "group": groups, "stratum": stratum})
    if label.kind == "binary":
        mixed = frame.groupby("group", sort=True)["stratum"].nunique()
        mixed = mixed.index[mixed > 1].tolist()
        if mixed:
            rows = frame[frame["group"] == mixed[0]]
            who = ", ".join(f"{s} ({label.classes[c]})" for s, c in zip(rows["subject"], rows["stratum"]))
            more = f"; {len(mixed) - 1} more group(s) mix them too" if len(mixed) > 1 else ""
            raise MetadataError(f"group '{mixed[0]}' mixes the classes of binary label '{label.name}': subjects "
                                f"{who}{more}", path, column=column)
    n_groups = frame["group"].nunique()
    if n_groups < folds:
        raise MetadataError(f"{n_groups} group(s) cannot fill {folds} folds; use fewer --folds", path, column=column)
    if label.kind == "numeric":
        return
    per_class = frame.groupby("stratum")["group"].nunique()
    for code, n in per_class.items():
        if n < folds:
            raise MetadataError(f"class '{label.classes[code]}' of label '{label.name}' is in {n} group(s), fewer "
                                f"than the {folds} folds; use fewer --folds", path, column=column)


def _check_group_folds(label: Label, stratum: np.ndarray, fold: np.ndarray, folds: int, column: str,
                       path: Path) -> None:
    """Refuse a grouped assignment that left a fold empty or without a class (large groups can force it)."""
    for k in range(folds):
        present = set(stratum[fold == k].tolist())
        if not present:
            raise MetadataError(f"the groups leave fold {k} empty; use fewer --folds", path, column=column)
        if label.kind != "numeric":
            lacking = [label.classes[c] for c in sorted(set(stratum.tolist()) - present)]
            if lacking:
                raise MetadataError(f"the groups leave fold {k} without class '{lacking[0]}' of label "
                                    f"'{label.name}'; use fewer --folds", path, column=column)


def _warn_thin_training_parts(label: Label, stratum: np.ndarray, fold: np.ndarray, folds: int,
                              groups: np.ndarray | None = None) -> None:
    """Warn of a binary label's fold whose training part (the other folds) holds fewer than
    :data:`TRAINING_PART_MINIMUM` repertoires of a class (with `groups`: groups, which the inner cross-validations
    keep whole): the baselines will refuse that fold (training copes)."""
    if label.kind != "binary":
        return
    members = np.arange(len(stratum)) if groups is None else pd.factorize(pd.Series(groups).astype(str))[0]
    what = "repertoires" if groups is None else "groups"
    for k in range(folds):
        training = fold != k
        held = (pd.Series(members[training]).groupby(stratum[training]).nunique()
                .reindex(range(len(label.classes)), fill_value=0).to_numpy())
        thin = np.flatnonzero(held < TRAINING_PART_MINIMUM)
        if len(thin):
            log.warning("class '%s' of label '%s': the training part of fold %d (the other folds) holds %d of its "
                        "%s, fewer than the %d that the baselines' inner cross-validation needs: `baselines` "
                        "will refuse that fold (change --folds or add repertoires of the class)",
                        label.classes[thin[0]], label.name, k, held[thin[0]], what, TRAINING_PART_MINIMUM)
            return


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


def make_split(store_path: str | Path, folds: int = 5, seed: int = 0, label_column: str | None = None,
               group_column: str | None = None, workers: int = 1) -> pd.DataFrame:
    """The split table of :func:`split_and_related` (its arguments), without the related pairs."""
    return split_and_related(store_path, folds, seed, label_column, group_column, workers)[0]


def split_and_related(store_path: str | Path, folds: int = 5, seed: int = 0, label_column: str | None = None,
                      group_column: str | None = None, workers: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded k-fold split of a store, optionally keeping groups of repertoires together.

    Parameters
    ----------
    store_path
        The store made by `ingest`.
    folds, seed
        Number of folds (>= 2) and seed of the assignment.
    label_column
        The label to stratify by (default: see :func:`choose_label`).
    group_column
        A column of the store's metadata table (e.g. a donor id): the repertoires of each group go
        to one fold, stratified by label as far as the groups allow. Groups must not mix the classes
        of a binary label. None: each repertoire on its own (plain stratified k-fold).
    workers
        Threads reading the repertoires' most abundant CDR3s, by which samples of one donor in different groups
        (or without groups) are warned of (the same warning whatever their number).

    Returns
    -------
    Table with columns `subject_id` and `fold` (0..folds-1), one row per repertoire in store order, and with
    `group_column` a `group` column: training's inner validation split keeps groups whole too; and the pairs of
    repertoires that look like samples of one donor but are of no one group (:func:`related_samples`), with each
    one's fold (`fold_a`, `fold_b`).
    """
    with RepertoireStore(store_path) as store:
        label = choose_label(store, label_column)
        stratum = strata(label, max(folds, 2))
        subjects = list(store.subject_ids)
        groups = None if group_column is None else read_groups(store, group_column)
        if groups is None:
            _check_folds(label, stratum, folds, store.path)
            fold = assign_folds(stratum, folds, seed)
        else:
            if folds < 2:
                raise DeepRCError(f"--folds must be at least 2, got {folds}")
            _check_groups(label, stratum, groups, subjects, folds, group_column, store.path)
            fold = assign_group_folds(stratum, groups, folds, seed)
            _check_group_folds(label, stratum, fold, folds, group_column, store.path)
        _warn_thin_training_parts(label, stratum, fold, folds, groups)
        related = related_samples(store, groups, workers)
    kept = "" if groups is None else f", {len(set(groups))} groups of '{group_column}' kept whole"
    log.info("split %d repertoires into %d folds stratified by '%s' (%s)%s, seed %d; fold sizes %s", len(subjects),
             folds, label.name, label.kind, kept, seed, np.bincount(fold).tolist())
    table = pd.DataFrame({"subject_id": subjects, "fold": fold})
    table = table if groups is None else table.assign(group=np.asarray(groups).astype(str))
    fold_of = dict(zip(subjects, fold.tolist()))
    return table, related.assign(fold_a=related["subject_a"].map(fold_of), fold_b=related["subject_b"].map(fold_of))


#: Beside a split table `split.csv`, `split` writes `split.csv.related.tsv`: the pairs of repertoires it warned of.
RELATED_SUFFIX = ".related.tsv"


def related_table(split_path: str | Path) -> Path:
    """Where `split` wrote the related pairs of the split table at `split_path` (:data:`RELATED_SUFFIX`)."""
    return Path(f"{split_path}{RELATED_SUFFIX}")


def related_pairs_apart(split_path: str | Path) -> tuple[int, int]:
    """The related pairs `split` wrote beside the split table at `split_path` (:func:`related_table`; 0 where it wrote
    none, or before such files existed), and how many of them the table, as it is now, puts in different folds."""
    table = related_table(split_path)
    if not table.is_file():
        return 0, 0
    pairs = pd.read_csv(table, sep="\t", dtype={"subject_a": str, "subject_b": str})
    if pairs.empty:
        return 0, 0
    fold = read_split(split_path).set_index("subject_id")["fold"]
    return len(pairs), int((pairs["subject_a"].map(fold) != pairs["subject_b"].map(fold)).sum())


def related_samples(store: RepertoireStore, groups: np.ndarray | None, workers: int = 1) -> pd.DataFrame:
    """Warn of repertoires that share their most abundant clones (samples of one donor) but are not of one group,
    naming a metadata column that explains them: the folds may put them on both sides (:mod:`deeprc_hopfield.donors`;
    one reading of the store, `workers` threads sketching as many repertoires at once: ~0.3 s for 300,000 sequences on
    one). Returns the pairs (:func:`~deeprc_hopfield.donors.related_pairs`)."""
    from deeprc_hopfield.donors import clone_sketch, explaining_columns, related_pairs, warn_related
    from deeprc_hopfield.progress import LoggedProgress
    from deeprc_hopfield.store import StoreRepertoires
    from deeprc_hopfield.threads import ordered_map

    repertoires = StoreRepertoires(store)
    progress = LoggedProgress(log, "split: sketching each repertoire's clones", len(repertoires), last_line=False)
    sketches = []
    for sketch in ordered_map(lambda i: clone_sketch(repertoires[i]), range(len(repertoires)), max(int(workers), 1)):
        sketches.append(sketch)
        progress.update()
    pairs = related_pairs(store.subject_ids, sketches, groups)
    warn_related(pairs, groups is not None, len(store), explaining_columns(store.metadata(), pairs))
    return pairs


def read_split(path: str | Path) -> pd.DataFrame:
    """A split table (`subject_id`, `fold` as int, and `group` where it has one), checked: readable, both columns,
    no repeated subject."""
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
    table = pd.DataFrame({"subject_id": split["subject_id"], "fold": fold.astype(np.int64)})
    if "group" in split.columns:  # `split --group-column`: each repertoire's group, kept whole inside training too
        group = split["group"].astype("string").str.strip()
        empty = np.flatnonzero((group.isna() | (group == "")).to_numpy())
        if len(empty):
            raise SplitError("no group for this subject (a split table's group column names every subject's)", path,
                             int(empty[0]) + 2, "group")
        table["group"] = group.astype(str).to_numpy()
        _refuse_groups_across_folds(table, path)
    return table


def _refuse_groups_across_folds(table: pd.DataFrame, path: Path) -> None:
    """Refuse a split table (one edited by hand) whose group has repertoires in two folds: its held-out scores would
    come from models trained on the same donor, which is what the group column is there to prevent."""
    folds = table.groupby("group", sort=False)["fold"].nunique()
    if (folds <= 1).all():
        return
    group = folds.index[folds > 1][0]
    rows = table.index[table["group"] == group]
    first, other = rows[0], next(r for r in rows if table.at[r, "fold"] != table.at[rows[0], "fold"])
    raise SplitError(f"group '{group}' is in folds {table.at[first, 'fold']} ('{table.at[first, 'subject_id']}') and "
                     f"{table.at[other, 'fold']} ('{table.at[other, 'subject_id']}'): a group's repertoires go to one "
                     "fold (`split --group-column` makes such a table)", path, int(other) + 2, "group")


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

    def groups_of(self, subject_ids: Sequence[str]) -> np.ndarray | None:
        """The group of each subject (`split --group-column`), or None for a split of single repertoires."""
        if "group" not in self.table.columns:
            return None
        group = dict(zip(self.table["subject_id"], self.table["group"]))
        self.fold_of(subject_ids)  # every subject in the split
        return np.array([group[s] for s in subject_ids], dtype=object)

    def group_of(self) -> dict[str, str] | None:
        """Each subject's group (`split --group-column`) by subject id, or None for a split of single repertoires."""
        groups = self.groups_of(self.subject_ids)
        return None if groups is None else dict(zip(self.subject_ids, map(str, groups)))

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


def is_split_table(path: Path) -> bool:
    """Whether the file `path` is a split table written by `split` (known by its header: subject_id,fold)."""
    return first_line(path).split(",")[:2] == ["subject_id", "fold"]
