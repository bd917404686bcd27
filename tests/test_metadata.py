"""Metadata validation: every user mistake is one MetadataError naming file, line and column."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeprc_hopfield.errors import MetadataError
from deeprc_hopfield.metadata import describe_label, infer_label, read_metadata

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _rewrite(metadata: Path, old: str, new: str) -> None:
    metadata.write_text(metadata.read_text().replace(old, new, 1))


def test_reads_labels_and_resolves_files(cohort):
    metadata, folder = cohort
    meta = read_metadata(metadata, folder)
    assert meta.subject_ids == [f"P{i}" for i in range(6)]
    assert [f.name for f in meta.files] == [f"rep{i}.tsv" for i in range(6)]
    label = meta.labels["label"]
    assert label.kind == "binary" and label.classes == ["False", "True"]
    assert label.values.tolist() == [0, 1, 0, 1, 0, 1]


def test_tsv_metadata_and_gz_suffix_found(cohort, tmp_path):
    metadata, folder = cohort
    (folder / "rep0.tsv").rename(folder / "rep0.tsv.gz")  # named without .gz in the table
    tsv = tmp_path / "metadata.tsv"
    tsv.write_text(metadata.read_text().replace(",", "\t"))
    meta = read_metadata(tsv, folder)
    assert meta.files[0].name == "rep0.tsv.gz"


def test_a_column_named_twice_that_is_not_read_gets_a_note(cohort, caplog):
    """Two `notes` columns harm nothing that is read: the table is read, with a note (a label named twice is not)."""
    metadata, folder = cohort
    lines = metadata.read_text().splitlines()
    metadata.write_text("\n".join([lines[0] + ",notes,notes", *(line + ",a,b" for line in lines[1:])]) + "\n")
    with caplog.at_level("INFO", logger="deeprc_hopfield"):
        assert read_metadata(metadata, folder).subject_ids == [f"P{i}" for i in range(6)]
    assert any("column(s) named twice in the header, not read: notes" in r.getMessage() for r in caplog.records)


def test_a_table_without_a_label_column_says_which_columns_could_be_one(cohort, caplog):
    metadata, folder = cohort
    metadata.write_text(metadata.read_text().replace(",label", ",status", 1))
    with caplog.at_level("WARNING", logger="deeprc_hopfield"):
        assert read_metadata(metadata, folder).labels == {}
    assert "no column 'label', so the store gets no label" in caplog.text and "one of status, name it" in caplog.text


def test_a_gz_name_finds_the_plain_file_too(cohort):
    """A table that names `rep0.tsv.gz` where the folder holds `rep0.tsv` (uncompressed since) finds it."""
    metadata, folder = cohort
    _rewrite(metadata, "rep0.tsv", "rep0.tsv.gz")
    assert read_metadata(metadata, folder).files[0] == folder / "rep0.tsv"


def test_blank_and_empty_rows_are_passed_over_and_lines_stay_the_files(cohort, tmp_path):
    """A blank line inside the table and the `;;;` rows Excel leaves below it are no rows; an error after them
    names the file's own line."""
    metadata, folder = cohort
    lines = metadata.read_text().splitlines()
    table = tmp_path / "metadata.csv"
    table.write_text("\n".join([*lines[:3], "", *lines[3:], ",,", ",,", ""]) + "\n")
    assert read_metadata(table, folder).subject_ids == [f"P{i}" for i in range(6)]
    table.write_text("\n".join([*lines[:3], "", *lines[3:5], lines[5].replace("rep4", "nope"), *lines[6:]]) + "\n")
    with pytest.raises(MetadataError, match="repertoire file 'nope.tsv' not found") as info:
        read_metadata(table, folder)
    assert info.value.line == 7  # header, P0, P1, blank, P2, P3, then P4's line


def test_semicolon_metadata_as_excel_writes_it(cohort, tmp_path):
    """Excel writes semicolons where the comma is the decimal mark: read like the comma-separated table."""
    metadata, folder = cohort
    semicolons = tmp_path / "metadata.csv"
    semicolons.write_text(metadata.read_text().replace(",", ";"))
    meta, reference = read_metadata(semicolons, folder), read_metadata(metadata, folder)
    assert meta.subject_ids == reference.subject_ids and meta.files == reference.files
    assert meta.labels["label"].values.tolist() == reference.labels["label"].values.tolist()


