"""Readers: each format on small hand-written files laid out as real exports are, detection,
gzip, the messy immunoSEQ cases, and the errors a user can meet."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deeprc_hopfield.errors import DeepRCError, InputFormatError
from deeprc_hopfield.genes import gene_family, normalise_gene, normalise_genes
from deeprc_hopfield.readers import FORMATS, TIDY_COLUMNS, detect_format, read_repertoire, read_repertoire_file
from deeprc_hopfield.qc import QCSettings
from deeprc_hopfield.readers.common import scan_file

# One codon per amino acid, to write nucleotide junctions whose translation is known.
CODON = {
    "A": "GCC", "C": "TGT", "D": "GAC", "E": "GAG", "F": "TTC", "G": "GGC", "H": "CAC", "I": "ATC",
    "K": "AAG", "L": "CTG", "M": "ATG", "N": "AAC", "P": "CCC", "Q": "CAG", "R": "CGC", "S": "AGC",
    "T": "ACC", "V": "GTG", "W": "TGG", "Y": "TAC", "*": "TGA",
}


def back_translate(aa: str) -> str:
    return "".join(CODON[a] for a in aa)


def write(path: Path, rows: list[list[str]], sep: str = "\t", gz: bool = False) -> Path:
    """Write rows (the first is the header) as a delimited file, gzip-compressed when asked."""
    text = "".join(sep.join(row) + "\n" for row in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def records(table: pd.DataFrame) -> list[tuple]:
    """Rows as plain tuples (NaN and pd.NA as None) for exact comparison."""
    out = []
    for row in table[TIDY_COLUMNS].itertuples(index=False):
        out.append(tuple(None if (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))) else v
                         for v in row))
    return out


# --- Files written as the pipelines write them -------------------------------------------------

# immunoSEQ v1 (snake_case "rearrangement" export), templates and reads both present.
IMMUNOSEQ_V1 = [
    ["rearrangement", "amino_acid", "frame_type", "rearrangement_type", "templates", "seq_reads",
     "frequency", "productive_frequency", "cdr3_length", "v_family", "v_gene", "v_allele",
     "d_family", "d_gene", "j_family", "j_gene", "j_allele"],
    ["CTGATTCTGGAGTCCGCCAGCACCAACCAGACATCTATGTACCTCTGTGCCAGCAGTTTAGG", "CASSLGQAYEQYF", "In", "VDJ",
     "12", "340", "1.2e-3", "1.5e-3", "39", "TCRBV05", "TCRBV05-01", "01", "TCRBD01", "TCRBD01-01",
     "TCRBJ02", "TCRBJ02-07", "01"],
    ["CTGATTCTGGAGTCCGCCAGCACCAACCAGACATCTATGTACCTCTGTGCCAGCAGTTGAGG", "", "Out", "VDJ",
     "3", "51", "3e-4", "", "40", "TCRBV07", "TCRBV07-02", "01", "", "", "TCRBJ01", "TCRBJ01-01", "01"],
    ["CTGATTCTGGAGTCCGCCAGCACCAACCAGACATCTATGTACCTCTGTGCCAGCAGTTAAGG", "CASS*GQF", "Stop", "VDJ",
     "1", "20", "1e-4", "", "24", "TCRBV05", "TCRBV05-01", "01", "", "", "TCRBJ02", "TCRBJ02-01", "01"],
    ["CTGATTCTGGAGTCCGCCAGCACCAACCAGACATCTATGTACCTCTGTGCCAGCAGTGCAGG", "CASSPTGGYGYTF", "In", "VDJ",
     "5", "77", "5e-4", "6e-4", "39", "TCRBV12", "unresolved", "", "", "", "TCRBJ01", "TCRBJ01-02", "01"],
    ["CTGATTCTGGAGTCCGCCAGCACCAACCAGACATCTATGTACCTCTGTGCCAGCAGTGAAGG", "CASSEGTEAFF", "In", "VDJ",
     "2", "31", "2e-4", "3e-4", "33", "unresolved", "unresolved", "", "", "", "unresolved",
     "unresolved", ""],
]
IMMUNOSEQ_V1_EXPECTED = [
    ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 12.0, True, None),
    (None, "TRBV7-2", "TRBJ1-1", 3.0, False, None),
    ("CASS*GQF", "TRBV5-1", "TRBJ2-1", 1.0, False, None),
    ("CASSPTGGYGYTF", "TRBV12", "TRBJ1-2", 5.0, True, None),  # unresolved gene: its family
    ("CASSEGTEAFF", None, None, 2.0, True, None),  # unresolved gene and family: missing
]

# immunoSEQ v2 (camelCase, as in the public immuneACCESS downloads).
IMMUNOSEQ_V2 = [
    ["nucleotide", "aminoAcid", "count (templates/reads)", "frequencyCount (%)", "cdr3Length",
     "vMaxResolved", "vFamilyName", "vGeneName", "vGeneAllele", "dMaxResolved", "jMaxResolved",
     "jFamilyName", "jGeneName", "jGeneAllele", "sequenceStatus"],
    ["GAGTCGCCCAGCCCCAACCAGACCTCTCTGTACTTCTGTGCCAGCAGTTTAGCGGGACAGGGGGCC", "CASSLAGQGAYEQYF", "25",
     "2.4E-3", "45", "TCRBV07-09*01", "TCRBV07", "TCRBV07-09", "01", "TCRBD02-01*02", "TCRBJ02-07*01",
     "TCRBJ02", "TCRBJ02-07", "01", "In"],
    ["GAGTCGCCCAGCCCCAACCAGACCTCTCTGTACTTCTGTGCCAGCAGTTTAGCGGGACAGGGGGCT", "", "4",
     "3.9E-4", "44", "TCRBV05-01*01", "TCRBV05", "TCRBV05-01", "01", "", "TCRBJ02-01*01",
     "TCRBJ02", "TCRBJ02-01", "01", "Out"],
    ["GAGTCGCCCAGCCCCAACCAGACCTCTCTGTACTTCTGTGCCAGCAGTTTAGCGGGACAGGGGGCA", "CASSLTGNTEAFF", "7",
     "6.7E-4", "39", "TCRBV12", "TCRBV12", "unresolved", "", "", "TCRBJ01-01*01",
     "TCRBJ01", "TCRBJ01-01", "01", "In"],
    ["GAGTCGCCCAGCCCCAACCAGACCTCTCTGTACTTCTGTGCCAGCAGTTTAGCGGGACAGGGGGCG", "CSARDRTGNGYTF", "1",
     "9.6E-5", "39", "TCRBV20-01*01", "TCRBV20", "TCRBV20-01", "01", "", "TCRBJ01-02*01",
     "TCRBJ01", "TCRBJ01-02", "01", "In"],
]
IMMUNOSEQ_V2_EXPECTED = [
    ("CASSLAGQGAYEQYF", "TRBV7-9", "TRBJ2-7", 25.0, True, None),
    (None, "TRBV5-1", "TRBJ2-1", 4.0, False, None),
    ("CASSLTGNTEAFF", "TRBV12", "TRBJ1-1", 7.0, True, None),
    ("CSARDRTGNGYTF", "TRBV20-1", "TRBJ1-2", 1.0, True, None),
]

MIXCR = [
    ["cloneId", "cloneCount", "cloneFraction", "targetSequences", "targetQualities",
     "allVHitsWithScore", "allDHitsWithScore", "allJHitsWithScore", "allCHitsWithScore",
     "nSeqCDR3", "minQualCDR3", "aaSeqCDR3", "refPoints"],
    ["0", "1520", "0.61", "TGTGCCAGCAGCCTGGGCCAG", "IIIIIIIIIIIIIIIIIIIII",
     "TRBV5-1*00(1234.5),TRBV5-5*00(800)", "TRBD1*00(40)", "TRBJ2-7*00(300)", "TRBC2*00(100)",
     "TGTGCCAGCAGCCTGGGCCAG", "40", "CASSLGQAYEQYF", ":::::::::"],
    ["1", "310.5", "0.12", "TGTGCCAGCAGCGTG", "IIIIIIIIIIIIIII",
     "TRBV7-2*00(1100)", "", "TRBJ1-1*00(280)", "", "TGTGCCAGCAGCGTG", "38", "CASS_TGF", ":::"],
    ["2", "12", "0.01", "TGTGCCTGGAGTGTG", "IIIIIIIIIIIIIII",
     "TRBV30*00(900)", "", "TRBJ2-3*00(250),TRBJ2-5*00(240)", "", "TGTGCCTGGAGTGTG", "35",
     "CAWSVDTDTQYF", ":::"],
]
# MiXCR 2's default export names the same columns in words.
MIXCR_2 = [["Clone ID", "Clone count", "Clone fraction", "Clonal sequence(s)", "Clonal sequence quality(s)",
            "All V hits", "All D hits", "All J hits", "All C hits", "N. Seq. CDR3", "Min. qual. CDR3",
            "AA. Seq. CDR3", "Ref. points"], *MIXCR[1:]]
MIXCR_EXPECTED = [
    ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 1520.0, None, None),
    ("CASS_TGF", "TRBV7-2", "TRBJ1-1", 310.5, False, None),  # '_': out of frame
    ("CAWSVDTDTQYF", "TRBV30", "TRBJ2-3", 12.0, None, None),
]

# Cell Ranger's filtered_contig_annotations.csv (comma separated; 'None' for what it lacks).
TENX = [
    ["barcode", "is_cell", "contig_id", "high_confidence", "length", "chain", "v_gene", "d_gene",
     "j_gene", "c_gene", "full_length", "productive", "cdr3", "cdr3_nt", "reads", "umis",
     "raw_clonotype_id", "raw_consensus_id"],
    ["AAACCTGAGAGCTGCA-1", "True", "AAACCTGAGAGCTGCA-1_contig_1", "True", "693", "TRB", "TRBV5-1",
     "TRBD1", "TRBJ2-7", "TRBC2", "True", "True", "CASSLGQAYEQYF", back_translate("CASSLGQAYEQYF"),
     "9048", "6", "clonotype1", "clonotype1_consensus_2"],
    ["AAACCTGAGAGCTGCA-1", "True", "AAACCTGAGAGCTGCA-1_contig_2", "True", "648", "TRA", "TRAV1-2",
     "None", "TRAJ33", "TRAC", "True", "True", "CAVMDSNYQLIW", back_translate("CAVMDSNYQLIW"),
     "4920", "3", "clonotype1", "clonotype1_consensus_1"],
    ["AAACCTGCACGGTAGA-1", "True", "AAACCTGCACGGTAGA-1_contig_1", "True", "550", "TRB", "TRBV7-2",
     "None", "TRBJ2-1", "TRBC2", "False", "None", "None", "None", "310", "2", "clonotype2", "None"],
    ["AAACCTGCAGTAACGG-1", "True", "AAACCTGCAGTAACGG-1_contig_1", "True", "612", "TRB", "TRBV5-1",
     "TRBD1", "TRBJ2-7", "TRBC2", "True", "True", "CASSLGQAYEQYF", back_translate("CASSLGQAYEQYF"),
     "7002", "4", "clonotype3", "clonotype3_consensus_1"],
]
TENX_EXPECTED = [
    ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 6.0, True, "TRB"),
    ("CAVMDSNYQLIW", "TRAV1-2", "TRAJ33", 3.0, True, "TRA"),
    (None, "TRBV7-2", "TRBJ2-1", 2.0, None, "TRB"),  # 'None' means missing, not a CDR3 'NONE'
    ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 4.0, True, "TRB"),
]

VDJTOOLS = [
    ["count", "freq", "cdr3nt", "cdr3aa", "v", "d", "j", "VEnd", "DStart", "DEnd", "JStart"],
    ["1017", "0.0502", back_translate("CASSLGQAYEQYF"), "CASSLGQAYEQYF", "TRBV5-1", "TRBD1",
     "TRBJ2-7", "15", "18", "22", "27"],
    ["52", "0.0026", back_translate("CASSPTGGYGYTF"), "CASSPTGGYGYTF", "TRBV12-3,TRBV12-4", ".",
     "TRBJ1-2", "14", "-1", "-1", "24"],
    ["3", "0.0001", back_translate("CSARDRTGNGYTF"), "CSARDRTGNGYTF", ".", ".", "TRBJ1-2", "10",
     "-1", "-1", "24"],
]
VDJTOOLS_EXPECTED = [
    ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 1017.0, None, None),
    ("CASSPTGGYGYTF", "TRBV12-3", "TRBJ1-2", 52.0, None, None),  # first of several calls
    ("CSARDRTGNGYTF", None, "TRBJ1-2", 3.0, None, None),
]

AIRR = [
    ["sequence_id", "sequence", "rev_comp", "productive", "v_call", "d_call", "j_call",
     "sequence_alignment", "germline_alignment", "junction", "junction_aa", "duplicate_count", "locus"],
    ["seq1", "ACGT", "F", "T", "TRBV5-1*01", "TRBD1*01", "TRBJ2-7*01", "", "",
     back_translate("CASSLGQAYEQYF"), "CASSLGQAYEQYF", "12", "TRB"],
    ["seq2", "ACGT", "F", "F", "TRBV7-2*01,TRBV7-3*01", "", "TRBJ1-1*01", "", "",
     back_translate("CASS") + "TG", "", "3", "TRB"],
    ["seq3", "ACGT", "F", "true", "TRBV20-1*01", "", "TRBJ1-2*01", "", "",
     back_translate("CSARDRTGNGYTF"), "CSARDRTGNGYTF", "", "TRB"],
]
AIRR_EXPECTED = [
    ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 12.0, True, "TRB"),
    (None, "TRBV7-2", "TRBJ1-1", 3.0, False, "TRB"),
    ("CSARDRTGNGYTF", "TRBV20-1", "TRBJ1-2", None, True, "TRB"),  # missing count stays missing
]

CASES = {
    "immunoseq_v1": ("immunoseq", IMMUNOSEQ_V1, "\t", IMMUNOSEQ_V1_EXPECTED),
    "immunoseq_v2": ("immunoseq", IMMUNOSEQ_V2, "\t", IMMUNOSEQ_V2_EXPECTED),
    "mixcr": ("mixcr", MIXCR, "\t", MIXCR_EXPECTED),
    "mixcr_2": ("mixcr", MIXCR_2, "\t", MIXCR_EXPECTED),
    "10x": ("10x", TENX, ",", TENX_EXPECTED),
    "vdjtools": ("vdjtools", VDJTOOLS, "\t", VDJTOOLS_EXPECTED),
    "airr": ("airr", AIRR, "\t", AIRR_EXPECTED),
}


# --- Each reader, plain and gzip ---------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", list(CASES))
def test_reader_values(tmp_path, case, gz):
    fmt, rows, sep, expected = CASES[case]
    path = write(tmp_path / f"{case}.{'csv' if sep == ',' else 'tsv'}{'.gz' if gz else ''}", rows, sep, gz)
    table, found = read_repertoire(path)
    assert found == fmt
    assert list(table.columns) == TIDY_COLUMNS
    assert records(table) == expected
    assert table["duplicate_count"].dtype == np.float64


@pytest.mark.parametrize("case", list(CASES))
def test_detect_format(tmp_path, case):
    fmt, rows, sep, _ = CASES[case]
    assert detect_format(write(tmp_path / "rep.txt", rows, sep)) == fmt
    # The extension is not trusted: a gzip file without '.gz' is still recognised, and vice versa.
    assert detect_format(write(tmp_path / "rep_gz.txt", rows, sep, gz=True)) == fmt
    assert set(FORMATS) >= {fmt}


def test_gzip_and_plain_give_the_same_table(tmp_path):
    plain, _ = read_repertoire(write(tmp_path / "a.tsv", IMMUNOSEQ_V2))
    packed, _ = read_repertoire(write(tmp_path / "a.tsv.gz", IMMUNOSEQ_V2, gz=True))
    pd.testing.assert_frame_equal(plain, packed)


@pytest.mark.parametrize("case", ["10x", "immunoseq_v2"])
def test_byte_order_mark_and_crlf(tmp_path, case):
    """Files saved by Excel start with a UTF-8 byte-order mark and end lines with CRLF."""
    fmt, rows, sep, expected = CASES[case]
    text = "".join(sep.join(row) + "\r\n" for row in rows)
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    table, found = read_repertoire(path)
    assert found == fmt
    assert records(table) == expected


# --- immunoSEQ: the messy exports ----------------------------------------------------------------


def test_immunoseq_v1_reads_when_templates_are_absent(tmp_path):
    header = ["amino_acid", "seq_reads", "frame_type", "v_family", "v_gene", "j_gene"]
    rows = [header, ["CASSLGQAYEQYF", "340", "In", "TCRBV05", "TCRBV05-01*01", "TCRBJ02-07*01"],
            ["CASSPTGGYGYTF", "77", "In", "TCRBV12", "TCRBV12-03/12-04", "TCRBJ01-02*01"]]
    table, fmt = read_repertoire(write(tmp_path / "v1.tsv", rows))
    assert fmt == "immunoseq"
    assert table["duplicate_count"].tolist() == [340.0, 77.0]
    assert table["v_call"].tolist() == ["TRBV5-1", "TRBV12"]  # an ambiguous gene falls back to the family
    assert table["j_call"].tolist() == ["TRBJ2-7", "TRBJ1-2"]


def test_immunoseq_v1_templates_written_as_na_falls_back_to_reads(tmp_path):
    """A `templates` column that is NA throughout holds no counts: `seq_reads` is used."""
    rows = [["amino_acid", "templates", "seq_reads", "frame_type", "v_gene", "j_gene"],
            ["CASSLGQAYEQYF", "NA", "340", "In", "TCRBV05-01", "TCRBJ02-07"],
            ["CASSPTGGYGYTF", "NA", "77", "In", "TCRBV12-03", "TCRBJ01-02"]]
    table, _ = read_repertoire(write(tmp_path / "v1.tsv", rows))
    assert table["duplicate_count"].tolist() == [340.0, 77.0]


def test_partly_missing_counts_stay_missing(tmp_path):
    rows = [["amino_acid", "templates", "seq_reads", "frame_type"],
            ["CASSLGQAYEQYF", "12", "340", "In"],
            ["CASSPTGGYGYTF", "NA", "77", "In"]]
    table, _ = read_repertoire(write(tmp_path / "v1.tsv", rows))
    assert table["duplicate_count"].iloc[0] == 12.0 and np.isnan(table["duplicate_count"].iloc[1])


def test_immunoseq_v2_reads_only(tmp_path):
    rows = [["aminoAcid", "count (reads)", "vGeneName", "jGeneName", "sequenceStatus"],
            ["CASSLGQAYEQYF", "88", "TCRBV05-01", "TCRBJ02-07", "In"],
            ["CASSLGQAYEQF", "9", "TCRBV05-01", "TCRBJ02-07", "Stop"]]
    table, _ = read_repertoire(write(tmp_path / "v2.tsv", rows))
    assert table["duplicate_count"].tolist() == [88.0, 9.0]
    assert table["productive"].tolist() == [True, False]


def test_immunoseq_frequency_only_export_invents_nothing(tmp_path):
    """No counts and no V/J columns: counts are NaN and genes None, never made up."""
    rows = [["nucleotide", "aminoAcid", "frequencyCount (%)", "cdr3Length"],
            ["TGTGCCAGCAGCCTGGGC", "CASSLGQAYEQYF", "0.0243", "39"],
            ["TGTGCCAGCAGCCCGACC", "CASSPTGGYGYTF", "0.0011", "39"],
            ["TGTGCCAGCAGCGAGGGC", "", "0.0007", "32"]]
    table, fmt = read_repertoire(write(tmp_path / "freq.tsv.gz", rows, gz=True))
    assert fmt == "immunoseq"
    assert table["junction_aa"].tolist() == ["CASSLGQAYEQYF", "CASSPTGGYGYTF", None]
    assert table["duplicate_count"].isna().all()
    assert table["v_call"].isna().all() and table["j_call"].isna().all()
    assert table["productive"].isna().all()


def test_immunoseq_gene_from_max_resolved_family_is_not_made_a_gene(tmp_path):
    """`vMaxResolved` holding only a family (TCRBV05) must not become a member gene (TRBV5-1)."""
    rows = [["aminoAcid", "count (templates/reads)", "vMaxResolved", "jMaxResolved"],
            ["CASSLGQAYEQYF", "3", "TCRBV05", "TCRBJ02-07*01"],
            ["CASSPTGGYGYTF", "2", "TCRBV07-09*01", "TCRBJ02"]]
    table, _ = read_repertoire(write(tmp_path / "max.tsv", rows))
    assert table["v_call"].tolist() == ["TRBV5", "TRBV7-9"]
    assert table["j_call"].tolist() == ["TRBJ2-7", "TRBJ2"]


# --- AIRR variants --------------------------------------------------------------------------------


def test_airr_cdr3_aa_only(tmp_path):
    """IMGT CDR3s get their conserved ends back: C before, F after (W for a heavy chain's J)."""
    rows = [["sequence_id", "productive", "v_call", "j_call", "cdr3_aa", "consensus_count"],
            ["a", "TRUE", "TRBV5-1*01", "TRBJ2-7*01", "ASSLGQAYEQY", "7"],
            ["b", "FALSE", "TRBV5-1*01", "TRBJ2-7*01", "ASSLG", "1"],
            ["c", "TRUE", "IGHV3-23*01", "IGHJ4*02", "AKDRGYFDY", "2"],
            ["d", "TRUE", "TRBV5-1*01", "TRBJ2-7*01", "", "2"]]
    read = read_repertoire_file(write(tmp_path / "cdr3.tsv", rows))
    assert read.fmt == "airr" and (read.cdr3.column, read.cdr3.declared, read.cdr3.found) == ("cdr3_aa",) + 2 * (
        "imgt_cdr3",)
    assert records(read.table) == [("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 7.0, True, None),
                                   ("CASSLGF", "TRBV5-1", "TRBJ2-7", 1.0, False, None),
                                   ("CAKDRGYFDYW", "IGHV3-23", "IGHJ4", 2.0, True, None),
                                   (None, "TRBV5-1", "TRBJ2-7", 2.0, True, None)]


def test_airr_empty_junction_takes_its_cdr3_aa(tmp_path):
    """AIRR allows a blank `junction_aa`: a row with a filled `cdr3_aa` keeps its receptor (anchors added),
    a row with both blank stays empty (dropped by QC and counted); filled junctions are kept as they are."""
    rows = [["sequence_id", "junction_aa", "cdr3_aa", "v_call", "j_call", "duplicate_count"],
            ["a", "CASSLGQAYEQYF", "ASSLGQAYEQY", "TRBV5-1*01", "TRBJ2-7*01", "3"],
            ["b", "", "ASSPTGGYGYT", "TRBV7-9*01", "TRBJ1-2*01", "2"],
            ["c", "", "AKDRGYFDY", "IGHV3-23*01", "IGHJ4*02", "1"],
            ["d", "", "", "TRBV5-1*01", "TRBJ2-7*01", "4"]]
    read = read_repertoire_file(write(tmp_path / "blank_junctions.tsv", rows))
    assert read.fmt == "airr" and read.cdr3.column == "junction_aa (+ cdr3_aa for 2 rows)"
    assert read.table["junction_aa"].tolist() == ["CASSLGQAYEQYF", "CASSPTGGYGYTF", "CAKDRGYFDYW", None]


def _ireceptor_rows(junctions: list[str], blank: set[int], columns: dict[str, str]) -> list[list[str]]:
    """An AIRR file laid out as iReceptor exports it: `junction` (nucleotides) always filled, `junction_aa`
    blank in the rows `blank`; `columns` adds more columns with the same value in every row (e.g. an empty
    `cdr3_aa`)."""
    header = ["sequence_id", "productive", "v_call", "j_call", "junction", "junction_aa", "duplicate_count",
              *columns]
    return [header] + [[f"s{i}", "T", "TRBV5-1*01", "TRBJ2-7*01", back_translate(aa), "" if i in blank else aa,
                        "1", *columns.values()] for i, aa in enumerate(junctions)]


JUNCTIONS = ["CASS" + "".join(p) + "YEQYF" for p in zip("ACDEGHIKLMNPQRSTVWYA", "LGQAYSPTGRDNKEHMIVWC")]


def test_airr_blank_junction_aa_rows_take_the_translated_junction(tmp_path, caplog):
    """iReceptor leaves `junction_aa` blank in some rows but fills `junction`: those rows keep their receptor,
    translated; the log and the provenance say so."""
    rows = _ireceptor_rows(JUNCTIONS, blank={3, 11}, columns={})
    with caplog.at_level("INFO", logger="deeprc_hopfield"):
        read = read_repertoire_file(write(tmp_path / "ireceptor.tsv", rows))
    assert read.table["junction_aa"].tolist() == JUNCTIONS
    assert read.table["productive"].tolist() == [True] * len(JUNCTIONS)
    assert read.cdr3.column == "junction_aa (+ junction translated for 2 rows)" and read.cdr3.found == "junction"
    assert "junction translated for 2 rows" in caplog.text


@pytest.mark.parametrize("columns", [{}, {"cdr3_aa": ""}], ids=["junction_aa", "junction_aa+cdr3_aa"])
def test_airr_all_blank_junction_aa_is_read_from_junction(tmp_path, columns):
    """A `junction_aa` (and `cdr3_aa`) present but empty throughout does not decide the column: `junction` does."""
    read = read_repertoire_file(write(tmp_path / "blank.tsv", _ireceptor_rows(JUNCTIONS, set(range(20)), columns)))
    assert read.table["junction_aa"].tolist() == JUNCTIONS
    assert (read.cdr3.column, read.cdr3.found) == ("junction translated", "junction")


def test_airr_empty_cdr3_aa_without_junction_aa_is_read_from_junction(tmp_path):
    """No `junction_aa` and an empty `cdr3_aa`: read from `junction`; out-of-frame and stop-codon translations are
    dropped by QC under their reasons, as for any translated column."""
    rows = [["sequence_id", "v_call", "j_call", "cdr3_aa", "junction", "duplicate_count"]]
    rows += [[f"s{i}", "TRBV5-1*01", "TRBJ2-7*01", "", back_translate(aa), "2"] for i, aa in enumerate(JUNCTIONS)]
    rows += [["oof", "TRBV5-1*01", "TRBJ2-7*01", "", back_translate("CASSF") + "A", "2"],
             ["stop", "TRBV5-1*01", "TRBJ2-7*01", "", back_translate("CASS*YF"), "2"]]
    read = read_repertoire_file(write(tmp_path / "cdr3_empty.tsv", rows))
    assert read.table["junction_aa"].tolist() == JUNCTIONS + [None, "CASS*YF"]
    assert read.table["productive"].tolist()[-2] is False
    assert (read.cdr3.column, read.cdr3.found) == ("junction translated", "junction")
    from deeprc_hopfield.ingest import parse_repertoire

    parsed = parse_repertoire(tmp_path / "cdr3_empty.tsv", "auto", QCSettings())
    assert (parsed.qc["non_productive"], parsed.qc["stop_codon"], parsed.qc["kept"]) == (1, 1, 20)


@pytest.mark.parametrize("case", list(CASES))
def test_every_other_reader_gives_junctions(tmp_path, case):
    fmt, rows, sep, _ = CASES[case]
    read = read_repertoire_file(write(tmp_path / f"{case}.txt", rows, sep))
    assert read.cdr3.declared == read.cdr3.found == "junction" and read.cdr3.anchored > 0.5


def test_the_anchors_overrule_a_column_that_holds_the_other_convention(tmp_path, caplog):
    """20 sequences or more: a `junction_aa` column without anchors holds IMGT CDR3s, a `cdr3_aa`
    column with them holds junctions; the log warns. Fewer: the column's name is taken."""
    rng = np.random.default_rng(0)
    middles = ["ASS" + "".join(rng.choice(list("ACDEGHIKLMNPQRSTVY"), 6)) + "QY" for _ in range(25)]
    header = ["sequence_id", "v_call", "j_call", "duplicate_count"]
    for column, sequences, found in (("junction_aa", middles, "imgt_cdr3"),
                                     ("cdr3_aa", [f"C{m}F" for m in middles], "junction"),
                                     ("junction_aa", middles[:19], "junction")):
        rows = [header + [column]] + [[f"s{i}", "TRBV5-1", "TRBJ2-7", "1", m] for i, m in enumerate(sequences)]
        with caplog.at_level("WARNING", logger="deeprc_hopfield"):
            caplog.clear()
            read = read_repertoire_file(write(tmp_path / "r.tsv", rows))
        assert read.cdr3.found == found, (column, len(sequences))
        assert read.table["junction_aa"].str.startswith("C").all() == (found == "imgt_cdr3" or column == "cdr3_aa")
        assert ("read as" in caplog.text) == (len(sequences) >= 20)


def test_airr_nucleotide_junction_is_translated(tmp_path):
    rows = [["sequence_id", "productive", "v_call", "j_call", "junction", "duplicate_count"],
            ["a", "T", "TRBV5-1*01", "TRBJ2-7*01", back_translate("CASSLGQAYEQYF"), "4"],
            ["b", "T", "TRBV5-1*01", "TRBJ2-7*01", back_translate("CASSLGQAYEQYF").lower(), "1"],
            ["c", "", "TRBV5-1*01", "TRBJ2-7*01", back_translate("CASS*GQF"), "2"],
            ["d", "T", "TRBV5-1*01", "TRBJ2-7*01", back_translate("CASSF") + "A", "5"],
            ["e", "T", "TRBV5-1*01", "TRBJ2-7*01", "", "6"]]
    table, fmt = read_repertoire(write(tmp_path / "nt.tsv", rows))
    assert fmt == "airr"
    assert table["junction_aa"].tolist() == ["CASSLGQAYEQYF", "CASSLGQAYEQYF", "CASS*GQF", None, None]
    # out of frame: non-productive whatever the file said; unknown stays unknown
    assert table["productive"].tolist()[:4] == [True, True, pd.NA, False]


def test_airr_junction_that_is_not_nucleotides_names_line_and_column(tmp_path):
    rows = [["sequence_id", "junction", "v_call", "duplicate_count"],
            ["a", back_translate("CASSF"), "TRBV5-1*01", "3"],
            ["b", "TGT-CCAGCTTC", "TRBV5-1*01", "3"]]
    with pytest.raises(InputFormatError, match="not a nucleotide sequence") as info:
        read_repertoire(write(tmp_path / "gap.tsv", rows))
    assert (info.value.line, info.value.column) == (3, "junction")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.builds(lambda middle, end: "C" + middle + end,  # junctions: a conserved C and F/W at the ends
                      st.text(alphabet="ACDEFGHIKLMNPQRSTVWY", max_size=28), st.sampled_from("FW")),
            st.sampled_from(["TRBV5-1", "TRBV7-9", "TRBV20-1", "TRBV12-3", None]),
            st.sampled_from(["TRBJ2-7", "TRBJ1-1", "TRBJ2-3", None]),
            st.one_of(st.none(), st.integers(min_value=0, max_value=10**7)),
            st.one_of(st.none(), st.booleans()),
        ),
        min_size=1,
        max_size=25,
    ),
    st.booleans(),
    st.booleans(),
)
def test_any_valid_airr_table_round_trips(tmp_path, rows, as_nucleotides, gz):
    """Whatever valid AIRR table of junctions is written, the reader returns its values unchanged."""
    column = "junction" if as_nucleotides else "junction_aa"
    lines = [["sequence_id", column, "v_call", "j_call", "duplicate_count", "productive"]]
    for i, (aa, v, j, count, productive) in enumerate(rows):
        lines.append([f"s{i}", back_translate(aa) if as_nucleotides else aa,
                      f"{v}*01" if v else "", f"{j}*01" if j else "",
                      "" if count is None else str(count), {None: "", True: "T", False: "F"}[productive]])
    table, fmt = read_repertoire(write(tmp_path / "rt.tsv", lines, gz=gz))
    assert fmt == "airr"
    expected = [(aa, v, j, None if c is None else float(c), p, None) for aa, v, j, c, p in rows]
    assert records(table) == expected


