"""`split`: stratified, seeded k-fold assignment of a store's repertoires."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeprc_hopfield.errors import DeepRCError, SplitError
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.io import write_table
from deeprc_hopfield.split import Split, make_split, read_split
from conftest import write_airr


def _store(folder: Path, labels: list[str], column: str = "label") -> Path:
    """A store of len(labels) small AIRR repertoires with the given label values."""
    rng = np.random.default_rng(1)
    (folder / "reps").mkdir(parents=True)
    lines = [f"subject_id,filename,{column}"]
    for i, value in enumerate(labels):
        write_airr(folder / "reps" / f"r{i}.tsv", rng, 5)
        lines.append(f"S{i:02d},r{i}.tsv,{value}")
    (folder / "meta.csv").write_text("\n".join(lines) + "\n")
    return ingest(folder / "meta.csv", folder / "reps", folder / "cohort.h5", [column], progress=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """23 repertoires: 15 negative, 8 positive."""
    return _store(tmp_path_factory.mktemp("split"), ["no"] * 15 + ["yes"] * 8)


def _cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deeprc_hopfield", *map(str, args)], capture_output=True, text=True)


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
