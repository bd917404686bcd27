"""One self-contained HTML report of a cross-validated run (`deeprc-hopfield report`).

Sections: cohort and quality control (from the store), metrics of the model beside the baselines
(mean ± sd over folds, the pooled ROC AUC's interval and calibration, then per fold), ROC and PR curves (PNGs embedded as base64 data URIs),
the fold models (seeded k-mers, stored public clones, best update, when given; their stored clones merged, and the
command that scores new patients with them),
the sequences that attention ranks highest in the held-out repertoires, the interpretation (cohort
ranking, motifs and logos of `interpret-summary`, when given), the configuration as given, and the
software versions. No external CSS, JavaScript or image: the file can be mailed.
Every value taken from a file is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import importlib.metadata
import platform
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield import __version__
from deeprc_hopfield.errors import DeepRCError, named_list
from deeprc_hopfield.evaluate import METRICS, MODEL_METHOD, auc_text, calibration_text
from deeprc_hopfield.interpret import read_interpretation
from deeprc_hopfield.interpret.known import KNOWN_COLUMNS, known_share
from deeprc_hopfield.interpret.ranking import DONOR_COLUMNS
from deeprc_hopfield.inspect import CLONES_SHOWN, clone_rule_text, reference_text
from deeprc_hopfield.io import check_output, first_line, write_text
from deeprc_hopfield.qc import DROP_REASONS
from deeprc_hopfield.split import Split, donor_names, related_pairs_apart, related_table
from deeprc_hopfield.saved_model import CONFIG_FILE, model_members, read_model_config
from deeprc_hopfield.store import RepertoireStore

#: Rows of the attended-sequence table.
TOP_SEQUENCES = 50
SOFTWARE = ("deeprc-hopfield", "torch", "numpy", "pandas", "scikit-learn", "snakemake")
FIGURES = (("roc.png", "ROC curves"), ("pr.png", "Precision-recall curves"))
#: What marks an HTML file as a report of this package (how `report --force` knows what it may replace).
REPORT_MARKER = '<meta name="generator" content="deeprc-hopfield report">'
_METRIC_NAMES = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "balanced_accuracy": "balanced accuracy", "f1": "F1",
                 "brier": "Brier score"}

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 70em;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.figures img { max-width: 32em; margin-right: 1em; } .note { color: #666; font-size: 0.9em; }
.warning { border-left: 4px solid #c60; padding-left: 0.6em; }
code { font-size: 0.95em; }
"""


def _e(value: object) -> str:
    """A value as escaped HTML text (NaN and None as an empty cell)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return html.escape(str(value))


def html_table(frame: pd.DataFrame, numeric_format: str = "{:.3f}") -> str:
    """A DataFrame as an HTML table, every header and cell escaped, floats formatted."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for value in values:
            if isinstance(value, (float, np.floating)) and np.isfinite(value):
                cells.append(f'<td class="num">{_e(numeric_format.format(value))}</td>')
            elif isinstance(value, (int, np.integer)):
                cells.append(f'<td class="num">{_e(f"{value:,}")}</td>')
            else:
                cells.append(f"<td>{_e(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _read(path: Path, what: str, sep: str = "\t") -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep, dtype={"repertoire_id": str, "subject_id": str, "fold": str,
                                                 "positive_class": str, "label": str, "true_label": str,
                                                 "predicted": str})
    except FileNotFoundError:
        raise DeepRCError(f"{what} not found", path) from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DeepRCError(f"cannot read {what}: {exc}", path) from None


def model_folders(paths: list[Path]) -> list[Path]:
    """Model folders as `--models` names them: each a model (its config.json), or a folder of fold models."""
    found: list[Path] = []
    for path in paths:
        found += [path] if (path / CONFIG_FILE).is_file() or not path.is_dir() else model_members(path) or [path]
    return found


def check_same_cohort(store_path: Path, attended: list[Path], models: list[Path]) -> None:
    """Refuse, in one line, attended tables and models of another cohort than the store's: their repertoires
    must be the store's subjects, and a model's training files (by sha256, where it recorded them) the store's."""
    with RepertoireStore(store_path) as store:
        subjects = set(store.subject_ids)
        provenance = store.provenance()
        digests = dict(zip(store.subject_ids, provenance["sha256"])) if "sha256" in provenance else {}
    for path in attended:
        ids = _read(path, "attended-sequence table").get("repertoire_id", pd.Series(dtype=str)).dropna().unique()
        alien = sorted(set(ids) - subjects)
        if alien:
            raise DeepRCError(f"{len(alien)} of its {len(ids)} repertoires are not in the store {store_path} "
                              f"({named_list(alien)}): the attended table of another cohort?", path)
    for path in models:
        recorded = read_model_config(path).get("training", {}).get("subject_sha256") or {}
        other = sorted(s for s, digest in recorded.items() if digests.get(s) not in (digest, None) or s not in subjects)
        if other:
            raise DeepRCError(f"trained on {len(other)} repertoire(s) that are not the store's ({named_list(other)}; "
                              f"store {store_path}): a model of another cohort?", path)