# --- Gene names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, gene",
    [
        ("TCRBV05-01*01", "TRBV5-1"),
        ("TCRBV05-01", "TRBV5-1"),
        ("TCRBJ02-07*01", "TRBJ2-7"),
        ("TRBV5-1*00", "TRBV5-1"),  # MiXCR's built-in library numbers every allele *00
        ("TRBV7-2*01,TRBV7-3*01", "TRBV7-2"),  # several AIRR calls: the first
        ("IGHV3-23D*01,IGHV3-23*01", "IGHV3-23"),  # a gene and its distal duplicate tied: the proximal, either order
        ("IGHV3-23*01,IGHV3-23D*01", "IGHV3-23"),
        ("IGHV3-23D*01", "IGHV3-23D"),  # alone, as called
        ("TRBV30", "TRBV30"),
        ("TRAJ33", "TRAJ33"),
        ("IGHV3-23*01", "IGHV3-23"),
        ("TCRBV05", "TRBV5"),  # a family is not turned into one of its genes
        ("TRBJ2", "TRBJ2"),
        ("IGHV03", "IGHV3"),  # an immunoglobulin family too (tidytcells resolves none)
        ("IGKV1", "IGKV1"),
        ("IGHV9", None),  # no such family
        ("unresolved", None),
        ("TCRBV12-03/12-04", None),
        ("None", None),
        ("", None),
    ],
)
def test_normalise_gene(raw, gene):
    assert normalise_gene(raw) == gene


