"""Clone rules (V level of the key, match radius) and their choice by inner cross-validation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import junction_repertoire, random_junctions

from deeprc_hopfield.clone_rules import (CloneRule, CohortClones, _FirstSeen, _KeySet, _place_rows, _stacked_transposed,
                                         choose_clone_rule, clone_rules, cohort_clones, each_cohort_clones)
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.metrics import SIGNIFICANT_GAIN_Z, paired_auc_difference
from deeprc_hopfield.public_clones import FitCandidates, gene_codes
from deeprc_hopfield.store import Repertoire

V_GENES = ["TRBV5-1", "TRBV5", "TRBV6-1", "TRBV7-2", "TRBV9", "TRBV12-3", "TRBV20-1"]
CLONE = "CASSLGQGAYEQYF"


def cohort(signal, n: int = 20, seed: int = 0) -> tuple[list[Repertoire], np.ndarray]:
    """n positives, each with 40 random junctions plus what `signal(i, rng)` gives (junction, V index), and
    n negatives with random junctions only."""
    rng = np.random.default_rng(seed)
    reps, labels = [], []
    for i in range(2 * n):
        junctions = random_junctions(rng, 40)
        v = list(rng.integers(0, len(V_GENES), 40))
        if i < n:
            junction, v_index = signal(i, rng)
            junctions.append(junction)
            v.append(v_index)
        reps.append(junction_repertoire(f"r{i}", junctions, v))
        labels.append(int(i < n))
    return reps, np.array(labels)


def substituted(junction: str, position: int, residue: str) -> str:
    return junction[:position] + residue + junction[position + 1:]


@pytest.mark.parametrize("level, radius, words", [("vgene", 0, "unknown clone key 'vgene'"),
                                                  ("family", 2, "clone radius must be 0 or 1"),
                                                  ("auto", "1", "clone radius must be 0 or 1")])
def test_bad_rules_are_refused_in_one_line(level, radius, words):
    with pytest.raises(DeepRCError, match=words) as caught:
        clone_rules(level, radius)
    assert "\n" not in str(caught.value)


def test_auto_tries_six_rules_the_default_first():
    rules = clone_rules()
    assert len(rules) == 6 and rules[0] == CloneRule("family", 0) and str(rules[0]) == "CDR3 + V family, exact"
    assert clone_rules("none", 1) == (CloneRule("none", 1),)


def test_a_family_only_call_is_a_wildcard_at_the_gene_level():
    codes = gene_codes(V_GENES, "gene")
    assert codes[1] == -1  # TRBV5 where the table holds TRBV5-1: unknown, matches any gene
    assert codes[4] >= 0  # TRBV9 is a gene of its own family
    assert codes[0] != codes[2] and gene_codes(V_GENES, "family")[0] == gene_codes(V_GENES, "family")[1]


def test_v_calls_that_disagree_across_families_choose_the_cdr3_alone():
    """Each positive carries the clone under one of five V families: keyed with V it is five rare clones
    that no test finds; keyed on the CDR3 alone it is one clone in every positive."""
    reps, y = cohort(lambda i, rng: (CLONE, [0, 2, 3, 5, 6][i % 5]))
    clones = cohort_clones(reps, V_GENES, clone_rules(radius=0))
    by_level = {c.rule.v_level: c for c in clones}
    assert by_level["none"].incidence.shape[1] >= 1
    choice = choose_clone_rule(clones, y, seed=0)
    assert choice.rule == CloneRule("none", 0)
    assert choice.inner_aucs["CDR3 alone, exact"] > choice.inner_aucs["CDR3 + V family, exact"]
    assert choice.summary()["v_level"] == "none" and choice.summary()["inner_auc"] == pytest.approx(1.0)


def test_near_identical_clones_choose_the_one_substitution_radius():
    """Each positive carries one member of a family of 1-substitution variants (the clone and four
    variants, one V gene): exact keys see five rare clones, radius 1 one clone in every positive."""
    members = [CLONE] + [substituted(CLONE, p, "W") for p in (4, 5, 6, 7)]
    reps, y = cohort(lambda i, rng: (members[i % 5], 2))
    choice = choose_clone_rule(cohort_clones(reps, V_GENES, clone_rules("family")), y, seed=0)
    assert choice.rule == CloneRule("family", 1)
    centre = choice.clones.incidence[:, np.searchsorted(choice.clones.keys, choice.clones.keys)].toarray()
    assert centre[y == 1].any(axis=1).all()  # every positive carries a stored neighbour family


@pytest.mark.parametrize("variants, radius", [(1, 0), (3, 1)])
def test_radius_one_must_beat_the_exact_rule_significantly(variants, radius):
    """12 positives carry the clone, `variants` more a 1-substitution variant of it: radius 1 always has the
    better inner AUC, but one variant is no significant gain (paired DeLong, one-sided 5%) over the exact
    rule, which is kept; three are."""
    variant = substituted(CLONE, 5, "W")
    def signal(i: int, rng: np.random.Generator) -> tuple[str, int]:
        return (CLONE if i < 12 else variant if i < 12 + variants else random_junctions(rng, 1)[0]), 2

    reps, y = cohort(signal)
    exact, near = cohort_clones(reps, V_GENES, [CloneRule("family", 0), CloneRule("family", 1)])
    choice = choose_clone_rule([exact, near], y, seed=0)
    assert choice.inner_aucs[str(near.rule)] > choice.inner_aucs[str(exact.rule)]
    assert choice.rule.radius == radius
    assert choice.summary().get("kept_over", "") == ("" if radius else str(near.rule))
    rules = [CloneRule("family", 0), CloneRule("family", 1)]  # made one at a time, the choice's clones kept only
    lazily = choose_clone_rule(each_cohort_clones(reps, V_GENES, rules), y, seed=0, expected=2)
    assert lazily.rule == choice.rule and np.array_equal(lazily.clones.keys, choice.clones.keys)
    assert (lazily.clones.incidence != choice.clones.incidence).nnz == 0
    fits = [choose_clone_rule([c], y, seed=0) for c in (exact, near)]
    gain, se = paired_auc_difference(y, fits[0].test.inner_scores_, fits[1].test.inner_scores_)
    assert gain == pytest.approx(choice.inner_aucs[str(near.rule)] - choice.inner_aucs[str(exact.rule)])
    assert (gain > SIGNIFICANT_GAIN_Z * se) == (radius == 1)


def test_radius_one_respects_the_v_rule():
    """At radius 1 a neighbour under another V family is another clone, and a missing V matches any."""
    variant = substituted(CLONE, 5, "W")
    reps = [junction_repertoire("a", [CLONE], [2]), junction_repertoire("b", [variant], [2]),
            junction_repertoire("c", [variant], [3]), junction_repertoire("d", [variant], [-1])]
    (family,) = cohort_clones(reps, V_GENES, [CloneRule("family", 1)])
    carriers = {tuple(np.flatnonzero(family.incidence[:, j].toarray().ravel())) for j in range(family.incidence.shape[1])}
    # the clone and its variant under TRBV6: each other and the V-less one, never the TRBV7 variant;
    # the TRBV7 variant: itself and the V-less one; the V-less variant: every repertoire
    assert carriers == {(0, 1, 3), (2, 3), (0, 1, 2, 3)}


def test_column_pgen_reads_each_columns_clone_and_asks_olga():
    """The pgen filter's view of a rule's columns: the clone's own junction and V (at the rule's level)."""
    from deeprc_hopfield.clone_rules import ColumnPgen, pgen_for
    from deeprc_hopfield.pgen import generation_probability

    reps, y = cohort(lambda i, rng: (CLONE, 2))
    (clones,) = cohort_clones(reps, V_GENES, [CloneRule("family", 0)])
    column = int(np.argmax(np.asarray(clones.incidence.sum(axis=0)).ravel()))  # the clone, in all 20 positives
    pgen = pgen_for(lambda row: reps[row], V_GENES)(clones)
    assert isinstance(pgen, ColumnPgen)
    expected = generation_probability([CLONE], "TRB", v_calls=["TRBV6-1"])
    assert pgen(np.array([column])) == pytest.approx(expected)
    assert pgen_for(lambda row: reps[row], V_GENES, use=False) is None
    assert pgen_for(lambda row: reps[row], ["XYZV1", "XYZV2"]) is None  # no OLGA model: no filter, no error


def unlike_repertoires(seed: int = 3) -> list[Repertoire]:
    """40 repertoires of 20-60 random junctions; each of the first 20 holds one of two clones at a random place."""
    rng = np.random.default_rng(seed)
    reps = []
    for i in range(40):
        junctions = random_junctions(rng, int(rng.integers(20, 60)))
        v = list(rng.integers(0, len(V_GENES), len(junctions)))
        if i < 20:
            at = int(rng.integers(0, len(junctions) + 1))
            junctions.insert(at, CLONE if i % 2 else CLONE[:-2] + "WF")
            v.insert(at, int(rng.integers(0, len(V_GENES))))
        reps.append(junction_repertoire(f"r{i}", junctions, v))
    return reps


@pytest.mark.parametrize("budget", [1 << 29, 8 * 200, 0])  # every row kept; the first few; none
def test_keyed_rows_key_each_repertoire_once_over_rules_and_find_the_same_clones(monkeypatch, budget):
    """The rules' pgen requests read the same repertoires: through one KeyedRows each kept row is keyed once, its
    keys are its own, and every rule finds the clones (junction, V) that reading the repertoires afresh finds."""
    from deeprc_hopfield import clone_rules
    from deeprc_hopfield.clone_rules import KeyedRows, clone_sequences

    reps = unlike_repertoires()
    all_clones = cohort_clones(reps, V_GENES, [CloneRule("family", 0), CloneRule("gene", 0), CloneRule("none", 0)])
    fresh = [clone_sequences(lambda row: reps[row], c.incidence, c.keys, V_GENES, c.rule.v_level) for c in all_clones]
    keyed: list[str] = []
    asked: list[int] = []
    real = clone_rules.repertoire_keys
    monkeypatch.setattr(clone_rules, "repertoire_keys", lambda rep: keyed.append(rep.subject_id) or real(rep))
    rows = KeyedRows(lambda row: asked.append(row) or reps[row], max_bytes=budget)
    once = [clone_sequences(rows, c.incidence, c.keys, V_GENES, c.rule.v_level) for c in all_clones]
    assert once == fresh and all(len(found) == len(set(c.keys.tolist())) > 0 for found, c in zip(fresh, all_clones))
    kept = {f"r{row}" for row in rows._keys}
    expected_kept = {1 << 29: len(set(asked)), 0: 0}.get(budget)
    assert len(kept) == expected_kept if expected_kept is not None else 0 < len(kept) < len(set(asked))
    assert all(keyed.count(name) == 1 for name in kept)  # a kept row is keyed once for all rules
    assert len(keyed) == len(kept) + sum(row not in rows._keys for row in asked)
    for row in range(len(reps)):
        np.testing.assert_array_equal(rows.keyed(row)[1], real(reps[row]))


@pytest.mark.parametrize("level, radius", [("family", 1), ("none", 1), ("family", 0), ("gene", 0)])
def test_the_memory_counts_what_the_test_counts(level, radius):
    """A repertoire holding the centre of a one-substitution family (and V calls that differ or are
    missing) carries every member within one substitution, in the test's incidence and in the memory's
    count alike, so the memory alone scores what the test scores; exact, a CDR3 without a V call carries
    each stored clone of its core (one under each V), as it does in the test's incidence."""
    from deeprc_hopfield.clone_rules import clone_sequences
    from deeprc_hopfield.training.clone_memory import carried_by, clone_matcher

    members = [CLONE] + [substituted(CLONE, p, "W") for p in (4, 5, 6)] + [substituted(CLONE, 4, "Y")]
    reps, _ = cohort(lambda i, rng: (members[int(rng.integers(len(members)))], [2, 2, 3, -1][i % 4]), seed=3)
    (clones,) = cohort_clones(reps, V_GENES, [CloneRule(level, radius)])
    incidence = clones.incidence.tocsc()
    found = clone_sequences(lambda row: reps[row], incidence, clones.keys, V_GENES, level)
    assert len(found) == len(clones.keys) >= 5
    matcher = clone_matcher(sorted(set(found.values())), V_GENES, clones.rule)
    expected = np.asarray(clones.incidence.sum(axis=1)).ravel()
    assert expected.max() >= 3 - (radius == 0)  # near several members (radius 1), or V-less (0): each of them
    assert [carried_by(matcher, rep) for rep in reps] == expected.tolist()