# --- sections ------------------------------------------------------------------------------------
def cohort_section(store_path: Path) -> str:
    """Repertoires, sequences, label balance and QC drops by reason, from the store."""
    with RepertoireStore(store_path) as store:
        sizes = store.repertoire_sizes()
        overview = pd.DataFrame({"": ["repertoires", "sequences", "sequences per repertoire (median, min-max)",
                                      "V / J genes"],
                                 "value": [f"{store.n_repertoires:,}", f"{store.n_sequences:,}",
                                           f"{int(np.median(sizes)):,} ({sizes.min():,}-{sizes.max():,})",
                                           f"{len(store.v_genes)} / {len(store.j_genes)}"]})
        label_rows = []
        for name in store.label_names:
            label = store.label(name)
            if label.kind == "numeric":
                balance = f"mean {label.values.mean():.3g}, range {label.values.min():.3g}-{label.values.max():.3g}"
            else:
                counts = np.bincount(label.values, minlength=len(label.classes))
                balance = ", ".join(f"{c}: {k}" for c, k in zip(label.classes, counts))
            label_rows.append({"label": name, "kind": label.kind, "repertoires per class": balance})
        total = store.qc().sum()
        unlabelled = store.parameters.get("unlabelled_left_out", [])
        warned = store.warnings
    rows = {"input rows": "input_rows", **{reason: reason for reason in DROP_REASONS},
            "merged duplicates": "merged_duplicates", "kept sequences": "kept", "kept without V gene": "v_missing",
            "kept without J gene": "j_missing", "kept without a clone count": "count_missing"}
    shown = {name: column for name, column in rows.items() if column in total}  # a store before count_missing
    qc = pd.DataFrame({"rows": list(shown), "count": [int(total[column]) for column in shown.values()]})
    labels = html_table(pd.DataFrame(label_rows)) if label_rows else "<p>The store has no labels.</p>"
    if unlabelled:  # `ingest --drop-unlabelled`: who the cohort lacks, and why
        labels += (f"<p>{len(unlabelled)} subject(s) of the metadata table had no label value and were left out "
                   f"(<code>drop_unlabelled</code>): {_e(named_list(unlabelled, 20))}.</p>")
    warnings = "".join(f'<p class="warning"><b>At ingest:</b> {_e(message)}</p>' for message in warned)
    return ("<h2>Cohort and quality control</h2>" + warnings + html_table(overview) + "<h3>Labels</h3>" + labels
            + "<h3>Quality control (rows, all repertoires)</h3>" + html_table(qc))


def metrics_section(metrics: pd.DataFrame) -> str:
    """Mean ± sd per method and metric with the pooled ROC AUC's interval and calibration, then the ROC AUC of every
    fold."""
    missing = {"method", "fold", *METRICS} - set(metrics.columns)
    if missing:
        raise DeepRCError(f"metrics table lacks column '{sorted(missing)[0]}' (write it with `evaluate`)")
    metrics = metrics.assign(fold=metrics["fold"].astype(str))
    summary = metric_summary(metrics)
    per_fold = metrics[~metrics["fold"].isin(SUMMARY_ROWS)].pivot(index="method", columns="fold", values="roc_auc")
    per_fold = per_fold.reindex(metrics["method"].unique()).reset_index()
    per_fold.columns = ["method", *[f"fold {c}" for c in per_fold.columns[1:]]]
    return ("<h2>Cross-validated performance</h2><p>Held-out folds only; mean ± standard deviation over folds. "
            f"{_scored_class(metrics)}ROC AUC is the chance that a positive repertoire drawn at random gets a higher "
            "probability than a negative one (0.5: no better than guessing; 1: every positive above every negative); "
            "PR AUC (average precision) is the precision averaged over the positives found: a guess scores the share "
            "of positives, not 0.5, so compare it with that. Balanced accuracy (the mean of the share of each class called right) and F1 at a "
            "probability threshold of 0.5; the Brier score is "
            "the mean squared error of the probabilities (0 is perfect, 0.25 a constant 0.5).</p>"
            + _pooled_note(summary) + _constant_note(metrics) + _fewer_folds_note(summary) + html_table(summary)
            + "<h3>ROC AUC per held-out fold</h3>" + html_table(per_fold))


#: The rows of a metrics table that are not folds.
SUMMARY_ROWS = ("mean", "sd", "pooled")
_POOLED_AUC, _CALIBRATION = "ROC AUC, pooled (95% CI)", "calibration intercept / slope, pooled"


def metric_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row a method: its folds and each metric's mean ± sd over them (a metrics table of `evaluate`), then, where
    the table has them, the pooled ROC AUC with its interval and the pooled calibration intercept and slope."""
    rows = []
    for method, table in metrics.assign(fold=metrics["fold"].astype(str)).groupby("method", sort=False):
        by_fold = table.set_index("fold")
        folds = by_fold.drop(index=list(SUMMARY_ROWS), errors="ignore")
        row = {"method": method, "folds": len(folds)}
        for metric in METRICS:
            mean = by_fold[metric].get("mean", folds[metric].mean())
            sd = by_fold[metric].get("sd", folds[metric].std(ddof=1))
            row[_METRIC_NAMES[metric]] = f"{mean:.3f} ± {sd:.3f}" if pd.notna(sd) else f"{mean:.3f}"
        if "pooled" in by_fold.index and "roc_auc_low" in by_fold.columns:
            row |= _pooled_cells(by_fold.loc["pooled"])
        rows.append(row)
    return pd.DataFrame(rows)


def _pooled_cells(pooled: pd.Series) -> dict[str, str]:
    """The pooled ROC AUC with its interval, and 'intercept / slope' of the calibration line."""
    return {_POOLED_AUC: auc_text(pooled), _CALIBRATION: calibration_text(pooled)}


def _pooled_note(summary: pd.DataFrame) -> str:
    """What the pooled columns are, where the summary has them."""
    if _POOLED_AUC not in summary.columns:
        return ""
    return ("<p>The pooled columns score every held-out repertoire at once, as the curves below do (each by the model "
            "of its own fold). The 95% interval of the ROC AUC is the range of AUCs these fold models could truly have "
            "on patients like these, given how few were held out (DeLong's and Newcombe's, the wider at each end; with "
            "groups, counting groups); it does not count what training the models again would change. The calibration "
            "intercept is 0 where the probabilities are right on "
            "average (above 0: too low; below: too high), the slope 1 where they are neither too extreme (below 1, "
            "the usual sign of overfitting) nor too timid (above 1); 'separated': the classes do not overlap, so no "
            "slope can be fitted; 'constant': one probability for all.</p>")


def _fewer_folds_note(summary: pd.DataFrame) -> str:
    """A warning for each method scored on fewer folds than another (a baseline left out of a fold too thin for its
    inner CV): its mean is over other repertoires, so only comparisons.tsv's paired figures compare it."""
    most = summary["folds"].max() if len(summary) else 0
    fewer = summary[summary["folds"] < most]
    if fewer.empty:
        return ""
    named = "; ".join(f"<b>{_e(row.method)}</b> on {row.folds}" for row in fewer.itertuples())
    return (f'<p class="warning"><b>Fewer folds:</b> {named} of {most} folds. A mean over other held-out repertoires '
            "than the others' is not comparable with theirs; the comparisons below pair the repertoires both "
            "scored.</p>")


