"""OLGA generation probabilities (`deeprc_hopfield.pgen`) and the pgen filter of the public-clone test."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.pgen import (MERGE_FROM, PgenModel, chain_of_genes, disk_cache, generation_probability,
                                  olga_chain)
from deeprc_hopfield.public_clones import (CLONE_INNER_FOLDS, CLONE_INNER_REPEATS, P_THRESHOLDS, PublicCloneTest,
                                          _associated, _pgen_request, carrier_counts, fit_public_clones,
                                          inner_cv)

TRB = ["CASSLGQAYEQYF", "CAWSVAPDRGGYTF", "CASSPGTGGYEQYF", "CSARDRTGNGYTF"]


def _olga(folder: str, kind: str):
    """OLGA's own GenerationProbability object, loaded as OLGA's documentation does."""
    import olga
    import olga.generation_probability as generation_probability
    import olga.load_model as load_model

    path = os.path.join(os.path.dirname(olga.__file__), "default_models", folder)
    genomic = getattr(load_model, f"GenomicData{kind}")()
    genomic.load_igor_genomic_data(os.path.join(path, "model_params.txt"), os.path.join(path, "V_gene_CDR3_anchors.csv"),
                                   os.path.join(path, "J_gene_CDR3_anchors.csv"))
    generative = getattr(load_model, f"GenerativeModel{kind}")()
    generative.load_and_process_igor_model(os.path.join(path, "model_marginals.txt"))
    return getattr(generation_probability, f"GenerationProbability{kind}")(generative, genomic)


def test_pgen_agrees_with_olga_called_directly():
    olga = _olga("human_T_beta", "VDJ")
    model = PgenModel("TRB")
    expected = [olga.compute_aa_CDR3_pgen(s, print_warnings=False) for s in TRB]
    np.testing.assert_allclose(model.pgen(TRB), expected, rtol=1e-12)
    assert 1e-12 < min(expected) and max(expected) < 1e-5
    # V enters as its family (allele and gene dropped), J marginalised; OLGA's documented example
    v = ["TRBV5-1*01", "TRBV30", "TRBV6-2", None]
    with_v = [olga.compute_aa_CDR3_pgen(s, f, None, print_warnings=False)
              for s, f in zip(TRB, ["TRBV5", "TRBV30", "TRBV6", None])]
    np.testing.assert_allclose(model.pgen(TRB, v), with_v, rtol=1e-12)
    assert (np.array(with_v) <= np.array(expected)).all() and with_v[3] == expected[3]
    # v_level='gene' and a J: alleles dropped (OLGA's TRBV30 is its alleles *01, *02, *04 together)
    gene = PgenModel("TRB", v_level="gene").pgen(["CAWSVAPDRGGYTF"], ["TRBV30*01"], ["TRBJ1-2*01"])
    assert gene[0] == pytest.approx(olga.compute_aa_CDR3_pgen("CAWSVAPDRGGYTF", "TRBV30", "TRBJ1-2"), rel=1e-12)
    # a V of another locus or unknown to OLGA is marginalised (OLGA itself would read TRAV5 as TRBV5)
    np.testing.assert_array_equal(model.pgen(TRB[:2], ["TRAV5", "TRBV999"]), expected[:2])
    # a junction OLGA cannot generate has pgen 0
    assert model.pgen(["ASSLGQAYEQY", ""]).tolist() == [0.0, 0.0]
    tra = _olga("human_T_alpha", "VJ").compute_aa_CDR3_pgen("CAVRDSNYQLIW", print_warnings=False)
    assert generation_probability(["CAVRDSNYQLIW"], chain="tcra")[0] == pytest.approx(tra, rel=1e-12)
    # a gene with a delta name: its family is TRAV29, which OLGA names with the delta name (v29dv5)
    alpha = _olga("human_T_alpha", "VJ").compute_aa_CDR3_pgen("CAASNYQLIW", "TRAV29/DV5", None, print_warnings=False)
    model = PgenModel("TRA")
    assert 0 < alpha < model.pgen(["CAASNYQLIW"])[0]  # the V counts: not marginalised
    assert model.pgen(["CAASNYQLIW"], ["TRAV29/DV5*01"])[0] == pytest.approx(alpha, rel=1e-12)


def test_pgen_is_cached_per_distinct_sequence():
    model = PgenModel("TRB")
    first = model.pgen(TRB + TRB)
    assert len(model) == len(TRB)
    spent = model.seconds
    model._olga = None  # a second call must not reach OLGA
    np.testing.assert_array_equal(model.pgen(TRB[::-1]), first[: len(TRB)][::-1])
    assert len(model) == len(TRB) and model.seconds >= spent


@pytest.mark.parametrize("chain, species", [("TRG", "human"), ("TRD", "human"), ("TRB", "rat"), ("", "human")])
def test_unsupported_chain_is_refused_in_one_line(chain, species):
    with pytest.raises(DeepRCError) as error:
        PgenModel(chain, species)
    message = str(error.value)
    assert "\n" not in message and "no OLGA generation-probability model" in message and "human TRB" in message


def test_chain_names():
    assert olga_chain("tcrb") == ("human", "TRB") and olga_chain("TRB", "Mouse") == ("mouse", "TRB")
    assert chain_of_genes(["TRBV5-1", "TRBV6-2", "TRAV1-2"]) == "TRB"
    assert chain_of_genes(["IGHV3-23", "IGHV1-2"]) == "IGH"
    with pytest.raises(DeepRCError, match=r"cannot tell the chain: no V gene names \(give the chain"):
        chain_of_genes([])
    with pytest.raises(DeepRCError, match="v_level"):
        PgenModel("TRB", v_level="allele")


# --- the filter in the public-clone test ---------------------------------------------------------
def _cohort(seed: int = 0):
    """60 repertoires (30 positive): 6 disease clones (columns 0-5, each in half the positives, low
    pgen), one chance-public clone (column 6, high pgen) carried by 24 positives and 10 negatives,
    and 200 background clones each carried by 10% of all repertoires (low pgen)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 30)
    disease = (rng.random((60, 6)) < 0.5) & (y[:, None] == 1)
    chance = np.zeros((60, 1), dtype=bool)
    chance[rng.choice(30, 10, replace=False)] = True
    chance[30 + rng.choice(30, 24, replace=False)] = True
    background = rng.random((60, 200)) < 0.1
    x = sparse.csr_matrix(np.hstack([disease, chance, background]))
    pgen = np.full(x.shape[1], 1e-10)
    pgen[6] = 1e-4
    return x, y, pgen


