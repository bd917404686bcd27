"""Cross-validated metrics of several methods on the same split (`deeprc-hopfield evaluate`).

Each method's predictions are held-out rows only: one row per subject, scored by a model that
never saw that subject. The fold of each row comes from the split table (a `fold` column in a
predictions file must agree with it), so a prediction made inside its own training folds cannot be
mixed in unnoticed. A row without a true label (`predict --metadata` leaves it empty for a subject of
unknown label) is left out of the scoring, counted and named in the log. Per fold and per method: ROC
AUC, PR AUC (average precision), balanced accuracy and F1 (threshold 0.5 on the probability of the
positive class), n; then the mean and the standard deviation (ddof 1) over folds, and the same on every
held-out row pooled. Fold and pooled rows add the ROC AUC's 95% interval (the wider at each end of
DeLong's logit interval, Obuchowski's counting donors for a split of groups, and Newcombe's score interval)
and the calibration intercept and slope. ROC and PR curves pool the
held-out folds of each method. metrics.tsv names the label scored: the one its files name, or the one
the caller names for single-label files, which name none (`--label-name`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (average_precision_score, balanced_accuracy_score, f1_score, precision_recall_curve,
                             roc_auc_score, roc_curve)

from deeprc_hopfield.errors import DeepRCError, named_list
from deeprc_hopfield.io import atomic_file, atomic_folder, check_output, first_line, write_table
from deeprc_hopfield.metadata import missing_labels, two_class_order
from deeprc_hopfield.metrics import INTERVAL_LEVEL, auc_interval, calibration_line
from deeprc_hopfield.split import Split, donor_names

log = logging.getLogger(__name__)

METRICS = ("roc_auc", "pr_auc", "balanced_accuracy", "f1", "brier")
THRESHOLD = 0.5


def parse_named_files(items: list[str]) -> dict[str, list[Path]]:
    """`NAME=FILE` arguments to {name: [files]}; a name given several times collects its files
    (e.g. one predictions file per held-out fold)."""
    named: dict[str, list[Path]] = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name.strip() or not file.strip():
            raise DeepRCError(f"'{item}' is not NAME=FILE (e.g. deeprc=results/demo/predictions.csv)")
        named.setdefault(name.strip(), []).append(Path(file.strip()))
    return named


def _named_labels(paths: list[Path]) -> set[str]:
    """The binary labels that predictions files of several labels name (`<label>_probability`)."""
    named = set()
    for path in paths:
        try:
            columns = pd.read_csv(path, sep=None, engine="python", nrows=0).columns
        except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
            continue  # read again, and refused with its reason, below
        named |= {c[: -len("_probability")] for c in columns if c.endswith("_probability")}
    return named


def _scored_label(label: str | None, paths: list[Path], name: str | None = None) -> str:
    """The label that metrics.tsv says it scored: --label-column's, else the only one the files name, else
    --label-name's (`name`: single-label files name none; '' without it). A --label-column that no file names is
    refused: a typo would otherwise score the single-label files as they are; so is a --label-name beside files
    that name their labels, where --label-column chooses (and is checked)."""
    named = _named_labels(paths)
    if name is not None:
        if not name.strip():
            raise DeepRCError("--label-name is empty: give the name of the label the predictions are of")
        if label is not None:
            raise DeepRCError("give --label-column or --label-name, not both: --label-column chooses the label scored "
                              "in files of several labels, --label-name names the label of single-label files")
        if named:
            raise DeepRCError(f"--label-name {name} names the label of single-label predictions; these files name "
                              f"their labels ({', '.join(sorted(named))}): choose the one scored with --label-column")
        return name.strip()
    if label is not None and label not in named:
        raise DeepRCError(f"--label-column {label}: no predictions file has a column {label}_probability")
    return label if label is not None else (next(iter(named)) if len(named) == 1 else "")


def _binary_label_columns(table: pd.DataFrame, path: Path, label: str | None) -> pd.DataFrame:
    """`table` with the `probability` and `true_label` of one binary label: `predict` names them `<label>_probability`
    and `<label>_true` in a file of several labels; `label` picks one, else the only binary one is taken."""
    binary = [c[: -len("_probability")] for c in table.columns if c.endswith("_probability")]
    if label is None and "probability" in table.columns:
        return table
    if label is None and len(binary) == 1:
        label = binary[0]
        log.info("%s: scoring label '%s', the file's only binary label", path, label)
    if label is None:
        others = [c for c in table.columns if c.endswith("predicted") or "_probability_" in c or
                  c.startswith("probability_")]
        if binary:
            raise DeepRCError(f"predictions of several binary labels ({', '.join(binary)}): choose one with "
                              "--label-column", path)
        if others:
            raise DeepRCError("evaluate scores binary labels: this file holds no binary label's probability (columns "
                              f"{', '.join(others[:4])}: a numeric or categorical label)", path)
        return table
    if f"{label}_probability" not in table.columns and "probability" in table.columns:
        return table  # a single label's predictions (a baseline's beside a multi-label model's)
    if f"{label}_probability" not in table.columns:
        raise DeepRCError(f"no probability of label '{label}' (binary labels here: "
                          f"{', '.join(binary) or ('the single label' if 'probability' in table.columns else 'none')})",
                          path)
    truth = f"{label}_true" if f"{label}_true" in table.columns else "true_label"
    called = {"predicted": table[f"{label}_predicted"]} if f"{label}_predicted" in table.columns else {}
    return table.assign(probability=table[f"{label}_probability"],
                        true_label=table[truth].astype("string") if truth in table.columns else None, **called)


def _read_one(path: Path, label: str | None = None) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep=None, engine="python", dtype=str)  # labels as written (TRUE is no boolean);
        # numbers are read where they are used (probability, fold), each refused with its line when not one
        table = table.astype({c: "string" for c in table.columns if c.endswith("_true")})  # a missing one stays so
    except FileNotFoundError:
        raise DeepRCError("predictions file not found", path) from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DeepRCError(f"cannot read predictions: {exc}", path) from None
    table = _binary_label_columns(table, path, label)
    for column in ("subject_id", "probability", "true_label"):
        if column not in table.columns:
            raise DeepRCError("predictions need columns subject_id, probability (binary label) and true_label",
                              path, column=column)
    probability = pd.to_numeric(table["probability"], errors="coerce")
    bad = np.flatnonzero(probability.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DeepRCError(f"missing or non-numeric value '{table['probability'].iloc[row]}'", path, row + 2,
                          "probability")
    if unlabelled(table["true_label"]).all():
        raise DeepRCError(f"no row has a true label (all {len(table)} are empty): only subjects of known label can "
                          "be scored; predict --metadata fills true_label from the metadata's label column", path,
                          column="true_label")
    outside = np.flatnonzero(~probability.between(0, 1).to_numpy())
    if len(outside):
        row = int(outside[0])
        raise DeepRCError(f"probability {table['probability'].iloc[row]} is outside [0, 1] (a probability of the "
                          "positive class is needed, not a score or a logit)", path, row + 2, "probability")
    table["probability"] = probability
    table["source"] = str(path)
    table["line"] = np.arange(len(table)) + 2
    return table


def unlabelled(true_label: pd.Series) -> np.ndarray:
    """Which rows have no true label (a missing or blank cell, `NA`, `Unknown`: a subject of unknown label, as
    `ingest` reads labels: :func:`deeprc_hopfield.metadata.missing_labels`)."""
    return missing_labels(true_label)


def _labelled(table: pd.DataFrame, paths: list[Path]) -> pd.DataFrame:
    """The rows of `table` that have a true label; the others are left out of the scoring, counted and named in
    the log."""
    missing = unlabelled(table["true_label"])
    if missing.any():
        log.warning("%s: %d of %d subjects have no true label and are left out of the scoring: %s",
                    ", ".join(map(str, paths)), int(missing.sum()), len(table),
                    named_list(table["subject_id"][missing].tolist()))
    return table[~missing].reset_index(drop=True)


def read_predictions(paths: list[Path], split: Split | None, label: str | None = None) -> pd.DataFrame:
    """One method's held-out predictions with each row's fold from the split (no split: an external cohort, one
    fold 0).

    Refuses a subject that is not in the split, one predicted twice, and a `fold` column that
    disagrees with the split; leaves out (and logs) the rows without a true label. Returns columns subject_id,
    fold, probability, true_label.
    """
    table = pd.concat([_read_one(p, label) for p in paths], ignore_index=True)
    if split is None:
        _refuse_repeated(table)
        return _labelled(pd.DataFrame({"subject_id": table["subject_id"], "fold": 0,
                                       "probability": table["probability"],
                                       "true_label": table["true_label"].str.strip(), **_called(table)}), paths)
    unknown = ~table["subject_id"].isin(split.subject_ids)
    if unknown.any():
        row = table[unknown].iloc[0]
        raise DeepRCError(f"subject '{row['subject_id']}' is not in the split {split.path}", row["source"],
                          int(row["line"]), "subject_id")
    _refuse_repeated(table)
    fold = pd.Series(split.fold_of(table["subject_id"].tolist()), index=table.index)
    if "fold" in table.columns:
        given = pd.to_numeric(table["fold"], errors="coerce")
        wrong = given.to_numpy() != fold.to_numpy()
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise DeepRCError(f"subject '{table['subject_id'].iloc[row]}' is in fold {table['fold'].iloc[row]} here "
                              f"but in fold {fold.iloc[row]} of the split {split.path}", table["source"].iloc[row],
                              int(table["line"].iloc[row]), "fold")
    missing = len(split) - len(table)
    if missing:
        log.warning("%s: no prediction for %d of the split's %d subjects", ", ".join(map(str, paths)), missing,
                    len(split))
    return _labelled(pd.DataFrame({"subject_id": table["subject_id"], "fold": fold,
                                   "probability": table["probability"],
                                   "true_label": table["true_label"].str.strip(), **_called(table)}), paths)


def _called(table: pd.DataFrame) -> dict[str, pd.Series]:
    """A model's `predicted` column (the class it calls at p >= 0.5), kept to tell whose probability the file gives."""
    return {"predicted": table["predicted"].astype("string").str.strip()} if "predicted" in table.columns else {}