def donor_section(figures: Path) -> str:
    """The metrics and the comparisons by donor (evaluate's tables of a grouped split), where written."""
    path = figures / "metrics_by_donor.tsv"
    if not path.is_file():
        return ""
    metrics = _read(path, "metrics table by donor")
    donors = int(metrics.loc[metrics["fold"].astype(str) == "mean", "n"].max())
    by_repertoire = _read(figures / "metrics.tsv", "metrics table")
    samples = int(by_repertoire.loc[by_repertoire["fold"].astype(str) == "mean", "n"].max())
    comparisons = figures / "comparisons_by_donor.tsv"
    compared = _read(comparisons, "comparisons table by donor") if comparisons.is_file() else pd.DataFrame()
    return ("<h3>By donor</h3><p>The same held-out predictions with each donor (group of the split) scored once, by "
            f"the mean probability of its repertoires: {_e(donors)} donors of {_e(samples)} repertoires "
            f"({samples / max(donors, 1):.1f} a donor). This is a call on a donor from the mean of its samples, which "
            "is easier than a call on one sample: the figures above are those of one sample of a new patient. "
            "The p values below (DeLong's over donors) compare methods on that call; those above compare them on one "
            "sample's, their errors counting donors too (Obuchowski's). Per-fold figures rest on the few donors of a "
            "fold "
            "(<code>metrics_by_donor.tsv</code>, <code>comparisons_by_donor.tsv</code>).</p>"
            + html_table(metric_summary(metrics)) + (html_table(compared, "{:.4g}") if not compared.empty else ""))


def split_note(path: Path | None, figures: Path | None = None) -> str:
    """What the split held (folds, repertoires and, where grouped, groups) and what grouping means for reading the
    metrics and tests: they count repertoires, not donors (those of the evaluation at `figures` by donor do)."""
    if path is None:
        return ""
    table = Split.read(path).table
    folds, n = table["fold"].nunique(), len(table)
    if "group" not in table.columns:
        return (f"<p><b>Split:</b> {n} repertoires in {folds} folds, each repertoire on its own (no group column); "
                "where a donor gave several samples, <code>split</code> warns of those it sees (its log) and "
                "<code>group_column</code> keeps each donor's in one fold.</p>" + related_note(path))
    groups = table["group"].nunique()
    by_donor = figures is not None and (figures / "metrics_by_donor.tsv").is_file()
    clustered = by_donor and "roc_auc_low" in first_line(figures / "metrics.tsv")  # an evaluation of this version
    counted = ("their intervals and the comparisons' p values count groups (Obuchowski's clustered error), but the "
               "spread over folds does not, and " if clustered else "DeLong's p values and the spread over folds are "
               "optimistic, and ")
    return (f"<p><b>Split:</b> {n} repertoires of {groups} groups (e.g. donors) in {folds} folds; each group is in "
            "one fold and on one side of every inner split. The metrics above count "
            f"repertoires, not groups ({'&quot;By donor&quot; and ' if by_donor else ''}the interpretation's tests "
            f"count groups): with {n / groups:.1f} repertoires a group on average, a group's repertoires are not "
            f"independent, so {counted}a group of many samples weighs more than one of few.</p>" + related_note(path))


def related_note(path: Path) -> str:
    """A warning of the pairs of repertoires `split` took for samples of one donor that no group keeps together (its
    table beside the split table at `path`, where written), and of those the split puts in different folds: the
    metrics are then optimistic."""
    from deeprc_hopfield.donors import RELATED_SHARE, SKETCH_SIZE

    pairs, apart = related_pairs_apart(path)
    if not pairs:
        return ""
    effect = ("A donor on both sides of a fold lets its own clones pass for signal: the held-out metrics above are then "
              "likely optimistic." if apart else "None is split across folds, so the held-out metrics are not "
              "inflated by them, but a later split may be.")
    return (f'<p class="warning"><b>Samples of one donor?</b> <code>split</code> found {pairs} pair(s) of '
            f"repertoires that share {RELATED_SHARE:.0%} or more of their {SKETCH_SIZE} most abundant CDR3s and that "
            f"no group keeps together, {apart} of them in different folds (<code>{_e(related_table(path).name)}</code>; "
            f"two donors rarely share any). {effect} Name each repertoire's donor in a metadata column and give it as "
            "<code>group_column</code>.</p>")


def _constant_note(metrics: pd.DataFrame) -> str:
    """A warning for each method that gave every held-out subject of a fold one probability (a public-clone test
    that found no clone): its AUC there is 0.5 by construction, and its F1 and balanced accuracy are of a constant
    call, on one side of 0.5 or the other."""
    if "constant" not in metrics.columns:
        return ""
    folds = metrics[~metrics["fold"].astype(str).isin(SUMMARY_ROWS)]
    constant = folds[folds["constant"].astype("boolean").fillna(False).astype(bool)]
    notes = [f"<b>{_e(method)}</b> gave every held-out subject one probability in fold(s) "
             f"{_e(', '.join(rows['fold'].astype(str)))}" for method, rows in constant.groupby("method", sort=False)]
    if not notes:
        return ""
    return (f'<p class="warning"><b>Constant predictions:</b> {"; ".join(notes)} (found nothing to score by, e.g. '
            "no public clone): its ROC AUC there is 0.5 by construction, and its F1 and balanced accuracy are those "
            "of calling every subject one class, not evidence.</p>")


