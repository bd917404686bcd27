"""Known receptors in training and prediction (`train --reference`): used when they help, ignored when not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deeprc_hopfield.infer import predict, subjects_from_store
from deeprc_hopfield.reference import ReferenceOptions
from deeprc_hopfield.saved_model import REFERENCE_FILE, load_model
from deeprc_hopfield.simulate import SimulationSettings
from deeprc_hopfield.simulate.background import background_model
from deeprc_hopfield.training import train
from tests.conftest import simulated_store

UPDATES = 30


def _olga_receptors(n: int, seed: int) -> pd.DataFrame:
    block = background_model("TRB").generate(3 * n, np.random.default_rng(seed))
    return pd.DataFrame({"junction_aa": block.junction_aa, "v_call": [v.split("*")[0] for v in block.v_call],
                         "j_call": block.j_call}).drop_duplicates("junction_aa").head(n).reset_index(drop=True)


@pytest.fixture(scope="module")
def pool_cohort(tmp_path_factory) -> dict:
    """60 repertoires x 300 sequences; each positive carries ~4 receptors of a 20-receptor pool drawn
    from a 60-receptor list, every repertoire ~0.3 of the list by chance: too rare to learn from scratch."""
    root = tmp_path_factory.mktemp("pool")
    listed = _olga_receptors(60, seed=5)
    listed.to_csv(root / "list.tsv", sep="\t", index=False)
    settings = SimulationSettings(n_repertoires=60, sequences_per_repertoire=300, witness_rate=0.0, seed=3,
                                  signal_pool=str(root / "list.tsv"), pool_size=20, receptors_per_positive=4.0,
                                  receptors_per_negative=0.3, pool_sharing="uniform")
    cohort = simulated_store(root, settings, folds=3)
    truth = pd.read_csv(root / "cohort" / "truth" / "signal_pool.tsv", sep="\t", dtype=str)
    pool = truth.loc[truth["in_pool"] == "1", ["junction_aa", "v_call", "j_call"]].assign(
        epitope="NLVPMVATV", antigen="CMV")
    pool.to_csv(root / "known.tsv", sep="\t", index=False)
    unrelated = _olga_receptors(40, seed=11).assign(epitope="GILGFVFTL", antigen="InfluenzaA")
    unrelated.to_csv(root / "unrelated.tsv", sep="\t", index=False)
    return {**cohort, "known": root / "known.tsv", "unrelated": root / "unrelated.tsv"}


def _train(cohort: dict, out: Path, reference: Path | None) -> Path:
    options = ReferenceOptions(reference) if reference is not None else None
    return train(cohort["store"], out, split=cohort["split"], fold=0, device="cpu", n_updates=UPDATES, seed=1,
                 progress=False, reference=options)


def _held_out_predictions(cohort: dict, model: Path) -> pd.DataFrame:
    saved = load_model(model)
    held_out = set(cohort["meta"]["subject_id"].astype(str)[cohort["folds"] == 0])
    table, _ = predict([saved], subjects_from_store(cohort["store"], saved, held_out), torch.device("cpu"))
    return table


def test_a_useful_reference_is_used_stored_and_scores_held_out_patients(pool_cohort, tmp_path):
    model = _train(pool_cohort, tmp_path / "model", pool_cohort["known"])
    config = json.loads((model / "config.json").read_text())
    used = config["training"]["reference"]
    assert used["used"] and used["radius"] in (0, 1) and used["n_receptors"] == 20
    assert used["sha256"] and used["name"] == "known.tsv" and used["inner_auc"] >= 0.7
    assert config["model"]["reference_size"] == 20
    assert len(pd.read_csv(model / REFERENCE_FILE, sep="\t")) == 20
    pool_cohort["known"].rename(pool_cohort["known"].with_suffix(".moved"))  # predict needs the model only
    try:
        predictions = _held_out_predictions(pool_cohort, model)
    finally:
        pool_cohort["known"].with_suffix(".moved").rename(pool_cohort["known"])
    auc = roc_auc_score(predictions["true_label"].astype(int), predictions["probability"])
    assert auc >= 0.9, predictions
    # attend marks what is known: the receptors attended first in positives are the reference's
    saved = load_model(model)
    positives = set(pool_cohort["meta"]["subject_id"].astype(str)[(pool_cohort["folds"] == 0)
                                                                  & (pool_cohort["meta"]["label"] == 1)])
    _, attended = predict([saved], subjects_from_store(pool_cohort["store"], saved, positives), torch.device("cpu"),
                          top=3)
    first = attended[attended["rank"] == 1]
    assert (first["known_epitope"] == "NLVPMVATV").mean() >= 0.8 and set(first["known_antigen"]) <= {"CMV", ""}


def test_an_unrelated_reference_changes_nothing(pool_cohort, tmp_path):
    plain = _held_out_predictions(pool_cohort, _train(pool_cohort, tmp_path / "plain", None))
    model = _train(pool_cohort, tmp_path / "unrelated", pool_cohort["unrelated"])
    config = json.loads((model / "config.json").read_text())
    assert config["training"]["reference"]["used"] is False and config["model"]["reference_size"] == 0
    assert load_model(model).model.reference is None
    with_unrelated = _held_out_predictions(pool_cohort, model)
    np.testing.assert_array_equal(plain["probability"].to_numpy(), with_unrelated["probability"].to_numpy())


def test_a_missing_reference_file_is_refused_before_any_work(pool_cohort, tmp_path):
    from tests.test_cli import run_cli

    out = tmp_path / "model"
    result = run_cli("train", "--store", pool_cohort["store"], "--out", out, "--updates", "2",
                     "--reference", tmp_path / "nowhere.tsv", "--reference-chain", "trb")
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "nowhere.tsv" in err[0]
    assert not out.exists() and not Path(str(out) + ".checkpoint").exists()


def test_a_reference_of_another_chain_is_refused_before_any_work(pool_cohort, tmp_path):
    from tests.test_cli import run_cli

    igh = tmp_path / "igh.tsv"
    igh.write_text("junction_aa\tv_call\tj_call\tepitope\nCARDYW\tIGHV3-23\tIGHJ4\tX\nCAKGGYW\tIGHV1-69\tIGHJ4\tX\n")
    out = tmp_path / "model"
    result = run_cli("train", "--store", pool_cohort["store"], "--out", out, "--updates", "2", "--reference", igh)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("none of its receptors is of the store's chain TRB (by the store's V genes; the reference holds IGH 2)"
            in result.stderr)
    assert not out.exists() and not Path(str(out) + ".checkpoint").exists()


def test_interpretation_and_report_name_what_is_known(pool_cohort, tmp_path):
    from deeprc_hopfield.interpret import interpret, read_interpretation
    from deeprc_hopfield.report import attended_summary, known_share_note

    model = _train(pool_cohort, tmp_path / "model", pool_cohort["known"])
    held_out = set(pool_cohort["meta"]["subject_id"].astype(str)[pool_cohort["folds"] == 0])
    folder = interpret(model, pool_cohort["store"], tmp_path / "interpretation", device="cpu", subjects=held_out)
    ranked = read_interpretation(folder).ranked
    top = ranked.head(10)
    assert (top["known_epitope"].fillna("") == "NLVPMVATV").mean() >= 0.5, top
    assert set(ranked["known_antigen"].fillna("")) <= {"CMV", ""}
    note = known_share_note(top, "the 10 top-ranked sequences")
    assert "Known specificity" in note and "% of the 10 top-ranked sequences" in note
    attended = pd.DataFrame({"repertoire_id": ["a", "b"], "rank": [1, 1], "attention": [0.5, 0.4],
                             "junction_aa": ["CASSF", "CASSG"], "v_call": ["TRBV5-1", None], "j_call": [None, None],
                             "known_epitope": ["NLVPMVATV", ""], "known_antigen": ["CMV", ""]})
    assert attended_summary(attended)["known_epitope"].tolist() == ["NLVPMVATV", ""]


def test_a_human_reference_on_a_mouse_store_is_refused_in_one_line_before_any_work(mouse_cohort, tmp_path):
    """The shipped human vdjdb-cmv-trb on a mouse store: the reference's species filter is the store's, which leaves
    none of its receptors; a --reference-species other than the store's is refused too. No model is written."""
    from conftest import deeprc_cli
    from deeprc_hopfield.ingest import ingest

    from deeprc_hopfield.data import SHIPPED_LISTS

    store = ingest(*mouse_cohort, tmp_path / "mouse.h5", progress=False, species="mouse")
    copy = tmp_path / "vdjdb_copy.tsv"  # the same receptors in a file of the user's: its species column decides
    copy.write_bytes(SHIPPED_LISTS["vdjdb-cmv-trb"].read_bytes())
    for extra, says in ((["vdjdb-cmv-trb"], "the shipped list vdjdb-cmv-trb holds human receptors, but the store is of "
                                            "mouse (ingest --species): give a reference of mouse receptors"),
                        ([copy], "vdjdb_copy.tsv: none of its receptors is of the store's species, mouse (ingest "
                                 "--species; the file has HomoSapiens 247): give a reference of mouse receptors"),
                        (["vdjdb-cmv-trb", "--reference-species", "HomoSapiens"], "--reference-species HomoSapiens "
                         "(the workflow: reference: species:), but the store is of mouse (ingest --species): give a "
                         "reference of mouse receptors")):
        result = deeprc_cli("train", "--store", store, "--out", tmp_path / "model", "--updates", 1, "--reference",
                            *extra)
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
        assert errors[0].startswith("deeprc-hopfield train: error: ") and errors[0].endswith(says), errors[0]
        assert not (tmp_path / "model").exists()
