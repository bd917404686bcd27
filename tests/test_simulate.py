"""The simulator: OLGA-like backgrounds, implanted truth, determinism, refusals and the ingest round trip."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deeprc_hopfield.errors import InputFormatError, SimulationError
from deeprc_hopfield.genes import normalise_gene, normalise_genes
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.io import OUTPUT_MARKER
from deeprc_hopfield.simulate import SimulationSettings, background_model, max_motif_length, simulate
from deeprc_hopfield.simulate.background import olga_model
from deeprc_hopfield.simulate.implant import CODONS
from deeprc_hopfield.simulate.settings import END_MARGIN
from deeprc_hopfield.store import RepertoireStore

SMALL = dict(n_repertoires=6, sequences_per_repertoire=1500, witness_rate=0.01, seed=11)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _pattern(motif: str) -> re.Pattern:
    return re.compile(motif.replace(".", "[A-Z]"))


def _translate(nt: str) -> str:
    from Bio.Seq import Seq

    return str(Seq(nt).translate())


# --- background ----------------------------------------------------------------------------------
@pytest.mark.parametrize("chain", ["TRB", "TRA", "IGH"])
def test_background_is_productive_and_olga_plausible(chain):
    import olga.generation_probability as generation_probability

    model = background_model(chain)
    block = model.generate(3000, np.random.default_rng(5))
    assert len(block) == 3000
    for nt, aa in zip(block.junction[:500], block.junction_aa[:500]):
        assert _translate(nt) == aa and aa[0] == "C" and aa[-1] in "FVW" and "*" not in aa
    assert set(block.v_call) <= set(model.v_names) and set(block.j_call) <= set(model.j_names)
    # every call is one that ingest reads as an IMGT gene, or no call (OLGA's not-localised IGHV4-NL1)
    assert all(normalise_gene(name) for name in {*block.v_call, *block.j_call} - {""})
    # OLGA's own generation probability of every sampled junction is positive: our sampler only
    # produces what OLGA's model can produce.
    genomic, generative = olga_model(chain)
    pgen = getattr(generation_probability, f"GenerationProbability{model.kind}")(generative, genomic)
    n_checked = 4 if chain == "IGH" else 40  # OLGA's IGH Pgen takes seconds per sequence
    assert all(pgen.compute_nt_CDR3_pgen(nt) > 0 for nt in block.junction[:n_checked])


def test_background_length_distribution_matches_olga_generator():
    import olga.sequence_generation as sequence_generation

    model = background_model("TRB")
    genomic, generative = olga_model("TRB")
    reference = sequence_generation.SequenceGenerationVDJ(generative, genomic)
    np.random.seed(0)
    theirs = np.array([len(reference.gen_rnd_prod_CDR3()[1]) for _ in range(4000)])
    ours = np.array([len(s) for s in model.generate(20000, np.random.default_rng(0)).junction_aa])
    # means of ~15 residues, sd ~2.7: 4,000 draws give a standard error of ~0.05
    assert abs(ours.mean() - theirs.mean()) < 0.25
    assert abs(np.median(ours) - np.median(theirs)) <= 1


def test_codon_table_is_the_standard_code():
    for aa, codons in CODONS.items():
        assert codons and all(_translate(c) == aa for c in codons)
    assert sum(len(c) for c in CODONS.values()) == 61


# --- determinism ---------------------------------------------------------------------------------
def test_same_arguments_same_bytes_whatever_threads(tmp_path):
    settings = SimulationSettings(**SMALL, motifs=("GR.DT", "ALQG"), substitution_rate=0.1, noise_rate=0.001,
                                  size_spread=0.3, public_clones=3, public_rate=0.5, compress=True)
    runs = [simulate(settings, tmp_path / name, threads=threads) for name, threads in
            (("a", 1), ("b", 1), ("c", 2))]
    first = _files(runs[0])
    assert len(first) == 6 + 3 + 1  # repertoires, metadata and truth, the output marker
    assert _files(runs[1]) == first
    assert _files(runs[2]) == first
    for name, data in first.items():
        if name.endswith(".gz"):
            assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
            assert data[3] & 0x08 == 0  # no file name stored
            gzip.decompress(data)
    assert not list(tmp_path.glob(".*partial"))


def test_different_seed_gives_different_cohort(tmp_path):
    a = simulate(SimulationSettings(**SMALL), tmp_path / "a")
    b = simulate(SimulationSettings(**{**SMALL, "seed": 12}), tmp_path / "b")
    assert (a / "repertoires" / "rep000.tsv").read_bytes() != (b / "repertoires" / "rep000.tsv").read_bytes()


# --- truth ---------------------------------------------------------------------------------------
def test_every_truth_row_is_in_its_file_and_carries_its_motif(tmp_path):
    motifs = ("GR.DT", "ALQG")
    out = simulate(SimulationSettings(**SMALL, motifs=motifs, public_clones=2, public_rate=0.5), tmp_path / "c")
    meta = pd.read_csv(out / "metadata.csv", dtype=str)
    assert list(meta.columns) == ["subject_id", "filename", "label"]
    truth = _table(out / "truth" / "implanted.tsv")
    assert set(truth["kind"]) == {"motif", "public_clone"}
    assert set(truth.loc[truth["kind"] == "motif", "signal"]) == set(motifs)
    tables = {f: _table(out / "repertoires" / f).set_index("sequence_id") for f in meta["filename"]}
    for row in truth.itertuples():
        file_row = tables[row.filename].loc[row.sequence_id]
        aa = file_row["junction_aa"]
        assert aa == row.junction_aa and file_row["v_call"] == row.v_call and file_row["j_call"] == row.j_call
        if row.kind == "motif":
            start = int(row.position)
            assert END_MARGIN <= start <= len(aa) - END_MARGIN - len(row.signal)
            assert _pattern(row.signal).fullmatch(aa[start:start + len(row.signal)])
            assert row.implanted == "".join(m if m == "." else a for m, a in zip(row.signal, aa[start:]))
    for table in tables.values():  # the nucleotide column never contradicts the amino acids
        assert [_translate(nt) for nt in table["junction"]] == table["junction_aa"].tolist()
    labels = dict(zip(meta["subject_id"], meta["label"]))
    assert all(labels[s] == label for s, label in zip(truth["subject_id"], truth["label"]))
    positives = {s for s, label in labels.items() if label == "1"}
    assert len(positives) == 3
    assert set(truth.loc[truth["kind"] == "motif", "subject_id"]) == positives  # at least one per positive


def test_realised_witness_rate_is_binomial(tmp_path):
    n, rate = 5000, 0.02
    out = simulate(SimulationSettings(n_repertoires=4, sequences_per_repertoire=n, witness_rate=rate, seed=3),
                   tmp_path / "w")
    truth = _table(out / "truth" / "implanted.tsv")
    per_repertoire = truth.groupby("subject_id").size()
    assert len(per_repertoire) == 2
    sd = np.sqrt(n * rate * (1 - rate))
    assert all(abs(k - n * rate) <= 4 * sd for k in per_repertoire)
    assert abs(per_repertoire.sum() - 2 * n * rate) <= 4 * np.sqrt(2) * sd


def test_background_rate_of_a_motif_is_reported_and_a_common_one_warned_about(tmp_path, caplog):
    """GR.DT is common in OLGA's TRB backgrounds (~0.2%), so at a 0.1% witness rate it is a weak signal."""
    import yaml

    settings = SimulationSettings(n_repertoires=4, sequences_per_repertoire=3000, witness_rate=0.001, seed=5,
                                  motifs=("GR.DT", "WCW.MW"))
    with caplog.at_level("WARNING"):
        out = simulate(settings, tmp_path / "b")
    realised = yaml.safe_load((out / "truth" / "parameters.yaml").read_text())["realised"]
    rates = realised["motif_background_rate"]
    negatives = pd.read_csv(out / "metadata.csv", dtype=str).query("label == '0'")
    junctions = pd.concat([_table(out / "repertoires" / f)["junction_aa"] for f in negatives["filename"]])
    observed = junctions.str.contains("GR.DT").mean()  # negatives are untouched background
    assert 0.0005 < rates["GR.DT"] < 0.01 and abs(rates["GR.DT"] - observed) < 0.003
    assert rates["WCW.MW"] == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("GR.DT" in m and "rarer motif" in m for m in warned)
    assert not any("WCW.MW" in m for m in warned)


