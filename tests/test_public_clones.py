"""`public_clones`: the one clone key, the incidence of shared clones and the public-clone test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from scipy.stats import fisher_exact, hypergeom
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from deeprc_hopfield import public_clones
from deeprc_hopfield.cdr3 import core
from deeprc_hopfield.encoding import decode, encode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.interpret.ranking import name_keys
from deeprc_hopfield.public_clones import (CLONE_INNER_REPEATS, P_THRESHOLDS, FitCandidates, PublicCloneTest,
                                           clone_incidence, clone_keys, clone_set, fisher_enrichment, groups_at,
                                           fit_public_clones, gene_code, gene_codes, inner_splits, repertoire_clones,
                                           repertoire_keys, resolve_rows, resolve_wildcards, search_sorted,
                                           unique_keys, with_v, without_v)
from deeprc_hopfield.store import Repertoire


def _keys(sequences: list[str], v: list[int] | None = None, j: list[int] | None = None) -> np.ndarray:
    codes, lengths = encode(sequences)
    genes = [torch.tensor(g) if g is not None else None for g in (v, j)]
    return clone_keys(torch.from_numpy(codes), torch.from_numpy(lengths), *genes).numpy()


def _repertoire(sequences: list[str], v: list[int]) -> Repertoire:
    codes, lengths = encode(sequences)
    n = len(sequences)
    return Repertoire("r", codes, lengths, np.ones(n), np.asarray(v, dtype=np.int16), np.full(n, -1, np.int16))


# --- keys ----------------------------------------------------------------------------------------
def test_equal_cdr3_cores_and_only_they_share_a_key():
    """The key reads the core (the junction without its conserved ends), so a junction and the same
    receptor with another (or a guessed) anchor match; 1- and 2-residue sequences are their own core."""
    sequences = ["CASSLGQF", "CASSLGQ", "CASSLGQF", "FQGLSSAC", "C", "CC", "CASSLGQY", "C", "WASSLGQW", "CA", "AC"]
    keys = _keys(sequences)
    for i, a in enumerate(sequences):
        for j, b in enumerate(sequences):
            assert (keys[i] == keys[j]) == (core(a) == core(b)), (a, b)
    assert keys[0] == keys[6] == keys[8] and core("CASSLGQF") == "ASSLGQ"
    whole = clone_keys(*(torch.from_numpy(a) for a in encode(sequences)), trim=0).numpy()  # trim 0: whole sequences
    assert whole[0] != whole[6] and whole[0] == whole[2]


def test_no_collisions_among_100k_random_cdr3s():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=100_000)
    codes = rng.integers(1, 21, size=int(lengths.sum())).astype(np.uint8)
    keys = clone_keys(torch.from_numpy(codes), torch.from_numpy(lengths)).numpy()
    assert len(np.unique(keys)) == len({core(s) for s in decode(codes, lengths)})


def test_gene_codes_are_the_family_of_a_gene_or_of_a_family_only_call():
    five = gene_code("TRBV5-1")
    assert five == gene_code("TRBV5") == gene_code("TRBV5-6") != gene_code("TRBV6-5") >= 0
    assert gene_code("TRBV5-1", "gene") != gene_code("TRBV5", "gene") != gene_code("TRBV5-6", "gene")
    assert gene_code(None) == gene_code("") == gene_code("TRBV5-1", "none") == -1
    np.testing.assert_array_equal(gene_codes(["TRBV6-5", "TRBV5"])[[1, -1, 0]], [five, -1, gene_code("TRBV6-5")])
    with pytest.raises(ValueError, match="level"):
        gene_code("TRBV5-1", "allele")


def test_the_v_family_separates_clones_where_it_is_known():
    families = [gene_code(g) for g in ("TRBV5-1", "TRBV5", "TRBV6-5")]
    keys = _keys(["CASSLGQF"] * 4 + ["CAWSVF"], v=[families[0], families[1], families[2], -1, families[0]])
    assert keys[0] == keys[1] != keys[2]  # gene and family-only call of a family: one clone; another family
    assert keys[3] == _keys(["CASSLGQF"])[0] not in keys[:3]  # unknown V: the core alone
    assert keys[4] != keys[0]
    # a key with V is its core's plus a V term: with_v / without_v go between them
    np.testing.assert_array_equal(without_v(keys[:3], np.array(families)), [keys[3]] * 3)
    np.testing.assert_array_equal(with_v(np.full(3, keys[3]), np.array(families)), keys[:3])
    # every (V, J) pair of a CDR3 keys apart (the two gene terms never cancel)
    v, j = np.meshgrid(np.arange(-1, 150), np.arange(-1, 30))
    many = _keys(["CASSLGQF"] * v.size, v.ravel().tolist(), j.ravel().tolist())
    assert len(np.unique(many)) == v.size
    assert (many[(j.ravel() == -1)] == _keys(["CASSLGQF"] * 151, list(range(-1, 150)))).all()  # no J: (CDR3, V)


def test_repertoire_keys_match_the_tensor_keys_whatever_the_chunk():
    sequences = ["CASSF", "CAW", "CASSF", "CSARDRTGNGYTF"] * 7
    v = np.array([1, 1, 1, -1] * 7)
    rep = _repertoire(sequences, v)
    whole = repertoire_keys(rep, v)
    np.testing.assert_array_equal(repertoire_keys(rep, v, chunk=3), whole)
    np.testing.assert_array_equal(whole, _keys(sequences, v.tolist()))
    assert whole[0] == whole[2] != whole[1]
    assert repertoire_keys(_repertoire([], [])).shape == (0,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_keys_are_the_same_on_the_gpu():
    codes, lengths = encode(["CASSLGQF", "CAWSVF", "CSARDRTGNGYTF"])
    v = torch.tensor([gene_code("TRBV5-1"), -1, 40])
    cpu = clone_keys(torch.from_numpy(codes), torch.from_numpy(lengths), v)
    gpu = clone_keys(torch.from_numpy(codes).cuda(), torch.from_numpy(lengths).cuda(), v.cuda())
    assert torch.equal(gpu.cpu(), cpu)


def test_a_cdr3_without_v_call_is_the_clone_of_its_core_with_any_v():
    """The missing-V policy on both sides: a CDR3 without a V call counts as every clone of its core
    that the cohort holds with a V call (so the clone is not split in two), and as its own clone only
    where there is none; gene and family-only calls of a family are one clone."""
    genes = ["TRBV5-1", "TRBV6-5", "TRBV5"]
    reps = [_repertoire(["CASSLGQF"], [0]),             # gene call
            _repertoire(["CASSLGQF", "CAWSVF"], [-1, 1]),  # no V call
            _repertoire(["CASSLGQF"], [1]),             # another family
            _repertoire(["CASSLGQW", "CTTTW"], [2, -1]),  # a family-only call (and another anchor)
            _repertoire(["CTTTF", "CAWSVF"], [-1, 1])]
    sets = [repertoire_clones(r, genes) for r in reps]
    incidence, shared = clone_incidence(resolve_wildcards(sets))
    x5, x6, y, z6 = (_keys([s], [gene_code(g)])[0] for s, g in (("CASSLGQF", "TRBV5"), ("CASSLGQF", "TRBV6-5"),
                                                                  ("CTTTF", None), ("CAWSVF", "TRBV6-5")))
    assert sorted(shared.tolist()) == sorted([x5, x6, y, z6])  # no column for CASSLGQF without V
    columns = {k: incidence[:, list(shared).index(k)].toarray().ravel().astype(int).tolist() for k in (x5, x6, y, z6)}
    assert columns[x5] == [1, 1, 0, 1, 0] and columns[x6] == [0, 1, 1, 0, 0]
    assert columns[y] == [0, 0, 0, 1, 1] and columns[z6] == [0, 1, 0, 0, 1]
    # the flat form (the ranking's) resolves the same way
    keys = np.concatenate([repertoire_keys(r, gene_codes(genes)[r.v_index]) for r in reps])
    v = np.concatenate([gene_codes(genes)[r.v_index] for r in reps])
    row, resolved = resolve_rows(keys, v)
    assert sorted(resolved[row == 1].tolist()) == sorted([x5, x6])  # rep 1's CASSLGQF: both clones
    assert clone_set(keys, v).unknown.tolist() == sorted([y, _keys(["CASSLGQF"])[0]])  # the cores alone


def test_the_rankings_table_keys_group_rows_as_their_clones():
    """The interpretation keys a table of gene *names*: the same clone whatever the gene table, V at
    the family level and J as a gene."""
    table = pd.DataFrame({"junction_aa": ["CASSF", "CASSF", "CASSF", "CAWF", "CASSF", "CASSF", "CAWF", "CASSW"],
                          "v_call": ["TRBV5-1", "TRBV6-5", None, "TRBV5-1", "TRBV6-5", "TRBV5", None, "TRBV5-4"],
                          "j_call": ["TRBJ1-1", "TRBJ1-1", "TRBJ1-1", "TRBJ1-1", "TRBJ2-7", "TRBJ1-1", None,
                                     "TRBJ1-1"]})
    keys, v = name_keys(table)
    clones = table.assign(core=table["junction_aa"].map(core), family=table["v_call"].str.split("-").str[0])
    groups = clones[["core", "family", "j_call"]].fillna("<none>").groupby(["core", "family", "j_call"],
                                                                            sort=False).ngroup().to_numpy()
    for a in range(len(table)):
        for b in range(len(table)):
            assert (keys[a] == keys[b]) == (groups[a] == groups[b]), (a, b)
    assert v[2] == -1 and keys[2] == _keys(["CASSF"], [-1], [gene_code("TRBJ1-1", "gene")])[0]


# --- incidence and the test ------------------------------------------------------------------------
def test_clone_incidence_keeps_clones_of_two_repertoires_or_more() -> None:
    keys = [np.array([5, 1, 9], dtype=np.uint64), np.array([1, 7], dtype=np.uint64),
            np.array([9, 1, 3], dtype=np.uint64), np.array([], dtype=np.uint64)]
    incidence, shared = clone_incidence(keys)  # columns: clone 1, clone 9 (5, 7, 3 are private)
    np.testing.assert_array_equal(incidence.toarray(), [[1, 1], [1, 0], [1, 1], [0, 0]])
    np.testing.assert_array_equal(shared, [1, 9])
    none, _ = clone_incidence([np.array([5], dtype=np.uint64), np.array([1], dtype=np.uint64)])
    assert none.shape == (2, 0)


def _incidence(rng: np.random.Generator, y: np.ndarray, n_signal: int = 5, n_noise: int = 200) -> sparse.csr_matrix:
    """Noise clones carried by any repertoire with p 0.1; signal clones by positives only, with p 0.6."""
    noise = rng.random((len(y), n_noise)) < 0.1
    signal = (rng.random((len(y), n_signal)) < 0.6) & (y[:, None] == 1)
    return sparse.csr_matrix(np.hstack([signal, noise]))


def test_fisher_enrichment_is_the_one_sided_fisher_test():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 12)
    x = _incidence(rng, y)
    p = fisher_enrichment(x, y)
    for column in (0, 1, 7, 100):
        a = int(x[y == 1, column].sum())
        b = int(x[y == 0, column].sum())
        expected = fisher_exact([[a, 12 - a], [b, 12 - b]], alternative="greater").pvalue
        assert p[column] == pytest.approx(expected)
    # computed once per distinct (positive carriers, carriers) pair: exactly the per-clone values
    carriers, positive = np.asarray(x.sum(axis=0)).ravel(), np.asarray(x[y == 1].sum(axis=0)).ravel()
    np.testing.assert_array_equal(p, hypergeom.sf(positive - 1, len(y), 12, carriers))
    assert fisher_enrichment(x[:, :0], y).shape == (0,)


def test_public_clone_test_finds_the_clones_carried_by_positives_only():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 20)
    train, held_out = _incidence(rng, y), _incidence(rng, y)
    test = PublicCloneTest(random_state=0).fit(train, y)
    assert set(test.associated_) <= set(range(5)) and len(test.associated_) >= 3
    assert test.threshold_ in P_THRESHOLDS and test.inner_auc_ > 0.9
    assert test.out_of_fold_.shape == (40,) and test.out_of_fold_[y == 0].max() == 0
    probability = test.predict_proba(held_out)
    assert probability.shape == (40, 2) and np.allclose(probability.sum(axis=1), 1)
    assert roc_auc_score(y, probability[:, 1]) > 0.95
    assert probability[y == 1, 1].mean() > 0.5 > probability[y == 0, 1].mean()
    np.testing.assert_array_equal(test.decision_function(held_out), held_out[:, test.associated_].sum(axis=1).A1)
    assert (test.predict(held_out) == y).mean() > 0.9
    # the names the training code reads
    assert (test.associated is test.associated_ and test.threshold == test.threshold_
            and test.inner_auc == test.inner_auc_ and test.out_of_fold is test.out_of_fold_)
    again = fit_public_clones(train, y, seed=0)
    np.testing.assert_array_equal(again.associated, test.associated)


def test_public_clone_test_is_a_scikit_learn_estimator():
    test = PublicCloneTest(thresholds=(1e-3,), inner_folds=3, random_state=4)
    fresh = clone(test)
    assert fresh.get_params() == {"thresholds": (1e-3,), "inner_folds": 3, "random_state": 4,
                                  "inner_repeats": CLONE_INNER_REPEATS}
    with pytest.raises(NotFittedError):
        fresh.predict_proba(sparse.csr_matrix((2, 3), dtype=bool))
    y = np.array(["control", "case"] * 10)  # classes sorted: "case" first, so "control" is positive
    x = sparse.csr_matrix(np.column_stack([y == "control", y == "control", np.arange(20) % 3 == 0]))
    fitted = fresh.fit(x, y)
    assert list(fitted.classes_) == ["case", "control"] and list(fitted.associated_) == [0, 1]
    assert (fitted.predict(x) == y).all()


def test_too_few_repertoires_of_a_class_is_an_error():
    y = np.array([0, 0, 0, 0, 1])
    with pytest.raises(DeepRCError, match="fewer than 2 repertoires of a class"):
        PublicCloneTest().fit(sparse.csr_matrix(np.ones((5, 2), dtype=bool)), y)
    with pytest.raises(DeepRCError, match="two classes"):
        PublicCloneTest().fit(sparse.csr_matrix(np.ones((3, 2), dtype=bool)), np.zeros(3))


@pytest.mark.parametrize("with_genes", [False, True])
def test_repertoire_keys_in_numpy_are_clone_keys_in_torch(with_genes):
    """`repertoire_keys` (numpy) gives the keys `clone_keys` (torch, what the memory computes on a
    device) gives, for cores of 0, 1 and many residues, with and without V and J codes."""
    rng = np.random.default_rng(5)
    lengths = np.r_[rng.integers(1, 30, 500), [1, 2, 3, 4, 5]]
    codes = rng.integers(1, 21, int(lengths.sum())).astype(np.uint8)
    v = rng.integers(-1, 10**9, len(lengths)) if with_genes else None
    j = rng.integers(-1, 50, len(lengths)) if with_genes else None
    rep = Repertoire("r", codes, lengths.astype(np.uint8), np.ones(len(lengths)), np.zeros(len(lengths), np.int16),
                     np.zeros(len(lengths), np.int16))
    expected = clone_keys(torch.from_numpy(codes), torch.from_numpy(lengths),
                          *(torch.from_numpy(g) if g is not None else None for g in (v, j))).numpy()
    for chunk in (7, 1 << 16):
        assert np.array_equal(repertoire_keys(rep, v, j, chunk=chunk), expected)


def test_unique_keys_is_numpys_unique():
    keys = np.random.default_rng(6).integers(-50, 50, 1000)
    assert np.array_equal(unique_keys(keys), np.unique(keys)) and len(unique_keys(keys[:0])) == 0


def test_search_sorted_is_numpys_searchsorted_on_large_tables():
    rng = np.random.default_rng(7)
    table = np.sort(rng.integers(-10**6, 10**6, 20_000))
    keys = np.r_[rng.integers(-2 * 10**6, 2 * 10**6, 10_000), table[:100]]
    assert np.array_equal(search_sorted(table, keys), np.searchsorted(table, keys))
    assert np.array_equal(search_sorted(table, keys[:10]), np.searchsorted(table, keys[:10]))


@pytest.mark.parametrize("n, positives, outer, per_donor",
                         [(40, 20, 0, 1), (60, 15, 0, 1), (30, 5, 0, 1), (60, 20, 3, 1), (60, 20, 0, 3),
                          (60, 24, 3, 2)])
def test_fit_candidates_are_the_clones_below_the_loosest_p_in_some_fit(n, positives, outer, per_donor):
    """`FitCandidates` reads each fit's p from a table: it must keep exactly the clones whose one-sided Fisher p
    is below the loosest threshold on all rows or on the training rows of one inner fold (`outer` > 0: of the
    training rows of one of `outer` outer folds, as the baselines fit once per fold; `per_donor` > 1: samples of a
    donor, kept whole in the inner folds)."""
    rng = np.random.default_rng(n)
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, positives, replace=False)] = 1
    rank = np.empty(n, dtype=int)
    for c in (0, 1):
        rank[y == c] = np.arange((y == c).sum())
    donor = (y * n + rank // per_donor).astype(str) if per_donor > 1 else None  # a donor's samples share a class
    columns = []
    for _ in range(1500):  # carriers of every count, some leaning positive
        weight = np.where(y == 1, rng.uniform(1, 8), 1.0)
        columns.append(rng.choice(n, rng.integers(0, n + 1), replace=False, p=weight / weight.sum()))
    carried = sparse.csr_matrix((np.ones(sum(map(len, columns)), dtype=bool), np.concatenate(columns),
                                 np.cumsum([0] + [len(c) for c in columns])), shape=(len(columns), n))
    incidence = carried.T.tocsr()
    parts = [np.arange(n) % outer != k for k in range(outer)] if outer else [np.ones(n, dtype=bool)]
    expected = np.zeros(len(columns), dtype=bool)
    for part in map(np.flatnonzero, parts):
        own = groups_at(donor, part)
        for rows in [np.arange(len(part))] + [train for splits in inner_splits(y[part], 0, groups=own)
                                              for train, _ in splits]:
            expected |= fisher_enrichment(incidence[part[rows]], y[part[rows]]) < max(P_THRESHOLDS)
    assert 0 < expected.sum() < len(columns)
    assert np.array_equal(FitCandidates(y, seed=0, within=parts if outer else None, groups=donor)(carried), expected)
    placed = [(part, FitCandidates(y[part], seed=0, groups=groups_at(donor, part)))
              for part in map(np.flatnonzero, parts)]
    assert np.array_equal(FitCandidates.union(placed, n)(carried), expected)  # every part's fits counted as one


def test_fit_candidates_count_the_same_without_int8_products(monkeypatch):
    """Where torch has no int8 matrix product on the CPU, the float32 one keeps the same clones."""
    rng = np.random.default_rng(5)
    y = rng.permutation(np.repeat([0, 1], 30))
    carried = sparse.csr_matrix(rng.random((3000, 60)) < np.where(y == 1, 0.3, 0.1))
    int8 = FitCandidates(y, seed=0)(carried)
    monkeypatch.setattr(public_clones, "_has_int8_products", lambda: False)
    assert 0 < int8.sum() < len(int8)
    assert np.array_equal(FitCandidates(y, seed=0)(carried), int8)


@pytest.mark.parametrize("block", [1, 7, 1 << 22])
def test_column_counts_are_the_column_sums_of_the_rows_asked_for(block):
    """Counted a few carriers at a time, over all rows, a mask or indices in any order: scipy's column sums."""
    rng = np.random.default_rng(3)
    x = sparse.random(40, 300, density=0.1, format="csr", random_state=4).astype(bool)
    mask = rng.random(40) < 0.5
    for rows in (None, mask, rng.permutation(40)[:25]):
        expected = x.sum(axis=0) if rows is None else x[rows].sum(axis=0)
        counts = public_clones.column_counts(x, rows, block=block)
        assert counts.dtype == np.int64 and counts.sum() > 0
        np.testing.assert_array_equal(counts, np.asarray(expected).ravel())


