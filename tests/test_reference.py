"""Reference tables of known receptors: VDJdb exports (web and release) and plain tables, filters,
the CDR3 conventions, duplicate merging, provenance, and the one-line errors a user can meet."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.reference import (
    COUNT_KEYS,
    DROP_REASONS,
    TABLE_COLUMNS,
    Reference,
    ReferenceFileError,
    ReferenceOptions,
    detect_reference_format,
    read_reference,
)


def write(path: Path, rows: list[list[str]], sep: str = "\t", gz: bool = False) -> Path:
    """Write rows (the first is the header) as a delimited file, gzip-compressed when asked."""
    text = "".join(sep.join(row) + "\n" for row in rows)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


# The web export (`SearchTable-*.tsv`) as vdjdb.cdr3.net writes it, JSON in Meta/CDR3fix included.
VDJDB_HEADER = ["complex.id", "Gene", "CDR3", "V", "J", "Species", "MHC A", "MHC B", "MHC class", "Epitope",
                "Epitope gene", "Epitope species", "Reference", "Method", "Meta", "CDR3fix", "Score"]


def vdjdb_row(gene: str, cdr3: str, v: str, j: str, species: str, epitope: str, epitope_gene: str,
              epitope_species: str) -> list[str]:
    return ["0", gene, cdr3, v, j, species, "HLA-A*02:01", "B2M", "MHCI", epitope, epitope_gene, epitope_species,
            "PMID:12345", '{"frequency": "2/15", "identification": "tetramer-sort"}',
            '{"cell.subset": "CD8", "subject.id": "donor 1"}',
            '{"cdr3": "' + cdr3 + '", "fixNeeded": false, "good": true}', "2"]


VDJDB_ROWS = [
    VDJDB_HEADER,
    vdjdb_row("TRB", "CASSLGQAYEQYF", "TRBV5-1*01", "TRBJ2-7*01", "HomoSapiens", "NLVPMVATV", "pp65", "CMV"),
    vdjdb_row("TRA", "CAVNDYKLSF", "TRAV12-2*01", "TRAJ20*01", "HomoSapiens", "NLVPMVATV", "pp65", "CMV"),
    vdjdb_row("TRB", "CASSIRSSYEQYF", "TRBV19*01", "TRBJ2-7*01", "HomoSapiens", "GILGFVFTL", "M", "InfluenzaA"),
    vdjdb_row("TRB", "CASSPDRGGYTF", "TRBV13-2*01", "TRBJ1-2*01", "MusMusculus", "SSLENFRAYV", "PA", "InfluenzaA"),
    vdjdb_row("TRB", "CASSLGQAYEQYF", "TRBV5-1*01", "TRBJ2-7*01", "HomoSapiens", "GLCTLVAML", "BMLF1", "EBV"),
    vdjdb_row("TRB", "CASSLGQAYEQYF", "TRBV5-1*01", "TRBJ2-7*01", "HomoSapiens", "NLVPMVATV", "pp65", "CMV"),
    vdjdb_row("TRB", "CASSYS*GNTIYF", "TRBV6-5*01", "TRBJ1-3*01", "HomoSapiens", "NLVPMVATV", "pp65", "CMV"),
]


def by_junction(ref: Reference) -> dict[str, dict]:
    return {row["junction_aa"]: row for row in ref.table.to_dict("records")}


# --- detection ---------------------------------------------------------------------------------
def test_detects_the_layouts_and_their_columns() -> None:
    fmt, source, columns = detect_reference_format(VDJDB_HEADER)
    assert (fmt, source) == ("vdjdb", "VDJdb web export")
    assert columns == {"cdr3": "CDR3", "v_call": "V", "j_call": "J", "locus": "Gene", "species": "Species",
                       "epitope": "Epitope", "antigen_gene": "Epitope gene", "antigen": "Epitope species"}
    release = ["complex.id", "gene", "cdr3", "v.segm", "j.segm", "species", "mhc.a", "mhc.b", "mhc.class",
               "antigen.epitope", "antigen.gene", "antigen.species", "reference.id", "vdjdb.score"]
    fmt, source, columns = detect_reference_format(release)
    assert (fmt, source, columns["v_call"], columns["antigen"]) == ("vdjdb", "VDJdb release file", "v.segm",
                                                                     "antigen.species")
    fmt, _, columns = detect_reference_format(["Junction_AA", "V_call", "epitope"])
    assert (fmt, columns) == ("plain", {"cdr3": "Junction_AA", "v_call": "V_call", "epitope": "epitope"})
    # a plain table with a `cdr3` column but no Gene/Species is not VDJdb
    assert detect_reference_format(["CDR3", "V", "Epitope"])[0] == "plain"


# --- VDJdb -------------------------------------------------------------------------------------
def test_vdjdb_export_with_chain_and_species_filters(tmp_path: Path) -> None:
    path = write(tmp_path / "SearchTable-2025-01-09.tsv", VDJDB_ROWS)
    ref = read_reference(path, chain="trb", species="HomoSapiens")
    assert list(ref.table.columns) == list(TABLE_COLUMNS)
    rows = by_junction(ref)
    assert set(rows) == {"CASSLGQAYEQYF", "CASSIRSSYEQYF"}
    cmv = rows["CASSLGQAYEQYF"]
    assert (cmv["v_call"], cmv["j_call"], cmv["locus"], cmv["species"]) == ("TRBV5-1", "TRBJ2-7", "TRB", "HomoSapiens")
    # three rows of one receptor: two distinct epitopes, joined item by item in the same order
    assert cmv["n_entries"] == 3
    assert cmv["epitope"] == "GLCTLVAML;NLVPMVATV"
    assert cmv["antigen"] == "EBV;CMV"
    assert cmv["antigen_gene"] == "BMLF1;pp65"
    assert rows["CASSIRSSYEQYF"]["antigen"] == "InfluenzaA" and rows["CASSIRSSYEQYF"]["n_entries"] == 1
    assert ref.counts == {"n_rows_read": 7, "other_chain": 1, "other_species": 1, "other_antigen": 0,
                          "empty_cdr3": 0, "invalid_cdr3": 1, "merged_duplicates": 2, "kept": 2,
                          "chain_unknown": 0, "species_unknown": 0}
    assert ref.n_rows_read == sum(ref.counts[r] for r in DROP_REASONS) + ref.counts["merged_duplicates"] + len(ref)
    assert (ref.fmt, ref.source, ref.cdr3.found) == ("vdjdb", "VDJdb web export", "junction")
    assert ref.filters == {"chain": "TRB", "species": "HomoSapiens", "antigen": None}


def test_species_is_compared_loosely_and_common_names_are_understood(tmp_path: Path) -> None:
    path = write(tmp_path / "vdjdb.tsv", VDJDB_ROWS)
    expected = read_reference(path, species="HomoSapiens").table
    for name in ("homo sapiens", "Homo_Sapiens", "human"):
        pd.testing.assert_frame_equal(read_reference(path, species=name).table, expected)
    mouse = read_reference(path, species="mouse")
    assert list(mouse.table["junction_aa"]) == ["CASSPDRGGYTF"]
    assert mouse.table["v_call"].iloc[0] is None  # a mouse gene the (human) normalisation does not know: missing
    assert mouse.table["locus"].iloc[0] == "TRB"  # the chain comes from the Gene column


def test_a_reference_for_a_store_is_read_with_the_store_s_species(tmp_path: Path) -> None:
    """For a mouse store the species filter defaults to mouse and genes are mouse ones (TRBV13-2 kept); for a human
    store, to human; a file without species is read whole; an explicit filter of another species is refused."""
    path = write(tmp_path / "vdjdb.tsv", VDJDB_ROWS)
    mouse = ReferenceOptions(path).read("mouse")
    assert (list(mouse.table["junction_aa"]), list(mouse.table["v_call"])) == (["CASSPDRGGYTF"], ["TRBV13-2"])
    assert mouse.filters["species"] == "mouse" and mouse.counts["other_species"] == 6
    human = ReferenceOptions(path).read("human")
    assert "CASSPDRGGYTF" not in set(human.table["junction_aa"]) and human.counts["other_species"] == 1
    plain = write(tmp_path / "plain.tsv", [["junction_aa", "v_call"], ["CASSPDRGGYTF", "TRBV13-2"]])
    assert list(ReferenceOptions(plain).read("mouse").table["v_call"]) == ["TRBV13-2"]
    assert ReferenceOptions(plain).read("mouse").not_applied == ()
    with pytest.raises(ReferenceFileError, match=r"--reference-species human .*, but the store is of mouse"):
        ReferenceOptions(path, species="human").read("mouse")
    assert len(ReferenceOptions(path, species="MusMusculus").read("mouse")) == 1


def test_antigen_filter_matches_antigen_epitope_or_gene(tmp_path: Path) -> None:
    path = write(tmp_path / "vdjdb.tsv", VDJDB_ROWS)
    for asked in ("cmv", "NLVPMVATV", "PP65", ["CMV"]):
        ref = read_reference(path, chain="TRB", antigen=asked)
        rows = by_junction(ref)
        assert set(rows) == {"CASSLGQAYEQYF"}, asked
        # only the CMV rows were kept, so the EBV epitope of the same receptor is not there
        assert (rows["CASSLGQAYEQYF"]["epitope"], rows["CASSLGQAYEQYF"]["n_entries"]) == ("NLVPMVATV", 2)
        assert ref.counts["other_antigen"] == 3  # influenza (human and mouse), EBV
    both = read_reference(path, chain="TRB", antigen="CMV, EBV")
    assert both.filters["antigen"] == ["CMV", "EBV"]
    assert by_junction(both)["CASSLGQAYEQYF"]["antigen"] == "EBV;CMV"


def test_vdjdb_release_file(tmp_path: Path) -> None:
    rows = [["gene", "cdr3", "species", "antigen.epitope", "antigen.gene", "antigen.species", "complex.id",
             "v.segm", "j.segm", "v.end", "j.start", "mhc.a", "mhc.b", "mhc.class", "reference.id", "vdjdb.score"],
            ["TRB", "CASSLGQAYEQYF", "HomoSapiens", "NLVPMVATV", "pp65", "CMV", "0", "TRBV5-1*01", "TRBJ2-7*01",
             "4", "9", "HLA-A*02:01", "B2M", "MHCI", "PMID:1", "2"],
            ["TRA", "CAVNDYKLSF", "HomoSapiens", "NLVPMVATV", "pp65", "CMV", "0", "TRAV12-2*01", "TRAJ20*01",
             "3", "6", "HLA-A*02:01", "B2M", "MHCI", "PMID:1", "2"]]
    ref = read_reference(write(tmp_path / "vdjdb.slim.txt", rows), chain="TRA")
    assert ref.source == "VDJdb release file"
    assert ref.table.loc[0, ["junction_aa", "v_call", "j_call", "antigen"]].tolist() == [
        "CAVNDYKLSF", "TRAV12-2", "TRAJ20", "CMV"]


# --- plain tables ------------------------------------------------------------------------------
PLAIN = [["junction_aa", "v_call", "j_call", "epitope", "antigen"],
         ["CASSLGQAYEQYF", "TRBV5-1*01", "TRBJ2-7*01", "NLVPMVATV", "CMV"],
         ["CASSIRSSYEQYF", "TCRBV19-01", "TCRBJ02-07", "GILGFVFTL", "InfluenzaA"],
         ["CAVNDYKLSF", "TRAV12-2", "TRAJ20", "NLVPMVATV", "CMV"],
         ["CASSPGQGNYGYTF", "", "", "", ""]]


@pytest.mark.parametrize("sep", ["\t", ","])
def test_plain_tsv_and_csv(tmp_path: Path, sep: str) -> None:
    ref = read_reference(write(tmp_path / "known.txt", PLAIN, sep=sep))
    assert (ref.fmt, ref.source) == ("plain", "table with 'junction_aa'")
    assert ref.table.to_dict("records") == [
        {"junction_aa": "CASSLGQAYEQYF", "v_call": "TRBV5-1", "j_call": "TRBJ2-7", "locus": "TRB", "species": None,
         "epitope": "NLVPMVATV", "antigen": "CMV", "antigen_gene": None, "n_entries": 1},
        {"junction_aa": "CASSIRSSYEQYF", "v_call": "TRBV19", "j_call": "TRBJ2-7", "locus": "TRB", "species": None,
         "epitope": "GILGFVFTL", "antigen": "InfluenzaA", "antigen_gene": None, "n_entries": 1},
        {"junction_aa": "CAVNDYKLSF", "v_call": "TRAV12-2", "j_call": "TRAJ20", "locus": "TRA", "species": None,
         "epitope": "NLVPMVATV", "antigen": "CMV", "antigen_gene": None, "n_entries": 1},
        {"junction_aa": "CASSPGQGNYGYTF", "v_call": None, "j_call": None, "locus": None, "species": None,
         "epitope": None, "antigen": None, "antigen_gene": None, "n_entries": 1},
    ]


def test_plain_chain_from_genes_and_unknown_chain_kept(tmp_path: Path) -> None:
    ref = read_reference(write(tmp_path / "known.tsv", PLAIN), chain="TRB")
    assert list(ref.table["junction_aa"]) == ["CASSLGQAYEQYF", "CASSIRSSYEQYF", "CASSPGQGNYGYTF"]
    assert (ref.counts["other_chain"], ref.counts["chain_unknown"]) == (1, 1)
    assert "1 receptors of unknown chain kept" in ref.describe()


def test_plain_chain_column_wins_and_words_are_understood(tmp_path: Path) -> None:
    rows = [["cdr3", "chain", "v_call"], ["CASSLGQAYEQYF", "beta", "TRBV5-1"], ["CAVNDYKLSF", "alpha", ""],
            ["CASSIRSSYEQYF", "", "TRBV19"]]
    ref = read_reference(write(tmp_path / "known.csv", rows, sep=","), chain="TRA")
    assert list(ref.table["junction_aa"]) == ["CAVNDYKLSF"]
    assert ref.table["locus"].tolist() == ["TRA"]


def test_species_filter_on_a_file_without_species_keeps_every_row(tmp_path: Path, caplog) -> None:
    path = write(tmp_path / "known.tsv", PLAIN)
    with caplog.at_level(logging.WARNING, logger="deeprc_hopfield.reference"):
        ref = read_reference(path, species="HomoSapiens")
    assert len(ref) == 4 and ref.not_applied == ("species",)
    assert "species filter not applied" in ref.describe()
    assert "no species column" in caplog.text
    assert ref.provenance()["not_applied"] == ["species"]


def test_gzip_is_read_whatever_the_extension(tmp_path: Path) -> None:
    plain = read_reference(write(tmp_path / "vdjdb.tsv", VDJDB_ROWS), chain="TRB")
    packed = read_reference(write(tmp_path / "vdjdb.tsv", VDJDB_ROWS, gz=True), chain="TRB")
    pd.testing.assert_frame_equal(plain.table, packed.table)
    assert packed.sha256 != plain.sha256  # the file's own bytes
    assert read_reference(write(tmp_path / "known.tsv.gz", PLAIN, gz=True)).counts["kept"] == 4


# --- CDR3 conventions --------------------------------------------------------------------------
def test_imgt_cdr3s_and_junctions_give_the_same_receptors(tmp_path: Path) -> None:
    junctions = write(tmp_path / "junctions.tsv", PLAIN)
    imgt = [["cdr3_aa", *PLAIN[0][1:]]] + [[row[0][1:-1], *row[1:]] for row in PLAIN[1:]]
    from_imgt = read_reference(write(tmp_path / "imgt.tsv", imgt))
    assert from_imgt.cdr3.found == "imgt_cdr3" and "IMGT CDR3s" in from_imgt.describe()
    pd.testing.assert_frame_equal(from_imgt.table, read_reference(junctions).table)


def test_unanchored_cdr3_column_is_recognised_from_its_sequences(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    letters = np.array(list("ADEGHIKLMNPQRSTVY"))  # no C, F or W: never anchored
    cores = sorted({"AS" + "".join(rng.choice(letters, size=8)) for _ in range(30)})
    rows = [["cdr3", "v_call"]] + [[c, "TRBV5-1"] for c in cores]
    ref = read_reference(write(tmp_path / "cores.tsv", rows))
    assert ref.cdr3.found == "imgt_cdr3"
    assert ref.table["junction_aa"].tolist() == ["C" + c + "F" for c in cores]


def test_one_receptor_in_both_conventions_is_one_entry(tmp_path: Path) -> None:
    rows = [["junction_aa", "v_call", "epitope"], ["CASSLGQAYEQYF", "TRBV5-1", "NLVPMVATV"],
            ["CASSLGQAYEQYW", "TRBV5-1", "NLVPMVATV"],  # another anchor: the same CDR3 core
            ["CASSLGQAYEQYF", "TRBV5-6", "GLCTLVAML"],  # another gene of the same V family
            ["CASSLGQAYEQYF", "TRBV7-2", "YVLDHLIVV"],  # another V family: another receptor
            ["CASSLGQAYEQYF", "", "NLVPMVATV"]]  # no V: a wildcard entry of its own
    ref = read_reference(write(tmp_path / "known.tsv", rows))
    assert ref.table[["junction_aa", "v_call", "epitope", "n_entries"]].values.tolist() == [
        ["CASSLGQAYEQYF", "TRBV5-1", "GLCTLVAML;NLVPMVATV", 3],
        ["CASSLGQAYEQYF", "TRBV7-2", "YVLDHLIVV", 1],
        ["CASSLGQAYEQYF", None, "NLVPMVATV", 1]]
    assert ref.counts["merged_duplicates"] == 2


# --- dropped rows and provenance ---------------------------------------------------------------
def test_bad_and_empty_cdr3s_are_dropped_and_counted(tmp_path: Path, caplog) -> None:
    rows = [["junction_aa", "v_call"], ["CASSLGQAYEQYF", "TRBV5-1"], ["cassirssyeqyf ", "TRBV19"],
            ["CASS*LGF", "TRBV5-1"], ["CASS1LGF", "TRBV5-1"], ["", "TRBV5-1"], ["", ""]]
    with caplog.at_level(logging.WARNING, logger="deeprc_hopfield.reference"):
        ref = read_reference(write(tmp_path / "known.tsv", rows))
    assert ref.table["junction_aa"].tolist() == ["CASSLGQAYEQYF", "CASSIRSSYEQYF"]  # cleaned: upper case, no space
    assert (ref.counts["invalid_cdr3"], ref.counts["empty_cdr3"], ref.counts["n_rows_read"]) == (2, 2, 6)
    assert "line 4, 'CASS*LGF'" in caplog.text


def test_provenance_and_describe(tmp_path: Path) -> None:
    path = write(tmp_path / "vdjdb.tsv", VDJDB_ROWS)
    ref = read_reference(path, chain="TRB", species="HomoSapiens", antigen="CMV")
    prov = ref.provenance()
    assert prov["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (prov["name"], prov["path"], prov["format"], prov["cdr3"]) == ("vdjdb.tsv", str(path.resolve()), "vdjdb",
                                                                          "junction")
    assert prov["filters"] == {"chain": "TRB", "species": "HomoSapiens", "antigen": ["CMV"]}
    assert set(prov["counts"]) == set(COUNT_KEYS) and prov["n_receptors"] == 1
    assert prov["counts"]["other_antigen"] == 2 and prov["counts"]["invalid_cdr3"] == 1
    assert json.loads(json.dumps(prov)) == prov
    line = ref.describe()
    assert "\n" not in line and line.startswith("reference vdjdb.tsv (VDJdb web export, sha256 ")
    assert "1 receptors from 7 rows" in line and "chain TRB, species HomoSapiens, antigen CMV" in line


# --- errors: one line naming the file (and line and column) ------------------------------------
def one_line(exc: pytest.ExceptionInfo, path: Path) -> str:
    text = str(exc.value)
    assert isinstance(exc.value, DeepRCError) and "\n" not in text and text.startswith(str(path))
    return text


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.tsv"
    with pytest.raises(ReferenceFileError) as exc:
        read_reference(path)
    assert one_line(exc, path).endswith("reference file not found")


def test_no_cdr3_column_names_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path / "known.tsv", [["sequence", "v_gene", "epitope"], ["CASSLGQAYEQYF", "TRBV5-1", "X"]])
    with pytest.raises(ReferenceFileError) as exc:
        read_reference(path)
    text = one_line(exc, path)
    assert "line 1" in text and "found: sequence, v_gene, epitope" in text
    paired = write(tmp_path / "vdjdb_full.txt", [["cdr3.alpha", "cdr3.beta", "species"], ["CAVF", "CASSF", "H"]])
    with pytest.raises(ReferenceFileError, match="'cdr3.alpha' and 'cdr3.beta' with 'species' and 'antigen.epitope'"):
        read_reference(paired)  # paired, but without its epitope column


def test_vdjdb_paired_file_gives_one_receptor_per_chain(tmp_path: Path, caplog) -> None:
    """A submission chunk (vdjdb-db's `chunks/`) or `vdjdb_full.txt`: a row holds an alpha and a beta chain,
    either may be empty; each chain with a CDR3 is a receptor, a row with neither an empty CDR3."""
    header = ["cdr3.alpha", "v.alpha", "j.alpha", "cdr3.beta", "v.beta", "d.beta", "j.beta", "species", "mhc.a",
              "mhc.b", "mhc.class", "antigen.epitope", "antigen.gene", "antigen.species", "reference.id"]
    tail = ["HLA-A*02:01", "B2M", "MHCI", "NLVPMVATV", "pp65", "CMV", "PMID:1"]
    rows = [header,
            ["CAVNDYKLSF", "TRAV12-2*01", "TRAJ20*01", "CASSLGQAYEQYF", "TRBV5-1*01", "", "TRBJ2-7*01",
             "HomoSapiens", *tail],
            ["", "", "", "CASSPDRGGYTF", "TRBV19*01", "", "TRBJ1-2*01", "HomoSapiens", *tail],
            ["", "", "", "CASS*LGF", "TRBV5-1*01", "", "TRBJ2-7*01", "HomoSapiens", *tail],
            ["", "", "", "", "", "", "", "HomoSapiens", *tail]]
    with caplog.at_level(logging.WARNING, logger="deeprc_hopfield.reference"):
        ref = read_reference(write(tmp_path / "PMID_1.txt", rows), species="human")
    assert ref.source == "VDJdb paired file" and ref.fmt == "vdjdb"
    assert by_junction(ref)["CAVNDYKLSF"]["locus"] == "TRA" and by_junction(ref)["CASSLGQAYEQYF"]["locus"] == "TRB"
    assert by_junction(ref)["CASSPDRGGYTF"]["v_call"] == "TRBV19"
    assert (ref.counts["n_rows_read"], ref.counts["invalid_cdr3"], ref.counts["empty_cdr3"], ref.counts["kept"]) \
        == (5, 1, 1, 3)
    assert "line 4, 'CASS*LGF'" in caplog.text  # the file's line, though its alpha chain was no row
    beta = read_reference(tmp_path / "PMID_1.txt", chain="TRB", antigen="CMV")
    assert sorted(beta.table["junction_aa"]) == ["CASSLGQAYEQYF", "CASSPDRGGYTF"]
    assert (beta.counts["other_chain"], beta.counts["empty_cdr3"]) == (1, 1)  # the row of neither chain: empty
    rows[1][0] = "CAV*F"  # an alpha chain with a stop, on a line before the beta one: the first named
    with caplog.at_level(logging.WARNING, logger="deeprc_hopfield.reference"):
        read_reference(write(tmp_path / "PMID_2.txt", rows))
    assert "2 CDR3s with letters that are not amino acids dropped (first: line 2, 'CAV*F')" in caplog.text
    only_beta = [[c for k, c in enumerate(row) if k >= 3] for row in rows]  # a cut without the alpha columns
    assert len(read_reference(write(tmp_path / "beta.txt", only_beta)).table) == 2


def test_unknown_chain_value_in_the_file_names_line_and_column(tmp_path: Path) -> None:
    rows = [r[:] for r in VDJDB_ROWS]
    rows[3][1] = "TRX"
    path = write(tmp_path / "vdjdb.tsv", rows)
    with pytest.raises(ReferenceFileError) as exc:
        read_reference(path)
    assert one_line(exc, path) == f"{path}, line 4, column 'Gene': 'TRX' is not a chain (expected one of " \
                                  "TRA, TRB, TRG, TRD, IGH, IGK, IGL)"


def test_unknown_chain_asked_for(tmp_path: Path) -> None:
    path = write(tmp_path / "vdjdb.tsv", VDJDB_ROWS)
    with pytest.raises(ReferenceFileError, match="unknown chain 'TRZ'"):
        read_reference(path, chain="TRZ")


def test_nothing_left_says_which_filter_removed_what(tmp_path: Path) -> None:
    path = write(tmp_path / "vdjdb.tsv", VDJDB_ROWS)
    with pytest.raises(ReferenceFileError) as exc:
        read_reference(path, chain="TRB", antigen="HIV")
    text = one_line(exc, path)
    assert "no receptor left: 7 rows read; dropped 1 of another chain than TRB; 6 not of HIV" in text
    assert "the file has: CMV 4, InfluenzaA 2, EBV 1" in text
    with pytest.raises(ReferenceFileError, match="dropped 6 of another chain than TRA; 1 of another species than Mus"):
        read_reference(path, chain="TRA", species="MusMusculus")
    only_bad = write(tmp_path / "bad.tsv", [["junction_aa"], ["CASS*F"], [""]])
    with pytest.raises(ReferenceFileError, match="1 with an empty CDR3; 1 with letters that are not amino acids"):
        read_reference(only_bad)


def test_antigen_filter_on_a_file_without_antigens_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "known.tsv", [["junction_aa", "v_call"], ["CASSLGQAYEQYF", "TRBV5-1"]])
    with pytest.raises(ReferenceFileError, match="needs a column epitope, antigen or antigen_gene"):
        read_reference(path, antigen="CMV")


def test_corrupt_gzip_and_empty_file(tmp_path: Path) -> None:
    data = gzip.compress("".join("\t".join(r) + "\n" for r in VDJDB_ROWS).encode())
    cut = tmp_path / "vdjdb.tsv.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReferenceFileError) as exc:
        read_reference(cut)
    assert "corrupt gzip" in one_line(exc, cut)
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(ReferenceFileError) as exc:
        read_reference(empty)
    assert one_line(exc, empty) == f"{empty}, line 1: file is empty or has no header line"
    header_only = write(tmp_path / "header.tsv", [["junction_aa", "epitope"]])
    with pytest.raises(ReferenceFileError, match="no receptor left: 0 rows read"):
        read_reference(header_only)


def test_a_row_of_another_field_count_is_refused_with_its_line(tmp_path: Path) -> None:
    rows = [["cdr3", "v_gene", "j_gene", "epitope"], ["CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", "NLVPMVATV"],
            ["CASSIRSSYEQYF", "TRBV19", "GILGFVFTL"], ["CASSPDRGGYTF", "TRBV13-2", "TRBJ1-2", "SSLENFRAYV"]]
    path = write(tmp_path / "known.tsv", rows)  # line 3 lost its J gene: its epitope would be read as the J call
    with pytest.raises(ReferenceFileError) as exc:
        read_reference(path)
    assert one_line(exc, path) == f"{path}, line 3: 3 fields where the header has 4"


def test_the_shipped_vdjdb_extract_is_read_by_name_with_its_notice() -> None:
    """`vdjdb-cmv-trb` names the VDJdb extract shipped with the package (CMV-specific human TRB receptors,
    VDJdb's paired layout, lines unchanged), and its NOTICE gives the licence and what was taken."""
    from deeprc_hopfield.data import SHIPPED_LISTS, list_file

    path = list_file("vdjdb-cmv-trb")
    assert path == SHIPPED_LISTS["vdjdb-cmv-trb"] and path.is_file()
    ref = read_reference("vdjdb-cmv-trb", chain="TRB", species="human", antigen="CMV")
    assert ref.source == "VDJdb paired file" and len(ref.table) == 209
    assert set(ref.table["antigen"]) == {"CMV"} and ref.table["epitope"].str.contains("NLVPMVATV").sum() >= 70
    notice = (path.parent / "NOTICE.md").read_text()
    assert "CC BY-ND 4.0" in notice and "239 lines, 209 distinct beta CDR3s" in notice
    assert len(path.read_text().splitlines()) == 1 + 239
    assert list_file("some/other.tsv") == Path("some/other.tsv")