def test_a_distal_duplicate_is_of_its_proximal_gene_s_family():
    assert [gene_family(g) for g in ("IGKV1D-39", "IGKV1-39", "IGHV3-23D", "IGKV2D-29", "TRAV14D-1", "TRBV5-1",
                                     "TRAV29/DV5", "TRDV1", "TRAV38-2/DV8*01", "TRBV20/OR9-2", "TRAV11D")] \
        == ["IGKV1", "IGKV1", "IGHV3", "IGKV2", "TRAV14", "TRBV5", "TRAV29/DV5", "TRDV1", "TRAV38", "TRBV20/OR9",
            "TRAV11D"]
    # a family-only call of a delta-name gene meets it (tidytcells completes TCRAV29 to TRAV29/DV5), and a mouse
    # gene TRAV11 stays apart from its bare distal duplicate TRAV11D (no wildcard: both are genes)
    assert normalise_gene("TCRAV29", "family") == gene_family("TRAV29/DV5*01") == "TRAV29/DV5"
    assert normalise_gene("TRAV11", "family", species="mouse") == "TRAV11" != gene_family("TRAV11D")


def test_normalise_genes_family_level_and_missing():
    names = pd.Series(["TCRBV05-01*01", None, "TCRBV05", "unresolved", "TCRBV05-01*01"])
    got = normalise_genes(names, level="family").astype(object)
    assert [None if pd.isna(x) else x for x in got] == ["TRBV5", None, "TRBV5", None, "TRBV5"]