def _refuse_repeated(table: pd.DataFrame) -> None:
    """A subject predicted twice: held-out predictions have one row per subject."""
    repeated = table["subject_id"].duplicated()
    if repeated.any():
        row = table[repeated].iloc[0]
        raise DeepRCError(f"subject '{row['subject_id']}' is predicted twice (held-out predictions have one row "
                          "per subject)", row["source"], int(row["line"]), "subject_id")


def positive_class(labels: list[str], given: str | None = None, called: str | None = None) -> str:
    """The positive class among the true labels: the one whose probability a model's files give (`called`:
    :func:`called_positive`), else `given`, else the rule `ingest` uses (:func:`two_class_order`). A `given` that
    is not `called` is refused: it would score 1 - AUC (a store ingested with another --positive-class)."""
    classes = sorted(set(labels))
    if len(classes) != 2:
        raise DeepRCError(f"evaluate needs a binary label; the predictions hold {len(classes)} class(es): "
                          f"{', '.join(classes[:5])}")
    if given is not None and given not in classes:
        raise DeepRCError(f"--positive-class '{given}' is not one of the classes ({', '.join(classes)})")
    if called in classes:
        if given is not None and given != called:
            raise DeepRCError(f"--positive-class '{given}', but the model's probabilities are of '{called}' (its "
                              "predictions' `predicted` column: the class at p >= 0.5); give the class its store was "
                              "ingested with as positive, or leave --positive-class out")
        return called
    return two_class_order(classes, given)[1]


