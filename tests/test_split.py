"""`split`: stratified, seeded k-fold assignment of a store's repertoires."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold

from deeprc_hopfield.errors import DeepRCError, SplitError
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.io import write_table
from deeprc_hopfield.split import Split, make_split, read_split
from conftest import deeprc_cli, write_airr


def _store(folder: Path, labels: list[str], column: str = "label", donors: list[str] | None = None) -> Path:
    """A store of len(labels) small AIRR repertoires with the given label values (and `donor` column)."""
    rng = np.random.default_rng(1)
    (folder / "reps").mkdir(parents=True)
    lines = [f"subject_id,filename,{column}" + (",donor" if donors else "")]
    for i, value in enumerate(labels):
        write_airr(folder / "reps" / f"r{i}.tsv", rng, 5)
        lines.append(f"S{i:02d},r{i}.tsv,{value}" + (f",{donors[i]}" if donors else ""))
    (folder / "meta.csv").write_text("\n".join(lines) + "\n")
    return ingest(folder / "meta.csv", folder / "reps", folder / "cohort.h5", [column], progress=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """23 repertoires: 15 negative, 8 positive."""
    return _store(tmp_path_factory.mktemp("split"), ["no"] * 15 + ["yes"] * 8)


def _cli(*args: object) -> subprocess.CompletedProcess:
    return deeprc_cli(*args)


def test_every_subject_once_and_stratified(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "split.csv"
    result = _cli("split", "--store", store, "--out", out, "--folds", 4, "--seed", 3)
    assert result.returncode == 0, result.stderr
    split = read_split(out)
    assert list(split.columns) == ["subject_id", "fold"]
    assert split["subject_id"].tolist() == [f"S{i:02d}" for i in range(23)]  # each once, store order
    assert sorted(split["fold"].unique()) == [0, 1, 2, 3]
    positive = split["subject_id"].str[1:].astype(int) >= 15
    per_fold = pd.crosstab(split["fold"], positive)
    assert per_fold[False].max() - per_fold[False].min() <= 1  # 15 negatives: 4, 4, 4, 3
    assert per_fold[True].tolist() == [2, 2, 2, 2]


def test_seeded(store: Path, tmp_path: Path) -> None:
    files = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        files[name] = tmp_path / f"{name}.csv"
        write_table(make_split(store, folds=3, seed=seed), files[name])
    assert files["a"].read_bytes() == files["b"].read_bytes()
    assert files["a"].read_bytes() != files["c"].read_bytes()


def test_numeric_label_stratified_by_quantile_bins(tmp_path: Path) -> None:
    values = [str(v) for v in range(1, 21)]  # 20 distinct numbers
    split = make_split(_store(tmp_path, values, "age"), folds=2, seed=0)
    fold = split["fold"].to_numpy()
    low, high = fold[:10], fold[10:]  # the lower and upper half of the values
    assert np.bincount(low, minlength=2).tolist() == [5, 5]
    assert np.bincount(high, minlength=2).tolist() == [5, 5]


def test_refuses_too_few_folds_or_members(store: Path, tmp_path: Path) -> None:
    with pytest.raises(DeepRCError, match="at least 2"):
        make_split(store, folds=1)
    with pytest.raises(DeepRCError, match="class 'yes' .* 8 repertoire"):
        make_split(store, folds=9)
    result = _cli("split", "--store", store, "--out", tmp_path / "s.csv", "--folds", 9)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "fewer than the 9 folds" in result.stderr
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(DeepRCError, match="no label 'sex'"):
        make_split(store, label_column="sex")


def test_read_split_refuses_a_repeated_subject(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text("subject_id,fold\nA,0\nB,1\nA,1\n")
    with pytest.raises(DeepRCError, match="line 4.*'A' appears twice"):
        read_split(path)


def _split_file(tmp_path: Path) -> Path:
    path = tmp_path / "split.csv"
    path.write_text("subject_id,fold\nA,0\nB,1\nC,2\nD,1\n")
    return path


def test_split_answers_folds_training_and_held_out(tmp_path: Path) -> None:
    split = Split.read(_split_file(tmp_path))
    assert split.folds == [0, 1, 2] and len(split) == 4 and "B" in split and "Z" not in split
    folds = split.fold_of(["D", "A", "C"])
    assert folds.dtype == np.int64 and folds.tolist() == [1, 0, 2]
    assert split.training(["D", "A", "C", "B"], fold=1).tolist() == [1, 2]  # A and C; D and B are held out
    assert split.held_out(1) == {"B", "D"}


def test_split_errors_name_the_subject_fold_and_file(tmp_path: Path) -> None:
    path = _split_file(tmp_path)
    split = Split.read(path)
    with pytest.raises(SplitError, match=rf"{path}: subject 'Z' is not in the split"):
        split.fold_of(["A", "Z", "Y"])
    with pytest.raises(SplitError, match=r"fold 5 is not in the split \(folds: \[0, 1, 2\]\)"):
        split.training(["A", "B"], fold=5)
    with pytest.raises(SplitError, match="fold 3 is not in the split"):
        split.held_out(3)
    with pytest.raises(SplitError, match="split table not found"):
        Split.read(tmp_path / "none.csv")


def test_split_options_go_together(tmp_path: Path) -> None:
    path = _split_file(tmp_path)
    assert Split.from_options(None, None) is None
    assert Split.from_options(path, 2).held_out(2) == {"C"}
    for options in [(path, None), (None, 0)]:
        with pytest.raises(SplitError, match="^--split and --fold go together$"):
            Split.from_options(*options)
    with pytest.raises(SplitError, match="fold 7 is not in the split"):
        Split.from_options(path, 7)


def test_without_groups_the_split_is_the_one_before_group_columns(store: Path) -> None:
    """Without a group column the folds are scikit-learn's plain shuffled stratified k-fold of the labels (folds 4,
    seed 3), as split wrote them before --group-column."""
    labels = ["no"] * 15 + ["yes"] * 8  # the fixture's
    before = np.full(len(labels), -1)
    for fold, (_, test) in enumerate(StratifiedKFold(4, shuffle=True, random_state=3).split(labels, labels)):
        before[test] = fold
    before = before.tolist()
    assert before == [3, 1, 0, 1, 0, 2, 1, 1, 0, 3, 3, 0, 2, 2, 2, 1, 3, 0, 3, 2, 0, 2, 1]  # as written in 2026-11
    assert make_split(store, folds=4, seed=3)["fold"].tolist() == before
    assert make_split(store, folds=4, seed=3, group_column=None)["fold"].tolist() == before


@pytest.fixture(scope="module")
def donors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str]]:
    """60 samples of 30 donors (1 to 3 samples each, e.g. time points); a donor's samples share its label."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 4, 30)
    sizes[sizes.cumsum() > 60] = 0
    sizes[-1] += 60 - sizes.sum()
    donor = [f"D{d:02d}" for d in np.repeat(np.arange(30), sizes)]
    status = {f"D{d:02d}": ("yes" if d % 3 == 0 else "no") for d in range(30)}  # 10 positive donors of 30
    labels = [status[d] for d in donor]
    return _store(tmp_path_factory.mktemp("donors"), labels, donors=donor), donor, labels


