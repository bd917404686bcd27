"""The simulator's rough public clones: V-call noise, families of one-substitution variants, clones drawn
from a list of known receptors, positives split by signal (--mixed-positives), and the refusals of bad
values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeprc_hopfield.errors import DeepRCError, SimulationError
from deeprc_hopfield.genes import gene_family, normalise_gene
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.simulate import SimulationSettings, background_model, simulate, validate
from deeprc_hopfield.simulate.cohort import (ROUGH_TRUTH_COLUMNS, SIGNAL_GROUP_COLUMNS, TRUTH_COLUMNS, cohort_plan,
                                             signal_groups)
from deeprc_hopfield.simulate.public import chance_public, other_genes
from deeprc_hopfield.simulate.settings import END_MARGIN
from deeprc_hopfield.store import RepertoireStore

CLONES = dict(n_repertoires=40, sequences_per_repertoire=300, witness_rate=0.01, seed=5, public_clones=20,
              public_rate=0.8)


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _translate(nt: str) -> str:
    from Bio.Seq import Seq

    return str(Seq(nt).translate())


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "deeprc_hopfield", "simulate", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _rows(out: Path, truth: pd.DataFrame) -> pd.DataFrame:
    """The repertoire-file row of each truth row (AIRR files), in truth order."""
    files = {name: _table(out / "repertoires" / name).set_index("sequence_id") for name in truth["filename"].unique()}
    return pd.DataFrame([files[f].loc[s] for f, s in zip(truth["filename"], truth["sequence_id"])])


# --- V-call noise --------------------------------------------------------------------------------
def test_v_noise_share_kinds_and_files(tmp_path):
    out = simulate(SimulationSettings(**CLONES, public_v_noise=0.5), tmp_path / "sim")
    truth = _table(out / "truth" / "implanted.tsv")
    assert list(truth.columns) == TRUTH_COLUMNS + ROUGH_TRUTH_COLUMNS
    clones = truth[truth["kind"] == "public_clone"]
    assert len(clones) > 250  # 20 positives x 20 clones x 0.8
    noised = clones[clones["v_noise"] != ""]
    assert abs(len(noised) / len(clones) - 0.5) < 0.08
    # a third each, but the V of a family with no other gene is written as its family or as none
    has_other = np.array([bool(other_genes("TRB", v)) for v in noised["true_v_call"]])
    expected = {"gene": has_other.sum() / 3, "family": (has_other / 3 + ~has_other / 2).sum()}
    expected["missing"] = expected["family"]
    counts = noised["v_noise"].value_counts()
    assert set(counts.index) == {"gene", "family", "missing"}
    for kind, mean in expected.items():
        assert abs(counts[kind] - mean) < 3 * np.sqrt(mean), (kind, counts[kind], mean)
    # the files hold what the truth says was written, and the truth what the clone has
    written = _rows(out, clones)
    assert (written["v_call"].to_numpy() == clones["v_call"].to_numpy()).all()
    assert (written["junction_aa"].to_numpy() == clones["junction_aa"].to_numpy()).all()
    kept = clones[clones["v_noise"] == ""]
    assert (kept["v_call"] == kept["true_v_call"]).all()
    for _, row in noised.iterrows():
        true, shown = row["true_v_call"], row["v_call"]
        if row["v_noise"] == "missing":
            assert shown == ""
        elif row["v_noise"] == "family":
            assert shown == gene_family(true) and "*" not in shown
        else:
            assert gene_family(shown) == gene_family(true) and shown.split("*")[0] != true.split("*")[0]
    # each clone keeps one true V in every occurrence
    assert (clones.groupby("signal")["true_v_call"].nunique() == 1).all()
    realised = (out / "truth" / "parameters.yaml").read_text()
    assert "public_v_noise: 0.5" in realised and f"v_noised: {len(noised)}" in realised


def test_v_noise_changes_only_the_v_calls_of_noised_rows(tmp_path):
    plain = simulate(SimulationSettings(**CLONES), tmp_path / "plain")
    rough = simulate(SimulationSettings(**CLONES, public_v_noise=0.3), tmp_path / "rough")
    truth = _table(rough / "truth" / "implanted.tsv")
    noised = set(truth.loc[truth["v_noise"] != "", "sequence_id"])
    assert noised
    for name in sorted(p.name for p in (plain / "repertoires").iterdir()):
        a, b = _table(plain / "repertoires" / name), _table(rough / "repertoires" / name)
        assert a.drop(columns="v_call").equals(b.drop(columns="v_call"))
        differ = set(a.loc[a["v_call"] != b["v_call"], "sequence_id"])
        assert differ <= noised
    plain_truth = _table(plain / "truth" / "implanted.tsv")
    assert list(plain_truth.columns) == TRUTH_COLUMNS  # the defaults write what they always did
    assert not (plain / "truth" / "public_clones.tsv").exists()


@pytest.mark.parametrize("fmt", ["airr", "immunoseq"])
def test_noised_v_calls_are_ingested_as_gene_family_or_missing(tmp_path, fmt):
    out = simulate(SimulationSettings(**{**CLONES, "n_repertoires": 12}, public_v_noise=0.9, fmt=fmt),
                   tmp_path / "sim")
    if fmt == "immunoseq":
        header = (out / "repertoires" / "rep000.tsv").read_text().split("\n")[0].split("\t")
        assert header[4:7] == ["v_family", "v_gene", "j_gene"]
    store_path = ingest(out / "metadata.csv", out / "repertoires", tmp_path / "cohort.h5", progress=False)
    truth = _table(out / "truth" / "implanted.tsv")
    noised = truth[truth["v_noise"] != ""]
    assert set(noised["v_noise"]) == {"gene", "family", "missing"}
    meta = pd.read_csv(out / "metadata.csv", dtype=str)
    with RepertoireStore(store_path) as store:
        for subject, rows in noised.groupby("subject_id"):
            stored = store.table(meta.index[meta["subject_id"] == subject][0])
            for _, row in rows.iterrows():
                v = stored.loc[stored["junction_aa"] == row["junction_aa"], "v_call"].astype(object)
                v = {None if pd.isna(x) else str(x) for x in v}
                expected = {"missing": None, "family": gene_family(row["true_v_call"]),
                            "gene": normalise_gene(row["v_call"])}[row["v_noise"]]
                assert expected in v, (row.to_dict(), v)


def test_signal_pool_receptors_get_v_noise_too(tmp_path):
    block = background_model("TRB").generate(200, np.random.default_rng(3))
    listed = pd.DataFrame({"junction_aa": block.junction_aa, "v_call": block.v_call,
                           "j_call": block.j_call}).drop_duplicates("junction_aa").head(40)
    listed.to_csv(tmp_path / "list.tsv", sep="\t", index=False)
    out = simulate(SimulationSettings(n_repertoires=30, sequences_per_repertoire=200, witness_rate=0.0, seed=2,
                                      signal_pool=str(tmp_path / "list.tsv"), receptors_per_positive=8.0,
                                      pool_sharing="uniform", public_v_noise=0.4), tmp_path / "sim")
    truth = _table(out / "truth" / "implanted.tsv")
    receptors = truth[truth["kind"].isin(["pool_receptor", "chance_receptor"])]
    assert len(receptors) > 100
    assert abs((receptors["v_noise"] != "").mean() - 0.4) < 0.1


def test_a_call_of_several_v_genes_is_written_in_immunoseqs_style_throughout(tmp_path):
    """VDJdb lists some receptors with two V genes (`TRBV6-2,TRBV6-3`): an immunoSEQ file writes each in its style."""
    block = background_model("TRB").generate(200, np.random.default_rng(3))
    listed = pd.DataFrame({"junction_aa": block.junction_aa, "v_call": "TRBV6-2,TRBV6-3",
                           "j_call": block.j_call}).drop_duplicates("junction_aa").head(20)
    listed.to_csv(tmp_path / "list.tsv", sep="\t", index=False)
    out = simulate(SimulationSettings(n_repertoires=6, sequences_per_repertoire=100, witness_rate=0.0, seed=2,
                                      signal_pool=str(tmp_path / "list.tsv"), receptors_per_positive=8.0,
                                      fmt="immunoseq"), tmp_path / "sim")
    genes = pd.concat([_table(path)["v_gene"] for path in sorted((out / "repertoires").glob("*.tsv*"))])
    several = genes[genes.str.contains(",", na=False)]
    assert len(several) > 0 and set(several) == {"TCRBV06-02,TCRBV06-03"}


# --- families of variants ------------------------------------------------------------------------
def test_public_clones_are_families_one_substitution_apart(tmp_path):
    k = 5
    out = simulate(SimulationSettings(**CLONES, public_variants=k), tmp_path / "sim")
    members = _table(out / "truth" / "public_clones.tsv")
    assert len(members) == CLONES["public_clones"] * k and members["junction_aa"].is_unique
    for _, family in members.groupby("clone"):
        assert family["member"].astype(int).tolist() == list(range(k))
        founder = family["junction_aa"].iloc[0]
        assert family[["v_call", "j_call"]].nunique().tolist() == [1, 1]
        for variant in family["junction_aa"].iloc[1:]:
            assert len(variant) == len(founder)
            differ = [i for i, (a, b) in enumerate(zip(founder, variant)) if a != b]
            assert len(differ) == 1 and END_MARGIN <= differ[0] < len(founder) - END_MARGIN
    truth = _table(out / "truth" / "implanted.tsv")
    clones = truth[truth["kind"] == "public_clone"]
    family_of = dict(zip(members["junction_aa"], members["clone"]))
    founders = members[members["member"] == "0"].set_index("clone")["junction_aa"]
    # every occurrence is a member of its clone's family, and the truth names the clone
    assert (clones["implanted"].map(family_of) == clones["clone"]).all()
    assert (clones["signal"] == clones["clone"].map(founders)).all()
    # members are drawn with equal chance: every member of every family turns up, none dominates
    counts = clones["implanted"].value_counts()
    assert set(counts.index) == set(members["junction_aa"][members["positives"].astype(int) > 0])
    assert clones["clone"].nunique() == CLONES["public_clones"]
    share_founder = (clones["implanted"] == clones["signal"]).mean()
    assert 0.1 < share_founder < 0.32
    # public_clones.tsv counts what implanted.tsv lists; files hold the members, nucleotides translate
    assert members["positives"].astype(int).sum() == len(clones)
    assert (members["negatives"] == "0").all()
    written = _rows(out, clones)
    assert (written["junction_aa"].to_numpy() == clones["implanted"].to_numpy()).all()
    assert all(_translate(nt) == aa for nt, aa in zip(written["junction"], written["junction_aa"]))


def test_variants_and_noise_keep_other_streams_and_threads(tmp_path):
    settings = SimulationSettings(**{**CLONES, "n_repertoires": 8}, public_variants=3, public_v_noise=0.5,
                                  compress=True)
    runs = [_files(simulate(settings, tmp_path / name, threads=threads)) for name, threads in (("a", 1), ("b", 2))]
    assert runs[0] == runs[1] and "truth/public_clones.tsv" in runs[0]
    as_dict = settings.as_dict()
    assert as_dict["public_variants"] == 3 and as_dict["public_v_noise"] == 0.5
    assert not {"public_variants", "public_v_noise", "public_clone_list"} & set(SimulationSettings(**CLONES).as_dict())
    # the same rows are chosen, only public-clone rows change
    plain = simulate(SimulationSettings(**{**CLONES, "n_repertoires": 8}, compress=True), tmp_path / "plain")
    families = simulate(SimulationSettings(**{**CLONES, "n_repertoires": 8}, public_variants=3, compress=True),
                        tmp_path / "families")
    a = _table(plain / "truth" / "implanted.tsv")
    b = _table(families / "truth" / "implanted.tsv")
    assert a["sequence_id"].tolist() == b["sequence_id"].tolist()
    assert a["signal"].tolist() == b["signal"].tolist()


# --- clones from a list --------------------------------------------------------------------------
def _clone_list(path: Path, n: int = 30) -> pd.DataFrame:
    block = background_model("TRB").generate(4 * n, np.random.default_rng(8))
    table = pd.DataFrame({"junction_aa": block.junction_aa, "v_call": [v.split("*")[0] for v in block.v_call],
                          "j_call": [j.split("*")[0] for j in block.j_call]}).drop_duplicates("junction_aa").head(n)
    table["epitope"] = ["NLVPMVATV" if i % 2 else "TPRVTGGGAM" for i in range(n)]
    extra = pd.DataFrame({"junction_aa": ["CAVRDSNYQLIW", "CASSLGQAYEQYF"], "v_call": ["TRAV1-2", ""],
                          "j_call": ["TRAJ33", "TRBJ2-7"], "epitope": ["x", "y"]})
    pd.concat([table, extra]).to_csv(path, sep="\t", index=False)
    return table


def test_public_clones_drawn_from_a_list(tmp_path):
    listed = _clone_list(tmp_path / "cmv.tsv")
    out = simulate(SimulationSettings(**{**CLONES, "public_clones": 8}, public_clone_list=str(tmp_path / "cmv.tsv"),
                                      public_variants=2), tmp_path / "sim")
    members = _table(out / "truth" / "public_clones.tsv")
    founders = members[members["member"] == "0"]
    assert len(founders) == 8 and (members["source"] == "cmv.tsv").all()
    by_cdr3 = listed.set_index("junction_aa")
    assert set(founders["junction_aa"]) <= set(listed["junction_aa"])  # no TRA row, no row without a V
    assert (founders["v_call"].to_numpy() == by_cdr3.loc[founders["junction_aa"], "v_call"].to_numpy()).all()
    assert (founders["epitope"].to_numpy() == by_cdr3.loc[founders["junction_aa"], "epitope"].to_numpy()).all()
    truth = _table(out / "truth" / "implanted.tsv")
    clones = truth[truth["kind"] == "public_clone"]
    assert set(clones["signal"]) <= set(founders["junction_aa"]) and len(clones) > 50
    written = _rows(out, clones)
    assert all(_translate(nt) == aa for nt, aa in zip(written["junction"], written["junction_aa"]))
    assert "public_clone_list:" in (out / "truth" / "parameters.yaml").read_text()


def test_public_clones_from_a_vdjdb_export(tmp_path):
    listed = _clone_list(tmp_path / "plain.tsv", n=6)
    vdjdb = pd.DataFrame({"complex.id": 0, "Gene": "TRB", "CDR3": listed["junction_aa"],
                          "V": [v + "*01" for v in listed["v_call"]], "J": [j + "*01" for j in listed["j_call"]],
                          "Species": "HomoSapiens", "MHC A": "HLA-A*02:01", "Epitope": "NLVPMVATV",
                          "Epitope gene": "pp65", "Epitope species": "CMV"})
    tra = pd.DataFrame({"complex.id": 0, "Gene": ["TRA"], "CDR3": ["CAVRDSNYQLIW"], "V": ["TRAV1-2*01"],
                        "J": ["TRAJ33*01"], "Species": "HomoSapiens", "MHC A": "HLA-A*02:01",
                        "Epitope": "NLVPMVATV", "Epitope gene": "pp65", "Epitope species": "CMV"})
    pd.concat([vdjdb, tra]).to_csv(tmp_path / "SearchTable-2026.tsv", sep="\t", index=False)
    out = simulate(SimulationSettings(**{**CLONES, "public_clones": 6},
                                      public_clone_list=str(tmp_path / "SearchTable-2026.tsv")), tmp_path / "sim")
    members = _table(out / "truth" / "public_clones.tsv")
    assert sorted(members["junction_aa"]) == sorted(listed["junction_aa"])
    assert (members["epitope"] == "NLVPMVATV").all() and members["v_call"].str.startswith("TRBV").all()


def test_a_list_too_short_is_refused_before_writing(tmp_path):
    _clone_list(tmp_path / "cmv.tsv", n=5)
    with pytest.raises(DeepRCError, match="--public-clones 8 is more than the 5 receptors"):
        simulate(SimulationSettings(**{**CLONES, "public_clones": 8}, public_clone_list=str(tmp_path / "cmv.tsv")),
                 tmp_path / "sim")
    assert not (tmp_path / "sim").exists()


# --- refusals ------------------------------------------------------------------------------------
BASE = ["--n-repertoires", "4", "--sequences-per-repertoire", "100", "--witness-rate", "0.01"]
WITH_CLONES = [*BASE, "--public-clones", "3", "--public-rate", "0.5"]


@pytest.mark.parametrize("args, message", [
    ([*WITH_CLONES, "--public-v-noise", "1.5"], "--public-v-noise must be a number in [0, 1], got 1.5"),
    ([*WITH_CLONES, "--public-v-noise", "-0.1"], "--public-v-noise must be a number in [0, 1]"),
    ([*WITH_CLONES, "--public-v-noise", "nan"], "--public-v-noise must be a number in [0, 1]"),
    ([*BASE, "--public-v-noise", "0.2"], "--public-v-noise needs public clones (--public-clones) or a signal pool"),
    ([*WITH_CLONES, "--public-variants", "0"], "--public-variants must be a whole number from 1 to 100, got 0"),
    ([*WITH_CLONES, "--public-variants", "101"], "--public-variants must be a whole number from 1 to 100"),
    ([*BASE, "--public-variants", "3"], "--public-variants needs public clones (--public-clones)"),
    ([*BASE, "--public-clone-list", "cmv.tsv"], "--public-clone-list needs public clones (--public-clones)"),
    ([*BASE, "--public-rate", "0.6"], "--public-rate needs public clones (--public-clones N)"),
    ([*WITH_CLONES, "--public-clone-list", "missing.tsv"], "reference file not found"),
])
def test_bad_rough_options_are_refused_in_one_line(tmp_path, args, message):
    _refused_in_one_line(tmp_path, args, message)


def _refused_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    result = _cli("--out", str(out), *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr
    assert not out.exists()


def test_rough_options_are_in_help():
    result = subprocess.run([sys.executable, "-m", "deeprc_hopfield", "simulate", "--help"], capture_output=True,
                            text=True, timeout=60)
    for option in ("--public-v-noise", "--public-variants", "--public-clone-list"):
        assert option in result.stdout


# --- positives split by signal (--mixed-positives) ----------------------------------------------
MIXED = dict(n_repertoires=20, sequences_per_repertoire=200, witness_rate=0.02, seed=3, public_clones=5,
             public_rate=0.6)


def test_mixed_positives_carry_one_signal_each(tmp_path):
    settings = SimulationSettings(**MIXED, mixed_positives=0.3)
    out = simulate(settings, tmp_path / "sim")
    groups = _table(out / "truth" / "signal_groups.tsv")
    assert list(groups.columns) == SIGNAL_GROUP_COLUMNS
    meta = pd.read_csv(out / "metadata.csv", dtype=str)
    assert groups[["subject_id", "filename", "label"]].equals(meta)
    by_label = groups.groupby("label")["signal"].value_counts().to_dict()
    assert by_label == {("0", "none"): 10, ("1", "motif"): 7, ("1", "public_clone"): 3}  # round(0.3 x 10)
    truth = _table(out / "truth" / "implanted.tsv")
    signal_of = dict(zip(groups["subject_id"], groups["signal"]))
    kinds = truth.groupby(truth["subject_id"].map(signal_of))["kind"].value_counts().to_dict()
    assert set(kinds) == {("motif", "motif"), ("public_clone", "public_clone")}  # none in negatives
    # signal_groups.tsv counts what implanted.tsv lists; every positive carries its signal
    counted = truth.groupby(["subject_id", "kind"]).size()
    for _, row in groups.iterrows():
        for kind, column in (("public_clone", "public_clone_implants"), ("motif", "motif_implants")):
            assert int(row[column]) == counted.get((row["subject_id"], kind), 0)
    positives = groups[groups["label"] == "1"]
    assert (positives["public_clone_implants"].astype(int) + positives["motif_implants"].astype(int) > 0).all()
    # the files: no clone of the cohort in a motif-only positive, no implanted motif in a clone-only one
    clones = set(zip(truth.loc[truth["kind"] == "public_clone", "junction_aa"],
                     truth.loc[truth["kind"] == "public_clone", "v_call"]))
    for _, row in positives.iterrows():
        rep = _table(out / "repertoires" / row["filename"])
        carried = set(zip(rep["junction_aa"], rep["v_call"])) & clones
        assert bool(carried) == (row["signal"] == "public_clone" and row["public_clone_implants"] != "0")
    realised = (out / "truth" / "parameters.yaml").read_text()
    assert "mixed_positives: 0.3" in realised and "public_clone_only: 3" in realised and "motif_only: 7" in realised
    # seeded: another seed draws other groups, more threads the same bytes
    again = simulate(settings, tmp_path / "again", threads=2)
    assert _files(again) == _files(out)
    other = simulate(SimulationSettings(**{**MIXED, "seed": 4}, mixed_positives=0.3), tmp_path / "other")
    assert _table(other / "truth" / "signal_groups.tsv")["signal"].tolist() != groups["signal"].tolist()


def test_mixed_positives_leave_negatives_and_the_default_unchanged(tmp_path):
    plain_settings = SimulationSettings(**MIXED)
    assert "mixed_positives" not in plain_settings.as_dict()
    assert SimulationSettings(**MIXED, mixed_positives=0.0).as_dict()["mixed_positives"] == 0.0
    plain = simulate(plain_settings, tmp_path / "plain")
    assert not (plain / "truth" / "signal_groups.tsv").exists()
    assert "mixed_positives" not in (plain / "truth" / "parameters.yaml").read_text()
    # every positive carries both signals without the option
    truth = _table(plain / "truth" / "implanted.tsv")
    assert truth.groupby("subject_id")["kind"].nunique().eq(2).sum() >= 8
    mixed = simulate(SimulationSettings(**MIXED, mixed_positives=0.5), tmp_path / "mixed")
    assert (mixed / "metadata.csv").read_bytes() == (plain / "metadata.csv").read_bytes()
    meta = pd.read_csv(plain / "metadata.csv", dtype=str)
    for name in meta.loc[meta["label"] == "0", "filename"]:
        assert (mixed / "repertoires" / name).read_bytes() == (plain / "repertoires" / name).read_bytes()


@pytest.mark.parametrize("share, n_positive, clone_only", [
    (0.3, 10, 3), (0.5, 10, 5), (0.01, 10, 1), (0.99, 10, 9), (0.0, 10, 0), (1.0, 10, 10), (0.5, 2, 1),
    (0.9, 1, 1), (0.4, 1, 0),
])
def test_mixed_share_is_rounded_with_one_of_each_group(share, n_positive, clone_only):
    settings = SimulationSettings(n_repertoires=20, sequences_per_repertoire=10, witness_rate=0.1,
                                  positive_fraction=n_positive / 20, public_clones=2, public_rate=0.5,
                                  mixed_positives=share)
    assert settings.n_positive == n_positive and settings.n_clone_only == clone_only
    labels = cohort_plan(settings)[1]
    groups = signal_groups(settings, labels)
    assert (groups == "public_clone").sum() == clone_only and (groups == "motif").sum() == n_positive - clone_only
    assert (groups[labels == 0] == "none").all()


@pytest.mark.parametrize("share, kind", [(0.0, "motif"), (1.0, "public_clone")])
def test_mixed_share_zero_or_one_gives_one_signal_to_all(tmp_path, share, kind):
    out = simulate(SimulationSettings(**{**MIXED, "n_repertoires": 8}, mixed_positives=share), tmp_path / "sim")
    assert set(_table(out / "truth" / "implanted.tsv")["kind"]) == {kind}


def test_clone_only_positives_get_motifs_at_the_noise_rate(tmp_path):
    out = simulate(SimulationSettings(**{**MIXED, "n_repertoires": 16}, noise_rate=0.01, mixed_positives=0.5),
                   tmp_path / "sim")
    groups = _table(out / "truth" / "signal_groups.tsv")
    motifs = groups.groupby("signal")["motif_implants"].apply(lambda c: c.astype(int).mean())
    assert motifs["public_clone"] < 0.6 * motifs["motif"]  # noise 0.01 against witnesses 0.02
    assert abs(motifs["public_clone"] - 2) < 1.5 and abs(motifs["none"] - 2) < 1.5  # 200 x 0.01


@pytest.mark.parametrize("args, message", [
    ([*WITH_CLONES, "--mixed-positives", "1.5"], "--mixed-positives must be a number in [0, 1], got 1.5"),
    ([*WITH_CLONES, "--mixed-positives", "-0.1"], "--mixed-positives must be a number in [0, 1]"),
    ([*WITH_CLONES, "--mixed-positives", "nan"], "--mixed-positives must be a number in [0, 1]"),
    ([*BASE, "--mixed-positives", "0.5"], "--mixed-positives needs public clones"),
])
def test_bad_mixed_positives_are_refused_in_one_line(tmp_path, args, message):
    _refused_in_one_line(tmp_path, args, message)


def test_mixed_positives_need_a_motif_and_are_in_help():
    with pytest.raises(SimulationError, match=r"--mixed-positives needs a motif \(--witness-rate above 0\)"):
        validate(SimulationSettings(**{**MIXED, "witness_rate": 0.0}, signal_pool="pool.tsv", mixed_positives=0.5))
    with pytest.raises(SimulationError, match="--mixed-positives must be a number"):
        validate(SimulationSettings(**MIXED, mixed_positives=True))
    result = subprocess.run([sys.executable, "-m", "deeprc_hopfield", "simulate", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert "--mixed-positives F" in result.stdout and "signal_groups.tsv" in result.stdout


# --- chance-public background --------------------------------------------------------------------
def test_background_shares_cdr3s_by_chance_as_documented():
    """The figures quoted in simulate/public.py's docstring and the README (40 x 5,000 TRB, seed 0)."""
    counts = chance_public(40, 5000)
    assert counts == {"sequences": 200_000, "distinct": 197_628, "shared_2": 1_883, "shared_5": 20, "shared_10": 0,
                      "max_repertoires": 7, "rows_shared": 4_175, "shared_2_with_v": 203}
