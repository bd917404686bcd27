"""`report`: one self-contained, escaped HTML file."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import deeprc_cli

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.evaluate import evaluate
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.report import (REPORT_MARKER, STORED_CLONES_SHOWN, WRONG_CALLS_SHOWN, attended_summary,
                                    build_report, calls_section, is_report, model_folders)
from deeprc_hopfield.saved_model import MODEL_FORMAT, MODEL_SCHEMA_VERSION
from deeprc_hopfield.store import RepertoireStore


@pytest.fixture
def run(cohort: tuple[Path, Path], tmp_path: Path) -> dict[str, Path]:
    """A store of the shared 6-repertoire cohort, an evaluation of two methods, an attended table, a config."""
    metadata, folder = cohort
    store = ingest(metadata, folder, tmp_path / "cohort.h5", progress=False)
    subjects = [f"P{i}" for i in range(6)]
    pd.DataFrame({"subject_id": subjects, "fold": [0, 0, 0, 1, 1, 1]}).to_csv(tmp_path / "split.csv", index=False)
    truth = np.where(np.arange(6) % 2 == 1, "True", "False")
    for name, p in [("deeprc", [0.1, 0.9, 0.2, 0.7, 0.4, 0.6]), ("kmer", [0.5, 0.4, 0.6, 0.3, 0.2, 0.8])]:
        pd.DataFrame({"subject_id": subjects, "probability": p, "true_label": truth}).to_csv(tmp_path / f"{name}.csv",
                                                                                          index=False)
    evaluate({"deeprc": [tmp_path / "deeprc.csv"], "public_clones": [tmp_path / "kmer.csv"]}, tmp_path / "split.csv",
             tmp_path / "eval")
    attended = pd.DataFrame({
        "repertoire_id": ["P1", "P1", "P3", "P5"],
        "rank": [1, 2, 1, 1], "attention": [0.30, 0.10, 0.25, 0.05],
        "junction_aa": ["CASSGRDTF", "CASSLF", "CASSGRDTF", "CAWF"],
        "v_call": ["TRBV5-1", "TRBV7-2", "TRBV5-1", None], "j_call": ["TRBJ2-7"] * 4, "duplicate_count": [3, 1, 2, 1],
    })
    attended.to_csv(tmp_path / "attended.tsv", sep="\t", index=False)
    (tmp_path / "config.yaml").write_text("run: demo\nfolds: 2  # <b>not bold</b>\n")
    return {"store": store, "eval": tmp_path / "eval", "attended": tmp_path / "attended.tsv",
            "config": tmp_path / "config.yaml", "out": tmp_path / "report.html", "split": tmp_path / "split.csv"}


def test_the_report_says_what_the_split_held_and_what_groups_mean_for_the_tests(run: dict[str, Path],
                                                                                tmp_path: Path) -> None:
    """Without groups, that each repertoire stood alone; with donors, how many, and that the metrics and DeLong's p
    count repertoires (optimistic for several samples a donor)."""
    kwargs = dict(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"], attended=[],
                  config=None)
    assert "<b>Split:</b>" not in build_report(**kwargs)
    plain = build_report(**kwargs, split=run["split"])
    assert "<b>Split:</b> 6 repertoires in 2 folds, each repertoire on its own" in plain
    grouped = pd.read_csv(run["split"]).assign(group=["D1", "D1", "D2", "D3", "D3", "D4"])
    grouped.to_csv(tmp_path / "grouped.csv", index=False)
    text = build_report(**kwargs, split=tmp_path / "grouped.csv")
    assert "<b>Split:</b> 6 repertoires of 4 groups (e.g. donors) in 2 folds" in text
    assert "with 1.5 repertoires a group on average" in text and "DeLong's p values" in text
    # the attended section counts the donors of the lists (run["attended"]: the six repertoires' lists)
    listed = build_report(**{**kwargs, "attended": [run["attended"]]}, split=tmp_path / "grouped.csv")
    assert "<code>donors</code> counts the donors" in listed and "<th>donors</th>" in listed
    assert "<th>donors</th>" not in build_report(**{**kwargs, "attended": [run["attended"]]}, split=run["split"])
    # an evaluation of a grouped split (one class a donor) adds the metrics and the comparisons by donor
    by_class = pd.read_csv(run["split"]).assign(group=["D1", "D2", "D1", "D3", "D4", "D3"])
    by_class.to_csv(tmp_path / "by_class.csv", index=False)
    evaluate({"deeprc": [run["eval"].parent / "deeprc.csv"], "public_clones": [run["eval"].parent / "kmer.csv"]},
             tmp_path / "by_class.csv", tmp_path / "grouped_eval")
    donors = build_report(**{**kwargs, "figures": tmp_path / "grouped_eval"}, split=tmp_path / "by_class.csv")
    assert "<h3>By donor</h3>" in donors and "its repertoires: 4 donors of 6 repertoires (1.5 a donor)" in donors
    assert "count groups (Obuchowski's clustered error)" in donors and "DeLong's p values" not in donors
    assert "<h3>By donor</h3>" not in text  # an evaluation of repertoires alone


def test_the_report_gives_the_pooled_auc_interval_and_calibration_and_flags_fewer_folds(run: dict[str, Path],
                                                                                     tmp_path: Path) -> None:
    """The pooled AUC with its interval and the calibration line read from metrics.tsv ('separated' where the classes
    do not overlap); a baseline scored on fewer folds than the model is named, as its mean is over other
    repertoires."""
    kwargs = dict(store=run["store"], figures=run["eval"], attended=[], config=None)
    text = build_report(**kwargs, metrics=run["eval"] / "metrics.tsv")
    pooled = pd.read_csv(run["eval"] / "metrics.tsv", sep="\t").set_index(["method", "fold"])
    kmer = pooled.loc[("public_clones", "pooled")]
    assert "<th>ROC AUC, pooled (95% CI)</th>" in text and "DeLong's and Newcombe's, the wider at each end" in text
    assert "<td>1.000 (0.501-1.000)</td>" in text and "/ separated</td>" in text  # the model: 3 positives above 3
    assert (f"<td>{kmer['roc_auc']:.3f} ({kmer['roc_auc_low']:.3f}-{kmer['roc_auc_high']:.3f})</td>" in text
            and f"<td>{kmer['calibration_intercept']:.2f} / {kmer['calibration_slope']:.2f}</td>" in text)
    assert "Fewer folds" not in text
    fold_0 = pd.read_csv(run["eval"].parent / "kmer.csv").iloc[:3]  # P0-P2, fold 0 only
    fold_0.to_csv(tmp_path / "kmer_0.csv", index=False)
    evaluate({"deeprc": [run["eval"].parent / "deeprc.csv"], "public_clones": [tmp_path / "kmer_0.csv"]},
             run["split"], tmp_path / "thin")
    thin = build_report(**{**kwargs, "figures": tmp_path / "thin"}, metrics=tmp_path / "thin" / "metrics.tsv")
    assert "<b>Fewer folds:</b> <b>public_clones</b> on 1 of 2 folds." in thin
    flat = pd.read_csv(run["eval"].parent / "kmer.csv").assign(probability=0.5)  # found nothing: one probability
    flat.to_csv(tmp_path / "flat.csv", index=False)
    evaluate({"deeprc": [run["eval"].parent / "deeprc.csv"], "public_clones": [tmp_path / "flat.csv"]},
             run["split"], tmp_path / "flat")
    constant = build_report(**{**kwargs, "figures": tmp_path / "flat"}, metrics=tmp_path / "flat" / "metrics.tsv")
    assert "<td>0.500</td><td>0.00 / constant</td>" in constant  # no interval, no slope, not 'separated'
    assert "in fold(s) 0, 1 (found nothing" in constant  # the folds, not the pooled row


def test_the_report_names_the_wrong_held_out_calls_and_how_to_score_new_patients(run: dict[str, Path],
                                                                                 tmp_path: Path) -> None:
    """From evaluate's held_out.tsv: the model's calls right by class, the unsure ones (0.4 and 0.6 of the run's),
    and each wrong call by name, the most confident first; the fold models' folder as the ensemble for new
    patients."""
    kwargs = dict(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"], attended=[],
                  config=None)
    text = build_report(**kwargs)
    assert "6 of 6 right (False: 3 of 3; True: 3 of 3). 2 had a probability between 0.3 and 0.7" in text
    assert "No held-out repertoire was called wrongly." in text
    # the unsure ones by name, the least sure first (P4 at 0.4 and P5 at 0.6, both in fold 1; 0.7 is not unsure)
    unsure = re.sub(r' class="num"', "", text[text.index("The unsure calls (between 0.3 and 0.7), the least sure "
                                                         "first:"):])
    assert ("<tr><td>P4</td><td>1</td><td>False</td><td>0.400</td></tr><tr><td>P5</td><td>1</td><td>True</td>"
            "<td>0.600</td></tr></tbody>") in unsure
    model = pd.read_csv(run["eval"].parent / "deeprc.csv")
    model.loc[model["subject_id"].isin(["P1", "P4"]), "probability"] = [0.45, 0.95]  # a positive low, a negative high
    model.to_csv(tmp_path / "wrong.csv", index=False)
    evaluate({"deeprc": [tmp_path / "wrong.csv"]}, run["split"], tmp_path / "wrong")
    calls = pd.read_csv(tmp_path / "wrong" / "held_out.tsv", sep="\t", dtype={"true_label": str, "predicted": str})
    assert calls[~calls["correct"]]["subject_id"].tolist() == ["P1", "P4"]
    assert calls.set_index("subject_id").loc["P4", "predicted"] == "True"
    wrong = build_report(**{**kwargs, "metrics": tmp_path / "wrong" / "metrics.tsv", "figures": tmp_path / "wrong"})
    assert "4 of 6 right (False: 2 of 3; True: 2 of 3)" in wrong
    listed = wrong[wrong.index("The wrong calls, the most confident first"):]
    assert listed.index("<td>P4</td>") < listed.index("<td>P1</td>")  # 0.95 is surer than 0.45
    models = [tmp_path / "models" / f"fold{k}" for k in (0, 1)]
    for model in models:
        model.mkdir(parents=True)
        (model / "config.json").write_text(json.dumps({"format": MODEL_FORMAT, "schema_version": MODEL_SCHEMA_VERSION,
                                                       "training": {"best_update": 10}}))
    with_models = build_report(**kwargs, models=models)
    assert f"<code>deeprc-hopfield predict --model {models[0].parent} --repertoires DIR" in with_models
    # the workflow's predict target of this run: its config named (without it, snakemake plans the demo's run)
    assert ("<code>snakemake --cores 8 predict --configfile YOUR_CONFIG --config new_repertoires=DIR</code>"
            in with_models)
    copy = tmp_path / "results" / "my run" / "config.yaml"  # the workflow's copy of the run's config
    copy.parent.mkdir(parents=True)
    copy.write_text("run: my run\n")
    named = build_report(**{**kwargs, "config": copy}, models=models)
    assert (f"<code>snakemake --cores 8 predict --configfile &#x27;{copy}&#x27; --config new_repertoires=DIR</code>"
            in named)


def test_every_unsure_call_is_counted_and_the_first_are_named(tmp_path: Path) -> None:
    """More unsure calls than the report lists: the first WRONG_CALLS_SHOWN (the least sure first) and how many in
    all."""
    probabilities = 0.5 + np.linspace(-0.15, 0.15, WRONG_CALLS_SHOWN + 5)  # every one unsure; half wrong
    truth = np.where(np.arange(len(probabilities)) % 2 == 1, "True", "False")
    pd.DataFrame({"method": "deeprc", "subject_id": [f"S{i}" for i in range(len(probabilities))], "fold": 0,
                  "true_label": truth, "probability": probabilities, "predicted": probabilities >= 0.5,
                  "correct": (probabilities >= 0.5) == (truth == "True")}).to_csv(tmp_path / "held_out.tsv", sep="\t",
                                                                                   index=False)
    text = calls_section(tmp_path)
    assert f"{WRONG_CALLS_SHOWN + 5} had a probability between 0.3 and 0.7" in text
    unsure = text[text.index("The unsure calls"):]
    assert f"least sure first (the first {WRONG_CALLS_SHOWN} of {WRONG_CALLS_SHOWN + 5}):" in unsure
    assert unsure.count("<tr><td>") == WRONG_CALLS_SHOWN and unsure.index("<td>S12</td>") < unsure.index("<td>S11</td>")
    assert "<td>S0</td>" not in unsure  # 0.35, among the surest of them


def test_report_is_self_contained_and_escaped(run: dict[str, Path]) -> None:
    result = deeprc_cli("report", "--store", run["store"], "--metrics", run["eval"] / "metrics.tsv", "--figures",
                        run["eval"], "--attended", run["attended"], "--config", run["config"], "--out", run["out"],
                        "--title", "CMV & friends")
    assert result.returncode == 0, result.stderr
    text = run["out"].read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<title>CMV &amp; friends</title>" in text
    assert "deeprc" in text and "public_clones" in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2 and all(len(i) > 1000 for i in images)
    assert "<script" not in text
    assert "&lt;b&gt;not bold&lt;/b&gt;" in text  # the config as given, escaped
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from elsewhere
    assert "<td>repertoires</td><td>6</td>" in text  # cohort summary from the store
    assert "<th>in label=True</th>" in text and "<td>P1, P3</td>" in text  # CASSGRDTF: two positives
    assert "Positive class: <b>True</b>. " in text  # from metrics.tsv (single-label predictions name no label)
    for software in ("python", "torch", "numpy", "pandas", "snakemake"):
        assert f"<td>{software}</td>" in text


def test_sequences_ids_and_title_are_escaped_where_shown(run: dict[str, Path]) -> None:
    attended = pd.read_csv(run["attended"], sep="\t")
    attended.loc[3, "junction_aa"] = "<script>x</script>"
    attended.to_csv(run["attended"], sep="\t", index=False)
    text = build_report(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"],
                        attended=[run["attended"]], config=run["config"], title="<script>t</script>")
    assert "<script" not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "<h1>&lt;script&gt;t&lt;/script&gt;</h1>" in text


def test_a_repertoire_id_is_escaped_where_shown(cohort: tuple[Path, Path], tmp_path: Path) -> None:
    """A subject id is the user's text: a store whose id holds markup shows it escaped in the attended table."""
    metadata, folder = cohort
    odd = "<script>alert(1)</script>"
    metadata.write_text(metadata.read_text().replace("P5,", f"{odd},"))
    store = ingest(metadata, folder, tmp_path / "odd.h5", progress=False)
    pd.DataFrame({"repertoire_id": [odd], "rank": [1], "attention": [0.5], "junction_aa": ["CASSGRDTF"],
                  "v_call": ["TRBV5-1"], "j_call": ["TRBJ2-7"], "duplicate_count": [1]}).to_csv(
        tmp_path / "attended.tsv", sep="\t", index=False)
    subjects = [f"P{i}" for i in range(5)] + [odd]
    pd.DataFrame({"subject_id": subjects, "fold": [0, 0, 0, 1, 1, 1]}).to_csv(tmp_path / "split.csv", index=False)
    pd.DataFrame({"subject_id": subjects, "probability": [0.1, 0.9, 0.2, 0.7, 0.4, 0.6],
                  "true_label": ["False", "True"] * 3}).to_csv(tmp_path / "p.csv", index=False)
    evaluate({"deeprc": [tmp_path / "p.csv"]}, tmp_path / "split.csv", tmp_path / "eval")
    text = build_report(store=store, metrics=tmp_path / "eval" / "metrics.tsv", figures=tmp_path / "eval",
                        attended=[tmp_path / "attended.tsv"], config=None)
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_cohort_section_names_subjects_left_out_for_a_missing_label(cohort: tuple[Path, Path],
                                                                        tmp_path: Path) -> None:
    """A store of `ingest --drop-unlabelled` says in the report who it lacks and why."""
    from deeprc_hopfield.report import cohort_section

    metadata, folder = cohort
    assert "left out" not in cohort_section(ingest(metadata, folder, tmp_path / "all.h5", progress=False))
    metadata.write_text(metadata.read_text().replace("rep2.tsv,False", "rep2.tsv,Unknown"))
    store = ingest(metadata, folder, tmp_path / "some.h5", progress=False, drop_unlabelled=True)
    assert "1 subject(s) of the metadata table had no label value and were left out (<code>drop_unlabelled</code>): " \
           "P2." in cohort_section(store)


def test_attended_summary_counts_repertoires_and_classes() -> None:
    attended = pd.DataFrame({"repertoire_id": ["A", "A", "B", "C"], "rank": [1, 2, 1, 3],
                             "attention": [0.3, 0.1, 0.2, 0.05], "junction_aa": ["CXF", "CYF", "CXF", "CXF"],
                             "v_call": ["V1", "V1", "V1", None], "j_call": ["J1"] * 4})
    summary = attended_summary(attended, {"A": "y=1", "B": "y=0", "C": "y=1"})
    first = summary.iloc[0]
    assert (first["junction_aa"], first["v_call"], first["repertoires"], first["best_rank"]) == ("CXF", "V1", 2, 1)
    assert first["max_attention"] == pytest.approx(0.3)
    assert (first["in y=0"], first["in y=1"], first["examples"]) == (1, 1, "A, B")
    assert len(summary) == 3  # CXF without V is another clone
    attended = pd.concat([attended, pd.DataFrame({"repertoire_id": ["A", "C"], "rank": [3, 1], "attention": [0.01, 0.9],
                                                  "junction_aa": ["CZF", "CZF"], "v_call": ["V1", "V1"],
                                                  "j_call": ["J1", "J1"]})], ignore_index=True)
    positives = attended_summary(attended, {"A": "y=1", "B": "y=0", "C": "y=1", "D": "y=0"}, positive="y=1")
    # only what a positive lists: most positives first, then fewest controls (CXF of V1 is in B's list too)
    assert list(zip(positives["junction_aa"], positives["v_call"])) == [("CZF", "V1"), ("CYF", "V1"), ("CXF", ""),
                                                                        ("CXF", "V1")]
    assert positives["in y=1"].tolist() == [2, 1, 1, 1] and positives["in y=0"].tolist() == [0, 0, 0, 1]
    # what a positive's list holds, not a control's: CXF of V1 is first in B's (a control's) list, third in no one's
    cxf = positives.iloc[3]
    assert (cxf["repertoires"], cxf["best_rank"], cxf["examples"]) == (1, 1, "A")
    assert cxf["max_attention"] == pytest.approx(0.3)
    attended.loc[attended["repertoire_id"] == "B", "attention"] = 0.95  # a control's weight is no positive's
    again = attended_summary(attended, {"A": "y=1", "B": "y=0", "C": "y=1", "D": "y=0"}, positive="y=1")
    assert again.iloc[3]["max_attention"] == pytest.approx(0.3) and again.iloc[3]["examples"] == "A"



def test_attended_summary_counts_donors_first_where_samples_are_grouped() -> None:
    """Three samples of donor D list CAF, two donors list CBF: by repertoires CAF leads, by donors CBF."""
    attended = pd.DataFrame({"repertoire_id": ["D1", "D2", "D3", "E1", "F1"], "rank": 1, "attention": 0.5,
                             "junction_aa": ["CAF", "CAF", "CAF", "CBF", "CBF"], "v_call": "V1", "j_call": "J1"})
    assert attended_summary(attended)["junction_aa"].tolist() == ["CAF", "CBF"]
    donor_of = {"D1": "D", "D2": "D", "D3": "D", "E1": "E"}  # F1 without a group: a donor of its own
    by_donor = attended_summary(attended, donor_of=donor_of)
    assert by_donor["junction_aa"].tolist() == ["CBF", "CAF"] and by_donor["donors"].tolist() == [2, 1]
    assert by_donor["repertoires"].tolist() == [2, 3] and by_donor.columns[3] == "donors"


def test_missing_inputs_are_one_line_errors(run: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DeepRCError, match="metrics table not found"):
        build_report(store=run["store"], metrics=tmp_path / "none.tsv", figures=run["eval"], attended=[], config=None)
    bad = tmp_path / "bad.tsv"
    bad.write_text("method\tauc\nx\t0.5\n")
    with pytest.raises(DeepRCError, match="lacks column 'balanced_accuracy'"):
        build_report(store=run["store"], metrics=bad, figures=run["eval"], attended=[], config=None)
    with pytest.raises(DeepRCError, match="not an interpretation folder: interpretation.json is missing"):
        build_report(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"], attended=[],
                     config=None, interpretation=tmp_path)


def test_attended_tables_and_models_of_another_cohort_are_refused(run: dict[str, Path], tmp_path: Path) -> None:
    """The report's parts must describe the store's cohort: an attended table of other repertoires, or a model
    trained on other files (by the sha256 it recorded), is refused in one line naming it."""
    other = tmp_path / "other.tsv"
    pd.read_csv(run["attended"], sep="\t").assign(repertoire_id=["P1", "P1", "X3", "X5"]).to_csv(other, sep="\t",
                                                                                               index=False)
    with pytest.raises(DeepRCError, match=r"2 of its 3 repertoires are not in the store .*\(X3, X5\)") as info:
        build_report(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"], attended=[other],
                     config=None)
    assert info.value.path == str(other)
    with RepertoireStore(run["store"]) as store:
        digest = store.provenance()["sha256"][0]
    model = tmp_path / "fold0"
    model.mkdir()
    for recorded, refused in [({"P0": digest}, False), ({"P0": "0" * 64}, True), ({"Q9": digest}, True)]:
        (model / "config.json").write_text(json.dumps({"format": MODEL_FORMAT, "schema_version": MODEL_SCHEMA_VERSION,
                                                       "training": {"subject_sha256": recorded}}))
        kwargs = dict(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"], attended=[],
                      config=None, models=[model])
        if refused:
            with pytest.raises(DeepRCError, match=r"trained on 1 repertoire\(s\) that are not the store's"):
                build_report(**kwargs)
        else:
            assert "<h2>Fold models</h2>" in build_report(**kwargs)


def test_fold_models_show_their_seeds_and_stored_clones(run: dict[str, Path], tmp_path: Path) -> None:
    models = []
    for fold, clones in enumerate([["CASSPVTGGIYGYTF", "<i>CASSF</i>"], []]):
        model = tmp_path / "models" / f"fold{fold}"
        model.mkdir(parents=True)
        training = {"best_update": 150 + fold, "seeded_kmers": ["SA.FY", "GR.DT"], "memory_clones": clones,
                    "clone_rule": {"v_level": "none", "radius": 1, "inner_auc": 0.91, "validation_auc": 0.88,
                                   "used": bool(clones)}}
        if clones:  # validated on 3 repertoires of 2 donors (a grouped split): too few, said
            training.update(validation_subjects=["P0", "P1", "P2"], subject_groups={"P0": "D1", "P1": "D1", "P2": "D2"})
        else:
            training.update(validation_subjects=[f"P{i}" for i in range(6)])  # 6 repertoires, no groups: enough
        if clones:  # the memory alone, its clones chosen again on all training repertoires
            training["clone_rule"]["refit"] = {"v_level": "family", "radius": 0, "inner_auc": 0.95, "clones": 2,
                                               "repertoires": 40}
            training["memory_alone"] = True
        (model / "config.json").write_text(json.dumps({"format": MODEL_FORMAT, "schema_version": MODEL_SCHEMA_VERSION,
                                                       "training": training}))
        models.append(model)
    text = build_report(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"],
                        attended=[], config=None, models=models)
    assert "<h2>Fold models</h2>" in text
    assert model_folders([tmp_path / "models"]) == models  # the folder of the fold models: each of them
    cells = re.sub(r' class="num"', "", text)
    assert ("<td>fold0</td><td>3 repertoires of 2 donors (few)</td><td>150</td><td>clone memory alone</td><td>SA.FY, GR.DT</td><td>2</td><td>CASSPVTGGIYGYTF, "
            "&lt;i&gt;CASSF&lt;/i&gt;</td>") in cells
    assert "<td>fold1</td><td>6 repertoires</td><td>151</td><td>trained model</td><td>SA.FY, GR.DT</td><td>0</td><td></td>" in cells
    # the metrics say so where they are read: fold 0's calls are its stored clones', not the attention's
    assert ("<b>Clone memory alone:</b> 1 of the 2 fold models (fold0) gave its clone memory's output alone: on "
            "validation repertoires the trained attention network did not beat it.") in text
    assert text.index("Clone memory alone:") < text.index("<h2>Fold models</h2>")
    assert "<b>Few validation donors:</b> fold0 validated on fewer than 6 donors" in text  # fold1: 6, enough
    assert ("<td>CDR3 alone, 1 substitution; AUC 0.91 inner CV, 0.88 validation; memory alone, refit on 40 training "
            "repertoires: CDR3 + V family, exact, 2 clones (AUC 0.95 inner CV)</td>") in cells  # the clone rules chosen
    assert "<td>CDR3 alone, 1 substitution; AUC 0.91 inner CV, 0.88 validation; not used</td>" in cells
    for text, error in [("{not json", "config.json is not valid JSON"),
                        (json.dumps({"format": MODEL_FORMAT, "schema_version": 0}), "model file version 0")]:
        (models[1] / "config.json").write_text(text)
        with pytest.raises(DeepRCError, match=error):  # read as `predict` reads it, the version checked
            build_report(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"], attended=[],
                         config=None, models=models)


def test_the_clones_stored_over_the_fold_models_are_one_table_the_most_shared_first(run: dict[str, Path],
                                                                                     tmp_path: Path) -> None:
    """The fold models' memory_clones (config.json) merged: CDR3, V, how many of the models stored each and which,
    the clone most models stored first; the rows capped, the rest counted; none where no model stored a clone."""
    many = [f"CASS{i:03d}F TRBV{i}" for i in range(STORED_CLONES_SHOWN + 3)]
    stored = {"fold0": ["CASSLGQAYEQYF TRBV5-1*01", "CSARDRTGNGYTF", "<b>CAW</b>"],
              "fold1": ["CASSLGQAYEQYF TRBV5-1*01", "CSARDRTGNGYTF"],
              "fold2": ["CASSLGQAYEQYF TRBV5-1*01", *many]}
    models = []
    for name, clones in stored.items():
        model = tmp_path / "models" / name
        model.mkdir(parents=True)
        training = {"memory_clones": clones, "memory_alone": name != "fold1"}
        (model / "config.json").write_text(json.dumps({"format": MODEL_FORMAT, "schema_version": MODEL_SCHEMA_VERSION,
                                                       "training": training}))
        models.append(model)
    text = build_report(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"], attended=[],
                        config=None, models=[tmp_path / "models"])
    section = re.sub(r' class="num"', "", text[text.index("<h3>Stored public clones, 3 fold models</h3>"):])
    assert (f"<p>The {len(many) + 3} public clones the fold models' clone memories stored and match in a repertoire "
            "(each by its model's clone rule above): a model that gives its clone memory alone (2 of the 3 here) calls "
            "a held-out patient by how many of its own stored clones the patient carries") in section
    assert ("<thead><tr><th>CDR3</th><th>V</th><th>fold models</th><th>stored by</th></tr></thead><tbody>"
            "<tr><td>CASSLGQAYEQYF</td><td>TRBV5-1*01</td><td>3</td><td>fold0, fold1, fold2</td></tr>"
            "<tr><td>CSARDRTGNGYTF</td><td></td><td>2</td><td>fold0, fold1</td></tr>"
            "<tr><td>&lt;b&gt;CAW&lt;/b&gt;</td><td></td><td>1</td><td>fold0</td></tr>"
            "<tr><td>CASS000F</td><td>TRBV0</td><td>1</td><td>fold2</td></tr>") in section
    table = section[:section.index("</table>")]
    assert table.count("<tr><td>") == STORED_CLONES_SHOWN and "CASS026F" in table and "CASS027F" not in table
    assert (f"<p>{len(many) + 3 - STORED_CLONES_SHOWN} more clones are not shown: each model's are in its config.json "
            "(<code>training.memory_clones</code>).</p>") in section
    assert section.index("</table>") < section.index("<b>New patients:</b>")  # in the fold-models section
    for model in models:
        (model / "config.json").write_text(json.dumps({"format": MODEL_FORMAT, "schema_version": MODEL_SCHEMA_VERSION,
                                                       "training": {"memory_clones": []}}))
    none = build_report(store=run["store"], metrics=run["eval"] / "metrics.tsv", figures=run["eval"], attended=[],
                        config=None, models=models)
    assert "<h2>Fold models</h2>" in none and "Stored public clones" not in none


def _report_cli(run: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return deeprc_cli("report", "--store", run["store"], "--metrics", run["eval"] / "metrics.tsv", "--figures",
                      run["eval"], "--out", out, *extra)


def test_report_never_overwrites_a_file_it_did_not_write(run: dict[str, Path], tmp_path: Path) -> None:
    """An --out that exists is refused in one line before any work, unless it is an earlier report and
    --force is given; a file that is not a report (or a folder) is kept even with --force."""
    theirs = tmp_path / "notes.html"
    theirs.write_text("<!DOCTYPE html><p>my notes</p>")
    (tmp_path / "folder").mkdir()
    for target in (theirs, tmp_path / "folder"):
        for force in ((), ("--force",)):
            result = _report_cli(run, target, *force)
            assert result.returncode == 1 and "Traceback" not in result.stderr
            what = ("exists and is not an earlier output of `deeprc-hopfield report`; it was left as it is and nothing "
                    "was written (choose another --out; --force replaces only an earlier output of the same command)"
                    if target == theirs else "is a folder, where `deeprc-hopfield report` writes a file: give the "
                    "file's name (in that folder, if you like); nothing was written")
            assert result.stderr.strip().splitlines() == [f"deeprc-hopfield report: error: {target}: {what}"]
    assert theirs.read_text() == "<!DOCTYPE html><p>my notes</p>" and not any((tmp_path / "folder").iterdir())

    assert _report_cli(run, run["out"]).returncode == 0
    first = run["out"].read_text()
    assert REPORT_MARKER in first
    refused = _report_cli(run, run["out"], "--title", "second")
    assert refused.returncode == 1 and "holds an earlier output of `deeprc-hopfield report`" in refused.stderr
    assert run["out"].read_text() == first
    assert _report_cli(run, run["out"], "--title", "second", "--force").returncode == 0
    assert "<title>second</title>" in run["out"].read_text()
    # a report written before the marker is known by the note under its title
    run["out"].write_text(first.replace(REPORT_MARKER, ""))
    assert is_report(run["out"]) and not is_report(theirs)
