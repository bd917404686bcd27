"""The public-clone path keeps only sequences whose clone can be shared (issue 14, item 2), with the
same clones as collecting every sequence."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import junction_repertoire, random_junctions
from scipy import sparse

from deeprc_hopfield import neighbours
from deeprc_hopfield.clone_rules import CloneCollector, CloneRule, clone_rules, cohort_clones, shareable_cores
from deeprc_hopfield.public_clones import (KeyCounter, PublicCloneTest, ShardedKeyCounter, min_carriers, positive_rows,
                                           repertoire_keys)
from deeprc_hopfield.store import Repertoire

V_GENES = ["TRBV5-1", "TRBV5", "TRBV6-1", "TRBV7-2", "TRBV9"]
AMINO = "ACDEFGHIKLMNPQRSTVWY"


def rough_cohort(seed: int = 0, n: int = 12) -> list[Repertoire]:
    """Random repertoires sharing a few clones exactly, one substitution apart, under other V calls
    (family-only, another gene, missing) and with short junctions (cores of 0 or 1 residue)."""
    rng = np.random.default_rng(seed)
    public = random_junctions(rng, 6)
    reps = []
    for i in range(n):
        junctions = random_junctions(rng, 60) + ["CF", "CAF", "CASF"]
        for clone in public:
            if rng.random() < 0.4:
                p = int(rng.integers(1, len(clone) - 1))
                junctions.append(clone if rng.random() < 0.5 else clone[:p] + AMINO[int(rng.integers(20))]
                                 + clone[p + 1:])
        v = [int(x) for x in rng.integers(-1, len(V_GENES), len(junctions))]
        reps.append(junction_repertoire(f"r{i}", junctions, v))
    return reps


def every_sequence(reps: list[Repertoire]) -> list:
    """The clones of every rule, collected from every sequence (no filter)."""
    collector = CloneCollector(V_GENES, clone_rules())
    for rep in reps:
        collector.add(rep)
    return collector.result()


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_key_counter_finds_the_keys_of_two_repertoires_or_more(chunk):
    rng = np.random.default_rng(1)
    sets = [np.unique(rng.integers(-50, 50, int(rng.integers(0, 30)))) for _ in range(25)]
    counter = KeyCounter(chunk)
    for keys in sets:
        counter.add(keys)
    values, counts = np.unique(np.concatenate(sets), return_counts=True)
    assert np.array_equal(counter.shared(), values[counts >= 2])


@pytest.mark.parametrize("keys_per_pass", [1 << 27, 50, 1])
@pytest.mark.parametrize("seed", [0, 1])
def test_filtered_clones_are_those_of_every_sequence(seed, keys_per_pass):
    reps = rough_cohort(seed)
    expected = every_sequence(reps)
    found = cohort_clones(reps, V_GENES, clone_rules(), keys_per_pass=keys_per_pass)
    assert [c.rule for c in found] == [c.rule for c in expected]
    for mine, theirs in zip(found, expected):
        assert np.array_equal(mine.keys, theirs.keys), mine.rule
        assert (sparse.csr_matrix(mine.incidence) != sparse.csr_matrix(theirs.incidence)).nnz == 0, mine.rule
    assert sum(c.incidence.shape[1] for c in expected) > 0


@pytest.mark.parametrize("keys_per_pass", [1 << 27, 50])
def test_threads_reading_ahead_give_the_same_clones(keys_per_pass):
    """`workers` threads read and key each pass's repertoires ahead of its merging (and count or keep the keys of
    the passes that count cores and wildcard keys and find the cores that may carry a clone, in whatever order they
    come): every pass yields what one thread yields."""
    reps = rough_cohort(3, n=30)
    y = np.random.default_rng(3).permutation(np.r_[np.ones(15, int), np.zeros(15, int)])
    options = {"keys_per_pass": keys_per_pass, "min_carriers": 3, "positives": positive_rows(y)}
    one = cohort_clones(reps, V_GENES, clone_rules(), **options)
    three = cohort_clones(reps, V_GENES, clone_rules(), workers=3, **options)
    assert sum(c.incidence.shape[1] for c in one[3:]) > 0
    for a, b in zip(one, three):
        assert a.rule == b.rule and np.array_equal(a.keys, b.keys), a.rule
        assert (sparse.csr_matrix(a.incidence) != sparse.csr_matrix(b.incidence)).nnz == 0, a.rule


def test_private_sequences_are_dropped():
    reps = rough_cohort(2)
    shareable = shareable_cores(reps, radius_one=True)
    kept = sum(int(shareable.holds(rep, repertoire_keys(rep)).sum()) for rep in reps)
    assert 0 < kept < sum(len(rep) for rep in reps) // 2  # the random background is private


@pytest.mark.parametrize("keys_per_pass", [1 << 27, 1])
@pytest.mark.parametrize("fewest", [3, 5])
def test_clones_of_too_few_carriers_are_left_out_and_the_rest_kept_whole(fewest, keys_per_pass):
    reps = rough_cohort(3, n=16)
    expected = every_sequence(reps)
    found = cohort_clones(reps, V_GENES, clone_rules(), keys_per_pass=keys_per_pass, min_carriers=fewest)
    for mine, theirs in zip(found, expected):
        keep = np.diff(sparse.csc_matrix(theirs.incidence).indptr) >= fewest
        assert np.array_equal(mine.keys, theirs.keys[keep]), mine.rule
        assert (sparse.csr_matrix(mine.incidence) != sparse.csr_matrix(theirs.incidence)[:, keep]).nnz == 0, mine.rule
    assert 0 < sum(c.incidence.shape[1] for c in found) < sum(c.incidence.shape[1] for c in expected)


def test_min_carriers_changes_nothing_the_public_clone_test_finds():
    reps = rough_cohort(4, n=40)
    y = np.random.default_rng(4).permutation(np.r_[np.ones(20, int), np.zeros(20, int)])
    fewest = min_carriers(y, seed=0)
    assert fewest > 2
    wholes = cohort_clones(reps, V_GENES, clone_rules())
    pruneds = cohort_clones(reps, V_GENES, clone_rules(), min_carriers=fewest)
    assert sum(c.incidence.shape[1] for c in pruneds) < sum(c.incidence.shape[1] for c in wholes)
    for rule, whole, pruned in zip(clone_rules(), wholes, pruneds):
        a, b = (PublicCloneTest(random_state=0).fit(c.incidence, y) for c in (whole, pruned))
        assert np.array_equal(whole.keys[a.associated_], pruned.keys[b.associated_]), rule
        assert np.array_equal(a.pgen_inner_aucs_, b.pgen_inner_aucs_) and a.threshold_ == b.threshold_, rule
        assert np.array_equal(a.out_of_fold_, b.out_of_fold_), rule
        assert np.allclose(a.predict_proba(whole.incidence), b.predict_proba(pruned.incidence)), rule


def test_min_carriers_is_where_fishers_p_can_first_pass_the_loosest_threshold():
    y = np.r_[np.ones(40, int), np.zeros(40, int)]  # 80 balanced: all-positive carriers reach p < 0.01 at 7
    assert min_carriers(y, seed=0) == 7
    assert min_carriers(np.r_[np.ones(4, int), np.zeros(36, int)], seed=0) == 2  # rare positives: 2 suffice
    assert min_carriers(np.r_[np.ones(1, int), np.zeros(9, int)], seed=0) == 2  # too few for inner CV: no filter


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
@pytest.mark.parametrize("cap", [2, 3, 6])
def test_key_counter_counts_each_key_up_to_its_cap(chunk, cap):
    rng = np.random.default_rng(2)
    sets = [np.unique(rng.integers(-30, 30, int(rng.integers(0, 25)))) for _ in range(30)]
    counter = KeyCounter(chunk, cap=cap)
    for keys in sets:
        counter.add(keys)
    values, counts = np.unique(np.concatenate(sets), return_counts=True)
    keys, capped = counter.shared_counts()
    assert np.array_equal(keys, values[counts >= 2]) and np.array_equal(capped, np.minimum(counts[counts >= 2], cap))
    assert np.array_equal(counter.seen(), values)


@pytest.mark.parametrize("shards", [1, 3, 16])
def test_a_sharded_key_counter_fed_by_threads_counts_as_one_counter(shards):
    """Threads adding repertoires' keys to a `ShardedKeyCounter` at once, in any order, give one `KeyCounter`'s
    counts and once-seen keys, even where the first repertoire, which cuts its shards, holds one key."""
    rng = np.random.default_rng(shards)
    sets = [np.array([7]), np.zeros(0, dtype=np.int64)]
    sets += [np.unique(rng.integers(-400, 400, int(rng.integers(0, 120)))) for _ in range(60)]
    one, sharded = KeyCounter(cap=3), ShardedKeyCounter(shards, chunk=8, cap=3)
    for keys in sets:
        one.add(keys)
    sharded.add(sets[0])  # every cut at 7: most keys in the first and last shards
    order = 1 + rng.permutation(len(sets) - 1)
    threads = [threading.Thread(target=lambda part: [sharded.add(sets[i]) for i in part], args=(order[t::4],))
               for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    once = np.concatenate(list(sharded.once_parts()))
    keys, counts = sharded.shared_counts()
    expected_keys, expected_counts = one.shared_counts()
    assert np.array_equal(once, one.seen_parts()[0])
    assert np.array_equal(keys, expected_keys) and np.array_equal(counts, expected_counts) and len(keys) > 100
    with pytest.raises(ValueError, match="counts no more"):
        sharded.add(sets[2])


def test_a_sharded_key_counter_refuses_keys_out_of_order():
    """Its shards are ranges of a sorted repertoire's keys: unsorted or repeated keys would be counted in the wrong
    shard, so they are refused."""
    counter = ShardedKeyCounter(4)
    for keys in (np.array([3, 1, 2]), np.array([1, 1, 2])):
        with pytest.raises(ValueError, match="increasing order"):
            counter.add(keys)


def test_clones_counted_in_small_blocks_are_the_same(monkeypatch):
    """The radius-1 join and carrier counts done a few cores and columns at a time change nothing, nor do the
    join's pairs read back from files in groups of a few cores."""
    import deeprc_hopfield.clone_rules as clone_rules_module

    reps = rough_cohort(5, n=16)
    expected = cohort_clones(reps, V_GENES, clone_rules(), min_carriers=3)
    monkeypatch.setattr(clone_rules_module, "CARRIED_BLOCK", 5)
    monkeypatch.setattr(clone_rules_module, "NEAR_HOLDINGS_BLOCK", 4)  # blocks cut by holdings, some of one
    monkeypatch.setattr(neighbours, "KEYS_PER_PART", 7)
    monkeypatch.setattr(neighbours, "PAIRS_COMPARED", 2)
    monkeypatch.setattr(neighbours, "CORES_PER_GROUP", 3)
    monkeypatch.setattr(neighbours, "PAIRS_PLACED", 4)
    found = cohort_clones(reps, V_GENES, clone_rules(), min_carriers=3)
    assert sum(c.incidence.shape[1] for c in expected if c.rule.radius == 1) > 10
    for mine, theirs in zip(found, expected):
        assert np.array_equal(mine.keys, theirs.keys), mine.rule
        for a, b in ((mine.incidence, theirs.incidence), (mine.held, theirs.held)):
            assert (sparse.csr_matrix(a) != sparse.csr_matrix(b)).nnz == 0, mine.rule
        assert mine.incidence.has_sorted_indices, mine.rule


