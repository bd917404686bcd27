"""ReceptorIndex: exact and one-substitution matches on the CDR3 core with the V family rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeprc_hopfield import neighbours
from deeprc_hopfield.cdr3 import core
from deeprc_hopfield.encoding import encode
from deeprc_hopfield.neighbours import ReceptorIndex
from deeprc_hopfield.public_clones import name_codes
from deeprc_hopfield.store import Repertoire


def brute_force(queries: list[str], q_v: np.ndarray, refs: list[str], r_v: np.ndarray, radius: int
                ) -> set[tuple[int, int, int]]:
    """Every matching (query, ref, distance), the slow and obvious way."""
    out = set()
    for i, (a, va) in enumerate(zip(queries, q_v)):
        for j, (b, vb) in enumerate(zip(refs, r_v)):
            ca, cb = core(a), core(b)
            if len(ca) != len(cb) or not (va < 0 or vb < 0 or va == vb):
                continue
            d = sum(x != y for x, y in zip(ca, cb))
            if d <= radius:
                out.add((i, j, d))
    return out


def as_set(pairs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> set[tuple[int, int, int]]:
    q, r, d = pairs
    assert q.dtype == np.int64 and r.dtype == np.int64 and d.dtype == np.int8
    found = list(zip(q.tolist(), r.tolist(), d.tolist()))
    assert len(found) == len(set(found)), "a pair reported twice"
    return set(found)


def random_junctions(rng: np.random.Generator, n: int, letters: str, low: int, high: int) -> list[str]:
    """C + random core of `low`..`high` residues from `letters` + F."""
    pool = np.array(list(letters))
    return ["C" + "".join(rng.choice(pool, size=int(k))) + "F" for k in rng.integers(low, high + 1, size=n)]


def match(refs: list[str], queries: list[str], radius: int, r_v=None, q_v=None, **kwargs) -> set:
    codes, lengths = encode(queries)
    return as_set(ReceptorIndex.from_sequences(refs, r_v, radius).pairs(codes, lengths, q_v, **kwargs))


@pytest.mark.parametrize("radius", [0, 1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_brute_force_on_random_data(radius: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # a 3-letter alphabet and short cores: many exact, distance-1, distance-2 and off-by-one-length pairs
    refs = random_junctions(rng, 150, "ACD", 1, 5)
    refs += [refs[i] for i in rng.integers(0, len(refs), 30)]  # duplicates in the reference
    queries = random_junctions(rng, 250, "ACD", 1, 5)
    r_v, q_v = rng.integers(-1, 3, size=len(refs)), rng.integers(-1, 3, size=len(queries))
    expected = brute_force(queries, q_v, refs, r_v, radius)
    assert {d for _, _, d in expected} == set(range(radius + 1))  # the data exercise every distance
    assert match(refs, queries, radius, r_v, q_v) == expected
    assert match(refs, queries, radius, r_v, q_v, chunk=17) == expected


def test_agrees_with_brute_force_with_the_full_alphabet() -> None:
    rng = np.random.default_rng(5)
    refs = random_junctions(rng, 200, "ACDEFGHIKLMNPQRSTVWY", 8, 16)
    queries = []
    for junction in refs[:100]:  # substitutions (sometimes at the anchors), insertions, copies
        position = int(rng.integers(0, len(junction)))
        letter = "ACDEFGHIKLMNPQRSTVWY"[int(rng.integers(0, 20))]
        queries.append(junction[:position] + letter + junction[position + 1:])
        queries.append(junction[:position] + letter + junction[position:])
        queries.append(junction)
    queries += random_junctions(rng, 100, "ACDEFGHIKLMNPQRSTVWY", 8, 16)
    for radius in (0, 1):
        expected = brute_force(queries, np.full(len(queries), -1), refs, np.full(len(refs), -1), radius)
        assert match(refs, queries, radius) == expected


def test_lengths_differing_by_one_never_match() -> None:
    assert match(["CASSLF"], ["CASSLLF", "CASSF", "CASSLAF", "CAASSLF"], radius=1) == set()


def test_distance_two_does_not_match_and_distance_one_does() -> None:
    refs = ["CASSLGF"]
    assert match(refs, ["CASTLGF", "CAGTLGF", "WASSLGY"], radius=1) == {(0, 0, 1), (2, 0, 0)}
    assert match(refs, ["CASTLGF", "CAGTLGF"], radius=0) == set()


@pytest.mark.parametrize("radius", [0, 1])
def test_duplicates_in_the_reference_are_all_reported(radius: int) -> None:
    refs = ["CASSLF", "CAGGF", "CASSLF", "CASSLF", "CASSAF"]
    found = match(refs, ["CASSLF"], radius)
    exact = {(0, 0, 0), (0, 2, 0), (0, 3, 0)}
    assert found == (exact | {(0, 4, 1)} if radius else exact)


def test_exact_matches_are_found_once_not_once_per_position() -> None:
    codes, lengths = encode(["CASSLGETQYF"])
    q, r, d = ReceptorIndex.from_sequences(["CASSLGETQYF"], radius=1).pairs(codes, lengths)
    assert (q.tolist(), r.tolist(), d.tolist()) == ([0], [0], [0])


def test_v_rule() -> None:
    names = ["TRBV5-1*01", "TRBV5", "TRBV5-4*01", "TRBV6-1*01", None]
    v = name_codes(names)  # family codes
    assert v[0] == v[1] == v[2] and v[3] != v[0] and v[4] == -1
    refs = ["CASSLF"] * 5
    for radius in (0, 1):
        for query in ("CASSLF", "CASTLF"):
            found = match(refs, [query] * 5, radius, v, v)
            if query == "CASTLF" and radius == 0:
                assert found == set()
                continue
            pairs = {(i, j) for i, j, _ in found}
            expected = {(i, j) for i in range(5) for j in range(5)
                        if names[i] is None or names[j] is None or (i < 3) == (j < 3)}
            assert pairs == expected
    # TRBV5-1 (gene) and TRBV5 (family only) match; TRBV5 and TRBV6 do not; unknown V matches any
    assert (1, 0) in pairs and (0, 1) in pairs and (0, 3) not in pairs and (3, 4) in pairs and (4, 3) in pairs


def test_anchors_are_ignored() -> None:
    assert match(["CASSLGF"], ["WASSLGY", "CASSLGW", "AASSLGA"], radius=0) == {(0, 0, 0), (1, 0, 0), (2, 0, 0)}
    assert match(["CASSLGF"], ["WASTLGY"], radius=1) == {(0, 0, 1)}
    # trim=0 compares whole junctions
    codes, lengths = encode(["WASSLGY", "CASSLGF"])
    index = ReceptorIndex.from_sequences(["CASSLGF"], trim=0)
    assert as_set(index.pairs(codes, lengths)) == {(1, 0, 0)}


def test_chunking_gives_identical_results() -> None:
    rng = np.random.default_rng(3)
    refs = random_junctions(rng, 300, "ACDE", 2, 6)
    queries = random_junctions(rng, 500, "ACDE", 2, 6)
    codes, lengths = encode(queries)
    q_v = rng.integers(-1, 4, size=len(queries))
    index = ReceptorIndex.from_sequences(refs, rng.integers(-1, 4, size=len(refs)), radius=1)
    whole = index.pairs(codes, lengths, q_v)
    for chunk in (1, 7, 64, 499, 10_000):
        parts = index.pairs(codes, lengths, q_v, chunk=chunk)
        assert all(np.array_equal(a, b) for a, b in zip(whole, parts))
        assert all(np.array_equal(a, b) for a, b in zip(index.first_match(codes, lengths, q_v),
                                                        index.first_match(codes, lengths, q_v, chunk=chunk)))
        assert np.array_equal(index.match_counts(codes, lengths, q_v),
                              index.match_counts(codes, lengths, q_v, chunk=chunk))


@pytest.mark.parametrize("keys_per_part, cores_per_group, workers",
                         [(1, None, 1), (50, 7, 1), (50, 7, 3), (1, None, 4), (1 << 25, 1, 2), (1 << 25, None, 1)])
def test_core_neighbours_of_chosen_rows_in_any_number_of_parts(keys_per_part: int, cores_per_group, workers: int,
                                                                monkeypatch) -> None:
    """The same pairs whatever the key parts, the threads pairing them and the groups of rows (several groups: read
    back from files)."""
    monkeypatch.setattr(neighbours, "PAIRS_COMPARED", 3)  # runs paired and residues compared a few at a time
    monkeypatch.setattr(neighbours, "PAIRS_PLACED", 5)  # and pairs filed and placed a few at a time
    rng = np.random.default_rng(4)
    junctions = list({core(j): j for j in random_junctions(rng, 400, "ACD", 0, 5)}.values())  # distinct cores
    rows = np.sort(rng.choice(len(junctions), len(junctions) // 3, replace=False))
    expected = {(i, j) for i, j, _ in brute_force(junctions, np.full(len(junctions), -1), junctions,
                                                  np.full(len(junctions), -1), 1) if i in set(rows.tolist())}
    codes, lengths = encode(junctions)
    found = neighbours.core_neighbours(codes, lengths, rows, keys_per_part=keys_per_part,
                                       cores_per_group=cores_per_group, workers=workers)
    assert len(found) == (1 if cores_per_group is None else -(-len(rows) // cores_per_group))
    for g in range(len(found)):  # each group: its rows, sorted, once each
        first, group = found.group(g)
        assert group.has_canonical_format and set(group.data.tolist()) <= {1}  # sorted, each pair once
        stop = found.bounds[g + 1] if g + 1 < len(found) else len(junctions)
        assert first == found.bounds[g] and group.shape == (stop - first, len(junctions))
    if len(found) > 1:  # read once, each group's matrix is filed in place of its pairs and read back from there
        assert {p.suffix for p in Path(found._folder.name).iterdir()} <= {".indptr", ".indices"}
    matrix = found.matrix()
    folder = found._folder and Path(found._folder.name)
    assert (folder is not None) == (len(found) > 1) and (folder is None or any(folder.iterdir()))
    del found  # its files go with it
    assert folder is None or not folder.exists()
    assert matrix.shape == (len(junctions),) * 2 and matrix.has_sorted_indices and set(matrix.data.tolist()) == {1}
    assert set(zip(*map(np.ndarray.tolist, matrix.nonzero()))) == expected
    assert len(expected) > 3 * len(rows)  # neighbours beyond the diagonal
    every = neighbours.core_neighbours(codes, lengths, keys_per_part=keys_per_part,
                                       cores_per_group=cores_per_group, workers=workers).matrix()
    assert (every != every.T).nnz == 0 and np.array_equal(every[rows].toarray(), matrix[rows].toarray())


def test_core_neighbours_in_parts_logs_its_keying_and_its_parts(monkeypatch, caplog) -> None:
    """A join in several parts logs the cores keyed over its two passes and the parts joined (18 min at CMV
    size), each to its end."""
    import functools
    import logging

    monkeypatch.setattr(neighbours, "LoggedProgress", functools.partial(neighbours.LoggedProgress, every=0.0))
    junctions = list({core(j): j for j in random_junctions(np.random.default_rng(5), 300, "ACD", 0, 5)}.values())
    codes, lengths = encode(junctions)
    with caplog.at_level(logging.INFO, logger=neighbours.__name__):
        neighbours.core_neighbours(codes, lengths, keys_per_part=40)
    lines = [r.getMessage() for r in caplog.records]
    keyed = [line for line in lines if line.startswith("one-substitution join: keying cores (two passes): ")]
    joined = [line for line in lines if line.startswith("one-substitution join: joining: ")]
    n, parts = len(junctions), int(joined[-1].split("/")[1].split()[0])
    assert keyed[-1].split(": ")[-1].startswith(f"{2 * n:,}/{2 * n:,} cores (100%)")
    assert parts > 3 and joined[-1].split(": ")[-1].startswith(f"{parts}/{parts} parts (100%)")


def test_first_match_and_match_counts() -> None:
    refs = ["CASTLF", "CAGGF", "CASSLF", "CASSLF"]
    codes, lengths = encode(["CASSLF", "CAGAF", "CWWWWF", "CASTLF"])
    index = ReceptorIndex.from_sequences(refs, radius=1)
    ref, distance = index.first_match(codes, lengths)
    assert ref.tolist() == [2, 1, -1, 0]  # the exact match before the closer index at distance 1
    assert distance.tolist() == [0, 1, -1, 0]
    assert index.match_counts(codes, lengths).tolist() == [3, 1, 0, 3]


@pytest.mark.parametrize("radius", [2, -1, 0.5, True, "1"])
def test_radius_outside_0_1_is_refused(radius) -> None:
    with pytest.raises(ValueError, match=f"radius must be 0 or 1.*got {radius!r}"):
        ReceptorIndex.from_sequences(["CASSLF"], radius=radius)


@pytest.mark.parametrize("radius", [0, 1])
def test_hash_collisions_are_checked_on_the_residues(radius: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every key equal, every pair of sequences is a candidate: only true matches survive."""
    rng = np.random.default_rng(4)
    refs = random_junctions(rng, 60, "ACD", 1, 4)
    queries = random_junctions(rng, 80, "ACD", 1, 4)
    r_v, q_v = rng.integers(-1, 3, size=len(refs)), rng.integers(-1, 3, size=len(queries))
    expected = brute_force(queries, q_v, refs, r_v, radius)

    def constant(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        zero = np.zeros(size, dtype=np.uint64)
        return zero, zero, zero

    monkeypatch.setattr(neighbours, "_tables", constant)
    assert match(refs, queries, radius, r_v, q_v) == expected


def test_store_repertoire_matches_without_decoding() -> None:
    v_genes = ["TRBV5-1*01", "TRBV6-1*01"]
    junctions = ["CASSLF", "CASTLF", "CAGGF", "CASSLF"]
    codes, lengths = encode(junctions)
    repertoire = Repertoire("S1", codes, lengths.astype(np.uint8), np.full(4, np.nan),
                            np.array([0, 1, -1, 1], dtype=np.int16), np.full(4, -1, dtype=np.int16))
    index = ReceptorIndex.from_sequences(["CASSLF", "CAGGF"], name_codes(["TRBV5-1", None]), radius=1)
    # 1 and 3 are TRBV6: not the reference's TRBV5 clone; 2 (no V call) matches the clone without V
    assert as_set(index.pairs_of(repertoire, v_genes)) == {(0, 0, 0), (2, 1, 0)}
    # a repertoire as the reference (issue 13: one repertoire's clones against another's)
    self_index = ReceptorIndex.from_repertoire(repertoire, v_genes, radius=1)
    assert (0, 3, 0) not in as_set(self_index.pairs_of(repertoire, v_genes))  # V families differ
    assert (1, 3, 1) in as_set(self_index.pairs_of(repertoire, v_genes))


def test_empty_inputs() -> None:
    empty_codes, empty_lengths = np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.uint8)
    for radius in (0, 1):
        index = ReceptorIndex.from_sequences(["CASSLF"], radius=radius)
        q, r, d = index.pairs(empty_codes, empty_lengths)
        assert len(q) == len(r) == len(d) == 0
        assert index.first_match(empty_codes, empty_lengths)[0].shape == (0,)
        nothing = ReceptorIndex(empty_codes, empty_lengths, radius=radius)
        codes, lengths = encode(["CASSLF"])
        assert len(nothing.pairs(codes, lengths)[0]) == 0
        assert nothing.first_match(codes, lengths)[0].tolist() == [-1]