def _chance_cohort(seed: int = 0):
    """60 repertoires (30 positive): 6 disease clones (columns 0-5, each in 30% of the positives, low pgen),
    1,000 chance-public clones (columns 6-1005, high pgen) each carried by 40% of all repertoires at random
    (some reach a low p by chance), and 200 background clones each in 10% (low pgen)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 30)
    disease = (rng.random((60, 6)) < 0.3) & (y[:, None] == 1)
    chance = rng.random((60, 1000)) < 0.4
    background = rng.random((60, 200)) < 0.1
    x = sparse.csr_matrix(np.hstack([disease, chance, background]))
    pgen = np.full(x.shape[1], 1e-10)
    pgen[6:1006] = 1e-4
    return x, y, pgen


def test_pgen_filter_removes_many_chance_public_clones_carried_at_random():
    """Where chance-public clones outnumber the disease clones, the filter is chosen, leaves out exactly the chance
    clones the test alone took, and ranks other draws of the same design better (the mechanics of the request:
    the test below)."""
    x, y, values = _chance_cohort()
    without = PublicCloneTest(random_state=0).fit(x, y)
    chance = (without.associated_ >= 6) & (without.associated_ < 1006)
    assert chance.any() and without.pgen_cutoff_ is None  # the Fisher test alone takes chance clones
    test = PublicCloneTest(random_state=0).fit(x, y, pgen=lambda columns: values[columns])
    assert test.pgen_cutoff_ is not None and test.pgen_cutoff_ < 1e-4
    assert set(test.associated_.tolist()) == set(without.associated_[~chance].tolist())
    assert test.pgen_removed_ == chance.sum() and test.inner_auc_ > without.inner_auc_ + 0.1
    for seed in (1, 2, 3):
        x_new, y_new, _ = _chance_cohort(seed)
        assert roc_auc_score(y_new, test.decision_function(x_new)) > roc_auc_score(
            y_new, without.decision_function(x_new))


def test_pgen_filter_removes_a_chance_public_clone_and_keeps_the_disease_clones():
    x, y, values = _cohort()
    calls = []

    def pgen(columns):
        calls.append(np.array(columns))
        return values[columns]

    without = PublicCloneTest(random_state=0).fit(x, y)
    assert 6 in without.associated_ and without.pgen_cutoff_ is None  # the Fisher test alone takes it
    test = PublicCloneTest(random_state=0).fit(x, y, pgen=pgen)
    assert test.pgen_cutoff is not None and test.pgen_cutoff_ < 1e-4
    assert 6 not in test.associated_ and set(range(6)) <= set(test.associated_.tolist())
    assert test.pgen_removed_ == 1 and test.inner_auc_ > without.inner_auc_
    assert test.pgen_inner_aucs_.shape == (4, len(P_THRESHOLDS))
    np.testing.assert_array_equal(test.inner_aucs_, test.pgen_inner_aucs_[list((None, 1e-6, 1e-7, 1e-8)).index(
        test.pgen_cutoff_)])
    # asked once, for the candidate columns only: below the loosest p threshold in an inner fold or the final fit
    assert len(calls) == 1
    asked = calls[0]
    assert len(np.unique(asked)) == len(asked) and len(asked) < 40
    candidates = set()
    for train, _ in inner_cv(y, 0).split(np.zeros(len(y)), y):
        p, columns = _associated(*carrier_counts(x, y[train], train), y[train])
        candidates |= set(columns[p < max(P_THRESHOLDS)].tolist())
    p, columns = _associated(*carrier_counts(x, y, np.arange(len(y))), y)
    candidates |= set(columns[p < max(P_THRESHOLDS)].tolist())
    assert set(asked.tolist()) == candidates and {0, 6} <= candidates
    np.testing.assert_array_equal(test.pgen_columns_, np.sort(asked))
    # held out (the same design, another draw): the chance clone no longer scores negatives
    x_new, y_new, _ = _cohort(1)
    assert test.decision_function(x_new)[y_new == 0].max() == 0 < without.decision_function(x_new)[y_new == 0].max()
    # fit_public_clones passes pgen on
    assert fit_public_clones(x, y, seed=0, pgen=lambda c: values[c]).pgen_cutoff_ == test.pgen_cutoff_


def test_pgen_filter_ties_go_to_no_filter():
    """A pgen under every cutoff removes nothing: every cutoff ties with no filter, which is kept."""
    x, y, values = _cohort()
    test = PublicCloneTest(random_state=0).fit(x, y, pgen=lambda c: np.full(len(c), 1e-12))
    reference = PublicCloneTest(random_state=0).fit(x, y)
    assert test.pgen_cutoff_ is None and test.pgen_removed_ == 0
    np.testing.assert_array_equal(test.associated_, reference.associated_)
    assert (test.pgen_inner_aucs_ == test.pgen_inner_aucs_[0]).all()
    # unknown (NaN) pgen is never filtered
    unknown = PublicCloneTest(random_state=0).fit(x, y, pgen=lambda c: np.full(len(c), np.nan))
    np.testing.assert_array_equal(unknown.associated_, reference.associated_)


def test_pgen_request_takes_the_loosest_threshold_within_the_limit():
    fits = [(np.array([1e-2 / 2, 1e-4 / 2, 1e-3 / 2]), np.array([5, 7, 9])),
            (np.array([1e-5 / 2, 1e-2 / 2]), np.array([7, 3]))]
    columns, tried, counts = _pgen_request(fits, P_THRESHOLDS, None)  # P_THRESHOLDS: 1e-2 ... 1e-5
    np.testing.assert_array_equal(columns, [3, 5, 7, 9])
    assert tried.all() and counts.tolist() == [4, 2, 1, 1]
    columns, tried, _ = _pgen_request(fits, P_THRESHOLDS, 3)  # p < 1e-2 passes 4 columns, p < 1e-3 passes 7 and 9
    np.testing.assert_array_equal(columns, [7, 9])
    np.testing.assert_array_equal(tried, [t <= 1e-3 for t in P_THRESHOLDS])
    columns, tried, _ = _pgen_request(fits, P_THRESHOLDS, 1)
    np.testing.assert_array_equal(columns, [7])
    columns, tried, _ = _pgen_request([(np.array([1e-6, 1e-6]), np.array([1, 2]))], P_THRESHOLDS, 1)
    assert columns.size == 0 and not tried.any()


def test_pgen_limit_tries_the_cutoffs_at_the_tight_thresholds_only():
    """Over the limit, pgen is asked for the candidates of the thresholds within it; the looser thresholds are
    fitted without the filter (their cells NaN), and a limit below every threshold's candidates is no filter."""
    x, y, values = _cohort()
    asked = []

    def pgen(columns):
        asked.append(np.array(columns))
        return values[columns]

    unlimited = PublicCloneTest(random_state=0).fit(x, y, pgen=pgen, pgen_limit=None)
    assert PublicCloneTest(random_state=0).fit(x, y, pgen=pgen, pgen_limit=len(asked[0])).pgen_thresholds_.all()
    np.testing.assert_array_equal(asked[1], asked[0])
    limited = PublicCloneTest(random_state=0).fit(x, y, pgen=pgen, pgen_limit=len(asked[0]) - 1)
    tried = limited.pgen_thresholds_
    assert tried.any() and not tried.all() and len(asked[2]) < len(asked[0])
    assert limited.pgen_candidates_[0] == len(asked[0]) and limited.pgen_candidates_[tried].max() == len(asked[2])
    assert set(asked[2].tolist()) < set(asked[0].tolist())
    assert np.isnan(limited.pgen_inner_aucs_[1:, ~tried]).all()
    np.testing.assert_array_equal(limited.pgen_inner_aucs_[:, tried], unlimited.pgen_inner_aucs_[:, tried])
    np.testing.assert_array_equal(limited.pgen_inner_aucs_[0], unlimited.pgen_inner_aucs_[0])
    assert not np.isnan(limited.inner_auc_)
    without = PublicCloneTest(random_state=0).fit(x, y)
    none = PublicCloneTest(random_state=0).fit(x, y, pgen=pgen, pgen_limit=1)
    assert len(asked) == 3 and not none.pgen_thresholds_.any()  # nothing asked: no threshold's candidates fit
    assert none.pgen_cutoff_ is None and none.threshold_ == without.threshold_
    np.testing.assert_array_equal(none.associated_, without.associated_)
    np.testing.assert_array_equal(none.pgen_inner_aucs_[0], without.pgen_inner_aucs_[0])


