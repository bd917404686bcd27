"""Interpretation: the cohort ranking, motifs, logos and integrated gradients, on a model trained on the
easy simulated cohort of test_train (GRDT in 5% of each positive's sequences), and refusals of bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import fisher_exact
from conftest import deeprc_cli
from sklearn.metrics import average_precision_score

from deeprc_hopfield.attention_file import AttentionFileError, attention_writer, repertoire_fingerprint
from deeprc_hopfield.encoding import encode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.io import OUTPUT_MARKER, output_command
from deeprc_hopfield.interpret import InterpretError, interpret, summarise
from deeprc_hopfield.interpret.contributions import CONTRIBUTION_COLUMNS, onehot, onehot_embedding
from deeprc_hopfield.interpret.motifs import RepertoireSamples, find_motifs, pattern_code, pattern_string
from deeprc_hopfield import infer
from deeprc_hopfield.infer import score_subjects, subjects_from_store
from deeprc_hopfield.interpret.ranking import (KEY_COLUMNS, RANKED_COLUMNS, AttentionPass, collect_attention,
                                               rank_sequences)
from deeprc_hopfield.interpret import ranking
from deeprc_hopfield.interpret.run import merge_rankings, merged_donors, pooled_by_donor, searched_foreground
from deeprc_hopfield.model import SequenceBags
from deeprc_hopfield.public_clones import MODULI, with_v
from deeprc_hopfield.report import interpretation_section
from deeprc_hopfield.saved_model import load_model
from deeprc_hopfield.split import donor_names
from deeprc_hopfield.training import train
from test_train import easy_cohort  # noqa: F401  (the module-scoped cohort fixture)

PNG = b"\x89PNG\r\n\x1a\n"


def _scored(saved, subjects):  # noqa: ANN001, ANN202
    """One model's pass with attention over `subjects`, on the CPU (what `interpret` runs)."""
    return score_subjects([saved], subjects, torch.device("cpu"), attention=True)


def _train(cohort: dict, out: Path, n_updates: int, **model) -> Path:
    config = out.with_suffix(".yaml")
    config.write_text(yaml.safe_dump({"model": model, "training": {
        "n_updates": n_updates, "evaluate_every": 100, "checkpoint_every": 100, "sample_size": 300,
        "repertoires_per_update": 4}}))
    return train(cohort["store"], out, config, split=cohort["split"], fold=0, device="cpu", progress=False)


