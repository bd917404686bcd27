"""`evaluate`: per-fold and mean/sd metrics of held-out predictions, ROC and PR curves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import deeprc_cli
from sklearn.metrics import (average_precision_score, balanced_accuracy_score, brier_score_loss, f1_score,
                             roc_auc_score)

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.evaluate import evaluate, parse_named_files
from deeprc_hopfield.metrics import SIGNIFICANT_GAIN_Z, paired_auc_difference, significantly_higher

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A 3-fold split of 24 subjects, `predict`-style predictions (True/False) and baseline-style ones."""
    rng = np.random.default_rng(0)
    subjects = [f"P{i}" for i in range(24)]
    fold = np.arange(24) % 3
    y = np.array([0, 1] * 12)
    pd.DataFrame({"subject_id": subjects, "fold": fold}).to_csv(tmp_path / "split.csv", index=False)
    model = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 24), 0, 1)
    pd.DataFrame({"subject_id": subjects, "probability": model, "predicted": np.where(model >= 0.5, "True", "False"),
                  "true_label": np.where(y == 1, "True", "False")}).to_csv(tmp_path / "model.csv", index=False)
    base = rng.uniform(0, 1, 24)
    pd.DataFrame({"subject_id": subjects, "fold": fold, "probability": base,
                  "true_label": np.where(y == 1, "True", "False")}).to_csv(tmp_path / "kmer.csv", index=False)
    return {"split": tmp_path / "split.csv", "model": tmp_path / "model.csv", "kmer": tmp_path / "kmer.csv",
            "y": y, "fold": fold, "p_model": model, "p_kmer": base, "out": tmp_path / "eval"}