def _fit_before_pgen(X, y, thresholds=P_THRESHOLDS, inner_folds=CLONE_INNER_FOLDS, random_state=0):
    """PublicCloneTest.fit as it was before the pgen filter (the reference for pgen=None)."""
    X = sparse.csr_matrix(X)
    classes, y = np.unique(np.asarray(y), return_inverse=True)
    shares = np.zeros((len(thresholds), len(y)))
    counts = np.zeros((len(thresholds), len(y)))
    for inner_train, inner_test in inner_cv(y, random_state, inner_folds).split(np.zeros(len(y)), y):
        p, columns = _associated(*carrier_counts(X, y[inner_train], inner_train), y[inner_train])
        carried = X[inner_test][:, columns]
        for t, threshold in enumerate(thresholds):
            chosen = p < threshold
            counts[t, inner_test] = np.asarray(carried[:, chosen].sum(axis=1)).ravel()
            shares[t, inner_test] = counts[t, inner_test] / max(int(chosen.sum()), 1)
    aucs = np.array([roc_auc_score(y, s) if np.ptp(s) > 0 else 0.5 for s in shares])
    best = int(np.argmax(aucs))
    p, columns = _associated(*carrier_counts(X, y, np.arange(len(y))), y)
    calibration = LogisticRegression(C=1e4).fit(shares[best][:, None], y) if np.ptp(shares[best]) > 0 else None
    return {"threshold": thresholds[best], "associated": columns[p < thresholds[best]], "inner_aucs": aucs,
            "inner_auc": float(aucs[best]), "out_of_fold": counts[best], "calibration": calibration}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_pgen_is_exactly_the_test_as_before(seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat([0, 1], 25))
    x = sparse.csr_matrix((rng.random((50, 300)) < 0.08) | ((rng.random((50, 300)) < 0.3 * seed / 2)
                                                             & (y[:, None] == 1) & (np.arange(300) < 10)))
    before = _fit_before_pgen(x, y, random_state=seed)
    now = PublicCloneTest(random_state=seed, inner_repeats=1).fit(x, y)
    assert now.threshold_ == before["threshold"] and now.pgen_cutoff_ is None
    np.testing.assert_array_equal(now.associated_, before["associated"])
    np.testing.assert_array_equal(now.inner_aucs_, before["inner_aucs"])
    np.testing.assert_array_equal(now.out_of_fold_, before["out_of_fold"])
    assert now.inner_auc_ == before["inner_auc"]
    assert (now.calibration_ is None) == (before["calibration"] is None)
    if before["calibration"] is not None:
        np.testing.assert_array_equal(now.calibration_.coef_, before["calibration"].coef_)
        np.testing.assert_array_equal(now.calibration_.intercept_, before["calibration"].intercept_)
    assert now.pgen_columns_.size == 0 and now.pgen_inner_aucs_.shape == (1, len(P_THRESHOLDS))
    assert PublicCloneTest(random_state=seed).get_params() == {
        "thresholds": P_THRESHOLDS, "inner_folds": CLONE_INNER_FOLDS, "random_state": seed,
        "inner_repeats": CLONE_INNER_REPEATS}