@pytest.fixture(scope="module")
def trained(easy_cohort, tmp_path_factory) -> dict:  # noqa: F811
    """A model trained on folds 1-3 of the easy cohort (as test_train's slow test), and the implanted CDR3s."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("interpret")
    model = _train(easy_cohort, root / "model", 300)
    truth = pd.read_csv(easy_cohort["root"] / "cohort" / "truth" / "implanted.tsv", sep="\t")
    return {**easy_cohort, "model": model, "implanted": set(truth["junction_aa"])}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return deeprc_cli(*args)


@pytest.fixture(scope="module")
def interpreted(trained, tmp_path_factory) -> Path:
    """`deeprc-hopfield interpret` of the trained model on its held-out fold (8 contributions)."""
    out = tmp_path_factory.mktemp("interpreted") / "interpretation"
    # 10 held-out repertoires: the label test's Welch t over 5 against 5 cannot pass alpha 0.05 over ~500 patterns
    result = run_cli("interpret", "--model", trained["model"], "--store", trained["store"], "--split", trained["split"],
                     "--fold", "0", "--out", out, "--threads", "1", "--top", "8", "--motif-alpha", "0.5")
    assert result.returncode == 0, result.stderr
    return out


def test_interpret_ranks_implanted_sequences_first_and_writes_logos(trained, interpreted):
    out = interpreted
    ranked = pd.read_csv(out / "ranked_sequences.tsv", sep="\t")
    assert list(ranked.columns) == RANKED_COLUMNS
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["score"].is_monotonic_decreasing
    assert np.allclose(ranked["score"], ranked["evidence_positive"] - ranked["evidence_negative"])
    implanted = ranked["junction_aa"].isin(trained["implanted"]).to_numpy()
    base = implanted.mean()  # ~2.5% of all sequences
    assert implanted[:10].mean() >= 0.4 and implanted[:10].mean() > 10 * base
    assert average_precision_score(implanted, -ranked["rank"]) > 4 * base
    # the sequences on top are attended in positives, not in negatives
    assert (ranked.head(20)["attended_negative"] == 0).all() and (ranked.head(20)["n_positive"] >= 1).all()

    motifs = pd.read_csv(out / "motifs.tsv", sep="\t")
    assert motifs.loc[0, "motif"] == "GRDT", motifs.to_string()
    assert motifs.loc[0, "support"] >= 10 and motifs["log10_p"].is_monotonic_increasing
    for name in ("motif_1", "contributions"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG and (out / f"{name}.png").stat().st_size > 5000
        assert "<svg" in (out / f"{name}.svg").read_text()[:2000]
    contributions = pd.read_csv(out / "contributions.tsv", sep="\t")
    assert list(contributions.columns) == CONTRIBUTION_COLUMNS
    assert contributions["rank"].unique().tolist() == ranked["rank"].head(8).tolist()
    info = json.loads((out / "interpretation.json").read_text())
    assert info["repertoires"] == {"positive": 5, "negative": 5} and info["label_source"] == "store"
    assert info["top_motif"] == "GRDT"
    assert (motifs["label_log10_p"] <= info["motif_test"]["log10_p_max"]).all()  # more common in positives
    assert info["motif_test"]["alpha"] == 0.5 and info["motif_test"]["patterns_tested"] > 0
    assert info["positive_sample_sequences"] > 0 and info["notes"] == []
    searched = pd.read_csv(out / "motif_foreground.tsv", sep="\t")  # each positive's 20 most attended, in order
    assert set(searched["subject_id"]) == set(info["positive_subjects"])
    assert (searched.groupby("subject_id")["rank"].agg(list).map(lambda r: r == list(range(1, 21)))).all()
    assert (searched.groupby("subject_id")["attention"].agg(lambda a: a.is_monotonic_decreasing)).all()
    assert sorted(p.name for p in out.parent.iterdir()) == ["interpretation"]  # no temporary folder left

    section = interpretation_section(out)  # the report's section: tables and every logo embedded
    assert "<h2>Interpretation</h2>" in section and "GRDT" in section
    assert section.count('src="data:image/png;base64,') == len(list(out.glob("*.png")))


def test_integrated_gradients_are_complete_and_use_the_model_path(trained, tmp_path):
    saved = load_model(trained["model"])
    sequences = ["CASSGRDTGELFF", "CASSLAPGATNEKLFF", "CSARDRGRDTQYF", "CASSQDF"]
    x, lengths = onehot(sequences)
    codes, lengths_np = encode(sequences)
    bags = SequenceBags.from_arrays(codes, lengths_np)
    with torch.no_grad():
        lookup = saved.model.embed(bags)
        differentiable = onehot_embedding(saved.model.embedder, x, lengths)
        logits = saved.model.attention_logits(bags).max(dim=1).values  # each sequence's highest head
    assert torch.allclose(differentiable, lookup[:, :differentiable.shape[1]], atol=1e-5)

    from deeprc_hopfield.interpret.contributions import contributions_table

    table = pd.DataFrame({"rank": [1, 2, 3, 4], "junction_aa": sequences, "v_call": [None] * 4, "j_call": [None] * 4})
    contributions = contributions_table([saved, saved], table)  # an 'ensemble' of the same model twice
    assert len(contributions) == sum(map(len, sequences))
    per_sequence = contributions.groupby("rank").agg(total=("contribution", "sum"), logit=("attention_logit", "first"),
                                                     base=("baseline_logit", "first"))
    assert np.allclose(per_sequence["logit"], logits.numpy(), atol=1e-4)  # the logit the model ranks by
    gap = per_sequence["logit"] - per_sequence["base"]
    assert (np.abs(per_sequence["total"] - gap) <= 0.03 * np.abs(gap) + 0.02).all()  # completeness
    assert contributions.groupby("rank")["position"].max().tolist() == [len(s) for s in sequences]


def test_fold_rankings_merge_into_the_whole(trained, interpreted, tmp_path):
    split = pd.read_csv(trained["split"], dtype={"subject_id": str})
    saved = load_model(trained["model"])

    def ranking_of(subjects: set[str]) -> tuple[pd.DataFrame, int, int]:
        attention = collect_attention(_scored(saved, subjects_from_store(trained["store"], saved, subjects)),
                                      "label", "1")
        positive = int(attention.repertoires["positive"].sum())
        return rank_sequences(attention), positive, len(attention.repertoires) - positive

    folds = [set(split.loc[split["fold"] == k, "subject_id"]) for k in (0, 1)]
    (a, pa, na), (b, pb, nb) = ranking_of(folds[0]), ranking_of(folds[1])
    merged = merge_rankings([a, b], pa + pb, na + nb).set_index(KEY_COLUMNS)
    whole = ranking_of(folds[0] | folds[1])[0].set_index(KEY_COLUMNS)
    assert len(merged) == len(whole) and set(merged.index) == set(whole.index)
    whole = whole.loc[merged.index]
    for column in ("score", "n_positive", "n_negative", "attended_positive", "attended_negative",
                   "mean_attention_positive", "fisher_p", "top_attention"):
        assert np.allclose(merged[column], whole[column], equal_nan=True, rtol=1e-5), column

    # the summary command on one interpretation gives back its ranking and its contributions
    summary = summarise([interpreted], trained["store"], tmp_path / "cohort", top=8, motif_alpha=0.5)
    before = pd.read_csv(interpreted / "ranked_sequences.tsv", sep="\t")
    after = pd.read_csv(summary / "ranked_sequences.tsv", sep="\t")
    assert after["junction_aa"].tolist() == before["junction_aa"].tolist()
    assert np.allclose(after["score"], before["score"])
    contributions = [pd.read_csv(d / "contributions.tsv", sep="\t") for d in (interpreted, summary)]
    assert contributions[1].equals(contributions[0])
    assert json.loads((summary / "interpretation.json").read_text())["top_motif"] == "GRDT"
    with pytest.raises(InterpretError, match="share repertoires"):
        summarise([interpreted, interpreted], trained["store"], tmp_path / "twice")
    assert not (tmp_path / "twice").exists()


def test_labels_model_takes_the_model_calls_even_where_the_store_has_labels(trained, interpreted, tmp_path,
                                                                           monkeypatch):
    split = pd.read_csv(trained["split"], dtype={"subject_id": str})
    held_out = set(split.loc[split["fold"] == 0, "subject_id"])
    saved = load_model(trained["model"])
    passes = {labels: collect_attention(_scored(saved, subjects_from_store(trained["store"], saved, held_out)),
                                        "label", "1", labels=labels)
              for labels in ("auto", "model")}
    truth = trained["meta"].set_index(trained["meta"]["subject_id"].astype(str))["label"]
    auto, model = passes["auto"], passes["model"]
    assert auto.label_source == {"store"} and model.label_source == {"predicted"}
    reps = auto.repertoires
    assert (reps["positive"] == (truth.loc[reps["subject_id"]] == 1).to_numpy()).all()
    assert (model.repertoires["positive"] == (model.repertoires["probability"] >= 0.5)).all()

    # the same model with every call turned round (P -> 1 - P): "model" follows the calls, not the
    # store, so the sides swap and every score changes sign
    score = infer.score_repertoire

    def turned_round(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        scores, attention = score(*args, **kwargs)
        return {name: 1 - value for name, value in scores.items()}, attention

    monkeypatch.setattr(infer, "score_repertoire", turned_round)
    out = interpret(trained["model"], trained["store"], tmp_path / "model_calls", subjects=held_out, top=1,
                    labels="model")
    info = json.loads((out / "interpretation.json").read_text())
    assert info["label_source"] == "predicted" and info["settings"]["labels"] == "model"
    calls = model.repertoires.set_index("subject_id")["probability"] >= 0.5
    assert sorted(info["positive_subjects"]) == sorted(calls.index[~calls])
    assert sorted(info["negative_subjects"]) == sorted(calls.index[calls])
    turned, straight = (table.set_index(KEY_COLUMNS) for table in
                        (pd.read_csv(out / "ranked_sequences.tsv", sep="\t"), rank_sequences(model)))
    assert len(turned) == len(straight) and (straight["score"] != 0).sum() > 50
    assert np.allclose(turned.loc[straight.index, "score"], -straight["score"], atol=1e-4)
    stored = json.loads((interpreted / "interpretation.json").read_text())
    assert stored["label_source"] == "store" and stored["settings"]["labels"] == "auto"  # the default
    with pytest.raises(InterpretError, match="labels must be one of auto, store, model, not 'true'"):
        interpret(trained["model"], trained["store"], tmp_path / "bad", subjects=held_out, labels="true")
    assert not (tmp_path / "bad").exists()


def test_one_pass_serves_predict_attend_and_interpret(trained, interpreted, tmp_path):
    """`predict --attended --attention` then `interpret --attention` give what `predict`, `attend` and
    `interpret` give with three passes; a file of another model or lacking a repertoire is refused."""
    fold = ["--model", trained["model"], "--store", trained["store"], "--split", trained["split"], "--fold", "0",
            "--threads", "1"]
    one = run_cli("predict", *fold, "--out", tmp_path / "p.csv", "--attended", tmp_path / "a.tsv", "--top", "5",
                  "--attention", tmp_path / "att.h5")
    assert one.returncode == 0, one.stderr
    assert run_cli("predict", *fold, "--out", tmp_path / "p3.csv").returncode == 0
    assert run_cli("attend", *fold, "--out", tmp_path / "a3.tsv", "--top", "5").returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "p3.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.tsv", sep="\t"), pd.read_csv(tmp_path / "a3.tsv", sep="\t"))
    result = run_cli("interpret", *fold, "--out", tmp_path / "i", "--top", "8", "--attention", tmp_path / "att.h5",
                     "--motif-alpha", "0.5")
    assert result.returncode == 0, result.stderr
    for name in ("ranked_sequences.tsv", "motifs.tsv", "contributions.tsv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "i" / name, sep="\t"),
                                      pd.read_csv(interpreted / name, sep="\t"))
    assert json.loads((tmp_path / "i" / "interpretation.json").read_text())["attention_file"] == str(tmp_path / "att.h5")

    other = _train(trained, tmp_path / "other", 5)
    split = pd.read_csv(trained["split"], dtype={"subject_id": str})
    fold1 = split.loc[split["fold"] == 1, "subject_id"].tolist()
    for args, words in [(["--model", other, "--store", trained["store"], "--split", trained["split"], "--fold", "0"],
                         "written by other models"),
                        (["--model", trained["model"], "--store", trained["store"], "--subjects", fold1[0],
                          "--allow-training-subjects"], f"holds no repertoire '{fold1[0]}'"),
                        (["--model", trained["model"], "--store", trained["store"], "--split", trained["split"],
                          "--fold", "0"], "not an attention file")]:
        source = tmp_path / "p.csv" if words == "not an attention file" else tmp_path / "att.h5"
        bad = run_cli("interpret", *args, "--out", tmp_path / "bad", "--attention", source)
        errors = [line for line in bad.stderr.splitlines() if "error:" in line]
        assert bad.returncode == 1 and len(errors) == 1 and words in errors[0], bad.stderr
        assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()


def test_attention_of_other_sequences_under_the_same_subject_is_refused(trained, tmp_path):
    """An attention file is tied to the sequences it scored, not only to their number: one residue
    changed (a store ingested again) and the file is refused."""
    saved = load_model(trained["model"], torch.device("cpu"))
    subject = next(iter(subjects_from_store(trained["store"], saved)))
    scored = next(_scored(saved, [subject]))
    with attention_writer(tmp_path / "att.h5", [saved]) as writer:
        writer.add(subject.subject_id, scored.scores, scored.attention, repertoire_fingerprint(subject.repertoire))
    (again,) = infer.scored_from_file(tmp_path / "att.h5", [saved], [subject])
    assert np.array_equal(again.attention, scored.attention)
    codes = subject.repertoire.codes.copy()
    codes[3] = codes[3] % 20 + 1
    changed = dataclasses.replace(subject, repertoire=dataclasses.replace(subject.repertoire, codes=codes))
    with pytest.raises(AttentionFileError, match="other sequences of"):
        list(infer.scored_from_file(tmp_path / "att.h5", [saved], [changed]))


def test_rank_sequences_scores_attention_in_positives_against_negatives():
    # four repertoires (two positive) of three sequences; relative attention w per occurrence
    table = pd.DataFrame({
        "junction_aa": ["CAAF", "CBBF", "CCCF", "CAAF", "CBBF", "CDDF", "CAAF", "CBBF", "CEEF", "CBBF", "CFFF", "CGGF"],
        "repertoire": [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3],
        "weight": [2.0, 0.5, 0.5, 4.0, 0.5, 0.5, 0.5, 2.5, 0.0, 1.0, 1.0, 1.0]})
    table["v_call"], table["j_call"] = "TRBV1", "TRBJ1"
    table["key"] = pd.util.hash_pandas_object(table[["junction_aa", "v_call", "j_call"]], index=False).to_numpy()
    candidates = table.assign(duplicate_count=1.0)
    reps = pd.DataFrame({"subject_id": ["p0", "p1", "n0", "n1"], "positive": [True, True, False, False],
                         "probability": 0.5, "n_sequences": 3})
    ranked = rank_sequences(AttentionPass(table["key"].to_numpy(), table["repertoire"].to_numpy(np.int32),
                                          table["weight"].to_numpy(np.float32), candidates, reps))
    row = ranked.set_index("junction_aa")
    assert ranked["junction_aa"].iloc[0] == "CAAF"  # above uniform in both positives
    assert row.loc["CAAF", "score"] == pytest.approx(np.log2(2) + np.log2(4))  # the negative's 0.5 adds nothing
    assert (row.loc["CAAF", "n_positive"], row.loc["CAAF", "n_negative"]) == (2, 1)
    assert row.loc["CAAF", "mean_attention_positive"] == pytest.approx(3.0)
    assert row.loc["CBBF", "score"] == pytest.approx(-np.log2(2.5))  # attended in a negative only
    assert ranked["junction_aa"].iloc[-1] == "CBBF" and row.loc["CBBF", "n_repertoires"] == 4
    assert row.loc["CAAF", "top_repertoire"] == "p1" and row.loc["CAAF", "top_attention"] == pytest.approx(4.0)
    expected = fisher_exact([[2, 0], [0, 2]], alternative="greater").pvalue
    assert row.loc["CAAF", "fisher_p"] == pytest.approx(expected)
    assert row.loc["CFFF", "score"] == 0 and row.loc["CFFF", "attended_negative"] == 0  # uniform is not attended
    negatives = reps.assign(positive=False)  # one class alone (a control's ranking): what it attends leads
    alone = rank_sequences(AttentionPass(table["key"].to_numpy(), table["repertoire"].to_numpy(np.int32),
                                         table["weight"].to_numpy(np.float32), candidates, negatives))
    assert alone["junction_aa"].tolist()[:2] == ["CAAF", "CBBF"] and (alone["score"].iloc[:2] < 0).all()
    assert (alone["score"].iloc[2:] == 0).all()  # the ties at 0, unattended, after


def test_find_motifs_recovers_a_gapped_motif():
    rng = np.random.default_rng(1)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))

    def random_cdr3s(n: int) -> list[str]:
        return ["CAS" + "".join(rng.choice(letters, size=int(rng.integers(7, 12)))) + "F" for _ in range(n)]

    def implant(s: str) -> str:  # in the middle, 3 residues clear of each end, as the simulator does
        p = int(rng.integers(3, len(s) - 7))
        return s[:p] + "GR" + s[p + 2] + "DT" + s[p + 5:]

    foreground = [implant(s) for s in random_cdr3s(40)] + random_cdr3s(10)
    motifs = find_motifs(foreground, random_cdr3s(5000))
    assert motifs.loc[0, "motif"] == "GR.DT" and motifs.loc[0, "support"] == 40
    assert motifs.loc[0, "gaps"] == 1 and motifs.loc[0, "background_support"] < 5
    assert not motifs["motif"].isin(["R.DT", "GR.D", "G..DT"]).any()  # sub-patterns of the same sequences
    assert pattern_string(pattern_code("GR.DT")) == "GR.DT" and pattern_string(pattern_code("CA..F")) == "CA..F"
    assert motifs.attrs["patterns_tested"] > 100 and (motifs["log10_p"] <= motifs.attrs["log10_p_max"]).all()
    # the label test, by repertoire: GR.DT in 2% of each of 10 positives' sequences, none of the negatives' ...
    def repertoires(carriers: list[float]) -> list[list[str]]:
        return [[implant(s) if k < share * 500 else s for k, s in enumerate(random_cdr3s(500))] for share in carriers]

    owners = np.repeat(np.arange(10), 5)  # the 50 searched sequences: 5 from each of 10 positives
    samples = RepertoireSamples(repertoires([0.02] * 10), repertoires([0.0] * 10))
    found = find_motifs(foreground, random_cdr3s(5000), repertoires=samples, owners=owners)
    assert found.loc[0, "motif"] == "GR.DT" and found.loc[0, "positive_fraction"] == pytest.approx(0.02, abs=0.003)
    assert found.loc[0, "label_log10_p"] < found.attrs["log10_p_max"] and found.loc[0, "negative_fraction"] < 0.002
    assert found.loc[0, "repertoires"] == 8  # the 40 carriers are the first 8 positives' searched sequences
    # ... but not a pattern both classes carry alike (no signal), ...
    alike = RepertoireSamples(samples.positive, repertoires([0.02] * 10))
    nothing = find_motifs(foreground, random_cdr3s(5000), repertoires=alike, owners=owners)
    assert nothing.empty and nothing.attrs["patterns_tested"] > 100
    assert list(nothing.columns) == list(found.columns)
    # ... nor one patient's clone family (a tenth of one positive's sequences; the repertoire is the unit) ...
    one = RepertoireSamples(repertoires([0.1] + [0.0] * 9), samples.negative)
    assert find_motifs(foreground, random_cdr3s(5000), repertoires=one, owners=owners).empty
    # ... nor three positives that agree exactly on one carrier each of 100 (equal samples make ties: p is not 0)
    tied = RepertoireSamples([[implant(s) if k == 0 else s for k, s in enumerate(random_cdr3s(100))] for _ in range(3)],
                             [random_cdr3s(100) for _ in range(3)])
    assert find_motifs(foreground, random_cdr3s(5000), repertoires=tied, owners=np.repeat(np.arange(10), 5)).empty
    # ... and a pattern that one positive's top sequences alone carry is not even tested
    assert "GR.DT" not in set(find_motifs(foreground, random_cdr3s(5000), repertoires=samples,
                                          owners=np.r_[np.zeros(40, int), np.arange(1, 11)])["motif"])
    # with donors (4 samples each of the first 8 positives' donors), the unit is the donor: 2 carriers, not tested
    subjects = [f"p{k}" for k in range(10)]
    donor_of = {s: ("A" if k < 4 else "B" if k < 8 else s) for k, s in enumerate(subjects)}
    pooled = RepertoireSamples(pooled_by_donor(samples.positive, subjects, donor_of), samples.negative)
    assert [len(unit) for unit in pooled.positive] == [2000, 2000, 500, 500]
    by_donor = find_motifs(foreground, random_cdr3s(5000), repertoires=pooled,
                           owners=np.array(donor_names([subjects[k] for k in owners], donor_of)))
    assert "GR.DT" not in set(by_donor["motif"]) and by_donor.attrs["patterns_tested"] < found.attrs["patterns_tested"]


def test_a_refinement_holds_its_motif():
    """A more specific pattern stands for a motif only when it holds the motif's residues: GRDT for RDT, never an
    unrelated pattern that the same sequences happen to carry (a clone's other residues)."""
    from deeprc_hopfield.interpret.motifs import _contains

    assert _contains("GRDT", "RDT") and _contains("GR.DT", "G..DT") and _contains("SGRDTA", "R.T")
    assert not _contains("HKWMPY", "GRDT") and not _contains("RDT", "GRDT") and not _contains("GRDA", "R.T")


def _store_without_genes(folder: Path, labelled: bool = True) -> Path:
    """A 4-repertoire store whose files name no V or J gene (and, unless `labelled`, no label)."""
    rng = np.random.default_rng(0)
    name = "nogenes" if labelled else "unlabelled"
    repertoires = folder / name
    repertoires.mkdir()
    lines = ["subject_id,filename" + ",label" * labelled]
    for i in range(4):
        rows = ["sequence_id\tjunction_aa\tv_call\tj_call\tduplicate_count\tproductive"]
        rows += [f"s{k}\tCASS{''.join(rng.choice(list('ACDEFGHIKLMNPQRSTVWY'), 6))}F\t\t\t1\tT" for k in range(20)]
        (repertoires / f"r{i}.tsv").write_text("\n".join(rows) + "\n")
        lines.append(f"R{i},r{i}.tsv" + f",{i % 2}" * labelled)
    (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return ingest(folder / f"{name}.csv", repertoires, folder / f"{name}.h5", progress=False)


def test_bad_input_is_refused_in_one_line_and_nothing_is_written(trained, tmp_path):
    out = tmp_path / "out"
    old = tmp_path / "old_model"
    shutil.copytree(trained["model"], old)
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "schema_version": 99}))
    genes = _train(trained, tmp_path / "genes_model", 2, gene_embedding_dim=4)
    unlabelled = _store_without_genes(tmp_path, labelled=False)
    cases = [
        (["--model", tmp_path / "nope", "--store", trained["store"]], "model directory not found"),
        (["--model", old, "--store", trained["store"]], "model file version 99"),
        (["--model", genes, "--store", _store_without_genes(tmp_path)], "the store has none of the"),
        (["--model", trained["model"], "--store", unlabelled, "--labels", "store"],
         "--labels store: 4 repertoire(s) have no stored label 'label' (R0, R1, R2, R3); --labels auto or model"),
    ]
    for args, words in cases:
        result = run_cli("interpret", *args, "--out", out)
        assert result.returncode == 1, (args, result.stderr)
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and words in errors[0], (words, result.stderr)
        assert "Traceback" not in result.stderr
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    saved = load_model(trained["model"])
    with pytest.raises(DeepRCError, match="repertoire 'R0' has no stored label 'label'"):
        collect_attention(_scored(saved, subjects_from_store(unlabelled, saved)), "label", "1", labels="store")
    with pytest.raises(InterpretError, match="1 subject\\(s\\) not in the store, e.g. 'nobody'"):
        interpret(trained["model"], trained["store"], out, subjects={"nobody", "rep000"})
    assert not out.exists()

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DeepRCError, match="mine: exists and is not an earlier output of `deeprc-hopfield interpret`"):
        interpret(trained["model"], trained["store"], tmp_path / "mine", subjects={"rep000"})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_help_of_the_interpret_commands_and_split_without_fold(tmp_path):
    for command in ("interpret", "interpret-summary"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and f"usage: deeprc-hopfield {command}" in result.stdout
        assert ("--per-repertoire" in result.stdout and "--labels {auto,store,model}" in result.stdout
                or command == "interpret-summary")
    refused = run_cli("interpret", "--model", "m", "--store", "s.h5", "--split", "split.csv", "--out", tmp_path / "o")
    assert refused.returncode == 1 and refused.stderr.strip().endswith("--split and --fold go together")


def test_interpret_never_replaces_a_folder_it_did_not_write(trained, interpreted, tmp_path):
    """An --out that exists is refused in one line before any work: always when it is not an earlier
    interpretation (another command's output included), without --force when it is one."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    common = ["--model", trained["model"], "--store", trained["store"], "--split", trained["split"], "--fold", "0",
              "--threads", "1", "--top", "3"]
    for force in ((), ("--force",)):
        refused = run_cli("interpret", *common, "--out", mine, *force)
        assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
            f"deeprc-hopfield interpret: error: {mine}: exists and is not an earlier output of `deeprc-hopfield "
            "interpret`; it was left as it is and nothing was written (choose another --out; --force replaces "
            "only an earlier output of the same command)"]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(DeepRCError, match="not an earlier output of `deeprc-hopfield interpret-summary`"):
        summarise([interpreted], trained["store"], trained["model"], force=True)  # a model folder

    again = tmp_path / "again"
    shutil.copytree(interpreted, again)
    before = (again / "interpretation.json").read_text()
    refused = run_cli("interpret", *common, "--out", again)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        f"deeprc-hopfield interpret: error: {again}: holds an earlier output of `deeprc-hopfield interpret`; "
        "nothing was written (add --force to replace it)"]
    assert (again / "interpretation.json").read_text() == before
    with pytest.raises(DeepRCError, match="not an earlier output of `deeprc-hopfield interpret-summary`"):
        summarise([interpreted], trained["store"], again, force=True)  # an interpretation, not a summary
    (again / OUTPUT_MARKER).unlink()  # written before output markers: known by its interpretation.json
    result = run_cli("interpret", *common, "--out", again, "--force")
    assert result.returncode == 0, result.stderr
    assert json.loads((again / "interpretation.json").read_text())["settings"]["top"] == 3  # was 8
    assert output_command(again) == "interpret" and (tmp_path / "mine" / "notes.txt").is_file()


@pytest.mark.parametrize("block", [3, 64, 1 << 20])
def test_the_candidates_occurrences_found_a_block_at_a_time_are_those_of_resolving_every_sequence(monkeypatch, block):
    """Rows and keys, in the same order, as resolving every sequence's clone (missing V calls against the others)
    and keeping the wanted ones; keys with and without a V call, repeated across rows."""
    rng = np.random.default_rng(4)
    base = (rng.integers(0, MODULI[0], 40) << 31) + rng.integers(0, MODULI[1], 40)
    v = rng.integers(-1, 5, 500)
    keys = with_v(base[rng.integers(0, 40, 500)], v)
    everything, resolved = ranking._resolved(keys, v, keys, v)
    assert len(resolved) > len(keys)  # some V-less sequences resolve to several clones
    wanted = rng.choice(np.unique(resolved), 25, replace=False)
    kept = np.isin(resolved, wanted)
    monkeypatch.setattr(ranking, "BLOCK", block)
    row, key = ranking._carrying(keys, v, wanted)
    np.testing.assert_array_equal(row, everything[kept])
    np.testing.assert_array_equal(key, resolved[kept])
    row, key = ranking._carrying(keys[v >= 0], None, wanted)  # every V known
    np.testing.assert_array_equal(key, keys[v >= 0][np.isin(keys[v >= 0], wanted)])


def _relabelled_store(trained: dict, folder: Path, name: str, relabel: Callable[[pd.DataFrame], object],
                      negatives_only: bool = False) -> Path:
    """A store of the trained model's held-out fold (fold 0) with the label `relabel(metadata)` (a value per row;
    `negatives_only`: only the repertoires labelled 0)."""
    meta = trained["meta"][trained["folds"] == 0]
    if negatives_only:
        meta = meta[meta["label"] == 0]
    table = meta.assign(label=relabel(meta))[["subject_id", "filename", "label"]]
    table.to_csv(folder / f"{name}.csv", index=False)
    return ingest(folder / f"{name}.csv", trained["repertoires"], folder / f"{name}.h5", progress=False)


def test_a_store_label_coded_unlike_the_model_classes_is_refused_before_any_work(trained, tmp_path):
    cmv = _relabelled_store(trained, tmp_path, "cmv", lambda meta: meta["label"].map({0: "CMV-", 1: "CMV+"}))
    ages = _relabelled_store(trained, tmp_path, "ages", lambda meta: 30.5 + 1.25 * np.arange(len(meta)))
    out = tmp_path / "out"
    for store, words in ((cmv, "the store's label 'label' (binary) has values CMV-, CMV+, none of the model's "
                               "classes (0, 1)"),
                         (ages, "the store's label 'label' (numeric) has values ")):
        result = run_cli("interpret", "--model", trained["model"], "--store", store, "--out", out, "--threads", "1")
        assert result.returncode == 1, result.stderr
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and words in errors[0] and str(store) in errors[0], result.stderr
        assert "--labels model takes the model's calls" in errors[0] and "Traceback" not in result.stderr
        assert "attention of" not in result.stderr  # refused before the model's pass
        assert not out.exists()
    # the way on that the message names: the model's calls
    done = interpret(trained["model"], cmv, out, top=1, motif_top=10, labels="model")
    info = json.loads((done / "interpretation.json").read_text())
    assert info["label_source"] == "predicted" and sum(info["repertoires"].values()) == 10


def test_no_positive_repertoire_is_warned_of_in_the_log_and_the_notes(trained, tmp_path):
    store = _relabelled_store(trained, tmp_path, "negatives", lambda meta: meta["label"], negatives_only=True)
    out = tmp_path / "out"
    result = run_cli("interpret", "--model", trained["model"], "--store", store, "--out", out, "--threads", "1")
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "WARNING no repertoire was positive" in line]
    assert len(warned) == 1 and "label=1; all 5 negative" in warned[0], result.stderr
    assert "motifs.tsv and contributions.tsv are empty" in warned[0]
    info = json.loads((out / "interpretation.json").read_text())
    assert info["repertoires"] == {"positive": 0, "negative": 5} and info["notes"] == [warned[0].split("WARNING ")[1]]
    assert pd.read_csv(out / "motifs.tsv", sep="\t").empty and pd.read_csv(out / "contributions.tsv", sep="\t").empty
    assert (pd.read_csv(out / "ranked_sequences.tsv", sep="\t")["score"] <= 0).all()


def test_the_report_shows_ranked_sequences_with_a_positive_score_only(interpreted):
    """A score of 0 (no more attention in positives than in negatives) is no finding: the report's table leaves
    such rows out and says how many, rather than pad its 30 rows with them."""
    from deeprc_hopfield.interpret import read_interpretation
    from deeprc_hopfield.report import TOP_RANKED, interpretation_section

    ranked = read_interpretation(interpreted).ranked.head(TOP_RANKED)
    section = interpretation_section(interpreted)
    rows = section.split("<h3>")[0].count("<tr>") - 1  # the ranked table's body rows (its header is one)
    assert rows == int((ranked["score"] > 0).sum()) > 0
    unscored = int((ranked["score"] <= 0).sum())
    assert (f"{unscored} of the {len(ranked)} top-ranked sequences have no positive score" in section) == (unscored > 0)


def test_a_donor_attending_in_several_samples_is_one_finding_of_the_fisher_test():
    """Two positive samples of donor A attend CAAF: by repertoires 2 of 2 positives against 0 of 2 negatives, by
    donors 1 of 1 against 0 of 2 (p 1/3, not 1/6); the score adds donor A once, by its samples' mean evidence."""
    table = pd.DataFrame({"junction_aa": ["CAAF", "CBBF", "CAAF", "CBBF", "CAAF", "CBBF", "CCCF", "CBBF"],
                          "repertoire": [0, 0, 1, 1, 2, 2, 3, 3],
                          "weight": [2.0, 0.5, 4.0, 0.5, 0.5, 2.5, 1.0, 3.0]})
    table["v_call"], table["j_call"] = "TRBV1", "TRBJ1"
    table["key"] = pd.util.hash_pandas_object(table[KEY_COLUMNS], index=False).to_numpy()
    reps = pd.DataFrame({"subject_id": ["p0", "p1", "n0", "n1"], "positive": [True, True, False, False],
                         "probability": 0.5, "n_sequences": 2, "donor": ["A", "A", "B", "C"]})

    def ranked(grouped: bool) -> pd.DataFrame:
        return rank_sequences(AttentionPass(table["key"].to_numpy(), table["repertoire"].to_numpy(np.int32),
                                            table["weight"].to_numpy(np.float32), table.assign(duplicate_count=1.0),
                                            reps, grouped=grouped)).set_index("junction_aa")

    by_donor, by_repertoire = ranked(True), ranked(False)
    assert set(ranking.DONOR_COLUMNS).isdisjoint(by_repertoire.columns)
    assert by_repertoire.loc["CAAF", "fisher_p"] == pytest.approx(fisher_exact([[2, 0], [0, 2]], "greater").pvalue)
    assert by_donor.loc["CAAF", ranking.DONOR_COLUMNS].tolist() == [1, 1, 1, 0]  # carried by donor B, not attended
    assert by_donor.loc["CAAF", "fisher_p"] == pytest.approx(fisher_exact([[1, 0], [0, 2]], "greater").pvalue)
    assert by_donor.loc["CBBF", ranking.DONOR_COLUMNS].tolist() == [1, 2, 0, 2]  # attended in both negative donors
    assert by_repertoire.loc["CAAF", "score"] == pytest.approx(1 + 2)  # w 2 and 4 in A's two samples
    assert by_donor.loc["CAAF", "score"] == pytest.approx((1 + 2) / 2)  # donor A once: the mean of its samples
    assert by_donor.loc["CAAF", "n_positive"] == 2  # the repertoire counts stay
    columns = by_donor.reset_index().columns.tolist()
    assert columns.index("n_donors_positive") == columns.index("attended_negative") + 1


