"""Public clones: one key per clone, the incidence of shared clones, and the Emerson et al. 2017 test.

**A clone** is a CDR3 core with its V family: the junction without its conserved C and F/W (the
IMGT CDR3, `deeprc_hopfield.cdr3`, so files of either convention match) and the family of its V
call (`TRBV5` for `TRBV5-1` and for a family-only `TRBV5`: a family is known wherever a gene is,
so a family-only call and a gene call of one receptor are one clone; two genes of a family with
the same CDR3 are one clone too). :data:`V_MODE` names this rule; :func:`gene_codes` also knows
'gene' (the whole gene name) and 'none' (the CDR3 alone), for a later choice among them.

**A missing V call is a wildcard**, on both sides of every match: a sequence without a V call is
the same clone as the sequence with that CDR3 core and any V family. Its key is that of its CDR3
core alone (V unknown). The clone memory (`model/memory.py`) matches on the CDR3 core wherever
the sequence's or the stored clone's V is unknown; the baseline, the memory's fit and the
interpretation's ranking resolve each sequence without a V call to every clone of its CDR3 core
that the cohort holds with a V call (:func:`resolve_wildcards`), and keep it as a clone of its own
only where there is none, so no clone is split in two.

:func:`clone_keys` is the one function that keys clones for the public-clone baseline, the model's
clone memory and the interpretation's ranking: a 62-bit key from two polynomial hashes of the
core's residue codes modulo primes below 2**31, computed without overflow in int64 (torch, so the
memory keys sequences on the model's device, the same on CPU and GPU). A gene enters as (its code
+ 1) x a constant added to each hash, so the key of a clone with V is that of its core plus a term
of the V code alone (:func:`with_v`, :func:`without_v`). An optional J gene enters the same way
(the ranking keys (CDR3 core, V family, J gene)).

The test (:class:`PublicCloneTest`): each clone shared by two repertoires or more gets a one-sided
Fisher's exact test of enrichment in the positive repertoires; the clones with p below a threshold
are *associated*, and a repertoire's score is the number of associated clones it carries (not
divided by its size). The threshold is chosen from :data:`P_THRESHOLDS` by inner cross-validation
(ROC AUC), and the score is turned into a probability by a logistic fit of the inner out-of-fold
scores (as a share of the associated clones), so 0.5 is a usable threshold.
"""

from __future__ import annotations

import logging
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scipy.stats import hypergeom
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from deeprc_hopfield.cdr3 import ANCHOR, core_bounds
from deeprc_hopfield.errors import DeepRCError, InnerFoldsError
from deeprc_hopfield.genes import gene_family
from deeprc_hopfield.threads import each_locked

log = logging.getLogger(__name__)

MODULI = (2_147_483_647, 2_147_483_629)  # primes below 2**31: a product of two residues fits int64
MULTIPLIERS = (1_000_003, 999_983)
GENE_FACTORS = (1_234_567_891, 987_654_323)  # how the V and the J gene enter a key (times their code + 1)
#: What of a V call enters a clone's key (see the module docstring).
V_MODE = "family"
V_MODES = ("none", "family", "gene")
_CODE_RANGE = 2_000_000_000  # gene codes are below it, so code + 1 is never 0 modulo either prime
#: Fisher p-value thresholds tried by the inner cross-validation of the public-clone test.
P_THRESHOLDS = (1e-2, 1e-3, 1e-4, 1e-5)
INNER_FOLDS = 5
#: Inner folds of the public-clone test. More than :data:`INNER_FOLDS`: Fisher's p needs a few more carriers
#: than an inner fit of 80% of the repertoires holds where receptors are rare, so 5 folds underrate the
#: exact clone rules there (``benchmarks/clone_rule_choice.py``).
CLONE_INNER_FOLDS = 10
#: Repeats of the public-clone test's inner CV, each with other folds (seeds seed, seed + 1, ...); the
#: inner AUC that chooses the p threshold, the pgen cutoff and the clone rule is their mean. One split's
#: AUC is noisy where receptors are rare: on 120 repertoires it moved by up to 0.085 between seeds, and
#: the rule it chose with it (``benchmarks/clone_rule_choice.py --seed``).
CLONE_INNER_REPEATS = 3


# --- keys ----------------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def gene_code(name: str | None, level: str = V_MODE) -> int:
    """The code of a gene name in keys, the same whatever gene table it comes from: a CRC-32 of the
    name at `level` ('gene': `TRBV5-1`; 'family': `TRBV5`; 'none': every call unknown), -1 for none."""
    if level not in V_MODES:
        raise ValueError(f"level must be one of {', '.join(V_MODES)}, got {level!r}")
    if name is None or level == "none" or not isinstance(name, str) or not name.strip():
        return -1
    text = gene_family(name) if level == "family" else name.strip().split("*", 1)[0]
    return zlib.crc32(text.encode()) % _CODE_RANGE


def gene_codes(names: Sequence[str | None], level: str = V_MODE) -> np.ndarray:
    """:func:`gene_code` of each name of a gene table, int64 (len(names) + 1,): the last entry is -1,
    so ``gene_codes(table)[index]`` maps gene indices (-1 = unknown) to codes.

    At the 'gene' level a family-only call (`TRBV5` where the table also holds a `TRBV5-1`) is
    unknown (-1), so it matches every gene of the table rather than splitting a clone in two.
    """
    if level == "gene":
        split = {gene_family(n) for n in names if isinstance(n, str) and gene_family(n) != _gene_name(n)}
        return np.array([-1 if isinstance(n, str) and _gene_name(n) in split else gene_code(n, level)
                         for n in names] + [-1], dtype=np.int64)
    return np.array([gene_code(name, level) for name in names] + [-1], dtype=np.int64)


def _gene_name(name: str) -> str:
    """A gene call without its allele (`TRBV5-1*01` -> `TRBV5-1`)."""
    return name.strip().split("*", 1)[0]


def _powers(multiplier: int, modulus: int, n: int, device: torch.device) -> torch.Tensor:
    """multiplier**j mod modulus for j < n, long (n,), on `device`."""
    return torch.tensor(_numpy_powers(multiplier, modulus, n), device=device)  # a copy: the table is cached