def test_pgen_in_worker_processes_gives_the_same_values(monkeypatch):
    """`workers` > 1 computes the new values in forked processes, part by part; nothing else changes."""
    import deeprc_hopfield.pgen as pgen_module

    monkeypatch.setattr(pgen_module, "PART", 3)
    monkeypatch.setattr(pgen_module, "PARALLEL_FROM", 4)
    junctions = TRB * 3 + ["CASSLAGGRETQYF", "CASSQDRGNQPQHF", "CASRPGQGAYEQYF", "CAWSVGTEAFF"]
    v_calls = ["TRBV5-1", None, "TRBV20-1", "TRBV29"] * 4
    alone = PgenModel("TRB").pgen(junctions, v_calls)
    together = PgenModel("TRB")
    assert np.array_equal(together.pgen(junctions, v_calls, workers=2), alone)
    assert len(together) == len(set(zip(junctions, v_calls))) and (alone > 0).all()


def test_values_kept_on_disk_are_read_by_another_process_instead_of_computed(tmp_path):
    """What one job computed, the next reads from the shared folder: the same values, none computed again."""
    folder = tmp_path / "pgen"
    v_calls = ["TRBV5-1*01", None, "TRBV20-1", "TRBV7-9"]
    with disk_cache(folder):
        first = PgenModel("TRB")  # a fresh model stands for another process: its own in-memory cache
        values = first.pgen(TRB, v_calls)
        assert first.computed == len(TRB) and len(list(folder.glob("*.tsv"))) == 1
        second = PgenModel("TRB")
        np.testing.assert_array_equal(second.pgen(TRB[::-1], v_calls[::-1]), values[::-1])  # exactly, not close
        assert second.computed == 0
        third = PgenModel("TRB", v_level="none")  # another V level is another key: computed, added
        third.pgen(TRB[:2], v_calls[:2])
        assert third.computed == 1 and len(list(folder.glob("*.tsv"))) == 2  # (TRB[1] has no V: the same key)
    again = PgenModel("TRB")
    again.pgen(TRB, v_calls)  # outside the block nothing is read from disk
    assert again.computed == len(TRB)