@pytest.mark.parametrize("keys_per_pass", [1 << 27, 2000])  # one pass over the wildcard keys, and several
def test_counting_positive_carriers_only_changes_nothing_the_test_finds(keys_per_pass):
    """Fisher's p needs as many positive carriers as `min_carriers` needs carriers: collecting only the
    clones that enough positives carry leaves out chance clones and no clone the test could take, in
    the fit on all repertoires and in one on a part of them."""
    reps = rough_cohort(6, n=40)
    y = np.random.default_rng(6).permutation(np.r_[np.ones(20, int), np.zeros(20, int)])
    part = np.r_[0:32]
    fewest = min(min_carriers(y, seed=0), min_carriers(y[part], seed=0))
    wholes = cohort_clones(reps, V_GENES, clone_rules(), keys_per_pass=keys_per_pass, min_carriers=fewest)
    positives = cohort_clones(reps, V_GENES, clone_rules(), keys_per_pass=keys_per_pass, min_carriers=fewest,
                              positives=positive_rows(y))
    kept = [c.incidence.shape[1] for c in positives]
    assert sum(kept) < sum(c.incidence.shape[1] for c in wholes)
    assert kept[3:] != [0, 0, 0]  # radius 1 keeps some
    for rule, whole, pruned in zip(clone_rules(), wholes, positives):
        positive_carriers = np.asarray(whole.incidence[y == 1].sum(axis=0)).ravel()
        assert np.array_equal(pruned.keys, whole.keys[positive_carriers >= fewest]), rule
        for rows in (np.arange(len(y)), part):
            a, b = (PublicCloneTest(random_state=0).fit(c.incidence[rows], y[rows]) for c in (whole, pruned))
            assert np.array_equal(whole.keys[a.associated_], pruned.keys[b.associated_]), rule
            assert np.array_equal(a.pgen_inner_aucs_, b.pgen_inner_aucs_) and a.threshold_ == b.threshold_, rule
            assert np.array_equal(a.out_of_fold_, b.out_of_fold_), rule