def test_negatives_carry_no_motif_at_noise_rate_zero(tmp_path):
    motif = "WCW.MW"  # never seen in OLGA backgrounds, so a scan of the files tells implanted from chance
    out = simulate(SimulationSettings(**{**SMALL, "witness_rate": 0.02}, motifs=(motif,)), tmp_path / "n")
    meta = pd.read_csv(out / "metadata.csv", dtype=str)
    truth = _table(out / "truth" / "implanted.tsv")
    pattern = _pattern(motif)
    for subject, filename, label in meta.itertuples(index=False):
        carriers = _table(out / "repertoires" / filename)["junction_aa"].map(lambda s: bool(pattern.search(s)))
        assert carriers.sum() == (truth["subject_id"] == subject).sum()
        if label == "0":
            assert carriers.sum() == 0


def test_substitutions_change_about_the_given_share_of_residues(tmp_path):
    out = simulate(SimulationSettings(**{**SMALL, "witness_rate": 0.05}, motifs=("GRDT",), substitution_rate=0.25),
                   tmp_path / "s")
    implanted = _table(out / "truth" / "implanted.tsv")["implanted"]
    changed = np.mean([a != b for text in implanted for a, b in zip(text, "GRDT")])
    assert 0.18 < changed < 0.32  # ~900 residues