def test_a_byte_that_is_not_utf8_is_named_by_line(cohort, tmp_path):
    metadata, folder = cohort
    latin = tmp_path / "metadata.csv"
    latin.write_bytes(metadata.read_bytes().replace(b"P3", b"P\xe93"))
    with pytest.raises(MetadataError, match="byte 0xe9 at character 2 is not UTF-8 text") as info:
        read_metadata(latin, folder)
    assert info.value.line == 5 and str(info.value).startswith(str(latin))


@pytest.mark.parametrize(
    "old, new, line, column, words",
    [
        ("rep3.tsv", "missing.tsv", 5, "filename", "not found"),
        ("rep3.tsv", "Rep3.tsv", 5, "filename", "not found in"),
        ("P4,", "P1,", 6, "subject_id", "duplicate subject_id 'P1' (also on line 3)"),
        ("P2,rep2.tsv,False", "P2,rep2.tsv,", 4, "label", "missing label value"),
        ("P2,rep2.tsv,False", "P2,rep2.tsv,None", 4, "label", "missing label value ('None' is read as missing: "),
    ],
)
def test_row_errors_name_line_and_column(cohort, old, new, line, column, words):
    metadata, folder = cohort
    _rewrite(metadata, old, new)
    with pytest.raises(MetadataError) as info:
        read_metadata(metadata, folder)
    assert (info.value.line, info.value.column) == (line, column)
    assert words in str(info.value) and str(metadata) in str(info.value)
    assert ("(did you mean 'rep3.tsv'?)" in str(info.value)) == (new == "Rep3.tsv")  # a case slip; no wild guess


def test_missing_required_and_label_columns(cohort):
    metadata, folder = cohort
    _rewrite(metadata, "filename", "file")
    with pytest.raises(MetadataError, match="required column 'filename' is missing"):
        read_metadata(metadata, folder)
    _rewrite(metadata, "file", "filename")
    with pytest.raises(MetadataError, match="label column 'cmv' is missing"):
        read_metadata(metadata, folder, ["cmv"])


def test_a_missing_column_names_the_column_it_is_likely_a_slip_of(cohort):
    """`label_column: cmv_status` for a table's `CMV_status`: the message says which was meant (any case)."""
    metadata, folder = cohort
    _rewrite(metadata, "label", "CMV_status")
    with pytest.raises(MetadataError) as info:
        read_metadata(metadata, folder, ["cmv_status"])
    assert str(info.value) == (f"{metadata}: label column 'cmv_status' is missing (columns: subject_id, filename, "
                               "CMV_status) (did you mean 'CMV_status'?)")
    _rewrite(metadata, "filename", "file_name")
    with pytest.raises(MetadataError) as info:
        read_metadata(metadata, folder, ["CMV_status"])
    assert str(info.value).endswith("required column 'filename' is missing (columns: subject_id, file_name, "
                                    "CMV_status) (did you mean 'file_name'?)")


def test_unnamed_files_are_noted_not_read(cohort, caplog):
    metadata, folder = cohort
    (folder / "stray.tsv").write_text("junk\n")
    with caplog.at_level("INFO"):
        meta = read_metadata(metadata, folder)
    assert len(meta.files) == 6
    assert "1 file(s)" in caplog.text and "stray.tsv" in caplog.text


def test_no_label_column_is_a_cohort_to_classify(cohort):
    metadata, folder = cohort
    metadata.write_text("\n".join(",".join(line.split(",")[:2]) for line in metadata.read_text().splitlines()))
    assert read_metadata(metadata, folder).labels == {}


@pytest.mark.parametrize(
    "values, kind, classes",
    [
        (["CMV+", "CMV-", "CMV+"], "binary", ["CMV-", "CMV+"]),
        (["yes", "no", "no"], "binary", ["no", "yes"]),
        (["1", "0", "1"], "binary", ["0", "1"]),
        (["a", "b", "c"], "categorical", ["a", "b", "c"]),
        (["1.5", "2", "40"], "numeric", []),
    ],
)
def test_label_kinds(values, kind, classes):
    import pandas as pd

    label = infer_label("x", pd.Series(values))
    assert (label.kind, label.classes) == (kind, classes)
    if kind == "numeric":
        np.testing.assert_allclose(label.values, [1.5, 2, 40])
    else:
        assert [label.classes[v] for v in label.values] == values


