"""The clones file (`deeprc-hopfield clones`): one reading of the cohort serves every training fold and the
baselines, with the same models and predictions as collecting the clones in each job."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import simulated_store

from deeprc_hopfield.baselines import cross_validate
from deeprc_hopfield.cli import main
from deeprc_hopfield.clone_rules import CloneRule
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.shared_clones import SharedClones, collect_clones, read_clones, read_held_clones
from deeprc_hopfield.simulate import SimulationSettings
from deeprc_hopfield.split import Split
from deeprc_hopfield.store import RepertoireStore
from deeprc_hopfield.training import train


@pytest.fixture(scope="module")
def rough_cohort(tmp_path_factory) -> dict:
    """36 repertoires x 300 sequences with public clones as families of one-substitution variants, half of their
    occurrences with another, family-only or missing V call; a split of 3 folds, a short training config and the
    clones file made from them."""
    root = tmp_path_factory.mktemp("shared")
    cohort = simulated_store(root, SimulationSettings(
        n_repertoires=36, sequences_per_repertoire=300, witness_rate=0.003, seed=8, public_clones=6,
        public_rate=0.6, public_v_noise=0.5, public_variants=3, nucleotides=False), folds=3)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"n_updates": 6, "evaluate_every": 3, "checkpoint_every": 3,
                                                   "sample_size": 200, "clone_pgen": False}}))
    clones = collect_clones(cohort["store"], cohort["split"], root / "clones.h5", "label", config, workers=2)
    return {**cohort, "config": config, "clones": clones}


def test_the_file_holds_each_folds_fitting_and_training_rows_and_every_repertoire(rough_cohort):
    """Exact clones per part (a missing V call resolves within it), one-substitution clones once."""
    with h5py.File(rough_cohort["clones"], "r") as h5:
        parts = {name: group["rows"][()] for name, group in h5["parts"].items()}
        exact, every = set(h5["parts/fold0.fit"]), set(h5["every"])
    assert set(parts) == {"all"} | {f"fold{k}.{kind}" for k in range(3) for kind in ("fit", "training")}
    assert np.array_equal(parts["all"], np.arange(36))
    for k in range(3):
        training = np.flatnonzero(rough_cohort["folds"] != k)
        assert np.array_equal(parts[f"fold{k}.training"], training)
        assert set(parts[f"fold{k}.fit"]) < set(training) and len(parts[f"fold{k}.fit"]) >= 0.7 * len(training)
    assert exact == {f"{level}.0" for level in ("family", "gene", "none")} | {"rows"}
    assert every == {f"{level}.1" for level in ("family", "gene", "none")}  # one collection serves every part


@pytest.mark.parametrize("block", [1, 50, 1 << 24])
def test_a_part_reads_the_one_substitution_clones_of_its_rows_only_as_reading_them_whole_gives(rough_cohort, block):
    """Read a few carriers at a time (spans of one row, of several, of all), rows in any order: the clones, keys,
    carriers and holders of reading every repertoire's whole and keeping those the rows hold."""
    rng = np.random.default_rng(0)
    with h5py.File(rough_cohort["clones"], "r") as h5:
        for name in h5["every"]:
            group, rule = h5["every"][name], CloneRule(name.split(".")[0], int(name.split(".")[1]))
            for rows in (np.arange(36), np.flatnonzero(rough_cohort["folds"] != 1), rng.permutation(36)[:20]):
                whole = read_clones(group, rule, 36).held_by(rows).rows(rows)
                part = read_held_clones(group, rule, rows, block=block, with_held=True)
                assert np.array_equal(part.keys, whole.keys) and len(part.keys) > 0
                for mine, theirs in ((part.incidence, whole.incidence), (part.held, whole.held)):
                    assert mine.shape == theirs.shape and (mine != theirs).nnz == 0 and mine.nnz > 0