def test_metrics_equal_sklearn_per_fold_with_mean_and_sd(files: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deeprc_hopfield", "evaluate", "--predictions", f"deeprc={files['model']}",
         f"kmer={files['kmer']}", "--split", files["split"], "--out", files["out"]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(files["out"] / "metrics.tsv", sep="\t", dtype={"fold": str, "positive_class": str})
    assert list(table.columns) == ["method", "fold", "roc_auc", "roc_auc_low", "roc_auc_high", "pr_auc",
                                   "balanced_accuracy", "f1", "brier", "calibration_intercept", "calibration_slope",
                                   "n", "constant", "label", "positive_class"]
    assert not table["constant"].dropna().astype(bool).any() and table["constant"].isna().sum() == 4  # mean, sd rows
    assert table["fold"].tolist() == ["0", "1", "2", "mean", "sd", "pooled"] * 2
    assert (table["positive_class"] == "True").all() and table["label"].isna().all()  # no --label-column: blank
    for method, p in [("deeprc", files["p_model"]), ("kmer", files["p_kmer"])]:
        rows = table[table["method"] == method].set_index("fold")
        per_fold = []
        for k in range(3):
            m = files["fold"] == k
            y, q = files["y"][m], p[m]
            expected = [roc_auc_score(y, q), average_precision_score(y, q), balanced_accuracy_score(y, q >= 0.5),
                        f1_score(y, q >= 0.5), brier_score_loss(y, q)]
            per_fold.append(expected)
            np.testing.assert_allclose(rows.loc[str(k), ["roc_auc", "pr_auc", "balanced_accuracy", "f1", "brier"]],
                                       expected, atol=1e-6)
            assert rows.loc[str(k), "n"] == 8
        per_fold = np.array(per_fold)
        np.testing.assert_allclose(rows.loc["mean", ["roc_auc", "pr_auc", "balanced_accuracy", "f1", "brier"]],
                                   per_fold.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(rows.loc["sd", ["roc_auc", "pr_auc", "balanced_accuracy", "f1", "brier"]],
                                   per_fold.std(axis=0, ddof=1), atol=1e-6)
        assert rows.loc["mean", "n"] == 24 and rows.loc["pooled", "n"] == 24
        np.testing.assert_allclose(rows.loc["pooled", ["roc_auc", "pr_auc", "balanced_accuracy", "f1", "brier"]],
                                   [roc_auc_score(files["y"], p), average_precision_score(files["y"], p),
                                    balanced_accuracy_score(files["y"], p >= 0.5), f1_score(files["y"], p >= 0.5),
                                    brier_score_loss(files["y"], p)], atol=1e-6)
        for k in ("0", "1", "2", "pooled"):  # an interval around each AUC; none over folds
            assert rows.loc[k, "roc_auc_low"] <= rows.loc[k, "roc_auc"] <= rows.loc[k, "roc_auc_high"], (method, k)
        assert rows.loc[["mean", "sd"], ["roc_auc_low", "calibration_slope"]].isna().all().all()
    calls = pd.read_csv(files["out"] / "held_out.tsv", sep="\t", dtype={"true_label": str, "predicted": str})
    assert list(calls.columns) == ["method", "subject_id", "fold", "true_label", "probability", "predicted", "correct"]
    model_calls = calls[calls["method"] == "deeprc"]
    np.testing.assert_allclose(model_calls["probability"], files["p_model"], atol=1e-6)
    assert (model_calls["predicted"] == np.where(files["p_model"] >= 0.5, "True", "False")).all()
    assert (model_calls["correct"] == (model_calls["predicted"] == model_calls["true_label"])).all()
    assert len(calls) == 48 and calls["fold"].tolist() == files["fold"].tolist() * 2
    for name in ("roc.png", "pr.png"):
        data = (files["out"] / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(files["out"].glob(".*partial"))


def test_an_external_cohort_without_a_split_is_scored_as_one_fold(files: dict) -> None:
    """Predictions of a cohort no model trained on (predict --repertoires DIR --metadata TABLE): no split, one fold,
    the metrics of all its rows; a subject predicted twice is still refused."""
    result = deeprc_cli("evaluate", "--predictions", f"deeprc={files['model']}", "--out", files["out"])
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(files["out"] / "metrics.tsv", sep="\t", dtype={"fold": str, "positive_class": str}).set_index("fold")
    assert table.loc["0", "n"] == 24 and table.loc["mean", "n"] == 24
    assert table.loc["0", "roc_auc"] == pytest.approx(roc_auc_score(files["y"], files["p_model"]), abs=1e-6)
    twice = files["model"].with_name("twice.csv")
    twice.write_text(files["model"].read_text() + files["model"].read_text().splitlines()[1] + "\n")
    refused = deeprc_cli("evaluate", "--predictions", f"deeprc={twice}", "--out", files["out"].with_name("e2"))
    assert refused.returncode == 1 and "is predicted twice" in refused.stderr


@pytest.mark.parametrize("with_split", [False, True], ids=["external", "split"])
def test_subjects_without_a_true_label_are_left_out_and_named(files: dict, tmp_path: Path, caplog,
                                                             with_split: bool) -> None:
    """`predict --metadata` leaves true_label empty for a subject of unknown label: such rows are not scored (the
    log counts and names them), a file where every label is missing is refused in one line, and a missing
    probability is still an error."""
    table = pd.read_csv(files["model"], dtype=str)
    unknown = [3, 10]
    table.loc[unknown, "true_label"] = ""
    table.to_csv(tmp_path / "new.csv", index=False)
    split = files["split"] if with_split else None
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        metrics = evaluate({"deeprc": [tmp_path / "new.csv"]}, split, tmp_path / "e").set_index("fold")
    known = np.setdiff1d(np.arange(24), unknown)
    assert metrics.loc["mean", "n"] == 22
    if not with_split:
        assert metrics.loc[0, "roc_auc"] == pytest.approx(
            roc_auc_score(files["y"][known], files["p_model"][known]), abs=1e-6)
    else:
        assert [metrics.loc[k, "n"] for k in range(3)] == [7, 7, 8]  # P3 in fold 0, P10 in fold 1
    assert "2 of 24 subjects have no true label and are left out of the scoring: P3, P10" in caplog.text
    table.assign(true_label="").to_csv(tmp_path / "none.csv", index=False)
    refused = deeprc_cli("evaluate", "--predictions", f"deeprc={tmp_path / 'none.csv'}", "--out", tmp_path / "n",
                         *(["--split", files["split"]] if with_split else []))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (f"deeprc-hopfield evaluate: error: {tmp_path / 'none.csv'}, column "
                                      "'true_label': no row has a true label (all 24 are empty): only subjects of "
                                      "known label can be scored; predict --metadata fills true_label from the "
                                      "metadata's label column")
    table.loc[5, "probability"] = ""
    table.to_csv(tmp_path / "no_p.csv", index=False)
    with pytest.raises(DeepRCError, match="line 7, column 'probability': missing or non-numeric value 'nan'"):
        evaluate({"deeprc": [tmp_path / "no_p.csv"]}, split, tmp_path / "p")


def test_positive_class_option_flips_the_auc(files: dict) -> None:
    default = evaluate({"kmer": [files["kmer"]]}, files["split"], files["out"])
    flipped = evaluate({"kmer": [files["kmer"]]}, files["split"], files["out"], positive="False",
                       force=True)  # replaces the first evaluation
    np.testing.assert_allclose(flipped["roc_auc"].iloc[:3], 1 - default["roc_auc"].iloc[:3])


def test_the_positive_class_is_the_one_the_model_calls_at_one_half(files: dict, tmp_path: Path) -> None:
    """A model's `predicted` column says whose probability it gives: evaluate scores that class, whatever the
    names say, and refuses a --positive-class that is the other (it would score 1 - AUC)."""
    table = pd.read_csv(files["model"], dtype=str)
    table["true_label"] = table["true_label"].map({"False": "b", "True": "a"})  # 'a' is P's class, alphabet aside
    table["predicted"] = table["predicted"].map({"False": "b", "True": "a"})
    table.to_csv(tmp_path / "named.csv", index=False)
    scored = evaluate({"deeprc": [tmp_path / "named.csv"]}, files["split"], tmp_path / "e1")
    expected = evaluate({"deeprc": [files["model"]]}, files["split"], tmp_path / "e2")
    np.testing.assert_allclose(scored["roc_auc"], expected["roc_auc"])
    assert (scored["positive_class"] == "a").all()
    with pytest.raises(DeepRCError, match="--positive-class 'b', but the model's probabilities are of 'a'"):
        evaluate({"deeprc": [tmp_path / "named.csv"]}, files["split"], tmp_path / "e3", positive="b")
    spelled = pd.read_csv(files["model"], dtype=str)  # TRUE/FALSE as a spreadsheet writes them: not booleans
    for column in ("true_label", "predicted"):
        spelled[column] = spelled[column].str.upper()
    spelled.to_csv(tmp_path / "upper.csv", index=False)
    with pytest.raises(DeepRCError, match="--positive-class 'FALSE', but the model's probabilities are of 'TRUE'"):
        evaluate({"deeprc": [tmp_path / "upper.csv"]}, files["split"], tmp_path / "e4", positive="FALSE")
    flipped = table.assign(predicted=table["predicted"].map({"a": "b", "b": "a"}))  # another model's class order
    flipped.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DeepRCError, match="the predictions' `predicted` columns disagree on the class"):
        evaluate({"deeprc": [tmp_path / "named.csv"], "other": [tmp_path / "other.csv"]}, files["split"],
                 tmp_path / "e5")


def test_two_numbers_are_ordered_by_value_as_ingest_orders_them(files: dict, tmp_path: Path) -> None:
    """Classes 2 and 10: 10 is positive (the larger number), as ingest codes it, not '2' (after '10' as text)."""
    table = pd.read_csv(files["kmer"], dtype=str)
    table["true_label"] = table["true_label"].map({"False": "2", "True": "10"})
    table.to_csv(tmp_path / "numbers.csv", index=False)
    scored = evaluate({"kmer": [tmp_path / "numbers.csv"]}, files["split"], tmp_path / "e")
    np.testing.assert_allclose(scored["roc_auc"], evaluate({"kmer": [files["kmer"]]}, files["split"],
                                                           tmp_path / "e0")["roc_auc"])
    assert (scored["positive_class"] == "10").all()


def test_predictions_of_several_labels_are_scored_by_one_binary_label(files: dict, tmp_path: Path) -> None:
    """`predict` of a two-label model writes status_probability, status_true, age_predicted, ...: the binary label
    is scored (the only one, or --label-column's), a file with no binary label is refused in one line."""
    single = pd.read_csv(files["model"], dtype=str)
    multi = pd.DataFrame({"subject_id": single["subject_id"], "age_predicted": 50.0,
                          "status_probability": single["probability"], "status_predicted": single["predicted"],
                          "status_true": single["true_label"], "age_true": 40.0})
    multi.to_csv(tmp_path / "multi.csv", index=False)
    expected = evaluate({"deeprc": [files["model"]]}, files["split"], tmp_path / "one")
    for extra in ([], ["--label-column", "status"]):
        out = tmp_path / f"multi{len(extra)}"
        result = deeprc_cli("evaluate", "--predictions", f"deeprc={tmp_path / 'multi.csv'}", "--split", files["split"],
                            "--out", out, *extra)
        assert result.returncode == 0, result.stderr
        table = pd.read_csv(out / "metrics.tsv", sep="\t")
        np.testing.assert_allclose(table["roc_auc"], expected["roc_auc"], atol=1e-6)
        assert (table["label"] == "status").all()  # the file's only binary label, or the one chosen
    beside = deeprc_cli("evaluate", "--predictions", f"deeprc={tmp_path / 'multi.csv'}", f"kmer={files['kmer']}",
                        "--split", files["split"], "--out", tmp_path / "beside", "--label-column", "status")
    assert beside.returncode == 0, beside.stderr  # a baseline's single-label file beside the multi-label model's
    typo = deeprc_cli("evaluate", "--predictions", f"kmer={files['kmer']}", "--split", files["split"], "--out",
                      tmp_path / "typo", "--label-column", "stauts")  # single-label files and a label none names
    assert typo.returncode == 1 and "no predictions file has a column stauts_probability" in typo.stderr
    multi[["subject_id", "age_predicted", "age_true"]].to_csv(tmp_path / "age.csv", index=False)
    for name, words in [("age.csv", "evaluate scores binary labels: this file holds no binary label's probability"),
                        ("multi.csv", "--label-column age: no predictions file has a column age_probability")]:
        refused = deeprc_cli("evaluate", "--predictions", f"deeprc={tmp_path / name}", "--split", files["split"],
                             "--out", tmp_path / "no", *(["--label-column", "age"] if name == "multi.csv" else []))
        assert refused.returncode == 1 and words in refused.stderr and "Traceback" not in refused.stderr


def test_label_name_names_the_label_of_single_label_files(files: dict, tmp_path: Path) -> None:
    """Single-label predictions name no label, so metrics.tsv's `label` comes from --label-name (the workflow passes
    its label_column); beside files that name their labels it is refused in one line, as --label-column chooses
    (and checks the name) there."""
    result = deeprc_cli("evaluate", "--predictions", f"deeprc={files['model']}", f"kmer={files['kmer']}", "--split",
                        files["split"], "--out", tmp_path / "named", "--label-name", "cmv_status")
    assert result.returncode == 0, result.stderr
    assert (pd.read_csv(tmp_path / "named" / "metrics.tsv", sep="\t")["label"] == "cmv_status").all()
    single = pd.read_csv(files["model"], dtype=str)
    pd.DataFrame({"subject_id": single["subject_id"], "status_probability": single["probability"],
                  "status_true": single["true_label"]}).to_csv(tmp_path / "multi.csv", index=False)
    for extra, words in [(["--predictions", f"deeprc={tmp_path / 'multi.csv'}", "--label-name", "cmv"],
                          "--label-name cmv names the label of single-label predictions; these files name their "
                          "labels (status): choose the one scored with --label-column"),
                         (["--predictions", f"kmer={files['kmer']}", "--label-name", "cmv", "--label-column", "cmv"],
                          "give --label-column or --label-name, not both"),
                         (["--predictions", f"kmer={files['kmer']}", "--label-name", " "], "--label-name is empty")]:
        refused = deeprc_cli("evaluate", "--split", files["split"], "--out", tmp_path / "no", *extra)
        assert refused.returncode == 1 and words in refused.stderr and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "no").exists()


def test_files_of_one_method_per_fold_are_collected(files: dict, tmp_path: Path) -> None:
    table = pd.read_csv(files["kmer"])
    parts = []
    for k in range(3):
        parts.append(f"kmer={tmp_path / f'fold{k}.csv'}")
        table[table["fold"] == k].to_csv(tmp_path / f"fold{k}.csv", index=False)
    whole = evaluate(parse_named_files([f"kmer={files['kmer']}"]), files["split"], tmp_path / "a")
    split_up = evaluate(parse_named_files(parts), files["split"], tmp_path / "b")
    pd.testing.assert_frame_equal(whole, split_up)


def test_refuses_rows_that_are_not_held_out_once(files: dict, tmp_path: Path) -> None:
    table = pd.read_csv(files["kmer"], dtype=str)
    wrong_fold = table.copy()
    wrong_fold.loc[3, "fold"] = "1"  # P3 is held out in fold 0 of the split
    wrong_fold.to_csv(tmp_path / "wrong.csv", index=False)
    with pytest.raises(DeepRCError, match="line 5, column 'fold'.*'P3' is in fold 1 here but in fold 0"):
        evaluate({"kmer": [tmp_path / "wrong.csv"]}, files["split"], tmp_path / "o")
    pd.concat([table, table.iloc[[2]]]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(DeepRCError, match="'P2' is predicted twice"):
        evaluate({"kmer": [tmp_path / "twice.csv"]}, files["split"], tmp_path / "o")
    table.assign(subject_id=table["subject_id"].replace("P5", "X9")).to_csv(tmp_path / "stranger.csv", index=False)
    with pytest.raises(DeepRCError, match="line 7, column 'subject_id'.*'X9' is not in the split"):
        evaluate({"kmer": [tmp_path / "stranger.csv"]}, files["split"], tmp_path / "o")
    with pytest.raises(DeepRCError, match="not NAME=FILE"):
        parse_named_files(["kmer.csv"])
    assert not (tmp_path / "o" / "metrics.tsv").exists()


@pytest.mark.parametrize("value", ["1.7", "-0.2", "inf"])
def test_a_probability_outside_0_1_is_refused_naming_the_file_line_and_column(files: dict, tmp_path: Path,
                                                                              value: str) -> None:
    table = pd.read_csv(files["kmer"], dtype=str)
    table.loc[4, "probability"] = value  # P4, line 6 of the file
    table.to_csv(tmp_path / "bad.csv", index=False)
    result = deeprc_cli("evaluate", "--predictions", f"kmer={tmp_path / 'bad.csv'}", "--split", files["split"],
                        "--out", tmp_path / "o")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"deeprc-hopfield evaluate: error: {tmp_path / 'bad.csv'}, line 6, column "
                                     f"'probability': probability {value} is outside [0, 1] (a probability of the "
                                     "positive class is needed, not a score or a logit)")
    assert not (tmp_path / "o").exists()


def test_the_paired_auc_difference_and_its_standard_error_agree_with_sklearn_and_the_bootstrap() -> None:
    rng = np.random.default_rng(3)
    y = rng.permutation(np.repeat([0, 1], 60))
    first = rng.normal(size=120) + 0.8 * y
    second = np.round(0.6 * first + rng.normal(size=120) + 0.6 * y, 1)  # correlated with the first, with ties
    gain, se = paired_auc_difference(y, first, second)
    assert gain == pytest.approx(roc_auc_score(y, second) - roc_auc_score(y, first))
    boot = []
    for _ in range(2000):
        i = np.r_[rng.choice(np.flatnonzero(y == 1), 60), rng.choice(np.flatnonzero(y == 0), 60)]
        boot.append(roc_auc_score(y[i], second[i]) - roc_auc_score(y[i], first[i]))
    assert se == pytest.approx(np.std(boot), rel=0.15)
    assert paired_auc_difference(y, first, first) == (0.0, 0.0)
    with pytest.raises(ValueError, match="both classes"):
        paired_auc_difference(np.ones(5), first[:5], second[:5])


def test_an_auc_is_tested_against_chance_with_its_own_standard_error() -> None:
    rng = np.random.default_rng(5)
    y = rng.permutation(np.repeat([0, 1], 60))
    strong, noise = rng.normal(size=120) + 0.8 * y, rng.normal(size=120)
    gain, se = paired_auc_difference(y, np.zeros(120), strong)  # a constant score: AUC 0.5, no variance
    assert gain == pytest.approx(roc_auc_score(y, strong) - 0.5)
    boot = []
    for _ in range(2000):
        i = np.r_[rng.choice(np.flatnonzero(y == 1), 60), rng.choice(np.flatnonzero(y == 0), 60)]
        boot.append(roc_auc_score(y[i], strong[i]))
    assert se == pytest.approx(np.std(boot), rel=0.15)
    assert significantly_higher(y, strong)
    noise_gain, noise_se = paired_auc_difference(y, np.zeros(120), noise)
    assert abs(noise_gain) < SIGNIFICANT_GAIN_Z * noise_se and not significantly_higher(y, noise)


def test_the_auc_interval_matches_the_bootstrap_and_stays_within_0_and_1() -> None:
    from deeprc_hopfield.metrics import auc_interval

    rng = np.random.default_rng(7)
    y = rng.permutation(np.repeat([0, 1], 50))
    score = rng.normal(size=100) + 1.0 * y
    low, high = auc_interval(y, score)
    boot = [roc_auc_score(y[i], score[i]) for i in (np.r_[rng.choice(np.flatnonzero(y == 1), 50),
                                                          rng.choice(np.flatnonzero(y == 0), 50)]
                                                    for _ in range(2000))]
    assert low < roc_auc_score(y, score) < high
    assert (low, high) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])), abs=0.02)
    strong = score + 1.5 * y  # an AUC near 1: the logit scale keeps the upper bound below 1
    low, high = auc_interval(y, strong)
    assert 0.9 < low < roc_auc_score(y, strong) < high < 1
    # separated: DeLong's error is 0, so the lower bound is Newcombe's (0.80 for 10 a class, 0.95 for 40)
    assert auc_interval(y, y.astype(float)) == pytest.approx((0.9604, 1.0), abs=1e-4)
    assert auc_interval(y[:20], y[:20].astype(float))[0] == pytest.approx(0.80, abs=0.01)
    assert auc_interval(y, -y.astype(float)) == pytest.approx((0.0, 1 - 0.9604), abs=1e-4)
    near = y + 0.2 * (np.arange(100) == np.flatnonzero(y == 0)[0])  # one tie: AUC just below 1
    assert auc_interval(y, near)[0] <= auc_interval(y, y.astype(float))[0]  # a lower AUC, no higher bound
    assert np.isnan(auc_interval(y, np.full(100, 0.3))).all()  # one probability for all: AUC 0.5 by construction
    assert np.isnan(auc_interval(np.array([0, 0, 0, 1]), np.arange(4.0))).all()  # one positive: no interval