def test_groups_never_straddle_folds_and_labels_stay_stratified(donors, tmp_path: Path) -> None:
    path, donor, labels = donors
    out = tmp_path / "split.csv"
    result = _cli("split", "--store", path, "--out", out, "--folds", 5, "--seed", 2, "--group-column", "donor")
    assert result.returncode == 0, result.stderr
    split = read_split(out)
    assert split["subject_id"].tolist() == [f"S{i:02d}" for i in range(60)]
    fold = split["fold"].to_numpy()
    assert pd.Series(fold).groupby(donor).nunique().max() == 1  # every donor in one fold
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3, 4]
    positive = np.array(labels) == "yes"
    per_fold = pd.crosstab(fold, positive)
    assert (per_fold > 0).all().all()  # every fold holds both classes
    share = per_fold[True] / per_fold.sum(axis=1)
    assert (share - positive.mean()).abs().max() < 0.2  # roughly the cohort's share of positives
    # the plain split of the same cohort does split donors
    plain = make_split(path, folds=5, seed=2)["fold"]
    assert plain.groupby(donor).nunique().max() > 1
    # seeded: the same seed gives the same table, another seed another one
    again = make_split(path, folds=5, seed=2, group_column="donor")
    assert again["fold"].tolist() == fold.tolist()
    assert make_split(path, folds=5, seed=3, group_column="donor")["fold"].tolist() != fold.tolist()
    # a table edited by hand that puts one donor's repertoire in another fold is refused, naming both
    edited = pd.read_csv(out, dtype=str)
    moved = edited.index[edited["group"] == edited.at[0, "group"]][-1]
    edited.at[moved, "fold"] = str((int(edited.at[moved, "fold"]) + 1) % 5)
    edited.to_csv(tmp_path / "edited.csv", index=False)
    with pytest.raises(SplitError, match=rf"line {moved + 2}, column 'group': group '{edited.at[0, 'group']}' is in "
                                         r"folds \d \('S00'\) and \d"):
        read_split(tmp_path / "edited.csv")