def test_training_hides_the_clones_a_repertoires_own_label_chose():
    """A clone in every positive is chosen by every inner fold, so no training sample is denied it; a clone
    in 7 of 20 positives passes p < 0.01 on all of them but not without two of its carriers, and the
    repertoires of such an inner fold must not see it in training (it was chosen for them)."""
    from deeprc_hopfield.training.clone_memory import chosen_with_own_label

    marginal = "CASRPDWNTEAFF"
    reps, y = cohort(lambda i, rng: (CLONE, 2), seed=1)
    extra = [junction_repertoire(f"m{i}", [marginal], [4]) for i in range(7)]
    reps = [merge(rep, more) for rep, more in zip(reps, extra)] + reps[7:]
    choice = choose_clone_rule(cohort_clones(reps, V_GENES, [CloneRule("family", 0)]), y, seed=0)
    associated = choice.test.associated
    assert len(associated) == 2
    hidden = chosen_with_own_label(choice, {int(c): i for i, c in enumerate(associated)}, 2)
    carriers = np.asarray(choice.clones.incidence[:, associated].toarray(), dtype=bool)
    strong = int(np.argmax(carriers.sum(axis=0)))
    assert carriers[:, strong].sum() == 20 and not hidden[:, strong].any()
    weak = 1 - strong
    assert hidden[carriers[:, weak], weak].any()
    for rows, columns in choice.test.inner_associated_:  # hidden exactly where the fold without them left it out
        assert (hidden[rows, weak] == (associated[weak] not in set(columns.tolist()))).all()


