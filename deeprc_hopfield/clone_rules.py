"""Which receptors count as one public clone, chosen by the data.

Real cohorts do not share clones the way a simulator does: annotations disagree on the V call of
one CDR3 (immunoSEQ family-only or missing calls, MiXCR against immunoSEQ), and antigen-specific
receptors come as families of near-identical CDR3s. So the public-clone path (the baseline and the
model's clone memory alike) compares a few **clone rules** by inner cross-validation on the
training repertoires and keeps the best:

- the V level of a clone (:data:`V_LEVELS`): CDR3 core + V family (the default on ties), CDR3 core
  + V gene (a family-only or missing call a wildcard), or the CDR3 core alone;
- the match radius (:data:`RADII`): a repertoire carries a clone when it holds it (0) or a sequence
  one substitution away on the core, same length (1).

:func:`cohort_clones` builds the repertoire-by-clone incidence of one rule; :func:`choose_clone_rule`
fits the public-clone test (`deeprc_hopfield.public_clones.PublicCloneTest`) on each rule's incidence
with the same inner folds and returns the rule of the best inner ROC AUC, or the best exact rule where
that does not beat it significantly (:func:`prefer_exact_rules`). With :class:`ColumnPgen`
the test may also leave out chance-public clones (a generation probability above a cutoff, OLGA:
`deeprc_hopfield.pgen`), the cutoff chosen by the same inner CV. Nothing here reads a held-out
repertoire: callers pass the repertoires they may learn from.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np
from scipy import sparse

from deeprc_hopfield.encoding import decode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.genes import V_LEVELS, clone_rule_name
from deeprc_hopfield.heap import give_back_freed_memory
from deeprc_hopfield.metrics import SIGNIFICANT_GAIN_Z, paired_auc_difference
from deeprc_hopfield.cdr3 import core_bounds
from deeprc_hopfield.neighbours import (RADII, CoreNeighbours, KeyBits, SlotRanks, bool_csr, chunked_wildcard_keys,
                                        core_neighbours, key_part)
from deeprc_hopfield.progress import LoggedProgress
from deeprc_hopfield.sampling import RepertoireRows
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.public_clones import (CLONE_INNER_FOLDS, PGEN_LIMIT, CloneSet, FitCandidates, PublicCloneTest,
                                           ShardedKeyCounter, clone_incidence, clone_set, in_sorted, repertoire_keys,
                                           resolve_wildcards, search_sorted, gene_codes, unique_keys, v_codes, with_v)
from deeprc_hopfield.threads import each_locked, ordered_map

if TYPE_CHECKING:
    from deeprc_hopfield.store import Repertoire

log = logging.getLogger(__name__)

AUTO = "auto"
#: Radius 1: wildcard keys (one per core residue of each repertoire's distinct cores) counted per pass
#: over the repertoires: ~8 bytes each held, up to ~32 while merging (1 GB and ~4 GB here); more make
#: more passes (each reads every repertoire once more).
WILDCARD_KEYS_PER_PASS = 1 << 27
#: Radius 1: candidate clones whose carriers are counted at a time (the clones near them, their carriers),
#: so that memory follows the kept incidence, not every neighbour pair of the cohort at once.
CARRIED_BLOCK = 1 << 16
#: Radius 1: at most this many holdings of the clones near a block's candidates (fewer candidates where their cores
#: have many neighbours, or neighbours held by many repertoires; they bound the block's neighbour pairs and its
#: carrier count, ~10-100 bytes each), so that a block's memory does not follow the cohort.
NEAR_HOLDINGS_BLOCK = 1 << 22
#: Radius 1, positive carriers only: bits per residue of the positives in the set that tells a wildcard key
#: one positive holds from one none holds (0.5-1 byte a residue, a power of two; a false "holds", at most
#: ~1 key in 5, only loosens the bound of a core that no positive holds).
SEEN_BITS_PER_KEY = 4
#: Bits per key of the bit set in front of each large sorted table looked up once a sequence (the wildcard keys'
#: counts, the centres' wildcard keys): ~1 byte a key, turning away ~7 in 8 of the keys it does not hold.
FRONT_BITS_PER_KEY = 8
#: The most threads that read and key a collection pass's repertoires ahead of its merging: each holds one
#: repertoire's work (~100 MB at 268,000 sequences, its wildcard keys), and the merging in one thread is the
#: bound beyond a few.
READ_AHEAD_THREADS = 8
#: The most bytes of clone keys (8 a sequence) that :class:`KeyedRows` keeps for the rules' pgen requests and the
#: memory's clones; rows past it are keyed again each time (a full-size fold's ~500 fitting repertoires, 267,000
#: sequences on average, hold ~1.1 GB of keys: about half are kept, so the baselines' job stays within its 8 GB).
KEYED_ROWS_BYTES = 1 << 29


@dataclass(frozen=True)
class CloneRule:
    """What makes two receptors one clone: the V level of the key and the match radius on the CDR3 core."""

    v_level: str = "family"
    radius: int = 0

    def __post_init__(self) -> None:
        if self.v_level not in V_LEVELS:
            raise DeepRCError(f"unknown clone key {self.v_level!r}; known: {', '.join(V_LEVELS)} (or {AUTO})")
        if self.radius not in RADII or isinstance(self.radius, bool):
            raise DeepRCError(f"clone radius must be 0 or 1 (or {AUTO}), got {self.radius!r}")

    def __str__(self) -> str:
        return clone_rule_name(self.v_level, self.radius)

    def as_dict(self) -> dict:
        return {"v_level": self.v_level, "radius": self.radius}


def clone_rules(v_level: str = AUTO, radius: int | str = AUTO) -> tuple[CloneRule, ...]:
    """The rules to choose among for a `clone_keys` setting (a V level or 'auto') and a `clone_radius`
    setting (0, 1 or 'auto'), in the order ties are broken; a bad value is refused in one line."""
    levels = V_LEVELS if v_level == AUTO else (v_level,)
    radii = RADII if radius == AUTO else (radius,)
    return tuple(CloneRule(level, r) for r in radii for level in levels)


@dataclass
class CohortClones:
    """The clones of some repertoires under one rule.

    incidence: bool CSR (n_repertoires, n_shared), which repertoire carries which clone carried by `min_carriers`
    repertoires or more (positive ones, where `cohort_clones` was given them; at radius 1: holds it or a
    neighbour); keys: int64 (n_shared,), the exact key
    (`public_clones.clone_keys`, V at the rule's level) of each column's clone; held: bool CSR like
    `incidence`, which repertoire holds the column's clone itself (at radius 0 that is `incidence`: a CDR3
    without a V call holds the clones it resolves to; at radius 1 its exact key; None: not recorded).
    """

    rule: CloneRule
    incidence: sparse.csr_matrix
    keys: np.ndarray
    held: sparse.csr_matrix | None = None

    def rows(self, which: np.ndarray) -> "CohortClones":
        """The same clones, for the repertoires at `which` (indices or a mask) only."""
        return CohortClones(self.rule, self.incidence[which], self.keys,
                            None if self.held is None else self.held[which])

    def held_by(self, which: np.ndarray) -> "CohortClones":
        """The clones that one of the repertoires at `which` (indices or a mask) holds itself, for every
        repertoire, so that a fit on them takes no clone from the others: at radius 1 a column must be a
        clone of one of them, not only near theirs (missing V calls stay resolved over all repertoires)."""
        if self.held is None:
            raise ValueError("these clones do not record which repertoire holds each")
        own = np.flatnonzero(np.diff(sparse.csc_matrix(self.held[which]).indptr) > 0)
        return CohortClones(self.rule, self.incidence[:, own], self.keys[own], self.held[:, own])


class CloneCollector:
    """Builds the :class:`CohortClones` of several rules in one pass over the repertoires (`add` each,
    then `results` or `result`), keying each repertoire once; V indices point into `v_genes`. Clones carried by
    fewer than `min_carriers` repertoires are left out (with `positives`, a bool mask of the repertoires to
    be added, fewer than that many of them), and at radius 1 those that `candidates` (given the carriers of a
    block of clones, CSR (clones, repertoires); e.g. `public_clones.FitCandidates`) does not keep.

    Radius 1 joins the cohort's distinct CDR3 cores once (`neighbours.core_neighbours`, one substitution) and
    derives each V level's neighbours from that join (cores that are neighbours, V calls equal or
    either missing), so three levels cost one join. It keeps each repertoire's distinct (core, V call) pairs
    once (6 bytes a pair) and makes a level's clones from them when that level's rule is made.
    """

    def __init__(self, v_genes: Sequence[str], rules: Sequence[CloneRule], min_carriers: int = 2,
                 centres: np.ndarray | None = None, positives: np.ndarray | None = None,
                 candidates: Callable[[sparse.csr_matrix], np.ndarray] | None = None, workers: int = 1) -> None:
        self.v_genes, self.rules, self.min_carriers = list(v_genes), list(rules), max(int(min_carriers), 2)
        self.workers = workers  # radius 1: threads pairing the join's parts and counting a group's blocks of candidates
        self.positives = positives  # the repertoires whose carriers count towards min_carriers (None: all)
        self.candidates = candidates  # radius 1: which clones the test's fits can use (None: all)
        self.centres = centres  # radius 1: the only cores a column's clone may have (None: any)
        self._sets: dict[str, list] = {r.v_level: [] for r in self.rules if r.radius == 0}
        self._radius_one = any(r.radius == 1 for r in self.rules)
        self._cores = _FirstSeen()  # radius 1: the distinct cores, numbered as first seen, with their residues
        self._core_codes: list[np.ndarray] = []
        self._core_lengths: list[np.ndarray] = []
        self._held: list[tuple[np.ndarray, np.ndarray]] = []  # radius 1, per repertoire: distinct (core, V index)

    def add(self, repertoire, cores: np.ndarray | None = None, exact: np.ndarray | None = None) -> None:
        """Collect a repertoire's clones (`cores`: its :func:`repertoire_keys`, computed when None; `exact`: a bool
        mask of the sequences whose exact clones may be carried by `min_carriers` repertoires, None: all)."""
        self.add_prepared(self.prepare(repertoire, cores, exact))

    def prepare(self, repertoire, cores: np.ndarray | None = None, exact: np.ndarray | None = None) -> _Prepared:
        """What :meth:`add` takes from a repertoire before it numbers its cores: any thread may prepare repertoires
        at once, to be added in their order."""
        cores = repertoire_keys(repertoire) if cores is None else cores  # each level adds its V term
        exact = slice(None) if exact is None else exact
        sets = []
        for level in self._sets:
            v = v_codes(repertoire, self.v_genes, level)
            sets.append(clone_set(with_v(cores, v)[exact], v[exact]))
        if not self._radius_one:
            return _Prepared(repertoire, sets)
        distinct, first = np.unique(cores, return_index=True)
        genes = len(self.v_genes) + 1  # V index -1 (missing) to len - 1
        pairs = unique_keys(np.searchsorted(distinct, cores) * genes + np.asarray(repertoire.v_index, np.int64) + 1)
        return _Prepared(repertoire, sets, distinct, first, pairs)

    def add_prepared(self, prepared: _Prepared) -> None:
        """Collect a prepared repertoire's clones (:meth:`prepare`), numbering its new cores after all others."""
        for level, clones in zip(self._sets, prepared.sets):
            self._sets[level].append(clones)
        if not self._radius_one:
            return
        number, new = self._cores.add(prepared.distinct)
        picked = prepared.repertoire.subset(prepared.first[new])
        self._core_codes.append(np.asarray(picked.codes))
        self._core_lengths.append(np.asarray(picked.lengths, dtype=np.uint8))  # as the store keeps them
        genes = len(self.v_genes) + 1
        held = np.sort(number[prepared.pairs // genes] * genes + prepared.pairs % genes)  # distinct: a core, a number
        self._held.append(((held // genes).astype(np.int32), (held % genes - 1).astype(np.int16)))  # as stored

    def results(self):  # noqa: ANN201 (a generator of CohortClones)
        """One :class:`CohortClones` per rule, in the rules' order, each made when the next is asked for; an exact
        level's collected clones are freed once its last rule is made, a radius-1 level's clones are made with its
        rule, and the radius-1 join is freed after the last radius-1 rule, so what a caller lets go of is not held
        while the next rule is made. Once only."""
        radius_one = [i for i, rule in enumerate(self.rules) if rule.radius == 1]
        cores, self._cores = self._cores, _FirstSeen()  # the join's input only, as are the residues (emptied)
        give_back_freed_memory()
        joined = (_core_neighbours(cores, self._core_codes, self._core_lengths, self.centres, self.workers)
                  if radius_one else None)
        del cores
        last = {(rule.v_level, rule.radius): i for i, rule in enumerate(self.rules)}
        for i, rule in enumerate(self.rules):
            give_back_freed_memory()  # what the last rule's work freed
            done = last[(rule.v_level, rule.radius)] == i
            sets = (self._sets.pop(rule.v_level) if done else self._sets[rule.v_level]) if rule.radius == 0 else None
            made = self._made(rule, sets, self._held, joined, self.min_carriers, self.positives, self.candidates)
            if i == (radius_one[-1] if radius_one else -1):
                joined, self._held = None, []
            sets = None
            yield made
            del made  # before the next rule is made

    def part_results(self, parts: Sequence["CollectionPart"]):  # noqa: ANN201 (a generator)
        """(part index, :class:`CohortClones`) of each exact rule for each of `parts` (some of the added
        repertoires, each with its own carriers), part by part, then (None, :class:`CohortClones`) of each
        one-substitution rule over all added repertoires with the collector's own carriers and candidates. An exact
        rule resolves a missing or family-only V call within the part, so each part's exact clones are what
        collecting its repertoires alone gives; a one-substitution rule's carriers do not depend on the other
        repertoires (a V call matches its own or a missing one), so one collection serves every part
        (:meth:`CohortClones.held_by` then :meth:`CohortClones.rows` of its rows), given that the collector keeps
        every clone any part keeps (its `min_carriers`, `positives`, `centres` and `candidates` no stricter than any
        part's: :func:`each_part_clones`). The exact rules' sets are freed before the radius-1 join. Once only."""
        exact = [rule for rule in self.rules if rule.radius == 0]
        for p, part in enumerate(parts):
            for rule in exact:
                give_back_freed_memory()
                sets = [self._sets[rule.v_level][r] for r in part.rows]
                yield p, self._made(rule, sets, None, None, part.min_carriers, part.positives, None)
        self._sets = {}
        self.rules = [rule for rule in self.rules if rule.radius == 1]
        for made in self.results():
            yield None, made
            del made  # before the next rule is made

    def _made(self, rule: CloneRule, sets: list | None, held: list | None, joined: tuple | None, min_carriers: int,
              positives: np.ndarray | None, candidates: Callable[[sparse.csr_matrix], np.ndarray] | None
              ) -> CohortClones:
        """The clones of one rule from the repertoires' clone `sets` (radius 0) or distinct (core, V) pairs
        `held` (radius 1, with the cohort's core join `joined`)."""
        if rule.radius == 0:
            incidence, keys = clone_incidence(resolve_wildcards(sets), min_carriers, positives)
            return CohortClones(rule, incidence, keys, incidence)
        clones = _level_clones(held, gene_codes(self.v_genes, rule.v_level), len(joined[0]), self.workers)
        return _neighbour_clones(clones, joined, rule, min_carriers, positives, candidates, self.workers)

    def result(self) -> list[CohortClones]:
        """One :class:`CohortClones` per rule, in the rules' order (:meth:`results`, all held at once)."""
        return list(self.results())


@dataclass
class _Prepared:
    """A repertoire as :meth:`CloneCollector.prepare` leaves it: each exact level's clone set and, at radius 1, its
    distinct cores (sorted), where each first comes, and its distinct (core, V index + 1) pairs, the core as its
    place among `distinct` (`pairs` = place * (V genes + 1) + V index + 1, sorted)."""

    repertoire: Repertoire
    sets: list[CloneSet]
    distinct: np.ndarray | None = None
    first: np.ndarray | None = None
    pairs: np.ndarray | None = None


class _FirstSeen:
    """Distinct int64 keys numbered 0, 1, ... in the order they are first added, with sorted runs to look them
    up: ~12 bytes a distinct key. Each `add` makes its new keys a run and merges runs of like size (as
    `public_clones.KeyCounter` merges its buffer), so every key is copied a few times only, not once an `add`."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (keys, sorted; their numbers, int32), larger first
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Number distinct int64 `keys`, new ones after all others: (their numbers, int64 (n,); which are new, bool)."""
        keys = np.asarray(keys, dtype=np.int64)
        number = np.full(len(keys), -1, dtype=np.int64)
        unknown = np.arange(len(keys))
        for run, numbers in self._runs:  # each key is in one run at most
            at = np.minimum(search_sorted(run, keys[unknown]), len(run) - 1)
            hit = run[at] == keys[unknown]
            number[unknown[hit]] = numbers[at[hit]]
            unknown = unknown[~hit]
        is_new = number < 0
        new = np.flatnonzero(is_new)
        number[new] = self._count + np.arange(len(new))
        self._count += len(new)
        if len(new):
            order = new[np.argsort(keys[new])]
            _push_run(self._runs, (keys[order], number[order].astype(np.int32)))
        return number, is_new

    def by_number(self) -> np.ndarray:
        """The keys in the order of their numbers, int64 (from the runs as they are: no merge)."""
        keys = np.empty(len(self), dtype=np.int64)
        for run, numbers in self._runs:
            keys[numbers] = run
        return keys

    def numbers_of(self, keys: np.ndarray) -> np.ndarray:
        """The numbers of those of `keys` (int64) that are in the table, int64 sorted: `keys` searched in each run, so
        that memory follows `keys`, not the table."""
        found = [np.zeros(0, dtype=np.int32)]
        for run, numbers in self._runs:
            at = np.minimum(search_sorted(run, keys), len(run) - 1)
            found.append(numbers[at[run[at] == keys]])
        return np.sort(np.concatenate(found)).astype(np.int64)

    def clear(self) -> None:
        """Let go of every key."""
        self._runs, self._count = [], 0


def _push_run(runs: list[tuple[np.ndarray, ...]], run: tuple[np.ndarray, ...]) -> None:
    """Append a sorted run (keys first, then arrays that go with them) to `runs` (larger first), merging the last
    two while they are of like size, so that each key is copied a few times only, not once a run."""
    runs.append(run)
    while len(runs) > 1 and len(runs[-2][0]) <= 2 * len(runs[-1][0]):
        runs[-2:] = [_merged(*runs[-2:])]


def _one_run(runs: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...] | None:
    """`runs` merged into one (kept as their only run), or None where there is none."""
    while len(runs) > 1:
        runs[-2:] = [_merged(*runs[-2:])]
    return runs[0] if runs else None


def _merged(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Two sorted runs of distinct keys (no key in both), each its keys and any arrays that go with them (numbers,
    say), as one, in one pass."""
    at = np.searchsorted(a[0], b[0]) + np.arange(len(b[0]))  # where b's keys go in the merged run
    from_b = np.zeros(len(a[0]) + len(b[0]), dtype=bool)
    from_b[at] = True
    merged = tuple(np.empty(len(from_b), dtype=values.dtype) for values in a)
    for out, mine, theirs in zip(merged, a, b):
        out[at], out[~from_b] = theirs, mine
    return merged


class _KeySet:
    """Distinct int64 keys, added in batches: split by their top bits into `parts` (a power of two) so that each
    part's keys are a range, each part sorted runs merged as they grow (as :class:`_FirstSeen`'s), behind a lock of
    its own, so that threads add at once. ~8 bytes a key; a merge holds ~17 bytes a key of one part's runs, and
    :meth:`sorted` one part's beyond the result, where one sorted array merged with each batch holds ~17-32 bytes a
    key of all of them."""

    def __init__(self, parts: int = 64) -> None:
        self._bits = max(int(parts) - 1, 0).bit_length()
        self._runs: list[list[tuple[np.ndarray]]] = [[] for _ in range(1 << self._bits)]
        self._counts = [0] * len(self._runs)
        self._locks = [threading.Lock() for _ in self._runs]

    def __len__(self) -> int:
        return sum(self._counts)

    def _parts(self, keys: np.ndarray) -> np.ndarray:
        """The part of each key: its top bits in int64 order (so sorted keys have sorted parts), int64."""
        flipped = keys.view(np.uint64) ^ np.uint64(1 << 63)
        return (flipped >> np.uint64(64 - self._bits)).astype(np.int64) if self._bits else np.zeros(len(keys), np.int64)

    def add(self, keys: np.ndarray) -> None:
        """Add distinct int64 `keys`, sorted (some may be in the set already); safe from several threads at once."""
        keys = np.asarray(keys, dtype=np.int64)
        edges = np.searchsorted(self._parts(keys), np.arange(len(self._runs) + 1))
        each_locked(self._locks, np.flatnonzero(np.diff(edges)),
                    lambda part: self._add_to(part, keys[edges[part]:edges[part + 1]]))

    def _add_to(self, part: int, batch: np.ndarray) -> None:
        """Add the keys of one part (distinct, sorted) that it does not hold yet."""
        runs = self._runs[part]
        known = np.zeros(len(batch), dtype=bool)
        for (run,) in runs:
            known |= in_sorted(run, batch)
        if not known.all():
            _push_run(runs, (batch[~known],))
            self._counts[part] += int((~known).sum())

    def sorted(self) -> np.ndarray:
        """Every key, int64 sorted; the set is emptied as the result is filled, a part at a time (the heap's freed
        pages given back after each, so that the result takes the place of the runs)."""
        out, start = np.empty(len(self), dtype=np.int64), 0
        for part, runs in enumerate(self._runs):
            run = _one_run(runs)
            if run is not None:
                out[start:start + len(run[0])] = run[0]
                start += len(run[0])
            runs.clear()
            del run
            give_back_freed_memory()
        self._counts = [0] * len(self._runs)
        return out


@dataclass
class _LevelClones:
    """Radius 1, one V level: the cohort's distinct clones, each a (core number, V rank) pair, numbered in that
    order, so that a core's clones are a range (`core_start`, (cores + 1,)); the V rank of each (`v`;
    `v_codes[rank]` its V code, -1 missing) and which repertoires hold each (`holders`, bool CSR (clones,
    repertoires))."""

    core_start: np.ndarray
    v: np.ndarray
    v_codes: np.ndarray
    holders: sparse.csr_matrix

    def __len__(self) -> int:
        return len(self.v)

    def of_cores(self, cores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The clones of each of `cores` (int64): (which core of `cores` each belongs to, the clone), int64, by core."""
        first, stop = self.core_start[cores].astype(np.int64), self.core_start[cores + 1]
        size = stop - first
        owner = np.repeat(np.arange(len(cores)), size)
        return owner, np.repeat(first - np.cumsum(size) + size, size) + np.arange(len(owner))

    def core_holdings(self, chunk: int = 1 << 22) -> np.ndarray:
        """How many times the repertoires hold each core's clones, (cores,), `chunk` cores at a time."""
        out, pointers = np.empty(len(self.core_start) - 1, dtype=self.holders.indptr.dtype), self.holders.indptr
        for start in range(0, len(out), chunk):
            first = self.core_start[start:start + chunk + 1]
            out[start:start + len(first) - 1] = pointers[first[1:]] - pointers[first[:-1]]
        return out

    def same_v(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether clones `a[i]` and `b[i]` have the same V code or either has none, bool."""
        va, vb = self.v[a], self.v[b]
        if not len(self.v_codes) or self.v_codes[0] != -1:  # no missing call (codes are >= 0 otherwise)
            return va == vb
        return (va == vb) | (va == 0) | (vb == 0)


def _level_clones(held: list[tuple[np.ndarray, np.ndarray]], codes: np.ndarray, cores: int,
                  workers: int = 1) -> _LevelClones:
    """Radius 1: the :class:`_LevelClones` of the repertoires' distinct (core number, V index) pairs `held` at the V
    level of `codes` (:func:`public_clones.gene_codes`), of `cores` cores. The clones are numbered by a
    :class:`neighbours.SlotRanks` of every (core, V rank) slot (~1.5 bits a slot while made), reading `held` three
    times (take the pairs, count each clone's holders, fill them in; `workers` threads make each repertoire's slots
    and their numbers ahead of that), so that memory holds 4 bytes a core, a byte a clone and the holders' CSR, not
    the clones' keys sorted nor a binary search a lookup."""
    v_codes, rank = np.unique(codes, return_inverse=True)  # rank[v index], v index -1 the last
    rank = rank.ravel()
    taken = SlotRanks(cores * len(v_codes))

    def slots(i: int, pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Repertoire `i`'s clones' slots, sorted, distinct (`held` is sorted by core: out of order within one)."""
        core, v_index = pair
        return unique_keys(core.astype(np.int64) * len(v_codes) + rank[v_index], nearly_sorted=True)

    def each(what: str, work: Callable[[int, tuple], object]) -> Iterator[object]:
        """One pass over `held` (the results of `work` in order)."""
        return _each_worked(held, f"clone rules: a V level's clones, {what}", work, workers)

    for part in each("taking their slots", slots):
        taken.take(part)
    n = taken.count()  # from here `taken` is only read, by any thread
    v = np.empty(n, dtype=np.uint8 if len(v_codes) <= 256 else np.int32)
    start = 0
    for part in taken.taken():
        v[start:start + len(part)] = part % len(v_codes)
        start += len(part)
    core_start = np.empty(cores + 1, dtype=np.int32 if n < (1 << 31) else np.int64)
    for start in range(0, cores + 1, 1 << 22):  # 2^22 cores at a time
        core = np.arange(start, min(start + (1 << 22), cores + 1), dtype=np.int64)
        core_start[core] = taken.rank(core * len(v_codes))

    def numbered(i: int, pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Repertoire `i`'s clones' numbers, and `i` as many times."""
        numbers = taken.rank(slots(i, pair))
        return numbers, np.full(len(numbers), i, dtype=np.int32)

    counts = np.zeros(n, dtype=np.int32)
    for numbers, _ in each("counting their holders", numbered):
        counts[numbers] += 1  # distinct within a repertoire
    holders = bool_csr(each("filling in their holders", numbered), counts, len(held))
    log.debug("clone rules: %d clones (of %d V codes) held %d times, from %d (core, V call) pairs", n, len(v_codes),
              holders.nnz, sum(len(core) for core, _ in held))
    return _LevelClones(core_start, v, v_codes, holders)


def each_cohort_clones(repertoires: Sequence, v_genes: Sequence[str], rules: Sequence[CloneRule],
                        keys_per_pass: int = WILDCARD_KEYS_PER_PASS, min_carriers: int = 2,
                        positives: np.ndarray | None = None,
                        candidates: Callable[[sparse.csr_matrix], np.ndarray] | None = None, workers: int = 1
                        ):  # noqa: ANN201 (a generator of CohortClones)
    """The :class:`CohortClones` of store `Repertoire`s (V indices into `v_genes`) under each rule, with
    the clones carried by `min_carriers` repertoires or more (2: every shared clone; the public-clone
    test needs `public_clones.min_carriers` to find any). With `positives` (bool, one per repertoire), by
    that many positive repertoires or more: Fisher's one-sided p of a clone is smallest when all its
    carriers are positive, so the test never takes a clone with fewer positive carriers than it needs
    carriers (`public_clones.positive_rows`). A fit on some of the repertoires has at most these positive
    carriers, so its result is the same; only far fewer chance-public clones are held. (At 2, every
    shared clone is kept: where positives are very rare, one positive carrier can pass.)

    Only sequences that such a clone could count are collected (:func:`shareable_cores`, which reads
    `repertoires` once at radius 0, 2 + ceil(wildcard keys / `keys_per_pass`) times at radius 1),
    in one more pass (the exact rules only those whose own core is shared that often): the result is that of
    collecting every sequence, with memory for those only. `repertoires` is anything indexable (a list, or a
    store read lazily).

    `candidates` (radius 1; e.g. `public_clones.FitCandidates` of the fits to come on exactly these repertoires):
    which carried clones those fits can use, the others left out; the fits' results are the same.

    A generator: each rule's clones are made when asked for (:meth:`CloneCollector.results`), so that a caller
    who keeps only some of them (`choose_clone_rule`) holds no more; :func:`cohort_clones` makes them all.
    `workers`: threads that read and key the repertoires of each pass over them ahead of its merging (the same
    result).
    """
    rules = list(rules)
    positives = None if positives is None or min_carriers <= 2 else np.asarray(positives, dtype=bool)
    if positives is not None and positives.shape != (len(repertoires),):
        raise ValueError(f"positives has shape {positives.shape}, for {len(repertoires)} repertoires")
    yield from _collected(repertoires, v_genes, rules, keys_per_pass, min_carriers, positives, candidates,
                          workers).results()


@dataclass
class CollectionPart:
    """Some of a collection's repertoires (`rows`, indices into them) and what a fit on them needs: the clones
    carried by `min_carriers` of them or more (of the `positives`, a bool mask over `rows`, where given) that
    `candidates` keeps (radius 1; e.g. `public_clones.FitCandidates` of the fits on exactly these rows)."""

    rows: np.ndarray
    min_carriers: int = 2
    positives: np.ndarray | None = None
    candidates: Callable[[sparse.csr_matrix], np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.min_carriers = max(int(self.min_carriers), 2)
        if self.positives is not None and self.min_carriers > 2:
            self.positives = np.asarray(self.positives, dtype=bool)
            if self.positives.shape != self.rows.shape:
                raise ValueError(f"positives has shape {self.positives.shape}, for {len(self.rows)} rows")
        else:
            self.positives = None

    def counted(self, n: int) -> np.ndarray:
        """Which of `n` repertoires count towards this part's carriers, bool (n,)."""
        mask = np.zeros(n, dtype=bool)
        mask[self.rows if self.positives is None else self.rows[self.positives]] = True
        return mask


def each_part_clones(repertoires: Sequence, v_genes: Sequence[str], rules: Sequence[CloneRule],
                     parts: Sequence[CollectionPart], keys_per_pass: int = WILDCARD_KEYS_PER_PASS, workers: int = 1
                     ):  # noqa: ANN201 (a generator of (part index or None, CohortClones))
    """The clones of several `parts` of `repertoires` from one reading of them (:meth:`CloneCollector.part_results`):
    (part index, :class:`CohortClones`) of each exact rule for each part, the same as :func:`each_cohort_clones` of
    the part's repertoires alone with its carriers; then (None, :class:`CohortClones`) of each one-substitution
    rule over all the repertoires, holding every clone that some part's collection keeps (carried by enough of its
    counted repertoires and kept by its candidates), from which a part takes its own with
    ``clones.held_by(part.rows).rows(part.rows)``: the clones it would collect alone, and others that none of its
    fits can use. So a cohort's folds need not each read the cohort again. A fit that several parts make (the
    baselines' within each fold's training rows, and that fold's training part's) is counted once."""
    parts, rules = list(parts), list(rules)
    fewest = min((part.min_carriers for part in parts), default=2)
    counted = np.zeros(len(repertoires), dtype=bool)
    for part in parts:
        counted |= part.counted(len(repertoires))
    positives = None if fewest <= 2 or counted.all() else counted
    deciding = _SomePartKeeps(parts, len(repertoires))
    yield from _collected(repertoires, v_genes, rules, keys_per_pass, fewest, positives, deciding,
                          workers).part_results(parts)


class _SomePartKeeps:
    """Candidates of a one-substitution collection over every part: a clone is kept where some part would keep it
    (carried by its `min_carriers` counted repertoires and kept by its candidates). The `FitCandidates` of parts
    whose fits keep no clone with fewer positive carriers than their `min_carriers` (so that count is implied) are
    asked as one (:meth:`public_clones.FitCandidates.union`: every fit counted by one product); other parts (e.g.
    one whose fits keep a clone of one positive carrier, where a clone needs two carriers) part by part."""

    def __init__(self, parts: Sequence[CollectionPart], n: int) -> None:
        implied = [isinstance(part.candidates, FitCandidates) and part.candidates.fewest_kept() >= part.min_carriers
                   for part in parts]
        fitted = [(part.rows, part.candidates) for part, one in zip(parts, implied) if one]
        self.fits = FitCandidates.union(fitted, n) if fitted else None
        self.parts = [part for part, one in zip(parts, implied) if not one]

    def __call__(self, carried: sparse.csr_matrix) -> np.ndarray:
        keep = np.zeros(carried.shape[0], dtype=bool) if self.fits is None else self.fits(carried)
        by_column = carried.tocsc() if self.parts else None
        for part in self.parts:
            own = by_column[:, part.rows].tocsr()
            wanted = _carriers(own, part.positives) >= part.min_carriers
            if part.candidates is not None and wanted.any():
                wanted[wanted] = part.candidates(own[wanted])
            keep |= wanted
        return keep


def _collected(repertoires: Sequence, v_genes: Sequence[str], rules: list[CloneRule], keys_per_pass: int,
               min_carriers: int, positives: np.ndarray | None,
               candidates: Callable[[sparse.csr_matrix], np.ndarray] | None, workers: int = 1) -> CloneCollector:
    """A :class:`CloneCollector` given the sequences of `repertoires` that a clone carried by `min_carriers` can count
    (:func:`shareable_cores`, whose wildcard keys are freed on return)."""
    shareable = shareable_cores(repertoires, any(rule.radius == 1 for rule in rules), keys_per_pass, min_carriers,
                                positives, workers)
    collector = CloneCollector(v_genes, rules, min_carriers, shareable.centres, positives, candidates, workers)

    def kept(_: int, rep) -> _Prepared:  # noqa: ANN001 (a store Repertoire)
        """A repertoire's sequences that may count (`shareable`), prepared (their cores; which of those are shared)."""
        cores = repertoire_keys(rep)
        keep = np.flatnonzero(shareable.holds(rep, cores))
        return collector.prepare(rep.subset(keep), cores[keep], in_sorted(shareable.cores, cores[keep]))

    for prepared in _each_worked(repertoires, "clone rules: collecting clones", kept, workers):
        collector.add_prepared(prepared)
    return collector


def cohort_clones(repertoires: Sequence, v_genes: Sequence[str], rules: Sequence[CloneRule],
                  keys_per_pass: int = WILDCARD_KEYS_PER_PASS, min_carriers: int = 2,
                  positives: np.ndarray | None = None,
                  candidates: Callable[[sparse.csr_matrix], np.ndarray] | None = None,
                  workers: int = 1) -> list[CohortClones]:
    """Every rule's :class:`CohortClones` at once (:func:`each_cohort_clones`)."""
    return list(each_cohort_clones(repertoires, v_genes, rules, keys_per_pass, min_carriers, positives, candidates,
                                   workers))


@dataclass
class ShareableCores:
    """The CDR3 cores that a clone carried by `min_carriers` repertoires (or positive repertoires) or more can
    count: `cores` (int64 sorted core keys, `public_clones.clone_keys` without V) held by that many;
    at radius 1 also `wildcards` (int64 sorted, `neighbours.wildcard_keys`), those of the cores that
    may carry such a clone (None at radius 0): a carrier holds the clone's core or a core one
    substitution away, which shares one of its wildcard keys; and `centres` (int64 sorted), those
    cores themselves (None at radius 0), the only cores such a clone can have."""

    cores: np.ndarray
    wildcards: np.ndarray | None = None
    centres: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._front = _front(self.wildcards) if self.wildcards is not None else None

    def holds(self, repertoire, cores: np.ndarray) -> np.ndarray:
        """Which sequences of a `Repertoire` (core keys `cores`, (n,)) have a shareable core, bool (n,)."""
        keep = in_sorted(self.cores, cores)
        if self.wildcards is None or keep.all():
            return keep
        distinct, first, inverse = np.unique(cores, return_index=True, return_inverse=True)
        ok = in_sorted(self.cores, distinct)
        rest = np.flatnonzero(~ok)
        for row, keys in _wildcards(repertoire.subset(first[rest])):
            maybe = np.flatnonzero(self._front.holds(keys))
            ok[rest[row[maybe[in_sorted(self.wildcards, keys[maybe])]]]] = True
        return ok[inverse.ravel()]


def _front(table: np.ndarray) -> KeyBits:
    """A bit set of a large sorted table's keys (:data:`FRONT_BITS_PER_KEY`), asked before it: most keys that are
    not in the table are turned away by one memory access instead of a binary search."""
    front = KeyBits(len(table), FRONT_BITS_PER_KEY)
    front.add(table)
    return front


@dataclass
class _Counts:
    """Keys held by two repertoires or more (int64 sorted) and by how many (uint16, capped)."""

    keys: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        self._front = _front(self.keys)

    def of(self, keys: np.ndarray, absent: int | np.ndarray = 1) -> np.ndarray:
        """How many repertoires hold each of `keys` (`absent`, one value or one per key, for a key not in the
        table: held once at most), int64 (n,)."""
        out = np.broadcast_to(np.asarray(absent, dtype=np.int64), len(keys)).copy()
        maybe = np.flatnonzero(self._front.holds(keys)) if len(self.keys) else np.zeros(0, dtype=np.int64)
        at = np.minimum(search_sorted(self.keys, keys[maybe]), len(self.keys) - 1)
        hit = self.keys[at] == keys[maybe]
        out[maybe[hit]] = self.counts[at[hit]]
        return out


def shareable_cores(repertoires: Sequence, radius_one: bool, keys_per_pass: int = WILDCARD_KEYS_PER_PASS,
                    min_carriers: int = 2, positives: np.ndarray | None = None, workers: int = 1) -> ShareableCores:
    """The cores that a clone carried by `min_carriers` of `repertoires` or more can count, whatever its
    V level and missing-V resolution (a superset: keeping more changes no result). With `positives` (bool
    mask), carried by that many positive repertoires: the counts below are then theirs alone.

    Radius 0: every carrier holds the clone's core, so its core is held `min_carriers` times. Radius 1:
    a clone's carriers are at most c0 + sum over its core's positions of (c_p - c0), where c0 counts
    the repertoires holding the core and c_p those holding a core with its wildcard key at p; cores
    whose bound reaches `min_carriers` may carry such a clone, and so may every core sharing one of
    their wildcard keys (its neighbours). Two cores that share a wildcard key by a key collision are
    kept too.

    Held: a :class:`public_clones.ShardedKeyCounter` of the distinct core keys (~8 bytes each) and, in the
    same pass while they number at most `keys_per_pass`, one of their distinct wildcard keys; past
    that, the wildcard keys are counted again in parts (`neighbours.key_part`, one part a pass), one
    more pass over `repertoires` for each ~`keys_per_pass` of them; then one pass keeps the wildcard
    keys of the cores whose bound reaches `min_carriers`. Then those keys only. The `workers` threads that key
    the repertoires also count and keep their keys (the counters and sets are split by key, a lock each).
    """
    cap = max(int(min_carriers), 2)
    counted = RepertoireRows(repertoires, np.flatnonzero(positives)) if positives is not None else repertoires
    cores, wildcards = ShardedKeyCounter(cap=cap), ShardedKeyCounter(cap=cap) if radius_one else None
    residues = 0

    def count(_: int, rep) -> int:  # noqa: ANN001 (a store Repertoire)
        """Count a repertoire's distinct cores and, while they fit one pass, their wildcard keys: its core residues."""
        distinct, first = np.unique(repertoire_keys(rep), return_index=True)
        cores.add(distinct)
        counter = wildcards  # None once they go past one pass
        if counter is not None:
            counter.add(_distinct_wildcards(rep.subset(first)))
        return int(core_bounds(np.asarray(rep.lengths, dtype=np.int64)[first])[1].sum())

    for n in _each_worked(counted, "clone rules: counting cores", count, workers):
        residues += n
        if residues > keys_per_pass:  # counted again in parts, in passes of their own; let go of (threads too)
            wildcards = None
    cores = _Counts(*cores.shared_counts())
    held = cores.keys[cores.counts >= cap]
    if not radius_one:
        return ShareableCores(held)
    passes = 1 if wildcards is not None else -(-residues // max(int(keys_per_pass), 1))
    seen = KeyBits(residues, SEEN_BITS_PER_KEY) if positives is not None else None  # the keys one positive holds (more: counted)
    parts = [_shared_counts(wildcards, seen)] if wildcards is not None else []
    del wildcards
    for part in range(len(parts), passes):
        counter = ShardedKeyCounter(cap=cap)
        for _ in _each_worked(counted, f"clone rules: counting wildcard keys, part {part + 1}/{passes}",
                              lambda _, rep: counter.add(_distinct_wildcards(rep, part, passes)), workers):
            pass  # no core keys: numpy only
        parts.append(_shared_counts(counter, seen))
        del counter
    keys, counts = [p[0] for p in parts], [p[1] for p in parts]
    parts.clear()  # each part's arrays now in keys and counts only, let go of as they are copied
    wildcard_counts = _Counts(_emptied_concatenation(keys, np.int64), _emptied_concatenation(counts, np.uint16))
    found, centres = _bounded_wildcards(repertoires, cores, wildcard_counts, cap, positives, seen, workers)
    del cores, wildcard_counts, seen  # the counts go before the keys found are sorted into one array each
    give_back_freed_memory()
    found, centres = found.sorted(), centres.sorted()
    log.debug("clone rules: %d cores held %d times or more, %d that may carry a clone held %d times, %d wildcard "
              "keys of theirs (%d pass%s)", len(held), cap, len(centres), cap, len(found), passes,
              "es" if passes > 1 else "")
    return ShareableCores(held, found, centres)


def _shared_counts(counter: ShardedKeyCounter, seen: KeyBits | None) -> tuple[np.ndarray, np.ndarray]:
    """`counter.shared_counts()`, after adding the keys it saw once to `seen` (where given): those it saw more
    often are in the counts, and `seen` answers only for keys missing from them."""
    if seen is not None:
        for once in counter.once_parts():
            seen.add(once)
    return counter.shared_counts()


def _bounded_wildcards(repertoires: Sequence, cores: _Counts, wildcards: _Counts, cap: int,
                       positives: np.ndarray | None = None, seen: KeyBits | None = None, workers: int = 1
                       ) -> tuple[_KeySet, _KeySet]:
    """The cores of `repertoires` whose radius-1 carrier bound (:func:`shareable_cores`; `cores`,
    `wildcards`: their counts, among the `positives` where given) reaches `cap`: (their wildcard keys, their
    core keys), a :class:`_KeySet` each. A key missing from a table is held once where this repertoire is counted.
    Elsewhere, a missing core is taken as held by none (the larger bound), and a missing wildcard key as
    held once where `seen` (the keys one counted repertoire holds) may hold it, else by none."""
    found, centres = _KeySet(), _KeySet()

    def bounded(i: int, rep) -> None:  # noqa: ANN001 (a store Repertoire)
        """Add each chunk of repertoire `i`'s distinct cores whose bound reaches `cap` (and their wildcard keys)."""
        distinct, first = np.unique(repertoire_keys(rep), return_index=True)
        counted = positives is None or bool(positives[i])
        held = cores.of(distinct, 1 if counted else 0)
        for row, keys in _wildcards(rep.subset(first)):
            extra = np.maximum(wildcards.of(keys, 1 if counted else seen.holds(keys)) - held[row], 0)
            bound = held + np.bincount(row, weights=extra, minlength=len(distinct)).astype(np.int64)
            reach = bound[row] >= cap
            found.add(unique_keys(keys[reach]))
            centres.add(distinct[unique_keys(row[reach], nearly_sorted=True)])

    for _ in _each_worked(repertoires, "clone rules: finding cores that may carry a clone", bounded, workers):
        pass
    return found, centres


def _each_worked(repertoires: Sequence, what: str, work: Callable[[int, object], object], workers: int = 1):
    """`work(i, repertoire)` of each item of `repertoires` (read when indexed) in order, with progress in the log
    when long; with `workers` > 1, computed by that many threads (at most :data:`READ_AHEAD_THREADS`) as many
    repertoires ahead of the caller (`threads.ordered_map`; the caller's own work on each result stays in one
    thread). The heap's freed pages are given back when the pass ends (`heap.give_back_freed_memory`)."""
    progress = LoggedProgress(log, what, len(repertoires), last_line=False)
    for result in ordered_map(lambda i: work(i, repertoires[i]), range(len(repertoires)),
                              min(int(workers), READ_AHEAD_THREADS)):
        yield result
        progress.update()
    give_back_freed_memory()


def _distinct_wildcards(repertoire, part: int = 0, parts: int = 1) -> np.ndarray:
    """The distinct wildcard keys of a `Repertoire`'s sequences in part `part` of `parts` (`neighbours.key_part`),
    int64 sorted."""
    keys = [k[key_part(k, parts) == part] if parts > 1 else k for _, k in _wildcards(repertoire)]
    return unique_keys(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)


def _wildcards(repertoire):
    """`neighbours.wildcard_keys` of a `Repertoire`'s sequences, a chunk at a time: yields (row in the repertoire,
    key), int64 each."""
    return chunked_wildcard_keys(repertoire.codes, repertoire.lengths)


def _core_neighbours(table: _FirstSeen, codes: list[np.ndarray], lengths: list[np.ndarray],
                     centres: np.ndarray | None = None, workers: int = 1) -> tuple[np.ndarray, CoreNeighbours]:
    """The cohort's distinct CDR3 core keys in the order of their numbers (`table`, emptied; `codes`, `lengths`: their
    residues in that order, lists emptied) and, for each of them among `centres` (sorted core keys; None: every
    one), the cores at most one substitution away, the core itself included (`neighbours.core_neighbours`, by
    number, in groups; `workers` threads). The table and the lists are let go of before the join."""
    keys = table.by_number()
    rows = None if centres is None else table.numbers_of(centres)
    table.clear()
    joined = core_neighbours(_emptied_concatenation(codes, np.uint8), _emptied_concatenation(lengths, np.uint8), rows,
                             workers=workers)
    log.debug("clone rules: %d distinct cores, %s centres, %d pairs one substitution apart or less, in %d group%s",
              len(keys), "all" if rows is None else len(rows), joined.pairs, len(joined), "s" if len(joined) > 1 else "")
    return keys, joined


def _emptied_concatenation(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    """`arrays` concatenated, emptying the list as each is copied, so that memory holds one copy of them, not two."""
    out, start = np.empty(sum(len(a) for a in arrays), dtype=dtype), 0
    arrays.reverse()
    while arrays:
        part = arrays.pop()
        out[start:start + len(part)] = part
        start += len(part)
    return out


def _neighbour_clones(clones: _LevelClones, joined: tuple[np.ndarray, CoreNeighbours], rule: CloneRule,
                      min_carriers: int = 2, positives: np.ndarray | None = None,
                      candidates: Callable[[sparse.csr_matrix], np.ndarray] | None = None,
                      workers: int = 1) -> CohortClones:
    """Radius 1: every distinct clone of the cohort whose core is a centre of the join (a wanted row of `joined`,
    the cores by number and their neighbours, :func:`_core_neighbours`) is a candidate, carried by the repertoires
    holding it or a clone one substitution away whose V call is the same or missing on either side (the rule of
    `ReceptorIndex`); those carried by `min_carriers` repertoires or more (of the `positives`, a bool mask, where
    given) and that `candidates` (where given, e.g. `public_clones.FitCandidates`) keeps are kept, in key order.
    The join's groups are read one at a time, each with its candidates, whose blocks `workers` threads count."""
    core_keys, core_pairs = joined
    blocks, kept, kept_core, candidate_count = [], [], [], 0
    holdings = clones.core_holdings()
    progress = LoggedProgress(log, f"clone rules: {rule}: counting carriers", len(core_pairs), unit="groups of cores",
                              last_line=False)
    with ThreadPoolExecutor(workers) as pool:
        for g in range(len(core_pairs)):
            first, near_cores = core_pairs.group(g)
            centres = np.flatnonzero(np.diff(near_cores.indptr)) + first  # a centre is its own neighbour
            owner, group_clones = clones.of_cores(centres)
            candidate_count += len(group_clones)
            near_holdings = near_cores @ holdings  # per core of the group: the holdings of the clones near it

            def counted(part: slice) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
                block, block_core = group_clones[part], centres[owner[part]]
                return _carried_block(clones, near_cores[block_core - first], block, block_core, min_carriers,
                                      positives, candidates)

            # work follows the holdings of near clones; blocks in order, whatever thread counts them
            for carried, block, block_core in pool.map(counted, _blocks(near_holdings[centres[owner] - first])):
                blocks.append(carried)
                kept.append(block)
                kept_core.append(block_core)
            del near_cores
            progress.update()
    kept = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    kept_core = np.concatenate(kept_core) if kept_core else np.zeros(0, dtype=np.int64)
    keys = with_v(core_keys[kept_core], clones.v_codes[clones.v[kept]])
    order = np.argsort(keys, kind="stable")
    rank = np.empty(len(kept), dtype=np.int64)
    rank[order] = np.arange(len(kept))  # each kept clone's place in key order
    places = np.split(rank, np.cumsum([block.shape[0] for block in blocks])[:-1])
    incidence = _stacked_transposed(blocks, clones.holders.shape[1], places)
    log.debug("clone rules: %s: %d candidate clones, %d carried by %d%s or more%s (%d carriers in all)", rule,
              candidate_count, len(kept), min_carriers, " positives" if positives is not None else "",
              " that a fit can use" if candidates is not None else "", incidence.nnz)
    return CohortClones(rule, incidence, keys[order],
                        _stacked_transposed([clones.holders[kept[order]]], clones.holders.shape[1]))


def _carried_block(clones: _LevelClones, near_cores: sparse.csr_matrix, block: np.ndarray, block_core: np.ndarray,
                   min_carriers: int, positives: np.ndarray | None,
                   candidates: Callable[[sparse.csr_matrix], np.ndarray] | None
                   ) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """The carriers (CSR (kept, repertoires)) of the candidate clones `block` (cores `block_core`, whose near cores
    are the rows of `near_cores`) that :func:`_neighbour_clones` keeps, with those clones and their cores."""
    near = near_cores.tocoo()  # (block, cores): the cores one substitution away or less
    which, other = clones.of_cores(near.col.astype(np.int64))
    row = near.row[which]
    same_v = clones.same_v(block[row], other)
    near = sparse.csr_matrix((np.ones(int(same_v.sum()), dtype=bool), (row[same_v], other[same_v])),
                             shape=(len(block), len(clones)))
    carried = (near @ clones.holders).tocsr()  # (block, repertoires): True where a repertoire carries it
    keep = _carriers(carried, positives) >= min_carriers
    if candidates is not None:
        keep[keep] = candidates(carried[keep])
    shared = np.flatnonzero(keep)
    return carried[shared], block[shared], block_core[shared]


def _blocks(near: np.ndarray) -> Iterator[slice]:
    """Consecutive blocks of candidates (`near`: the holdings of the clones near each) of at most
    :data:`CARRIED_BLOCK` candidates and :data:`NEAR_HOLDINGS_BLOCK` holdings (one candidate alone where it has
    more)."""
    work, start = np.cumsum(near, dtype=np.int64), 0
    while start < len(near):
        before = work[start - 1] if start else 0
        stop = min(start + CARRIED_BLOCK, int(np.searchsorted(work, before + NEAR_HOLDINGS_BLOCK, side="right")))
        stop = max(stop, start + 1)
        yield slice(start, stop)
        start = stop


def _stacked_transposed(blocks: list[sparse.csr_matrix], n_columns: int,
                        places: list[np.ndarray] | None = None) -> sparse.csr_matrix:
    """Bool CSR `blocks` of `n_columns` columns stacked and transposed, as CSR with sorted indices. `places`: per
    block, the row of the stack each of its rows becomes (None: the blocks' rows in order). Each block's rows are
    copied to their places (the block then freed from the list), and scipy's linear transpose (`tocsc`) sorts
    nothing: this holds the blocks and the stack, then the stack and the result (5 bytes a value each; 9 where there
    are 2^31 values or more, as scipy then makes every index int64), where `vstack(blocks).T.tocsr()` holds three
    copies."""
    sizes = [block.shape[0] for block in blocks]
    rows = sum(sizes)
    if places is None:
        places = np.split(np.arange(rows), np.cumsum(sizes)[:-1]) if blocks else []
    lengths = np.zeros(rows, dtype=np.int64)
    for block, place in zip(blocks, places):
        lengths[place] = np.diff(block.indptr)
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    del lengths
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    blocks.reverse()
    places.reverse()
    while blocks:
        _place_rows(blocks.pop(), places.pop(), indptr, indices)
    if indptr[-1] < (1 << 31):
        indptr = indptr.astype(np.int32)
    stack = sparse.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(rows, n_columns))
    del indices, indptr
    return stack.tocsc().T  # the CSC of the stack, read as the CSR of its transpose


def _place_rows(block: sparse.csr_matrix, place: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                chunk: int = 1 << 22) -> None:
    """Copy each row r of `block` to row place[r] of the CSR (`indptr`, `indices`) being filled, `chunk` values at
    a time (16 bytes a value while copied)."""
    start = 0
    while start < block.shape[0]:
        stop = max(start + 1, int(np.searchsorted(block.indptr, block.indptr[start] + chunk, side="right")) - 1)
        stop = min(stop, block.shape[0])
        first, last = int(block.indptr[start]), int(block.indptr[stop])
        lengths = np.diff(block.indptr[start:stop + 1])
        to = np.repeat(indptr[place[start:stop]] - block.indptr[start:stop], lengths) + np.arange(first, last)
        indices[to] = block.indices[first:last]
        start = stop


def _carriers(incidence: sparse.csr_matrix, positives: np.ndarray | None) -> np.ndarray:
    """How many repertoires (columns of CSR `incidence`; of the `positives` only, where given) carry each row."""
    per_row = np.diff(incidence.indptr)
    if positives is None:
        return per_row
    row = np.repeat(np.arange(incidence.shape[0]), per_row)
    return np.bincount(row[positives[incidence.indices]], minlength=incidence.shape[0])


@dataclass
class RuleChoice:
    """The chosen rule, its fitted test, its clones, every rule's inner-CV ROC AUC (as `str(rule)` -> AUC), and the
    rule of better inner AUC that it was kept over, as that did not beat it significantly ("" where none). (Among
    the fits `choose_clone_rule` compares, those that cannot be chosen hold no clones: None.)"""

    rule: CloneRule
    test: PublicCloneTest
    clones: CohortClones | None
    inner_aucs: dict[str, float]
    kept_over: str = ""

    def summary(self) -> dict:
        """What the model's config.json and the report keep of the choice."""
        return {**self.rule.as_dict(), "inner_auc": round(self.test.inner_auc, 4),
                "inner_aucs": {k: round(v, 4) for k, v in self.inner_aucs.items()},
                "p_threshold": self.test.threshold, "pgen_cutoff": self.test.pgen_cutoff,
                **({"kept_over": self.kept_over} if self.kept_over else {})}


def choose_clone_rule(candidates: Iterable[CohortClones], y: np.ndarray, seed: int,
                      pgen: Callable[[CohortClones], Callable | None] | None = None,
                      inner_folds: int = CLONE_INNER_FOLDS, expected: int | None = None,
                      pgen_limit: int | None = PGEN_LIMIT, groups: np.ndarray | None = None) -> RuleChoice:
    """Fit the public-clone test on each rule's incidence (rows: the repertoires of `y`, the same
    `inner_folds` inner folds for all, each of `groups` whole where given; `pgen(clones)`: the test's pgen of the
    columns, e.g. :class:`ColumnPgen`, or None, asked for at most `pgen_limit` columns a fit) and keep the rule of
    the best inner ROC AUC, the earlier on ties, unless it does not beat a rule of a smaller radius significantly
    (:func:`prefer_exact_rules`). A rule
    without a clone (none is carried by enough repertoires) has inner AUC 0.5; its test associates none
    and scores the base rate.

    `candidates` may be a generator (:func:`each_cohort_clones`; `expected`: how many it yields, for the
    progress lines): only the best rule of each radius so far keeps its clones, one of them is the choice."""
    fits: list[RuleChoice] = []
    aucs: dict[str, float] = {}
    best_of_radius: dict[int, RuleChoice] = {}
    progress = LoggedProgress(log, "clone rules: fitting the public-clone test",
                              expected if expected is not None else len(candidates), "rules",
                              last_line=False)
    for clones in candidates:
        test = PublicCloneTest(inner_folds=inner_folds, random_state=seed).fit(
            clones.incidence, y, pgen=pgen(clones) if pgen else None, pgen_limit=pgen_limit, groups=groups)
        aucs[str(clones.rule)] = float(test.inner_auc)
        fit = RuleChoice(clones.rule, test, clones, aucs)
        held = best_of_radius.get(fit.rule.radius)
        if held is None or test.inner_auc > held.test.inner_auc:
            best_of_radius[fit.rule.radius] = fit
            if held is not None:
                held.clones = None  # never the choice now
        else:
            fit.clones = None
        fits.append(fit)
        del clones, fit, held  # before the next rule's clones are made
        progress.update()
    if not fits:
        raise DeepRCError("no clone rule to choose from")
    best = prefer_exact_rules(fits, y)
    log.info("clone rule: %s (inner-CV AUC %s)%s", best.rule,
             "; ".join(f"{rule} {auc:.3f}" for rule, auc in aucs.items()),
             f"; clones of pgen above {best.test.pgen_cutoff:g} left out" if best.test.pgen_cutoff else "")
    return best


def prefer_exact_rules(fits: Sequence[RuleChoice], y: np.ndarray) -> RuleChoice:
    """The fit of the best inner AUC (the earlier on ties), unless it does not beat the best fit of a
    smaller radius significantly (a one-sided paired DeLong test at the 5% level,
    :data:`SIGNIFICANT_GAIN_Z`): then that one.

    A radius-1 rule has far more candidate clones than an exact one, so its inner AUC is the noisier
    and the more likely to win by chance; and an exact clone's Fisher p needs more carriers than an
    inner fold holds, so inner CV underrates exact rules most where receptors are rare
    (``benchmarks/clone_rule_choice.py``). Where clones do come as near-identical families, radius 1
    wins by far more than that.
    """
    best = max(fits, key=lambda fit: fit.test.inner_auc)  # max keeps the first of equals
    y = np.asarray(y)
    for radius in sorted({fit.rule.radius for fit in fits}):
        if radius >= best.rule.radius:
            break
        simpler = max((fit for fit in fits if fit.rule.radius == radius), key=lambda fit: fit.test.inner_auc)
        gain, se = paired_auc_difference(y, simpler.test.inner_scores_, best.test.inner_scores_)
        if gain <= SIGNIFICANT_GAIN_Z * se:
            log.info("clone rule: %s does not beat %s significantly (paired difference of their pooled inner-CV "
                     "scores' AUCs %+.3f, SE %.3f, DeLong): the simpler is kept", best.rule, simpler.rule, gain, se)
            return replace(simpler, kept_over=str(best.rule))
    return best


# --- the sequences of clones -----------------------------------------------------------------------
class KeyedRows:
    """Repertoires by row (`repertoire_of(row)`) with their clone keys (V unknown, :func:`repertoire_keys`):
    each row is keyed once and its keys kept (read-only) while all kept take at most `max_bytes`, so that the
    pgen requests of every rule and the memory's clones (:func:`clone_sequences`) key a repertoire once, not
    once a rule (keying costs ~3x reading it)."""

    def __init__(self, repertoire_of: Callable[[int], object], max_bytes: int = KEYED_ROWS_BYTES) -> None:
        self.repertoire_of, self.max_bytes = repertoire_of, int(max_bytes)
        self._keys: dict[int, np.ndarray] = {}
        self._bytes = 0

    def keyed(self, row: int) -> tuple[object, np.ndarray]:
        """The repertoire at `row` and the clone keys (V unknown) of its sequences, int64 (n,)."""
        repertoire = self.repertoire_of(row)
        if row in self._keys:
            return repertoire, self._keys[row]
        keys = repertoire_keys(repertoire)
        if self._bytes + keys.nbytes <= self.max_bytes:
            keys.flags.writeable = False  # shared by every later caller
            self._keys[row], self._bytes = keys, self._bytes + keys.nbytes
        return repertoire, keys


def keyed_rows(repertoire_of: Callable[[int], object] | KeyedRows, max_bytes: int = 0) -> KeyedRows:
    """`repertoire_of` as :class:`KeyedRows`: itself where it is one, else one that keeps `max_bytes` of keys."""
    return repertoire_of if isinstance(repertoire_of, KeyedRows) else KeyedRows(repertoire_of, max_bytes)


def clone_sequences(repertoire_of: Callable[[int], object] | KeyedRows, incidence: sparse.spmatrix,
                    keys: np.ndarray, v_genes: Sequence[str], v_level: str) -> dict[int, tuple[str, int]]:
    """(junction, V index; -1 = unknown) of each clone key (V at `v_level`), read from a sequence that
    has it in the repertoires `repertoire_of(row)` of the rows of `incidence` (rows by these clones'
    columns) that carry them, the most-carrying first: only the sequences of these clones are decoded.
    A :class:`KeyedRows` keys each repertoire once over calls."""
    rows = keyed_rows(repertoire_of)
    wanted = unique_keys(np.asarray(keys, dtype=np.int64))
    found: dict[int, tuple[str, int]] = {}
    incidence = sparse.csr_matrix(incidence)
    for row in np.argsort(-np.diff(incidence.indptr), kind="stable"):
        if len(found) == len(wanted) or incidence.indptr[row + 1] == incidence.indptr[row]:
            break
        rep, core_keys = rows.keyed(int(row))
        rep_keys = with_v(core_keys, v_codes(rep, v_genes, v_level))
        hit = np.flatnonzero(in_sorted(wanted, rep_keys))
        hit = hit[[k not in found for k in rep_keys[hit].tolist()]]
        carriers = rep.subset(hit)
        for key, junction, v in zip(rep_keys[hit].tolist(), decode(carriers.codes, carriers.lengths),
                                    carriers.v_index.astype(int).tolist()):
            found.setdefault(key, (junction, v))
    return found


class ColumnPgen:
    """The generation probability of columns of a :class:`CohortClones` (what `PublicCloneTest.fit`
    asks as `pgen`): each column's clone read from the repertoires `repertoire_of(row)` of its rows,
    its pgen under OLGA's model of `chain` in `species` (`deeprc_hopfield.pgen`: mouse_T_beta for a mouse TRB
    store) with V at the rule's level, computed by `workers` processes."""

    def __init__(self, clones: CohortClones, repertoire_of: Callable[[int], object] | KeyedRows,
                 v_genes: Sequence[str], chain: str, workers: int = 1, species: str = DEFAULT_SPECIES) -> None:
        from deeprc_hopfield.pgen import pgen_model

        self.clones, self.repertoire_of, self.v_genes, self.workers = clones, repertoire_of, list(v_genes), workers
        self.model = pgen_model(chain, species, v_level=clones.rule.v_level)

    def __call__(self, columns: np.ndarray) -> np.ndarray:
        keys = self.clones.keys[columns]
        found = clone_sequences(self.repertoire_of, self.clones.incidence[:, columns], keys, self.v_genes,
                                self.clones.rule.v_level)
        names = self.v_genes + [None]
        have = [i for i, k in enumerate(keys.tolist()) if k in found]
        out = np.full(len(keys), np.nan)
        if have:
            clones = [found[int(keys[i])] for i in have]
            out[have] = self.model.pgen([j for j, _ in clones], [names[v] for _, v in clones], workers=self.workers)
        return out


def pgen_for(repertoire_of: Callable[[int], object] | KeyedRows, v_genes: Sequence[str], use: bool = True,
             workers: int = 1, species: str = DEFAULT_SPECIES) -> Callable[[CohortClones], ColumnPgen] | None:
    """What :func:`choose_clone_rule` takes as `pgen`: a :class:`ColumnPgen` per rule for repertoires of the
    chain of `v_genes` in `species` (the store's; `workers` processes compute it), all reading the repertoires
    through one :class:`KeyedRows` (a plain callable is made one); None (no filter) when `use` is off or OLGA has
    no model of that chain."""
    from deeprc_hopfield.pgen import chain_of_genes, olga_chain

    if not use:
        return None
    try:
        chain = olga_chain(chain_of_genes(v_genes), species)[1]
    except DeepRCError as exc:
        log.info("clone rule: no pgen filter (%s)", exc)
        return None
    rows = keyed_rows(repertoire_of, KEYED_ROWS_BYTES)
    return lambda clones: ColumnPgen(clones, rows, v_genes, chain, workers, species)
