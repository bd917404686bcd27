"""Which sequences a training update sees: seeded sub-sampling of repertoires from a store.

Every random choice of update `u` comes from its own generator seeded by ``(seed, u)``, so a run
resumed from a checkpoint draws exactly what an uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from deeprc_hopfield.store import Repertoire, RepertoireStore

SAMPLING_MODES = ("uniform", "counts")


def update_rng(seed: int, update: int) -> np.random.Generator:
    """The random generator of one training update."""
    return np.random.default_rng([seed, update])


def sample_indices(repertoire: Repertoire, n: int, rng: np.random.Generator, mode: str = "uniform") -> np.ndarray:
    """Sorted indices of up to `n` distinct sequences of a repertoire.

    `mode` 'uniform' gives each sequence the same chance; 'counts' weights it by its clone count
    (a missing count weighs 1), drawn without replacement with exponential keys (Efraimidis-Spirakis).
    """
    size = len(repertoire)
    if size <= n:
        return np.arange(size)
    if mode == "uniform":
        chosen = rng.choice(size, size=n, replace=False)
    elif mode == "counts":
        weights = np.nan_to_num(repertoire.counts, nan=1.0)
        weights = np.maximum(weights, 1e-12)
        keys = rng.exponential(size=size) / weights  # the n smallest keys are a weighted sample
        chosen = np.argpartition(keys, n)[:n]
    else:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got '{mode}'")
    return np.sort(chosen)


class RepertoireCache:
    """Repertoires of a store, kept in memory when the whole store is small enough.

    Training reads the same repertoires again and again; a store below `max_bytes` of sequence
    data is read once, a larger one is read repertoire by repertoire as needed.
    """

    def __init__(self, store: RepertoireStore, max_bytes: int = 2 << 30) -> None:
        self.store = store
        estimated = store.n_sequences * 40  # codes (~15 B) + counts, genes, lengths, overhead
        self._cache: dict[int, Repertoire] | None = {} if estimated <= max_bytes else None

    def __getitem__(self, i: int) -> Repertoire:
        if self._cache is None:
            return self.store.repertoire(i)
        if i not in self._cache:
            self._cache[i] = self.store.repertoire(i)
        return self._cache[i]

    def rows(self, rows: np.ndarray) -> RepertoireRows:
        """The repertoires at store indices `rows`, as a sequence read when indexed."""
        return RepertoireRows(self, rows)


class RepertoireRows(Sequence):
    """The repertoires of `cache` (a :class:`RepertoireCache`, or any sequence read when indexed) at indices
    `rows`, read when indexed: a pass over a large store's repertoires holds one at a time, not all of them."""

    def __init__(self, cache: RepertoireCache | Sequence, rows: np.ndarray) -> None:
        self.cache, self.indices = cache, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Repertoire:
        if not -len(self.indices) <= i < len(self.indices):
            raise IndexError(i)
        return self.cache[int(self.indices[i])]

    def __iter__(self) -> Iterator[Repertoire]:  # an IndexError from a read is an error, not the end
        return (self.cache[int(i)] for i in self.indices)
