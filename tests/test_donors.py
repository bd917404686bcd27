"""Samples of one donor told by the clones they share (`donors`): the sketch, the share, and `split`'s warning."""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import simulated_store

from deeprc_hopfield.donors import (RELATED_SHARE, SKETCH_SIZE, clone_sketch, related_pairs, sketch_shares,
                                    sketch_overlap)
from deeprc_hopfield.encoding import encode
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.simulate import SimulationSettings
from deeprc_hopfield.split import make_split
from deeprc_hopfield.store import Repertoire, RepertoireStore, StoreRepertoires


def _repertoire(junctions: list[str], counts: list[float]) -> Repertoire:
    codes, lengths = encode(junctions)
    n = len(junctions)
    return Repertoire("r", codes, lengths, np.asarray(counts, dtype=np.float64), np.zeros(n, np.int16),
                      np.zeros(n, np.int16))


def test_the_sketch_is_the_most_abundant_cdr3s_counted_over_their_rows():
    """One CDR3 on several rows (other V calls, other nucleotides) counts once, with its counts summed; without
    counts the sketch is a sample by hash, the same whatever the row order."""
    junctions = [f"CASS{a}{b}F" for a in "ACDEFGHIKLMNPQRSTVWY" for b in "ACDEFGHIKLMNPQRSTVWY"][:300]
    counts = np.ones(300)
    counts[:10] = 100
    split_one = junctions + [junctions[299]] * 3  # 4 rows of one CDR3, 50 each: 200 in all
    rep = _repertoire(split_one, list(counts) + [50, 50, 50])
    rep.counts[299] = 50
    small = clone_sketch(rep, size=11)
    assert set(small) == set(clone_sketch(_repertoire(junctions[:10] + [junctions[299]], [1] * 11)))
    uniform = _repertoire(junctions, [np.nan] * 300)  # no counts: NaN read as 1
    shuffled = _repertoire(list(np.random.default_rng(0).permutation(junctions)), [1] * 300)
    assert np.array_equal(clone_sketch(uniform), clone_sketch(shuffled)) and len(clone_sketch(uniform)) == SKETCH_SIZE
    assert sketch_overlap(clone_sketch(uniform), clone_sketch(shuffled)) == 1.0
    assert np.isnan(sketch_overlap(small, small))  # too few CDR3s to tell anything
    longer = _repertoire(junctions[:30] + ["CASSLGQAYEQYNSPLHF"], [1] * 30 + [1000])  # padded wider: keys alike
    assert set(clone_sketch(_repertoire(junctions[:30], [1] * 30))) < set(clone_sketch(longer))


@pytest.fixture(scope="module")
def rough(tmp_path_factory) -> dict:
    """30 repertoires of 2,000 sequences, 15 positives carrying 8 public clones (most of them), and every
    repertoire carrying ~40 chance-public receptors of a real CMV list drawn by generation probability."""
    pool = files("deeprc_hopfield.data").joinpath("vdjdb_cmv_trb.tsv")
    return simulated_store(tmp_path_factory.mktemp("donors"), SimulationSettings(
        n_repertoires=30, sequences_per_repertoire=2000, witness_rate=0.002, seed=2, public_clones=8,
        public_rate=0.8, signal_pool=str(pool), receptors_per_positive=10, receptors_per_negative=40,
        pool_sharing="pgen", nucleotides=False))


def _later_sample(rep: Repertoire, other: Repertoire, rng: np.random.Generator) -> Repertoire:
    """Another sample of `rep`'s donor: 80% of its clones, counts drawn again around theirs, and clones of `other`."""
    kept = np.sort(rng.choice(len(rep), int(0.8 * len(rep)), replace=False))
    fresh = np.sort(rng.choice(len(other), len(rep) - len(kept), replace=False))
    a, b = rep.subset(kept), other.subset(fresh)
    counts = np.concatenate([np.maximum(1, rng.poisson(a.counts)), b.counts])
    return Repertoire("t2", np.concatenate([a.codes, b.codes]), np.concatenate([a.lengths, b.lengths]), counts,
                      np.concatenate([a.v_index, b.v_index]), np.concatenate([a.j_index, b.j_index]))


def test_two_donors_share_little_and_two_samples_of_one_much(rough):
    """On repertoires sharing public clones and chance-public CDR3s, no two donors reach the bar; a later sample of
    each donor (a fifth of its clones new) is far above it."""
    with RepertoireStore(rough["store"]) as store:
        reps = list(StoreRepertoires(store))
    sketches = [clone_sketch(rep) for rep in reps]
    shares = sketch_shares(sketches)
    between = np.nanmax(shares)
    assert between < RELATED_SHARE / 2, between
    assert related_pairs([r.subject_id for r in reps], sketches).empty
    rng = np.random.default_rng(0)
    within = [sketch_overlap(sketches[i], clone_sketch(_later_sample(reps[i], reps[(i + 1) % len(reps)], rng)))
              for i in range(len(reps))]
    assert min(within) > 2 * RELATED_SHARE, within
    without_counts = [Repertoire(r.subject_id, r.codes, r.lengths, np.ones(len(r)), r.v_index, r.j_index)
                      for r in reps[:10]]  # a sample by hash: two donors share still less
    assert np.nanmax(sketch_shares([clone_sketch(r) for r in without_counts])) < RELATED_SHARE / 2