def test_many_cache_files_are_merged_and_an_unwritable_folder_is_only_logged(tmp_path, caplog):
    folder = tmp_path / "pgen"
    with disk_cache(folder):
        junctions = [f"CASS{a}{b}YEQYF" for a in "ADEGLPRS" for b in "AGLPQRST"][:MERGE_FROM]
        for junction in junctions:
            PgenModel("TRB").pgen([junction])  # one new key, one file each
        assert len(list(folder.glob("*.tsv"))) == MERGE_FROM
        reader = PgenModel("TRB")
        reader.pgen(junctions)
        assert reader.computed == 0 and len(list(folder.glob("*.tsv"))) == 1  # merged, nothing lost
        assert not list(folder.glob(".*.tmp"))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with disk_cache(blocked / "pgen"):
        model = PgenModel("TRB")
        np.testing.assert_array_equal(model.pgen(TRB), PgenModel("TRB").pgen(TRB))
    assert model.computed == len(TRB) and "cannot write" in caplog.text


def test_repeated_inner_cv_chooses_by_the_mean_of_the_repeats_aucs():
    """Each repeat of the inner CV is the single-split test with the next seed; the p threshold is chosen
    by the mean of their inner AUCs, and the out-of-fold counts are the first repeat's."""
    rng = np.random.default_rng(4)
    y = rng.permutation(np.repeat([0, 1], 30))
    x = sparse.csr_matrix((rng.random((60, 300)) < 0.08) | ((rng.random((60, 300)) < 0.25)
                                                             & (y[:, None] == 1) & (np.arange(300) < 10)))
    singles = [_fit_before_pgen(x, y, random_state=seed) for seed in (3, 4, 5)]
    repeated = PublicCloneTest(random_state=3, inner_repeats=3).fit(x, y)
    mean = np.mean([single["inner_aucs"] for single in singles], axis=0)
    np.testing.assert_allclose(repeated.inner_aucs_, mean)
    assert repeated.threshold_ == P_THRESHOLDS[int(np.argmax(mean))] and repeated.inner_auc_ == pytest.approx(mean.max())
    first = PublicCloneTest(thresholds=(repeated.threshold_,), random_state=3, inner_repeats=1).fit(x, y)
    np.testing.assert_array_equal(repeated.out_of_fold_, first.out_of_fold_)