def test_mismatched_inputs_are_refused() -> None:
    index = ReceptorIndex.from_sequences(["CASSLF"])
    codes, lengths = encode(["CASSLF", "CAF"])
    with pytest.raises(ValueError, match="V codes of shape"):
        index.pairs(codes, lengths, np.zeros(3))
    with pytest.raises(ValueError, match="codes hold"):
        index.pairs(codes[:-1], lengths)
    with pytest.raises(ValueError, match="V codes of shape"):
        ReceptorIndex.from_sequences(["CASSLF"], np.zeros(2))


@pytest.mark.parametrize("parts", [1, 3, 11, 64])
def test_key_parts_are_ranges_of_keys_in_order(parts: int) -> None:
    """Sorted keys fall in parts 0, 1, ... in order (each part's sorted keys, part after part, are all of them
    sorted), every part within range and none left nearly empty by hash keys over the whole int64 range."""
    rng = np.random.default_rng(5)
    keys = np.sort(np.concatenate([rng.integers(-2**63, 2**63 - 1, 20_000, dtype=np.int64),
                                   np.array([-2**63, -1, 0, 2**63 - 1], dtype=np.int64)]))
    part = neighbours.key_part(keys, parts)
    assert part.min() == 0 and part.max() == parts - 1 and np.all(np.diff(part) >= 0)
    assert np.bincount(part, minlength=parts).min() > 0.8 * len(keys) / parts