def test_positive_rows_are_the_second_class():
    assert positive_rows(np.array(["no", "yes", "no"])).tolist() == [False, True, False]
    assert positive_rows(np.array([1, 1])) is None


def test_a_clone_no_positive_holds_is_kept_where_enough_positives_hold_its_neighbours():
    """Radius 1: a CDR3 held by negatives only, each of whose one-substitution neighbours one positive
    holds, is carried by as many positives as hold a neighbour, though no positive count in the tables
    (keys held twice or more) shows it."""
    centre = "CASSLGQGAYEQYF"
    rng = np.random.default_rng(7)
    reps, y = [], []
    for i in range(8):  # positive i holds the neighbour with a W at position 3 + i
        neighbour = centre[:3 + i] + "W" + centre[4 + i:]
        reps.append(junction_repertoire(f"p{i}", random_junctions(rng, 20) + [neighbour], [-1] * 21))
        y.append(1)
    for i in range(8):
        junctions = random_junctions(rng, 20) + ([centre] if i < 2 else [])
        reps.append(junction_repertoire(f"n{i}", junctions, [-1] * len(junctions)))
        y.append(0)
    y = np.array(y)
    rule = [CloneRule("none", 1)]
    (whole,) = cohort_clones(reps, V_GENES, rule, min_carriers=6)
    (pruned,) = cohort_clones(reps, V_GENES, rule, min_carriers=6, positives=positive_rows(y))
    positive_carriers = np.asarray(whole.incidence[y == 1].sum(axis=0)).ravel()
    assert positive_carriers.max() == 8  # the centre: every positive holds a neighbour
    assert np.array_equal(pruned.keys, whole.keys[positive_carriers >= 6])
    assert (sparse.csr_matrix(pruned.incidence) != sparse.csr_matrix(whole.incidence)[:, positive_carriers >= 6]).nnz == 0