def comparisons_section(figures: Path) -> str:
    """The model against each baseline on the pooled held-out predictions (evaluate's comparisons.tsv), where
    written: a difference in ROC AUC is claimed with its paired test, not from the means alone."""
    path = figures / "comparisons.tsv"
    if not path.is_file():
        return ""
    table = _read(path, "comparisons table")
    if table.empty:
        return ""
    return ("<h3>The model against each baseline</h3><p>ROC AUC of the model less the baseline's, on the held-out "
            "predictions of every fold pooled (the same subjects), with its paired standard error and a one-sided "
            "p (DeLong's test; the folds' models differ, so it is approximate; one test per baseline, uncorrected). "
            "The pooled difference can differ from that of the per-fold means above. A difference whose p is not "
            "small is no evidence that either is better.</p>" + html_table(table, "{:.4g}"))


#: Wrong (and unsure) held-out calls listed by the report (the most confident (least sure) first); held_out.tsv has
#: all.
WRONG_CALLS_SHOWN = 20
#: Calls whose probability is within this of 0.5 are counted as unsure.
UNSURE_WITHIN = 0.2
_CALL_COLUMNS = ["subject_id", "fold", "true_label", "probability"]


def calls_section(figures: Path) -> str:
    """The model's held-out calls at 0.5 (evaluate's held_out.tsv, where written): how many were right in each class,
    which were unsure and which were wrong, by name, so that a balanced accuracy of 0.99 is one named repertoire to
    look at, not a rounding."""
    path = figures / "held_out.tsv"
    if not path.is_file():
        return ""
    calls = _read(path, "held-out calls", sep="\t")
    model = calls[calls["method"] == MODEL_METHOD]
    if model.empty:
        return ""
    correct = model["correct"].astype(bool)
    per_class = correct.groupby(model["true_label"].astype(str)).agg(["sum", "size"])
    right = "; ".join(f"{_e(label)}: {row['sum']} of {row['size']}" for label, row in per_class.iterrows())
    model = model.assign(distance=model["probability"].sub(0.5).abs().round(9))  # 0.7 is 0.2 from 0.5, not 0.1999...
    wrong = model[~correct].sort_values("distance", ascending=False, kind="stable")
    unsure = model[model["distance"] < UNSURE_WITHIN].sort_values("distance", kind="stable")
    between = f"between {0.5 - UNSURE_WITHIN:.1f} and {0.5 + UNSURE_WITHIN:.1f}"
    listed = (_calls_table(wrong, "The wrong calls, the most confident first")
              if len(wrong) else "<p>No held-out repertoire was called wrongly.</p>")
    return ("<h3>The model's held-out calls</h3><p>Each held-out repertoire called at a probability of 0.5 by the fold "
            f"model that never saw it: {int(correct.sum())} of {len(model)} right ({right}). "
            f"{len(unsure)} had a probability {between}, where a call is unsure; the further from 0.5, the surer, as "
            "far as the calibration above holds (<code>held_out.tsv</code> lists every call of every method).</p>"
            + listed + (_calls_table(unsure, f"The unsure calls ({between}), the least sure first") if len(unsure)
                        else ""))


def _calls_table(calls: pd.DataFrame, caption: str) -> str:
    """Held-out calls by name (subject, fold, true class, probability), the first :data:`WRONG_CALLS_SHOWN` of them
    in their order, and how many there are where more."""
    first = f" (the first {WRONG_CALLS_SHOWN} of {len(calls)})" if len(calls) > WRONG_CALLS_SHOWN else ""
    return f"<p>{caption}{first}:</p>" + html_table(calls.head(WRONG_CALLS_SHOWN)[_CALL_COLUMNS])


def _scored_class(metrics: pd.DataFrame) -> str:
    """'Positive class: <b>CMV+</b> (label <b>status</b>). ' from the metrics table (tables written before these
    columns: nothing)."""
    if "positive_class" not in metrics.columns or metrics["positive_class"].isna().all():
        return ""
    labels = metrics["label"].dropna() if "label" in metrics.columns else pd.Series(dtype=str)
    of = f" (label <b>{_e(str(labels.iloc[0]))}</b>)" if len(labels) else ""
    return f"Positive class: <b>{_e(str(metrics['positive_class'].dropna().iloc[0]))}</b>{of}. "