@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000, 70_000])
def test_slot_ranks_number_taken_slots_in_order(n: int) -> None:
    rng = np.random.default_rng(n)
    slots = rng.integers(0, n, size=max(n // 3, 1))
    ranks = neighbours.SlotRanks(n)
    for part in np.array_split(slots, 3):  # repeats, across and within the parts
        ranks.take(part)
    taken = np.unique(slots)
    assert ranks.count() == len(taken)
    assert np.array_equal(np.concatenate(list(ranks.taken(chunk=7))), taken)
    assert np.array_equal(ranks.rank(taken), np.arange(len(taken)))
    every = np.arange(n + 1)
    assert np.array_equal(ranks.rank(every), np.searchsorted(taken, every))  # untaken slots and slot n too


@pytest.mark.parametrize("byte_table", [False, True])  # numpy as installed; the byte table of numpy < 2
def test_popcount_counts_every_bit(byte_table: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if byte_table:
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    words = np.array([0, 1, 2**63, 2**64 - 1, 0xF0F0], dtype=np.uint64)
    assert neighbours.popcount(words).tolist() == [bin(int(w)).count("1") for w in words]


@pytest.mark.parametrize("row_type", [np.int32, np.int64])
@pytest.mark.parametrize("rows", [7, 300, 5000])
def test_bool_csr_keeps_each_rows_values_in_the_order_the_parts_give_them(rows: int, row_type: type) -> None:
    """Parts large beside the rows are placed by counting, small ones by sorting: either way each row holds its
    values in the parts' order (duplicates kept), as a plain loop gives them."""
    rng = np.random.default_rng(rows)
    parts = [(rng.integers(0, rows, size).astype(row_type), rng.integers(0, 50, size).astype(np.int32))
             for size in (0, 1, 40, 900, 3)]
    counts = sum(np.bincount(r, minlength=rows) for r, _ in parts)
    placed_by = [len(r) * neighbours.ROWS_PER_COUNTED_VALUE >= rows for r, _ in parts]
    matrix = neighbours.bool_csr(iter(parts), counts, 50)
    expected = [[] for _ in range(rows)]
    for r, c in parts:
        for a, b in zip(r.tolist(), c.tolist()):
            expected[a].append(b)
    assert matrix.shape == (rows, 50) and matrix.dtype == bool
    assert [matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]].tolist() for i in range(rows)] == expected
    assert any(placed_by) and (rows == 7 or not all(placed_by))  # both ways ran where the sizes allow
