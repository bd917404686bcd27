"""`RepertoireStore`: one HDF5 file for a whole cohort, read one repertoire at a time.

Layout (schema version 1)::

    /                          attrs: kind, schema_version, package_version, created, parameters (JSON),
                               species (human, mouse: whose genes the names are; a store without it is human)
    /sequences/codes           uint8   (n_residues,)  all junctions concatenated, codes 1..20 (see encoding)
    /sequences/lengths         uint8   (n_sequences,) CDR3 lengths; offsets are their cumulative sum
    /sequences/counts          float64 (n_sequences,) clone counts, NaN where the input had none
    /sequences/v_index         int16   (n_sequences,) row of /genes/v, -1 when unknown
    /sequences/j_index         int16   (n_sequences,) row of /genes/j, -1 when unknown
    /repertoires/sequence_offsets, residue_offsets   int64 (n_repertoires + 1,)
    /repertoires/subject_id, filename                str   (n_repertoires,)
    /genes/v, /genes/j         str     IMGT gene names
    /metadata/<column>         str     the metadata table as given
    /labels/<name>             int64 class codes or float64 values; attrs kind, classes (JSON)
    /qc/<column>               int64   (n_repertoires,) rows dropped by reason, merged and kept
    /provenance/source, sha256, format   str (n_repertoires,)
    /provenance/cdr3_column, cdr3, cdr3_anchored   str: the CDR3 column read, the convention it held
                               (junction, or imgt_cdr3: anchors added, see `cdr3`), the share anchored

Nothing is padded, and repertoire i is the slice ``sequence_offsets[i]:sequence_offsets[i+1]``
(``residue_offsets`` for the codes), so reading it costs time in proportion to its own size.
Datasets are chunked and compressed, and the writer appends repertoire by repertoire.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Sequence

import h5py
import numpy as np
import pandas as pd

from deeprc_hopfield import __version__
from deeprc_hopfield.encoding import decode
from deeprc_hopfield.errors import StoreError
from deeprc_hopfield.interrupts import raise_if_interrupted
from deeprc_hopfield.io import hdf5_attribute, publish_file
from deeprc_hopfield.metadata import Label
from deeprc_hopfield.qc import QC_COLUMNS
from deeprc_hopfield.species import DEFAULT_SPECIES, SPECIES, check_species

STORE_KIND = "deeprc-hopfield repertoire store"
SCHEMA_VERSION = 1
#: The version of a store of another species' genes than human: the versions before species were recorded read
#: every store's names as human genes, and refuse a version they do not know.
SPECIES_SCHEMA_VERSION = 2
_STR = h5py.string_dtype("utf-8")
_SEQUENCE_FIELDS = {"lengths": np.uint8, "counts": np.float64, "v_index": np.int16, "j_index": np.int16}
MAX_LENGTH = np.iinfo(np.uint8).max  # longest CDR3 a store holds
_CHUNK = 1 << 16  # sequences per chunk; residue codes use 4x that
_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


@dataclass
class Repertoire:
    """The sequences of one repertoire as arrays.

    codes: uint8 (n_residues,); lengths: (n,); counts: float64 (n,) NaN = unknown;
    v_index, j_index: int16 (n,) rows of the store's gene tables, -1 = unknown.
    """

    subject_id: str
    codes: np.ndarray
    lengths: np.ndarray
    counts: np.ndarray
    v_index: np.ndarray
    j_index: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, indices: np.ndarray) -> "Repertoire":
        """The sequences at `indices` (in that order), codes gathered without a Python loop."""
        indices = np.asarray(indices, dtype=np.int64)
        starts = np.cumsum(self.lengths, dtype=np.int64) - self.lengths
        lengths = self.lengths[indices]
        out_starts = np.cumsum(lengths, dtype=np.int64) - lengths
        gather = np.repeat(starts[indices] - out_starts, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
        return Repertoire(self.subject_id, self.codes[gather], lengths, self.counts[indices],
                          self.v_index[indices], self.j_index[indices])


def sequence_digest(repertoire: Repertoire, keys: np.ndarray | None = None) -> str:
    """A digest of a repertoire's set of (sequence, count) pairs (32 hex digits), whatever file, format,
    compression or row order they came from: `predict` knows a training repertoire re-exported or re-compressed
    under a new name by it (the model records its fitting and validation repertoires'), where a file's sha256
    would differ. Counts written otherwise (frequencies for templates) make another digest. `keys`: its
    :func:`sequence_keys`, where already computed."""
    import hashlib

    keys = sequence_keys(repertoire.codes, repertoire.lengths) if keys is None else keys
    counts = np.nan_to_num(np.asarray(repertoire.counts, dtype=np.float64), nan=-1.0)
    order = np.lexsort((counts, keys))
    digest = hashlib.blake2b(digest_size=16)
    digest.update(keys[order].tobytes())
    digest.update(counts[order].tobytes())
    return digest.hexdigest()


#: Multiplier of the polynomial hash of a sequence's residues (FNV's 64-bit prime).
_KEY_PRIME = np.uint64(1099511628211)


def sequence_keys(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A 64-bit polynomial hash of each sequence (its length and residues), vectorised over a padded matrix. The
    padding enters it: keys of one repertoire compare, keys of two only through :func:`comparable_keys`."""
    lengths = np.asarray(lengths, dtype=np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    padded = np.zeros((len(lengths), width), dtype=np.uint64)
    padded[np.arange(width) < lengths[:, None]] = np.asarray(codes, dtype=np.uint64) + np.uint64(1)
    keys = lengths.astype(np.uint64)
    with np.errstate(over="ignore"):
        for column in padded.T:
            keys = keys * _KEY_PRIME + column
    return keys


def comparable_keys(keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`sequence_keys` of one repertoire made the same for a sequence whatever repertoire it is in: a key of
    a sequence of length L padded to width W is its unpadded key times the prime to the power W - L, undone by the
    prime's inverse modulo 2**64 (the prime is odd)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    powers = np.ones(width + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(1, width + 1):
            powers[k] = powers[k - 1] * _KEY_INVERSE
        return keys * powers[width - lengths]


#: The inverse of :data:`_KEY_PRIME` modulo 2**64.
_KEY_INVERSE = np.uint64(pow(int(_KEY_PRIME), -1, 2**64))


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object)


def is_store_file(path: Path) -> bool:
    """Whether `path` is a repertoire store by its own attributes (what `ingest --force` may replace)."""
    return hdf5_attribute(path, "kind") == STORE_KIND


class StoreWriter:
    """Writes a store to a temporary file beside `path` and renames it into place on :meth:`commit`.

    Used as a context manager: leaving the block without `commit()` (an error, an interrupt) removes
    the temporary file, so no half-written store is ever left behind.
    """

    def __init__(self, path: str | Path, parameters: dict | None = None, species: str = DEFAULT_SPECIES) -> None:
        self.path = Path(path)
        species = check_species(species)
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=folder)
            os.close(handle)
        except OSError as exc:
            raise StoreError(f"cannot write in '{folder}': {exc.strerror}", self.path) from None
        self.tmp_path = Path(tmp)
        self._file = h5py.File(self.tmp_path, "w")
        self._file.attrs.update(
            kind=STORE_KIND,
            schema_version=SCHEMA_VERSION if species == DEFAULT_SPECIES else SPECIES_SCHEMA_VERSION,
            package_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            parameters=json.dumps(parameters or {}, sort_keys=True),
            species=species,
        )
        seq = self._file.create_group("sequences")
        seq.create_dataset("codes", shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(4 * _CHUNK,), **_COMPRESSION)
        for name, dtype in _SEQUENCE_FIELDS.items():
            seq.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_CHUNK,), **_COMPRESSION)
        self._sequence_offsets = [0]
        self._residue_offsets = [0]
        self._v_genes: dict[str, int] = {}
        self._j_genes: dict[str, int] = {}
        self._committed = False

    def _gene_indices(self, names: pd.Categorical | np.ndarray, table: dict[str, int]) -> np.ndarray:
        """Indices into the growing gene table; -1 for unknown genes."""
        names = pd.Categorical(names)
        codes, uniques = names.codes, names.categories
        lookup = np.array([table.setdefault(str(u), len(table)) for u in uniques] + [-1], dtype=np.int16)
        return lookup[codes]

    def append(self, codes: np.ndarray, lengths: np.ndarray, counts: np.ndarray,
               v_call: pd.Categorical | np.ndarray, j_call: pd.Categorical | np.ndarray) -> None:
        """Append one repertoire (already QC'd and encoded); gene names as strings (None when unknown)."""
        columns = {
            "codes": codes,
            "lengths": lengths,
            "counts": counts,
            "v_index": self._gene_indices(v_call, self._v_genes),
            "j_index": self._gene_indices(j_call, self._j_genes),
        }
        group = self._file["sequences"]
        for name, values in columns.items():
            dataset = group[name]
            start = dataset.shape[0]
            dataset.resize((start + len(values),))
            dataset[start:] = values
        self._sequence_offsets.append(self._sequence_offsets[-1] + len(lengths))
        self._residue_offsets.append(self._residue_offsets[-1] + len(codes))

    def commit(self, subject_ids: list[str], filenames: list[str], metadata: pd.DataFrame,
               labels: dict[str, Label], qc: pd.DataFrame, provenance: pd.DataFrame,
               warnings: list[str] = ()) -> Path:
        """Write the per-repertoire tables (and `warnings`: what ingest warned of the cohort), close, and move the
        file into place."""
        if len(subject_ids) != len(self._sequence_offsets) - 1:
            raise ValueError("commit() needs one subject id per appended repertoire")
        f = self._file
        rep = f.create_group("repertoires")
        rep["sequence_offsets"] = np.asarray(self._sequence_offsets, dtype=np.int64)
        rep["residue_offsets"] = np.asarray(self._residue_offsets, dtype=np.int64)
        rep.create_dataset("subject_id", data=_strings(subject_ids), dtype=_STR)
        rep.create_dataset("filename", data=_strings(filenames), dtype=_STR)
        genes = f.create_group("genes")
        genes.create_dataset("v", data=_strings(list(self._v_genes)), dtype=_STR)
        genes.create_dataset("j", data=_strings(list(self._j_genes)), dtype=_STR)
        _write_frame(f.create_group("metadata"), metadata.astype(str))
        lab = f.create_group("labels")
        for name, label in labels.items():
            dataset = lab.create_dataset(name, data=label.values)
            dataset.attrs.update(kind=label.kind, classes=json.dumps(label.classes))
        _write_frame(f.create_group("qc"), qc[list(QC_COLUMNS)].astype(np.int64))
        _write_frame(f.create_group("provenance"), provenance.astype(str))
        if warnings:  # a store without them reads as none
            f.attrs["warnings"] = json.dumps(list(warnings))
        f.close()
        publish_file(self.tmp_path, self.path)
        self._committed = True
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (safe to call twice)."""
        if self._file.id.valid:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._committed:
            self.abort()


def _write_frame(group: h5py.Group, frame: pd.DataFrame) -> None:
    """A table as one dataset per column, the column order kept in an attribute."""
    group.attrs["columns"] = json.dumps(list(frame.columns))
    for column in frame.columns:
        values = frame[column].to_numpy()
        if values.dtype == object or pd.api.types.is_string_dtype(frame[column]):
            group.create_dataset(column, data=values.astype(object), dtype=_STR)
        else:
            group.create_dataset(column, data=values)


def _read_frame(group: h5py.Group) -> pd.DataFrame:
    columns = json.loads(group.attrs["columns"])
    data = {}
    for column in columns:
        dataset = group[column]
        data[column] = dataset.asstr()[()] if dataset.dtype.kind == "O" else dataset[()]
    return pd.DataFrame(data, columns=columns)


def count_column(counts: np.ndarray) -> pd.arrays.IntegerArray | np.ndarray:
    """Clone counts as a table writes them: whole numbers without a decimal point (missing ones empty), as AIRR's
    `duplicate_count` is; counts that are not all whole (a file's frequencies) as they are."""
    counts = np.asarray(counts, dtype=np.float64)
    known = counts[~np.isnan(counts)]
    if not (np.isfinite(known).all() and np.array_equal(known, np.round(known))):
        return counts
    return pd.arrays.IntegerArray(np.where(np.isnan(counts), 0, counts).astype(np.int64), np.isnan(counts))


class RepertoireStore:
    """Read access to a cohort store written by `deeprc-hopfield ingest`.

    Opening checks that the file is a store of a schema version this package reads. Per-repertoire
    tables are small and loaded once; sequences are read one repertoire at a time.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError("store not found", self.path)
        if not os.access(self.path, os.R_OK):
            raise StoreError("cannot be read (permission denied)", self.path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError:
            raise StoreError("not a readable HDF5 file (truncated, or not a store)", self.path) from None
        attrs = self._file.attrs
        if attrs.get("kind") != STORE_KIND:
            self._file.close()
            raise StoreError("not a deeprc-hopfield repertoire store", self.path)
        version = int(attrs.get("schema_version", -1))
        if version not in (SCHEMA_VERSION, SPECIES_SCHEMA_VERSION):
            self._file.close()
            raise StoreError(
                f"store schema version {version}, but this deeprc-hopfield ({__version__}) reads versions "
                f"{SCHEMA_VERSION} and {SPECIES_SCHEMA_VERSION}; re-run `deeprc-hopfield ingest`", self.path)
        try:
            rep = self._file["repertoires"]
            self._sequence_offsets = rep["sequence_offsets"][()]
            self._residue_offsets = rep["residue_offsets"][()]
            self.subject_ids: list[str] = rep["subject_id"].asstr()[()].tolist()
            self.filenames: list[str] = rep["filename"].asstr()[()].tolist()
            self.v_genes: list[str] = self._file["genes/v"].asstr()[()].tolist()
            self.j_genes: list[str] = self._file["genes/j"].asstr()[()].tolist()
            self.attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}
            self.parameters = json.loads(self.attrs["parameters"])
        except (KeyError, OSError, ValueError) as exc:
            self._file.close()
            raise StoreError(f"damaged store: {exc}", self.path) from None
        #: What ingest warned of the cohort (pooled chains, another species' genes, a file listed twice).
        self.warnings: list[str] = json.loads(self.attrs.get("warnings", "[]"))
        #: Whose genes the store's names are (`ingest --species`); a store written before it was recorded is human.
        self.species: str = str(self.attrs.get("species", DEFAULT_SPECIES))
        if self.species not in SPECIES:
            self._file.close()
            raise StoreError(f"a store of species '{self.species}', but this deeprc-hopfield ({__version__}) reads "
                             f"{', '.join(SPECIES)}", self.path)

    # --- cohort-level tables -------------------------------------------------------------
    @property
    def n_repertoires(self) -> int:
        return len(self.subject_ids)

    @property
    def n_sequences(self) -> int:
        return int(self._sequence_offsets[-1])

    def repertoire_sizes(self) -> np.ndarray:
        """Number of sequences of each repertoire, shape (n_repertoires,)."""
        return np.diff(self._sequence_offsets)

    @property
    def label_names(self) -> list[str]:
        return list(self._file["labels"].keys())

    def label(self, name: str) -> Label:
        """One label column; a missing name is a :class:`StoreError` listing those present."""
        if name not in self._file["labels"]:
            raise StoreError(f"store has no label '{name}' (labels: {', '.join(self.label_names) or 'none'})",
                             self.path)
        dataset = self._file["labels"][name]
        return Label(name, str(dataset.attrs["kind"]), json.loads(dataset.attrs["classes"]), dataset[()])

    def metadata(self) -> pd.DataFrame:
        return _read_frame(self._file["metadata"])

    def qc(self) -> pd.DataFrame:
        """QC counts by reason, one row per repertoire (indexed by subject id)."""
        return _read_frame(self._file["qc"]).set_axis(pd.Index(self.subject_ids, name="subject_id"))

    def provenance(self) -> pd.DataFrame:
        return _read_frame(self._file["provenance"])

    # --- sequences ------------------------------------------------------------------------
    def index_of(self, subject_id: str) -> int:
        try:
            return self.subject_ids.index(subject_id)
        except ValueError:
            raise StoreError(f"no repertoire with subject_id '{subject_id}'", self.path) from None

    def repertoire(self, i: int) -> Repertoire:
        """Arrays of repertoire `i` (0-based, metadata order)."""
        if not 0 <= i < self.n_repertoires:
            raise IndexError(f"repertoire {i} out of range 0..{self.n_repertoires - 1}")
        s0, s1 = self._sequence_offsets[i], self._sequence_offsets[i + 1]
        r0, r1 = self._residue_offsets[i], self._residue_offsets[i + 1]
        seq = self._file["sequences"]
        return Repertoire(
            subject_id=self.subject_ids[i],
            codes=seq["codes"][r0:r1],
            **{name: seq[name][s0:s1] for name in _SEQUENCE_FIELDS},
        )

    def table(self, i: int) -> pd.DataFrame:
        """Repertoire `i` as a tidy table (`junction_aa`, `v_call`, `j_call`, `duplicate_count`)."""
        rep = self.repertoire(i)
        v = np.array(self.v_genes + [None], dtype=object)
        j = np.array(self.j_genes + [None], dtype=object)
        return pd.DataFrame({
            "junction_aa": decode(rep.codes, rep.lengths),
            "v_call": v[rep.v_index],
            "j_call": j[rep.j_index],
            "duplicate_count": rep.counts,
        })

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "RepertoireStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.n_repertoires


class StoreRepertoires(Sequence):
    """The repertoires of an open store as a sequence, each read when indexed (and each read checks for an
    interrupt, so a long pass over a cohort stops at the next repertoire)."""

    def __init__(self, store: RepertoireStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> Repertoire:
        if not 0 <= i < len(self.store):
            raise IndexError(i)
        raise_if_interrupted()
        return self.store.repertoire(i)