def merge(a: Repertoire, b: Repertoire) -> Repertoire:
    """One repertoire holding the sequences of both (the name of the first)."""
    from deeprc_hopfield.encoding import decode

    junctions = decode(a.codes, a.lengths) + decode(b.codes, b.lengths)
    return junction_repertoire(a.subject_id, junctions, list(a.v_index) + list(b.v_index))


@pytest.mark.parametrize("rules, v_calls", [(clone_rules(radius=1), [2, 2, 3, -1]), (clone_rules(radius=0), [2, 2, 3])])
def test_the_baseline_takes_its_candidate_clones_from_its_training_repertoires_only(rules, v_calls):
    """Clones collected once for the whole cohort, then restricted to those a training repertoire holds
    itself, are the clones that collecting the training repertoires alone gives (the clone memory's), with
    the same training carriers: a family member held only by held-out repertoires is no candidate, though
    at radius 1 it would count the training repertoires near it."""
    members = [CLONE] + [substituted(CLONE, p, "W") for p in (4, 5, 6)]
    held_out_only = substituted(CLONE, 7, "Y")
    reps, _ = cohort(lambda i, rng: (members[int(rng.integers(len(members)))], v_calls[i % len(v_calls)]), seed=5)
    train = np.arange(0, len(reps), 2)
    reps = [merge(rep, junction_repertoire("x", [held_out_only], [2])) if i % 2 else rep for i, rep in enumerate(reps)]
    whole = cohort_clones(reps, V_GENES, rules)
    alone = cohort_clones([reps[i] for i in train], V_GENES, rules)
    for every, own in zip(whole, alone):
        fitted = every.held_by(train).rows(train)
        shared = np.flatnonzero(np.asarray(fitted.incidence.sum(axis=0)).ravel() >= 2)  # alone: 2 carriers or more
        assert len(own.keys) >= 3 and np.array_equal(fitted.keys[shared], own.keys)
        assert (fitted.incidence[:, shared] != own.incidence).nnz == 0
        if every.rule.radius == 1:  # the whole cohort's collection does hold the held-out-only member
            assert len(every.keys) > len(every.held_by(train).keys)