def image_tag(path: Path, alt: str) -> str:
    """An <img> with the PNG at `path` embedded as a base64 data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def figures_section(folder: Path) -> str:
    """ROC and PR curves (and any other PNG of the folder), embedded."""
    if not folder.is_dir():
        raise DeepRCError("figures folder not found", folder)
    known = [(folder / name, title) for name, title in FIGURES if (folder / name).is_file()]
    others = [(p, p.stem) for p in sorted(folder.glob("*.png")) if p.name not in dict(FIGURES)]
    images = "".join(image_tag(p, title) for p, title in known + others)
    body = f'<div class="figures">{images}</div>' if images else "<p>No figures found.</p>"
    return ("<h2>ROC and precision-recall curves</h2><p>One curve per method, its held-out folds pooled; the legend "
            "gives the area under that pooled curve, then the mean ± sd of the per-fold areas (the table above).</p>"
            + body)


def attended_summary(attended: pd.DataFrame, classes_of: dict[str, str] | None = None,
                     top: int = TOP_SEQUENCES, positive: str | None = None,
                     donor_of: dict[str, str] | None = None) -> pd.DataFrame:
    """The sequences found most often among the top-attended sequences of the held-out repertoires.

    One row per (junction_aa, v_call, j_call): the number of repertoires whose top list holds it
    (and, with `classes_of` mapping repertoire id -> class, how many of each class), its best rank,
    its highest attention weight and up to three of those repertoires; sorted by repertoires, then
    best rank, then attention. With `positive` (a class of `classes_of`) only the positive repertoires' top lists
    are summarised (repertoires, best rank, attention and examples are theirs; `in <class>` counts every class),
    sorted by those repertoires first and the other classes' after (fewest first): every repertoire's attention
    sums to the same whatever the call, so a control's top list is merely its best match. With `donor_of` (repertoire
    id -> donor, several samples a donor) a `donors` column counts the donors of those repertoires and sorts first:
    a sequence in the lists of one donor's three samples is one donor's finding.
    """
    needed = {"repertoire_id", "rank", "attention", "junction_aa"}
    if not needed <= set(attended.columns):
        raise DeepRCError(f"attended table lacks column '{sorted(needed - set(attended.columns))[0]}' "
                          "(write it with `attend`)")
    table = attended.copy()
    for gene in ("v_call", "j_call"):
        table[gene] = table[gene].fillna("") if gene in table.columns else ""
    keys = ["junction_aa", "v_call", "j_call"]
    if classes_of:
        table["class"] = table["repertoire_id"].map(classes_of).fillna("not in store")
    ranked = table[table["class"] == positive] if classes_of and positive is not None else table
    known = {c: (c, "first") for c in KNOWN_COLUMNS if c in table.columns}
    by_donor = {} if donor_of is None else {"donors": ("donor", "nunique")}
    if donor_of is not None:
        ranked = ranked.assign(donor=donor_names(ranked["repertoire_id"].astype(str).tolist(), donor_of))
    out = ranked.groupby(keys, sort=False).agg(
        **by_donor, repertoires=("repertoire_id", "nunique"), best_rank=("rank", "min"),
        max_attention=("attention", "max"),
        examples=("repertoire_id", lambda ids: ", ".join(map(str, pd.unique(ids)[:3]))), **known)
    first = list(by_donor)  # with donors: how many donors list it, before how many repertoires
    if classes_of:
        per_class = table.drop_duplicates([*keys, "repertoire_id"]).pivot_table(
            index=keys, columns="class", values="repertoire_id", aggfunc="count", fill_value=0)
        out = out.join(per_class.rename(columns=lambda c: f"in {c}"))
    if positive is not None:  # the positives' lists only; other classes counted beside, fewest first
        others = [c for c in out.columns if c.startswith("in ") and c != f"in {positive}"]
        out = out.assign(_others=out[others].sum(axis=1) if others else 0)
        out = out.sort_values([*first, "repertoires", "_others", "best_rank", "max_attention"],
                              ascending=[*[False] * len(first), False, True, True, False]).drop(columns="_others")
    else:
        out = out.sort_values([*first, "repertoires", "best_rank", "max_attention"],
                              ascending=[*[False] * len(first), False, True, False])
    return out.head(top).reset_index()


def attended_section(paths: list[Path], store_path: Path, label_name: str | None,
                     donor_of: dict[str, str] | None = None) -> str:
    """The sequences most often in the held-out repertoires' top-attended lists (:func:`attended_summary`)."""
    tables = [_read(p, "attended-sequence table") for p in paths]
    attended = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    classes_of, positive = None, None
    with RepertoireStore(store_path) as store:
        names = [label_name] if label_name else store.label_names[:1]
        if names and names[0] in store.label_names:
            label = store.label(names[0])
            if label.kind != "numeric":
                classes_of = {s: f"{names[0]}={label.classes[v]}" for s, v in zip(store.subject_ids, label.values)}
            if label.kind == "binary":
                positive = f"{names[0]}={label.classes[-1]}"
    if attended.empty:
        return "<h2>Most attended sequences</h2><p>No attended sequences were given.</p>"
    summary = attended_summary(attended, classes_of, positive=positive, donor_of=donor_of)
    top_k = int(attended.groupby("repertoire_id").size().max())
    private = ("<p>No sequence is in more than one of these repertoires' lists: each row is one repertoire's own "
               "most-attended sequence, ordered by rank and attention, not by recurrence (a signal of private "
               "sequences, such as a motif: see the interpretation's motifs).</p>"
               if len(summary) and summary["repertoires"].max() == 1 else "")
    if positive is None:
        which = f"{attended['repertoire_id'].nunique()} held-out repertoires"
    else:
        n_positive = sum(classes_of.get(r) == positive for r in attended["repertoire_id"].unique())
        which = (f"the {n_positive} held-out repertoires of {_e(positive)}, sorted by how many of them list it, then "
                 "by how few others do (a control's top list is only its best match: every repertoire's attention "
                 "sums to the same whatever the call); <code>repertoires</code>, <code>best_rank</code>, "
                 "<code>max_attention</code> and <code>examples</code> are of these repertoires' lists, the "
                 "<code>in</code> columns count the lists of each class that hold the sequence")
    if donor_of is not None:
        which += ("; <code>donors</code> counts the donors (the split's groups) of the repertoires that list it, "
                  "and sorts first: one donor's several samples listing a sequence are one donor's finding")
    return (f"<h2>Most attended sequences</h2><p>The {len(summary)} sequences found most often among the top "
            f"{top_k} attended sequences of {which}; each repertoire scored by the model of the fold that held it "
            "out. <code>max_attention</code> is the largest attention weight (a share of the repertoire's "
            "attention, which sums to between 1 and the number of heads; 1/n for a repertoire of n sequences is "
            "uniform; the interpretation below gives attention × repertoire size instead, 1 = uniform).</p>" + private
            + known_share_note(attended, f"the top {top_k} attended sequences")
            + html_table(summary.rename(columns={"max_attention": "max_attention (share)"}), "{:.4g}"))


def known_share_note(table: pd.DataFrame, what: str) -> str:
    """A line giving the share of `table`'s rows that match a receptor of the models' reference ('' without one)."""
    share = known_share(table)
    if share is None:
        return ""
    return (f"<p><b>Known specificity:</b> {share:.0%} of {_e(what)} match a receptor of the reference the "
            "models were trained with (<code>known_epitope</code>, <code>known_antigen</code>).</p>")