def test_the_clone_memory_s_pgen_of_a_mouse_store_is_olga_s_mouse_model(mouse_cohort, tmp_path):
    """Training's chance-public filter asks pgen of a mouse store's candidate clones under OLGA's mouse TRB model
    (mouse_T_beta), with their mouse V families (TRBV13 of TRBV13-2, no human gene), and never loads the human one."""
    from deeprc_hopfield import pgen
    from deeprc_hopfield.ingest import ingest
    from deeprc_hopfield.sampling import RepertoireCache
    from deeprc_hopfield.store import RepertoireStore
    from deeprc_hopfield.training.clone_memory import associated_clones
    from deeprc_hopfield.training.config import TrainingConfig

    path = ingest(*mouse_cohort, tmp_path / "mouse.h5", progress=False, species="mouse")
    pgen._shared_model.cache_clear()
    with RepertoireStore(path) as store:
        _, clones, _ = associated_clones(RepertoireCache(store), store.label("label").values, np.arange(len(store)),
                                         TrainingConfig(clone_keys="family", clone_radius=0), store.v_genes)
    assert sorted(junction for junction, _ in clones) == ["CASGDAGGRNTLYF", "CASSLRGNQDTQYF", "CASSQDWGGYEQYF"]
    mouse = pgen.pgen_model("TRB", "mouse", "family")
    assert pgen._shared_model.cache_info().currsize == 1  # the model training used: the mouse one
    assert mouse.computed == 3 and {v for _, v, _ in mouse._cache} == {"TRBV13", "TRBV5"}
    values = {key[0]: value for key, value in mouse._cache.items()}
    assert values["CASGDAGGRNTLYF"] == pytest.approx(
        generation_probability(["CASGDAGGRNTLYF"], "TRB", "mouse", ["TRBV13-2"])[0], rel=1e-12)