@pytest.mark.parametrize("parts", [1, 4, 64])
def test_a_key_set_holds_each_key_added_once_in_order(parts):
    """`_KeySet` splits keys by their top bits and keeps each part's in sorted runs: `sorted` must be the sorted
    distinct keys added, across the whole int64 range (negative keys first), and it empties the set."""
    rng = np.random.default_rng(parts)
    pool = np.concatenate([rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, 300, dtype=np.int64),
                           np.array([np.iinfo(np.int64).min, -1, 0, 1, np.iinfo(np.int64).max])])
    for _ in range(20):
        keys, expected = _KeySet(parts), set()
        for _ in range(rng.integers(0, 30)):
            batch = np.unique(rng.choice(pool, rng.integers(0, 80)))
            keys.add(batch)
            expected.update(batch.tolist())
            assert len(keys) == len(expected)
        assert np.array_equal(keys.sorted(), sorted(expected)) and len(keys) == 0


def test_a_key_set_fed_by_threads_holds_each_key_once():
    """Threads adding batches to one `_KeySet` at once (a lock per part) leave it holding every key added, once."""
    rng = np.random.default_rng(7)
    pool = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, 2000, dtype=np.int64)  # over every part
    batches = [np.unique(rng.choice(pool, int(rng.integers(0, 200)))) for _ in range(80)]  # many repeats
    keys = _KeySet(8)
    threads = [threading.Thread(target=lambda part: [keys.add(b) for b in part], args=(batches[t::4],))
               for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = np.unique(np.concatenate(batches))
    assert len(keys) == len(expected) and np.array_equal(keys.sorted(), expected)


def test_keys_are_numbered_as_first_seen_whatever_the_runs_merged():
    """`_FirstSeen` keeps its keys in sorted runs merged as they grow: its numbers must be those of a dict that
    numbers each new key as it comes."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        table, numbers = _FirstSeen(), {}
        for _ in range(rng.integers(0, 25)):
            keys = np.unique(rng.integers(-100, 100, rng.integers(0, 60)))
            expected_new = np.array([int(k) not in numbers for k in keys], dtype=bool)
            for k in keys:
                numbers.setdefault(int(k), len(numbers))
            number, new = table.add(keys)
            assert np.array_equal(new, expected_new)
            assert np.array_equal(number, [numbers[int(k)] for k in keys]) and len(table) == len(numbers)
        assert np.array_equal(table.by_number(), sorted(numbers, key=numbers.get))  # from the runs as they stand
        asked = np.unique(rng.integers(-120, 120, 30))
        assert np.array_equal(table.numbers_of(asked), sorted(numbers[int(k)] for k in asked if int(k) in numbers))


@pytest.mark.parametrize("variants", [1, 3])
def test_leaving_out_clones_no_fit_can_use_changes_no_result(variants):
    """Training collects its radius-1 clones with `FitCandidates` of its own fits: a clone whose Fisher p passes
    the loosest threshold in none of them is left out, and the choice, its inner AUCs and the associated clones
    (in every inner fold too) must be those found with every clone."""
    variant = substituted(CLONE, 5, "W")

    def signal(i: int, rng: np.random.Generator) -> tuple[str, int]:
        return (CLONE if i < 12 else variant if i < 12 + variants else random_junctions(rng, 1)[0]), 2

    rng = np.random.default_rng(1)
    pool = random_junctions(rng, 12)  # chance-public: each repertoire of either class holds some
    reps = []
    for i in range(60):
        junctions = random_junctions(rng, 40) + [pool[j] for j in np.flatnonzero(rng.random(len(pool)) < 0.5)]
        junctions += [signal(i, rng)[0]] if i < 30 else []
        reps.append(junction_repertoire(f"r{i}", junctions, [2] * len(junctions)))
    y = (np.arange(60) < 30).astype(int)
    rules = clone_rules("family")
    every = choose_clone_rule(each_cohort_clones(reps, V_GENES, rules), y, seed=0, expected=len(rules))
    fewer = choose_clone_rule(each_cohort_clones(reps, V_GENES, rules, candidates=FitCandidates(y, 0)), y, seed=0,
                              expected=len(rules))
    assert every.summary() == fewer.summary()
    radius_one = [cohort_clones(reps, V_GENES, [CloneRule("family", 1)], candidates=c)[0]
                  for c in (None, FitCandidates(y, 0))]
    assert 0 < radius_one[1].incidence.shape[1] < radius_one[0].incidence.shape[1]
    key_sets = [[set(fit.clones.keys[columns].tolist()) for _, columns in fit.test.inner_associated_]
                for fit in (every, fewer)]
    assert key_sets[0] == key_sets[1]
    assert set(every.clones.keys[every.test.associated]) == set(fewer.clones.keys[fewer.test.associated])


def test_a_cohort_of_no_repertoires_has_no_clones_under_any_rule():
    """No repertoire (a training fold of nothing, say): every rule gives an empty (0, 0) incidence, no error."""
    found = cohort_clones([], V_GENES, clone_rules())
    assert [c.rule for c in found] == list(clone_rules())
    assert all(c.incidence.shape == (0, 0) and len(c.keys) == 0 for c in found)


def test_blocks_of_candidates_are_bounded_by_candidates_and_neighbour_pairs(monkeypatch):
    """Each block holds at most CARRIED_BLOCK candidates and NEAR_HOLDINGS_BLOCK holdings of the clones near them,
    or one candidate that has more; the blocks cover every candidate once, in order."""
    from deeprc_hopfield import clone_rules as module

    monkeypatch.setattr(module, "CARRIED_BLOCK", 4)
    monkeypatch.setattr(module, "NEAR_HOLDINGS_BLOCK", 10)
    near = np.array([3, 3, 3, 3, 25, 1, 1, 1, 1, 1, 9, 2, 0])
    blocks = list(module._blocks(near))
    assert np.array_equal(np.concatenate([np.arange(len(near))[b] for b in blocks]), np.arange(len(near)))
    assert [len(near[b]) for b in blocks] == [3, 1, 1, 4, 2, 2]
    assert list(module._blocks(np.zeros(0, dtype=np.int64))) == []


def test_level_clones_number_each_core_and_v_pair_once_in_core_order():
    """A level's clones are the distinct (core, V code) pairs of the repertoires, numbered in core order (V calls
    of one family one clone at the family level), with their holders and each core's holdings."""
    from deeprc_hopfield.clone_rules import _level_clones
    from deeprc_hopfield.public_clones import gene_codes

    genes = ["TRBV5-1", "TRBV5-4", "TRBV7-2"]
    held = [(np.array([0, 0, 3], dtype=np.int32), np.array([0, 1, -1], dtype=np.int16)),  # V5-1 and V5-4: one family
            (np.array([3, 1], dtype=np.int32), np.array([2, -1], dtype=np.int16)),
            (np.array([0], dtype=np.int32), np.array([1], dtype=np.int16))]
    for level, expected in (("family", {(0, "5"): [0, 2], (1, None): [1], (3, None): [0], (3, "7"): [1]}),
                            ("gene", {(0, "5-1"): [0], (0, "5-4"): [0, 2], (1, None): [1], (3, None): [0],
                                      (3, "7-2"): [1]})):
        codes = gene_codes(genes, level)
        clones = _level_clones(held, codes, cores=5)
        assert len(clones) == len(expected)
        owner, numbers = clones.of_cores(np.arange(5))
        assert np.array_equal(numbers, np.arange(len(expected)))  # every clone once, in core order
        assert np.array_equal(owner, sorted(core for core, _ in expected))
        holders = clones.holders.toarray()
        found = {}
        for number, core in zip(numbers, owner):
            code = clones.v_codes[clones.v[number]]
            name = None if code < 0 else next(g for g, c in zip(genes, codes) if c == code).removeprefix("TRBV")
            found[(int(core), name if level == "gene" or name is None else name.split("-")[0])] = \
                np.flatnonzero(holders[number]).tolist()
        assert found == expected, level
        assert clones.core_holdings().tolist() == [sum(len(r) for (c, _), r in expected.items() if c == core)
                                                   for core in range(5)]