def test_training_with_the_file_makes_the_model_training_without_it_makes(rough_cohort, tmp_path, caplog):
    """The same weights (sha256) and clone choice, and the log says the clones were read, not collected."""
    torch.set_num_threads(1)
    made = {}
    for name, clones in (("collected", None), ("read", rough_cohort["clones"])):
        with caplog.at_level(logging.INFO, logger="deeprc_hopfield"):
            caplog.clear()
            model = train(rough_cohort["store"], tmp_path / name, rough_cohort["config"], ["label"],
                          split=rough_cohort["split"], fold=1, device="cpu", progress=False, clones=clones)
        made[name] = json.loads((model / "config.json").read_text())
        read = [r.getMessage() for r in caplog.records if "are read from" in r.getMessage()]
        assert bool(read) == (clones is not None)
    assert made["read"]["training"]["clone_rule"]["radius"] in (0, 1)
    assert made["read"]["weights_sha256"] == made["collected"]["weights_sha256"]
    assert made["read"]["training"] == made["collected"]["training"]


def test_the_baselines_with_the_file_predict_what_they_predict_without_it(rough_cohort):
    runs = [cross_validate(rough_cohort["store"], rough_cohort["split"], ("public_clones",), "label", use_pgen=False,
                           clones=clones)["public_clones"] for clones in (None, rough_cohort["clones"])]
    assert runs[0]["probability"].notna().all()
    assert runs[0].equals(runs[1])


def test_a_file_of_another_seed_split_or_store_is_refused_in_one_line(rough_cohort, tmp_path):
    split = Split.read(rough_cohort["split"])
    with RepertoireStore(rough_cohort["store"]) as store:
        with pytest.raises(DeepRCError, match="made for a different seed;"):
            SharedClones.open(rough_cohort["clones"], store, "label", 1, split)
        table = split.table.copy()
        table["fold"] = (table["fold"] + 1) % 3  # the same rows, other fold numbers: the baselines' part differs
        table.loc[0, "fold"] = (table.loc[0, "fold"] + 1) % 3
        with pytest.raises(DeepRCError, match="made for a different split;"):
            SharedClones.open(rough_cohort["clones"], store, "label", 0, Split(table, tmp_path / "other.csv"))
    other = simulated_store(tmp_path, SimulationSettings(n_repertoires=12, sequences_per_repertoire=50,
                                                         witness_rate=0.02, seed=1, nucleotides=False), folds=3)
    with RepertoireStore(other["store"]) as store:
        with pytest.raises(DeepRCError, match="made for a different store, subjects or label values, split;") as caught:
            SharedClones.open(rough_cohort["clones"], store, "label", 0, Split.read(other["split"]))
    assert "\n" not in str(caught.value)
    (tmp_path / "not.h5").write_text("text")
    with RepertoireStore(other["store"]) as store, pytest.raises(DeepRCError, match="cannot read the clones file"):
        SharedClones.open(tmp_path / "not.h5", store, "label", 0, Split.read(other["split"]))
    assert main(["baselines", "--store", str(other["store"]), "--split", str(other["split"]), "--out",
                 str(tmp_path / "b"), "--clones", str(rough_cohort["clones"])]) != 0
    assert not (tmp_path / "b").exists()


def test_a_job_whose_repertoires_the_file_lacks_collects_its_own(rough_cohort, caplog):
    with RepertoireStore(rough_cohort["store"]) as store, \
            SharedClones.open(rough_cohort["clones"], store, "label", 0, Split.read(rough_cohort["split"])) as shared:
        with caplog.at_level(logging.WARNING, logger="deeprc_hopfield"):
            assert shared.clones(np.arange(5), []) is None
        assert "holds no part of these 5 repertoires" in caplog.text
        rows = np.flatnonzero(rough_cohort["folds"] != 2)
        read = list(shared.clones(rows, [CloneRule("none", 1), CloneRule("gene", 0)]))
    assert [c.rule for c in read] == [CloneRule("none", 1), CloneRule("gene", 0)]
    assert all(c.incidence.shape[0] == len(rows) and c.held is None for c in read)  # a job restricts them no more
    assert read[0].incidence.nnz > 0


