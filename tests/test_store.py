"""RepertoireStore: round trips, layout, schema checks and atomic writing."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deeprc_hopfield.encoding import AMINO_ACIDS
from deeprc_hopfield.errors import StoreError
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.readers import read_repertoire
from deeprc_hopfield.sampling import RepertoireCache
from deeprc_hopfield.store import RepertoireStore, StoreWriter


def test_ingest_round_trip_matches_files(cohort, tmp_path):
    metadata, folder = cohort
    out = ingest(metadata, folder, tmp_path / "cohort.h5", progress=False)
    with RepertoireStore(out) as store:
        assert store.n_repertoires == 6
        for i in range(6):
            table, _ = read_repertoire(folder / f"rep{i}.tsv")
            table = table.astype({"v_call": str, "j_call": str})  # the reader gives categoricals, the store strings
            expected = table.groupby(["junction_aa", "v_call", "j_call"], sort=False)["duplicate_count"].sum()
            got = store.table(i).set_index(["junction_aa", "v_call", "j_call"])["duplicate_count"]
            assert len(got) == len(expected)
            pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
        assert store.label("label").values.tolist() == [0, 1, 0, 1, 0, 1]
        assert store.metadata()["filename"].tolist() == [f"rep{i}.tsv" for i in range(6)]
        prov = store.provenance()
        assert (prov["format"] == "airr").all() and prov["sha256"].str.len().eq(64).all()
        assert (prov["cdr3"] == "junction").all() and (prov["cdr3_column"] == "junction_aa").all()


def test_two_subjects_of_byte_identical_files_get_a_warning(cohort, tmp_path, caplog):
    """The same repertoire listed twice (under two subjects) would sit in training and in a held-out fold at once."""
    metadata, folder = cohort
    (folder / "copy.tsv").write_bytes((folder / "rep3.tsv").read_bytes())
    metadata.write_text(metadata.read_text() + "P6,copy.tsv,False\n")
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        ingest(metadata, folder, tmp_path / "cohort.h5", progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == ["subjects P3 (rep3.tsv), P6 (copy.tsv) have byte-identical repertoire files: the same "
                      "repertoire listed twice?"]


def test_imgt_cdr3_and_junction_files_of_the_same_receptors_are_the_same_clones(tmp_path, caplog):
    """One file gives junctions (`junction_aa`), another the IMGT CDR3s of the same receptors
    (`cdr3_aa`), with gene or family-only V calls: the store holds junctions for both, provenance and
    the QC table say which file gave which, the log says what was found, and every receptor has one
    clone key whichever file it came from."""
    from deeprc_hopfield.public_clones import repertoire_clones, resolve_wildcards

    rng = np.random.default_rng(3)
    letters = list("ACDEGHIKLMNPQRSTVY")
    middles = ["ASS" + "".join(rng.choice(letters, int(rng.integers(5, 10)))) + "QY" for _ in range(30)]
    v_calls = ["TRBV5-1*01", "TRBV7-2*01", "TRBV20-1*01"]
    folder = tmp_path / "reps"
    folder.mkdir()
    header = "sequence_id\t{}\tv_call\tj_call\tduplicate_count\n"
    (folder / "junctions.tsv").write_text(header.format("junction_aa") + "".join(
        f"s{i}\tC{m}F\t{v_calls[i % 3]}\tTRBJ2-7*01\t1\n" for i, m in enumerate(middles)))
    (folder / "cdr3s.tsv").write_text(header.format("cdr3_aa") + "".join(  # V as family only for a third
        f"s{i}\t{m}\t{v_calls[i % 3].split('-')[0] if i % 3 == 0 else v_calls[i % 3]}\tTRBJ2-7*01\t1\n"
        for i, m in enumerate(middles)))
    (folder / "m.csv").write_text("subject_id,filename\nJ,junctions.tsv\nI,cdr3s.tsv\n")
    with caplog.at_level("INFO", logger="deeprc_hopfield"):
        out = ingest(folder / "m.csv", folder, tmp_path / "s.h5", progress=False)
    assert "column 'cdr3_aa' holds IMGT CDR3s, conserved C and F/W added" in caplog.text
    with RepertoireStore(out) as store:
        prov = store.provenance()
        assert prov["cdr3"].tolist() == ["junction", "imgt_cdr3"]
        assert prov["cdr3_column"].tolist() == ["junction_aa", "cdr3_aa"]
        assert store.table(0)["junction_aa"].tolist() == store.table(1)["junction_aa"].tolist()  # junctions
        keys = [np.sort(repertoire_clones(store.repertoire(i), store.v_genes).keys) for i in range(2)]
        np.testing.assert_array_equal(keys[0], keys[1])  # every receptor: the same clone in both files
        assert len(np.unique(keys[0])) == 30 and resolve_wildcards(
            [repertoire_clones(store.repertoire(i), store.v_genes) for i in range(2)])[0].shape == (30,)
    qc = pd.read_csv(tmp_path / "s.qc.tsv", sep="\t")
    assert qc["cdr3"].tolist() == ["junction", "imgt_cdr3"] and qc.columns[1] == "input_rows"
    from deeprc_hopfield.inspect import summarise

    assert "CDR3s given as: junction 1, imgt_cdr3 1" in summarise(out)


def test_repertoire_slices_do_not_overlap(cohort, tmp_path):
    metadata, folder = cohort
    out = ingest(metadata, folder, tmp_path / "cohort.h5", progress=False)
    with RepertoireStore(out) as store:
        sizes = store.repertoire_sizes()
        assert sizes.sum() == store.n_sequences
        reps = [store.repertoire(i) for i in range(store.n_repertoires)]
        assert [len(r) for r in reps] == sizes.tolist()
        assert all(len(r.codes) == int(r.lengths.sum()) for r in reps)
        assert all(r.codes.min() >= 1 and r.codes.max() <= 20 for r in reps)
    with h5py.File(out) as f:  # chunked, compressed, unpadded
        codes = f["sequences/codes"]
        assert codes.chunks is not None and codes.compression == "gzip"
        assert codes.shape[0] == f["sequences/lengths"][()].sum()


@pytest.mark.parametrize("max_bytes", [0, 2 << 30])  # a store read as needed, and one held whole
def test_cached_rows_are_read_when_indexed(cohort, tmp_path, max_bytes):
    """`RepertoireCache.rows` is a sequence of some repertoires read when indexed, so that a pass over a large
    store's repertoires (the clone collection) holds one at a time."""
    metadata, folder = cohort
    with RepertoireStore(ingest(metadata, folder, tmp_path / "cohort.h5", progress=False)) as store:
        cache = RepertoireCache(store, max_bytes=max_bytes)
        rows = cache.rows(np.array([3, 0, 5]))
        assert len(rows) == 3 and (cache._cache is None) == (max_bytes == 0)
        assert not cache._cache  # nothing read yet
        assert [r.subject_id for r in rows] == [store.subject_ids[i] for i in (3, 0, 5)]
        assert rows[-1].subject_id == store.subject_ids[5]
        with pytest.raises(IndexError):
            rows[3]
        with pytest.raises(IndexError):  # a failed read stops a pass with its error, not as the end of the rows
            list(cache.rows(np.array([0, store.n_repertoires])))