def test_a_donor_s_sequence_in_the_top_of_several_samples_is_searched_once_for_motifs():
    foreground = pd.DataFrame({"subject_id": ["s1", "s2", "s3", "s3", "D1"], "rank": [1, 1, 1, 2, 1],
                               "junction_aa": ["CASGRDTF", "CASGRDTF", "CASGRDTF", "CASKKF", "CASGRDTF"],
                               "v_call": "TRBV1", "j_call": "TRBJ1", "attention": 5.0})
    donor_of = {"s1": "D1", "s2": "D1"}  # s3 has no group; D1 is also a subject's id, not D1's
    searched = searched_foreground(foreground, donor_of)
    assert searched["subject_id"].tolist() == ["s1", "s3", "s3", "D1"]  # s2 repeats its donor's sequence
    assert searched["donor"].nunique() == 3  # D1, s3, and subject D1 (a donor of its own, not group D1)
    assert len(searched_foreground(foreground, None)) == 5 and searched_foreground(foreground, None)["donor"].nunique() == 4


def _grouped_split(trained: dict, path: Path, size: int) -> tuple[Path, dict[str, str]]:
    """The easy cohort's split with a `group` column: `size` repertoires a donor, of one fold and class."""
    split = pd.read_csv(trained["split"], dtype={"subject_id": str})
    label = split["subject_id"].map(dict(zip(trained["meta"]["subject_id"].astype(str), trained["meta"]["label"])))
    rank = split.groupby([split["fold"], label]).cumcount() // size
    split["group"] = "f" + split["fold"].astype(str) + "_c" + label.astype(str) + "_d" + rank.astype(str)
    split.to_csv(path, index=False)
    return path, dict(zip(split["subject_id"], split["group"]))


