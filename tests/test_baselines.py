"""`baselines`: 3-mer logistic regression and Emerson-style public clones on held-out folds."""

from __future__ import annotations

import functools
import logging
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from conftest import deeprc_cli

from deeprc_hopfield import baselines, progress
from deeprc_hopfield.data import SHIPPED_LISTS
from deeprc_hopfield.encoding import AMINO_ACIDS, encode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.io import write_table
from deeprc_hopfield.simulate import SimulationSettings, simulate
from deeprc_hopfield.split import Split, make_split


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """30 simulated repertoires of 200 sequences; positives carry each of 10 public clones with p 0.8.

    Also a second store of the same repertoires whose fold-0 labels are flipped.
    """
    folder = tmp_path_factory.mktemp("baselines")
    settings = SimulationSettings(n_repertoires=30, sequences_per_repertoire=200, witness_rate=0.005, seed=2,
                                  public_clones=10, public_rate=0.8, nucleotides=False)
    simulate(settings, folder / "sim")
    store = ingest(folder / "sim/metadata.csv", folder / "sim/repertoires", folder / "cohort.h5", progress=False)
    split = make_split(store, folds=3, seed=0)
    write_table(split, folder / "split.csv")
    meta = pd.read_csv(folder / "sim/metadata.csv", dtype=str)
    held_out = meta["subject_id"].isin(split.loc[split["fold"] == 0, "subject_id"])
    meta.loc[held_out, "label"] = meta.loc[held_out, "label"].map({"0": "1", "1": "0"})
    meta.to_csv(folder / "flipped.csv", index=False)
    flipped = ingest(folder / "flipped.csv", folder / "sim/repertoires", folder / "flipped.h5", progress=False)
    return {"store": store, "split": folder / "split.csv", "flipped": flipped, "folder": folder}


def test_kmer_frequencies_match_a_plain_count() -> None:
    """3-mers of the CDR3 cores (the junction without its first and last residue), whole sequences
    with trim 0."""
    sequences = ["CASSLF", "AC", "ACDAC", "WWWWW", "CASSW"]
    codes, lengths = encode(sequences)
    index = {"".join(k): i for i, k in enumerate(product(AMINO_ACIDS, repeat=3))}
    for trim, cores in ((1, ["ASSL", "", "CDA", "WWW", "ASS"]), (0, sequences)):
        got = baselines.kmer_frequencies(codes, lengths, trim=trim)
        expected = np.zeros(8000)
        for s in cores:
            for start in range(len(s) - 2):
                expected[index[s[start:start + 3]]] += 1
        np.testing.assert_allclose(got, expected / expected.sum())
    got = baselines.kmer_frequencies(codes, lengths)
    assert got[index["ASS"]] == pytest.approx(2 / 5) and got[index["SLF"]] == 0  # no k-mer reads an anchor


@pytest.mark.parametrize("block", [1, 5, 7, 1 << 22])
def test_kmer_frequencies_counted_in_blocks_of_sequences_equal_one_count(block: int) -> None:
    """Blocks of one residue (each sequence alone), of a few sequences, of all: the same frequencies, bit for bit."""
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list(AMINO_ACIDS), size=n)) for n in rng.integers(0, 18, size=300)]
    codes, lengths = encode(sequences)
    whole = baselines.kmer_frequencies(codes, lengths, block=len(codes) + 1)
    assert whole.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(baselines.kmer_frequencies(codes, lengths, block=block), whole)


def test_public_clones_find_the_shared_signal(cohort: dict[str, Path], tmp_path: Path) -> None:
    result = deeprc_cli("baselines", "--store", cohort["store"], "--split", cohort["split"], "--out", tmp_path / "bl",
                        "--methods", "public_clones")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "bl" / "kmer_predictions.csv").exists()
    table = pd.read_csv(tmp_path / "bl" / "public_clones_predictions.csv", dtype={"true_label": str})
    assert list(table.columns) == ["subject_id", "fold", "probability", "true_label", "score"]
    split = pd.read_csv(cohort["split"])
    assert table["subject_id"].tolist() == split["subject_id"].tolist()
    assert (table["fold"] == split["fold"]).all()
    assert table["probability"].between(0, 1).all()
    y = table["true_label"] == "1"
    assert roc_auc_score(y, table["probability"]) > 0.9
    assert roc_auc_score(y, table["score"]) > 0.9
    assert table.loc[~y, "score"].mean() < 1 < table.loc[y, "score"].mean()  # clones carried, counted


