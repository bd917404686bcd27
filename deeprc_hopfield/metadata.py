"""The cohort's metadata table: one row per repertoire, `subject_id`, `filename` and label columns.

Every problem is a :class:`MetadataError` naming the file, line and column, raised before any
output is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.errors import DeepRCError, MetadataError, did_you_mean, named_list
from deeprc_hopfield.readers.common import not_utf8, read_header

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("subject_id", "filename")
DEFAULT_LABEL_COLUMN = "label"
_BOOLEAN_PAIRS = [
    ("false", "true"), ("f", "t"), ("no", "yes"), ("n", "y"), ("0", "1"),
    ("negative", "positive"), ("neg", "pos"), ("-", "+"), ("absent", "present"), ("undetected", "detected"),
    ("nonreactive", "reactive"),
]
#: Words that make a class the negation of the other (`not detected` / `detected`), and prefixes that do where
#: the rest is a word of 4 letters or more (`nonresponder`, `uninfected`; not `unit` / `it`).
_NEGATIONS = ("not", "non", "no")
_NEGATING_PREFIXES = ("non", "un")
#: Dashes a spreadsheet or a word processor writes for a minus (`CMV −`, `CMV –`): read as '-'.
_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-", "\uff0d": "-"})


@dataclass
class Label:
    """One label column: its kind, its classes (in code order) and one value per repertoire.

    `kind` is 'binary' (two classes; code 1 is the positive one), 'categorical' or 'numeric'.
    `values` holds class codes (int64) for the first two kinds, floats for 'numeric'.
    """

    name: str
    kind: str
    classes: list[str]
    values: np.ndarray


@dataclass
class Metadata:
    """A validated metadata table with each repertoire's file resolved on disk."""

    path: Path
    table: pd.DataFrame
    files: list[Path]
    labels: dict[str, Label] = field(default_factory=dict)
    lines: np.ndarray | None = None  # each row's line in the file (the header is line 1)
    decimal_comma: bool = False  # a ';'-separated table, as Excel writes it where the comma is the decimal mark
    unlabelled: list[str] = field(default_factory=list)  # subjects left out for a missing label (drop_unlabelled)

    def class_names(self, column: str) -> pd.Series:
        """A column's values spelled as `ingest` names classes, NaN where missing (:func:`class_names`)."""
        values = self.table[column].set_axis(self.lines - 2) if self.lines is not None else self.table[column]
        return class_names(values, column, self.decimal_comma, self.path).set_axis(self.table.index)

    @property
    def subject_ids(self) -> list[str]:
        return self.table["subject_id"].tolist()


#: Values that mean "not known" in tables written by R, pandas or spreadsheets (compared in lower case).
MISSING_VALUES = {"", "na", "n/a", "nan", "null", "none", "?"}
#: A label's missing values: those, and a clinical sheet's `Unknown` (an unknown CMV status is no third class; a
#: subject, file or group named so is not missing).
MISSING_LABELS = MISSING_VALUES | {"unknown"}


def missing_labels(values: pd.Series) -> np.ndarray:
    """Which label values are missing (:data:`MISSING_LABELS`, or NaN), as a mask: ingest, evaluate and the
    workflow's plan decide it by this one rule."""
    text = values.astype("string").str.strip().str.lower()
    return (text.isna() | text.isin(MISSING_LABELS)).to_numpy(dtype=bool)


#: Words that name the negative (reference) class of a two-class label.
_NEGATIVE_WORDS = {"healthy", "control", "controls", "normal", "negative", "neg", "uninfected", "unexposed"}


def _words(name: str) -> list[str]:
    """A class name as lower-case words and signs (`CMV +` -> ['cmv', '+']; `non-responder` -> ['nonresponder']: a
    dash between letters joins; any dash is read as '-')."""
    joined = re.sub(r"(?<=[^\W_])-(?=[^\W_])", "", name.translate(_DASHES).lower())
    return re.findall(r"[^\W_]+|[+-]", joined)