def called_positive(tables: dict[str, pd.DataFrame]) -> str | None:
    """The class whose probability the model's predictions give, read from their `predicted` column (the class
    called at p >= 0.5; the other below; rows at 0.5 exactly, rounded in the file, are left aside): None where no
    file has the column. Files whose calls imply different classes are refused: one of them would score 1 - AUC."""
    implied: dict[str, set[str]] = {}
    for method, table in tables.items():
        if "predicted" not in table.columns:
            continue
        rows = table.dropna(subset=["predicted"])
        classes = set(rows["true_label"].dropna())
        if len(classes) != 2:
            continue
        found = set(rows.loc[rows["probability"] > THRESHOLD, "predicted"])
        for negative in set(rows.loc[rows["probability"] < THRESHOLD, "predicted"]):
            found |= classes - {negative}
        if found:
            implied[method] = found
    named = set().union(*implied.values()) if implied else set()
    if len(named) > 1:
        said = "; ".join(f"{method}: {', '.join(sorted(found))}" for method, found in implied.items())
        raise DeepRCError(f"the predictions' `predicted` columns disagree on the class whose probability they give "
                          f"({said}): evaluate predictions of models with one class order")
    return next(iter(named)) if named else None


def fold_metrics(y: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), balanced accuracy and F1 at 0.5, the Brier score (mean
    squared error of the probabilities: how well they are calibrated, lower is better) and n; AUCs
    are NaN when only one class is present."""
    both = len(np.unique(y)) == 2
    predicted = probability >= THRESHOLD
    return {
        "roc_auc": float(roc_auc_score(y, probability)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, probability)) if both else float("nan"),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, zero_division=0.0)),
        "brier": float(np.mean((probability - y) ** 2)),
        "n": len(y),
    }


def uncertainty(y: np.ndarray, probability: np.ndarray, donors: np.ndarray | None = None) -> dict[str, float]:
    """The ROC AUC's 95% interval (:func:`~deeprc_hopfield.metrics.auc_interval`; with `donors`, one a repertoire,
    Obuchowski's, which counts donors, not repertoires) and the calibration intercept and slope
    (:func:`~deeprc_hopfield.metrics.calibration_line`) of one fold's or the pooled predictions: what a mean and sd
    over folds cannot say (how sure an AUC is, whether probabilities are too extreme)."""
    low, high = auc_interval(y, probability, clusters=donors)
    intercept, slope = calibration_line(y, probability)
    return {"roc_auc_low": low, "roc_auc_high": high, "calibration_intercept": intercept, "calibration_slope": slope}


#: metrics.tsv's columns of a fold or the pooled predictions, not summarised over folds (the mean of a few folds'
#: intervals is no interval of their mean AUC; a slope where one fold is separated has no mean).
UNCERTAINTY = ("roc_auc_low", "roc_auc_high", "calibration_intercept", "calibration_slope")
#: metrics.tsv's columns, in order, before the label and the positive class.
METRICS_COLUMNS = ["method", "fold", "roc_auc", *UNCERTAINTY[:2], *METRICS[1:], *UNCERTAINTY[2:], "n", "constant"]


def metrics_table(predictions: dict[str, pd.DataFrame], donor_of: dict[str, str] | None = None) -> pd.DataFrame:
    """Per method: one row per fold, then `mean` (n: all held-out rows) and `sd` (ddof 1) over folds, then `pooled`:
    every held-out row at once (what the curves and comparisons.tsv score; the folds' models differ, so it
    reads as one model drawn at random). Fold and pooled rows add :func:`uncertainty`'s columns, whose intervals
    count donors where `donor_of` (subject -> donor) is given.

    `predictions` maps a method name to a table with columns subject_id, fold, probability and y (0/1).
    """
    rows = []
    for method, table in predictions.items():
        per_fold = [{"method": method, "fold": int(k), **fold_metrics(g["y"].to_numpy(), g["probability"].to_numpy()),
                     **uncertainty(g["y"].to_numpy(), g["probability"].to_numpy(), _donors(g, donor_of)),
                     "constant": _constant(g["probability"].to_numpy())}
                    for k, g in table.groupby("fold", sort=True)]
        values = pd.DataFrame(per_fold)[list(METRICS)]
        y, probability = table["y"].to_numpy(), table["probability"].to_numpy()
        rows += per_fold
        rows.append({"method": method, "fold": "mean", **values.mean().to_dict(), "n": len(table)})
        rows.append({"method": method, "fold": "sd", **values.std(ddof=1).to_dict(), "n": np.nan})
        rows.append({"method": method, "fold": "pooled", **fold_metrics(y, probability),
                     **uncertainty(y, probability, _donors(table, donor_of)),
                     "constant": _constant(probability)})
    frame = pd.DataFrame(rows, columns=METRICS_COLUMNS)
    frame["n"] = frame["n"].astype("Int64")
    frame["constant"] = frame["constant"].astype("boolean")  # one probability for all; empty on mean and sd
    return frame


def _constant(probability: np.ndarray) -> bool:
    """Whether several predictions are all one probability (a test that found nothing to score by)."""
    return bool(len(probability) > 1 and np.ptp(probability) == 0)


def _donors(table: pd.DataFrame, donor_of: dict[str, str] | None) -> np.ndarray | None:
    """Each row's donor, where donors are given (a subject without a group is a donor of its own)."""
    return None if donor_of is None else np.asarray(donor_names(table["subject_id"].tolist(), donor_of), dtype=object)