# --- refusals ------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "deeprc_hopfield", "simulate", *args], capture_output=True,
                          text=True, env=env, timeout=120)


BASE = ["--n-repertoires", "4", "--sequences-per-repertoire", "200", "--witness-rate", "0.01", "--seed", "1"]


@pytest.mark.parametrize("change, message", [
    ({"--witness-rate": "1.5"}, "witness rate must be in (0, 1]"),
    ({"--witness-rate": "0"}, "witness rate must be in (0, 1]"),
    ({"--n-repertoires": "1"}, "at least 2 repertoires"),
    ({"--motifs": ""}, "is empty"),
    ({"--motifs": "GRDT,,ALQG"}, "motif 2 is empty"),
    ({"--motifs": "GRDTGRDTGRDT"}, "TRB CDR3s allow at most"),
    ({"--motifs": "GRXT"}, "'X'"),
    ({"--species": "mouse", "--chain": "IGH"}, "a mouse cohort's chain is one of TRB, TRA"),
    ({"--species": "mouse", "--public-clone-list": "vdjdb-cmv-trb"}, "--public-clone-list with --species mouse: "
                                                                      "receptor lists are read as human receptors"),
])
def test_bad_parameters_are_refused_in_one_line(tmp_path, change, message):
    args = dict(zip(BASE[::2], BASE[1::2]))
    args.update(change)
    out = tmp_path / "out"
    result = _cli("--out", str(out), *[x for kv in args.items() for x in kv])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = _cli("--out", str(out), *BASE)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "--force" in result.stderr
    assert f"{out}: exists and is not an earlier output of `deeprc-hopfield simulate`" in result.stderr
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    # --force never deletes a folder that is not an earlier simulation, nor another command's output
    result = _cli("--out", str(out), *BASE, "--force")
    assert result.returncode == 1 and (out / "mine.txt").read_text() == "keep me"
    model = tmp_path / "model"
    model.mkdir()
    (model / OUTPUT_MARKER).write_text('{"command": "train"}')
    assert _cli("--out", str(model), *BASE, "--force").returncode == 1 and len(list(model.iterdir())) == 1
    # ... but replaces one that is
    sim = tmp_path / "sim"
    assert _cli("--out", str(sim), *BASE).returncode == 0
    before = _files(sim)
    result = _cli("--out", str(sim), *BASE)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
    assert f"{sim}: holds an earlier output of `deeprc-hopfield simulate`" in result.stderr and _files(sim) == before
    assert _cli("--out", str(sim), *BASE[:-1], "2", "--force").returncode == 0
    assert _files(sim) != before and sorted(p.name for p in tmp_path.iterdir()) == ["model", "out", "sim"]
    # a simulation written before output markers is known by its truth/parameters.yaml
    (sim / OUTPUT_MARKER).unlink()
    assert _cli("--out", str(sim), *BASE).returncode == 1
    assert _cli("--out", str(sim), *BASE, "--force").returncode == 0 and _files(sim) == before