def _negative_by_words(classes: list[str]) -> str | None:
    """The negative one of two classes when their names say it: the words they share aside, one is a negation or
    the negative of a pair (`CMV -`/`CMV +`, `not detected`/`detected`, `seronegative`/`seropositive`); else None."""
    words = [_words(c) for c in classes]
    first, second = words
    while first and second and first[0] == second[0]:
        first, second = first[1:], second[1:]
    while first and second and first[-1] == second[-1]:
        first, second = first[:-1], second[:-1]
    whole = len(words[0]) == len(words[1]) == 1  # each class one word (or sign): `F`/`T` may be a pair
    for k, (mine, other) in enumerate([(first, second), (second, first)]):
        negated = len(mine) == 1 and mine[0] in _NEGATIONS and not other
        if len(mine) == len(other) == 1:  # one word each: a pair, a negation, or a pair's word inside (CMVnegative)
            pair = (mine[0], other[0]) in _BOOLEAN_PAIRS and (whole or len(mine[0]) > 1 or mine[0] in "+-")
            prefixed = len(other[0]) >= 4 and any(mine[0] == n + other[0] for n in _NEGATING_PREFIXES)
            negated |= pair or prefixed
            negated |= any(len(n) > 2 and mine[0].replace(n, p, 1) == other[0] for n, p in _BOOLEAN_PAIRS)
        if negated:
            return classes[k]
    marked = [c for c, w in zip(classes, words) if any(_negating(word) for word in w)]
    return marked[0] if len(marked) == 1 else None  # one name negates, the other not: `seronegative`/`seroconverted`


def _negating(word: str) -> bool:
    """A word that makes its class the negative one wherever it stands: `not`, `negative`, `seronegative`,
    `nonresponder` (a `non` word of 6 letters or more)."""
    return word in _NEGATIONS or "negative" in word or word.startswith("non") and len(word) >= 6


def _values(classes: list[str]) -> list[float] | None:
    """Two class names as numbers, or None unless both are numbers."""
    try:
        return [float(c) for c in classes]
    except ValueError:
        return None


def two_class_order(classes: list[str], positive: str | None = None) -> list[str]:
    """Negative class first: the other one when `positive` is given, else two numbers by value (the larger one
    positive: `2` before `10`), else a word such as healthy/control, else the one the names make negative
    (:func:`_negative_by_words`: false/true, no/yes, CMV-/CMV+, not detected/detected, ...); else alphabetical
    (:func:`guessed_order` says when the names did not decide). `ingest`, `evaluate` and the workflow's plan all
    order two classes by this one rule."""
    if positive is not None and positive in classes:
        return sorted(classes, key=lambda c: c == positive)
    values = _values(classes)
    if values is not None:
        return [c for _, c in sorted(zip(values, classes))]
    negatives = [c for c in classes if c.lower() in _NEGATIVE_WORDS]
    negative = negatives[0] if len(negatives) == 1 else _negative_by_words(classes)
    if negative is not None:
        return sorted(classes, key=lambda c: c != negative)
    return sorted(classes)


def order_is_named(classes: list[str]) -> bool:
    """Whether two class names say which is negative (else :func:`two_class_order` falls back to the alphabet)."""
    return sum(c.lower() in _NEGATIVE_WORDS for c in classes) == 1 or _negative_by_words(classes) is not None


#: A number as Excel writes it where the comma is the decimal mark: `20,5`, `-3,25`, `,5`, `1,5E-05`.
_DECIMAL_COMMA = r"[+-]?(?:\d+,?\d*|,\d+)(?:[eE][+-]?\d+)?"


def _as_numbers(text: pd.Series, decimal_comma: bool = False) -> pd.Series | None:
    """Every value as a float, or None when one is not a number; with `decimal_comma` (a ';'-separated table)
    `20,5` reads as 20.5, but only when every value is written so (or as a whole number)."""
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        return numbers.astype(np.float64)
    if decimal_comma and text.str.fullmatch(_DECIMAL_COMMA).all():
        return pd.to_numeric(text.str.replace(",", ".", regex=False)).astype(np.float64)
    return None


