"""The attention file: each repertoire's scores and each sequence's attention from one pass of the model.

`predict --attention FILE` writes it beside the predictions (and `--attended` beside them), so that
`interpret --attention FILE` ranks sequences without running the model over the repertoires a second
time: one forward pass per held-out repertoire serves all three outputs. The file names the models
that wrote it (the sha256 of each model's config.json, which holds its weights' sha256) and each
repertoire's sequences (:func:`repertoire_fingerprint`), and a reader refuses it for other models,
for repertoires it does not hold or for other sequences under the same subject (a store ingested
again with other files or settings), so stale attention is never used.

Layout (HDF5): ``subject_ids`` (str, R), ``offsets`` (int64, R + 1: repertoire r's sequences are
``attention[offsets[r]:offsets[r + 1]]``), ``attention`` (float32, all sequences: the mean over the
models of the highest head's weight, as `attend` reports it) and ``scores/<label>`` (float32,
(R, n_models, k): what :func:`deeprc_hopfield.infer.score_repertoire` returns per repertoire) and
``fingerprints`` (str, R: :func:`repertoire_fingerprint` of each repertoire scored).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.io import atomic_file, sha256_file
from deeprc_hopfield.saved_model import CONFIG_FILE, SavedModel

FORMAT = "deeprc-hopfield attention"
VERSION = 2  # 2: per-repertoire fingerprints
#: Sequences per HDF5 chunk of the attention dataset.
CHUNK = 1 << 16


class AttentionFileError(DeepRCError):
    """An attention file that is not one, was written by other models, or lacks a repertoire."""


def model_fingerprints(models: list[SavedModel]) -> list[str]:
    """The sha256 of each model's config.json (which holds its weights' sha256); '' for an unsaved model."""
    return [sha256_file(saved.path / CONFIG_FILE) if saved.path is not None else "" for saved in models]


def repertoire_fingerprint(repertoire) -> str:
    """A digest of a store `Repertoire`'s sequences as the model reads them (residues, lengths, counts,
    V and J indices), 32 hex digits: equal for the same sequences in the same order, else different."""
    digest = hashlib.blake2b(digest_size=16)
    for values, dtype in ((repertoire.lengths, np.uint8), (repertoire.codes, np.uint8), (repertoire.counts, np.float64),
                          (repertoire.v_index, np.int16), (repertoire.j_index, np.int16)):
        digest.update(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return digest.hexdigest()


class AttentionWriter:
    """Appends repertoires to an attention file being written (see :func:`attention_writer`)."""

    def __init__(self, h5: h5py.File, labels: list[str]) -> None:
        self._h5 = h5
        self._labels = labels
        self._ids: list[str] = []
        self._fingerprints: list[str] = []
        self._offsets = [0]
        self._scores: dict[str, list[np.ndarray]] = {name: [] for name in labels}
        self._attention = h5.create_dataset("attention", shape=(0,), maxshape=(None,), dtype=np.float32,
                                            chunks=(CHUNK,))

    def add(self, subject_id: str, scores: dict[str, np.ndarray], attention: np.ndarray, fingerprint: str) -> None:
        """One repertoire: its scores per label (n_models, k), its sequences' attention (n,) and their
        :func:`repertoire_fingerprint`."""
        start = self._offsets[-1]
        self._attention.resize((start + len(attention),))
        self._attention[start:] = np.asarray(attention, dtype=np.float32)
        self._offsets.append(start + len(attention))
        self._ids.append(subject_id)
        self._fingerprints.append(fingerprint)
        for name in self._labels:
            self._scores[name].append(np.asarray(scores[name], dtype=np.float32))

    def finish(self) -> None:
        self._h5.create_dataset("subject_ids", data=np.array(self._ids, dtype=object), dtype=h5py.string_dtype())
        self._h5.create_dataset("offsets", data=np.array(self._offsets, dtype=np.int64))
        self._h5.create_dataset("fingerprints", data=np.array(self._fingerprints, dtype=object),
                                dtype=h5py.string_dtype())
        group = self._h5.create_group("scores")
        for name, values in self._scores.items():
            group.create_dataset(name, data=np.stack(values) if values else np.zeros((0, 1, 1), np.float32))


@contextlib.contextmanager
def attention_writer(path: str | Path, models: list[SavedModel]) -> Iterator[AttentionWriter]:
    """Write an attention file for `models`: to a temporary file renamed onto `path` only on success."""
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"format": FORMAT, "version": VERSION,
                         "models": [str(saved.path) for saved in models],
                         "model_sha256": model_fingerprints(models)})
        writer = AttentionWriter(h5, list(models[0].labels))
        yield writer
        writer.finish()


def is_attention_file(path: str | Path) -> bool:
    """Whether `path` is an attention file (by its format attribute)."""
    try:
        with h5py.File(path, "r") as h5:
            return h5.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


class AttentionReader:
    """The repertoires of an open attention file (see :func:`open_attention`)."""

    def __init__(self, h5: h5py.File, path: Path) -> None:
        self._h5, self.path = h5, path
        self._position = {s.decode() if isinstance(s, bytes) else str(s): k
                          for k, s in enumerate(h5["subject_ids"][:])}
        self._offsets = h5["offsets"][:]
        self._fingerprints = h5["fingerprints"].asstr()[:]

    def __contains__(self, subject_id: str) -> bool:
        return subject_id in self._position

    def get(self, subject_id: str, fingerprint: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Scores per label (n_models, k) and attention (n,) of one repertoire, whose sequences must be
        those scored (`fingerprint`: their :func:`repertoire_fingerprint`)."""
        if subject_id not in self._position:
            raise AttentionFileError(f"holds no repertoire '{subject_id}' ({len(self._position)} repertoires); "
                                     "score it with `predict --attention`", self.path)
        k = self._position[subject_id]
        if self._fingerprints[k] != fingerprint:
            raise AttentionFileError(f"was written for other sequences of '{subject_id}' than the store holds (a "
                                     "store ingested again?); write it again with `predict --attention`", self.path)
        scores = {name: self._h5["scores"][name][k] for name in self._h5["scores"]}
        return scores, self._h5["attention"][self._offsets[k]:self._offsets[k + 1]]


@contextlib.contextmanager
def open_attention(path: str | Path, models: list[SavedModel]) -> Iterator[AttentionReader]:
    """Open an attention file that `models` wrote; refused in one line when it is not one or is another
    models'."""
    path = Path(path)
    if not is_attention_file(path):
        raise AttentionFileError("not an attention file (write one with `predict --attention`)", path)
    with h5py.File(path, "r") as h5:
        if int(h5.attrs.get("version", 0)) != VERSION:
            raise AttentionFileError(f"attention file version {h5.attrs.get('version')}, this deeprc-hopfield reads "
                                     f"version {VERSION}; write it again with `predict --attention`", path)
        if [str(s) for s in h5.attrs["model_sha256"]] != model_fingerprints(models):
            raise AttentionFileError(f"written by other models ({', '.join(map(str, h5.attrs['models']))}) than "
                                     f"the {len(models)} given; write it again with `predict --attention`", path)
        yield AttentionReader(h5, path)


def check_attention(path: str | Path, models: list[SavedModel], subject_ids: list[str]) -> None:
    """Refuse, before any work, an attention file that is not one, is another models', or lacks one of
    `subject_ids`."""
    with open_attention(path, models) as reader:
        missing = [s for s in subject_ids if s not in reader]
        if missing:
            raise AttentionFileError(f"holds no repertoire '{missing[0]}' ({len(missing)} of the {len(subject_ids)} "
                                     "to interpret missing); score them with `predict --attention`", path)