# --- Errors a user can meet -----------------------------------------------------------------------


def test_unrecognised_header(tmp_path):
    path = write(tmp_path / "odd.tsv", [["sample", "sequence", "value"], ["x", "CASSF", "1"]])
    with pytest.raises(InputFormatError, match="unrecognised") as info:
        read_repertoire(path)
    assert info.value.path == str(path)
    assert "sequence" in str(info.value)  # says what it found
    with pytest.raises(InputFormatError, match="unrecognised"):
        detect_format(path)


def test_gene_names_of_another_species_are_counted_and_ingest_warns(tmp_path, caplog):
    """Mouse TRBV13-2 is no human IMGT gene: kept as a missing call, counted per name, and ingest says so."""
    from deeprc_hopfield.ingest import ingest

    rows = [["junction_aa", "v_call", "j_call"], ["CASSLGQAYEQYF", "TRBV13-2*01", "TRBJ2-7"],
            ["CASSPTGGYGYTF", "TRBV13-2*01", "TRBJ2-7"], ["CASSLAGGYEQYF", "unresolved", "TRBJ2-7"],
            ["CASSQDRGYEQYF", "TRBV5-1", "TRBJ2-7"]]
    (tmp_path / "reps").mkdir()
    read = read_repertoire_file(write(tmp_path / "reps" / "m.tsv", rows))
    assert read.unresolved_genes == {"TRBV13-2*01": 2}  # "unresolved" says no call: not counted
    assert read.table["v_call"].isna().tolist() == [True, True, True, False]
    write(tmp_path / "reps" / "n.tsv", rows[:3])
    (tmp_path / "meta.csv").write_text("subject_id,filename,label\nM1,m.tsv,1\nM2,n.tsv,0\n")
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        ingest(tmp_path / "meta.csv", tmp_path / "reps", tmp_path / "m.h5", progress=False)
    assert "1 distinct V/J names in 4 of 6 rows (66.7%) are no human IMGT gene" in caplog.text
    assert "TRBV13-2*01 (4)" in caplog.text
    assert "4 of these rows name mouse genes: is the cohort mouse? use --species mouse" in caplog.text