def _number_name(number: float) -> str:
    """A number's one spelling, so that `0`, `0.0` and `-0` name one class ('0') and `20,5` is '20.5'."""
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e16 else repr(float(number))


def _number_spelling(value: str | None, decimal_comma: bool = False) -> str | None:
    """`value` in :func:`_number_name`'s spelling when it is a number (`--positive-class 1.0` names class '1')."""
    numbers = None if value is None else _as_numbers(pd.Series([value.strip()]), decimal_comma)
    return value if numbers is None else _number_name(numbers.iloc[0])


def _refuse_case_variants(name: str, text: pd.Series, path: Path | None) -> None:
    """Refuse class names that differ only in letter case (`FALSE`/`false`): merging would guess that they mean
    one class, keeping both would make two; the line is the table's (index + 2: the header is line 1)."""
    first = text.groupby(text.str.casefold(), sort=False).transform("first")
    other = np.flatnonzero((text != first).to_numpy())
    if len(other):
        spelling, variant = first.iloc[other[0]], text.iloc[other[0]]
        earlier = int(np.flatnonzero((text == spelling).to_numpy())[0])
        line, line_before = int(text.index[other[0]]) + 2, int(text.index[earlier]) + 2
        raise MetadataError(f"values '{spelling}' (line {line_before}) and '{variant}' (line {line}) differ only "
                            "in case; write each class one way", path, line=line, column=name)


def label_names(name: str, raw: pd.Series, decimal_comma: bool = False,
                path: Path | None = None) -> tuple[pd.Series, pd.Series | None]:
    """A label column's values as class names, and as floats when all of them are numbers.

    Parameters
    ----------
    name
        The label column (named in errors).
    raw
        Its values as text, without missing ones; the index is the table's row (line = index + 2).
    decimal_comma
        Whether the table is ';'-separated, as Excel writes it where the comma is the decimal mark.
    path
        The metadata table (named in errors).

    Returns
    -------
    The stripped values with one spelling per number (`0`, `0.0` and, with `decimal_comma`, `0,0` are all
    '0'), and the numbers (None unless every value is one). Names that differ only in letter case are a
    :class:`MetadataError`.
    """
    text = raw.astype(str).str.strip()
    numbers = _as_numbers(text, decimal_comma)
    if numbers is None:
        _refuse_case_variants(name, text, path)
        return text, None
    spelling = {number: _number_name(number) for number in numbers.unique()}
    return numbers.map(spelling), numbers


def class_names(values: pd.Series, name: str, decimal_comma: bool = False, path: Path | None = None) -> pd.Series:
    """A label column's values spelled as `ingest` names its classes (:func:`label_names`), NaN where a value is
    missing (:data:`MISSING_LABELS`): what the workflow's plan check and `predict --metadata` compare."""
    text = values.astype(str).str.strip()
    known = text[~missing_labels(values)]
    return label_names(name, known, decimal_comma, path)[0].reindex(text.index)


def infer_label(name: str, raw: pd.Series, positive: str | None = None, decimal_comma: bool = False,
                path: Path | None = None) -> Label:
    """Type a label column by its distinct values (numbers by value): two are binary, more numbers numeric,
    else categorical.

    `positive` names the class to code as 1 in a binary label (default: see :func:`two_class_order`; two
    numbers: the larger one). `decimal_comma` and `path` are as for :func:`label_names`.
    """
    text, numbers = label_names(name, raw, decimal_comma, path)
    if numbers is None:
        distinct = sorted(text.unique().tolist())
    else:  # in numeric order
        distinct = [_number_name(number) for number in np.unique(numbers.to_numpy())]
        positive = _number_spelling(positive, decimal_comma)
    if len(distinct) == 1:
        log.warning("label '%s' has a single value ('%s'): nothing to learn from it", name, distinct[0])
    if len(distinct) == 2:
        classes = two_class_order(distinct, positive)
        guessed = None if positive in distinct else guessed_order(distinct)
        if guessed:
            log.warning("label '%s': %s", name, guessed)
        return Label(name, "binary", classes, text.map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64))
    if numbers is not None and len(distinct) > 2:
        return Label(name, "numeric", [], numbers.to_numpy(np.float64))
    return Label(name, "categorical", distinct, text.map({c: i for i, c in enumerate(distinct)}).to_numpy(np.int64))