def test_the_calibration_line_is_that_of_a_logistic_fit() -> None:
    """Right probabilities give intercept ~0 and slope ~1; probabilities too extreme (twice the logit) a slope ~0.5;
    probabilities too low on average a positive intercept; the slope is sklearn's unpenalised fit; classes that do
    not overlap have no slope."""
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    from deeprc_hopfield.metrics import calibration_line

    rng = np.random.default_rng(11)
    x = rng.normal(size=20000)
    p = expit(0.8 * x)
    y = (rng.uniform(size=x.size) < p).astype(int)
    intercept, slope = calibration_line(y, p)
    assert intercept == pytest.approx(0, abs=0.05) and slope == pytest.approx(1, abs=0.05)
    assert calibration_line(y, expit(1.6 * x))[1] == pytest.approx(0.5, abs=0.03)
    assert calibration_line(y, expit(0.8 * x - 1))[0] == pytest.approx(1, abs=0.05)
    small = slice(0, 60)
    fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit((0.8 * x[small])[:, None], y[small])
    assert calibration_line(y[small], p[small])[1] == pytest.approx(fit.coef_[0, 0], rel=1e-4)
    assert np.isnan(calibration_line(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.4, 0.9]))[1])  # tie at the edge
    assert np.isnan(calibration_line(np.ones(4), np.full(4, 0.5))).all()