#: The method the others are compared with in comparisons.tsv.
MODEL_METHOD = "deeprc"


def comparisons_table(predictions: dict[str, pd.DataFrame], donor_of: dict[str, str] | None = None) -> pd.DataFrame:
    """The model's pooled held-out ROC AUC against each other method's on the subjects both scored: the difference
    (model less method), its paired standard error and a one-sided p (DeLong; with `donor_of`, Obuchowski's error,
    which counts donors; the folds' models differ, so the p is approximate). Empty without the model or another
    method."""
    from scipy.stats import norm

    from deeprc_hopfield.metrics import paired_auc_difference

    columns = ["method", "compared_with", "n", "roc_auc_difference", "se", "z", "p_one_sided"]
    model = predictions.get(MODEL_METHOD)
    if model is None and len(predictions) > 1:
        log.info("comparisons.tsv: no method is named %s (the model), so none is compared", MODEL_METHOD)
    rows = []
    for method, table in predictions.items():
        if model is None or method == MODEL_METHOD:
            continue
        both = model[["subject_id", "y", "probability"]].merge(table[["subject_id", "probability"]], on="subject_id",
                                                                suffixes=("_model", "_other"))
        if both["y"].nunique() < 2:
            continue
        donors = _donors(both, donor_of)
        difference, se = paired_auc_difference(both["y"].to_numpy(), both["probability_other"].to_numpy(),
                                               both["probability_model"].to_numpy(), donors)
        z = difference / se if se > 0 else np.nan
        rows.append({"method": MODEL_METHOD, "compared_with": method, "n": len(both), "roc_auc_difference": difference,
                     "se": se, "z": z, "p_one_sided": float(norm.sf(z)) if np.isfinite(z) else np.nan})
    return pd.DataFrame(rows, columns=columns)