@pytest.mark.parametrize("missing", ["NA", "nan", "N/A", "?", "Unknown"])
def test_na_words_are_missing_labels_not_a_class(cohort, missing):
    metadata, folder = cohort
    _rewrite(metadata, "rep2.tsv,False", f"rep2.tsv,{missing}")
    with pytest.raises(MetadataError, match="missing label value") as info:
        read_metadata(metadata, folder)
    assert info.value.line == 4
    assert "1 row(s) have none: give each a value, or leave them out with --drop-unlabelled" in str(info.value)


def test_drop_unlabelled_leaves_out_subjects_of_unknown_label_and_names_them(cohort, caplog):
    """A clinical sheet's `Unknown` status (or an empty cell) is no third class: with drop_unlabelled the subject is
    left out, its file is not needed, and the warning names it and its line."""
    metadata, folder = cohort
    _rewrite(metadata, "rep2.tsv,False", "rep2.tsv,Unknown")
    _rewrite(metadata, "rep5.tsv,True", "rep5.tsv,")
    (folder / "rep5.tsv").unlink()  # never read
    with caplog.at_level("WARNING"):
        meta = read_metadata(metadata, folder, drop_unlabelled=True)
    assert meta.subject_ids == ["P0", "P1", "P3", "P4"] and meta.unlabelled == ["P2", "P5"]
    assert [f.name for f in meta.files] == ["rep0.tsv", "rep1.tsv", "rep3.tsv", "rep4.tsv"]
    assert meta.labels["label"].values.tolist() == [0, 1, 1, 0] and meta.lines.tolist() == [2, 3, 5, 6]
    assert "2 of 6 subjects have no value for label 'label' and are left out of the store (--drop-unlabelled): " \
           "P2 (line 4), P5 (line 7)" in caplog.text
    for row in range(6):
        _rewrite(metadata, f"rep{row}.tsv,{'True' if row % 2 else 'False'}", f"rep{row}.tsv,NA")
    with pytest.raises(MetadataError, match="no subject has a value for label 'label': nothing is left to store"):
        read_metadata(metadata, folder, drop_unlabelled=True)


@pytest.mark.parametrize(
    "values, positive, classes",
    [
        (["healthy", "T1D"], None, ["healthy", "T1D"]),
        (["control", "case"], None, ["control", "case"]),
        (["healthy", "T1D"], "healthy", ["T1D", "healthy"]),
        (["a", "b"], "a", ["b", "a"]),
        (["detected", "not detected"], None, ["not detected", "detected"]),  # not alphabetical
        (["CMV +", "CMV \u2212"], None, ["CMV \u2212", "CMV +"]),  # a Unicode minus, an en dash: a minus
        (["CMV +", "CMV \u2013"], None, ["CMV \u2013", "CMV +"]),
        (["responder", "non-responder"], None, ["non-responder", "responder"]),
        (["CMV-positive", "CMV-negative"], None, ["CMV-negative", "CMV-positive"]),
        (["Cytomegalovirus +", "Cytomegalovirus -"], None, ["Cytomegalovirus -", "Cytomegalovirus +"]),
        (["present", "absent"], None, ["absent", "present"]),
        (["10", "2"], None, ["2", "10"]),  # numbers by value
        (["seroconverted", "seronegative"], None, ["seronegative", "seroconverted"]),  # one name negates
        (["high-responder", "non-responder"], None, ["non-responder", "high-responder"]),
        (["Cohort T", "Cohort F"], None, ["Cohort F", "Cohort T"]),  # alphabetical (warned): T/F is no word here
    ],
)
def test_negative_class_first(values, positive, classes):
    import pandas as pd

    label = infer_label("x", pd.Series(values), positive)
    assert label.classes == classes
    assert label.values.tolist() == [classes.index(v) for v in values]  # each value coded by its class