def clone_keys(codes: torch.Tensor, lengths: torch.Tensor, v: torch.Tensor | None = None,
               j: torch.Tensor | None = None, trim: int = ANCHOR) -> torch.Tensor:
    """One int64 key per sequence, on the device of `codes`: equal (CDR3 core, V code, J code) get
    equal keys, distinct ones collide with probability about 2**-62.

    Parameters
    ----------
    codes
        Residue codes 1..20 of all sequences (junctions) concatenated, (n_residues,).
    lengths
        (n,) sequence lengths.
    v, j
        (n,) gene codes (:func:`gene_codes`), -1 (or None for all) = unknown. An unknown gene adds
        nothing to the key: a clone of unknown V keys as its CDR3 core alone; without `j` the key is
        that of (core, V).
    trim
        Residues left out at each end of each sequence (:func:`deeprc_hopfield.cdr3.core_bounds`):
        the anchors by default; 0 keys whole sequences (the clone memory of models saved before the
        CDR3 core).

    Returns
    -------
    long (n,).
    """
    lengths = lengths.long()
    n = lengths.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=codes.device)
    offset = torch.minimum(torch.full_like(lengths, trim), ((lengths - 1) // 2).clamp(min=0))  # core_bounds
    core_lengths = lengths - 2 * offset
    sequence = torch.repeat_interleave(torch.arange(n, device=codes.device), lengths)  # (R,)
    position = torch.arange(sequence.shape[0], device=codes.device) - (torch.cumsum(lengths, 0) - lengths)[sequence]
    position = position - offset[sequence]  # position in the core
    inside = (position >= 0) & (position < core_lengths[sequence])
    sequence, position, residues = sequence[inside], position[inside], codes.long()[inside]
    genes = [(g.long() + 1).clamp(min=0) if g is not None else None for g in (v, j)]  # 0 = unknown
    key = torch.zeros(n, dtype=torch.long, device=codes.device)
    for multiplier, modulus in zip(MULTIPLIERS, MODULI):
        power = _powers(multiplier, modulus, max(int(core_lengths.max()), 1), codes.device)
        terms = residues * power[position] % modulus  # (R,) each < 2**31
        h = torch.zeros(n, dtype=torch.long, device=codes.device).index_add_(0, sequence, terms)  # < 2**31 * length
        h = (h + core_lengths) % modulus
        for gene, factor in zip(genes, GENE_FACTORS):
            if gene is not None:
                h = h + (gene % modulus) * (factor % modulus) % modulus  # each term < 2**31
        key = key * (1 << 31) + h % modulus
    return key


def _v_terms(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What V codes `v` add to each of a key's two hashes, int64 (n,) each (0 for an unknown V)."""
    gene = np.maximum(np.asarray(v, dtype=np.int64) + 1, 0)
    return tuple((gene % m) * (GENE_FACTORS[0] % m) % m for m in MODULI)


def with_v(keys: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Keys of V unknown (a CDR3 core, with its J where keyed) made keys of V code `v`, int64 (n,)."""
    high, low = np.asarray(keys, dtype=np.int64) >> 31, np.asarray(keys, dtype=np.int64) & ((1 << 31) - 1)
    terms = _v_terms(v)
    return ((high + terms[0]) % MODULI[0] << 31) + (low + terms[1]) % MODULI[1]


def without_v(keys: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`with_v`: the keys of the same clones with V unknown, int64 (n,)."""
    high, low = np.asarray(keys, dtype=np.int64) >> 31, np.asarray(keys, dtype=np.int64) & ((1 << 31) - 1)
    terms = _v_terms(v)
    return ((high - terms[0]) % MODULI[0] << 31) + (low - terms[1]) % MODULI[1]


def repertoire_keys(repertoire, v: np.ndarray | None = None, j: np.ndarray | None = None,
                    chunk: int = 1 << 16) -> np.ndarray:
    """:func:`clone_keys` of every sequence of a store `Repertoire` (codes, lengths), int64 (n,), the
    same keys computed with numpy (~7x faster than torch on the CPU), `chunk` sequences at a time.

    `v`, `j`: (n,) gene codes of the sequences, e.g. ``gene_codes(store.v_genes)[repertoire.v_index]``
    (:func:`v_codes`); None = unknown for all.
    """
    lengths = np.asarray(repertoire.lengths, dtype=np.int64)
    genes = [np.asarray(g, dtype=np.int64) if g is not None else None for g in (v, j)]
    ends = np.cumsum(lengths)
    out = []
    for start in range(0, len(lengths), chunk):
        stop = min(start + chunk, len(lengths))
        first, last = int(ends[start] - lengths[start]), int(ends[stop - 1])
        out.append(_numpy_clone_keys(np.asarray(repertoire.codes[first:last]), lengths[start:stop],
                                     *(g[start:stop] if g is not None else None for g in genes)))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _numpy_clone_keys(codes: np.ndarray, lengths: np.ndarray, v: np.ndarray | None, j: np.ndarray | None,
                      trim: int = ANCHOR) -> np.ndarray:
    """:func:`clone_keys` in numpy, int64 (n,): the same two polynomial hashes, summed per core."""
    n = len(lengths)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    offset, core = core_bounds(lengths, trim)
    row = np.repeat(np.arange(n, dtype=np.int64), core)
    first = np.cumsum(core) - core
    position = np.arange(len(row), dtype=np.int64) - first[row]
    residues = codes[(np.cumsum(lengths) - lengths + offset)[row] + position].astype(np.int64)
    genes = [np.maximum(g + 1, 0) if g is not None else None for g in (v, j)]  # 0 = unknown
    key = np.zeros(n, dtype=np.int64)
    for multiplier, modulus in zip(MULTIPLIERS, MODULI):
        power = _numpy_powers(multiplier, modulus, max(int(core.max()), 1))
        terms = residues * power[position] % modulus  # each < 2**31
        h = np.add.reduceat(np.append(terms, 0), np.minimum(first, len(terms)))  # a 0-residue core: masked
        h = np.where(core > 0, h, 0)
        h = (h + core) % modulus
        for gene, factor in zip(genes, GENE_FACTORS):
            if gene is not None:
                h = h + (gene % modulus) * (factor % modulus) % modulus
        key = key * (1 << 31) + h % modulus
    return key


@lru_cache(maxsize=64)
def _numpy_powers(multiplier: int, modulus: int, n: int) -> np.ndarray:
    """multiplier**j mod modulus for j < n, int64 (n,)."""
    out = np.ones(n, dtype=np.int64)
    for i in range(1, n):
        out[i] = out[i - 1] * multiplier % modulus
    return out


def v_codes(repertoire, v_genes: Sequence[str], level: str = V_MODE) -> np.ndarray:
    """The V code (at `level`, :data:`V_MODE` by default) of each sequence of a store `Repertoire`
    whose V indices point into the gene table `v_genes`, int64 (n,), -1 where the V call is missing."""
    return gene_codes(v_genes, level)[np.asarray(repertoire.v_index, dtype=np.int64)]


@dataclass
class CloneSet:
    """The distinct clones of one repertoire: `keys` (int64, sorted) of its sequences with a V call and
    `v` (int64) the V code of each; `unknown` (int64, sorted) the keys of its sequences without one
    (their CDR3 cores alone)."""

    keys: np.ndarray
    v: np.ndarray
    unknown: np.ndarray


def clone_set(keys: np.ndarray, v: np.ndarray) -> CloneSet:
    """The :class:`CloneSet` of sequences with these keys (:func:`repertoire_keys`) and V codes."""
    known = np.asarray(v) >= 0
    distinct, first = np.unique(keys[known], return_index=True)
    return CloneSet(distinct, np.asarray(v, dtype=np.int64)[known][first], unique_keys(keys[~known]))


def repertoire_clones(repertoire, v_genes: Sequence[str], level: str = V_MODE) -> CloneSet:
    """The :class:`CloneSet` of a store `Repertoire` with V indices into `v_genes`, V keyed at `level`."""
    v = v_codes(repertoire, v_genes, level)
    return clone_set(repertoire_keys(repertoire, v), v)


def wildcard_table(keys: Iterable[np.ndarray], v: Iterable[np.ndarray], unknown: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The clones with a V call whose key without V is one of `unknown`: (their keys without V, sorted;
    their keys), int64 each, distinct pairs. `keys`/`v` hold keys with a V call and their V codes
    (several arrays, e.g. one per repertoire)."""
    unknown = unique_keys(np.asarray(unknown, dtype=np.int64))
    cores, full = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for k, c in zip(keys, v):
        stripped = without_v(k, c)
        hit = unknown[np.minimum(search_sorted(unknown, stripped), max(len(unknown) - 1, 0))] == stripped \
            if len(unknown) else np.zeros(len(stripped), dtype=bool)
        cores.append(stripped[hit])
        full.append(np.asarray(k, dtype=np.int64)[hit])
    pairs = np.unique(np.stack([np.concatenate(cores), np.concatenate(full)], axis=1), axis=0)  # sorted by core
    return pairs[:, 0], pairs[:, 1]


def expand_wildcards(unknown: np.ndarray, table: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each key without V in `unknown` (n,) resolved by :func:`wildcard_table`: (row in `unknown`, key)
    pairs, one per clone with a V call of that key, or the key itself where there is none."""
    cores, full = table
    unknown = np.asarray(unknown, dtype=np.int64)
    low, high = np.searchsorted(cores, unknown, "left"), np.searchsorted(cores, unknown, "right")
    found = np.maximum(high - low, 0)
    n = np.maximum(found, 1)
    row = np.repeat(np.arange(len(unknown)), n)
    within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    position = np.repeat(low, n) + within
    resolved = np.where(np.repeat(found > 0, n), full[np.minimum(position, max(len(full) - 1, 0))] if len(full)
                        else 0, np.repeat(unknown, n))
    return row, resolved


def name_codes(names: Sequence[str | None] | np.ndarray, level: str = V_MODE) -> np.ndarray:
    """:func:`gene_code` of each of a column of gene names (None or NaN = missing), int64 (n,)."""
    index, uniques = pd.factorize(pd.Series(np.asarray(names, dtype=object)), use_na_sentinel=True)
    return gene_codes([str(u) for u in uniques], level)[index]


def resolve_rows(keys: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The missing-V policy on flat arrays (one row per occurrence, of any repertoires): (row, key)
    pairs, each row with a V call once with its key, each row without one once per clone of its
    key without V that the rows hold with a V call (or once with its own key where they hold none)."""
    keys, v = np.asarray(keys, dtype=np.int64), np.asarray(v, dtype=np.int64)
    known = v >= 0
    if known.all():
        return np.arange(len(keys)), keys
    without = np.flatnonzero(~known)
    table = wildcard_table([keys[known]], [v[known]], keys[without])
    rows, resolved = expand_wildcards(keys[without], table)
    return np.concatenate([np.flatnonzero(known), without[rows]]), np.concatenate([keys[known], resolved])


def resolve_wildcards(sets: list[CloneSet]) -> list[np.ndarray]:
    """Each repertoire's distinct clone keys, int64 sorted, with the missing-V policy applied: a CDR3
    without a V call counts as every clone of its core that some repertoire of `sets` has with a V
    call, and as a clone of its own only where none has (see the module docstring)."""
    unknown = unique_keys(np.concatenate([s.unknown for s in sets])) if sets else np.zeros(0, dtype=np.int64)
    if len(unknown) == 0:
        return [s.keys for s in sets]
    table = wildcard_table((s.keys for s in sets), (s.v for s in sets), unknown)
    return [unique_keys(np.concatenate([s.keys, expand_wildcards(s.unknown, table)[1]])) for s in sets]


def clone_incidence(keys: list[np.ndarray], min_carriers: int = 2, positives: np.ndarray | None = None
                    ) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Repertoire-by-clone presence matrix of the clones held by `min_carriers` repertoires or more
    (two: every shared clone; of the `positives`, a bool mask, where given), and their keys (one per
    column, sorted).

    `keys` holds each repertoire's distinct clone keys (:func:`resolve_wildcards`). Memory stays near
    one copy of all keys: the shared keys are found on one sorted copy, then each repertoire is
    looked up in them.
    """
    counted = keys if positives is None else [k for k, positive in zip(keys, positives) if positive]
    everything = np.concatenate(counted) if counted else np.zeros(0, dtype=np.int64)
    everything.sort()
    starts = np.flatnonzero(np.r_[True, everything[1:] != everything[:-1]]) if len(everything) else np.zeros(0, int)
    runs = np.diff(np.r_[starts, len(everything)])
    shared = everything[starts[runs >= max(int(min_carriers), 2)]]
    del everything, starts, runs
    rows, columns = [], []
    for i, k in enumerate(keys):
        position = np.minimum(np.searchsorted(shared, k), max(len(shared) - 1, 0))
        hit = shared[position] == k if len(shared) else np.zeros(len(k), dtype=bool)
        columns.append(position[hit])
        rows.append(np.full(int(hit.sum()), i, dtype=np.int64))
    row, column = (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64) for parts in (rows, columns))
    matrix = sparse.csr_matrix((np.ones(len(row), dtype=bool), (row, column)), shape=(len(keys), len(shared)))
    return matrix, shared


class KeyCounter:
    """How many repertoires hold each int64 key, counted as the repertoires come (`add` each one's
    distinct keys, then `shared` or `shared_counts`) up to `cap`, in about 8 bytes per distinct key.

    The keys seen in one repertoire so far are kept sorted in one array, those seen in two or more in
    another with their counts (at most `cap`); added keys wait in a buffer that is merged in (one sort)
    when it grows as large as the first array (and at least `chunk` keys), so every key is sorted a
    few times only. While merging, ~17 bytes per key of the first array and the buffer are held.
    """

    def __init__(self, chunk: int = 1 << 20, cap: int = 2) -> None:
        if not 2 <= int(cap) <= np.iinfo(np.uint16).max // 2:
            raise ValueError(f"cap must be between 2 and {np.iinfo(np.uint16).max // 2}, got {cap}")
        self.chunk, self.cap = chunk, int(cap)
        self._once = np.zeros(0, dtype=np.int64)  # sorted, seen in one repertoire
        self._twice = np.zeros(0, dtype=np.int64)  # sorted, seen in two or more
        self._counts = np.zeros(0, dtype=np.uint16)  # of each key of _twice, at most cap
        self._buffer: list[np.ndarray] = []
        self._buffered = 0

    def add(self, distinct: np.ndarray) -> None:
        """Count one repertoire's keys (int64 (n,), each once)."""
        self._buffer.append(np.asarray(distinct, dtype=np.int64))
        self._buffered += len(distinct)
        if self._buffered >= max(self.chunk, len(self._once)):
            self._merge()

    def _merge(self) -> None:
        if not self._buffer:
            return
        keys = np.concatenate(self._buffer)
        self._buffer, self._buffered = [], 0
        keys = keys[~self._count_repeats(keys)]
        keys = np.concatenate([self._once, keys])
        self._once = np.zeros(0, dtype=np.int64)
        keys.sort(kind="stable")  # sorted runs (each add's distinct keys, as given sorted): merged ~3-5x faster
        repeated = np.zeros(len(keys), dtype=bool)  # held by another repertoire of these keys too
        np.equal(keys[1:], keys[:-1], out=repeated[1:])
        repeated[:-1] |= repeated[1:]
        new, counts = np.unique(keys[repeated], return_counts=True)
        if len(new):  # none of them is in _twice yet
            merged = np.concatenate([self._twice, new])
            order = np.argsort(merged, kind="stable")
            self._twice = merged[order]
            self._counts = np.minimum(np.concatenate([self._counts, counts])[order], self.cap).astype(np.uint16)
        self._once = keys[~repeated]

    def _count_repeats(self, keys: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
        """Count the keys already held twice or more (`keys` may repeat), bool (n,): which they are."""
        found = np.zeros(len(keys), dtype=bool)
        if len(self._twice) == 0:
            return found
        more = np.zeros(len(self._twice), dtype=np.int64)
        for start in range(0, len(keys), chunk):
            part = keys[start:start + chunk]
            at = np.minimum(search_sorted(self._twice, part), len(self._twice) - 1)
            hit = self._twice[at] == part
            more += np.bincount(at[hit], minlength=len(self._twice))
            found[start:start + chunk] = hit
        self._counts = np.minimum(self._counts + more, self.cap).astype(np.uint16)
        return found

    def shared_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """The keys that two `add` calls or more held (int64 sorted) and how many held each (uint16,
        `cap` meaning `cap` or more)."""
        self._merge()
        return self._twice, self._counts

    def shared(self) -> np.ndarray:
        """The keys that two `add` calls or more held, int64 sorted."""
        return self.shared_counts()[0]

    def seen_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """Every key added, in two sorted int64 arrays (no copy): those added once, and the others."""
        self._merge()
        return self._once, self._twice

    def seen(self) -> np.ndarray:
        """Every key added, int64 sorted."""
        return np.sort(np.concatenate(self.seen_parts()))  # the two parts share no key


#: Counters a :class:`ShardedKeyCounter` splits its keys over: enough that threads adding at once seldom wait on one.
KEY_COUNTER_SHARDS = 16


class ShardedKeyCounter:
    """A :class:`KeyCounter` split into `shards`, one per range of keys (ranges cut at quantiles of the first
    repertoire's keys), each behind its own lock, so that threads count their repertoires' keys at once and a merge
    holds one shard's keys. A key always goes to the same shard and counting does not depend on order, so the
    counts are one counter's."""

    def __init__(self, shards: int = KEY_COUNTER_SHARDS, chunk: int = 1 << 20, cap: int = 2) -> None:
        self.counters = [KeyCounter(max(chunk // shards, 1), cap) for _ in range(shards)]
        self._locks = [threading.Lock() for _ in range(shards)]
        self._cuts: np.ndarray | None = None  # int64 (shards - 1,): shard s holds keys in [cuts[s - 1], cuts[s])
        self._cutting = threading.Lock()

    def add(self, distinct: np.ndarray) -> None:
        """Count one repertoire's keys (int64 (n,), sorted, each once); safe from several threads at once."""
        distinct = np.asarray(distinct, dtype=np.int64)
        if not self.counters:
            raise ValueError("this counter's counts were taken (shared_counts): it counts no more")
        if len(distinct) > 1 and bool((distinct[1:] <= distinct[:-1]).any()):
            raise ValueError("ShardedKeyCounter.add takes distinct keys in increasing order")
        if len(distinct) == 0:
            return
        edges = np.concatenate(([0], np.searchsorted(distinct, self._cuts_from(distinct)), [len(distinct)]))
        each_locked(self._locks, np.flatnonzero(np.diff(edges)),
                    lambda s: self.counters[s].add(distinct[edges[s]:edges[s + 1]]))

    def _cuts_from(self, distinct: np.ndarray) -> np.ndarray:
        """The shards' cuts, made from `distinct` (sorted) if none are made yet (the first add to get here)."""
        if self._cuts is None:
            with self._cutting:
                if self._cuts is None:
                    at = np.linspace(0, len(distinct) - 1, len(self.counters) + 1)[1:-1].astype(np.int64)
                    self._cuts = distinct[at]
        return self._cuts

    def once_parts(self) -> Iterator[np.ndarray]:
        """The keys that one `add` held, a shard at a time (int64 sorted, no copy)."""
        for counter in self.counters:
            yield counter.seen_parts()[0]

    def shared_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`KeyCounter.shared_counts`; the shards are let go of as they are copied (the counter is spent)."""
        shards = [counter.shared_counts() for counter in self.counters]
        self.counters = []  # spent: each shard's arrays go once copied
        keys = np.empty(sum(len(k) for k, _ in shards), dtype=np.int64)
        counts, start = np.empty(len(keys), dtype=np.uint16), 0
        while shards:
            shard_keys, shard_counts = shards.pop(0)
            keys[start:start + len(shard_keys)] = shard_keys
            counts[start:start + len(shard_keys)] = shard_counts
            start += len(shard_keys)
            del shard_keys, shard_counts
        return keys, counts


def unique_keys(keys: np.ndarray, nearly_sorted: bool = False) -> np.ndarray:
    """The distinct values of an integer array, sorted, as `np.unique` gives them, by one sort: numpy
    2.3+ finds them with a hash table, ~15x slower than a sort on 64-bit keys (0.57 s against 0.04 s
    for 625,000). `nearly_sorted` (sorted runs, or few out of order): numpy's stable sort, which merges runs."""
    out = np.sort(np.asarray(keys).ravel(), kind="stable" if nearly_sorted else None)
    if len(out) > 1:
        out = out[np.concatenate(([True], out[1:] != out[:-1]))]
    return out


def in_sorted(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of `keys` is in the sorted int64 array `table`, bool (n,)."""
    if len(table) == 0:
        return np.zeros(len(keys), dtype=bool)
    return table[np.minimum(search_sorted(table, keys), len(table) - 1)] == keys


def search_sorted(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``np.searchsorted(table, keys)``, with the keys searched in sorted order: numpy then walks the
    table forwards, ~10x faster than keys in random order on a large table (1 s against 0.09 s for
    620,000 keys in 5 M)."""
    keys = np.asarray(keys)
    if len(keys) < 4096 or len(table) < 4096:
        return np.searchsorted(table, keys)
    order = np.argsort(keys, kind="stable")  # faster than the default on int64, and far faster on sorted runs
    out = np.empty(len(keys), dtype=np.intp)
    out[order] = np.searchsorted(table, keys[order])
    return out


# --- the test ------------------------------------------------------------------------------------
def inner_cv(y: np.ndarray, seed: int, folds: int = INNER_FOLDS,
             groups: np.ndarray | None = None) -> "StratifiedKFold | GroupedInnerFolds":
    """Stratified inner cross-validation over the training repertoires (class codes `y`), with fewer
    folds where the smallest class has fewer than `folds` repertoires. With `groups` (one per repertoire, e.g. its
    donor), each group's repertoires fall in one inner fold (fewer folds where a class has fewer groups); groups of
    one repertoire each split as without them."""
    most = min(folds, most_inner_folds(y, groups))
    codes = grouping(groups)
    if codes is None:
        return StratifiedKFold(n_splits=most, shuffle=True, random_state=seed)
    return GroupedInnerFolds(StratifiedGroupKFold(n_splits=most, shuffle=True, random_state=seed), codes)


def most_inner_folds(y: np.ndarray, groups: np.ndarray | None = None) -> int:
    """The most stratified inner folds that repertoires of class codes `y` allow: the fewest repertoires of a class,
    or with `groups` (each kept whole) the fewest groups of a class. Raises :class:`InnerFoldsError` below 2, so that
    a caller can tell a refused fit from another error (the baselines then leave that outer fold out)."""
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        raise InnerFoldsError(f"fewer than 2 repertoires of a class ({counts[0]} and {counts[1]} among these "
                              f"{len(y)}): too few for inner cross-validation; fit on more repertoires (a split with "
                              "fewer folds leaves more in each training part)")
    codes = grouping(groups)
    if codes is None:
        return int(counts.min())
    per_class = pd.DataFrame({"y": y, "group": codes}).groupby("y")["group"].nunique()
    fewest = int(per_class.reindex([0, 1], fill_value=0).min())
    if fewest < 2:
        raise InnerFoldsError(f"a class of these {len(y)} repertoires is held by {fewest} group(s): too few for inner "
                              "cross-validation that keeps each group whole; fit on more groups (a split with fewer "
                              "folds leaves more in each training part)")
    return fewest


def grouping(groups: np.ndarray | Sequence | None) -> np.ndarray | None:
    """`groups` as group codes (int64), or None where there are none or every repertoire is a group of its own
    (then group-aware folds are the plain ones: the same splits as without groups)."""
    if groups is None:
        return None
    codes = pd.factorize(pd.Series(np.asarray(groups, dtype=object)).astype(str))[0]
    return None if len(np.unique(codes)) == len(codes) else codes.astype(np.int64)


def groups_at(groups: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The groups of `rows` (indices or a bool mask) of `groups`, or None where there are none: the groups a fit on
    those rows keeps whole in its inner folds."""
    return None if groups is None else groups[rows]


@dataclass(frozen=True)
class GroupedInnerFolds:
    """Inner folds that keep each group whole: scikit-learn's `StratifiedGroupKFold` bound to the groups, so that it
    splits as a plain cross-validator (`split(X, y)`, `get_n_splits()`; e.g. `GridSearchCV(cv=...)`)."""

    splitter: StratifiedGroupKFold
    groups: np.ndarray

    def split(self, X: np.ndarray, y: np.ndarray | None = None,  # noqa: N803 (scikit-learn's name)
              groups: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.splitter.split(X, y, self.groups)

    def get_n_splits(self, X: np.ndarray | None = None, y: np.ndarray | None = None,  # noqa: N803
                     groups: np.ndarray | None = None) -> int:
        return self.splitter.get_n_splits()


def inner_splits(y: np.ndarray, seed: int, folds: int = CLONE_INNER_FOLDS,
                 repeats: int = CLONE_INNER_REPEATS, groups: np.ndarray | None = None
                 ) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per repeat r, the (train, test) rows of the stratified inner folds seeded by `seed` + r (each of `groups`
    whole, where given)."""
    return [list(inner_cv(y, seed + r, folds, groups).split(np.zeros(len(y)), y)) for r in range(repeats)]


def fit_rows(y: np.ndarray, seed: int, folds: int = CLONE_INNER_FOLDS, repeats: int = CLONE_INNER_REPEATS,
             groups: np.ndarray | None = None) -> list[np.ndarray]:
    """The rows :class:`PublicCloneTest` (inner folds of `seed`, each of `groups` whole) fits Fisher's test on: all
    of them, then each inner fold's training rows."""
    return [np.arange(len(y))] + [train for splits in inner_splits(y, seed, folds, repeats, groups)
                                  for train, _ in splits]


def min_carriers(y: np.ndarray, seed: int, threshold: float = max(P_THRESHOLDS),
                 folds: int = CLONE_INNER_FOLDS, repeats: int = CLONE_INNER_REPEATS,
                 groups: np.ndarray | None = None) -> int:
    """The fewest repertoires that must carry a clone for :class:`PublicCloneTest` (inner folds of `seed`, each of
    `groups` whole) fitted on repertoires of classes `y` ever to find its p below `threshold` (the loosest it tries).

    A clone's one-sided Fisher p is smallest when every carrier is positive, and that smallest p falls
    as the carriers grow; so a clone with fewer carriers than this (in any rows, hence in the rows of
    every fit) is never a candidate, and need not be collected: the test's result is the same. 2 (no
    clone left out) where the classes are too small for inner folds, as the test then refuses anyway.
    """
    y = np.unique(np.asarray(y), return_inverse=True)[1]
    if len(np.unique(y)) != 2 or np.bincount(y).min() < 2:
        return 2
    try:
        fits = fit_rows(y, seed, folds, repeats, groups)
    except DeepRCError:  # too few groups of a class for inner folds: the test refuses these rows anyway
        return 2
    fewest = len(y) + 1
    for fit in (y[rows] for rows in fits):
        carriers = np.arange(2, int(fit.sum()) + 1)
        reached = np.flatnonzero(hypergeom.sf(carriers - 1, len(fit), int(fit.sum()), carriers) < threshold)
        if len(reached):
            fewest = min(fewest, int(carriers[reached[0]]))
    return max(fewest, 2)


class FitCandidates:
    """Which clones can ever be a candidate of :class:`PublicCloneTest` (inner folds of `seed`) fitted on
    repertoires of classes `y`: a clone whose Fisher p is below `threshold` (the loosest it tries) on all the
    rows or on the training rows of one inner fold. Any other clone never counts in the test (its inner AUCs,
    threshold, pgen requests and associated clones are the same without it), so a collection fitted on exactly
    these rows need not hold it. A clone is kept where its p is below `threshold` x (1 + 1e-9) in one fit, so
    that rounding never drops a candidate.

    `within`: where the test is fitted on parts of the rows (the baselines: once per outer fold), the rows
    (bool masks or indices) of each part; a clone is kept where one fit of one part can use it. `groups`: the group
    of each of the rows, where the fits' inner folds keep groups whole.
    """

    def __init__(self, y: np.ndarray, seed: int, threshold: float = max(P_THRESHOLDS),
                 folds: int = CLONE_INNER_FOLDS, repeats: int = CLONE_INNER_REPEATS,
                 within: Sequence[np.ndarray] | None = None, groups: np.ndarray | None = None) -> None:
        y = np.unique(np.asarray(y), return_inverse=True)[1].ravel()
        parts = [np.arange(len(y))] if within is None else [row_indices(rows) for rows in within]
        groups = None if groups is None else np.asarray(groups, dtype=object)
        fits = [rows[fit] for rows in parts  # a part too small for inner folds raises: the test refuses it anyway
                for fit in fit_rows(y[rows], seed, folds, repeats, groups_at(groups, rows))]
        membership = np.zeros((len(y), len(fits)), dtype=bool)  # (repertoire, fit): in that fit's rows
        most = np.full((len(y) + 1, len(fits)), len(y) + 1, dtype=np.int64)  # (carriers, fit); more: none
        for f, train in enumerate(fits):
            membership[train, f] = True
            most[:len(train) + 1, f] = self._most_positive(y[train], threshold * (1 + 1e-9))
        self._use(membership, y == 1, most)

    def _use(self, membership: np.ndarray, positive: np.ndarray, most: np.ndarray) -> None:
        """Keep the fits' rows (bool (repertoires, fits)), the positive repertoires and each fit's most positive
        carriers per carrier count (int (repertoires + 1, fits); past a fit's rows never read, set to one value so
        that a fit made twice is kept once)."""
        most = np.where(np.arange(len(most))[:, None] > membership.sum(axis=0), len(membership) + 1, most)
        _, first = np.unique(np.concatenate([membership, most]).T, axis=0, return_index=True)
        first = np.sort(first)
        self.membership, self.positive, self.most = membership[:, first], positive, most[:, first]
        weights = np.concatenate([self.membership, self.membership & positive[:, None]], axis=1)
        self._weights = torch.from_numpy(weights.astype(np.int8))  # carriers, then positive carriers, per fit
        self._most = torch.from_numpy(self.most.astype(np.int32).ravel())  # at carriers x fits + fit

    @classmethod
    def union(cls, placed: Sequence[tuple[np.ndarray, "FitCandidates"]], n: int) -> "FitCandidates":
        """Keeps a clone of `n` repertoires where one fit of one of the `placed` keeps it, each given with the rows
        (indices into the `n`) it was made on: one count of every fit instead of one per part."""
        union = cls.__new__(cls)
        membership = np.zeros((n, sum(c.membership.shape[1] for _, c in placed)), dtype=bool)
        positive = np.zeros(n, dtype=bool)
        most = np.full((n + 1, membership.shape[1]), n + 1, dtype=np.int64)
        start, placed_rows = 0, np.zeros(n, dtype=bool)
        for rows, candidates in placed:
            fits = slice(start, start + candidates.membership.shape[1])
            membership[rows, fits] = candidates.membership
            if (positive[rows] != candidates.positive)[placed_rows[rows]].any():
                raise ValueError("FitCandidates.union: parts that share repertoires disagree on their classes")
            positive[rows], placed_rows[rows] = candidates.positive, True
            most[:len(candidates.most), fits] = candidates.most
            start = fits.stop
        union._use(membership, positive, most)
        return union

    def fewest_kept(self) -> int:
        """The fewest positive carriers of a clone that some fit keeps (its p below the threshold with every
        carrier positive; more carriers, or negative ones, never make a smaller p)."""
        positives = np.arange(len(self.most))[:, None]
        keeps = positives > self.most  # (p, fit): p carriers, all positive, kept
        return int(np.where(keeps.any(axis=0), keeps.argmax(axis=0), len(self.most)).min())

    @staticmethod
    def _most_positive(y: np.ndarray, threshold: float) -> np.ndarray:
        """For each carrier count c (0..len(y)), the most positive carriers with p at or above `threshold`, int64."""
        n, k = len(y), int(y.sum())
        carriers, positive = np.meshgrid(np.arange(n + 1), np.arange(k + 1), indexing="ij")
        possible = (positive <= carriers) & (carriers - positive <= n - k)
        below = possible & (hypergeom.sf(positive - 1, n, k, carriers) < threshold)
        first = np.where(below.any(axis=1), below.argmax(axis=1), k + 1)  # p falls as the positives grow
        return first - 1

    def __call__(self, carried: sparse.csr_matrix) -> np.ndarray:
        """Which rows of bool CSR `carried` (clones, repertoires: who carries each) can be a candidate, bool.
        Every fit's carriers and positive carriers are counted by one exact int8 product per block of clones."""
        fits = self.membership.shape[1]
        keep = np.zeros(carried.shape[0], dtype=bool)
        index = torch.int32 if self._most.numel() < 2**31 else torch.int64  # int32 arithmetic is the faster
        columns = torch.arange(fits, dtype=index)
        for start in range(0, carried.shape[0], FIT_COUNT_ROWS):
            block = torch.from_numpy((carried[start:start + FIT_COUNT_ROWS].toarray() != 0).view(np.int8))
            counts = _int8_products(block, self._weights)
            most = self._most.take((counts[:, :fits].to(index) * fits + columns).long())
            keep[start:start + block.shape[0]] = (counts[:, fits:] > most).any(dim=1).numpy()
        return keep


#: Clones counted per product in :class:`FitCandidates` (at 300 fits, ~20 MB of counts).
FIT_COUNT_ROWS = 8192


def _int8_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a @ b` of int8 0/1 matrices as exact int32 counts: int8 products where this torch has them on the CPU,
    float32 otherwise (exact below 2**24)."""
    if _has_int8_products():
        return torch._int_mm(a, b)
    return (a.float() @ b.float()).int()


@lru_cache(maxsize=1)
def _has_int8_products() -> bool:
    """Whether `torch._int_mm` multiplies int8 matrices of any shape on the CPU with oneDNN's kernels (torch 2.3 and
    later; without oneDNN its loop is slower than float32's product)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        a = torch.ones((3, 5), dtype=torch.int8)
        return bool((torch._int_mm(a, a.T.contiguous()) == 5).all())
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def row_indices(rows: np.ndarray) -> np.ndarray:
    """Rows given as a bool mask or as indices, as int64 indices."""
    rows = np.asarray(rows)
    return np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)


def positive_rows(y: np.ndarray) -> np.ndarray | None:
    """Which repertoires of classes `y` the public-clone test counts as positive (the second class in sorted
    order), bool (n,); None where `y` does not hold two classes."""
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    return codes.ravel() == 1 if len(classes) == 2 else None


#: Carriers that :func:`column_counts` counts at a time (32 MB of int64 indices).
COUNT_BLOCK = 1 << 22
#: The largest key range that :func:`_distinct` maps with a table (5 bytes a key, 80 MB) rather than a sort; a
#: cohort's (positive carriers, carriers) pairs are fewer than its repertoires squared.
DISTINCT_TABLE_LIMIT = 1 << 24


def fisher_enrichment(clones: sparse.csr_matrix, y: np.ndarray) -> np.ndarray:
    """One-sided Fisher's exact p-value of each clone's enrichment in the positive repertoires.

    p = P(X >= a) for X hypergeometric (population: the repertoires; successes: the positives;
    draws: the clone's carriers) and a the positive carriers. Shape (n_clones,). Computed once per distinct
    (a, carriers) pair: a large cohort's millions of clones have a few thousand (7 s -> 0.2 s for 1.4 M).
    """
    y = np.asarray(y)
    return _fisher_p(*carrier_counts(sparse.csr_matrix(clones), y, np.arange(len(y))), len(y), int(y.sum()))


def column_counts(clones: sparse.csr_matrix, rows: np.ndarray | None = None, block: int = COUNT_BLOCK) -> np.ndarray:
    """Carriers of each column among the rows `rows` (a bool mask or indices; default all) of a CSR incidence (each
    stored entry a carrier: incidences hold no explicit zeros),
    int64 (n_columns,), counted about `block` carriers at a time: scipy's column sum holds an int64 copy of every
    carrier (5 GB for a rule of 640 M carriers, beside the incidence's 3.2 GB)."""
    counts = np.zeros(clones.shape[1], dtype=np.int64)
    rows = np.arange(clones.shape[0]) if rows is None else row_indices(rows)
    sizes = clones.indptr[rows + 1] - clones.indptr[rows]
    first = 0
    while first < len(rows):
        last = first + max(1, int(np.searchsorted(np.cumsum(sizes[first:]), block, side="right")))
        counts += np.bincount(np.concatenate([clones.indices[clones.indptr[r]:clones.indptr[r + 1]]
                                              for r in rows[first:last]]), minlength=clones.shape[1])
        first = last
    return counts


def _fisher_p(positive: np.ndarray, carriers: np.ndarray, n: int, positives: int) -> np.ndarray:
    """:func:`fisher_enrichment` of clones with these positive carriers and carriers (int64 each), among `n`
    repertoires of which `positives` are positive."""
    base = int(carriers.max(initial=0)) + 1  # a pair's key: positive * base + carriers, 0 <= carriers < base
    pairs, inverse = _distinct(positive * base + carriers, base * base)
    return hypergeom.sf(pairs // base - 1, n, positives, pairs % base)[inverse]


def _distinct(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` of non-negative int64 keys below `bound`: by a table of `bound`
    flags where that is small (a cohort's (positive, carriers) pairs: < 800^2), without sorting millions of keys."""
    if bound > DISTINCT_TABLE_LIMIT:
        pairs, inverse = np.unique(keys, return_inverse=True)
        return pairs, inverse.ravel()
    seen = np.zeros(bound, dtype=bool)
    seen[keys] = True
    rank = np.cumsum(seen, dtype=np.int32)  # bound <= 2^24 fits
    rank -= 1
    return np.flatnonzero(seen), rank[keys].astype(np.intp)


def carrier_counts(clones: sparse.csr_matrix, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's positive carriers and carriers among the repertoires `rows` (indices; `y` their
    classes), int64 (n_columns,) each, counted in place (:func:`column_counts`)."""
    return column_counts(clones, rows[y == 1]), column_counts(clones, rows)


def _associated(positive: np.ndarray, carriers: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fisher p-values, among repertoires of classes `y` whose carriers of each column are `positive` and
    `carriers` (:func:`carrier_counts`), of the clones one of their positives carries, and those clones' columns."""
    present = np.flatnonzero(positive > 0)
    return _fisher_p(positive[present], carriers[present], len(y), int(y.sum())), present


def inner_train_associated(totals: tuple[np.ndarray, np.ndarray], clones: sparse.csr_matrix, y: np.ndarray,
                           inner_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_associated` of an inner fold's training rows (all rows but `inner_test`, distinct row indices; `y`:
    the classes of all), their counts the whole's (`totals`: :func:`carrier_counts` of all rows) less its test
    rows': each inner fold counts a tenth of the carriers, not nine tenths (the same integers)."""
    positive, carriers = carrier_counts(clones, y[inner_test], inner_test)
    np.subtract(totals[0], positive, out=positive)
    np.subtract(totals[1], carriers, out=carriers)
    return _associated(positive, carriers, np.delete(y, inner_test))


#: Generation-probability cutoffs that :class:`PublicCloneTest` tries, besides none, when given a pgen.
PGEN_CUTOFFS = (1e-6, 1e-7, 1e-8)
#: The most candidate clones one fit asks pgen for. OLGA computes 50-100 TRB values a second on one core, and
#: a large cohort's loosest p threshold passes millions of chance clones (a fit of 314 half-size repertoires:
#: 225,736 at one rule, 23 min on 2 cores; 786 repertoires: up to 1.8 M), so the pgen cutoffs are tried at the
#: loosest threshold whose candidates fit within this many and at every tighter one; the looser ones without.
PGEN_LIMIT = 20_000


def _pgen_request(fits: Sequence[tuple[np.ndarray, np.ndarray]], thresholds: Sequence[float], limit: int | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The columns to ask pgen for, given each fit's (p-values, columns): those below the loosest of
    `thresholds` whose candidates over all fits number at most `limit` (None: no limit), sorted int64; the
    thresholds at which the pgen cutoffs can be tried (bool, per threshold); and each threshold's candidates
    (int64, per threshold)."""
    below = [unique_keys(np.concatenate([np.asarray(c, dtype=np.int64)[np.asarray(p) < t] for p, c in fits]))
             if fits else np.zeros(0, dtype=np.int64) for t in thresholds]
    counts = np.array([len(columns) for columns in below], dtype=np.int64)
    within = [t for t, n in zip(thresholds, counts) if limit is None or n <= limit]
    if not within:
        return np.zeros(0, dtype=np.int64), np.zeros(len(thresholds), dtype=bool), counts
    loosest = max(within)
    return below[list(thresholds).index(loosest)], np.array([t <= loosest for t in thresholds]), counts


def _candidate_pgen(pgen: Callable[[np.ndarray], np.ndarray], columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pgen of the candidate `columns` (distinct, sorted int64), asked of `pgen` once for all of them:
    (the columns; their pgen, float64, NaN where `pgen` gave none or a negative value)."""
    values = np.asarray(pgen(columns), dtype=np.float64).ravel() if len(columns) else np.zeros(0)
    if values.shape != columns.shape:
        raise ValueError(f"pgen gave {values.shape[0]} values for {len(columns)} columns")
    return columns, np.where(values >= 0, values, np.nan)


def _pgen_allowed(columns: np.ndarray, table: tuple[np.ndarray, np.ndarray], cutoff: float | None) -> np.ndarray:
    """Which of `columns` a pgen cutoff keeps (`table`: :func:`_candidate_pgen`), bool: those with pgen at
    most `cutoff`, and every one where the cutoff is None or the pgen unknown (NaN or not in the table)."""
    if cutoff is None or len(table[0]) == 0:
        return np.ones(len(columns), dtype=bool)
    at = np.minimum(np.searchsorted(table[0], columns), len(table[0]) - 1)
    value = np.where(table[0][at] == columns, table[1][at], np.nan)
    return ~(value > cutoff)


class PublicCloneTest(ClassifierMixin, BaseEstimator):
    """The public-clone test (Emerson et al. 2017) as a scikit-learn classifier of repertoires.

    `X` is a bool repertoire-by-clone incidence matrix (n_repertoires, n_clones), e.g. from
    :func:`clone_incidence`; `y` (n_repertoires,) two classes, the second (in sorted order) positive.

    **The pgen filter** (optional: ``fit(X, y, pgen=...)``). A clone can be public because
    recombination makes it often (a high generation probability, :mod:`deeprc_hopfield.pgen`); in
    a small cohort such chance-public clones reach a low Fisher p by chance and dilute the score.
    With `pgen`, the inner CV searches the pgen cutoffs (no filter, then each of :data:`PGEN_CUTOFFS`)
    jointly with the p thresholds: at a cutoff, a clone whose pgen is above it is not associated
    whatever its p. The best pair by inner ROC AUC wins; a tie goes to no filter (then to the
    looser cutoff, then to the first threshold). `pgen` is asked once, for the candidate columns
    only: those below the loosest p threshold in some inner fold or in the final fit (3 to 56 per
    fit in ``benchmarks/pgen_filter.py``), since OLGA's pgen costs 10-25 ms per TRB sequence. Where
    they are more than `pgen_limit` (:data:`PGEN_LIMIT`; a large cohort's chance clones), the cutoffs
    are tried only at the loosest threshold whose candidates fit within it and the tighter ones.
    Measured there (OLGA-simulated TRB, 20 disease clones each in 15% of positives, 3 cohorts x 5
    folds): with 5,000 sequences per repertoire no chance clone ever reaches p < 0.01, so the
    filter is never chosen and changes nothing (100 subjects: AUC 0.787 both; 150: 0.982 both); with
    100 x 100,000 the test alone keeps ~17 chance clones per fit, the filter ~3, and the held-out
    AUC goes from 0.738 to 0.858.

    Parameters
    ----------
    thresholds
        Fisher p-value thresholds tried by the inner cross-validation.
    inner_folds
        Inner folds (fewer where a class is smaller).
    inner_repeats
        Repeats of the inner CV, each with other folds; a pair's inner AUC is the mean of theirs.
    random_state
        Seed of the inner folds (repeat r: `random_state` + r).

    Fitted attributes
    -----------------
    associated_ : int64 (n_associated,), the columns of the associated clones (found on all of X);
    threshold_ : the chosen p threshold; pgen_cutoff_ : the chosen pgen cutoff (None: no filter, as
    always without `pgen`); inner_aucs_ : (n_thresholds,) inner-CV ROC AUC of each threshold at
    the chosen cutoff (NaN where that cutoff was not tried, see below); pgen_inner_aucs_ : (1 + n_cutoffs, n_thresholds) those of every pair (first
    row: no filter; one row without `pgen`), means over the repeats, NaN where a threshold's candidates
    exceeded `pgen_limit` (not tried); pgen_thresholds_ : bool (n_thresholds,), the thresholds at which
    the cutoffs were tried; pgen_candidates_ : int64 (n_thresholds,), the candidate clones below each
    threshold in some fit (zeros without `pgen`); inner_auc_ : that of the chosen
    pair; inner_scores_ : float64 (n_repertoires,), the out-of-fold shares of associated clones carried
    at that pair, averaged over the repeats; inner_associated_ : per inner fold of the first repeat, (its
    test rows, the columns associated without them at the chosen pair); out_of_fold_ :
    float64 (n_repertoires,), each training repertoire's number of associated clones at that pair,
    chosen without it (the first repeat's inner folds, those of `inner_associated_`); calibration_ : the
    logistic map from the share of associated
    clones carried to a probability (None where the inner scores are all equal; then base_rate_,
    the share of positives, is it); pgen_columns_, pgen_values_ : the candidate columns `pgen` was
    asked for and its answers (empty without `pgen`); pgen_removed_ : the clones below the chosen p
    threshold that the chosen cutoff left out (final fit); classes_. `associated`, `threshold`,
    `pgen_cutoff`, `inner_auc`, `out_of_fold` are the same without the `_`.
    """

    def __init__(self, thresholds: tuple[float, ...] = P_THRESHOLDS, inner_folds: int = CLONE_INNER_FOLDS,
                 random_state: int = 0, inner_repeats: int = CLONE_INNER_REPEATS) -> None:
        self.thresholds = thresholds
        self.inner_folds = inner_folds
        self.random_state = random_state
        self.inner_repeats = inner_repeats

    def fit(self, X: sparse.csr_matrix, y: np.ndarray,
            pgen: Callable[[np.ndarray], np.ndarray] | None = None,
            pgen_cutoffs: tuple[float, ...] = PGEN_CUTOFFS, pgen_limit: int | None = PGEN_LIMIT,
            groups: np.ndarray | None = None) -> "PublicCloneTest":
        """Choose the p threshold (and, with `pgen`, the pgen cutoff) by inner CV (ROC AUC of the
        associated-clone count), then find the associated clones on all of (X, y) and calibrate the
        score on the inner out-of-fold scores.

        `pgen`: None (no filter), or a function from column indices of X (int64 (k,)) to the
        generation probability of those clones (float64 (k,); NaN = unknown, never filtered),
        called once, for the candidate columns only. `pgen_cutoffs`: the cutoffs tried besides no
        filter (:data:`PGEN_CUTOFFS`; a fit argument, so that the estimator's parameters stay those
        of the test without pgen). `pgen_limit`: the most candidate columns `pgen` is asked for (None:
        every candidate). `groups`: the group of each repertoire (e.g. its donor), kept whole in the inner folds.
        """
        X = sparse.csr_matrix(X)
        self.classes_, y = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) != 2:
            raise DeepRCError(f"the public-clone test needs two classes, got {len(self.classes_)}")
        thresholds = tuple(self.thresholds)
        cutoffs = (None,) if pgen is None else (None, *sorted((float(c) for c in pgen_cutoffs), reverse=True))
        loosest = max(thresholds)
        inner = []  # per inner fold: its repeat, test rows, the candidates' p, columns, and the test rows' incidence
        totals = carrier_counts(X, y, np.arange(len(y)))
        splits_of = inner_splits(y, self.random_state, self.inner_folds, self.inner_repeats, groups)
        for repeat, splits in enumerate(splits_of):
            for _, inner_test in splits:
                p, columns = inner_train_associated(totals, X, y, inner_test)
                candidate = p < loosest
                inner.append((repeat, inner_test, p[candidate], columns[candidate],
                              X[inner_test][:, columns[candidate]]))
        p_final, columns_final = _associated(*totals, y)
        del totals
        candidate = p_final < loosest
        p_final, columns_final = p_final[candidate], columns_final[candidate]
        asked, self.pgen_thresholds_, self.pgen_candidates_ = (
            _pgen_request([fold[2:4] for fold in inner] + [(p_final, columns_final)], thresholds, pgen_limit)
            if pgen is not None else (np.zeros(0, dtype=np.int64), np.zeros(len(thresholds), dtype=bool),
                                      np.zeros(len(thresholds), dtype=np.int64)))
        table = _candidate_pgen(pgen, asked) if pgen is not None else (asked, np.zeros(0))
        tried = np.vstack([np.ones(len(thresholds), dtype=bool)] + [self.pgen_thresholds_] * (len(cutoffs) - 1))
        shape = (self.inner_repeats, len(cutoffs), len(thresholds), len(y))
        shares, counts = np.zeros(shape), np.zeros(shape)
        for repeat, inner_test, p, columns, carried in inner:
            for c, cutoff in enumerate(cutoffs):
                allowed = _pgen_allowed(columns, table, cutoff)
                for t in np.flatnonzero(tried[c]):
                    chosen = (p < thresholds[t]) & allowed
                    found = np.asarray(carried[:, chosen].sum(axis=1)).ravel()
                    counts[repeat, c, t, inner_test] = found
                    shares[repeat, c, t, inner_test] = found / max(int(chosen.sum()), 1)
        aucs = np.array([[[roc_auc_score(y, s) if np.ptp(s) > 0 else 0.5 for s in row]
                          for row in repeat] for repeat in shares]).mean(axis=0)
        self.pgen_inner_aucs_ = np.where(tried, aucs, np.nan)
        c, t = np.unravel_index(int(np.argmax(np.where(tried, aucs, -np.inf))), aucs.shape)  # ties: first
        self.threshold_, self.pgen_cutoff_ = thresholds[t], cutoffs[c]
        below = p_final < self.threshold_
        kept = _pgen_allowed(columns_final, table, self.pgen_cutoff_)
        self.associated_ = columns_final[below & kept]
        self.pgen_removed_ = int((below & ~kept).sum())
        self.pgen_columns_, self.pgen_values_ = table
        self.inner_aucs_ = self.pgen_inner_aucs_[c]
        self.inner_auc_ = float(self.pgen_inner_aucs_[c, t])
        self.out_of_fold_ = counts[0, c, t]
        self.inner_scores_ = shares[:, c, t].mean(axis=0)
        self.inner_associated_ = [
            (rows, columns[(p < self.threshold_) & _pgen_allowed(columns, table, self.pgen_cutoff_)])
            for repeat, rows, p, columns, _ in inner if repeat == 0]
        self.base_rate_ = float(y.mean())
        self.calibration_ = (LogisticRegression(C=1e4).fit(self.inner_scores_[:, None], y)
                             if np.ptp(self.inner_scores_) > 0 else None)
        self.n_features_in_ = X.shape[1]
        log.debug("public clones: inner AUC %s per threshold %s; %d associated clones at p < %g",
                  np.round(self.inner_aucs_, 3).tolist(), thresholds, len(self.associated_), self.threshold_)
        if pgen is not None and not self.pgen_thresholds_.all():
            log.info("public clones: pgen cutoffs tried at p < %s only: candidate clones per threshold %s, the "
                     "limit %s (clone_pgen_limit)", ", ".join(f"{t:g}" for t, ok in zip(thresholds,
                     self.pgen_thresholds_) if ok) or "none", ", ".join(f"{t:g}: {n:,}" for t, n in zip(
                     thresholds, self.pgen_candidates_.tolist())), f"{pgen_limit:,}")
        if pgen is not None:
            log.debug("public clones: pgen of %d candidate clones; inner AUC %s per pgen cutoff %s (rows) and "
                      "threshold; cutoff %s left out %d clones", len(table[0]),
                      np.round(self.pgen_inner_aucs_, 3).tolist(), cutoffs, self.pgen_cutoff_, self.pgen_removed_)
        return self

    def decision_function(self, X: sparse.csr_matrix) -> np.ndarray:
        """Number of associated clones each repertoire carries, float64 (n,)."""
        check_is_fitted(self)
        return np.asarray(sparse.csr_matrix(X)[:, self.associated_].sum(axis=1)).ravel().astype(np.float64)

    def predict_proba(self, X: sparse.csr_matrix) -> np.ndarray:
        """Probabilities of the two classes, (n, 2), from the share of associated clones carried."""
        check_is_fitted(self)
        if self.calibration_ is None:
            positive = np.full(X.shape[0], self.base_rate_)
        else:
            share = self.decision_function(X) / max(len(self.associated_), 1)
            positive = self.calibration_.predict_proba(share[:, None])[:, 1]
        return np.column_stack([1 - positive, positive])

    def predict(self, X: sparse.csr_matrix) -> np.ndarray:
        """The class of each repertoire: the positive one where its probability is 0.5 or more."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    @property
    def associated(self) -> np.ndarray:
        return self.associated_

    @property
    def threshold(self) -> float:
        return self.threshold_

    @property
    def pgen_cutoff(self) -> float | None:
        return self.pgen_cutoff_

    @property
    def inner_auc(self) -> float:
        return self.inner_auc_

    @property
    def out_of_fold(self) -> np.ndarray:
        return self.out_of_fold_


def fit_public_clones(incidence: sparse.csr_matrix, y: np.ndarray, seed: int = 0,
                      pgen: Callable[[np.ndarray], np.ndarray] | None = None,
                      groups: np.ndarray | None = None) -> PublicCloneTest:
    """:class:`PublicCloneTest` with the default thresholds, inner folds seeded by `seed`, fitted on
    (incidence, y); `pgen` (column indices -> generation probabilities, or None) and `groups` as in its `fit`."""
    return PublicCloneTest(random_state=seed).fit(incidence, y, pgen=pgen, groups=groups)