def test_the_public_clone_rules_can_be_fixed_and_a_bad_one_is_refused(cohort: dict[str, Path], tmp_path: Path) -> None:
    """`--clone-keys`/`--clone-radius` fix the rule the test may choose (as the memory's `clone_keys`,
    `clone_radius`); radius 0 spares the one-substitution collection on large cohorts. `--pgen-cache`
    keeps the candidates' pgen values in its folder."""
    command = ["baselines", "--store", cohort["store"], "--split", cohort["split"], "--out", tmp_path / "bl",
               "--methods", "public_clones", "--pgen-cache", tmp_path / "pgen", "--clone-keys", "gene", "--clone-radius",
               "0"]
    result = deeprc_cli(*command)
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "pgen").glob("olga*_human_TRB.*.tsv"))  # the candidates' pgen, kept for other jobs
    folds = pd.read_csv(cohort["split"])["fold"].nunique()
    assert result.stderr.count("CDR3 + V gene, exact, ") == folds and "substitution" not in result.stderr
    bad = deeprc_cli(*command[:-1], "2")
    assert bad.returncode == 2 and "invalid choice: '2'" in bad.stderr and "Traceback" not in bad.stderr
    # --clone-pgen off (training: clone_pgen: false) asks OLGA for nothing; a limit below 1 is refused
    off = [*command[:6], tmp_path / "bl-off", *command[7:10], tmp_path / "pgen-off", *command[11:]]
    result = deeprc_cli(*off, "--clone-pgen", "off")
    assert result.returncode == 0, result.stderr
    assert not list((tmp_path / "pgen-off").glob("*.tsv"))
    bad = deeprc_cli(*off, "--clone-pgen-limit", "0")
    assert bad.returncode == 2 and "--clone-pgen-limit" in bad.stderr and "Traceback" not in bad.stderr


def test_one_job_a_fold_gives_the_predictions_of_all_folds_at_once(cohort: dict[str, Path], tmp_path: Path) -> None:
    """`--fold K` (the workflow's one baselines job a fold, run side by side): fold K's rows only, each the same as
    in the run over every fold; the files of all folds together are that run's. A fold not in the split is refused
    in one line."""
    whole = baselines.cross_validate(cohort["store"], cohort["split"], seed=0)
    folds = sorted(pd.read_csv(cohort["split"])["fold"].unique().tolist())
    each = [baselines.cross_validate(cohort["store"], cohort["split"], seed=0, fold=k) for k in folds]
    for method in baselines.METHODS:
        assert all(set(one[method]["fold"]) == {k} for k, one in zip(folds, each))
        joined = pd.concat([one[method] for one in each]).set_index("subject_id").loc[whole[method]["subject_id"]]
        np.testing.assert_array_equal(joined["probability"], whole[method]["probability"])
        np.testing.assert_array_equal(joined["score"], whole[method]["score"])
    command = ["baselines", "--store", cohort["store"], "--split", cohort["split"], "--methods", "kmer"]
    result = deeprc_cli(*command, "--fold", "1", "--out", tmp_path / "fold1")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "fold1" / "kmer_predictions.csv")
    assert table["subject_id"].tolist() == each[1]["kmer"]["subject_id"].tolist()
    bad = deeprc_cli(*command, "--fold", "7", "--out", tmp_path / "fold7")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and not (tmp_path / "fold7").exists()
    assert f"fold 7 is not in the split (folds: {folds})" in bad.stderr