def test_the_curves_legend_gives_the_area_of_the_pooled_curve_it_draws(tmp_path: Path, monkeypatch) -> None:
    # each fold ranks perfectly (per-fold AUC 1) on its own scale, so the pooled curve's area is lower
    from matplotlib.figure import Figure

    y = np.array([0, 1] * 6)
    fold = np.repeat([0, 1], 6)
    probability = np.where(y == 1, 0.3, 0.1) + 0.6 * fold + np.linspace(0, 0.05, 12)
    subjects = [f"S{i}" for i in range(12)]
    pd.DataFrame({"subject_id": subjects, "fold": fold}).to_csv(tmp_path / "split.csv", index=False)
    pd.DataFrame({"subject_id": subjects, "probability": probability, "true_label": y}).to_csv(
        tmp_path / "model.csv", index=False)
    drawn = {}
    save = Figure.savefig

    def capture(figure, *args, **kwargs):
        ax = figure.axes[0]
        drawn[ax.get_title()] = [text.get_text() for text in ax.get_legend().get_texts()]
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    evaluate({"deeprc": [tmp_path / "model.csv"]}, tmp_path / "split.csv", tmp_path / "eval")
    pooled_roc, pooled_pr = roc_auc_score(y, probability), average_precision_score(y, probability)
    assert pooled_roc < 0.9
    assert drawn["ROC, held-out folds pooled"] == [f"deeprc (ROC AUC pooled {pooled_roc:.3f}; per fold 1.000 ± 0.000)"]
    assert drawn["Precision-recall, held-out folds pooled"] == [
        f"deeprc (PR AUC pooled {pooled_pr:.3f}; per fold 1.000 ± 0.000)"]