def test_the_clones_command_writes_the_file_and_refuses_a_bad_split(rough_cohort, tmp_path, capsys):
    out = tmp_path / "clones.h5"
    assert main(["clones", "--store", str(rough_cohort["store"]), "--split", str(rough_cohort["split"]),
                 "--out", str(out), "--config", str(rough_cohort["config"]), "--label-column", "label",
                 "--threads", "2"]) == 0
    with h5py.File(out, "r") as h5:
        assert len(h5["parts"]) == 7
    again = ["clones", "--store", str(rough_cohort["store"]), "--split", str(rough_cohort["split"]), "--out"]
    made = out.stat().st_mtime_ns
    assert main([*again, str(out)]) == 1 and out.stat().st_mtime_ns == made  # an earlier file: only with --force
    assert f"{out}: holds an earlier output of `deeprc-hopfield clones`" in capsys.readouterr().err
    notes = tmp_path / "notes.h5"
    notes.write_text("my notes\n")
    assert main([*again, str(notes), "--force"]) == 1 and notes.read_text() == "my notes\n"  # never another file
    assert main([*again, str(out), "--config", str(rough_cohort["config"]), "--label-column", "label", "--force"]) == 0
    assert out.stat().st_mtime_ns != made  # replaced, as the workflow's job does
    bad = tmp_path / "split.csv"
    bad.write_text("subject_id,fold\nnobody,0\n")
    assert main(["clones", "--store", str(rough_cohort["store"]), "--split", str(bad), "--out",
                 str(tmp_path / "other.h5")]) != 0
    assert not (tmp_path / "other.h5").exists() and not list(tmp_path.glob(".other.h5*"))


def test_a_label_that_is_not_binary_gives_a_file_without_parts(tmp_path):
    """The workflow makes the clones file whatever the label; for a numeric one (no clone memory, no public-clone
    test) it reads nothing and a job finds no part in it."""
    import pandas as pd

    from deeprc_hopfield.ingest import ingest
    from deeprc_hopfield.simulate import simulate

    simulate(SimulationSettings(n_repertoires=8, sequences_per_repertoire=40, witness_rate=0.05, seed=3,
                                nucleotides=False), tmp_path / "sim")
    meta = pd.read_csv(tmp_path / "sim/metadata.csv")
    meta["age"] = np.arange(len(meta)) * 3.5
    meta.drop(columns="label").to_csv(tmp_path / "meta.csv", index=False)
    store = ingest(tmp_path / "meta.csv", tmp_path / "sim/repertoires", tmp_path / "s.h5", label_columns=["age"],
                   progress=False)
    pd.DataFrame({"subject_id": meta["subject_id"].astype(str), "fold": np.arange(len(meta)) % 2}).to_csv(
        tmp_path / "split.csv", index=False)
    out = collect_clones(store, tmp_path / "split.csv", tmp_path / "c.h5", "age")
    with h5py.File(out, "r") as h5:
        assert len(h5["parts"]) == 0 and len(h5["every"]) == 0
    with RepertoireStore(store) as opened, \
            SharedClones.open(out, opened, "age", 0, Split.read(tmp_path / "split.csv")) as shared:
        assert shared.clones(np.arange(4), []) is None