def test_library_refuses_before_writing(tmp_path):
    with pytest.raises(SimulationError, match="public-rate"):
        simulate(SimulationSettings(**SMALL, public_clones=3), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    longest, median = max_motif_length("TRB")
    assert longest == median - 2 * END_MARGIN and 6 <= longest <= 12


# --- round trip ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, compress", [("airr", False), ("immunoseq", True)])
def test_simulate_ingest_store_round_trip(tmp_path, fmt, compress):
    out = simulate(SimulationSettings(**SMALL, fmt=fmt, compress=compress, nucleotides=not compress, size_spread=0.4),
                   tmp_path / "sim")
    store_path = ingest(out / "metadata.csv", out / "repertoires", tmp_path / "cohort.h5", progress=False)
    meta = pd.read_csv(out / "metadata.csv", dtype=str)
    aa, count = ("junction_aa", "duplicate_count") if fmt == "airr" else ("amino_acid", "templates")
    header = gzip.open(out / "repertoires" / meta["filename"][0], "rt").readline() if compress else \
        (out / "repertoires" / meta["filename"][0]).read_text().split("\n")[0]
    assert ("\tjunction\t" in header or header.startswith("nucleotide\t")) == (not compress)  # --no-nucleotides
    with RepertoireStore(store_path) as store:
        assert store.subject_ids == meta["subject_id"].tolist()
        assert store.label("label").values.tolist() == meta["label"].astype(int).tolist()
        for i, filename in enumerate(meta["filename"]):
            raw = pd.read_csv(out / "repertoires" / filename, sep="\t", dtype=str)
            stored = store.table(i)
            v_col, j_col = ("v_call", "j_call") if fmt == "airr" else ("v_gene", "j_gene")
            keys = pd.DataFrame({"a": raw[aa], "v": normalise_genes(raw[v_col]), "j": normalise_genes(raw[j_col])})
            assert len(stored) == len(keys.drop_duplicates())
            assert set(stored["junction_aa"]) == set(raw[aa])
            assert stored["duplicate_count"].sum() == raw[count].astype(int).sum()
        assert store.n_sequences == store.repertoire_sizes().sum()


def test_a_mouse_cohort_has_mouse_genes_that_ingest_reads_as_mouse(tmp_path):
    """`simulate --species mouse`: OLGA's mouse TRB model, public clones and V noise from its genes; ingested with
    --species mouse, no call is lost (the noise's own missing calls aside) and the store is a mouse one."""
    out = simulate(SimulationSettings(**SMALL, species="mouse", public_clones=3, public_rate=0.5, public_v_noise=0.5),
                   tmp_path / "sim")
    assert yaml.safe_load((out / "truth" / "parameters.yaml").read_text())["parameters"]["species"] == "mouse"
    store_path = ingest(out / "metadata.csv", out / "repertoires", tmp_path / "cohort.h5", progress=False,
                        species="mouse")
    implanted = pd.read_csv(out / "truth" / "implanted.tsv", sep="\t", keep_default_na=False)
    with RepertoireStore(store_path) as store:
        assert store.species == "mouse" and "TRBV13-2" in store.v_genes  # a mouse gene (no human TRBV13)
        assert store.qc()["v_missing"].sum() == (implanted["v_noise"] == "missing").sum()
    human = simulate(SimulationSettings(**SMALL), tmp_path / "human")  # a human cohort's parameters as before
    assert "species" not in yaml.safe_load((human / "truth" / "parameters.yaml").read_text())["parameters"]


# --- the committed demo --------------------------------------------------------------------------
def test_demo_cohort_is_what_its_readme_command_makes(tmp_path):
    """data/demo must be what data/demo/README.md says made it (compared decompressed, so a zlib
    update does not matter); if the simulator changes on purpose, remake the demo."""
    demo = Path(__file__).resolve().parents[1] / "data" / "demo"
    assert (demo / "metadata.csv").is_file(), "data/demo is part of the repository"
    command = re.search(r"deeprc-hopfield simulate (.*?)\n```", (demo / "README.md").read_text(), re.S).group(1)
    args = command.replace("\\\n", " ").split()
    args[args.index("--out") + 1] = str(tmp_path / "demo")
    assert subprocess.run([sys.executable, "-m", "deeprc_hopfield", "-q", "simulate", *args],
                          capture_output=True, text=True, timeout=300).returncode == 0
    made = {name: data for name, data in _files(tmp_path / "demo").items() if name != OUTPUT_MARKER}
    committed = {name: data for name, data in _files(demo).items() if name != "README.md"}
    assert sorted(made) == sorted(committed)
    for name, data in committed.items():
        if name.endswith(".gz"):
            assert gzip.decompress(made[name]) == gzip.decompress(data), name
        else:
            assert made[name] == data, name


# --- signal pool (whole receptors from a list) ---------------------------------------------------
def _receptor_list(path: Path, n: int, seed: int = 99, sep: str = "\t") -> pd.DataFrame:
    """A list of `n` distinct TRB receptors drawn from OLGA's model, with gene-level V names (no allele,
    unlike the background's), so that an implanted row is told by its V call too."""
    block = background_model("TRB").generate(4 * n, np.random.default_rng(seed))
    table = pd.DataFrame({"junction_aa": block.junction_aa, "v_call": [v.split("*")[0] for v in block.v_call],
                          "j_call": block.j_call}).drop_duplicates("junction_aa").head(n)
    table.to_csv(path, sep=sep, index=False)
    return table


POOL = dict(n_repertoires=60, sequences_per_repertoire=200, witness_rate=0.0, seed=7)


def _pool_truth(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    meta = pd.read_csv(out / "metadata.csv", dtype=str)
    return meta, _table(out / "truth" / "implanted.tsv"), _table(out / "truth" / "signal_pool.tsv")


def test_signal_pool_receptors_per_repertoire_and_their_truth(tmp_path):
    listed = _receptor_list(tmp_path / "list.tsv", 30)
    r, r0 = 4.0, 1.0
    out = simulate(SimulationSettings(**POOL, signal_pool=str(tmp_path / "list.tsv"), pool_size=15,
                                      receptors_per_positive=r, receptors_per_negative=r0, pool_sharing="uniform"),
                   tmp_path / "sim")
    meta, truth, pool = _pool_truth(out)
    assert set(truth["kind"]) == {"pool_receptor", "chance_receptor"}  # witness rate 0: no motif
    labels = dict(zip(meta["subject_id"], meta["label"]))
    positives = [s for s, label in labels.items() if label == "1"]
    negatives = [s for s, label in labels.items() if label == "0"]
    per = truth.groupby(["subject_id", "kind"]).size().unstack(fill_value=0).reindex(list(labels), fill_value=0)
    # Poisson means: 30 positives, 30 negatives
    assert abs(per.loc[positives, "pool_receptor"].mean() - r) < 4 * np.sqrt(r / 30)
    assert per.loc[negatives, "pool_receptor"].sum() == 0
    assert abs(per.loc[negatives, "chance_receptor"].mean() - r0) < 4 * np.sqrt(r0 / 30)
    assert abs(per.loc[positives, "chance_receptor"].mean() - r0) < 4 * np.sqrt(r0 / 30) + 0.2  # less overlaps
    # the pool: 15 of the list, in file order; pool receptors only from it
    assert pool["junction_aa"].tolist() == listed["junction_aa"].tolist()
    assert pool["line"].astype(int).tolist() == list(range(2, 32)) and (pool["in_pool"] == "1").sum() == 15
    members = set(pool.loc[pool["in_pool"] == "1", "junction_aa"])
    assert set(truth.loc[truth["kind"] == "pool_receptor", "junction_aa"]) <= members
    # every implanted row is a whole receptor of the list, V and J as listed, in a repertoire of unchanged size
    receptors = set(zip(listed["junction_aa"], listed["v_call"], listed["j_call"]))
    for filename, rows in truth.groupby("filename"):
        table = _table(out / "repertoires" / filename).set_index("sequence_id")
        assert len(table) == POOL["sequences_per_repertoire"]
        for row in rows.itertuples():
            file_row = table.loc[row.sequence_id]
            key = (file_row["junction_aa"], file_row["v_call"], file_row["j_call"])
            assert key == (row.junction_aa, row.v_call, row.j_call) and key in receptors
            assert _translate(file_row["junction"]) == row.junction_aa and row.signal == row.junction_aa
        assert not rows.duplicated("junction_aa").any()  # distinct receptors within a repertoire
    # signal_pool.tsv counts what implanted.tsv lists
    carriers = truth.assign(label=truth["subject_id"].map(labels)).groupby(["junction_aa", "label"]).size()
    for row in pool.itertuples():
        assert int(row.positives) == carriers.get((row.junction_aa, "1"), 0)
        assert int(row.negatives) == carriers.get((row.junction_aa, "0"), 0)
        assert row.pgen == "" and float(row.weight) == pytest.approx(1 / 30, rel=1e-4)


def test_zipf_sharing_concentrates_carriers_on_few_receptors(tmp_path):
    _receptor_list(tmp_path / "list.tsv", 30)
    common = dict(**POOL, signal_pool=str(tmp_path / "list.tsv"), receptors_per_positive=3.0,
                  receptors_per_negative=0.0)
    runs = {law: _pool_truth(simulate(SimulationSettings(**common, pool_sharing=law, pool_sharing_exponent=1.5),
                                      tmp_path / law))[2] for law in ("zipf", "uniform")}
    assert runs["zipf"]["in_pool"].tolist() == runs["uniform"]["in_pool"].tolist()  # the law keeps the pool
    shared = {law: pool["positives"].astype(int) for law, pool in runs.items()}
    # uniform: each of 30 receptors in ~3 of 30 positives; zipf (a = 1.5): the first in nearly all
    assert shared["zipf"].max() >= 20 and shared["uniform"].max() <= 12
    assert shared["zipf"].sum() == pytest.approx(shared["uniform"].sum(), abs=40)  # ~90 each
    weights = runs["zipf"]["weight"].astype(float).sort_values(ascending=False).to_numpy()
    assert weights == pytest.approx(weights[0] * np.arange(1, 31) ** -1.5, rel=1e-4)


def test_pgen_sharing_follows_olga_generation_probability(tmp_path):
    import olga.generation_probability as generation_probability

    listed = _receptor_list(tmp_path / "list.tsv", 6)
    out = simulate(SimulationSettings(n_repertoires=6, sequences_per_repertoire=100, witness_rate=0.0, seed=1,
                                      signal_pool=str(tmp_path / "list.tsv"), receptors_per_positive=2.0),
                   tmp_path / "sim")
    _, truth, pool = _pool_truth(out)
    pgen = pool["pgen"].astype(float).to_numpy()
    weight = pool["weight"].astype(float).to_numpy()
    assert (pgen > 0).all() and weight == pytest.approx(pgen / pgen.sum(), rel=1e-4)
    genomic, generative = olga_model("TRB")
    model = generation_probability.GenerationProbabilityVDJ(generative, genomic)
    first = listed.iloc[0]
    assert pgen[0] == pytest.approx(model.compute_aa_CDR3_pgen(first["junction_aa"], first["v_call"],
                                                              first["j_call"], print_warnings=False), rel=1e-5)
    assert (truth["kind"] == "pool_receptor").sum() > 0


def test_signal_pool_same_arguments_same_bytes(tmp_path):
    _receptor_list(tmp_path / "list.tsv", 20)
    settings = SimulationSettings(**{**POOL, "n_repertoires": 8, "witness_rate": 0.01}, motifs=("GRDT",),
                                  signal_pool=str(tmp_path / "list.tsv"), pool_size=10, receptors_per_positive=3.0,
                                  pool_sharing="zipf", compress=True)
    runs = [_files(simulate(settings, tmp_path / name, threads=threads)) for name, threads in (("a", 1), ("b", 2))]
    assert runs[0] == runs[1] and "truth/signal_pool.tsv" in runs[0]
    truth = _table(tmp_path / "a" / "truth" / "implanted.tsv")
    assert {"motif", "pool_receptor"} <= set(truth["kind"])  # motifs and receptors together
    other = _files(simulate(SimulationSettings(**{**settings.as_dict(), "motifs": ("GRDT",), "seed": 8}),
                            tmp_path / "c"))
    assert other["repertoires/rep000.tsv.gz"] != runs[0]["repertoires/rep000.tsv.gz"]


def test_receptor_list_vdjdb_columns_other_chains_and_imgt_cdr3s(tmp_path):
    from deeprc_hopfield.simulate import read_receptor_list

    listed = _receptor_list(tmp_path / "trb.csv", 25, sep=",")
    vdjdb = pd.DataFrame({"Gene": "TRB", "CDR3": listed["junction_aa"], "V": listed["v_call"],
                          "J": listed["j_call"], "Epitope": "NLVPMVATV"})
    extra = pd.DataFrame({"Gene": ["TRA", "TRB", "TRB"], "CDR3": ["CAVRDSNYQLIW", listed["junction_aa"][0], "CASSF"],
                          "V": ["TRAV1-2", listed["v_call"][0], "TRBV5-1"], "J": ["TRAJ33", listed["j_call"][0], ""],
                          "Epitope": "x"})
    pd.concat([vdjdb, extra]).to_csv(tmp_path / "vdjdb.tsv", sep="\t", index=False)
    read = read_receptor_list(tmp_path / "vdjdb.tsv", "TRB")
    assert read.table["junction_aa"].tolist() == listed["junction_aa"].tolist()
    assert read.table["v_call"].tolist() == listed["v_call"].tolist()
    assert read.notes == {"rows": 28, "incomplete": 1, "other_chain": 1, "anchors_added": 0, "duplicates": 1}
    # IMGT CDR3s (no conserved C and F) get their anchors back
    cdr3 = listed.assign(junction_aa=listed["junction_aa"].str[1:-1])
    cdr3.to_csv(tmp_path / "cdr3.csv", index=False)
    read = read_receptor_list(tmp_path / "cdr3.csv", "TRB")
    assert read.notes["anchors_added"] == 1
    assert read.table["junction_aa"].str[1:-1].tolist() == cdr3["junction_aa"].tolist()
    assert read.table["junction_aa"].str.startswith("C").all()


def test_receptor_list_reads_a_vdjdb_paired_file_by_chain(tmp_path):
    """A submission chunk of vdjdb-db (`cdr3.alpha` ... `j.beta`): a TRB list reads the beta columns, and a
    row without a beta chain is incomplete."""
    from deeprc_hopfield.simulate import read_receptor_list

    rows = ["cdr3.alpha\tv.alpha\tj.alpha\tcdr3.beta\tv.beta\td.beta\tj.beta\tspecies\tantigen.epitope",
            "CAVNDYKLSF\tTRAV12-2*01\tTRAJ20*01\tCASSLGQAYEQYF\tTRBV5-1*01\t\tTRBJ2-7*01\tHomoSapiens\tNLVPMVATV",
            "CAVRDSNYQLIW\tTRAV1-2*01\tTRAJ33*01\t\t\t\t\tHomoSapiens\tNLVPMVATV",
            "\t\t\tCASSPDRGGYTF\tTRBV19*01\t\tTRBJ1-2*01\tHomoSapiens\tNLVPMVATV"]
    (tmp_path / "chunk.txt").write_text("\n".join(rows) + "\n")
    beta = read_receptor_list(tmp_path / "chunk.txt", "TRB")
    assert beta.table["junction_aa"].tolist() == ["CASSLGQAYEQYF", "CASSPDRGGYTF"]
    assert beta.table["v_call"].tolist() == ["TRBV5-1*01", "TRBV19*01"] and beta.notes["incomplete"] == 1
    alpha = read_receptor_list(tmp_path / "chunk.txt", "TRA")
    assert alpha.table["junction_aa"].tolist() == ["CAVNDYKLSF", "CAVRDSNYQLIW"]
    with pytest.raises(InputFormatError, match="a VDJdb paired file holds T-cell alpha and beta receptors "
                                               r"\(cdr3.alpha, cdr3.beta\), none of the simulated chain IGH"):
        read_receptor_list(tmp_path / "chunk.txt", "IGH")


@pytest.mark.parametrize("make, extra, message", [
    (None, [], "signal pool file not found"),
    ("junction_aa\tv_call\nCASSLGQAYEQYF\tTRBV5-1\n", [], "needs a column j_call or j"),
    ("junction_aa\tv_call\tj_call\nCASSLGQ1YEQYF\tTRBV5-1\tTRBJ2-7\n", [], "line 2, column 'junction_aa'"),
    ("junction_aa\tv_call\tj_call\nCAVRDSNYQLIW\tTRAV1-2\tTRAJ33\n", [], "no receptor of chain TRB"),
    ("junction_aa\tv_call\tj_call\nCASSLGQAYEQYF\tTRBV5-1\tTRBJ2-7\n", ["--pool-size", "2"], "--pool-size 2 is more"),
    ("junction_aa\tv_call\tj_call\nCASSLGQAYEQYF\tTRBV5-1\tTRBJ2-7\n", ["--receptors-per-positive", "3"],
     "--receptors-per-positive 3 is more"),
])
def test_bad_signal_pool_is_refused_in_one_line(tmp_path, make, extra, message):
    pool = tmp_path / "pool.tsv"
    if make is not None:
        pool.write_text(make)
    out = tmp_path / "out"
    result = _cli("--out", str(out), "--n-repertoires", "4", "--sequences-per-repertoire", "50",
                  "--signal-pool", str(pool), *extra)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr and str(pool) in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--signal-pool", "p.tsv", "--pool-sharing-exponent", "0"], "--pool-sharing-exponent must be a number > 0"),
    (["--signal-pool", "p.tsv", "--receptors-per-negative", "-1"], "--receptors-per-negative must be a number >= 0"),
    (["--signal-pool", "p.tsv", "--pool-size", "0"], "--pool-size must be >= 1"),
    (["--pool-size", "3"], "--pool-size needs a signal pool (--signal-pool)"),
    (["--pool-sharing", "zipf"], "--pool-sharing needs a signal pool"),
    ([], "--witness-rate is required (unless --signal-pool is given)"),
])
def test_bad_pool_options_are_refused(tmp_path, args, message):
    """Values are checked before the list is read (p.tsv does not exist)."""
    base = [x for x in BASE if x not in ("--witness-rate", "0.01")] if not args else BASE
    result = _cli("--out", str(tmp_path / "out"), *base, *args)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_shipped_vdjdb_extract_is_a_signal_pool_by_name(tmp_path):
    """`--signal-pool vdjdb-cmv-trb`: positives carry real CMV-specific TRB receptors of the shipped VDJdb
    extract, with their VDJdb V and J calls, which ingest reads back."""
    settings = SimulationSettings(n_repertoires=20, sequences_per_repertoire=500, witness_rate=0.0, seed=2,
                                  nucleotides=False, signal_pool="vdjdb-cmv-trb", receptors_per_positive=10.0,
                                  pool_sharing="zipf", public_v_noise=0.5)
    out = simulate(settings, tmp_path / "cmv")
    listed = pd.read_csv(Path(__file__).parents[1] / "deeprc_hopfield" / "data" / "vdjdb_cmv_trb.tsv", sep="\t")
    truth = pd.read_csv(out / "truth" / "implanted.tsv", sep="\t")
    pool = truth[truth["kind"] == "pool_receptor"]
    assert len(pool) >= 50 and set(pool["junction_aa"]) <= set(listed["cdr3.beta"])
    listed_receptors = set(zip(listed["cdr3.beta"], listed["v.beta"], listed["j.beta"]))
    assert set(zip(pool["junction_aa"], pool["true_v_call"], pool["j_call"])) <= listed_receptors
    exact = pool[pool["v_noise"].isna()]  # V calls left as VDJdb gives them
    assert len(exact) >= 20 and (exact["v_call"] == exact["true_v_call"]).all()
    ingest(out / "metadata.csv", out / "repertoires", tmp_path / "cmv.h5", progress=False)
    with RepertoireStore(tmp_path / "cmv.h5") as store:
        assert len(store) == 20 and sum(len(store.repertoire(i).lengths) for i in range(20)) >= 20 * 499
        for subject, rows in exact.groupby("subject_id"):
            stored = store.table(store.index_of(subject))
            stored = set(zip(stored["junction_aa"], stored["v_call"], stored["j_call"]))
            implanted = zip(rows["junction_aa"], map(normalise_gene, rows["v_call"]), map(normalise_gene, rows["j_call"]))
            assert set(implanted) <= stored  # read back as implanted (of several V calls, the first)
