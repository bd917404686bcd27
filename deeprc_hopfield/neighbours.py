"""Matching repertoire sequences against a set of known receptors, exactly or at one substitution.

The one matcher for a repertoire against a reference database of receptors (of known specificity,
say) and for clones one substitution apart (a public-clone radius of 1).

**A match** follows the project's clone rule (`deeprc_hopfield.public_clones`): two receptors are
compared on their CDR3 core (the junction less :data:`deeprc_hopfield.cdr3.ANCHOR` residues at each
end, :func:`deeprc_hopfield.cdr3.core_bounds`, the trim of `clone_keys`) and on their V code
(`public_clones.gene_code(name, "family")`, -1 = unknown). A pair matches when the cores are equal
(radius 0) or of equal length and at Hamming distance at most 1 (radius 1), and either V is unknown
or the two V codes are equal. The J gene is ignored. Family codes make a gene call and a family-only
call of the same family equal, as in the clone keys.

**How** (:class:`ReceptorIndex`): the reference is indexed once by 64-bit keys of its cores, sorted;
each chunk of query sequences (:data:`CHUNK` at a time, so memory stays flat whatever the size of a
repertoire) is keyed the same way and joined by `numpy.searchsorted`, behind a bitmap of the
table's top key bits that turns most absent keys away without a binary search. The key of a core
``x_0 .. x_{L-1}`` is linear, ``T[L] + sum_p x_p * R[p]`` modulo 2**64, so the key of the same core
with position ``p`` wildcarded is ``key - x_p * R[p] + S[p]``, one subtraction. Radius 1 joins
those substitution neighbourhoods: one key per (length, wildcarded position, core with that position
wildcarded), about 13 per sequence; two cores of equal length at distance 1 share exactly one of
them, the one at the position where they differ. Exact pairs are found by the exact keys alone (a
wildcard join is kept only where the residues at the wildcard differ), so each pair is reported
once, with its distance. Keys can collide (about 2**-60 per distinct pair), so every candidate pair
is checked on its actual residues before it is reported; the V rule is applied to the candidates.
No step loops over sequences in Python.
"""

from __future__ import annotations

import logging
import tempfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from scipy import sparse

from deeprc_hopfield.cdr3 import ANCHOR, core_bounds
from deeprc_hopfield.encoding import encode
from deeprc_hopfield.progress import LoggedProgress
from deeprc_hopfield.threads import ordered_map

#: Query sequences keyed and joined at a time (radius 1: ~50 bytes per core residue, ~40 MB for TRB).
CHUNK = 1 << 16
#: Wildcard keys sorted at a time by :func:`core_neighbours` (~32 bytes each while sorted, ~1 GB); more
#: keys make more parts, filed in a temporary folder in one pass (12 bytes a key on disk) and read back one by one.
KEYS_PER_PART = 1 << 25
#: The most parts of :func:`core_neighbours` paired at once by its threads (~1 GB each at :data:`KEYS_PER_PART`).
JOIN_THREADS = 4
#: Wanted cores whose neighbours :class:`CoreNeighbours` hands out at a time (more: their pairs wait in temporary
#: files, a group of this many cores each; ~26 pairs a core at half CMV size, ~13 bytes a pair while a group is read).
CORES_PER_GROUP = 1 << 21
#: Pairs of cores that :class:`CoreNeighbours` files or places into a matrix at a time (~40 bytes a pair meanwhile).
PAIRS_PLACED = 1 << 22
#: :func:`bool_csr` places a part by counting (linear in its values and the matrix's rows) where the matrix has at
#: most this many rows per value of the part, else by sorting it (they cross between 1 value per 8 and per 16 rows:
#: `python benchmarks/bool_csr.py --crossover`).
ROWS_PER_COUNTED_VALUE = 8
#: Pairs of cores compared residue by residue at a time (~30 bytes a residue, ~100 MB for TRB cores).
PAIRS_COMPARED = 1 << 18
#: Bits per key of the set of wanted cores' wildcard keys that :func:`core_neighbours` keeps the others' keys by, where
#: it files them in parts (~22% of the keys no wanted core has are kept too).
WANTED_BITS_PER_KEY = 4
RADII = (0, 1)

log = logging.getLogger(__name__)

_U64 = np.uint64
_SALT_LENGTH, _SALT_WILDCARD = 1 << 32, 1 << 33  # separate the three tables of one hash stream
_BITS_PER_KEY = 16  # of the bitmap in front of each sorted key table


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 of each uint64 of `x` (a fixed pseudo-random function, the same on every machine)."""
    z = x.astype(_U64) + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


@lru_cache(maxsize=8)
def _tables(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hash's tables for cores shorter than `size`, uint64 (size,) each: R (a residue's weight at
    each position), S (what a wildcard at each position adds), T (what each length adds). Entry p
    is the same whatever `size`, so keys do not depend on it."""
    p = np.arange(size, dtype=_U64)
    return _mix(p), _mix(p + _U64(_SALT_WILDCARD)), _mix(p + _U64(_SALT_LENGTH))


def _table_size(*core_lengths: np.ndarray) -> int:
    """A table size for cores of these lengths, a power of two so that few sizes are cached."""
    longest = max(int(lengths.max(initial=0)) for lengths in core_lengths)
    return max(64, 1 << longest.bit_length())