def test_held_out_labels_never_reach_the_fit(cohort: dict[str, Path]) -> None:
    """Flipping the labels of fold 0 must not change a single fold-0 prediction of either baseline."""
    original = baselines.cross_validate(cohort["store"], cohort["split"], seed=0)
    flipped = baselines.cross_validate(cohort["flipped"], cohort["split"], seed=0)
    for method in baselines.METHODS:
        a, b = original[method], flipped[method]
        fold0 = a["fold"] == 0
        assert (a.loc[fold0, "true_label"] != b.loc[fold0, "true_label"]).all()
        np.testing.assert_array_equal(a.loc[fold0, "probability"], b.loc[fold0, "probability"])
        # the other folds were fitted on fold 0's (now different) labels, so they may change; they exist
        assert a.loc[~fold0, "probability"].notna().all()
    kmer = original["kmer"]
    assert roc_auc_score(kmer["true_label"] == "1", kmer["probability"]) > 0.5


def test_collecting_only_what_a_fold_can_use_changes_no_public_clone_fit(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The baselines collect only the clones that some fit of some outer fold can use (positive carriers,
    then at radius 1 `public_clones.FitCandidates`): every fold's choice, associated clones and held-out scores
    must be those fitted on every clone of the cohort. The cohort: receptors of the shipped CMV list, some shared
    by chance in both classes (carried by enough positives, yet never below the test's p)."""
    settings = SimulationSettings(n_repertoires=30, sequences_per_repertoire=200, witness_rate=0.0, seed=2,
                                  nucleotides=False, signal_pool=str(SHIPPED_LISTS["vdjdb-cmv-trb"]), pool_size=10,
                                  receptors_per_positive=4, receptors_per_negative=6, pool_sharing="zipf")
    simulate(settings, tmp_path / "sim")
    store = ingest(tmp_path / "sim/metadata.csv", tmp_path / "sim/repertoires", tmp_path / "cohort.h5", progress=False)
    write_table(make_split(store, folds=3, seed=0), tmp_path / "split.csv")
    split = Split.read(tmp_path / "split.csv")

    def features(fits: bool) -> baselines.CohortFeatures:
        return baselines.read_features(store, None, ("public_clones",),
                                       fits=(lambda subjects: baselines._training_rows(split, subjects)) if fits else None)

    every, fewer = features(False), features(True)
    with monkeypatch.context() as patch:  # positive carriers only
        patch.setattr(baselines, "FitCandidates", lambda *args, **kwargs: None)
        carriers_only = features(True)
    radius_one = [[c.incidence.shape[1] for c in f.clones.clones if c.rule.radius == 1] for f in (fewer, carriers_only)]
    assert all(a < b for a, b in zip(*radius_one))
    fold = split.fold_of(every.subject_ids)
    for k in np.unique(fold):
        a, b = (baselines.fit_public_clone_baseline(f, fold != k, seed=0) for f in (every, fewer))
        assert a.summary() == b.summary()
        assert set(a.clones.keys[a.test.associated].tolist()) == set(b.clones.keys[b.test.associated].tolist())
        np.testing.assert_array_equal(a.test.decision_function(a.clones.incidence[fold == k]),
                                      b.test.decision_function(b.clones.incidence[fold == k]))


def test_kmer_fit_sees_training_rows_only(cohort: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    features = baselines.read_features(cohort["store"], None, ("kmer",))
    fold = pd.read_csv(cohort["split"])["fold"].to_numpy()
    seen = []
    real_fit = baselines.fit_kmer
    monkeypatch.setattr(baselines, "fit_kmer", lambda x, y, *a: seen.append(x) or real_fit(x, y, *a))
    baselines.cross_validate(cohort["store"], cohort["split"], ("kmer",))
    assert len(seen) == 3
    for k, x in enumerate(seen):
        np.testing.assert_array_equal(x, features.kmers[fold != k])


def test_the_3mer_count_logs_its_progress(cohort: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """Counting the cohort's 3-mers (minutes at full size) says how far it is, as every long pass does."""
    monkeypatch.setattr(baselines, "logged", functools.partial(progress.logged, every=0.0))
    with caplog.at_level(logging.INFO, logger=baselines.log.name):
        features = baselines.read_features(cohort["store"], None, ("kmer",))
    n = len(features.subject_ids)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("kmer: counting 3-mers")]
    assert len(lines) == n and lines[-1].startswith(f"kmer: counting 3-mers: {n}/{n} repertoires (100%)")


def test_refuses_a_non_binary_label_and_a_subject_missing_from_the_split(cohort: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    split = pd.read_csv(cohort["split"], dtype=str)
    split.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DeepRCError, match="subject 'rep000' is not in the split"):
        baselines.cross_validate(cohort["store"], tmp_path / "short.csv", ("public_clones",))
    meta = pd.read_csv(cohort["folder"] / "sim/metadata.csv", dtype=str)
    meta["label"] = (np.arange(len(meta)) % 3).astype(str)
    meta.to_csv(tmp_path / "three.csv", index=False)
    store = ingest(tmp_path / "three.csv", cohort["folder"] / "sim/repertoires", tmp_path / "three.h5", progress=False)
    with pytest.raises(DeepRCError, match="binary label; 'label' is numeric"):
        baselines.cross_validate(store, cohort["split"])



def test_a_fold_too_thin_for_inner_folds_is_left_out_of_the_run_over_every_fold(cohort: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    """A grouped split (`split --group-column`) whose one fold leaves a single donor of the positives in its training
    part: `--fold` of that fold refuses it in one line naming the fold; the run over every fold logs that refusal,
    scores the other fold as its own job does, and leaves the thin fold's rows out (no traceback, no fold lost)."""
    meta = pd.read_csv(cohort["folder"] / "sim/metadata.csv", dtype=str)
    positive = meta["label"] == "1"
    rank = meta.groupby("label").cumcount()  # 15 of each class: positives of donors A (9), B (3), C (3)
    meta["donor"] = np.where(positive, np.select([rank < 9, rank < 12], ["Donor A", "Donor B"], "Donor C"),
                             "N" + (rank // 3).astype(str))
    meta.to_csv(tmp_path / "donors.csv", index=False)
    store = ingest(tmp_path / "donors.csv", cohort["folder"] / "sim/repertoires", tmp_path / "donors.h5",
                   progress=False)
    split = tmp_path / "split.csv"
    assert deeprc_cli("split", "--store", store, "--out", split, "--folds", 2, "--group-column", "donor"
                      ).returncode == 0
    table = pd.read_csv(split).merge(meta[["subject_id", "label"]])
    donors = {k: table[(table["fold"] != k) & (table["label"] == "1")]["group"].nunique() for k in (0, 1)}
    thin, scored = min(donors, key=donors.get), max(donors, key=donors.get)
    assert donors[thin] == 1 < donors[scored]  # donor A alone trains one fold: too few for grouped inner folds
    command = ["baselines", "--store", store, "--split", split, "--clone-pgen", "off"]
    refused = deeprc_cli(*command, "--fold", thin, "--out", tmp_path / "thin")
    said = f"fold {thin}, its training part (the other folds): a class of these"
    assert refused.returncode == 1 and said in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert not (tmp_path / "thin").exists()
    alone = deeprc_cli(*command, "--fold", scored, "--out", tmp_path / "alone")
    every = deeprc_cli(*command, "--out", tmp_path / "every")
    assert alone.returncode == 0 and every.returncode == 0, every.stderr
    warned = [line for line in every.stderr.splitlines() if said in line]
    held_out = int((table["fold"] == thin).sum())
    assert len(warned) == 1 and f"not scored: its {held_out} repertoires are left out" in warned[0], every.stderr
    for method in baselines.METHODS:
        whole = pd.read_csv(tmp_path / "every" / f"{method}_predictions.csv")
        assert set(whole["fold"]) == {scored} and whole["probability"].between(0, 1).all()
        pd.testing.assert_frame_equal(whole, pd.read_csv(tmp_path / "alone" / f"{method}_predictions.csv"))