#: Rows of the ranked-sequence and motif tables of the interpretation section.
TOP_RANKED, TOP_MOTIFS = 30, 10
_RANKED_SHOWN = ["rank", "junction_aa", "v_call", "j_call", "family", "score", "n_positive", "n_negative",
                 "attended_positive", "attended_negative", *DONOR_COLUMNS,
                 "mean_attention_positive", "mean_attention_negative", "fisher_p",
                 "top_repertoire", *KNOWN_COLUMNS]


def _families_note(shown: pd.DataFrame) -> str:
    """How many families the rows shown are, where fewer than the rows (variants of one receptor fill the top)."""
    if "family" not in shown.columns or shown["family"].isna().all():
        return ""
    families = shown["family"].nunique()
    return (f" The {len(shown)} rows shown are {families} families." if 0 < families < len(shown) else "")


def _donors_note(info: dict) -> str:
    """What counts donors in a ranking of grouped repertoires (several samples a donor), '' without groups."""
    donors, reps = info.get("donors"), info.get("repertoires", {})
    if info.get("donors_not_counted"):
        return (f"<p><b>Donors:</b> the tests count repertoires, not donors: {_e(info['donors_not_counted'])}.</p>")
    if not donors:
        return ""
    return (f"<p><b>Donors:</b> the {_e(reps.get('positive', '?'))} positive and {_e(reps.get('negative', '?'))} "
            f"negative repertoires are {_e(donors['positive'])} positive and {_e(donors['negative'])} negative donors "
            "(their groups). A donor's samples are not independent, so the score, <b>fisher_p</b>, the log odds "
            "ratio and the motifs' tests count donors: a donor adds the mean evidence of its samples (a sample "
            "without the sequence adds 0, so a donor sampled often weighs as one sampled once), <b>n_donors</b> are "
            "the donors carrying the sequence and <b>attended_donors</b> those whose mean attention over their "
            "samples is above uniform. <b>n_positive</b>, <b>attended</b> and the mean attention count "
            "repertoires.</p>")


def _label_source_text(source: str) -> str:
    """Which labels made a repertoire positive in a ranking (interpretation.json `label_source`), for its caption."""
    parts = {"store": "the stored labels", "predicted": "the model's calls (p >= 0.5) where a repertoire has none"}
    return " and ".join(parts.get(part, part) for part in source.split("+"))


def _motif_bar(info: dict) -> str:
    """The motif tests' bar as the caption states it: alpha over the patterns tested, and log10 p's cut-off."""
    test = info.get("motif_test") or {}
    if not test.get("patterns_tested"):
        return f"alpha {test.get('alpha', 0.05)}"
    cut = test.get("log10_p_max")
    return (f"alpha {test.get('alpha')} over {test['patterns_tested']:,} patterns"
            + (f" (log10 p below {cut:.2f})" if cut is not None else ""))


def interpretation_section(folder: Path | None) -> str:
    """The cohort ranking (first rows), the motifs and the logos of an `interpret` folder."""
    if folder is None:
        return ""
    found = read_interpretation(folder)
    info, ranked, motif_table = found.info, found.ranked, found.motifs
    reps = info.get("repertoires", {})
    top = ranked.head(TOP_RANKED)
    evident = top[top["score"] > 0] if "score" in top.columns else top  # a score of 0 or less is no finding
    shown = evident[[c for c in _RANKED_SHOWN if c in ranked.columns]]
    left = (f"<p>{len(top) - len(evident)} of the {len(top)} top-ranked sequences have no positive score (no more "
            "attention in positives than in negatives) and are not shown; all are in "
            "<code>ranked_sequences.tsv</code>.</p>") if len(evident) < len(top) else ""
    logos = "".join(image_tag(p, p.stem.replace("_", " ")) for p in found.motif_logos)
    contribution = found.contribution_logo
    unit = "donors" if info.get("donors") else "repertoires"  # what the score and the tests count (_donors_note)
    return (
        "<h2>Interpretation</h2><p>Sequences ranked over "
        f"{_e(reps.get('positive', '?'))} positive and {_e(reps.get('negative', '?'))} negative held-out "
        "repertoires (each by its fold's model). <b>score</b>: bits of attention above uniform "
        f"(log2 of attention × repertoire size, counted where above 1) summed over the positive {unit} "
        f"that carry the sequence{' (each by the mean of its samples)' if unit == 'donors' else ''}, minus the same "
        "over the negative ones; <b>attended</b>: repertoires whose "
        "attention to it is above uniform; <b>mean attention</b>: attention × repertoire size (1 = uniform); "
        f"<b>fisher_p</b>: one-sided Fisher test of attended positive {unit} against negative ones, uncorrected, and "
        f"telling only for a sequence several {unit} carry (one carried by a single positive cannot go below "
        f"positive {unit}/{unit}); <b>family</b>: the rank of the best row of its family of near-identical sequences "
        "(CDR3 cores one substitution apart, linked in a chain, of one V family or an unknown V; "
        "<code>family_size</code> in the file)." + _families_note(shown) + " Positive and negative are "
        f"{_e(_label_source_text(info.get('label_source', 'store')))}.</p>" + _donors_note(info)
        + (f"<p><b>Not held out:</b> {len(info['scored_by_training_model'])} of these repertoires were scored by "
           "a model fitted or validated on them (<code>--allow-training-subjects</code>).</p>"
           if info.get("scored_by_training_model") else "")
        + known_share_note(ranked.head(TOP_RANKED), f"the {TOP_RANKED} top-ranked sequences")
        + html_table(shown.rename(columns=lambda c: f"{c} (× uniform)" if c.startswith("mean_attention") else c),
                     "{:.4g}") + left
        + "<h3>Motifs of the positives' most-attended sequences</h3><p>Gapped k-mers ('.' = any residue) enriched "
        f"among the {_e(info.get('foreground_sequences', '?'))} sequences that are the "
        f"{_e((info.get('settings') or {}).get('motif_top', 'N'))} most attended of each positive repertoire "
        "(<code>motif_foreground.tsv</code>; not the ranking above) against the negative repertoires' sequences. "
        + ("With groups, a sequence in the top of several of a donor's samples is searched once. "
           if unit == "donors" else "")
        + "<b>support</b>: those sequences carrying the motif; <b>repertoires</b>: the positive "
        f"{unit} they come from; <b>log10_p</b>: one-sided Fisher test of that "
        "enrichment (low by construction: the sequences were picked by attention); <b>positive_fraction</b>, "
        f"<b>negative_fraction</b>: the mean share of each class's {unit}' sequences carrying it; "
        f"<b>label_log10_p</b>: Welch's one-sided t-test of those shares over {unit}, the test that the motif "
        "tells the classes apart. A motif is listed only when both p values pass "
        f"{_e(_motif_bar(info))} (Bonferroni over the patterns tested).</p>"
        + (html_table(motif_table.head(TOP_MOTIFS), "{:.4g}") if len(motif_table) else "<p>No motif found.</p>")
        + (f'<div class="figures">{logos}</div>' if logos else "")
        + "<h3>Residue contributions of the top sequences</h3><p>Integrated gradients of each sequence's "
        "attention logit against the same sequence with its residues blanked (letters below the line lower "
        "the logit).</p>"
        + (f'<div class="figures">{image_tag(contribution, "contributions")}</div>' if contribution is not None
           else "<p>No contributions.</p>"))