def held_out_calls(predictions: dict[str, pd.DataFrame], positive: str) -> pd.DataFrame:
    """Every method's call on every held-out subject: its probability, the class it calls at
    :data:`THRESHOLD`, and whether that is the true one (the table that names the errors a metric counts)."""
    classes = pd.unique(pd.concat([t["true_label"] for t in predictions.values()]).astype(str))
    negative = next((c for c in classes if c != positive), f"not {positive}")
    calls = [table[["subject_id", "fold", "true_label", "probability"]].assign(method=method)
             for method, table in predictions.items()]
    out = pd.concat(calls, ignore_index=True)[["method", "subject_id", "fold", "true_label", "probability"]]
    out["predicted"] = np.where(out["probability"] >= THRESHOLD, positive, negative)
    out["correct"] = out["predicted"] == out["true_label"].astype(str)
    return out  # the probabilities as read: rounding could tie a confident call of each class


def by_donor(table: pd.DataFrame, donor_of: dict[str, str]) -> pd.DataFrame:
    """One row a donor (`subject_id` its name): the mean probability of its held-out repertoires, its class and fold
    (`split` keeps each one a donor; in a table made by hand, a donor of both classes counts once in each). A subject
    without a group is a donor of its own."""
    donor = donor_names(table["subject_id"].tolist(), donor_of)
    means = (table.assign(subject_id=donor).groupby(["subject_id", "y"], sort=False)
             .agg(fold=("fold", "first"), probability=("probability", "mean")).reset_index())
    return means.assign(subject_id=means["subject_id"] + np.where(means.duplicated("subject_id", keep=False),
                                                                  "/" + means["y"].astype(str), ""))


def donor_groups(split: Split | None) -> dict[str, str] | None:
    """Each subject's group where the split keeps several repertoires of a group together, else None (the tables
    by donor would repeat the others)."""
    group_of = split.group_of() if split is not None else None
    return None if group_of is None or len(set(group_of.values())) == len(group_of) else group_of