def guessed_order(classes: list[str]) -> str | None:
    """What to tell the user when :func:`two_class_order` took the order of two classes not from their names but
    from the alphabet, or from two numbers other than 0 and 1 (the larger positive); None when the names said it."""
    numbers = _values(classes) is not None
    if numbers and sorted(classes) == ["0", "1"] or not numbers and order_is_named(classes):
        return None
    classes = two_class_order(classes)
    rule = "the larger number is" if numbers else "neither name says which is negative, so the alphabet makes"
    return (f"{rule} the positive class: negative '{classes[0]}', positive '{classes[1]}'; if the positive class is "
            f"'{classes[0]}', say so with --positive-class (the workflow: positive_class)")


def describe_label(label: Label) -> str:
    """A label's kind and classes for the log (a binary one's negative and positive: what --positive-class sets)."""
    if label.kind == "binary":
        return f"binary, negative '{label.classes[0]}', positive '{label.classes[1]}'"
    if label.kind == "numeric":
        return f"numeric, {np.nanmin(label.values):g} to {np.nanmax(label.values):g}"
    return f"{label.kind}, {len(label.classes)} classes: {named_list(label.classes)}"


def _label_text(label: Label) -> np.ndarray:
    """Each repertoire's label value as the store and predictions name it: its class, or its number."""
    if label.kind == "numeric":
        numbers = pd.Series(label.values)
        return numbers.map({number: _number_name(number) for number in numbers.unique()}).to_numpy(object)
    return np.asarray(label.classes, dtype=object)[label.values]


def _check_positive_class(positive: str | None, labels: dict[str, Label], path: Path, decimal_comma: bool) -> None:
    """A positive class that no two-class label has is refused: ignoring it would code the classes the other way
    round without a word (values are compared exactly, as the table writes them; numbers by value)."""
    if positive is None:
        return
    two = {name: label for name, label in labels.items() if label.kind != "numeric" and len(label.classes) <= 2}
    spellings = {positive.strip(), _number_spelling(positive, decimal_comma)}
    if not any(spellings & set(label.classes) for label in two.values()):
        held = "; ".join(f"'{name}': {', '.join(label.classes)}" for name, label in two.items())
        raise MetadataError(f"--positive-class '{positive}' is not a class of any two-class label "
                            f"({held or 'the table has none'})", path)


def resolve_file(directory: Path, name: str) -> Path | None:
    """The repertoire file a metadata row names: found as named, with an added `.gz`, or without a `.gz` named."""
    plain = name[:-3] if name.lower().endswith(".gz") else None
    for candidate in (directory / name, directory / f"{name}.gz", *([directory / plain] if plain else [])):
        if candidate.is_file():
            return candidate
    return None


def _refuse_repeated_names(names: list[str], path: Path, used: Iterable[str] | None) -> None:
    """A column that is read (`used`; None: any) named twice in the header is refused: pandas would rename the
    second (`label.1`) and the first would be used without a word. Other repeated names get a note."""
    named = pd.Series(names)
    repeated = [int(k) for k in np.flatnonzero((named.duplicated() & (named != "")).to_numpy())]
    wanted = set(names if used is None else used)
    for k in repeated:
        name, first = names[k], names.index(names[k])
        if name in wanted:
            raise MetadataError(f"column '{name}' is named twice in the header (columns {first + 1} and {k + 1}); "
                                "give each column its own name", path, line=1, column=name)
    if repeated:
        log.info("note: %s: column(s) named twice in the header, not read: %s", path,
                 ", ".join(dict.fromkeys(names[k] for k in repeated)))