class _Cores:
    """The cores of some sequences of flat residue codes, read in place (the codes are not copied).

    codes: uint8 (n_residues,) the sequences' codes; start, length: int64 (n,) where each core lies
    in `codes` and its length; for each core residue (n_core_residues,): row (int64, its sequence),
    position (int64, in its core) and residue (its code).
    """

    def __init__(self, codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, trim: int) -> None:
        offset, self.length = core_bounds(lengths, trim)
        self.codes, self.start = codes, starts + offset
        self.row = np.repeat(np.arange(len(self.length), dtype=np.int64), self.length)
        self._first = np.cumsum(self.length) - self.length  # (n,) where each core begins in the flat arrays
        self.position = np.arange(len(self.row), dtype=np.int64)
        self.position -= self._first[self.row]
        where = self.start[self.row]
        where += self.position
        self.residue = codes[where]

    def keys(self, size: int) -> np.ndarray:
        """The exact key of each core, uint64 (n,): T[length] + sum_p residue_p * R[p] mod 2**64."""
        weight, _, length = _tables(size)
        terms = weight[self.position]
        terms *= self.residue
        running = np.concatenate(([_U64(0)], np.cumsum(terms, dtype=_U64)))
        return running[self._first + self.length] - running[self._first] + length[self.length]

    def wildcard_keys(self, exact: np.ndarray, size: int) -> np.ndarray:
        """The key of each core with one position wildcarded, for every position of every core,
        uint64 (n_core_residues,) in the order of `row`/`position`."""
        weight, wildcard, _ = _tables(size)
        keys, terms = exact[self.row], weight[self.position]  # in place below: 4M residues are 32 MB each
        terms *= self.residue
        keys -= terms
        keys += np.take(wildcard, self.position, out=terms)
        return keys


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each sequence of flat codes begins, int64 (n,)."""
    return np.cumsum(lengths, dtype=np.int64) - lengths


class _SortedKeys:
    """A sorted table of uint64 keys with a bitmap of their top bits, so that most keys that are not
    in the table are turned away by one memory access instead of a binary search.

    keys: uint64 (n,) sorted; the bitmap has about :data:`_BITS_PER_KEY` bits per key (a power of
    two), so it turns away about 15 of 16 absent keys.
    """

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        self._shift = _U64(64 - max(10, int(max(len(keys), 1) * _BITS_PER_KEY - 1).bit_length()))
        self._bits = np.zeros(1 << (64 - int(self._shift) - 3), dtype=np.uint8)  # bit s: slot s taken
        slots = (keys >> self._shift).view(np.int64)  # sorted, as the keys are
        first = np.ones(len(slots), dtype=bool)
        first[1:] = slots[1:] != slots[:-1]
        slots = slots[first]
        byte = slots >> 3
        starts = np.flatnonzero(np.diff(byte, prepend=-1))  # the slots of each byte are adjacent
        if len(slots):
            self._bits[byte[starts]] = np.bitwise_or.reduceat((1 << (slots & 7)).astype(np.uint8), starts)

    def join(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (i, j) with ``keys[i] == self.keys[j]``: int64 arrays (n_pairs,) each."""
        table = self.keys
        if len(table) == 0 or len(keys) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        slots = (keys >> self._shift).astype(np.int64)
        maybe = np.flatnonzero((self._bits[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1)
        needles = keys[maybe]
        order = np.argsort(needles)  # sorted needles: neighbouring searches touch the same cache lines
        maybe, needles = maybe[order], needles[order]
        low = np.searchsorted(table, needles, "left")
        hit = table[np.minimum(low, len(table) - 1)] == needles
        maybe, needles, low = maybe[hit], needles[hit], low[hit]
        count = np.searchsorted(table, needles, "right") - low
        i = np.repeat(maybe, count)
        within = np.arange(len(i), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        return i, np.repeat(low, count) + within


def wildcard_keys(codes: np.ndarray, lengths: np.ndarray, trim: int = ANCHOR) -> tuple[np.ndarray, np.ndarray]:
    """The substitution-neighbourhood keys of sequences' cores, as :class:`ReceptorIndex` joins them at
    radius 1: one per core position, the core with that position wildcarded. Two cores of equal length
    at Hamming distance 0 or 1 share at least one key (cores of other lengths never do).

    Parameters
    ----------
    codes, lengths
        uint8 (n_residues,) residue codes of the junctions concatenated, and (n,) their lengths.

    Returns
    -------
    row, keys
        int64 (n_core_residues,) the sequence of each key, and int64 (n_core_residues,) the keys (the
        uint64 hash viewed as int64).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    cores = _Cores(np.ascontiguousarray(codes, dtype=np.uint8), _starts(lengths), lengths, trim)
    size = _table_size(cores.length)
    return cores.row, cores.wildcard_keys(cores.keys(size), size).view(np.int64)


def _mismatches(query: _Cores, q: np.ndarray, ref: _Cores, r: np.ndarray) -> np.ndarray:
    """Positions at which core q[k] of `query` and core r[k] of `ref` differ, int64 (n_pairs,);
    the cores of each pair must be of equal length."""
    return _differences(query.codes, query.start[q], ref.codes, ref.start[r], query.length[q])


def _differences(codes_a: np.ndarray, starts_a: np.ndarray, codes_b: np.ndarray, starts_b: np.ndarray,
                 length: np.ndarray, block: int | None = None) -> np.ndarray:
    """Positions at which codes_a[starts_a[k]:][:length[k]] and codes_b[starts_b[k]:][:length[k]] differ, int64,
    compared `block` pairs at a time (None: :data:`PAIRS_COMPARED`; ~30 bytes a residue of a pair are held)."""
    block = block or PAIRS_COMPARED
    out = np.empty(len(length), dtype=np.int64)
    for first in range(0, len(length), block):
        part = slice(first, first + block)
        size = length[part].astype(np.int64)
        step = np.repeat(np.cumsum(size) - size, size)
        within = np.arange(int(size.sum()), dtype=np.int64) - step
        differ = codes_a[np.repeat(starts_a[part], size) + within] != codes_b[np.repeat(starts_b[part], size) + within]
        counts = np.concatenate(([0], np.cumsum(differ, dtype=np.int64)))
        ends = np.cumsum(size)
        out[part] = counts[ends] - counts[ends - size]
    return out


def core_neighbours(codes: np.ndarray, lengths: np.ndarray, rows: np.ndarray | None = None,
                    keys_per_part: int | None = None, trim: int = ANCHOR,
                    cores_per_group: int | None = None, workers: int = 1) -> "CoreNeighbours":
    """Which cores of n sequences with distinct cores (a cohort's distinct cores, say) are one substitution
    apart (same length, the V calls ignored), for the sequences `rows` (int64; None: all): for each of `rows`,
    itself and every neighbour, as :class:`CoreNeighbours` (groups of `cores_per_group` of `rows`, None:
    :data:`CORES_PER_GROUP`, read one at a time).

    A self-join of the sequences' wildcard keys (:func:`wildcard_keys`; two cores one substitution apart share
    the key of the position where they differ), in parts by key hash (:func:`key_part`) of ~`keys_per_part` keys
    (None: :data:`KEYS_PER_PART`; several parts are filed in a temporary folder, :func:`_wildcard_parts`), each
    sorted, its pairs checked on their residues a block at a time (a key collision is not a neighbour), so memory
    follows one part and one group's pairs, not the n sequences' keys or every pair at once. `lengths` (< 256
    each) may be uint8, as kept: per sequence the join holds ~9 bytes beyond its codes. `workers` threads (at
    most :data:`JOIN_THREADS`) pair as many parts at once, one part's memory each (numpy's sorts release the GIL);
    the pairs are the same.
    """
    lengths = np.asarray(lengths)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n = len(lengths)
    wanted = np.full(n, rows is None)
    if rows is not None:
        wanted[rows] = True
    starts, core_length = _narrow_cores(lengths, trim)
    parts = max(1, -(-int(core_length.sum(dtype=np.int64)) // max(int(keys_per_part or KEYS_PER_PART), 1)))
    own = np.flatnonzero(wanted).astype(np.int32)
    found = CoreNeighbours(n, own, cores_per_group)
    found.add(own, own)  # each wanted core is its own neighbour
    keyed = LoggedProgress(log, "one-substitution join: keying cores (two passes)", 2 * n if parts > 1 else None,
                           unit="cores", last_line=False)
    joined = LoggedProgress(log, "one-substitution join: joining", parts, unit="parts", last_line=False)
    def paired(part: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The pairs (wanted core, core one substitution away) of one part's [wildcard keys, rows], a list emptied
        here so that the unsorted arrays go once sorted (a task's arguments live until it ends)."""
        key, row = part
        part.clear()
        order = np.argsort(key)
        key, row = key[order], row[order]
        del order
        found_a, found_b = [np.zeros(0, dtype=np.int32)], [np.zeros(0, dtype=np.int32)]
        for i, j in _run_pairs(key):
            a, b = row[i], row[j]
            keep = wanted[a] & (core_length[a] == core_length[b])
            a, b = a[keep], b[keep]
            near = _differences(codes, starts[a], codes, starts[b], core_length[a]) == 1
            found_a.append(a[near])
            found_b.append(b[near])
        return np.concatenate(found_a), np.concatenate(found_b)

    workers = max(1, min(int(workers), JOIN_THREADS))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for key, row in _wildcard_parts(codes, lengths, wanted, parts, trim, keyed, workers):
            pending.append(pool.submit(paired, [key, row]))
            del key, row  # held by its task only, which lets go of them once sorted
            while len(pending) >= workers or (pending and pending[0].done()):
                found.add(*pending.popleft().result())
                joined.update()
        while pending:
            found.add(*pending.popleft().result())
            joined.update()
    return found


class KeyBits:
    """A set of int64 hash keys (`add`) that answers `holds` with yes for every key added and for a few
    others (about 1 - exp(-keys / bits)), in `bits_per_key` bits per `expected` key (a power of two)."""

    def __init__(self, expected: int, bits_per_key: int = 4) -> None:
        self._shift = np.uint64(64 - max(10, int(max(expected, 1) * bits_per_key - 1).bit_length()))
        self._bits = np.zeros(1 << (64 - int(self._shift) - 3), dtype=np.uint8)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        """The bit of each key: its top bits."""
        return (np.asarray(keys, dtype=np.int64).view(np.uint64) >> self._shift).astype(np.int64)

    def add(self, keys: np.ndarray, chunk: int = 1 << 22) -> None:
        """Add int64 `keys`, `chunk` at a time."""
        for first in range(0, len(keys), chunk):
            slots = self._slots(keys[first:first + chunk])
            np.bitwise_or.at(self._bits, slots >> 3, (1 << (slots & 7)).astype(np.uint8))

    def holds(self, keys: np.ndarray) -> np.ndarray:
        """bool (n,): False only for keys never added."""
        slots = self._slots(keys)
        return ((self._bits[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1).astype(bool)


class SlotRanks:
    """Which of `n` slots are taken (`take`, one bit a slot) and, once counted (:meth:`count`), how many taken slots
    come before a slot (:meth:`rank`, the place of a taken one among them): numbers for a sparse set of slots in ~1.5
    bits a slot, looked up in O(1), where a sorted array of the taken slots takes 64 bits each and a binary search."""

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self._words = np.zeros(self.n // 64 + 1, dtype=np.uint64)  # one more, so that slot n has a word
        self._before: np.ndarray | None = None

    def take(self, slots: np.ndarray) -> None:
        """Mark int64 `slots` (< n) taken."""
        slots = np.asarray(slots, dtype=np.int64)
        np.bitwise_or.at(self._words, slots >> 6, np.left_shift(np.uint64(1), (slots & 63).astype(np.uint64)))

    def count(self) -> int:
        """Fix the taken slots; how many there are."""
        counts = popcount(self._words)
        dtype = np.int32 if counts.sum() < (1 << 31) else np.int64
        self._before = np.zeros(len(self._words), dtype=dtype)
        np.cumsum(counts[:-1], out=self._before[1:])
        return int(self._before[-1]) + int(counts[-1])

    def rank(self, slots: np.ndarray) -> np.ndarray:
        """How many taken slots come before each of int64 `slots` (<= n), int64."""
        slots = np.asarray(slots, dtype=np.int64)
        word = slots >> 6
        below = self._words[word] & (np.left_shift(np.uint64(1), (slots & 63).astype(np.uint64)) - np.uint64(1))
        return self._before[word] + popcount(below)

    def taken(self, chunk: int = 1 << 20):  # noqa: ANN201 (a generator of int64 arrays)
        """The taken slots in order, `chunk` words' worth at a time."""
        for first in range(0, len(self._words), chunk):
            bits = np.unpackbits(self._words[first:first + chunk].view(np.uint8), bitorder="little")
            yield np.flatnonzero(bits) + 64 * first


_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)


def popcount(words: np.ndarray) -> np.ndarray:
    """The set bits of each uint64 word, int64 (numpy's `bitwise_count`; a byte table where numpy < 2 has none)."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).astype(np.int64)
    return _BYTE_BITS[words.view(np.uint8)].reshape(-1, 8).sum(axis=1, dtype=np.int64)


def _narrow_cores(lengths: np.ndarray, trim: int, chunk: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Where each core of sequences of flat codes (`lengths`, < 256 each) begins, int64, and its length, uint8:
    :func:`core_bounds` in 9 bytes a sequence, worked out `chunk` sequences at a time (a cohort's distinct cores
    number ~10^8, where four int64 arrays take 3 GB)."""
    starts = np.cumsum(lengths, dtype=np.int64)
    starts -= lengths
    core_length = np.empty(len(lengths), dtype=np.uint8)
    for first in range(0, len(lengths), chunk):
        part = slice(first, first + chunk)
        offset, core_length[part] = core_bounds(lengths[part], trim)
        starts[part] += offset
    return starts, core_length


class CoreNeighbours:
    """Pairs of cores (numbered 0..n-1) found by :func:`core_neighbours`, by groups of its wanted rows: group g
    holds rows ``bounds[g]`` up to the next bound. Where there are several groups, each group's pairs wait in a
    file of a temporary folder until :meth:`group` reads them, so that memory holds one group's pairs (~13
    bytes a pair while read), not every pair (8 bytes a pair on disk; the folder goes with this object). The first
    read files the group's matrix in place of its pairs (4 bytes a pair), which later reads (the next V level's
    rule) load as it is."""

    def __init__(self, n: int, rows: np.ndarray, cores_per_group: int | None = None) -> None:
        self.n = n
        per = max(int(cores_per_group or CORES_PER_GROUP), 1)
        self.bounds = np.asarray(rows, dtype=np.int64)[::per] if len(rows) else np.zeros(1, dtype=np.int64)
        self._held: tuple[list, list] = ([], [])  # one group: its pairs in memory, until made a matrix once
        self._matrix: sparse.csr_matrix | None = None
        self._saved: dict[int, np.dtype] = {}  # groups read once: their matrix's row pointers' type, in files
        self._folder = tempfile.TemporaryDirectory(prefix="deeprc-neighbours-") if len(self.bounds) > 1 else None
        self.pairs = 0  # added, a pair found twice (by a key collision) counted twice

    def __len__(self) -> int:
        """The groups."""
        return len(self.bounds)

    def group_of(self, rows: np.ndarray) -> np.ndarray:
        """The group of each of `rows` (wanted rows), int64."""
        return np.searchsorted(self.bounds, rows, side="right") - 1

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """Pairs (a[i], b[i]), int32 each, a[i] a wanted row."""
        self.pairs += len(a)
        if self._folder is None:
            self._held[0].append(a.astype(np.int32))
            self._held[1].append(b.astype(np.int32))
            return
        for start in range(0, len(a), PAIRS_PLACED):
            part = slice(start, start + PAIRS_PLACED)
            rows, columns = a[part].astype(np.int32), b[part].astype(np.int32)
            _append_by_group(self.group_of(rows), (rows, columns),
                             lambda group: (self._path(group, "a"), self._path(group, "b")))

    def _path(self, group: int, name: str) -> Path:
        return Path(self._folder.name) / f"{group}.{name}"

    def group(self, g: int) -> tuple[int, sparse.csr_matrix]:
        """Group `g`'s first row and the pairs of its rows: bool CSR (rows of the group, n) whose row r holds the
        neighbours of core ``first + r``, with sorted indices (each pair once)."""
        first = int(self.bounds[g])
        stop = int(self.bounds[g + 1]) if g + 1 < len(self.bounds) else self.n
        if self._matrix is not None:
            return first, self._matrix
        if g in self._saved:  # made once, read back since
            indptr, indices = (np.fromfile(self._path(g, name), dtype=dtype)
                               for name, dtype in (("indptr", self._saved[g]), ("indices", np.int32)))
            return first, sparse.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr),
                                            shape=(stop - first, self.n))
        counts = np.zeros(stop - first, dtype=np.int64)
        for rows, _ in self._pairs_of(g):
            counts += np.bincount(rows - first, minlength=stop - first)
        matrix = bool_csr(((rows - first, columns) for rows, columns in self._pairs_of(g, release=True)), counts,
                          self.n)
        matrix.sum_duplicates()  # a pair found twice (a key collision besides its own key) counts once
        if self._folder is None:
            self._matrix = matrix
        else:  # the next reader (the next V level) reads the matrix, not the pairs again
            for name in ("a", "b"):
                self._path(g, name).unlink(missing_ok=True)
            matrix.indptr.tofile(self._path(g, "indptr"))
            matrix.indices.astype(np.int32, copy=False).tofile(self._path(g, "indices"))
            self._saved[g] = matrix.indptr.dtype
        return first, matrix

    def _pairs_of(self, g: int, release: bool = False):  # noqa: ANN202 (yields (rows, columns), int32 each)
        """Group `g`'s pairs, :data:`PAIRS_PLACED` at a time, read from its files or from memory (`release`: letting
        go of those held in memory as they are handed out)."""
        if self._folder is None:
            rows, columns = self._held
            if release:
                self._held = ([], [])
            for a, b in (_popped_pairs(rows, columns) if release else zip(rows, columns)):
                for start in range(0, len(a), PAIRS_PLACED):
                    yield a[start:start + PAIRS_PLACED], b[start:start + PAIRS_PLACED]
            return
        paths = self._path(g, "a"), self._path(g, "b")
        pairs = paths[0].stat().st_size // 4 if paths[0].exists() else 0
        for start in range(0, pairs, PAIRS_PLACED):
            yield tuple(np.fromfile(path, dtype=np.int32, count=PAIRS_PLACED, offset=4 * start) for path in paths)

    def matrix(self) -> sparse.csr_matrix:
        """Every group's pairs as one bool CSR (n, n), sorted indices (the rows of no group empty): small cohorts."""
        groups = [self.group(g) for g in range(len(self))]
        before = sparse.csr_matrix((int(self.bounds[0]), self.n), dtype=bool)
        return sparse.vstack([before] + [matrix for _, matrix in groups], format="csr")


def _popped_pairs(a: list[np.ndarray], b: list[np.ndarray]):
    """The pairs of parts (a[k], b[k]), last first, each removed from the lists as it is handed out."""
    while a:
        yield a.pop(), b.pop()


def bool_csr(parts: Iterable[tuple[np.ndarray, np.ndarray]], row_counts: np.ndarray, n_columns: int
             ) -> sparse.csr_matrix:
    """The bool CSR matrix (len(row_counts), n_columns) True at each (rows[i], columns[i]) of each part (rows, columns)
    of `parts`, read one at a time (`row_counts`: how many values each row gets in all parts); each row's values are
    in the order the parts give them. ~5 bytes a value beyond the part at hand, where a COO matrix takes 16; row
    pointers int32 where the values fit (as scipy would make them, without its copy)."""
    total = int(np.sum(row_counts, dtype=np.int64))
    indptr = np.zeros(len(row_counts) + 1, dtype=np.int32 if total < (1 << 31) else np.int64)
    np.cumsum(row_counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    cursor = indptr[:-1].copy()
    for row, column in parts:
        if len(row) * ROWS_PER_COUNTED_VALUE >= len(row_counts):
            _place_by_counting(row, column, cursor, indices)
            continue
        order = np.argsort(row, kind="stable")
        row, column = row[order], column[order]
        first = np.flatnonzero(np.diff(row, prepend=-1))
        size = np.diff(np.append(first, len(row)))
        indices[cursor[row] + np.arange(len(row)) - np.repeat(first, size)] = column
        cursor[row[first]] += size
    return sparse.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(len(row_counts), n_columns))


def _place_by_counting(row: np.ndarray, column: np.ndarray, cursor: np.ndarray, indices: np.ndarray) -> None:
    """One part of :func:`bool_csr` placed with a counting sort by row (scipy's CSC-to-CSR conversion, linear and
    stable: a row's values keep the part's order), where a part is large beside the rows (else a sort is faster)."""
    by_row = sparse.csc_matrix((column, row, np.arange(len(row) + 1)), shape=(len(cursor), len(row))).tocsr()
    counts = np.diff(by_row.indptr)
    indices[np.repeat(cursor - by_row.indptr[:-1], counts) + np.arange(len(row))] = by_row.data
    cursor += counts


def key_part(keys: np.ndarray, parts: int) -> np.ndarray:
    """Which of `parts` parts each int64 hash key falls in, by its top bits (uniform where the low bits of a
    linear hash are not), int64 (n,). Parts are ranges in int64 order, so the sorted keys of each part, part after
    part, are all of them sorted."""
    top = (np.asarray(keys, dtype=np.int64).view(_U64) ^ _U64(1 << 63)) >> _U64(32)  # < 2**32, in int64 order
    return ((top * _U64(parts)) >> _U64(32)).astype(np.int64)


def chunked_wildcard_keys(codes: np.ndarray, lengths: np.ndarray, trim: int = ANCHOR, chunk: int = CHUNK,
                          progress: LoggedProgress | None = None, workers: int = 1,
                          then: Callable[[np.ndarray, np.ndarray], object] | None = None):
    """:func:`wildcard_keys` of sequences (flat `codes`, sliced a chunk at a time, so an HDF5 dataset is read that
    way too; `lengths`), `chunk` sequences at a time: yields (row of each key among the sequences, keys), int64 each,
    or what `then(row, keys)` makes of them, chunk by chunk in order (`workers` threads key the chunks, and apply
    `then`, ahead of the caller: `threads.ordered_map`). `progress` (if any) counts the sequences keyed."""
    lengths = np.asarray(lengths)  # as given (uint8 from a store): no int64 copy of every length

    def spans() -> Iterator[tuple[int, np.ndarray, int, int]]:
        """Each chunk's first sequence, its lengths, and where its codes begin and end."""
        first = 0
        for start in range(0, len(lengths), chunk):
            part = lengths[start:start + chunk].astype(np.int64)
            last = first + int(part.sum())
            yield start, part, first, last
            first = last

    def keyed(span: tuple[int, np.ndarray, int, int]) -> tuple[object, int]:
        """A chunk's keys (or what `then` makes of them), and how many sequences it holds."""
        start, part, first, last = span
        row, keys = wildcard_keys(codes[first:last], part, trim)
        return (row + start, keys) if then is None else then(row + start, keys), len(part)

    for result, n in ordered_map(keyed, spans(), workers):
        yield result
        if progress is not None:
            progress.update(n)


def _all_wildcards(codes: np.ndarray, lengths: np.ndarray, trim: int) -> tuple[np.ndarray, np.ndarray]:
    """The wildcard keys of sequences (flat `codes`, `lengths`), with the row of each: (int64 keys, int32 rows)."""
    keys, rows = [], []
    for row, key in chunked_wildcard_keys(codes, lengths, trim):
        keys.append(key)
        rows.append(row.astype(np.int32))
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    return np.concatenate(keys), np.concatenate(rows)


def _wildcard_parts(codes: np.ndarray, lengths: np.ndarray, wanted: np.ndarray, parts: int, trim: int,
                    keyed: LoggedProgress | None = None, workers: int = 1):
    """The wildcard keys of sequences (flat `codes`, `lengths`) part by part (:func:`key_part`): yields (int64 keys,
    int32 rows) of each of `parts`. One part is made in memory. Several are made in one pass that files each
    part's keys in a temporary folder (12 bytes a key on disk, read back a part at a time), keeping only the keys
    that a `wanted` sequence (bool mask) may have (:class:`KeyBits` of theirs, one pass more): a pair needs one
    wanted core, whose key it shares, so none is lost, where each part would otherwise key every sequence again.
    `keyed` (if any) counts the sequences keyed, over both passes; `workers` threads key them."""
    if parts == 1:
        yield _all_wildcards(codes, lengths, trim)
        return
    theirs = KeyBits(int(wanted.sum()) * 16, WANTED_BITS_PER_KEY)  # ~16 core residues a sequence at most
    for keys in chunked_wildcard_keys(codes, lengths, trim, progress=keyed, workers=workers,
                                      then=lambda row, keys: keys[wanted[row]]):
        theirs.add(keys)

    def kept(row: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keys (and int32 rows) that a wanted sequence may share: its own, and those `theirs` may hold."""
        keep = wanted[row] | theirs.holds(keys)  # `theirs` is only read from here
        return keys[keep], row[keep].astype(np.int32)

    with tempfile.TemporaryDirectory(prefix="deeprc-wildcards-") as folder:
        paths = [(Path(folder) / f"{part}.keys", Path(folder) / f"{part}.rows") for part in range(parts)]
        held: list[tuple[np.ndarray, np.ndarray]] = []
        for keys_and_rows in chunked_wildcard_keys(codes, lengths, trim, progress=keyed, workers=workers, then=kept):
            held.append(keys_and_rows)
            if sum(len(k) for k, _ in held) >= PAIRS_PLACED:
                _file_by_part(held, paths, parts)
        _file_by_part(held, paths, parts)
        del theirs
        for keys_path, rows_path in paths:
            if not keys_path.exists():  # no key of this part
                yield np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
                continue
            yield np.fromfile(keys_path, dtype=np.int64), np.fromfile(rows_path, dtype=np.int32)
            keys_path.unlink()
            rows_path.unlink()


def _file_by_part(held: list[tuple[np.ndarray, np.ndarray]], paths: list[tuple[Path, Path]], parts: int) -> None:
    """Append the (keys, rows) of `held` to the files of their parts (`paths`: one (keys, rows) pair a part), and
    empty it."""
    if not held:
        return
    keys, rows = np.concatenate([k for k, _ in held]), np.concatenate([r for _, r in held])
    held.clear()
    _append_by_group(key_part(keys, parts), (keys, rows), paths.__getitem__)


def _append_by_group(group: np.ndarray, arrays: tuple[np.ndarray, ...], paths_of) -> None:  # noqa: ANN001
    """Append each of `arrays`' values, grouped by `group` (int64, one per value), to the raw files of its group:
    `paths_of(group)` gives one path per array (temporary files that wait to be read back a group at a time)."""
    order = np.argsort(group, kind="stable")
    group = group[order]
    arrays = tuple(values[order] for values in arrays)
    edges = np.flatnonzero(np.diff(group, prepend=-1, append=group[-1] + 1 if len(group) else 0))
    for first, last in zip(edges[:-1], edges[1:]):
        for path, values in zip(paths_of(int(group[first])), arrays):
            with open(path, "ab") as out:
                out.write(values[first:last].tobytes())


def _run_pairs(keys: np.ndarray, block: int | None = None):
    """Every ordered pair (i, j), i != j, of positions of sorted `keys` that hold the same key, `block` runs (None:
    :data:`PAIRS_COMPARED`) at a time: yields int64 arrays (i, j). Runs are taken by size, so each size's pairs
    are one broadcast; a run of equal wildcard keys holds at most 20 distinct cores (one per residue at the
    wildcard)."""
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    first = np.flatnonzero(new)
    size = np.diff(np.append(first, len(keys)))
    block = block or PAIRS_COMPARED
    for run_size in np.unique(size[size > 1]):
        i, j = np.nonzero(~np.eye(run_size, dtype=bool))  # every ordered pair of one run
        starts = first[size == run_size]
        for at in range(0, len(starts), block):
            chunk = starts[at:at + block, None]
            yield (chunk + i).ravel(), (chunk + j).ravel()


def _check_radius(radius: int) -> int:
    if isinstance(radius, bool) or radius not in RADII:
        raise ValueError(f"radius must be 0 or 1 (substitutions allowed in the CDR3 core), got {radius!r}")
    return int(radius)


def _check_v(v: np.ndarray | None, n: int, what: str) -> np.ndarray:
    if v is None:
        return np.full(n, -1, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    if v.shape != (n,):
        raise ValueError(f"{what}: {n} sequences but V codes of shape {v.shape}")
    return v


class ReceptorIndex:
    """Known receptors (a reference database, or a repertoire's clones), indexed to match sequences
    against them by CDR3 core and V family (see the module docstring).

    Parameters
    ----------
    codes
        Residue codes 1..20 of the reference junctions concatenated, uint8 (n_residues,) (the store's
        format, :func:`deeprc_hopfield.encoding.encode`).
    lengths
        Junction lengths, (n_ref,).
    v
        V family codes, int64 (n_ref,) (`public_clones.name_codes` of the V calls), -1 = unknown;
        None: unknown for all.
    radius
        0: cores equal; 1: cores of equal length at Hamming distance 0 or 1. Nothing else.
    trim
        Residues left out at each end of a junction (the anchors; 0 compares whole sequences).

    Attributes
    ----------
    n_ref (also ``len(index)``), radius, trim, v: int64 (n_ref,).
    """

    def __init__(self, codes: np.ndarray, lengths: np.ndarray, v: np.ndarray | None = None, radius: int = 0,
                 trim: int = ANCHOR) -> None:
        self.radius = _check_radius(radius)
        self.trim = trim
        lengths = np.asarray(lengths, dtype=np.int64)
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.n_ref = len(lengths)
        self.v = _check_v(v, self.n_ref, "reference")
        self._cores = _Cores(codes, _starts(lengths), lengths, trim)
        size = _table_size(self._cores.length)
        exact = self._cores.keys(size)
        order = np.argsort(exact)
        self._exact, self._exact_ref = _SortedKeys(exact[order]), order
        if self.radius == 1:
            wildcard = self._cores.wildcard_keys(exact, size)
            order = np.argsort(wildcard)
            wildcard = wildcard[order]
            self._wildcard_ref = self._cores.row[order].astype(np.int32 if self.n_ref < 2**31 else np.int64)
            self._wildcard_position = self._cores.position[order].astype(np.int32)
            del order
        del self._cores.row, self._cores.position, self._cores.residue  # not needed again
        if self.radius == 1:
            self._wildcard = _SortedKeys(wildcard)

    @classmethod
    def from_sequences(cls, junctions: list[str], v: np.ndarray | None = None, radius: int = 0,
                       trim: int = ANCHOR) -> "ReceptorIndex":
        """The index of junction strings (upper-case, the 20 standard amino acids) with V codes `v`."""
        codes, lengths = encode(junctions)
        return cls(codes, lengths, v, radius, trim)

    @classmethod
    def from_repertoire(cls, repertoire, v_genes: list[str], radius: int = 0) -> "ReceptorIndex":
        """The index of a store `Repertoire` whose V indices point into the store's gene table `v_genes`."""
        from deeprc_hopfield.public_clones import v_codes  # imports torch: only when asked

        return cls(repertoire.codes, repertoire.lengths, v_codes(repertoire, v_genes), radius)

    def __len__(self) -> int:
        return self.n_ref

    def __repr__(self) -> str:
        return f"ReceptorIndex({self.n_ref:,} receptors, radius={self.radius}, trim={self.trim})"

    # --- matching ------------------------------------------------------------------------------
    def _chunks(self, codes: np.ndarray, lengths: np.ndarray, v: np.ndarray | None, chunk: int):
        """For each chunk of queries: (first query, number, query idx, ref idx, distance), the pairs
        sorted by (query, distance, ref). Nothing of the size of the whole query is allocated."""
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        codes, lengths = np.asarray(codes), np.asarray(lengths)
        n = len(lengths)
        if v is not None and np.shape(v) != (n,):
            raise ValueError(f"query: {n} sequences but V codes of shape {np.shape(v)}")
        total = int(lengths.sum(dtype=np.int64))
        if total > len(codes):
            raise ValueError(f"lengths sum to {total:,} residues but codes hold {len(codes):,}")
        offset = 0
        for first in range(0, n, chunk):
            stop = min(first + chunk, n)
            part = lengths[first:stop].astype(np.int64)
            part_v = _check_v(None if v is None else v[first:stop], stop - first, "query")
            yield (first, stop - first, *self._match(codes, offset + _starts(part), part, part_v, first))
            offset += int(part.sum())

    def _match(self, codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, v: np.ndarray, first: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The matching pairs of one chunk of queries (their indices offset by `first`)."""
        query = _Cores(codes, starts, lengths, self.trim)
        size = _table_size(self._cores.length, query.length)
        exact = query.keys(size)
        q, r = self._exact.join(exact)
        r = self._exact_ref[r]
        keep = self._allowed(query, q, v[q], r)
        q, r = q[keep], r[keep]
        keep = _mismatches(query, q, self._cores, r) == 0  # a key collision is not a match
        q, r, d = q[keep], r[keep], np.zeros(int(keep.sum()), dtype=np.int8)
        if self.radius == 1:
            q1, r1 = self._substitutions(query, query.wildcard_keys(exact, size), v)
            q, r = np.concatenate([q, q1]), np.concatenate([r, r1])
            d = np.concatenate([d, np.ones(len(q1), dtype=np.int8)])
        order = np.lexsort((r, d, q))
        return q[order] + first, r[order], d[order]

    def _substitutions(self, query: _Cores, wildcard: np.ndarray, v: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """The pairs of one chunk at Hamming distance exactly 1: (query row, reference index), each
        found once, at the wildcard where the two cores differ."""
        flat, j = self._wildcard.join(wildcard)
        q, r, p = query.row[flat], self._wildcard_ref[j].astype(np.int64), self._wildcard_position[j]
        keep = (self._allowed(query, q, v[q], r) & (query.position[flat] == p)  # else a key collision
                & (query.residue[flat] != self._cores.codes[self._cores.start[r] + p]))  # else exact: found once
        q, r = q[keep], r[keep]
        keep = _mismatches(query, q, self._cores, r) == 1
        return q[keep], r[keep]

    def _allowed(self, query: _Cores, q: np.ndarray, query_v: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Whether candidate pairs (q, r) have cores of equal length and V codes that allow a match:
        either unknown, or equal."""
        ref_v = self.v[r]
        return (query.length[q] == self._cores.length[r]) & ((query_v < 0) | (ref_v < 0) | (query_v == ref_v))

    def pairs(self, codes: np.ndarray, lengths: np.ndarray, v: np.ndarray | None = None, chunk: int = CHUNK
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every matching (query sequence, reference receptor) pair.

        Parameters
        ----------
        codes, lengths
            The query junctions in the store's format: uint8 (n_residues,) codes and (n,) lengths
            (e.g. a `Repertoire`'s ``codes`` and ``lengths``).
        v
            Their V family codes, int64 (n,), -1 = unknown; None: unknown for all.
        chunk
            Queries matched at a time (the results do not depend on it).

        Returns
        -------
        query, ref, distance
            int64, int64, int8 (n_pairs,): query index, reference index and Hamming distance of the
            cores (0, or 1 at radius 1), sorted by query, then distance, then reference.
        """
        parts = [(q, r, d) for _, _, q, r, d in self._chunks(codes, lengths, v, chunk)]
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8)
        return tuple(np.concatenate(column) for column in zip(*parts))

    def pairs_of(self, repertoire, v_genes: list[str], chunk: int = CHUNK
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`pairs` of the sequences of a store `Repertoire` with V indices into `v_genes`."""
        from deeprc_hopfield.public_clones import v_codes  # imports torch: only when asked

        return self.pairs(repertoire.codes, repertoire.lengths, v_codes(repertoire, v_genes), chunk)

    def first_match(self, codes: np.ndarray, lengths: np.ndarray, v: np.ndarray | None = None,
                    chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """The closest reference receptor of each query (the lowest index among equally close ones).

        Returns
        -------
        ref, distance
            int64 and int8 (n,): the reference index and the distance, -1 and -1 where none matches.
        """
        n = len(lengths)
        ref, distance = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int8)
        for _, _, q, r, d in self._chunks(codes, lengths, v, chunk):
            rows, first = np.unique(q, return_index=True)  # pairs are sorted by (query, distance, ref)
            ref[rows], distance[rows] = r[first], d[first]
        return ref, distance

    def match_counts(self, codes: np.ndarray, lengths: np.ndarray, v: np.ndarray | None = None,
                     chunk: int = CHUNK) -> np.ndarray:
        """How many reference receptors (duplicates included) each query matches, int64 (n,)."""
        counts = np.zeros(len(lengths), dtype=np.int64)
        for first, size, q, _, _ in self._chunks(codes, lengths, v, chunk):
            counts[first:first + size] = np.bincount(q - first, minlength=size)
        return counts