def test_a_grouped_split_keeps_its_groups_whole_in_training_s_inner_validation_split(donors, tmp_path: Path) -> None:
    """The split table records each repertoire's group, and training's inner validation split (the same in the
    clones job) keeps every donor on one side of it: a donor's other sample never validates the model."""
    from deeprc_hopfield.split import Split
    from deeprc_hopfield.training.config import inner_validation_split

    path, donor, labels = donors
    out = tmp_path / "split.csv"
    assert _cli("split", "--store", path, "--out", out, "--folds", 5, "--seed", 2, "--group-column", "donor"
                ).returncode == 0
    split = Split.read(out)
    subjects = [f"S{i:02d}" for i in range(60)]
    groups = split.groups_of(subjects)
    assert groups.tolist() == donor
    strata = (np.array(labels) == "yes").astype(int)
    for k in split.folds:
        rows = split.training(subjects, k)
        fit, validation = inner_validation_split(rows, strata[rows], 0.2, 0, groups[rows])
        assert sorted(np.concatenate([fit, validation]).tolist()) == sorted(rows.tolist())
        assert not set(groups[fit]) & set(groups[validation])  # no donor on both sides
        assert set(strata[validation]) == {0, 1} and 0.1 < len(validation) / len(rows) < 0.35
    plain = inner_validation_split(rows, strata[rows], 0.2, 0)  # without groups: as before, donors split
    assert set(groups[plain[0]]) & set(groups[plain[1]])
    big = np.array(["big"] * 15 + [f"g{i}" for i in range(25)])  # one donor of 15 samples: never a share's overshoot
    for seed in range(8):
        fit, validation = inner_validation_split(np.arange(40), np.zeros(40, int), 0.2, seed, big)
        assert 6 <= len(validation) <= 10
    table = pd.read_csv(out)
    table.loc[3, "group"] = None  # a hand-made table with a subject of no group: refused, not one group 'nan'
    table.to_csv(tmp_path / "holes.csv", index=False)
    with pytest.raises(DeepRCError, match="no group for this subject") as info:
        Split.read(tmp_path / "holes.csv")
    assert (info.value.line, info.value.column) == (5, "group")