@pytest.mark.parametrize("values, said", [
    (["mild", "severe"], "neither name says which is negative, so the alphabet makes the positive class: negative "
                         "'mild', positive 'severe'; if the positive class is 'mild', say so with --positive-class"),
    (["1", "2"], "the larger number is the positive class: negative '1', positive '2'; if the positive class is '1'"),
    (["0", "1"], None), (["CMV -", "CMV +"], None), (["healthy", "T1D"], None),
])
def test_an_order_the_names_do_not_say_is_warned_about(values, said, caplog):
    """Which class is positive decides what the model looks for: where the names do not say it, the log does."""
    with caplog.at_level("WARNING"):
        infer_label("status", pd.Series(values * 2))
    assert (f"label 'status': {said}" in caplog.text) if said else "positive-class" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        infer_label("status", pd.Series(values * 2), positive=values[0])
    assert "positive-class" not in caplog.text  # given: nothing to warn of


def test_a_positive_class_that_no_label_has_is_refused(cohort):
    """`--positive-class true` for labels True/False would otherwise code them the other way round silently."""
    metadata, folder = cohort
    assert read_metadata(metadata, folder, positive_class="False").labels["label"].classes == ["True", "False"]
    with pytest.raises(MetadataError) as refused:
        read_metadata(metadata, folder, positive_class="true")
    assert str(refused.value) == (f"{metadata}: --positive-class 'true' is not a class of any two-class label "
                                  "('label': False, True)")
    assert read_metadata(metadata, folder, positive_class=" True ").labels["label"].classes == ["False", "True"]
    metadata.write_text(metadata.read_text().replace("False", "True"))  # one class (warned about), named positive
    assert read_metadata(metadata, folder, positive_class="True").labels["label"].classes == ["True"]


@pytest.mark.parametrize(
    "values, decimal_comma, classes",
    [
        (["0", "1", "0.0", "1.0"], False, ["0", "1"]),  # one number, two spellings: one class
        (["1,0", "0", "0,00", "1"], True, ["0", "1"]),  # as Excel writes them where the comma is the decimal mark
        (["10", "2", "2.0", "10"], False, ["2", "10"]),  # two numbers: in numeric order, not alphabetical
        (["-1", "+1", "-1.0"], False, ["-1", "1"]),
    ],
)
def test_numbers_written_differently_are_one_class(values, decimal_comma, classes):
    import pandas as pd

    label = infer_label("x", pd.Series(values), decimal_comma=decimal_comma)
    assert (label.kind, label.classes) == ("binary", classes)
    assert label.values.tolist() == [0 if float(v.replace(",", ".")) == float(classes[0]) else 1 for v in values]


def test_a_numeric_positive_class_is_matched_by_value(cohort):
    metadata, folder = cohort
    metadata.write_text(metadata.read_text().replace("False", "0.0").replace("True", "1"))
    meta = read_metadata(metadata, folder, positive_class="0")
    assert describe_label(meta.labels["label"]) == "binary, negative '1', positive '0'"  # ingest logs which is which
    assert meta.labels["label"].classes == ["1", "0"] and meta.labels["label"].values.tolist() == [1, 0] * 3
    assert read_metadata(metadata, folder, positive_class="1.0").labels["label"].classes == ["0", "1"]
    assert meta.table["label"].tolist() == ["0", "1"] * 3  # the table names each class as the store does


@pytest.mark.parametrize(
    "values, first, variant, lines",
    [
        (["FALSE", "True", "True", "false", "True", "FALSE"], "FALSE", "false", (2, 5)),
        (["Positive", "neg", "POS", "neg", " positive ", "neg"], "Positive", "positive", (2, 6)),
    ],
)
def test_classes_that_differ_only_in_case_are_refused(cohort, values, first, variant, lines):
    """Neither merged (a guess) nor kept apart (FALSE and false as two classes make a 3-class label)."""
    metadata, folder = cohort
    rows = metadata.read_text().splitlines()
    metadata.write_text("\n".join([rows[0].replace("label", "cmv")]
                                  + [row.rsplit(",", 1)[0] + f",{v}" for row, v in zip(rows[1:], values)]) + "\n")
    with pytest.raises(MetadataError) as refused:
        read_metadata(metadata, folder, ["cmv"])
    assert str(refused.value) == (f"{metadata}, line {lines[1]}, column 'cmv': values '{first}' (line {lines[0]}) "
                                  f"and '{variant}' (line {lines[1]}) differ only in case; write each class one way")


