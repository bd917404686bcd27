"""Metadata validation: every user mistake is one MetadataError naming file, line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeprc_hopfield.errors import MetadataError
from deeprc_hopfield.metadata import infer_label, read_metadata


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
        ("P4,", "P1,", 6, "subject_id", "duplicate subject_id 'P1' (also on line 3)"),
        ("P2,rep2.tsv,False", "P2,rep2.tsv,", 4, "label", "missing label value"),
    ],
)
def test_row_errors_name_line_and_column(cohort, old, new, line, column, words):
    metadata, folder = cohort
    _rewrite(metadata, old, new)
    with pytest.raises(MetadataError) as info:
        read_metadata(metadata, folder)
    assert (info.value.line, info.value.column) == (line, column)
    assert words in str(info.value) and str(metadata) in str(info.value)


def test_missing_required_and_label_columns(cohort):
    metadata, folder = cohort
    _rewrite(metadata, "filename", "file")
    with pytest.raises(MetadataError, match="required column 'filename' is missing"):
        read_metadata(metadata, folder)
    _rewrite(metadata, "file", "filename")
    with pytest.raises(MetadataError, match="label column 'cmv' is missing"):
        read_metadata(metadata, folder, ["cmv"])


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


@pytest.mark.parametrize("missing", ["NA", "nan", "N/A", "?"])
def test_na_words_are_missing_labels_not_a_class(cohort, missing):
    metadata, folder = cohort
    _rewrite(metadata, "rep2.tsv,False", f"rep2.tsv,{missing}")
    with pytest.raises(MetadataError, match="missing label value") as info:
        read_metadata(metadata, folder)
    assert info.value.line == 4


@pytest.mark.parametrize(
    "values, positive, classes",
    [
        (["healthy", "T1D"], None, ["healthy", "T1D"]),
        (["control", "case"], None, ["control", "case"]),
        (["healthy", "T1D"], "healthy", ["T1D", "healthy"]),
        (["a", "b"], "a", ["b", "a"]),
    ],
)
def test_negative_class_first(values, positive, classes):
    import pandas as pd

    label = infer_label("x", pd.Series(values), positive)
    assert label.classes == classes
    assert label.values.tolist() == [classes.index(v) for v in values]  # each value coded by its class


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