def test_an_inner_folds_counts_are_the_wholes_less_its_test_rows(monkeypatch):
    """Each inner fold's Fisher p-values and clones, from the whole's counts less its test rows', are those of its
    training rows counted directly; the pairs' table and the sort map the keys alike."""
    rng = np.random.default_rng(5)
    x = sparse.random(60, 400, density=0.15, format="csr", random_state=6).astype(bool)
    y = (rng.random(60) < 0.4).astype(np.int64)
    totals = public_clones.carrier_counts(x, y, np.arange(60))
    for train, test in public_clones.inner_cv(y, 0, 5).split(np.zeros(60), y):
        direct = public_clones._associated(*public_clones.carrier_counts(x, y[train], train), y[train])
        for limit in (1 << 24, 0):  # the table of flags, then np.unique
            monkeypatch.setattr(public_clones, "DISTINCT_TABLE_LIMIT", limit)
            p, columns = public_clones.inner_train_associated(totals, x, y, test)
            np.testing.assert_array_equal(columns, direct[1])
            np.testing.assert_array_equal(p, direct[0])
        assert len(columns) > 100 and (p < 1).any()


def _donor_cohort(donors: int = 12, samples: int = 10, private: int = 3, seed: int = 0
                  ) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """Donors of several samples each (a longitudinal cohort), half of them positive, and no signal: each donor's
    own clones are carried by every sample of that donor and by no other donor, plus noise clones carried at random.
    Returns (incidence (repertoires, clones), class codes, donor of each repertoire)."""
    rng = np.random.default_rng(seed)
    donor = np.repeat(np.arange(donors), samples)
    y = np.isin(donor, rng.permutation(donors)[: donors // 2]).astype(np.int64)
    own = np.repeat(np.eye(donors, dtype=bool), private, axis=1)[donor]  # (repertoires, donors x private)
    noise = rng.random((len(donor), 200)) < 0.1
    return sparse.csr_matrix(np.hstack([own, noise])), y, donor.astype(str)


def test_grouped_inner_folds_keep_each_donor_whole_and_plain_ones_are_unchanged():
    """With groups, no group is on both sides of an inner fold, in any repeat; groups of one repertoire each split
    as no groups do (a cohort of one sample a donor gets the same folds as before groups were read)."""
    _, y, donor = _donor_cohort()
    for splits in public_clones.inner_splits(y, 0, groups=donor):
        assert len(splits) == 6  # 6 donors of each class: fewer folds than the 10 asked for
        for train, test in splits:
            assert not set(donor[train]) & set(donor[test])
            assert set(y[test]) == {0, 1}
    singletons = np.arange(len(y)).astype(str)
    for grouped, plain in zip(public_clones.inner_splits(y, 3, groups=singletons), public_clones.inner_splits(y, 3)):
        for (a, b), (c, d) in zip(grouped, plain):
            assert np.array_equal(a, c) and np.array_equal(b, d)
    assert public_clones.fit_rows(y, 0, groups=singletons)[1].tolist() == public_clones.fit_rows(y, 0)[1].tolist()


def test_a_donors_own_clones_do_not_look_public_when_its_samples_are_grouped():
    """Clones a donor carries in every sample but no other donor holds are no disease signal. By repertoire, the inner
    CV sees a donor's other samples in training and finds them 'associated' (inner AUC near 1: an optimistic clone
    rule and threshold choice); with the donors kept whole it finds nothing held-out samples share (chance)."""
    x, y, donor = _donor_cohort()
    by_repertoire = PublicCloneTest(random_state=0).fit(x, y)
    by_donor = PublicCloneTest(random_state=0).fit(x, y, groups=donor)
    assert by_repertoire.inner_auc_ > 0.9
    assert by_donor.inner_auc_ < 0.65
    candidates = FitCandidates(y, seed=0, groups=donor)(x.T.tocsr())
    positive_donors = np.unique(donor[y == 1]).astype(int)
    own_of_positives = (positive_donors[:, None] * 3 + np.arange(3)).ravel()
    assert candidates[own_of_positives].all()  # the final fit on all rows may still use them: they stay candidates
    fits = public_clones.fit_rows(y, 0, groups=donor)
    fewest = public_clones.min_carriers(y, 0, groups=donor)
    assert fewest <= min(int(y[rows].sum()) for rows in fits) and len(fits) == 1 + 6 * CLONE_INNER_REPEATS


def test_too_few_donors_of_a_class_for_grouped_inner_folds_is_said():
    _, y, donor = _donor_cohort(donors=4, samples=5)  # 2 donors a class: 2 folds at most
    assert public_clones.inner_cv(y, 0, groups=donor).get_n_splits() == 2
    one = np.where(y == 1, "P", donor)  # every positive sample of one donor
    with pytest.raises(DeepRCError, match="held by 1 group"):
        public_clones.inner_cv(y, 0, groups=one)