def test_a_grouped_split_makes_the_donor_the_unit_of_interpretation(trained, tmp_path):
    split_path, donor_of = _grouped_split(trained, tmp_path / "grouped_split.csv", 2)
    out = tmp_path / "grouped"
    result = run_cli("interpret", "--model", trained["model"], "--store", trained["store"], "--split", split_path,
                     "--fold", "0", "--out", out, "--threads", "1", "--top", "2", "--motif-alpha", "0.5")
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "interpretation.json").read_text())
    held_out = info["positive_subjects"] + info["negative_subjects"]
    assert info["donor_of"] == {s: donor_of[s] for s in held_out}
    for side in ("positive", "negative"):
        assert info["donors"][side] == len({donor_of[s] for s in info[f"{side}_subjects"]}) < info["repertoires"][side]
    ranked = pd.read_csv(out / "ranked_sequences.tsv", sep="\t")
    a, c = ranked["attended_donors_positive"], ranked["attended_donors_negative"]
    assert (a <= ranked["attended_positive"]).all() and (c <= ranked["attended_negative"]).all() and a.max() > 0
    top = ranked.iloc[0]
    donors = info["donors"]
    table = [[a[0], donors["positive"] - a[0]], [c[0], donors["negative"] - c[0]]]
    assert top["fisher_p"] == pytest.approx(fisher_exact(table, "greater").pvalue)
    found = pd.read_csv(out / "motifs.tsv", sep="\t")  # 3 donors a side: Welch's test cannot pass over ~300 patterns
    assert found.empty and any("positive donors' sequences" in note for note in info["notes"]), info["notes"]
    assert any("are 3 and 3 donors" in note for note in info["notes"])
    section = interpretation_section(out)
    assert "attended_donors_positive" in section and f"{donors['positive']} positive" in section

    # the workflow's summary of such folds counts donors too; two folds sharing a donor fall back to repertoires
    summary = summarise([out], trained["store"], tmp_path / "summary", top=2, motif_alpha=0.5)
    merged = json.loads((summary / "interpretation.json").read_text())
    assert merged["donors"] == donors
    again = pd.read_csv(summary / "ranked_sequences.tsv", sep="\t")
    assert np.allclose(again["fisher_p"], ranked["fisher_p"])
    assert merged_donors([info, info], ["a", "b"]) == (None, None, f"donor '{sorted(info['donor_of'].values())[0]}' "
                                                       "is in a and b")
    ungrouped = {k: v for k, v in info.items() if k not in ("donors", "donor_of")}
    assert merged_donors([info, ungrouped], ["a", "b"])[2] == "b counted repertoires (interpreted without groups)"