def test_one_collection_gives_each_part_the_clones_of_its_own_repertoires():
    """`each_part_clones` reads a cohort once for several parts (a fold's fitting rows, its training rows, every
    repertoire): each part's exact clones (keys, carriers) must be those of collecting its repertoires alone with
    its own carriers, with missing and family-only V calls resolved within the part; the one-substitution
    collection over all repertoires, restricted to a part, must hold the clones of collecting it alone with the
    same carriers and holders, and only other clones that the part's own collection leaves out (too few counted
    carriers, or no fit of it can use them)."""
    from scipy import sparse

    from deeprc_hopfield.clone_rules import CollectionPart, each_part_clones
    from deeprc_hopfield.public_clones import min_carriers, positive_rows

    members = [CLONE] + [substituted(CLONE, p, "W") for p in (4, 5, 6)]
    rng = np.random.default_rng(11)
    pool = random_junctions(rng, 10)
    reps = []
    for i in range(48):
        junctions = random_junctions(rng, 30) + [pool[j] for j in np.flatnonzero(rng.random(len(pool)) < 0.4)]
        junctions += [members[int(rng.integers(len(members)))]] if i < 24 and rng.random() < 0.8 else []
        v = list(rng.choice([-1, 0, 1, 2, 3], len(junctions), p=[0.15, 0.3, 0.15, 0.2, 0.2]))  # 1: family only
        reps.append(junction_repertoire(f"r{i}", junctions, v))
    y = (np.arange(48) < 24).astype(int)
    rows = [np.arange(48), np.flatnonzero(np.arange(48) % 3 != 0), np.flatnonzero(np.arange(48) % 4 != 1)]
    parts = [CollectionPart(r, min_carriers(y[r], 0), positive_rows(y[r]), FitCandidates(y[r], 0)) for r in rows]
    parts.append(CollectionPart(rows[1], 2))  # every shared clone, all repertoires counted
    rules = clone_rules()
    shared = list(each_part_clones(reps, V_GENES, rules, parts, workers=2))
    exact, radius_one = [r for r in rules if r.radius == 0], [r for r in rules if r.radius == 1]
    assert [(p, made.rule) for p, made in shared] == [(p, r) for p in range(len(parts)) for r in exact] + [
        (None, r) for r in radius_one]
    for p, part in enumerate(parts):
        alone = dict(zip(rules, each_cohort_clones([reps[r] for r in part.rows], V_GENES, rules,
                                                   min_carriers=part.min_carriers, positives=part.positives,
                                                   candidates=part.candidates)))
        for q, made in shared:
            own = alone[made.rule]
            if q is None:
                made = made.held_by(part.rows).rows(part.rows)
                same = np.isin(made.keys, own.keys)
                extra = sparse.csr_matrix(made.incidence[:, ~same].T)
                counted = np.diff(extra.indptr) if part.positives is None else extra @ part.positives
                kept = counted >= part.min_carriers
                if part.candidates is not None and kept.any():
                    kept[kept] = part.candidates(extra[kept])
                assert not kept.any(), (p, made.rule)
                made = CohortClones(made.rule, made.incidence[:, same], made.keys[same], made.held[:, same])
            elif q != p:
                continue
            assert np.array_equal(made.keys, own.keys), (p, made.rule)
            assert made.incidence.shape == own.incidence.shape and (made.incidence != own.incidence).nnz == 0
            assert (made.held != own.held).nnz == 0
    assert any(len(made.keys) > 0 and made.rule.radius == 1 for _, made in shared)