def test_a_group_written_two_ways_is_warned_of(tmp_path: Path, caplog) -> None:
    import logging

    donor = [f"D{i // 2}" for i in range(12)]
    donor[1] = "d0"  # D0's second sample, in lower case
    store = _store(tmp_path, ["no"] * 6 + ["yes"] * 6, donors=donor)
    with caplog.at_level(logging.WARNING, logger="deeprc_hopfield"):
        make_split(store, folds=2, seed=0, group_column="donor")
    said = [r.getMessage() for r in caplog.records if "written more than one way" in r.getMessage()]
    assert len(said) == 1 and "'D0' and 'd0'" in said[0], said


def test_refuses_a_missing_group_column_naming_it(donors, tmp_path: Path) -> None:
    path, _, _ = donors
    with pytest.raises(DeepRCError, match=r"group column 'patient' is not in the store's metadata table "
                                          r"\(columns: subject_id, filename, label, donor\)"):
        make_split(path, group_column="patient")
    with pytest.raises(DeepRCError, match=r"label, donor\) \(did you mean 'donor'\?\)$"):  # a case slip
        make_split(path, group_column="Donor")
    out = tmp_path / "split.csv"
    result = _cli("split", "--store", path, "--out", out, "--group-column", "patient")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "group column 'patient'" in result.stderr
    assert not out.exists()


def test_refuses_a_group_that_mixes_the_classes_naming_its_subjects(tmp_path: Path) -> None:
    labels = ["no", "no", "yes", "yes", "no", "yes", "no", "yes"]
    donor = ["A", "A", "B", "B", "C", "C", "D", "E"]  # donor C: S04 'no', S05 'yes'
    path = _store(tmp_path, labels, donors=donor)
    out = tmp_path / "split.csv"
    result = _cli("split", "--store", path, "--out", out, "--folds", 2, "--group-column", "donor")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert ("column 'donor': group 'C' mixes the classes of binary label 'label': subjects S04 (no), S05 (yes)"
            in result.stderr)
    assert not out.exists()


def test_refuses_groups_that_cannot_fill_the_folds(tmp_path: Path) -> None:
    labels = ["no"] * 6 + ["yes"] * 6
    path = _store(tmp_path, labels, donors=["A", "A", "A", "B", "B", "B", "C", "C", "D", "D", "E", "E"])
    with pytest.raises(DeepRCError, match="5 group\\(s\\) cannot fill 6 folds"):
        make_split(path, folds=6, group_column="donor")
    with pytest.raises(DeepRCError, match="class 'no' of label 'label' is in 2 group\\(s\\), fewer than the 3 folds"):
        make_split(path, folds=3, group_column="donor")
    fold = make_split(path, folds=2, group_column="donor")["fold"].to_numpy()
    assert fold[0] == fold[1] == fold[2] != fold[3] == fold[4] == fold[5]  # the two 'no' donors apart
    assert sorted(np.bincount(fold[6:]).tolist()) == [2, 4]  # three 'yes' donors of two samples: 1 + 2


def test_warns_of_folds_whose_training_parts_hold_too_few_of_a_class(tmp_path: Path, caplog) -> None:
    """The baselines' inner cross-validation needs 2 of each class in every fold's training part: 3 positives in
    2 folds leave one fold 1 (split warns; training copes, the baselines refuse it); in 3 folds each holds 2."""
    path = _store(tmp_path, ["no"] * 9 + ["yes"] * 3)
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        assert make_split(path, folds=2)["fold"].nunique() == 2
    assert re.search(r"class 'yes' of label 'label': the training part of fold \d \(the other folds\) holds 1 of its "
                     r"repertoires, fewer than the 2 that the baselines' inner cross-validation needs", caplog.text)
    caplog.clear()
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        assert make_split(path, folds=3)["fold"].nunique() == 3
    assert "training part" not in caplog.text


def test_refuses_a_repertoire_without_a_group_naming_it(tmp_path: Path) -> None:
    path = _store(tmp_path, ["no", "yes"] * 3, donors=["A", "B", "C", "NA", "E", " "])
    with pytest.raises(DeepRCError, match="column 'donor': no group for subject\\(s\\) S03, S05$"):
        make_split(path, folds=2, group_column="donor")