def test_a_constant_fold_is_flagged_and_the_model_is_tested_against_each_baseline(files: dict, tmp_path: Path) -> None:
    """A baseline that gave a fold one probability (a public-clone test that found no clone) is flagged, not read as
    evidence; comparisons.tsv holds the model's pooled AUC less each baseline's with DeLong's paired test."""
    from deeprc_hopfield.metrics import paired_auc_difference
    from deeprc_hopfield.report import _constant_note, comparisons_section

    kmer = pd.read_csv(files["kmer"])
    kmer.loc[kmer["fold"] == 1, "probability"] = 0.5
    kmer.to_csv(tmp_path / "flat.csv", index=False)
    metrics = evaluate({"deeprc": [files["model"]], "public_clones": [tmp_path / "flat.csv"]}, files["split"],
                       tmp_path / "e")
    flags = metrics[metrics["fold"].isin([0, 1, 2])].set_index(["method", "fold"])["constant"]
    assert flags[("public_clones", 1)] and not flags[("public_clones", 0)] and not flags[("deeprc", 1)]
    compared = pd.read_csv(tmp_path / "e" / "comparisons.tsv", sep="\t")
    assert compared[["method", "compared_with", "n"]].values.tolist() == [["deeprc", "public_clones", 24]]
    difference, se = paired_auc_difference(files["y"], kmer["probability"].to_numpy(), files["p_model"])
    assert compared["roc_auc_difference"].iloc[0] == pytest.approx(difference, abs=1e-6)
    assert compared["se"].iloc[0] == pytest.approx(se, abs=1e-6) and 0 < compared["p_one_sided"].iloc[0] < 1
    written = pd.read_csv(tmp_path / "e" / "metrics.tsv", sep="\t", dtype={"fold": str})
    assert "<b>public_clones</b> gave every held-out subject one probability in fold(s) 1" in _constant_note(written)
    assert "The model against each baseline" in comparisons_section(tmp_path / "e")