def _write(rep: Repertoire, path: Path) -> None:
    from deeprc_hopfield.encoding import decode

    pd.DataFrame({"junction_aa": decode(rep.codes, rep.lengths), "v_call": "TRBV5-1", "j_call": "TRBJ2-7",
                  "duplicate_count": rep.counts.astype(int), "productive": "T"}).to_csv(path, sep="\t", index=False)


def test_split_warns_of_samples_of_one_donor_that_no_group_keeps_together(rough, tmp_path, caplog):
    """Two time points of 3 donors beside 9 single samples: `split` names the pairs, and says how to keep them in
    one fold; with a donor column that groups them it says nothing; with one that does not, it says so."""
    with RepertoireStore(rough["store"]) as store:
        reps = list(StoreRepertoires(store))[:12]
        labels = store.label("label").values[:12]
    folder = tmp_path / "reps"
    folder.mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for i, rep in enumerate(reps):
        _write(rep, folder / f"s{i}.tsv")
        rows.append((f"s{i}", f"s{i}.tsv", labels[i], f"D{i}", f"X{i}"))
        if i < 3:
            _write(_later_sample(rep, reps[-1], rng), folder / f"s{i}b.tsv")
            rows.append((f"s{i}b", f"s{i}b.tsv", labels[i], f"D{i}", f"Y{i}"))
    pd.DataFrame(rows, columns=["subject_id", "filename", "label", "donor", "tube"]).to_csv(
        tmp_path / "meta.csv", index=False)
    store = ingest(tmp_path / "meta.csv", folder, tmp_path / "store.h5", progress=False)
    for column, warned in ((None, "samples of one donor?"), ("donor", None), ("tube", "in different groups")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="deeprc_hopfield"):
            make_split(store, folds=2, seed=0, group_column=column)
        said = [r.getMessage() for r in caplog.records if "most abundant CDR3s" in r.getMessage()]
        if warned is None:
            assert not said, said
            continue
        assert len(said) == 1 and warned in said[0], said
        assert said[0].startswith("3 pair(s) of the 15 repertoires share 20% or more of their 256 most abundant")
        assert all(f"s{i} and s{i}b" in said[0] for i in range(3))
        # without groups it names the metadata column that holds one value for every pair (not `tube`, an id)
        assert ("metadata column 'donor' holds one value for both repertoires of every pair" in said[0]) == \
            (column is None), said[0]
    # the command writes the pairs beside the split table, and the report warns of them
    from conftest import deeprc_cli
    from deeprc_hopfield.report import related_note
    from deeprc_hopfield.split import related_table

    result = deeprc_cli("split", "--store", store, "--out", tmp_path / "split.csv", "--folds", "2")
    assert result.returncode == 0, result.stderr
    pairs = pd.read_csv(related_table(tmp_path / "split.csv"), sep="\t")
    assert sorted(pairs["subject_a"] + pairs["subject_b"]) == ["s0s0b", "s1s1b", "s2s2b"]
    apart = int((pairs["fold_a"] != pairs["fold_b"]).sum())
    assert f"found 3 pair(s) of repertoires that share 20% or more" in related_note(tmp_path / "split.csv")
    assert f"{apart} of them in different folds" in related_note(tmp_path / "split.csv")
    grouped = deeprc_cli("split", "--store", store, "--out", tmp_path / "split.csv", "--folds", "2", "--group-column",
                         "donor", "--force")
    assert grouped.returncode == 0 and pd.read_csv(related_table(tmp_path / "split.csv"), sep="\t").empty
    assert related_note(tmp_path / "split.csv") == ""  # a new split leaves none of the earlier one's pairs


def test_the_column_that_explains_every_related_pair_is_named_and_missing_values_explain_nothing():
    from deeprc_hopfield.donors import explaining_columns

    metadata = pd.DataFrame({"subject_id": ["a", "b", "c", "d", "e"], "filename": list("vwxyz"),
                             "label": [0, 0, 1, 1, 0], "donor": ["D1", "D1", "D2", "D2", "D3"],
                             "age": [30, 30, 41, 52, None], "site": ["s1", "s1", "s2", "s2", "s3"]})
    pairs = pd.DataFrame({"subject_a": ["a", "c"], "subject_b": ["b", "d"], "share": [0.5, 0.4]})
    assert explaining_columns(metadata, pairs) == ["donor", "site"]  # label: 2 values; age: c and d differ
    with_missing = pd.DataFrame({"subject_a": ["a", "d"], "subject_b": ["b", "e"], "share": [0.5, 0.4]})
    assert explaining_columns(metadata, with_missing) == []  # e's age is missing: no crash, no column
    assert explaining_columns(metadata, pairs.iloc[:0]) == []