_junction = st.builds(lambda middle: f"C{middle}F", st.text(alphabet=AMINO_ACIDS, min_size=2, max_size=28))
_row = st.tuples(_junction, st.sampled_from(["TRBV5-1", "TRBV7-2", ""]), st.sampled_from(["TRBJ2-7", ""]),
                 st.one_of(st.none(), st.integers(1, 10_000)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_row, min_size=1, max_size=40))
def test_any_valid_table_survives_ingest(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("rep")
    lines = ["junction_aa\tv_call\tj_call\tduplicate_count"]
    lines += [f"{a}\t{v}\t{j}\t{'' if c is None else c}" for a, v, j, c in rows]
    (folder / "r.tsv").write_text("\n".join(lines) + "\n")
    (folder / "m.csv").write_text("subject_id,filename\nx,r.tsv\n")
    out = ingest(folder / "m.csv", folder, folder / "s.h5", progress=False)

    expected: dict[tuple, float] = {}
    for a, v, j, c in rows:  # the reference merge: plain Python
        key = (a, v or None, j or None)
        count = np.nan if c is None else float(c)
        previous = expected.get(key, np.nan)
        expected[key] = count if np.isnan(previous) else previous + np.nan_to_num(count)
    with RepertoireStore(out) as store:
        got = store.table(0)
    got_keys = [tuple(None if pd.isna(x) else x for x in key) for key in zip(got.junction_aa, got.v_call, got.j_call)]
    assert got_keys == list(expected)
    np.testing.assert_array_equal(got.duplicate_count.to_numpy(), np.array(list(expected.values()), float))


def test_writer_leaves_nothing_when_not_committed(tmp_path):
    with pytest.raises(RuntimeError):
        with StoreWriter(tmp_path / "s.h5") as writer:
            writer.append(np.array([1, 2], np.uint8), np.array([2]), np.array([1.0]),
                          np.array(["TRBV5-1"], object), np.array([None], object))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_and_unreadable_paths(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot write in"):
        StoreWriter(tmp_path / "file" / "s.h5")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    with pytest.raises(StoreError, match="not a readable HDF5"):
        RepertoireStore(bad)
    with pytest.raises(StoreError, match="not found"):
        RepertoireStore(tmp_path / "missing.h5")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a file without read permission (root reads all)
    with pytest.raises(StoreError, match="cannot be read"):
        RepertoireStore(bad)


def test_schema_version_is_checked(cohort, tmp_path):
    metadata, folder = cohort
    out = ingest(metadata, folder, tmp_path / "cohort.h5", progress=False)
    with h5py.File(out, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(StoreError, match="schema version 99"):
        RepertoireStore(out)


def test_a_mouse_store_records_its_species_and_keeps_its_gene_calls(mouse_cohort, tmp_path):
    """`ingest --species mouse` reads mouse names as genes (none missing), records the species, and `inspect` shows
    it; the same cohort read as human loses its TRBV13-x calls."""
    from conftest import deeprc_cli

    result = deeprc_cli("ingest", "--metadata", mouse_cohort[0], "--repertoires", mouse_cohort[1], "--out",
                        tmp_path / "mouse.h5", "--species", "mouse", "-q")
    assert result.returncode == 0, result.stderr
    with RepertoireStore(tmp_path / "mouse.h5") as store:
        assert store.species == "mouse" and store.attrs["species"] == "mouse"
        assert store.attrs["schema_version"] == 2  # versions that read every store as human refuse it
        assert {"TRBV13-1", "TRBV13-2", "TRBV13-3", "TRBV5"} <= set(store.v_genes)
        assert store.qc()["v_missing"].sum() == 0 and store.qc()["j_missing"].sum() == 0
    summary = deeprc_cli("inspect", tmp_path / "mouse.h5").stdout.splitlines()
    assert next(line for line in summary if line.startswith("genes ")).endswith(", mouse (ingest --species)")
    with RepertoireStore(ingest(*mouse_cohort, tmp_path / "human.h5", progress=False)) as store:
        assert store.species == "human" and "TRBV13-2" not in store.v_genes and store.qc()["v_missing"].sum() > 0
        assert store.attrs["schema_version"] == 1  # a human store as before


def test_a_store_written_before_species_were_recorded_is_human(cohort, tmp_path):
    out = ingest(*cohort, tmp_path / "old.h5", progress=False)
    with h5py.File(out, "r+") as f:
        del f.attrs["species"]
    with RepertoireStore(out) as store:
        assert store.species == "human" and "species" not in store.attrs
    with h5py.File(out, "r+") as f:
        f.attrs["species"] = "rat"
    with pytest.raises(StoreError, match=r"old\.h5: a store of species 'rat', but this deeprc-hopfield .* reads "
                                         r"human, mouse$"):
        RepertoireStore(out)


def test_truncated_store_is_refused(cohort, tmp_path):
    metadata, folder = cohort
    out = ingest(metadata, folder, tmp_path / "cohort.h5", progress=False)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"cohort\.h5: not a readable HDF5 file \(truncated, or not a store\)"):
        RepertoireStore(out)


def test_unknown_label_lists_present_ones(cohort, tmp_path):
    metadata, folder = cohort
    with RepertoireStore(ingest(metadata, folder, tmp_path / "c.h5", progress=False)) as store:
        with pytest.raises(StoreError, match=r"no label 'cmv' \(labels: label\)"):
            store.label("cmv")


def test_ingest_replaces_only_an_earlier_store_and_only_with_force(cohort, tmp_path):
    """A second ingest onto a store needs --force; a file that is not a store is never replaced
    (refused in one line, exit 1, the file untouched), --force or not."""
    from deeprc_hopfield.io import OutputExistsError
    from tests.test_cli import run_cli

    metadata, folder = cohort
    out = ingest(metadata, folder, tmp_path / "cohort.h5", progress=False)
    created = RepertoireStore(out).attrs["created"]
    with pytest.raises(OutputExistsError, match="add --force"):
        ingest(metadata, folder, out, progress=False)
    fewer = metadata.with_name("five.csv")  # the forced store must be the new one: one repertoire fewer
    fewer.write_text("".join(metadata.read_text().splitlines(keepends=True)[:-1]))
    ingest(fewer, folder, out, progress=False, force=True)
    with RepertoireStore(out) as store:
        assert store.n_repertoires == 5 and store.attrs["created"] >= created

    precious = tmp_path / "notes.h5"
    precious.write_text("my notes\n")
    result = run_cli("ingest", "--metadata", metadata, "--repertoires", folder, "--out", precious, "--force")
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "notes.h5" in err[0] and "not an earlier output" in err[0]
    assert precious.read_text() == "my notes\n"
    assert not (tmp_path / "notes.qc.tsv").exists()


def test_the_sequence_digest_is_of_the_sequences_and_counts_whatever_their_order() -> None:
    """What `predict` knows a training repertoire by: the same (sequence, count) pairs in any row order give one
    digest; another count, or another residue, another."""
    from deeprc_hopfield.store import Repertoire, sequence_digest

    def repertoire(sequences: list[bytes], counts: list[float]) -> Repertoire:
        n = len(sequences)
        return Repertoire("x", np.frombuffer(b"".join(sequences), dtype=np.uint8) % 20,
                          np.array([len(s) for s in sequences], dtype=np.uint8), np.array(counts, dtype=np.float64),
                          np.zeros(n, np.int16), np.zeros(n, np.int16))

    first = sequence_digest(repertoire([b"CASSLF", b"CASRF", b"CAF"], [3.0, np.nan, 1.0]))
    assert first == sequence_digest(repertoire([b"CAF", b"CASSLF", b"CASRF"], [1.0, 3.0, np.nan]))
    assert first != sequence_digest(repertoire([b"CASSLF", b"CASRF", b"CAF"], [3.0, 2.0, 1.0]))
    assert first != sequence_digest(repertoire([b"CASSLF", b"CASKF", b"CAF"], [3.0, np.nan, 1.0]))