def _summary(metrics: pd.DataFrame, method: str, metric: str) -> str:
    rows = metrics[metrics["method"] == method].set_index("fold")[metric]
    return f"{rows['mean']:.3f} ± {rows['sd']:.3f}" if np.isfinite(rows["sd"]) else f"{rows['mean']:.3f}"


def pooled_auc_text(metrics: pd.DataFrame, method: str) -> str:
    """'0.912 (95% CI 0.850-0.951)': a method's pooled ROC AUC and its interval (a metrics table's `pooled` row)."""
    row = metrics[(metrics["method"] == method) & (metrics["fold"].astype(str) == "pooled")].iloc[0]
    return auc_text(row, f"{INTERVAL_LEVEL:.0%} CI ")


def auc_text(row: pd.Series | dict, label: str = "") -> str:
    """'0.912 (0.850-0.951)' from a metrics row (`roc_auc`, `roc_auc_low`, `roc_auc_high`), `label` before the
    interval; the AUC alone where the interval is not defined (a class of one, one probability for all)."""
    auc = f"{row['roc_auc']:.3f}"
    return auc if pd.isna(row["roc_auc_low"]) else f"{auc} ({label}{row['roc_auc_low']:.3f}-{row['roc_auc_high']:.3f})"


def calibration_text(row: pd.Series | dict) -> str:
    """'intercept / slope' of a metrics row's calibration line: 'separated' for a slope no finite fit gives (every
    positive scored above every negative), 'constant' where every probability is one, '-' where undefined."""
    intercept, slope = row["calibration_intercept"], row["calibration_slope"]
    constant = str(row.get("constant", "")).lower() == "true"
    slope_text = (f"{slope:.2f}" if pd.notna(slope) else "constant" if constant
                  else "separated" if pd.notna(intercept) else "-")
    return (f"{intercept:.2f}" if pd.notna(intercept) else "-") + f" / {slope_text}"


def _curve_label(method: str, kind: str, y: np.ndarray, probability: np.ndarray, metrics: pd.DataFrame) -> str:
    """A method's legend entry: the area under its pooled curve (the one drawn), then the per-fold mean ± sd
    (the metrics table's), which differ when the folds' probabilities are on different scales."""
    if kind == "roc":
        name, pooled, metric = "ROC AUC", roc_auc_score(y, probability), "roc_auc"
    else:
        name, pooled, metric = "PR AUC", average_precision_score(y, probability), "pr_auc"
    return f"{method} ({name} pooled {pooled:.3f}; per fold {_summary(metrics, method, metric)})"