def test_decimal_commas_of_a_semicolon_table_are_numbers(cohort):
    """Excel's CSV where the comma is the decimal mark: `20,5` is 20.5, but only when every value reads so."""
    metadata, folder = cohort
    ages = ["20,5", "-3,25", "40", "18,75", ",5", "1,5E-01"]
    rows = metadata.read_text().splitlines()
    metadata.write_text("\n".join([rows[0].replace(",", ";") + ";age"]
                                  + [row.replace(",", ";") + f";{a}" for row, a in zip(rows[1:], ages)]) + "\n")
    age = read_metadata(metadata, folder, ["label", "age"]).labels["age"]
    assert age.kind == "numeric"
    np.testing.assert_allclose(age.values, [20.5, -3.25, 40, 18.75, 0.5, 0.15])
    metadata.write_text(metadata.read_text().replace(";40\n", ";40.5\n"))  # a point among commas: not numbers
    assert read_metadata(metadata, folder, ["age"]).labels["age"].kind == "categorical"


def test_a_comma_in_a_comma_separated_table_is_not_a_decimal_mark(cohort):
    metadata, folder = cohort
    rows = metadata.read_text().splitlines()
    metadata.write_text("\n".join([rows[0] + ",age"] + [f'{row},"{i},5"' for i, row in enumerate(rows[1:])]) + "\n")
    age = read_metadata(metadata, folder, ["age"]).labels["age"]
    assert (age.kind, age.classes[:2]) == ("categorical", ["0,5", "1,5"])


@pytest.mark.parametrize("header", ["subject_id,filename,label,label", "subject_id,filename,label, label "])
def test_a_column_named_twice_is_refused(cohort, header):
    """pandas would read the second as `label.1` and the first would be used without a word."""
    metadata, folder = cohort
    rows = metadata.read_text().splitlines()
    metadata.write_text("\n".join([header] + [f"{row},{row[-1]}" for row in rows[1:]]) + "\n")
    with pytest.raises(MetadataError) as refused:
        read_metadata(metadata, folder)
    assert str(refused.value) == (f"{metadata}, line 1, column 'label': column 'label' is named twice in the header "
                                  "(columns 3 and 4); give each column its own name")


def _plan(metadata: Path) -> subprocess.CompletedProcess:
    """A dry run of the workflow on the demo's repertoires with `metadata` (the plan checks the table)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / "snakemake"), "-n", "-F", "--nolock", "--config", "run=own_cohort",
                           f"metadata={metadata}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "separator, spell, problem",
    [
        (",", lambda i, v: f"{v}.0" if i % 4 == 0 else v, None),  # 0, 1, 0.0, 1.0: binary for ingest and plan
        (";", lambda i, v: f"{v},0" if i % 4 == 0 else v, None),
        (",", lambda i, v: {"0": "neg", "1": "pos"}[v] if i != 7 else "NEG" if v == "0" else "POS",
         ", line 9, column 'label': values '{0}' (line {1}) and '{2}' (line 9) differ only in case; "
         "write each class one way"),
    ],
)
def test_the_workflow_counts_label_classes_as_ingest_does(tmp_path, separator, spell, problem):
    table = pd.read_csv(ROOT / "data" / "demo" / "metadata.csv", dtype=str)
    table["label"] = [spell(i, v) for i, v in enumerate(table["label"])]
    metadata = tmp_path / "metadata.csv"
    table.to_csv(metadata, index=False, sep=separator)
    result = _plan(metadata)
    out = result.stdout + result.stderr
    if problem is None:
        assert result.returncode == 0 and "rule ingest" in out, out[-2000:]
        return
    variant = table["label"].iloc[7]
    first = table["label"].str.lower().eq(variant.lower()).idxmax()
    expected = problem.format(table["label"].iloc[first], first + 2, variant)
    assert result.returncode != 0 and f"metadata {metadata}{expected}" in out.splitlines(), out[-2000:]


def test_the_workflow_refuses_a_column_named_twice(tmp_path):
    metadata = tmp_path / "metadata.csv"
    demo = (ROOT / "data" / "demo" / "metadata.csv").read_text().splitlines()
    metadata.write_text("\n".join([demo[0] + ",label"] + [f"{row},x" for row in demo[1:]]) + "\n")
    result = _plan(metadata)
    assert result.returncode != 0
    assert (f"metadata {metadata}, line 1, column 'label': column 'label' is named twice in the header (columns 3 "
            "and 4); give each column its own name") in (result.stdout + result.stderr).splitlines()