def memory_alone_note(models: list[Path], what: str) -> str:
    """A visible note when fold models give their clone memory's output alone (training chose it on validation):
    their calls rest on the stored public clones, which `what` (a table of attention) does not explain."""
    alone = [path.name for path in models if read_model_config(path).get("training", {}).get("memory_alone")]
    if not alone:
        return ""
    which = "every fold's model" if len(alone) == len(models) else f"{len(alone)} of the {len(models)} fold models"
    return (f"<p class=\"warning\"><b>Clone memory alone:</b> {which} ({_e(named_list(alone, 10))}) gave its clone "
            "memory's output alone: on validation repertoires the trained attention network did not beat it. Those "
            f"calls rest on the stored public clones (the fold-model table), and {_e(what)} does not explain them.</p>")


def models_section(models: list[Path], config: Path | None = None) -> str:
    """What each fold model was started from (seeded k-mers, stored public clones) and where training stopped, the
    clones they stored merged, and how to score new patients with them (`config`: the run's, for the workflow's
    predict target)."""
    if not models:
        return ""
    rows, flagged = [], []
    for path in models:
        training = read_model_config(path).get("training", {})
        clones = training.get("memory_clones", [])
        reference = training.get("reference") or {}
        validation, few = validation_text(training)
        flagged += [path.name] if few else []
        rows.append({"model": path.name, "validation": validation,
                     "best update": training.get("best_update", "?"),
                     "output": "clone memory alone" if training.get("memory_alone") else "trained model",
                     "seeded k-mers": ", ".join(training.get("seeded_kmers", [])) or "-",
                     "stored public clones": len(clones),
                     "first stored clones": (", ".join(clones[:CLONES_SHOWN])
                                             + (" ..." if len(clones) > CLONES_SHOWN else "")),
                     "clone rule": clone_rule_text(training.get("clone_rule")),
                     "reference": reference_text(reference)})
    warning = (f'<p class="warning"><b>Few validation donors:</b> {_e(", ".join(flagged))} validated on fewer '
               f"than {MIN_VALIDATION_DONORS} donors (repertoires, where ungrouped; training's log warns below 3 of a "
               "class): the best update, and where the model made them its calibration and its choice between the "
               "trained model and the clone memory, rest on very little (more donors, or a larger "
               "<code>validation_fraction</code>, give them more).</p>") if flagged else ""
    return ("<h2>Fold models</h2>" + warning + "<p>Each fold's model: the repertoires (and donors) it validated on, "
            "the update chosen by validation loss, the gapped "
            "k-mers its first-layer filters started from (enriched in the positive fitting repertoires) and "
            "the public clones its clone memory stores (CDR3s the public-clone test associates with the "
            "positive class; 0 when the cohort shows no such signal) with the clone rule chosen by inner "
            "cross-validation (V level of the key, match radius; its inner-CV ROC AUC), and what became of a reference of known "
            "receptors (used or not, by its ROC AUC in inner cross-validation and on validation). All lists are in "
            "each model's config.json.</p>" + html_table(pd.DataFrame(rows), "{}") + stored_clones_section(models)
            + _new_patients_note(models, config))


def _new_patients_note(models: list[Path], config: Path | None) -> str:
    """How to classify new patients with these models: their folder as one ensemble, and in the workflow the predict
    target of this run (its config copy named: without --configfile, snakemake plans the demo's run)."""
    folder = _e(str(models[0].parent))
    configfile = _e(shlex.quote(str(config))) if config is not None else "YOUR_CONFIG"
    return ("<p><b>New patients:</b> the fold models together are the model to use: <code>deeprc-hopfield predict "
            f"--model {folder} --repertoires DIR --out predictions.csv</code> (or, in the workflow, from the folder "
            f"this run was made in, <code>snakemake --cores 8 predict --configfile {configfile} --config "
            "new_repertoires=DIR</code>: the run's config must be named, as without <code>--configfile</code> "
            "snakemake plans the demo's run) scores each new repertoire by every fold model "
            "and gives the mean probability and its spread (<code>probability_sd</code>). The metrics above are those "
            "of one fold model on patients like this cohort's: a rough guide to the ensemble's ranking (often a little "
            "better), not to its calibration (a mean of models is less extreme than one); a cohort from another lab, "
            "protocol or population may score lower.</p>")


#: Rows of the table of the clones stored over the fold models (every model's are in its config.json).
STORED_CLONES_SHOWN = 30