def plot_curves(predictions: dict[str, pd.DataFrame], metrics: pd.DataFrame, kind: str, path: Path) -> None:
    """ROC (`kind='roc'`) or precision-recall (`'pr'`) curves, one per method pooled over held-out
    folds, the legend giving the area under the curve drawn (the pooled predictions') and, apart, the
    mean ± sd of the per-fold areas of the metrics table; written atomically as PNG."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    for method, table in predictions.items():
        y, p = table["y"].to_numpy(), table["probability"].to_numpy()
        if len(np.unique(y)) < 2:
            continue
        if kind == "roc":
            x_values, y_values, _ = roc_curve(y, p)
        else:
            y_values, x_values, _ = precision_recall_curve(y, p)
        label = _curve_label(method, kind, y, p, metrics)
        ax.plot(x_values, y_values, label=label, drawstyle="steps-post" if kind == "pr" else "default")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held-out folds pooled")
    else:
        prevalence = np.mean(np.concatenate([t["y"].to_numpy() for t in predictions.values()]))
        ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, held-out folds pooled")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")


#: The files of an evaluation folder.
EVALUATION_FILES = ("metrics.tsv", "comparisons.tsv", "held_out.tsv", "roc.png", "pr.png")
#: What `evaluate` adds where the split keeps several repertoires of a group (donor) together: the same tables by donor.
DONOR_FILES = ("metrics_by_donor.tsv", "comparisons_by_donor.tsv")


def is_evaluation_folder(folder: Path) -> bool:
    """Whether `folder` holds only what `evaluate` writes, with its metrics table: how an output folder
    written before output markers is known (see :func:`deeprc_hopfield.io.check_output`)."""
    names = {p.name for p in folder.iterdir()}
    return names <= {*EVALUATION_FILES, *DONOR_FILES} and first_line(folder / "metrics.tsv").startswith("method\tfold\t")


def evaluate(predictions: dict[str, list[Path]], split_path: str | Path | None, out: str | Path,
             positive: str | None = None, force: bool = False, label: str | None = None,
             label_name: str | None = None) -> pd.DataFrame:
    """Metrics of every method on the held-out folds; writes OUT/metrics.tsv (with the `label` scored, the
    `positive_class`, and `constant`: a fold whose probabilities are all one), OUT/comparisons.tsv (the model
    against each baseline: :func:`comparisons_table`), OUT/held_out.tsv (every call: :func:`held_out_calls`),
    OUT/roc.png, OUT/pr.png; where the split keeps several
    repertoires of a group (donor) together, the same two tables by donor (:data:`DONOR_FILES`: each donor's
    probability the mean of its repertoires', so that the tests count independent units).

    Parameters
    ----------
    predictions
        Method name -> its predictions files (columns subject_id, probability, true_label; optional fold).
    split_path
        The split table the predictions were made on; None for an external cohort that no model trained on
        (`predict` refuses training subjects), scored as one fold.
    out
        Output folder, written whole; an existing one is replaced only when it is an earlier evaluation
        and `force` (refused before any work: :func:`deeprc_hopfield.io.check_output`).
    positive
        The positive class name (default: the rule `ingest` uses to order two classes).
    force
        Replace an earlier evaluation at `out`.
    label
        In predictions of several labels (`<label>_probability`, `<label>_true`), the binary label to score
        (default: the only binary one).
    label_name
        The name of the label that single-label predictions (`probability`, `true_label`) are of, for metrics.tsv's
        `label` (they name none); refused beside files of several labels, where `label` chooses.

    Returns
    -------
    The metrics table as written.
    """
    out = Path(out)
    check_output(out, "evaluate", force, recognise=is_evaluation_folder)
    scored = _scored_label(label, [p for paths in predictions.values() for p in paths], label_name)
    split = Split.read(split_path) if split_path is not None else None
    tables = {name: read_predictions(paths, split, label) for name, paths in predictions.items()}
    pos = positive_class(pd.concat([t["true_label"] for t in tables.values()]).tolist(), positive,
                         called_positive(tables))
    for table in tables.values():
        table["y"] = (table["true_label"] == pos).astype(np.int64)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeepRCError(f"cannot create output folder: {exc.strerror}", out) from None
    donor_of = donor_groups(split)
    metrics = metrics_table(tables, donor_of).assign(label=scored, positive_class=pos)  # what the figures are of
    donors = None if donor_of is None else {name: by_donor(table, donor_of) for name, table in tables.items()}
    donor_metrics = None if donors is None else metrics_table(donors).assign(label=scored, positive_class=pos)
    with atomic_folder(out, "evaluate", force, recognise=is_evaluation_folder) as tmp:
        write_table(metrics.round(dict.fromkeys([*METRICS, *UNCERTAINTY], 6)), tmp / "metrics.tsv", sep="\t")
        write_table(comparisons_table(tables, donor_of).round(6), tmp / "comparisons.tsv", sep="\t")
        write_table(held_out_calls(tables, pos), tmp / "held_out.tsv", sep="\t")
        if donors is not None:  # the unit the split keeps apart: independent, unlike a donor's repertoires
            write_table(donor_metrics.round(dict.fromkeys([*METRICS, *UNCERTAINTY], 6)), tmp / DONOR_FILES[0],
                        sep="\t")
            write_table(comparisons_table(donors).round(6), tmp / DONOR_FILES[1], sep="\t")
        plot_curves(tables, metrics, "roc", tmp / "roc.png")
        plot_curves(tables, metrics, "pr", tmp / "pr.png")
    for name in tables:
        log.info("%s: ROC AUC %s over %d folds, pooled %s (positive class '%s')", name,
                 _summary(metrics, name, "roc_auc"), tables[name]["fold"].nunique(), pooled_auc_text(metrics, name), pos)
    if donors is not None:
        log.info("by donor (the mean probability of each donor's repertoires; %s): %s", DONOR_FILES[0],
                 "; ".join(f"{name} ROC AUC {_summary(donor_metrics, name, 'roc_auc')} over {len(t)} donors"
                           for name, t in donors.items()))
    return metrics