def test_a_grouped_split_is_also_scored_by_donor(files: dict, tmp_path: Path) -> None:
    """Subjects i and i + 6 (one fold, one class) are one donor's samples: the tables by donor score each donor
    once, by the mean of its repertoires' probabilities; a split of groups of one repertoire adds none."""
    donor = [f"D{i % 6 + 6 * (i // 12)}" for i in range(24)]
    split = pd.read_csv(files["split"]).assign(group=donor)
    split.to_csv(tmp_path / "grouped.csv", index=False)
    predictions = {"deeprc": [files["model"]], "kmer": [files["kmer"]]}
    evaluate(predictions, tmp_path / "grouped.csv", files["out"])
    by_donor = pd.read_csv(files["out"] / "metrics_by_donor.tsv", sep="\t", dtype={"fold": str, "positive_class": str})
    means = pd.DataFrame({"donor": donor, "fold": files["fold"], "y": files["y"], "model": files["p_model"]}) \
        .groupby("donor").agg(fold=("fold", "first"), y=("y", "first"), p=("model", "mean"))
    rows = by_donor[by_donor["method"] == "deeprc"].set_index("fold")
    for k, part in means.groupby("fold"):
        assert rows.loc[str(k), "roc_auc"] == pytest.approx(roc_auc_score(part["y"], part["p"]), abs=1e-6)
        assert rows.loc[str(k), "n"] == 4
    assert rows.loc["mean", "n"] == 12 and (by_donor["positive_class"] == "True").all()
    compared = pd.read_csv(files["out"] / "comparisons_by_donor.tsv", sep="\t").iloc[0]
    kmer = pd.Series(files["p_kmer"]).groupby(donor).mean().loc[means.index].to_numpy()
    difference, se = paired_auc_difference(means["y"].to_numpy(), kmer, means["p"].to_numpy())
    assert compared["n"] == 12 and compared["roc_auc_difference"] == pytest.approx(difference, abs=1e-6)
    assert compared["se"] == pytest.approx(se, abs=1e-6)
    # per repertoire, the intervals and the comparison's error count donors (Obuchowski's): not DeLong's
    per_sample = pd.read_csv(files["out"] / "comparisons.tsv", sep="\t").iloc[0]
    clustered = paired_auc_difference(files["y"], files["p_kmer"], files["p_model"], np.array(donor))[1]
    assert per_sample["se"] == pytest.approx(clustered, abs=1e-6)
    assert per_sample["se"] != pytest.approx(paired_auc_difference(files["y"], files["p_kmer"], files["p_model"])[1])
    grouped_metrics = pd.read_csv(files["out"] / "metrics.tsv", sep="\t", dtype={"fold": str})
    alone = split.assign(group=split["subject_id"])  # every repertoire a group of its own: nothing to add
    alone.to_csv(tmp_path / "alone.csv", index=False)
    evaluate(predictions, tmp_path / "alone.csv", files["out"], force=True)
    assert not (files["out"] / "metrics_by_donor.tsv").exists()
    plain_metrics = pd.read_csv(files["out"] / "metrics.tsv", sep="\t", dtype={"fold": str})
    pd.testing.assert_series_equal(grouped_metrics["roc_auc"], plain_metrics["roc_auc"])  # the same AUCs
    width = [(t["roc_auc_high"] - t["roc_auc_low"]).iloc[-1] for t in (grouped_metrics, plain_metrics)]  # kmer pooled
    assert width[0] != pytest.approx(width[1])