def test_split_never_overwrites_a_file_it_did_not_write(store: Path, tmp_path: Path) -> None:
    """The rule of every --out, for a file: the user's table is kept (--force or not); an earlier split
    table is replaced only with --force."""
    metadata = tmp_path / "metadata.csv"
    metadata.write_text("subject_id,filename,label\nS00,r0.tsv,no\n")
    for force in ((), ("--force",)):
        result = _cli("split", "--store", store, "--out", metadata, *force)
        assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
        assert f"{metadata}: exists and is not an earlier output of `deeprc-hopfield split`" in result.stderr
    assert metadata.read_text() == "subject_id,filename,label\nS00,r0.tsv,no\n"
    out = tmp_path / "split.csv"
    assert _cli("split", "--store", store, "--out", out, "--seed", "1").returncode == 0
    first = out.read_text()
    result = _cli("split", "--store", store, "--out", out, "--seed", "2")
    assert result.returncode == 1 and "add --force to replace it" in result.stderr and out.read_text() == first
    assert _cli("split", "--store", store, "--out", out, "--seed", "2", "--force").returncode == 0
    assert out.read_text() != first


def test_a_grouped_split_keeps_donors_whole_in_every_inner_cross_validation(donors, tmp_path: Path, monkeypatch
                                                                             ) -> None:
    """The baselines (3-mer C, the public-clone test's rule and threshold) and training (the clone memory) choose
    by inner CV on the training repertoires; on a grouped split every one of those inner folds keeps each donor on
    one side, so a donor's other sample never scores a choice made with its first."""
    import yaml

    from deeprc_hopfield import baselines, public_clones
    from deeprc_hopfield.training import reference_fit
    from deeprc_hopfield.training.loop import train

    path, donor, _ = donors
    out = tmp_path / "split.csv"
    assert _cli("split", "--store", path, "--out", out, "--folds", 3, "--seed", 2, "--group-column", "donor"
                ).returncode == 0
    of_subject = dict(zip([f"S{i:02d}" for i in range(60)], donor))
    inner_cv, seen = public_clones.inner_cv, []

    def recording(y, seed, folds=public_clones.INNER_FOLDS, groups=None):  # the real folds, recorded
        splitter = inner_cv(y, seed, folds, groups)
        seen.append((np.asarray(groups), list(splitter.split(np.zeros(len(y)), y))))
        return splitter

    monkeypatch.setattr(public_clones, "inner_cv", recording)
    monkeypatch.setattr(baselines, "inner_cv", recording)
    monkeypatch.setattr(reference_fit, "inner_cv", recording)  # the known-receptor radius's (with a reference)
    baselines.cross_validate(path, out, seed=0, fold=0)
    from_baselines = len(seen)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"n_updates": 1, "evaluate_every": 1, "sample_size": 5,
                                                   "repertoires_per_update": 2}}))
    train(path, tmp_path / "model", config, split=out, fold=0, device="cpu", progress=False)
    assert from_baselines >= 2 and len(seen) > from_baselines  # the 3-mer search and the clone test; the memory
    for groups, splits in seen:
        assert groups.ndim == 1 and len(set(groups.tolist())) < len(groups)  # donors, not one group a repertoire
        for train_rows, test_rows in splits:
            assert not set(groups[train_rows]) & set(groups[test_rows])
    assert set(of_subject.values()) >= set(np.concatenate([g for g, _ in seen]).tolist())


def _grouped_split_and_quick_config(store: Path, folder: Path) -> tuple[Path, Path]:
    """A 3-fold split of `store` by its donors and a training config of one quick update, in `folder`."""
    import yaml

    out = folder / "split.csv"
    assert _cli("split", "--store", store, "--out", out, "--folds", 3, "--seed", 2, "--group-column", "donor"
                ).returncode == 0
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"n_updates": 1, "evaluate_every": 1, "sample_size": 5,
                                                   "repertoires_per_update": 2, "clone_memory": False}}))
    return out, config