@pytest.mark.parametrize("name, gene, family", [
    ("TRBV13-2", "TRBV13-2", "TRBV13"),  # no human gene
    ("TCRBV13-02*01", "TRBV13-2", "TRBV13"),  # Adaptive's spelling
    ("TRBV12-1", "TRBV12-1", "TRBV12"),
    ("TRBV1", "TRBV1", "TRBV1"),
    ("TRBV5-1*01", "TRBV5", "TRBV5"),  # the mouse family has one gene, TRBV5
    ("TRBV13", "TRBV13", "TRBV13"),  # a family stays one (tidytcells completes it to TRBV13-1)
    ("TRAV6", "TRAV6", "TRAV6"),
    ("TRAV6-7/DV9", "TRAV6-7/DV9", "TRAV6"),
    ("TRAV14D-2", "TRAV14D-2", "TRAV14"),  # a distal duplicate is of its proximal gene's family
    ("TRBJ2-7", "TRBJ2-7", "TRBJ2"),
    ("IGHV1-72", "IGHV1-72", "IGHV1"),  # tidytcells has no mouse IG tables: kept when IMGT-shaped
    ("IGHV01-072*01", "IGHV1-72", "IGHV1"),
    ("IGHV5-9-1", "IGHV5-9-1", "IGHV5"),
    ("TRBV7-2", None, None),  # a human gene, no mouse one
    ("IGHV1-72x", None, None),
    ("unresolved", None, None),
])
def test_mouse_gene_names_are_normalised_with_the_mouse_tables(name, gene, family):
    assert normalise_gene(name, "gene", "mouse") == gene
    assert normalise_gene(name, "family", "mouse") == family


def test_mouse_only_names_are_no_human_genes_and_an_unknown_species_is_one_line():
    assert [normalise_gene(name) for name in ("TRBV13-2", "TRAV6-7/DV9", "IGHV1-72")] == [None, None, None]
    assert normalise_gene("TRBV12-1", species="human") == "TRBV12-1"  # a name of both species: read as asked
    with pytest.raises(DeepRCError, match=r"^unknown species 'rat'; choose one of human, mouse$"):
        normalise_gene("TRBV13-2", species="rat")


def test_a_mouse_file_read_as_mouse_keeps_its_gene_calls(tmp_path):
    rows = [["junction_aa", "v_call", "j_call"], ["CASGDAGGRNTLYF", "TRBV13-2*01", "TRBJ2-7*01"],
            ["CASSQDWGGYEQYF", "TRBV5*01", "TRBJ2-7*01"], ["CTCSAETLYF", "TRAV6-7/DV9*01", "TRAJ33*01"]]
    path = write(tmp_path / "m.tsv", rows)
    read = read_repertoire_file(path, species="mouse")
    assert read.table["v_call"].tolist() == ["TRBV13-2", "TRBV5", "TRAV6-7/DV9"] and read.unresolved_genes == {}
    as_human = read_repertoire_file(path)
    assert as_human.table["v_call"].isna().tolist() == [True, False, True]
    assert as_human.unresolved_genes == {"TRBV13-2*01": 1, "TRAV6-7/DV9*01": 1}


def test_ingest_of_a_mouse_cohort_as_human_says_use_species_mouse(mouse_cohort, tmp_path, caplog):
    """Most names a human read leaves unresolved are mouse genes: the warning says which --species reads them; a
    cohort of typos gets no such advice."""
    from deeprc_hopfield.ingest import ingest

    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        ingest(*mouse_cohort, tmp_path / "as_human.h5", progress=False)
    assert "are no human IMGT gene and were kept as missing calls" in caplog.text
    assert "name mouse genes: is the cohort mouse? use --species mouse (the workflow: species: mouse)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        ingest(*mouse_cohort, tmp_path / "as_mouse.h5", progress=False, species="mouse")
    assert "IMGT gene" not in caplog.text