def stored_clones(models: list[Path]) -> pd.DataFrame:
    """The public clones stored by the fold models' clone memories (config.json `training.memory_clones`), merged:
    one row a clone (its CDR3 and V gene as config.json names it, '' without one), the number of models that stored
    it and their names; the clone most models stored first."""
    found: dict[str, list[str]] = {}
    for path in models:
        for name in dict.fromkeys(read_model_config(path).get("training", {}).get("memory_clones") or []):
            found.setdefault(name, []).append(path.name)
    rows = [{"CDR3": name.partition(" ")[0], "V": name.partition(" ")[2], "fold models": len(held),
             "stored by": ", ".join(held)} for name, held in found.items()]
    table = pd.DataFrame(rows, columns=["CDR3", "V", "fold models", "stored by"])
    return table.sort_values(["fold models", "CDR3", "V"], ascending=[False, True, True], kind="stable",
                             ignore_index=True)


def stored_clones_section(models: list[Path]) -> str:
    """The clones stored over the fold models (:func:`stored_clones`), the most shared first, where any model stored
    one: the sequences that a clone memory's calls count."""
    table = stored_clones(models)
    if table.empty:
        return ""
    alone = sum(bool(read_model_config(p).get("training", {}).get("memory_alone")) for p in models)
    rest = (f"<p>{len(table) - STORED_CLONES_SHOWN} more clones are not shown: each model's are in its config.json "
            "(<code>training.memory_clones</code>).</p>") if len(table) > STORED_CLONES_SHOWN else ""
    models_word = "fold model" if len(models) == 1 else "fold models"
    return (f"<h3>Stored public clones, {len(models)} {models_word}</h3><p>The {len(table)} public clones the "
            f"{models_word}' clone memories stored and match in a repertoire (each by its model's clone rule above): a "
            "model that gives its clone memory alone "
            f"({alone} of the {len(models)} here) calls a held-out patient by how many of its own stored clones the "
            "patient carries "
            "(a trained model adds that count to its call and raises the attention on each copy). "
            "<b>fold models</b>: how many of them stored the clone.</p>"
            + html_table(table.head(STORED_CLONES_SHOWN)) + rest)


#: Fewer donors (repertoires, where ungrouped) than this in a fold model's validation part are warned of: its
#: choices rest on them (3 of each class).
MIN_VALIDATION_DONORS = 6


def validation_text(training: dict) -> tuple[str, bool]:
    """A fold model's validation part as config.json records it (its repertoires and, where grouped, their donors),
    and whether it holds fewer than :data:`MIN_VALIDATION_DONORS` donors (repertoires, where ungrouped)."""
    subjects = training.get("validation_subjects") or []
    if not subjects:
        return "?", False
    groups = training.get("subject_groups") or {}
    donors = len({groups.get(s, s) for s in subjects})
    few = donors < MIN_VALIDATION_DONORS
    text = f"{len(subjects)} repertoires" + (f" of {donors} donors" if groups else "")
    return text + (" (few)" if few else ""), few


def versions() -> dict[str, str]:
    """Versions of Python and the main packages (`not installed` where absent)."""
    found = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["deeprc-hopfield"] = __version__
    return found


def config_section(config: Path | None) -> str:
    if config is None:
        return ""
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeepRCError("config file not found", config) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeepRCError(f"cannot read config: {exc}", config) from None
    return f"<h2>Configuration</h2><p class=\"note\">{_e(config)}</p><pre>{_e(text)}</pre>"


# --- the document --------------------------------------------------------------------------------
def build_report(store: str | Path, metrics: str | Path, figures: str | Path, attended: list[Path],
                 config: str | Path | None, title: str = "deeprc-hopfield report", label: str | None = None,
                 interpretation: str | Path | None = None, models: list[Path] | None = None,
                 split: str | Path | None = None) -> str:
    """The report as one HTML string (see the module docstring for its sections)."""
    metrics_table = _read(Path(metrics), "metrics table")
    models = model_folders([Path(p) for p in models or []])
    check_same_cohort(Path(store), [Path(p) for p in attended], models)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    software = pd.DataFrame(list(versions().items()), columns=["software", "version"])
    body = [
        f"<h1>{_e(title)}</h1><p class=\"note\">Written {_e(created)} by deeprc-hopfield {_e(__version__)}.</p>",
        cohort_section(Path(store)),
        metrics_section(metrics_table) + split_note(Path(split) if split is not None else None, Path(figures))
        + memory_alone_note(models, "the attention of the sections below"),
        comparisons_section(Path(figures)) + calls_section(Path(figures)) + donor_section(Path(figures))
        + figures_section(Path(figures)),
        models_section(models, Path(config) if config is not None else None),
        attended_section([Path(p) for p in attended], Path(store), label,
                         Split.read(split).group_of() if split is not None else None)
        + (memory_alone_note(models, "this table") if attended else ""),
        interpretation_section(Path(interpretation) if interpretation is not None else None)
        + (memory_alone_note(models, "this ranking") if interpretation is not None else ""),
        config_section(Path(config) if config is not None else None),
        "<h2>Software</h2>" + html_table(software),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" + REPORT_MARKER +
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def is_report(path: Path) -> bool:
    """Whether the file `path` is a report written by `report`: by its :data:`REPORT_MARKER`, or (reports
    written before it) by the note under the title."""
    try:
        with open(path, encoding="utf-8") as handle:
            head = handle.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return False
    legacy = '<p class="note">Written ' in head and " by deeprc-hopfield " in head
    return head.startswith("<!DOCTYPE html>") and (REPORT_MARKER in head or legacy)


def write_report(out: str | Path, force: bool = False, **kwargs: object) -> Path:
    """Build the report and write it atomically to `out` (keyword arguments of :func:`build_report`).

    An existing `out` is replaced only when it is an earlier report and `force` (refused before any
    work: :func:`deeprc_hopfield.io.check_output`).
    """
    check_output(out, "report", force, folder=False, recognise=is_report)
    document = build_report(**kwargs)
    return write_text(out, document)