def test_a_part_whose_fits_keep_one_carrier_still_needs_two():
    """Where positives are rare, one positive carrier alone gives a fit a p below the threshold, but a clone needs
    two carriers among the part's repertoires (as collecting the part alone): the union of the parts' fits must not
    keep a clone whose second carrier lies outside the part."""
    from scipy import sparse

    from deeprc_hopfield.clone_rules import CollectionPart, _SomePartKeeps
    from deeprc_hopfield.public_clones import min_carriers, positive_rows

    y = np.zeros(600, dtype=int)
    y[[3, 50, 120, 450, 500]] = 1
    rare, common = np.arange(400), np.arange(300, 600)
    parts = [CollectionPart(rows, min_carriers(y[rows], 0), positive_rows(y[rows]), FitCandidates(y[rows], 0))
             for rows in (rare, common)]
    assert parts[0].candidates.fewest_kept() == 1 < parts[0].min_carriers == 2  # one positive carrier passes a fit
    carried = sparse.csr_matrix([np.isin(np.arange(600), pair) for pair in ([3, 450], [3, 50], [450, 500])])
    assert parts[0].candidates(carried[:1, rare]).all()  # the clone's one carrier in the part: its fit would use it
    assert _SomePartKeeps(parts, 600)(carried).tolist() == [False, True, True]