def test_where_two_carriers_suffice_a_clone_of_one_positive_carrier_is_kept():
    """With rare positives (2 of 500) one positive carrier can pass p < 0.01 (with one negative carrier:
    p = 1 - C(498, 2) / C(500, 2) ~ 0.008), so at `min_carriers` 2 every shared clone stays, positives
    given or not."""
    y = np.r_[np.ones(2, int), np.zeros(498, int)]
    assert min_carriers(y, seed=0) == 2
    rng = np.random.default_rng(8)
    reps = [junction_repertoire(f"r{i}", random_junctions(rng, 3) + (["CASSLGQGAYEQYF"] if i in (0, 5) else []),
                                [-1] * (3 + (i in (0, 5)))) for i in range(len(y))]
    for rules in (clone_rules(radius=0), clone_rules(radius=1)):
        every = cohort_clones(reps, V_GENES, rules, min_carriers=2)
        counted = cohort_clones(reps, V_GENES, rules, min_carriers=2, positives=positive_rows(y))
        assert all(len(c.keys) > 0 for c in every)  # the clone of one positive and one negative carrier
        for mine, theirs in zip(counted, every):
            assert np.array_equal(mine.keys, theirs.keys), mine.rule


@pytest.mark.parametrize("level", ["family", "gene", "none"])
def test_radius_one_clones_carry_what_a_receptor_index_matches(level):
    """Each radius-1 column is a clone of the cohort carried by exactly the repertoires in which the other
    matcher (`ReceptorIndex`, one substitution, the V rule) finds it, and every clone of two carriers or
    more is a column: the numbered collection against a plain one-clone-at-a-time search."""
    from deeprc_hopfield.public_clones import v_codes, with_v

    reps = rough_cohort(3, n=8)
    (found,) = [c for c in every_sequence(reps) if c.rule == CloneRule(level, 1)]
    v_level = "family" if level == "none" else level  # the index's V rule; "none" ignores V below
    indexes = [neighbours.ReceptorIndex(rep.codes, rep.lengths, None if level == "none" else
                                        v_codes(rep, V_GENES, v_level), radius=1) for rep in reps]
    expected = {}
    for rep in reps:
        v = v_codes(rep, V_GENES, level)
        keys = with_v(repertoire_keys(rep), v)
        for i in np.unique(keys, return_index=True)[1]:
            one = rep.subset(np.array([i]))
            query_v = None if level == "none" else v[[i]]
            carriers = tuple(j for j, index in enumerate(indexes)
                             if index.match_counts(one.codes, one.lengths, query_v)[0] > 0)
            if len(carriers) >= 2:
                expected[int(keys[i])] = carriers
    incidence = found.incidence.toarray()
    columns = {int(key): tuple(np.flatnonzero(incidence[:, c]).tolist()) for c, key in enumerate(found.keys)}
    assert len(columns) > 10 and columns == expected


def test_counting_carriers_group_by_group_shows_progress(monkeypatch, caplog):
    """A radius-1 rule over several groups of the join logs its groups done (a long stage at CMV size)."""
    import functools
    import logging

    import deeprc_hopfield.clone_rules as clone_rules_module

    monkeypatch.setattr(neighbours, "CORES_PER_GROUP", 3)
    monkeypatch.setattr(clone_rules_module, "LoggedProgress",
                        functools.partial(clone_rules_module.LoggedProgress, every=0.0))
    with caplog.at_level(logging.INFO, logger=clone_rules_module.__name__):
        cohort_clones(rough_cohort(5, n=16), V_GENES, [CloneRule("family", 1)], min_carriers=3)
    lines = [r.getMessage() for r in caplog.records if "counting carriers" in r.getMessage()]
    assert lines and lines[-1].startswith("clone rules: CDR3 + V family, 1 substitution: counting carriers: ")
    done = lines[-1].split(": ")[-1]
    assert " groups of cores (100%)" in done and done.split("/")[0] == done.split("/")[1].split()[0]
    assert int(done.split("/")[0]) > 1  # several groups