def test_the_clustered_error_is_delongs_for_clusters_of_one_and_the_donor_bootstraps_for_donors() -> None:
    """Obuchowski's clustered error: each repertoire its own cluster gives DeLong's; 30 donors of 4 samples sharing
    a donor effect give the spread of the AUC over donors resampled, well above DeLong's, which counts 120
    independent repertoires; a class of one donor has none."""
    from deeprc_hopfield.metrics import auc_interval

    rng = np.random.default_rng(3)
    y = rng.permutation(np.repeat([0, 1], 60))
    first = rng.normal(size=120) + 0.8 * y
    second = np.round(0.6 * first + rng.normal(size=120) + 0.6 * y, 1)
    assert paired_auc_difference(y, first, second, np.arange(120)) == pytest.approx(
        paired_auc_difference(y, first, second))
    donors = np.repeat(np.arange(30), 4)
    y = np.repeat(rng.permutation(np.repeat([0, 1], 15)), 4)
    score = np.repeat(rng.normal(size=30), 4) + 1.5 * y + rng.normal(size=120) * 0.7
    se = paired_auc_difference(y, np.zeros(120), score, donors)[1]
    boot = []
    for _ in range(2000):
        pick = np.r_[rng.choice(np.unique(donors[y == 1]), 15), rng.choice(np.unique(donors[y == 0]), 15)]
        rows = np.concatenate([np.flatnonzero(donors == d) for d in pick])
        boot.append(roc_auc_score(y[rows], score[rows]))
    assert se == pytest.approx(np.std(boot), rel=0.15)
    assert se > 1.4 * paired_auc_difference(y, np.zeros(120), score)[1]
    low, high = auc_interval(y, score, clusters=donors)
    assert high - low > 1.4 * np.subtract(*auc_interval(y, score)[::-1])
    one_donor = np.where(y == 1, 0, donors)  # every positive sample one donor's
    assert np.isnan(paired_auc_difference(y, np.zeros(120), score, one_donor)[1])
    assert np.isnan(auc_interval(y, score, clusters=one_donor)).all()