def test_ingest_warns_when_the_store_pools_several_chains(tmp_path, caplog):
    from deeprc_hopfield.ingest import ingest

    (tmp_path / "reps").mkdir()
    rows = [["junction_aa", "v_call", "j_call"]] + [["CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7"]] * 8 + [
        ["CAVRDSNYQLIW", "TRAV1-2", "TRAJ33"]] * 2
    write(tmp_path / "reps" / "a.tsv", rows)
    write(tmp_path / "reps" / "b.tsv", rows[:9])
    (tmp_path / "meta.csv").write_text("subject_id,filename,label\nA,a.tsv,1\nB,b.tsv,0\n")
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        ingest(tmp_path / "meta.csv", tmp_path / "reps", tmp_path / "s.h5", progress=False)
    assert "the store holds sequences of several chains (by their V genes: TRB " in caplog.text
    assert "give --chain (e.g. --chain TRB) to keep one" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        ingest(tmp_path / "meta.csv", tmp_path / "reps", tmp_path / "t.h5", progress=False, qc=QCSettings(chain="TRB"))
    assert "several chains" not in caplog.text
    beta = [rows[0]] + [[f"CASSLG{a}AYEQYF", "TRBV5-1", "TRBJ2-7"] for a in "ACDEFGHIK"]
    alpha = [rows[0]] + [["CAVRDSNYQLIW", "TRAV1-2", "TRAJ33"]] * 9  # a file of another chain among the cohort's
    write(tmp_path / "reps" / "b.tsv", beta)
    write(tmp_path / "reps" / "c.tsv", alpha)
    (tmp_path / "meta.csv").write_text("subject_id,filename,label\nB,b.tsv,0\nC,c.tsv,1\n")
    caplog.clear()
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        ingest(tmp_path / "meta.csv", tmp_path / "reps", tmp_path / "u.h5", progress=False)
    assert "(by their V genes: TRB 90.0%, TRA 10.0%); repertoires mostly of another chain than TRB: C (TRA 100%); " \
           "a model pools them" in caplog.text
    many = [rows[0]] + [[f"CASS{a}{b}{c}YEQYF", "TRBV5-1", "TRBJ2-7"] for a in "ACDEF" for b in "GHIKL" for c in "MNPQ"]
    write(tmp_path / "reps" / "b.tsv", many)  # 100 TRB sequences against C's 1 TRA: under 1% of the store
    caplog.clear()
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        ingest(tmp_path / "meta.csv", tmp_path / "reps", tmp_path / "w.h5", progress=False)
    assert "(by their V genes: TRB 99.0%, TRA 1.0%); repertoires mostly of another chain than TRB: C (TRA 100%)" \
           in caplog.text
    from deeprc_hopfield.report import cohort_section
    from deeprc_hopfield.store import RepertoireStore

    with RepertoireStore(tmp_path / "w.h5") as store:  # kept for the report and inspect, not in the log alone
        assert len(store.warnings) == 1 and "repertoires mostly of another chain than TRB: C" in store.warnings[0]
    assert "<b>At ingest:</b> the store holds sequences of several chains" in cohort_section(tmp_path / "w.h5")
    with RepertoireStore(tmp_path / "t.h5") as store:
        assert store.warnings == []
    from deeprc_hopfield.errors import QCError

    with pytest.raises(QCError, match=r"c.tsv: no sequence left after quality control \(9 rows; dropped: "
                                      r"other_chain=9\); the file holds TRA 9, no TRB \(--chain TRB\): is it of this "
                                      r"cohort\? Leave it out of the metadata table, or give the chain it holds"):
        ingest(tmp_path / "meta.csv", tmp_path / "reps", tmp_path / "v.h5", progress=False, qc=QCSettings(chain="TRB"))


def test_a_file_of_other_chains_only_is_refused_naming_the_chains_it_holds(tmp_path):
    """A 10x BCR file read as TRB (10x's default) keeps nothing: the error names its chains and --chain."""
    from deeprc_hopfield.errors import QCError
    from deeprc_hopfield.ingest import parse_repertoire

    bcr = [TENX[0]] + [[c.replace("TRB", "IGH").replace("TRA", "IGK") for c in row] for row in TENX[1:]]
    path = write(tmp_path / "bcr.csv", bcr, ",")
    with pytest.raises(QCError, match=r"dropped: other_chain=\d+\); the file holds IGH \d+, IGK \d+, no TRB \(10x "
                                      r"files are read as TRB unless --chain says otherwise\): give --chain"):
        parse_repertoire(path, "auto", QCSettings())


def test_upper_case_header_is_told_that_names_are_case_sensitive(tmp_path):
    path = write(tmp_path / "upper.tsv", [["JUNCTION_AA", "V_CALL"], ["CASSLGQAYEQYF", "TRBV5-1"]])
    with pytest.raises(InputFormatError, match="case-sensitive.*JUNCTION_AA -> junction_aa.*read as airr"):
        detect_format(path)
    with pytest.raises(InputFormatError) as info:
        detect_format(write(tmp_path / "odd.tsv", [["SAMPLE", "VALUE"], ["x", "1"]]))
    assert "case-sensitive" not in str(info.value)


@pytest.mark.parametrize(
    "fmt, column",
    [("immunoseq", "aminoAcid"), ("10x", "cdr3"), ("vdjtools", "cdr3aa"), ("mixcr", "aaSeqCDR3")],
)
def test_format_override_missing_column(tmp_path, fmt, column):
    """`--format X` on a file without X's CDR3 column is refused, naming the column."""
    path = write(tmp_path / "airr.tsv", AIRR)
    with pytest.raises(InputFormatError, match=f"'{column}'") as info:
        read_repertoire(path, fmt)
    assert str(path) in str(info.value)


def test_format_override_airr_on_immunoseq(tmp_path):
    path = write(tmp_path / "v2.tsv", IMMUNOSEQ_V2)
    with pytest.raises(InputFormatError, match="'junction_aa'"):
        read_repertoire(path, "airr")


def test_format_override_is_used(tmp_path):
    """A file that looks like 10x but is asked for as AIRR is read as AIRR."""
    rows = [["barcode", "chain", "cdr3", "sequence_id", "junction_aa", "v_call", "duplicate_count"],
            ["AAAC-1", "TRB", "XXXX", "s1", "CASSLGQAYEQYF", "TRBV5-1*01", "2"]]
    path = write(tmp_path / "both.tsv", rows)
    assert read_repertoire(path)[1] == "10x"
    table, fmt = read_repertoire(path, "airr")
    assert fmt == "airr"
    assert table["junction_aa"].tolist() == ["CASSLGQAYEQYF"]


def test_unknown_format_name(tmp_path):
    with pytest.raises(InputFormatError, match="unknown format 'adaptive'"):
        read_repertoire(write(tmp_path / "a.tsv", AIRR), "adaptive")


def test_missing_file(tmp_path):
    with pytest.raises(InputFormatError, match="not found"):
        read_repertoire(tmp_path / "nothing.tsv")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("")
    with pytest.raises(InputFormatError, match="empty"):
        read_repertoire(path)


def _big_gzip() -> bytes:
    rows = [["junction_aa", "v_call", "j_call", "duplicate_count"]]
    rows += [[f"CASS{'G' * (i % 9)}YEQYF", "TRBV5-1", "TRBJ2-7", str(i)] for i in range(20000)]
    return gzip.compress("".join("\t".join(r) + "\n" for r in rows).encode())


@pytest.mark.parametrize("cut", [0.5, 0.0001], ids=["in_body", "in_header"])
def test_truncated_gzip(tmp_path, cut):
    data = _big_gzip()
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(data[: max(12, int(len(data) * cut))])
    with pytest.raises(InputFormatError, match="gzip") as info:
        read_repertoire(path)
    assert info.value.path == str(path)


def test_corrupt_gzip(tmp_path):
    data = bytearray(_big_gzip())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path = tmp_path / "bad.tsv.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputFormatError, match="gzip"):
        read_repertoire(path)


def test_not_text(tmp_path):
    path = tmp_path / "binary.tsv"
    path.write_bytes(b"junction_aa\tv_call\n\xff\xfe\x00\x81\n")
    with pytest.raises(InputFormatError, match="UTF-8"):
        read_repertoire(path)


@pytest.mark.parametrize(
    "case, column, value",
    [("immunoseq_v1", "templates", "12a"), ("immunoseq_v2", "count (templates/reads)", "many"),
     ("mixcr", "cloneCount", "1,520"), ("vdjtools", "count", "-3"), ("airr", "duplicate_count", "x")],
)
def test_non_numeric_count_names_line_and_column(tmp_path, case, column, value):
    fmt, rows, sep, _ = CASES[case]
    rows = [list(r) for r in rows]
    rows[2][rows[0].index(column)] = value  # the second data row: line 3
    path = write(tmp_path / "bad.tsv", rows, sep)
    with pytest.raises(InputFormatError) as info:
        read_repertoire(path)
    assert info.value.line == 3
    assert info.value.column == column
    assert "line 3" in str(info.value) and f"'{column}'" in str(info.value)


def test_bad_productive_value_names_line_and_column(tmp_path):
    rows = [list(r) for r in AIRR]
    rows[3][rows[0].index("productive")] = "maybe"
    with pytest.raises(InputFormatError, match="maybe") as info:
        read_repertoire(write(tmp_path / "bad.tsv", rows))
    assert (info.value.line, info.value.column) == (4, "productive")