@pytest.mark.parametrize("placed", [False, True])
def test_carrier_blocks_stack_as_scipy_stacks_them(placed: bool):
    """A one-substitution rule's carrier blocks, each clone's row at its place in key order, stacked and transposed
    as `vstack(blocks)[order].T.tocsr()` would, sorted, whether a block is empty, has empty rows or is copied in
    chunks of a few values."""
    from scipy import sparse

    rng = np.random.default_rng(5)
    blocks = [sparse.random(n, 30, density=d, format="csr", random_state=int(rng.integers(1 << 30))).astype(bool)
              for n, d in [(17, 0.3), (0, 0.0), (9, 0.0), (40, 0.7), (1, 1.0)]]
    rows = sum(b.shape[0] for b in blocks)
    order = rng.permutation(rows) if placed else np.arange(rows)  # the stack's row of each block row, in turn
    places = np.split(order, np.cumsum([b.shape[0] for b in blocks])[:-1])
    inverse = np.empty(rows, dtype=np.int64)
    inverse[order] = np.arange(rows)
    expected = sparse.vstack(blocks, format="csr")[inverse].T.tocsr()
    expected.sort_indices()
    stacked = _stacked_transposed(list(blocks), 30, places if placed else None)
    assert stacked.format == "csr" and stacked.shape == (30, rows) and stacked.has_sorted_indices
    assert np.array_equal(stacked.indptr, expected.indptr) and np.array_equal(stacked.indices, expected.indices)
    block = blocks[3].tolil()
    block[[2, 3, 10, 37, 38, 39]] = False  # empty rows, among them the last three
    block = block.tocsr()
    block.eliminate_zeros()
    indptr = np.concatenate([[0], np.cumsum(np.diff(block.indptr)[::-1])])  # its rows in reverse
    for chunk in (1, 5, 40, 1 << 20):  # chunks of one row (or less), of several rows, the whole block
        indices = np.empty(block.nnz, dtype=np.int32)
        _place_rows(block, np.arange(block.shape[0])[::-1], indptr, indices, chunk=chunk)
        assert np.array_equal(indices, block[::-1].indices)