def test_training_says_how_many_donors_its_grouped_validation_split_holds(donors, tmp_path: Path, caplog) -> None:
    """With 10 positive donors, a fold's validation holds about two of them: said, with the warning that early
    stopping, calibration and the memory-alone choice rest on that few."""
    import logging

    from deeprc_hopfield.training.loop import train

    path, _, _ = donors
    out, config = _grouped_split_and_quick_config(path, tmp_path)
    with caplog.at_level(logging.INFO, logger="deeprc_hopfield"):
        train(path, tmp_path / "model", config, split=out, fold=0, device="cpu", progress=False)
    said = [r.getMessage() for r in caplog.records if "inner split by group" in r.getMessage()]
    assert len(said) == 1 and re.match(r"inner split by group: fitting on \d+ repertoires of \d+ groups, validating "
                                       r"on \d+ of \d+$", said[0]), said
    warned = [r.getMessage() for r in caplog.records if "the inner validation split holds" in r.getMessage()]
    assert len(warned) == 1 and "rest on that few donors" in warned[0], warned


def test_predict_scores_a_new_sample_of_a_training_donor_by_the_models_that_held_the_donor_out(
        donors, tmp_path: Path) -> None:
    """Fold models of a grouped split record their donors; `predict --group-column donor` scores a new sample of a
    donor of fold 1 (trained on by fold 0's model) with fold 1's model alone, a new donor with both, and refuses a
    batch whose donor every model trained on, naming it as the batch's metadata spells it (matched whatever its case
    and spaces)."""
    from deeprc_hopfield.training.loop import train

    path, donor, _ = donors
    out, config = _grouped_split_and_quick_config(path, tmp_path)
    for k in (0, 1):
        train(path, tmp_path / "models" / f"fold{k}", config, split=out, fold=k, device="cpu", progress=False)
    table = read_split(out)
    of_fold1 = table.loc[table["fold"] == 1, "group"].iloc[0]
    of_fold2 = table.loc[table["fold"] == 2, "group"].iloc[0]  # trained on by both models
    folder = tmp_path / "new"
    folder.mkdir()
    rng = np.random.default_rng(9)
    for name in ("later", "stranger", "other"):
        write_airr(folder / f"{name}.tsv", rng, 5)
    pd.DataFrame({"subject_id": ["later", "stranger"], "filename": ["later.tsv", "stranger.tsv"],
                  "donor": [of_fold1, "NEW"]}).to_csv(tmp_path / "new.csv", index=False)
    result = _cli("predict", "--model", tmp_path / "models", "--repertoires", folder, "--metadata",
                  tmp_path / "new.csv", "--group-column", "donor", "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(tmp_path / "p.csv").set_index("subject_id")
    assert pd.isna(scored.loc["later", "probability_sd"]) and pd.notna(scored.loc["stranger", "probability_sd"])
    assert "later by fold1" in result.stderr
    spelt = f"{of_fold2[0].lower()} {of_fold2[1:]}"  # D07 as 'd 07'
    pd.DataFrame({"subject_id": ["other"], "filename": ["other.tsv"], "donor": [spelt]}).to_csv(
        tmp_path / "both.csv", index=False)
    refused = _cli("predict", "--model", tmp_path / "models", "--repertoires", folder, "--metadata",
                   tmp_path / "both.csv", "--group-column", "donor", "--out", tmp_path / "q.csv")
    assert refused.returncode == 1 and f"(other (of a training group: {spelt}))" in refused.stderr, \
        refused.stderr
    missing = _cli("predict", "--model", tmp_path / "models", "--repertoires", folder, "--metadata",
                   tmp_path / "both.csv", "--group-column", "patient", "--out", tmp_path / "q.csv")
    assert missing.returncode == 1 and "--group-column 'patient' is not a column" in missing.stderr
    assert not (tmp_path / "q.csv").exists()