def test_grouped_fold_rankings_merge_into_the_whole(trained, tmp_path):
    saved = load_model(trained["model"])
    split = pd.read_csv(trained["split"], dtype={"subject_id": str})
    donor_of = _grouped_split(trained, tmp_path / "split.csv", 3)[1]

    def ranking_of(subjects: set[str]) -> tuple[pd.DataFrame, AttentionPass]:
        attention = collect_attention(_scored(saved, subjects_from_store(trained["store"], saved, subjects)),
                                      "label", "1", groups=donor_of)
        return rank_sequences(attention), attention

    folds = [set(split.loc[split["fold"] == k, "subject_id"]) for k in (0, 1)]
    (a, first), (b, second) = ranking_of(folds[0]), ranking_of(folds[1])
    whole, both = ranking_of(folds[0] | folds[1])
    n = [int(x.repertoires["positive"].sum()) for x in (first, second)]
    donors = tuple(map(sum, zip(first.donors_by_side(), second.donors_by_side())))
    assert donors == both.donors_by_side()
    merged = merge_rankings([a, b], sum(n), len(first.repertoires) + len(second.repertoires) - sum(n),
                            donors).set_index(KEY_COLUMNS)
    whole = whole.set_index(KEY_COLUMNS).loc[merged.index]
    for column in [*ranking.DONOR_COLUMNS, "fisher_p", "log_odds_ratio", "score"]:
        assert np.allclose(merged[column], whole[column], rtol=1e-5), column


def test_group_column_takes_the_donors_from_the_store_metadata(trained, tmp_path):
    held_out = sorted(set(pd.read_csv(trained["split"], dtype={"subject_id": str}).query("fold == 0")["subject_id"]))
    common = ["interpret", "--model", trained["model"], "--store", trained["store"], "--subjects", *held_out,
              "--threads", "1", "--top", "1"]
    wrong = run_cli(*common, "--group-column", "donor", "--out", tmp_path / "wrong")
    assert wrong.returncode == 1 and "--group-column 'donor' is not a column" in wrong.stderr
    assert "Traceback" not in wrong.stderr and not (tmp_path / "wrong").exists()
    # the label as the group: every positive one donor, every negative another (what a column of donors gives)
    result = run_cli(*common, "--group-column", "label", "--out", tmp_path / "by_label")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "by_label" / "interpretation.json").read_text())
    assert info["donors"] == {"positive": 1, "negative": 1} and set(info["donor_of"]) == set(held_out)
