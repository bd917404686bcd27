"""The clones of a cohort's public-clone fits, collected in one reading of the cohort (`deeprc-hopfield clones`).

Every training fold fits its clone memory on its fitting repertoires (and may refit it on all its training
repertoires), and the baselines fit the public-clone test within each fold's training repertoires: each used to
read the cohort again to collect its clones, the largest cost of training on a large cohort. The clones file holds
each of those parts' clones under every clone rule, made from one reading (`clone_rules.each_part_clones`), and
each job reads its part: what a part holds is what collecting its repertoires alone gives, so a model or a
baseline is the same with the file or without it (a job whose part is not in the file collects its own).

Layout (HDF5): attrs ``format``, ``version``, ``identity`` (JSON: the store, label, label values and seed it was
made for); ``parts/<name>`` (``all``: every repertoire, the baselines' fits within each fold's training rows;
``fold<K>.fit`` and ``fold<K>.training``: a training fold's) with ``rows`` (int64 store indices) and, per exact
rule, ``<v level>.0/`` with ``keys`` (int64), ``indptr`` and ``indices`` (the incidence, bool CSR (rows, clones));
``every/<v level>.1/`` the one-substitution rules' clones over every repertoire, with ``held_indptr`` and
``held_indices`` too (which repertoire holds each clone itself), from which a part takes those its repertoires
hold (their carriers do not depend on the other repertoires, and the clones that none of a part's fits can use
change none of its results: `clone_rules.each_part_clones`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
from scipy import sparse

from deeprc_hopfield.clone_rules import CloneRule, CohortClones, CollectionPart, clone_rules, each_part_clones
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.io import atomic_file, hdf5_attribute
from deeprc_hopfield.public_clones import FitCandidates, groups_at, min_carriers, positive_rows, row_indices
from deeprc_hopfield.split import Split
from deeprc_hopfield.store import RepertoireStore, StoreRepertoires

log = logging.getLogger(__name__)

FORMAT = "deeprc-hopfield clones"
VERSION = 3  # 2: the split in the identity; 3: the split's groups in it (the fits' inner folds keep them whole)
READ_BLOCK = 1 << 24  # carriers a part's reading of the one-substitution clones holds at a time (64 MB)
ALL = "all"  # the baselines' part: every repertoire, fits within each fold's training rows
_IDENTITY_WORDS = {"store": "store", "label": "label", "subjects_and_labels": "subjects or label values",
                   "split": "split", "seed": "seed"}


@dataclass
class PartSpec:
    """A part of the cohort to collect clones for: its `rows` (sorted store indices) and, where its fits are on
    parts of them (the baselines: one per outer fold), the rows of each (`within`)."""

    name: str
    rows: np.ndarray
    within: list[np.ndarray] | None = None

    def part(self, labels: np.ndarray, seed: int, groups: np.ndarray | None = None) -> CollectionPart:
        """The :class:`clone_rules.CollectionPart` of these rows, for the fits of `seed` on labels `labels`
        (every repertoire's), whose inner folds keep each of `groups` (every repertoire's, where given) whole."""
        y = labels[self.rows]
        own = groups_at(groups, self.rows)
        if self.within is None:
            return CollectionPart(self.rows, min_carriers(y, seed, groups=own), positive_rows(y),
                                  FitCandidates(y, seed, groups=own))
        fewest = min((min_carriers(labels[rows], seed, groups=groups_at(groups, rows))
                      for rows in self.within), default=2)
        within = [np.searchsorted(self.rows, rows) for rows in self.within]
        return CollectionPart(self.rows, fewest, positive_rows(y), FitCandidates(y, seed, within=within, groups=own))


def cohort_identity(store: RepertoireStore, label: str, seed: int, split: Split) -> dict:
    """What a clones file must share with a job to serve it: the store (creation, size, ingest parameters, subjects),
    the label and its values, the split (its folds decide what the baselines' part keeps) and the seed of the fits'
    inner folds."""
    values = np.asarray(store.label(label).values).astype(str)
    digest = hashlib.sha256()
    for text in (*store.subject_ids, "\0", *values):
        digest.update(text.encode() + b"\n")
    split_digest = hashlib.sha256(split.fold_of(store.subject_ids).tobytes())
    groups = split.groups_of(store.subject_ids)
    if groups is not None:  # the fits' inner folds keep them whole: they decide what a part keeps
        split_digest.update("\0".join(map(str, groups)).encode())
    return {"store": {"created": store.attrs.get("created"), "n_sequences": int(store.n_sequences),
                      "parameters": store.parameters},
            "label": label, "subjects_and_labels": digest.hexdigest(), "split": split_digest.hexdigest(),
            "seed": int(seed)}


def fold_parts(split: Split, subject_ids: Sequence[str], strata: np.ndarray, validation_fraction: float,
               seed: int, training: bool = True, baselines: bool = True) -> list[PartSpec]:
    """The parts a cross-validation on `split` fits public clones on: with `baselines`, every repertoire (the
    baselines, within each fold's training rows) and, with `training`, each fold's fitting and training repertoires,
    the fitting ones chosen as training chooses them (`training.config.inner_validation_split` of `strata`)."""
    from deeprc_hopfield.training.config import inner_validation_split

    outer = [split.training(subject_ids, k) for k in split.folds]  # as `train --split --fold K` takes them
    parts = [PartSpec(ALL, np.arange(len(subject_ids)), outer)] if baselines else []
    groups = split.groups_of(subject_ids)  # a grouped split's groups stay whole in training's inner split too
    for k, rows in zip(split.folds, outer):
        if training:
            fit, _ = inner_validation_split(rows, strata[rows], validation_fraction, seed, groups_at(groups, rows))
            parts += [PartSpec(f"fold{k}.fit", np.sort(fit)), PartSpec(f"fold{k}.training", rows)]
    return parts


def write_shared_clones(store: RepertoireStore, out: str | Path, parts: list[PartSpec], rules: Sequence[CloneRule],
                        label: str, seed: int, split: Split, workers: int = 1) -> Path:
    """Collect the clones of `parts` of the store under `rules` in one reading and write them to `out` (written to
    a temporary file, then renamed). A part too small for the test's inner folds is left out (its job finds no
    clones in it, as collecting them itself)."""
    labels = np.asarray(store.label(label).values)
    started = time.perf_counter()
    parts, collected = _fittable(parts, labels, seed, split.groups_of(store.subject_ids))
    with atomic_file(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(format=FORMAT, version=VERSION,
                        identity=json.dumps(cohort_identity(store, label, seed, split)))
        groups, every, held = [], h5.create_group("every"), h5.create_group("parts")
        every.attrs["repertoires"] = len(store)
        for spec in parts:
            group = held.create_group(spec.name)
            group.create_dataset("rows", data=spec.rows.astype(np.int64))
            groups.append(group)
        collection = each_part_clones(StoreRepertoires(store), store.v_genes, rules, collected,
                                      workers=workers) if parts else ()
        for p, clones in collection:
            _write_clones(every if p is None else groups[p], clones)
            log.info("clones: %s, %s: %d clones carried %d times", "every repertoire" if p is None else parts[p].name,
                     clones.rule, len(clones.keys), clones.incidence.nnz)
            del clones  # not held while the next rule is made (at full size a rule holds ~2 GB)
    log.info("clones: %d parts x %d rules written to %s in %.1f s", len(parts), len(rules), out,
             time.perf_counter() - started)
    return Path(out)


def _fittable(parts: list[PartSpec], labels: np.ndarray, seed: int, groups: np.ndarray | None
              ) -> tuple[list[PartSpec], list[CollectionPart]]:
    """The parts whose fits the public-clone test can make (two repertoires (or groups) of each class in every
    inner fold's training rows), with their :class:`clone_rules.CollectionPart`; the others are logged and left
    out."""
    kept, collected = [], []
    for spec in parts:
        try:
            collected.append(spec.part(labels, seed, groups))
        except DeepRCError as exc:
            log.info("clones: part %s left out (%s)", spec.name, exc)
            continue
        kept.append(spec)
    return kept, collected


def _rule_name(rule: CloneRule) -> str:
    return f"{rule.v_level}.{rule.radius}"


def _write_clones(group: h5py.Group, clones: CohortClones) -> None:
    out = group.create_group(_rule_name(clones.rule))
    out.create_dataset("keys", data=clones.keys.astype(np.int64))
    for prefix, matrix in (("", clones.incidence), ("held_", None if clones.rule.radius == 0 else clones.held)):
        if matrix is not None:
            matrix = sparse.csr_matrix(matrix)
            out.create_dataset(f"{prefix}indptr", data=matrix.indptr.astype(np.int64))
            out.create_dataset(f"{prefix}indices", data=matrix.indices.astype(np.int32, copy=False),
                               compression="gzip", compression_opts=1, shuffle=True)


def is_clones_file(path: Path) -> bool:
    """Whether the file `path` is a clones file written by `clones` (any version: known by its format attribute)."""
    return hdf5_attribute(path, "format") == FORMAT


class SharedClones:
    """A clones file opened for the job it was made for (:meth:`open` refuses one of another cohort)."""

    def __init__(self, path: Path, h5: h5py.File, identity: tuple[int, int, int] | None = None) -> None:
        self.path, self.h5, self.identity = path, h5, identity  # identity: the file's as opened (_file_identity)

    @classmethod
    def open(cls, path: str | Path, store: RepertoireStore, label: str, seed: int, split: Split) -> "SharedClones":
        """The clones file at `path`, checked to be of this store, label (and its values), split and seed."""
        path = Path(path)
        try:
            identity = _file_identity(path)
            h5 = h5py.File(path, "r")
        except OSError as exc:
            raise DeepRCError(f"cannot read the clones file ({exc})", path) from None
        if _file_identity(path) != identity:  # replaced as it was opened: which one is open is not known
            h5.close()
            raise DeepRCError("the clones file was replaced while this job opened it; run the job again", path)
        if h5.attrs.get("format") != FORMAT or int(h5.attrs.get("version", 0)) != VERSION:
            h5.close()
            raise DeepRCError("not a clones file of this version (make it with `deeprc-hopfield clones`)", path)
        made_for, wanted = json.loads(h5.attrs["identity"]), cohort_identity(store, label, seed, split)
        if made_for != wanted:
            h5.close()
            differs = ", ".join(_IDENTITY_WORDS[k] for k in wanted if made_for.get(k) != wanted[k])
            raise DeepRCError(f"the clones file was made for a different {differs}; make it again with "
                              "`deeprc-hopfield clones` for this run", path)
        return cls(path, h5, identity)

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> "SharedClones":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def clones(self, rows: np.ndarray, rules: Sequence[CloneRule]) -> Iterator[CohortClones] | None:
        """The clones of the repertoires `rows` (store indices, in this order) under each of `rules`, read one at a
        time as asked for; None (logged) where the file holds no part of exactly these rows with every rule."""
        source = self.source(rows, rules)
        return None if source is None else source.held_by(rows, rows)

    def source(self, rows: np.ndarray, rules: Sequence[CloneRule]) -> "StoredClones | None":
        """The clones of the part of exactly the repertoires `rows` under `rules`, to be read as asked for; None
        (logged) where the file holds no such part with every rule."""
        rows = np.asarray(rows, dtype=np.int64)
        for name, group in self.h5["parts"].items():
            if np.array_equal(group["rows"][()], rows):
                held = {rule: f"parts/{name}" if rule.radius == 0 else "every" for rule in rules}
                missing = [str(rule) for rule in rules if _rule_name(rule) not in self.h5[held[rule]]]
                if not missing:
                    log.info("clone rules: the clones of these %d repertoires are read from %s (part %s)", len(rows),
                             self.path, name)
                    return StoredClones(self.path, rows, {rule: f"{held[rule]}/{_rule_name(rule)}" for rule in rules},
                                        self.identity)
                log.warning("clone rules: %s lacks the rules %s for these repertoires; collecting them here",
                            self.path, "; ".join(missing))
                return None
        log.warning("clone rules: %s holds no part of these %d repertoires (another split, validation fraction or "
                    "seed?); collecting them here", self.path, len(rows))
        return None


@dataclass
class StoredClones:
    """The clones of one part of a clones file under some rules (`groups`: rule -> its group), read as asked for
    (the file opened for each reading), so that a job holds one rule's clones of the repertoires it asks for at a
    time. `rows`: the part's store indices (its exact rules' incidence rows); `identity`: the file's as the part was
    found in it (each reading refuses a file replaced or rewritten since)."""

    path: Path
    rows: np.ndarray
    groups: dict[CloneRule, str]
    identity: tuple[int, int, int] | None = None

    @property
    def rules(self) -> list[CloneRule]:
        return list(self.groups)

    def held_by(self, holders: np.ndarray, rows: np.ndarray, rules: Sequence[CloneRule] | None = None
                ) -> Iterator[CohortClones]:
        """Each rule's clones (of `rules`, default all) that one of the repertoires `holders` holds itself, for the
        repertoires `rows` (store indices, in this order; each in the part): ``clones.held_by(holders).rows(rows)``
        of the part's clones, one rule at a time."""
        rows, holders = row_indices(rows), row_indices(holders)
        for rule in self.groups if rules is None else rules:
            if self.identity is not None and _file_identity(self.path) != self.identity:
                raise DeepRCError("the clones file was replaced or rewritten while this job read it; run the job again",
                                  self.path)
            with h5py.File(self.path, "r") as h5:  # the one-substitution rules' rows are every repertoire's
                yield (read_held_clones(h5[self.groups[rule]], rule, rows, holders) if rule.radius == 1 else
                       read_held_clones(h5[self.groups[rule]], rule, _positions(self.rows, rows),
                                        _positions(self.rows, holders)))


def _file_identity(path: Path) -> tuple[int, int, int]:
    """The file's inode, size and modification time: another file, or this one rewritten, differs."""
    stat = Path(path).stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _positions(part_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Where each of `rows` (store indices, or a bool mask over the store) is among `part_rows` (ascending)."""
    rows = row_indices(rows)
    at = np.searchsorted(part_rows, rows)
    if np.any(at >= len(part_rows)) or np.any(part_rows[np.minimum(at, len(part_rows) - 1)] != rows):
        raise ValueError("rows outside the clones file's part")
    return at


def read_clones(group: h5py.Group, rule: CloneRule, n_rows: int) -> CohortClones:
    """The clones stored in `group` (a rule's), for all its `n_rows` rows, read whole."""
    keys = group["keys"][()]

    def matrix(prefix: str) -> sparse.csr_matrix:
        indices = group[f"{prefix}indices"][()]
        return sparse.csr_matrix((np.ones(len(indices), dtype=bool), indices, group[f"{prefix}indptr"][()]),
                                 shape=(n_rows, len(keys)))

    incidence = matrix("")
    return CohortClones(rule, incidence, keys, incidence if rule.radius == 0 else matrix("held_"))


def read_held_clones(group: h5py.Group, rule: CloneRule, rows: np.ndarray, holders: np.ndarray | None = None,
                     block: int = READ_BLOCK, with_held: bool = False) -> CohortClones:
    """The clones in `group` (a rule's) that one of the rows `holders` (default: `rows`) holds itself, for `rows`
    (in this order): ``read_clones(group, ...).held_by(holders).rows(rows)``, read `block` carriers at a time so
    that only these rows' carriers are ever held (at 786 repertoires x 200,000 a one-substitution rule holds
    ~400 M carriers). Which row holds each clone itself is left out (None) unless `with_held`: a job's clones are
    not restricted again."""
    keys, held_prefix = group["keys"][()], "held_" if rule.radius == 1 else ""
    rows = row_indices(rows)
    own = _held_columns(group, held_prefix, rows if holders is None else row_indices(holders), block, len(keys))
    renumber = np.full(len(keys), -1, dtype=np.int32)
    renumber[own] = np.arange(int(own.sum()), dtype=np.int32)
    shape = (len(rows), int(own.sum()))
    incidence = _bool_csr(*_stored_rows(group, "", rows, block, renumber), shape)
    held = None if not with_held else (_bool_csr(*_stored_rows(group, held_prefix, rows, block, renumber), shape)
                                       if held_prefix else incidence)
    return CohortClones(rule, incidence, keys[own], held)


def _bool_csr(indptr: np.ndarray, indices: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=shape)


def _stored_rows(group: h5py.Group, prefix: str, rows: np.ndarray, block: int,
                 renumber: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of the rows `rows` (in this order) of the CSR matrix stored in `group` under `prefix`,
    its columns renumbered by `renumber` (old -> new, -1: left out)."""
    stored = group[f"{prefix}indptr"][()]
    out = np.empty(int((stored[rows + 1] - stored[rows]).sum()), dtype=np.int32)
    starts, lengths, filled = np.zeros(len(rows), dtype=np.int64), np.zeros(len(rows), dtype=np.int64), 0
    for i, piece in _row_pieces(group, prefix, rows, block):
        piece = renumber[piece]
        piece = piece[piece >= 0]
        out[filled:filled + len(piece)] = piece
        starts[i], lengths[i], filled = filled, len(piece), filled + len(piece)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    out.resize(filled, refcheck=False)  # what the renumbering left out is given back (no view of `out` exists)
    if np.all(starts[:-1] <= starts[1:]):  # read in their order
        return indptr, out
    return indptr, out[np.repeat(starts - indptr[:-1], lengths) + np.arange(filled)]


def _held_columns(group: h5py.Group, prefix: str, rows: np.ndarray, block: int, n_columns: int) -> np.ndarray:
    """bool (n_columns,): the columns that one of the rows `rows` of the matrix stored under `prefix` holds."""
    held = np.zeros(n_columns, dtype=bool)
    for _, piece in _row_pieces(group, prefix, rows, block):
        held[piece] = True
    return held


def _row_pieces(group: h5py.Group, prefix: str, rows: np.ndarray, block: int) -> Iterator[tuple[int, np.ndarray]]:
    """(position in `rows`, its column indices) of each of the rows `rows` of the CSR matrix stored in `group` under
    `prefix`, in storage order, read about `block` carriers at a time."""
    stored, dataset = group[f"{prefix}indptr"][()], group[f"{prefix}indices"]
    order = np.argsort(rows, kind="stable")
    for span in _read_spans(stored, rows[order], block):
        first, last = int(stored[rows[order[span[0]]]]), int(stored[rows[order[span[-1]]] + 1])
        values = dataset[first:last]
        for i in order[span]:
            yield int(i), values[stored[rows[i]] - first:stored[rows[i] + 1] - first]


def _read_spans(stored: np.ndarray, rows: np.ndarray, block: int) -> Iterator[np.ndarray]:
    """Runs of consecutive positions of the ascending `rows` whose carriers (`stored`: the CSR indptr) span
    about `block` or fewer (one row more if a row alone spans more), to read in one slice each."""
    start = 0
    for end in range(1, len(rows) + 1):
        if end == len(rows) or stored[rows[end] + 1] - stored[rows[start]] > block:
            yield np.arange(start, end)
            start = end


def collect_clones(store_path: str | Path, split_path: str | Path, out: str | Path, label: str | None = None,
                   config_path: str | Path | None = None, seed: int | None = None, rules: Sequence[CloneRule] | None = None,
                   training: bool | None = None, baselines: bool = True, workers: int = 1) -> Path:
    """`deeprc-hopfield clones`: the clones file of a cross-validation of a store on `split`, for the baselines (where
    `baselines`) and, where training keeps a clone memory (`training` None: as the config says), every training
    fold."""
    from deeprc_hopfield.split import choose_label
    from deeprc_hopfield.training.config import read_config

    _, config = read_config(config_path)
    seed = config.seed if seed is None else seed
    rules = clone_rules(config.clone_keys, config.clone_radius) if rules is None else rules
    split = Split.read(split_path)
    with RepertoireStore(store_path) as store:
        chosen = choose_label(store, label)
        with_training = config.clone_memory if training is None else training
        strata = np.asarray(store.label(chosen.name).values)
        binary = chosen.kind == "binary"  # the clone memory and the public-clone test are for binary labels only
        parts = fold_parts(split, store.subject_ids, strata, config.validation_fraction, seed, with_training,
                           baselines) if binary else []
        if not binary:
            log.info("clones: '%s' is %s, not binary: no public clones to collect", chosen.name, chosen.kind)
        log.info("clones: %d repertoires, %d parts (%s), rules: %s", len(store), len(parts),
                 ", ".join(spec.name for spec in parts), "; ".join(map(str, rules)))
        return write_shared_clones(store, out, parts, rules, chosen.name, seed, split, workers)