def read_table(path: Path, used: Iterable[str] | None = None) -> tuple[pd.DataFrame, str]:
    """The metadata table as text (cells as written) and its delimiter (tab, comma or semicolon, from the header);
    a file that cannot be read as a table, or that names a column of `used` (None: any) twice, is a
    :class:`MetadataError`.

    Rows with no value in any cell (blank lines, the `;;;` rows Excel leaves below a table) are left out; the
    index is each row's line in the file less 2 (the header is line 1), so errors name the file's lines."""
    if not path.is_file():
        raise MetadataError("metadata file not found", path)
    try:
        names, delimiter = read_header(path)
        _refuse_repeated_names(names, path, used)
        table = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except MetadataError:
        raise
    except DeepRCError as exc:
        raise MetadataError(exc.message, path, exc.line) from None
    except UnicodeDecodeError:
        exc = not_utf8(path)
        raise MetadataError(exc.message, path, exc.line) from None
    except pd.errors.ParserError as exc:
        raise MetadataError(f"cannot parse metadata table: {str(exc).strip()}", path) from None
    table = table.fillna("")
    return table[~table.apply(lambda column: column.str.strip().eq("")).all(axis=1)], delimiter


def _leave_out_unlabelled(table: pd.DataFrame, label_columns: list[str], path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The rows with a value in every label column, and the subjects of the others (left out, with a warning that
    names them and their lines): a subject of unknown status is classified after training, not trained on."""
    missing = np.zeros(len(table), dtype=bool)
    for column in label_columns:
        missing |= missing_labels(table[column])
    if not missing.any():
        return table, []
    left = table[missing]
    subjects = left["subject_id"].str.strip().tolist()
    shown = ", ".join(f"{s} (line {int(i) + 2})" for s, i in zip(subjects[:5], left.index[:5]))
    labels = "label " + ", ".join(f"'{column}'" for column in label_columns)
    log.warning("%s: %d of %d subjects have no value for %s and are left out of the store (--drop-unlabelled): %s%s; "
                "classify them with `predict` after training", path, len(subjects), len(table), labels, shown,
                ", ..." if len(subjects) > 5 else "")
    if missing.all():
        raise MetadataError(f"no subject has a value for {labels}: nothing is left to store", path)
    return table[~missing], subjects


def read_metadata(path: str | Path, repertoire_dir: str | Path, label_columns: list[str] | None = None,
                  positive_class: str | None = None, drop_unlabelled: bool = False) -> Metadata:
    """Read and validate a CSV/TSV metadata table against the folder of repertoire files.

    Parameters
    ----------
    path
        The metadata table (tab-, comma- or semicolon-separated; detected from the header).
    repertoire_dir
        Folder holding the files named in the `filename` column.
    label_columns
        Label columns to use. None means `label` if the table has it, else no labels (a cohort to
        classify, not to train on).
    positive_class
        The value to code as the positive class (1) of two-class labels.
    drop_unlabelled
        Leave out subjects with a missing label value (their files are not read; :attr:`Metadata.unlabelled`
        names them) rather than refuse the table.
    """
    path, repertoire_dir = Path(path), Path(repertoire_dir)
    table, delimiter = read_table(path, used=[*REQUIRED_COLUMNS, *(label_columns or [DEFAULT_LABEL_COLUMN])])
    table.columns = [c.strip() for c in table.columns]
    for column in REQUIRED_COLUMNS:
        if column not in table.columns:
            raise MetadataError(f"required column '{column}' is missing (columns: {', '.join(table.columns)})"
                                f"{did_you_mean(column, table.columns)}", path)
    if label_columns is None:
        label_columns = [DEFAULT_LABEL_COLUMN] if DEFAULT_LABEL_COLUMN in table.columns else []
        others = [c for c in table.columns if c not in REQUIRED_COLUMNS]
        if not label_columns and others:
            log.warning("%s: no column '%s', so the store gets no label (a cohort to classify); to train on one of "
                        "%s, name it with --label-column", path, DEFAULT_LABEL_COLUMN, ", ".join(others[:8]))
    for column in label_columns:
        if column not in table.columns:
            raise MetadataError(f"label column '{column}' is missing (columns: {', '.join(table.columns)})"
                                f"{did_you_mean(column, table.columns)}", path)
    if len(table) == 0:
        raise MetadataError("metadata table has no rows", path)
    if not repertoire_dir.is_dir():
        raise MetadataError(f"repertoire folder '{repertoire_dir}' does not exist", path)

    unlabelled: list[str] = []
    if drop_unlabelled and label_columns:
        table, unlabelled = _leave_out_unlabelled(table, label_columns, path)
    line_of = lambda row: int(table.index[row]) + 2  # noqa: E731  (the row's line: the header is line 1)
    for column in ("subject_id", "filename", *label_columns):
        values = table[column].str.strip()
        label = column in label_columns
        words = MISSING_LABELS if label else MISSING_VALUES
        empty = np.flatnonzero(values.str.lower().isin(words).to_numpy())
        if len(empty):
            what = "label value" if label else "value"
            said = values.iloc[empty[0]]
            read_as = f" ('{said}' is read as missing: {', '.join(sorted(w for w in words if w))} and an " \
                      "empty cell are)" if said else ""
            hint = f"; {len(empty)} row(s) have none: give each a value, or leave them out with --drop-unlabelled " \
                   "(the workflow: drop_unlabelled: true) and classify them with `predict` after training" \
                if label else ""
            raise MetadataError(f"missing {what}{read_as}{hint}", path, line=line_of(empty[0]), column=column)
        duplicated = values.duplicated(keep="first").to_numpy()
        if column in REQUIRED_COLUMNS and duplicated.any():
            row = int(np.flatnonzero(duplicated)[0])
            first = int(np.flatnonzero((values == values.iloc[row]).to_numpy())[0])
            raise MetadataError(
                f"duplicate {column} '{values.iloc[row]}' (also on line {line_of(first)})",
                path, line=line_of(row), column=column,
            )
        table[column] = values

    files: list[Path] = []
    for row, name in enumerate(table["filename"]):
        found = resolve_file(repertoire_dir, name)
        if found is None:
            present = [p.name for p in repertoire_dir.iterdir() if p.is_file()]
            raise MetadataError(f"repertoire file '{name}' not found in {repertoire_dir}{did_you_mean(name, present)}",
                                path, line=line_of(row), column="filename")
        files.append(found)

    named = {f.resolve() for f in files} | {path.resolve()}
    unnamed = sorted(p.name for p in repertoire_dir.iterdir() if p.is_file() and p.resolve() not in named)
    if unnamed:
        shown = ", ".join(unnamed[:5]) + (" ..." if len(unnamed) > 5 else "")
        log.info("note: %d file(s) in %s are not named in the metadata and are ignored: %s",
                 len(unnamed), repertoire_dir, shown)
    positive_class = None if positive_class is None else positive_class.strip()  # as the labels are read
    decimal_comma = delimiter == ";"
    labels = {column: infer_label(column, table[column], positive_class, decimal_comma, path)
              for column in label_columns}
    _check_positive_class(positive_class, labels, path, decimal_comma)
    for column, label in labels.items():  # one spelling per class: `0.0` is written '0', as the store names it
        table[column] = _label_text(label)
    return Metadata(path=path, table=table.reset_index(drop=True), files=files, labels=labels,
                    lines=table.index.to_numpy() + 2, decimal_comma=decimal_comma, unlabelled=unlabelled)
