"""Quality control: every dropped row counted under one reason, duplicates merged with counts summed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeprc_hopfield.encoding import JoinedSequences
from deeprc_hopfield.genes import gene_categorical
from deeprc_hopfield.qc import (DROP_REASONS, QC_COLUMNS, QCSettings, check_repertoire, merge_duplicates,
                                quality_control)
from deeprc_hopfield.readers import TIDY_COLUMNS, read_repertoire, read_repertoire_file


def tidy_table(rows: list[tuple]) -> pd.DataFrame:
    """A tidy table as the readers return it, from (junction_aa, v, j, count, productive, locus) rows."""
    table = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    table["duplicate_count"] = table["duplicate_count"].astype(np.float64)
    table["productive"] = table["productive"].astype("boolean")
    return table


def adds_up(counts: dict[str, int]) -> bool:
    dropped = sum(counts[reason] for reason in DROP_REASONS)
    return counts["input_rows"] == dropped + counts["merged_duplicates"] + counts["kept"]


def test_each_reason_is_counted():
    rows = [
        ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 10, True, "TRB"),  # kept
        ("CAVMDSNYQLIW", "TRAV1-2", "TRAJ33", 3, True, "TRA"),  # other_chain
        ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 2, False, "TRB"),  # non_productive
        (None, "TRBV5-1", "TRBJ2-7", 4, True, "TRB"),  # empty_junction
        ("   ", "TRBV5-1", "TRBJ2-7", 4, None, "TRB"),  # empty_junction (blank)
        ("CASS*GQF", "TRBV5-1", "TRBJ2-1", 1, None, "TRB"),  # stop_codon
        ("CASSXGQF", "TRBV5-1", "TRBJ2-1", 1, None, "TRB"),  # non_standard
        ("CAS_GQF", "TRBV5-1", "TRBJ2-1", 1, None, "TRB"),  # non_standard
        ("CAS", "TRBV5-1", "TRBJ2-1", 1, True, "TRB"),  # too_short
        ("C" + "A" * 12 + "F", "TRBV5-1", "TRBJ2-1", 1, True, "TRB"),  # too_long (14 > 12)
        ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 5, True, None),  # duplicate of row 0 (no locus: kept)
        ("CASSPTGGYGYTF", None, "TRBJ1-2", None, True, "TRB"),  # kept, V missing, count missing
    ]
    clean, counts = quality_control(tidy_table(rows), QCSettings(min_length=4, max_length=13, chain="TRB"))
    assert counts == {
        "input_rows": 12,
        "other_chain": 1,
        "non_productive": 1,
        "empty_junction": 2,
        "stop_codon": 1,
        "non_standard": 2,
        "too_short": 1,
        "too_long": 1,
        "merged_duplicates": 1,
        "kept": 2,
        "v_missing": 1,
        "j_missing": 0,
        "count_missing": 1,
    }
    assert set(counts) == set(QC_COLUMNS)
    assert adds_up(counts)
    assert list(clean.columns) == ["junction_aa", "v_call", "j_call", "duplicate_count"]
    assert clean["junction_aa"].tolist() == ["CASSLGQAYEQYF", "CASSPTGGYGYTF"]
    assert clean["duplicate_count"].iloc[0] == 15.0  # 10 + 5: summed
    assert math.isnan(clean["duplicate_count"].iloc[1])  # missing stays missing


def test_length_limits_are_inclusive():
    rows = [("CASF", None, None, 1, None, None), ("CASSF", None, None, 1, None, None),
            ("CASSSF", None, None, 1, None, None), ("CASSSSF", None, None, 1, None, None)]
    clean, counts = quality_control(tidy_table(rows), QCSettings(min_length=5, max_length=6))
    assert clean["junction_aa"].tolist() == ["CASSF", "CASSSF"]
    assert (counts["too_short"], counts["too_long"]) == (1, 1)


def test_first_reason_wins():
    """A row that fails several checks is counted once, under the first reason in DROP_REASONS."""
    rows = [("CA*", None, None, 1, False, "TRA"),  # other_chain (also non-productive, stop, short)
            ("CA*", None, None, 1, False, "TRB"),  # non_productive (also stop, short)
            ("C*X", None, None, 1, None, "TRB"),  # stop_codon (also non-standard, short)
            ("CXX", None, None, 1, None, "TRB")]  # non_standard (also short)
    _, counts = quality_control(tidy_table(rows), QCSettings(min_length=4, chain="TRB"))
    assert [counts[r] for r in DROP_REASONS] == [1, 1, 0, 1, 1, 0, 0]
    assert counts["kept"] == 0 and adds_up(counts)


def test_chain_is_matched_case_insensitively_and_none_keeps_all():
    rows = [("CASSF", None, None, 1, None, "TRB"), ("CAVSF", None, None, 1, None, "TRA"),
            ("CASGF", None, None, 1, None, None)]
    _, counts = quality_control(tidy_table(rows), QCSettings(chain="trb"))
    assert counts["other_chain"] == 1 and counts["kept"] == 2
    _, counts = quality_control(tidy_table(rows), QCSettings(chain=None))
    assert counts["other_chain"] == 0 and counts["kept"] == 3


def test_without_a_locus_column_the_v_call_says_the_chain():
    """immunoSEQ and many AIRR files have no locus column: `--chain` then goes by the V call (TRBV5-1 is TRB), so
    a TRA row in a TRB cohort is dropped rather than kept silently; a row with neither is kept."""
    rows = [("CASSF", "TRBV5-1", None, 1, None, None), ("CAVSF", "TRAV1-2", None, 1, None, None),
            ("CASGF", None, None, 1, None, None), ("CAVDF", "TRAV29/DV5", None, 1, None, "TRB"),
            ("CARDF", "IGHV3-23", None, 1, None, None)]
    _, counts = quality_control(tidy_table(rows), QCSettings(chain="TRB"))
    assert counts["other_chain"] == 2 and counts["kept"] == 3  # the file's locus wins over the V call's
    _, counts = quality_control(tidy_table(rows), QCSettings(chain="tra"))
    assert counts["other_chain"] == 3 and counts["kept"] == 2
    delta = [("CALGEF", "TRDV2", None, 1, None, None), ("CAASDF", "TRAV29/DV5", None, 1, None, None),
             ("CAVNF", "TRAV12-1", None, 1, None, None)]
    for chain, kept in (("TRD", 2), ("TRA", 2), ("TRB", 0)):  # TRAV29/DV5 is a V gene of α and δ chains alike
        clean, counts = quality_control(tidy_table(delta), QCSettings(chain=chain, min_length=4))
        assert counts["kept"] == kept and counts["other_chain"] == 3 - kept, chain


def test_a_row_without_a_v_call_goes_by_its_j_call():
    """A TRA row whose V was not called (`TRAJ33` only) is another chain in a TRB cohort, not a TRB sequence of
    unknown V; the V call, where there is one, still decides (a V and J of other loci is an annotation error)."""
    rows = [("CAVMDSNYQLIW", None, "TRAJ33", 1, None, None), ("CASSLGQF", None, "TRBJ2-7", 1, None, None),
            ("CASSPGQF", None, None, 1, None, None), ("CASSAGQF", "TRBV5-1", "TRAJ33", 1, None, None),
            ("CARDYW", None, "IGHJ4", 1, None, None)]
    clean, counts = quality_control(tidy_table(rows), QCSettings(chain="TRB"))
    assert counts["other_chain"] == 2 and counts["kept"] == 3
    assert sorted(clean["junction_aa"]) == ["CASSAGQF", "CASSLGQF", "CASSPGQF"]
    _, counts = quality_control(tidy_table(rows), QCSettings(chain="IGH", min_length=4))
    assert counts["other_chain"] == 3 and counts["kept"] == 2


def test_junctions_are_uppercased_and_stripped_before_merging():
    rows = [("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-7", 1, True, None),
            (" casslgqayeqyf ", "TRBV5-1", "TRBJ2-7", 2, True, None),
            ("CASSLGQAYEQYF", "TRBV5-1", "TRBJ2-1", 4, True, None),  # other J: not a duplicate
            ("CASSLGQAYEQYF", None, "TRBJ2-7", 8, True, None)]  # missing V: not a duplicate
    clean, counts = quality_control(tidy_table(rows), QCSettings())
    assert clean["junction_aa"].tolist() == ["CASSLGQAYEQYF"] * 3
    assert clean["j_call"].tolist() == ["TRBJ2-7", "TRBJ2-1", "TRBJ2-7"]
    assert clean["duplicate_count"].tolist() == [3.0, 4.0, 8.0]
    assert counts["merged_duplicates"] == 1


def test_merge_duplicates_missing_counts():
    table = pd.DataFrame({
        "junction_aa": ["CASSF", "CASSF", "CASGF", "CASGF", "CASSF"],
        "v_call": [None, None, "TRBV5-1", "TRBV5-1", None],
        "j_call": ["TRBJ2-7"] * 5,
        "duplicate_count": [np.nan, 2.0, np.nan, np.nan, 3.0],
    })
    merged = merge_duplicates(table)
    assert merged["junction_aa"].tolist() == ["CASSF", "CASGF"]  # first-seen order
    assert merged["duplicate_count"].iloc[0] == 5.0  # a missing count adds nothing
    assert math.isnan(merged["duplicate_count"].iloc[1])  # all missing: missing, not 0


def test_rows_without_a_count_are_kept_and_counted(tmp_path):
    """`NA` and empty counts are missing, never 1 or 0: the rows are kept, and count_missing counts the kept
    sequences whose count is missing (a duplicate with a count gives its merged sequence that count)."""
    path = tmp_path / "counts.tsv"
    path.write_text("junction_aa\tv_call\tduplicate_count\n"
                    "CASSLGF\tTRBV5-1\t3\n"
                    "CASSPGF\tTRBV5-1\tNA\n"
                    "CASSQGF\tTRBV5-1\t\n"
                    "CASSLGF\tTRBV5-1\tNA\n"  # merged into line 2's: its count 3
                    "CASS*GF\tTRBV5-1\t\n")  # dropped (stop_codon), not counted as missing
    read = read_repertoire_file(path)
    checked = check_repertoire(read.table, QCSettings(), read.junctions)
    counts = checked.counts
    assert (counts["input_rows"], counts["stop_codon"], counts["merged_duplicates"], counts["kept"]) == (5, 1, 1, 3)
    assert counts["count_missing"] == 2 and adds_up(counts)
    assert checked.table["duplicate_count"].tolist()[0] == 3.0 and checked.table["duplicate_count"].isna().sum() == 2
    from deeprc_hopfield.qc import describe_counts

    assert describe_counts(counts).endswith("; 2 without a clone count (NA or empty in the file: recorded as "
                                            "missing, count_missing)")
    no_counts = tmp_path / "none.tsv"
    no_counts.write_text("junction_aa\nCASSLGF\nCASSPGF\n")
    counts = check_repertoire(read_repertoire(no_counts)[0], QCSettings()).counts
    assert counts["count_missing"] == counts["kept"] == 2
    assert describe_counts(counts).endswith("; no clone counts in the file (recorded as missing)")


def test_empty_table():
    clean, counts = quality_control(tidy_table([]), QCSettings())
    assert len(clean) == 0
    assert all(counts[c] == 0 for c in QC_COLUMNS)


def test_settings_are_checked():
    with pytest.raises(ValueError, match=r"need 1 <= min_length <= max_length <= 255, got 10, 5"):
        QCSettings(min_length=10, max_length=5)
    with pytest.raises(ValueError, match=r"need 1 <= min_length .* got 0, 40"):
        QCSettings(min_length=0)


def test_qc_of_a_10x_file(tmp_path):
    """End to end: a Cell Ranger file, TRB kept; the same clonotype in two cells is merged."""
    lines = [
        "barcode,is_cell,contig_id,high_confidence,length,chain,v_gene,d_gene,j_gene,c_gene,"
        "full_length,productive,cdr3,cdr3_nt,reads,umis,raw_clonotype_id,raw_consensus_id",
        "AAAC-1,True,AAAC-1_contig_1,True,693,TRB,TRBV5-1,TRBD1,TRBJ2-7,TRBC2,True,True,"
        "CASSLGQAYEQYF,TGT,9048,6,clonotype1,clonotype1_consensus_2",
        "AAAC-1,True,AAAC-1_contig_2,True,648,TRA,TRAV1-2,None,TRAJ33,TRAC,True,True,"
        "CAVMDSNYQLIW,TGT,4920,3,clonotype1,clonotype1_consensus_1",
        "AAAG-1,True,AAAG-1_contig_1,True,550,TRB,TRBV7-2,None,TRBJ2-1,TRBC2,False,None,None,None,310,2,"
        "clonotype2,None",
        "AAAG-1,True,AAAG-1_contig_2,True,540,TRA,TRAV12-1,None,TRAJ9,TRAC,True,False,CVVNTGGFKTIF,TGT,"
        "100,1,clonotype2,None",
        "AAAT-1,True,AAAT-1_contig_1,True,612,TRB,TRBV5-1,TRBD1,TRBJ2-7,TRBC2,True,True,"
        "CASSLGQAYEQYF,TGT,7002,4,clonotype3,clonotype3_consensus_1",
        "AAAT-1,True,AAAT-1_contig_2,True,612,TRB,TRBV20-1,None,TRBJ1-1,TRBC1,True,False,"
        "CSARDRTGNGYTF,TGT,80,1,clonotype3,None",
    ]
    path = tmp_path / "filtered_contig_annotations.csv"
    path.write_text("\n".join(lines) + "\n")
    table, fmt = read_repertoire(path)
    assert fmt == "10x"
    clean, counts = quality_control(table, QCSettings(chain="TRB"))
    assert counts["other_chain"] == 2
    assert counts["non_productive"] == 1
    assert counts["empty_junction"] == 1  # Cell Ranger's 'None' CDR3
    assert counts["merged_duplicates"] == 1
    assert counts["kept"] == 1 and adds_up(counts)
    assert clean.to_dict("records") == [
        {"junction_aa": "CASSLGQAYEQYF", "v_call": "TRBV5-1", "j_call": "TRBJ2-7", "duplicate_count": 10.0}
    ]


def test_qc_of_an_immunoseq_file(tmp_path):
    """End to end: In/Out/Stop and duplicates that only differ below the gene level (alleles)."""
    rows = [
        "amino_acid\tframe_type\ttemplates\tv_family\tv_gene\tv_allele\tj_gene",
        "CASSLGQAYEQYF\tIn\t12\tTCRBV05\tTCRBV05-01\t01\tTCRBJ02-07",
        "\tOut\t3\tTCRBV07\tTCRBV07-02\t01\tTCRBJ01-01",
        "CASS*GQF\tStop\t1\tTCRBV05\tTCRBV05-01\t01\tTCRBJ02-01",
        "CASSLGQAYEQYF\tIn\t4\tTCRBV05\tTCRBV05-01*02\t02\tTCRBJ02-07*01",
        "CASSPTGGYGYTF\tIn\t5\tTCRBV12\tunresolved\t\tTCRBJ01-02",
    ]
    path = tmp_path / "immunoseq.tsv"
    path.write_text("\n".join(rows) + "\n")
    clean, counts = quality_control(read_repertoire(path)[0], QCSettings())
    assert (counts["non_productive"], counts["merged_duplicates"], counts["kept"]) == (2, 1, 2)
    assert clean["duplicate_count"].tolist() == [16.0, 5.0]
    assert clean["v_call"].tolist() == ["TRBV5-1", "TRBV12"]


JUNCTIONS = st.one_of(
    st.none(),
    st.text(alphabet="ACDEFGHIKLMNPQRSTVWY", min_size=1, max_size=14),
    st.text(alphabet="ACDEFGHIKLMNPQRSTVWYacgX*_ ", min_size=0, max_size=14),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            JUNCTIONS,
            st.sampled_from(["TRBV5-1", "TRBV7-9", None]),
            st.sampled_from(["TRBJ2-7", None]),
            st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
            st.one_of(st.none(), st.booleans()),
            st.sampled_from(["TRB", "TRA", None]),
        ),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=8),
    st.sampled_from(["TRB", None]),
)
def test_counts_always_add_up(rows, min_length, extra, chain):
    """For any table: the counts add up, kept rows are valid and distinct, and no count is lost."""
    qc_settings = QCSettings(min_length=min_length, max_length=min_length + extra, chain=chain)
    table = tidy_table(rows)
    clean, counts = quality_control(table, qc_settings)
    assert counts["input_rows"] == len(rows)
    assert adds_up(counts)
    assert counts["kept"] == len(clean)
    assert not clean.duplicated(["junction_aa", "v_call", "j_call"]).any()
    for seq in clean["junction_aa"]:
        assert set(seq) <= set("ACDEFGHIKLMNPQRSTVWY")
        assert qc_settings.min_length <= len(seq) <= qc_settings.max_length
    # The kept counts are exactly the counts of the rows that passed, summed.
    passed = table["junction_aa"].str.strip().str.upper()
    passed = passed.isin(set(clean["junction_aa"]))
    passed &= table["productive"].ne(False).fillna(True).to_numpy(dtype=bool)
    if chain is not None:
        passed &= table["locus"].isna() | (table["locus"] == chain)
    assert np.nansum(clean["duplicate_count"]) == table.loc[passed, "duplicate_count"].sum()


def test_a_junction_with_a_space_inside_is_dropped_as_non_standard(tmp_path):
    """A space or a `~` inside a CDR3 survives `strip().upper()`: the reader's anchors check and QC still
    finish (the check once recursed without end on such a file) and QC counts them."""
    rows = ["amino_acid\tframe_type\ttemplates\tv_gene\tj_gene",
            "CASSLGQAYEQYF\tIn\t12\tTCRBV05-01\tTCRBJ02-07",
            "CASS LGQAYEQYF\tIn\t3\tTCRBV05-01\tTCRBJ02-07",
            " casspteqyf \tIn\t2\tTCRBV05-01\tTCRBJ02-07",
            "CASS~F\tIn\t2\tTCRBV05-01\tTCRBJ02-07"]
    path = tmp_path / "immunoseq.tsv"
    path.write_text("\n".join(rows) + "\n")
    read = read_repertoire_file(path)
    assert read.cdr3.found == "junction" and read.cdr3.n == 4
    checked = check_repertoire(read.table, QCSettings(), read.junctions)
    assert checked.counts["non_standard"] == 2 and checked.counts["kept"] == 2
    assert checked.table["junction_aa"].tolist() == ["CASSLGQAYEQYF", "CASSPTEQYF"]


def _as_read(table: pd.DataFrame, v_names: list[str], j_names: list[str]) -> pd.DataFrame:
    """The table with its genes as categoricals the way a reader may give them: unsorted categories,
    some of them unused."""
    return table.assign(v_call=pd.Categorical(table["v_call"], categories=v_names),
                        j_call=pd.Categorical(table["j_call"], categories=j_names))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            JUNCTIONS,
            st.sampled_from(["TRBV7-9", "TRBV5-1", "TRBV20-1", None]),
            st.sampled_from(["TRBJ2-7", "TRBJ1-1", None]),
            st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
            st.one_of(st.none(), st.booleans()),
            st.just(None),
        ),
        max_size=40,
    ),
)
def test_categorical_genes_and_joined_junctions_give_what_strings_give(rows):
    """QC of a table as the readers give it (categorical genes, junctions already joined) equals QC of
    the same table as plain strings: the same rows, codes, counts and genes (sorted names, used only)."""
    table = tidy_table(rows)
    plain = check_repertoire(table, QCSettings())
    as_read = _as_read(table, ["TRBV5-1", "TRBV30", "TRBV7-9", "TRBV20-1"], ["TRBJ2-2", "TRBJ2-7", "TRBJ1-1"])
    fast = check_repertoire(as_read, QCSettings(), JoinedSequences.of(as_read["junction_aa"]))
    assert plain.counts == fast.counts
    np.testing.assert_array_equal(plain.codes, fast.codes)
    np.testing.assert_array_equal(plain.lengths, fast.lengths)
    for a, b in ((plain.v_call, fast.v_call), (plain.j_call, fast.j_call)):
        assert list(a.categories) == list(b.categories) == sorted(set(a.dropna()))
        np.testing.assert_array_equal(a.codes, b.codes)
    as_objects = [t.astype(object).where(t.notna(), None) for t in (plain.table, fast.table)]
    pd.testing.assert_frame_equal(*as_objects)


def test_gene_categorical_keeps_the_used_names_sorted_and_the_values():
    genes = pd.Series(pd.Categorical(["TRBV7-9", "TRBV20-1", None, "TRBV5-1", "TRBV7-9"],
                                     categories=["TRBV20-1", "TRBV7-9", "TRBV30", "TRBV5-1"]))
    made = gene_categorical(genes)
    assert list(made.categories) == ["TRBV20-1", "TRBV5-1", "TRBV7-9"]  # TRBV30 unused
    assert made.tolist()[:2] + made.tolist()[3:] == ["TRBV7-9", "TRBV20-1", "TRBV5-1", "TRBV7-9"]
    assert made.codes.tolist() == [2, 0, -1, 1, 2]
    assert list(gene_categorical(genes.astype(object)).categories) == list(made.categories)


def test_junctions_of_another_table_are_refused():
    table = tidy_table([("CASSF", "TRBV5-1", "TRBJ2-7", 1, True, None)])
    with pytest.raises(ValueError, match="junctions hold 2 sequences for a table of 1 rows"):
        check_repertoire(table, QCSettings(), JoinedSequences.of(pd.Series(["CASSF", "CASGF"])))