def test_training_takes_the_file_with_a_split_only_and_a_tiny_fold_is_left_out(rough_cohort, tmp_path):
    """Without --split the file's parts are not this training's: refused before any work. A part whose inner folds
    the test cannot make (here the training rows of one class hold a single repertoire) is left out of the file,
    and its job, finding no part, collects and finds the test refused, as without the file."""
    from deeprc_hopfield.training.config import TrainingError

    with pytest.raises(TrainingError, match="--clones goes with --split and --fold"):
        train(rough_cohort["store"], tmp_path / "m", rough_cohort["config"], ["label"], device="cpu",
              progress=False, clones=rough_cohort["clones"])
    assert not (tmp_path / "m").exists()
    meta = rough_cohort["meta"]
    positives = meta["subject_id"].astype(str)[meta["label"].to_numpy() == 1].tolist()
    table = Split.read(rough_cohort["split"]).table.copy()
    table["fold"] = np.where(table["subject_id"].isin(positives[1:]) | (np.arange(len(table)) % 2 == 0), 0, 1)
    table.to_csv(tmp_path / "split.csv", index=False)  # fold 1 holds one positive: fold 0's training rows too
    out = collect_clones(rough_cohort["store"], tmp_path / "split.csv", tmp_path / "c.h5", "label",
                         rough_cohort["config"])
    with h5py.File(out, "r") as h5:
        assert set(h5["parts"]) == {"fold1.fit", "fold1.training"}  # "all" fits within fold 0's training rows


def test_a_clones_file_replaced_while_a_job_reads_it_is_refused(rough_cohort, tmp_path):
    """A part found in the file the job opened is never read from another put in its place, whether replaced before
    the part is asked for (a training job asks for its refit's hours after opening) or between two rules."""
    path = tmp_path / "clones.h5"
    split = Split.read(rough_cohort["split"])
    rows = np.flatnonzero(rough_cohort["folds"] != 0)
    rules = [CloneRule("family", 0), CloneRule("family", 1)]

    def replace_it() -> None:
        replacement = tmp_path / "other.h5"
        replacement.write_bytes(rough_cohort["clones"].read_bytes())
        replacement.replace(path)

    for read_first in (0, 1):
        path.write_bytes(rough_cohort["clones"].read_bytes())
        with RepertoireStore(rough_cohort["store"]) as store, \
                SharedClones.open(path, store, "label", 0, split) as shared:
            if not read_first:
                replace_it()
            reading = shared.clones(rows, rules)
            if read_first:
                assert next(reading).incidence.shape[0] == len(rows)
                replace_it()
            with pytest.raises(DeepRCError, match="replaced or rewritten while this job read it"):
                next(reading)


def test_a_grouped_split_s_clones_file_serves_its_jobs_as_collecting_them_does(rough_cohort, tmp_path):
    """With donors of two samples (a `group` column in the split), the file's parts are cut for fits whose inner
    folds keep donors whole: the baselines and training read from it what they would collect themselves, and a file
    made for the split without groups is refused for it."""
    split = Split.read(rough_cohort["split"])
    table = split.table.copy()
    with RepertoireStore(rough_cohort["store"]) as store:
        labels = dict(zip(store.subject_ids, np.asarray(store.label("label").values).astype(str)))
    table["label"] = table["subject_id"].map(labels)
    table["group"] = ("d" + table["fold"].astype(str) + table["label"]
                      + (table.groupby(["fold", "label"]).cumcount() // 2).astype(str))  # same fold, same class
    grouped = tmp_path / "grouped.csv"
    table[["subject_id", "fold", "group"]].to_csv(grouped, index=False)
    with RepertoireStore(rough_cohort["store"]) as store, pytest.raises(DeepRCError, match="different split"):
        SharedClones.open(rough_cohort["clones"], store, "label", 0, Split.read(grouped))
    clones = collect_clones(rough_cohort["store"], grouped, tmp_path / "grouped.h5", "label", rough_cohort["config"],
                            workers=2)
    runs = [cross_validate(rough_cohort["store"], grouped, ("public_clones",), "label", use_pgen=False,
                           clones=file)["public_clones"] for file in (None, clones)]
    assert runs[0]["probability"].notna().all() and runs[0].equals(runs[1])
    torch.set_num_threads(1)
    made = [json.loads((train(rough_cohort["store"], tmp_path / name, rough_cohort["config"], ["label"], split=grouped,
                              fold=1, device="cpu", progress=False, clones=file) / "config.json").read_text())
            for name, file in (("collected", None), ("read", clones))]
    assert made[0]["weights_sha256"] == made[1]["weights_sha256"] and made[0]["training"] == made[1]["training"]