def test_every_bad_value_of_a_file_is_in_its_one_error(tmp_path):
    """The audit's file: 'ten' on line 13 stopped the run, then '-2' on line 19, then '1,234': one error now names
    all three (first line and column as the error's own, the others listed below it, one a line), and a bad
    productive flag of the same file beside them, in line order."""
    rows = [["junction_aa", "v_call", "j_call", "duplicate_count", "productive"]]
    rows += [[f"CASS{'G' * (k % 7)}F", "TRBV5-1", "TRBJ2-7", str(k + 1), "T"] for k in range(30)]
    rows[12][3], rows[18][3], rows[24][3] = "ten", "-2", "1,234"  # lines 13, 19, 25
    rows[15][4] = "maybe"  # line 16
    rows[20][3] = "NA"  # a missing count: not a bad value
    with pytest.raises(InputFormatError) as info:
        read_repertoire(write(tmp_path / "PT04_badrows.tsv", rows))
    error = info.value
    assert (error.line, error.column) == (13, "duplicate_count")
    lines = str(error).splitlines()
    assert lines == [
        f"{tmp_path / 'PT04_badrows.tsv'}, line 13, column 'duplicate_count': count 'ten' is not a non-negative "
        "number; 3 more problems in this file:",
        "  line 16, column 'productive': 'maybe' is not a recognised yes/no value",
        "  line 19, column 'duplicate_count': count '-2' is not a non-negative number",
        "  line 25, column 'duplicate_count': count '1,234' is not a non-negative number (write counts without "
        "thousands separators)",
    ]


def test_a_file_of_many_bad_values_lists_the_first_ten_and_counts_the_rest(tmp_path):
    rows = [["junction_aa", "duplicate_count"]] + [["CASSF", "many"]] * 25 + [["CASSF", "3"]]
    with pytest.raises(InputFormatError) as info:
        read_repertoire(write(tmp_path / "bad.tsv", rows))
    lines = str(info.value).splitlines()
    assert lines[0].endswith("line 2, column 'duplicate_count': count 'many' is not a non-negative number; 24 more "
                             "problems in this file:")
    assert [line.split(",")[0] for line in lines[1:10]] == [f"  line {k}" for k in range(3, 12)]
    assert lines[10:] == ["  ... and 15 more"]


def test_rows_of_another_field_count_are_listed_in_one_error(tmp_path):
    """A row with a stray field and two cut ones: one error naming the three lines."""
    header, good = ["junction_aa", "v_call", "j_call", "duplicate_count"], ["CASSLGF", "TRBV5-1", "TRBJ2-7", "3"]
    rows = [header] + [good] * 20
    rows[4], rows[9], rows[15] = good + ["x"], good[:2], good[:3]
    with pytest.raises(InputFormatError) as info:
        read_repertoire(write(tmp_path / "shifted.tsv", rows))
    assert str(info.value).splitlines() == [
        f"{tmp_path / 'shifted.tsv'}, line 5: 5 fields where the header has 4; 2 more problems in this file:",
        "  line 10: 2 fields where the header has 4", "  line 16: 3 fields where the header has 4"]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", ["airr", "immunoseq"])
def test_a_cut_row_and_the_bad_values_of_a_file_are_in_one_error(tmp_path, case, gz):
    """A cut row (found by the scan) no longer hides the file's bad values (found by the parse) until a second run:
    one error names both, in line order, each with its line (and column)."""
    if case == "airr":
        rows = [["sequence_id", "junction", "v_call", "j_call", "duplicate_count"],
                ["a", back_translate("CASSLGF"), "TRBV5-1", "TRBJ2-7", "3"],
                ["b", "TGT-CCAGCTTC", "TRBV5-1", "TRBJ2-7", "3"],  # line 3: no nucleotides
                ["c", back_translate("CASSF")],  # line 4: cut
                ["d", back_translate("CASSQF"), "TRBV5-1", "TRBJ2-7", "ten"]]  # line 5: no count
        expected = ["line 3, column 'junction': 'TGT-CCAGCTTC' is not a nucleotide sequence; 2 more problems in "
                    "this file:", "  line 4: 2 fields where the header has 5",
                    "  line 5, column 'duplicate_count': count 'ten' is not a non-negative number"]
    else:
        rows = [["amino_acid", "frame_type", "templates", "v_gene", "j_gene"],
                ["CASSLGF", "In", "3", "TCRBV05-01", "TCRBJ02-07"],
                ["CASSF", "In"],  # line 3: cut
                ["CASSQF", "In", "12a", "TCRBV05-01", "TCRBJ02-07"]]  # line 4: no count
        expected = ["line 3: 2 fields where the header has 5; 1 more problem in this file:",
                    "  line 4, column 'templates': count '12a' is not a non-negative number"]
    path = write(tmp_path / "both.tsv", rows, gz=gz)
    with pytest.raises(InputFormatError) as info:
        read_repertoire(path)
    assert str(info.value).splitlines() == [f"{path}, {expected[0]}", *expected[1:]]
    assert info.value.line == 3


def test_bad_rows_and_bad_values_share_the_cap_of_listed_problems(tmp_path):
    """Twelve cut rows and twelve bad counts: the first ten problems by line are listed, the other 14 counted."""
    header, good = ["amino_acid", "templates", "v_gene"], ["CASSF", "3", "TCRBV05-01"]
    rows = [header] + [good[:1], ["CASSF", "many", "TCRBV05-01"]] * 12 + [good]
    with pytest.raises(InputFormatError) as info:
        read_repertoire(write(tmp_path / "many.tsv", rows))
    lines = str(info.value).splitlines()
    assert lines[0].endswith("line 2: 1 field where the header has 3; 23 more problems in this file:")
    assert [line.split(":")[0] for line in lines[1:10]] == [
        f"  line {k}" + (", column 'templates'" if k % 2 else "") for k in range(3, 12)]
    assert lines[10:] == ["  ... and 14 more"]


def test_ingest_names_a_cut_row_and_bad_values_at_once_and_writes_nothing(tmp_path):
    from deeprc_hopfield.ingest import ingest

    (tmp_path / "reps").mkdir()
    good = [["junction_aa", "v_call", "j_call", "duplicate_count"]] + [
        [f"CASSLG{a}AYEQYF", "TRBV5-1", "TRBJ2-7", "3"] for a in "ACDEFGHIK"]
    write(tmp_path / "reps" / "a.tsv", good)
    write(tmp_path / "reps" / "b.tsv", good[:3] + [good[3][:2], good[4][:3] + ["-2"]] + good[5:])
    (tmp_path / "meta.csv").write_text("subject_id,filename,label\nA,a.tsv,1\nB,b.tsv,0\n")
    (tmp_path / "out").mkdir()
    with pytest.raises(InputFormatError) as info:
        ingest(tmp_path / "meta.csv", tmp_path / "reps", tmp_path / "out" / "s.h5", progress=False)
    assert str(info.value).splitlines() == [
        f"{tmp_path / 'reps' / 'b.tsv'}, line 4: 2 fields where the header has 4; 1 more problem in this file:",
        "  line 5, column 'duplicate_count': count '-2' is not a non-negative number"]
    assert list((tmp_path / "out").iterdir()) == []


def test_every_junction_that_is_not_nucleotides_is_named(tmp_path):
    rows = [["sequence_id", "junction", "v_call", "duplicate_count"],
            ["a", "TGT-CCAGCTTC", "TRBV5-1*01", "3"],
            ["b", back_translate("CASSF"), "TRBV5-1*01", "3"],
            ["c", "TGT1CCAGCTTC", "TRBV5-1*01", "x"]]
    with pytest.raises(InputFormatError) as info:
        read_repertoire(write(tmp_path / "gap.tsv", rows))
    assert str(info.value).splitlines()[1:] == [
        "  line 4, column 'junction': 'TGT1CCAGCTTC' is not a nucleotide sequence",
        "  line 4, column 'duplicate_count': count 'x' is not a non-negative number"]


def test_blank_lines_keep_line_numbers(tmp_path):
    path = tmp_path / "blank.tsv"
    path.write_text("junction_aa\tduplicate_count\tv_call\nCASSF\t3\tTRBV5-1\n\nCASSG\toops\tTRBV5-1\n")
    with pytest.raises(InputFormatError) as info:
        read_repertoire(path)
    assert info.value.line == 4


def test_plain_file_cut_mid_row_is_refused(tmp_path):
    path = tmp_path / "cut.tsv"
    path.write_text("junction_aa\tv_call\tj_call\tduplicate_count\nCASSLGF\tTRBV5-1\tTRBJ2-7\t3\nCASSQ")
    with pytest.raises(InputFormatError, match="looks truncated") as info:
        read_repertoire(path)
    assert info.value.line == 3
    path.write_text("junction_aa\tv_call\tj_call\tduplicate_count\nCASSLGF\tTRBV5-1\tTRBJ2-7\t3")  # no final newline
    assert len(read_repertoire(path)[0]) == 1


@pytest.mark.parametrize("gz", [False, True])
def test_a_row_of_another_field_count_is_refused_naming_its_line(tmp_path, gz):
    """A cut row (whose missing cells a column read would fill with nothing), a row with a stray field (which
    would shift or be dropped silently) and one shifted by a stray tab are refused with their line, in plain
    and gzip files; blank lines and a last line without a line end still pass."""
    header = ["junction_aa", "v_call", "j_call", "duplicate_count"]
    good = ["CASSLGF", "TRBV5-1", "TRBJ2-7", "3"]
    for row, line, found in [(good[:2], 4, 2), (good + ["x"], 4, 5), (["CASSQ", "", *good[1:]], 4, 5)]:
        path = write(tmp_path / f"bad{len(row)}.tsv", [header, good, good, row, good], gz=gz)
        with pytest.raises(InputFormatError, match=f"{found} fields where the header has 4") as info:
            read_repertoire(path)
        assert info.value.line == line and not str(info.value).endswith("truncated")
    many = write(tmp_path / "long.tsv", [header] + [good] * 1000 + [good[:3]] + [good] * 10, gz=gz)
    with pytest.raises(InputFormatError, match="3 fields") as info:  # many blocks of the streamed check
        scan_file(many, "\t", block=100)
    assert info.value.line == 1002
    text = "\t".join(header) + "\n" + "\t".join(good) + "\n\n\r\n" + "\t".join(good)
    path = tmp_path / "blank.tsv"
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    assert read_repertoire(path)[0]["junction_aa"].notna().sum() == 2


def test_a_row_count_check_leaves_quoted_files_to_the_parser(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('junction_aa,v_call,j_call,duplicate_count\nCASSLGF,"TRBV5-1,TRBV5-2",TRBJ2-7,3\n')
    table = read_repertoire(path)[0]
    assert len(table) == 1 and table["duplicate_count"].iloc[0] == 3


@pytest.mark.parametrize("gz", [False, True])
def test_a_byte_that_is_not_utf8_is_named_by_line_and_character(tmp_path, gz):
    data = "junction_aa\tv_call\nCASSLGF\tTRBV5-1\nCASSÄGF\tTRBV5-1\n".encode() + b"C\xe9SSF\tTRBV5-1\n"
    path = tmp_path / "latin.tsv"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(InputFormatError, match=r"byte 0xe9 at character 2 is not UTF-8 text") as info:
        read_repertoire(path)
    assert info.value.line == 4


@pytest.mark.parametrize("column", ["is_cell", "high_confidence"])
def test_10x_all_contig_annotations_are_refused_for_the_filtered_file(tmp_path, column):
    """Contigs of non-cells (or of low confidence) mean Cell Ranger's all_contig file: refused, naming the filtered
    one, rather than read with its background."""
    rows = [list(row) for row in TENX]
    rows[3][TENX[0].index(column)] = "False"
    with pytest.raises(InputFormatError, match=r"1 contig\(s\) with " + column + " false .* filtered_contig_annotations") \
            as info:
        read_repertoire(write(tmp_path / "all_contig_annotations.csv", rows, sep=","))
    assert info.value.line == 4 and info.value.column == column


def test_a_bare_list_of_junctions_is_read_as_airr(tmp_path):
    """A file of one `junction_aa` column (a list of CDR3s) is AIRR by its column's name: no --format needed."""
    path = tmp_path / "list.tsv"
    path.write_text("junction_aa\nCASSLGF\nCASSPGF\n")
    table, fmt = read_repertoire(path)
    assert fmt == "airr" and table["junction_aa"].tolist() == ["CASSLGF", "CASSPGF"]
    assert table["v_call"].isna().all() and table["duplicate_count"].isna().all()


def test_a_workbook_utf16_or_other_compression_is_named_for_what_it_is(tmp_path):
    """Advice to re-encode from latin1 misleads when the file is a workbook, UTF-16 or bzip2: the error says which."""
    import bz2
    import zipfile

    text = "junction_aa\tv_call\nCASSLGF\tTRBV5-1\n"
    (tmp_path / "u16.tsv").write_bytes(text.encode("utf-16"))
    (tmp_path / "b.tsv").write_bytes(bz2.compress(text.encode()))
    with zipfile.ZipFile(tmp_path / "book.xlsx", "w") as book:
        book.writestr("xl/worksheets/sheet1.xml", "<worksheet>\u00e9\u0000</worksheet>" * 50)
    for name, what in (("u16.tsv", "UTF-16 text"), ("b.tsv", "bzip2-compressed"), ("book.xlsx", "a zip archive")):
        with pytest.raises(InputFormatError, match=what):
            read_repertoire(tmp_path / name)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("block", [7, 64, 1 << 22])
def test_the_scan_digest_is_the_files_sha256(tmp_path, gz, block):
    """The one pass that checks field counts also hashes the file as stored, whatever the block (lines longer
    than it included) and whether quotes stop the count check."""
    from deeprc_hopfield.io import sha256_file

    header = ["junction_aa", "v_call", "j_call", "duplicate_count"]
    rows = [header] + [["CASS" + "L" * (i % 30) + "F", "TRBV5-1", "TRBJ2-7", str(i)] for i in range(300)]
    quoted = [header] + [[row[0], '"TRBV5-1"', *row[2:]] for row in rows[1:]]
    for name, table in (("plain", rows), ("quoted", quoted)):
        path = write(tmp_path / f"{name}{block}.tsv", table, gz=gz)
        assert scan_file(path, "\t", digest=True, block=block) == sha256_file(path)
        assert scan_file(path, "\t", block=block) is None


@pytest.mark.parametrize("gz", [False, True])
def test_rows_that_pandas_reads_rightly_pass_the_field_count(tmp_path, gz):
    """A header ending in a delimiter with rows that do not (old MiXCR exports), R's `write.table` row names (one
    field more in every row, the index) and whitespace-only lines read as the clean file does."""
    header = ["sequence_id", "junction_aa", "v_call", "j_call", "duplicate_count", "productive"]
    rows = [["s1", "CASSLGQYEQYF", "TRBV5-1", "TRBJ2-7", "5", "T"], ["s2", "CASSPGQYEQYF", "TRBV6-1", "TRBJ2-1", "2", "T"]]
    clean = read_repertoire(write(tmp_path / "clean.tsv", [header, *rows], gz=gz))[0]
    lines = {
        "trailing": ["\t".join(header) + "\t", *("\t".join(r) for r in rows)],
        "row_names": ["\t".join(header), *(f"{i + 1}\t" + "\t".join(r) for i, r in enumerate(rows))],
        "whitespace": ["\t".join(header), "\t".join(rows[0]), "   ", "\t".join(rows[1]), " \r"],
    }
    for name, text in lines.items():
        path = tmp_path / f"{name}.tsv"
        data = ("\n".join(text) + "\n").encode()
        path.write_bytes(gzip.compress(data) if gz else data)
        table = read_repertoire(path)[0]
        table = table[table["junction_aa"].notna()].reset_index(drop=True)
        pd.testing.assert_frame_equal(table, clean, check_dtype=False, check_categorical=False)
    row_names = tmp_path / "row_names_short.tsv"  # the first row sets one more field for every row
    row_names.write_text("\t".join(header) + "\n1\t" + "\t".join(rows[0]) + "\n" + "\t".join(rows[1]) + "\n")
    with pytest.raises(InputFormatError, match=r"6 fields where the first row has 7 \(a row name and the header's 6\)") \
            as info:
        read_repertoire(row_names)
    assert info.value.line == 3


def test_a_truncated_gzip_with_a_byte_that_is_not_utf8_is_one_line(tmp_path):
    data = gzip.compress("junction_aa\tv_cäll\nCASSF\tTRBV5-1\n".encode("latin-1") * 50)
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(data[:-20])
    with pytest.raises(InputFormatError, match="truncated or corrupt gzip file"):
        read_repertoire(path)


def test_row_names_are_found_past_the_first_block(tmp_path):
    header = "sequence_id\tjunction_aa\tv_call\tj_call\tduplicate_count\n"
    rows = "".join(f"{i}\ts{i}\tCASSLGF\tTRBV5-1\tTRBJ2-7\t{i}\n" for i in range(1, 200))
    path = tmp_path / "r.tsv"
    path.write_text(header + rows)
    assert scan_file(path, "\t", block=16) is None  # the first data row lies past the header's block
    path.write_text(header + rows + "CASSQF\tTRBV5-1\tTRBJ2-7\t3\tx\n")  # a row without a row name
    with pytest.raises(InputFormatError, match="5 fields where the first row has 6") as info:
        scan_file(path, "\t", block=16)
    assert info.value.line == 201
