# Paths and command-line options, built in one place from the validated config, and the check of
# the metadata table before any job. Results go to results/<run>/, logs to logs/<run>/, job timings
# to results/<run>/benchmarks/.
import glob
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from snakemake.common import NOTHING_TO_BE_DONE_MSG
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger as snakemake_logger
from snakemake.utils import validate

from deeprc_hopfield.errors import DeepRCError, did_you_mean, logged_error, near_path
from deeprc_hopfield.metadata import (MISSING_VALUES, class_names, guessed_order, missing_labels, read_table,
                                      resolve_file, two_class_order)
from deeprc_hopfield.split import related_pairs_apart, related_table, thin_training_part
from deeprc_hopfield.workflow_config import config_schema

SCHEMA = config_schema()  # the config's keys and defaults (the Snakefile has checked the config against it)
RUN = config["run"]
FOLDS = list(range(config["folds"]))
BASELINES = list(config["baselines"])


# --- the config's paths, one spelling each ------------------------------------------------------
def normalised_path(path):
    """`path` written one way whatever its spelling (`data/demo/repertoires/`, `./data/demo/repertoires`, its
    absolute path): relative to the working directory (the directory `snakemake` runs in, or its --directory)
    where it lies inside it, else absolute. Snakemake compares a job's inputs and params as text, so another
    spelling of one path would otherwise re-run every job from ingest on."""
    here = os.getcwd()
    absolute = os.path.normpath(os.path.join(here, path))
    return os.path.relpath(absolute, here) if os.path.commonpath([absolute, here]) == here else absolute


def same_path(first, second):
    """Whether two paths name one file or folder (compared as normalised absolute paths)."""
    return os.path.normpath(os.path.abspath(first)) == os.path.normpath(os.path.abspath(second))


GIVEN_PATHS = {key: config[key] for key in ("metadata", "repertoires", "new_repertoires", "new_metadata")}
for key in GIVEN_PATHS:
    if config[key]:
        config[key] = normalised_path(config[key])
if config["reference"]["file"]:  # the name of a shipped list (`vdjdb-cmv-trb`) is left as it is
    config["reference"]["file"] = normalised_path(config["reference"]["file"])


# The rules' conda environment (../envs/deeprc-hopfield.yaml, --software-deployment-method conda)
# installs the package from the checkout that its pip line names through this variable: this one,
# unless the variable is already set.
os.environ.setdefault("DEEPRC_HOPFIELD_SOURCE", workflow.basedir)


def not_found(key, folder=False):
    """`KEY PATH: file not found` for a path the config names (`key`; as written) that is not there, with a near path
    that is (`lab/export` for `lab/exports`, or the path from the config file's folder) and, for a relative path, the
    folder it is taken from (`~` is not expanded)."""
    given, files = str(GIVEN_PATHS[key]), workflow.config_settings.configfiles
    near = near_path(given, folder, [os.path.dirname(path) for path in files])
    hint = f" (did you mean '{os.path.normpath(near)}'?)" if near else ""
    if given.startswith("~"):
        relative = "; `~` is not expanded: write the whole path"
    elif not os.path.isabs(given):
        relative = (f"; a relative path is taken from the folder snakemake runs in, {os.getcwd()}"
                    + (", not from the config file's folder" if files else ""))
    else:
        relative = ""
    return f"{key} {given}: {'folder' if folder else 'file'} not found{hint} (the config's `{key}`{relative})"


# --- the metadata table, checked when the workflow is planned --------------------------------
def metadata_error(message, line=None, column=None):
    """One line naming the metadata table (and the line and column) and what is wrong."""
    where = [f"metadata {config['metadata']}"]
    where += [f"line {line}"] if line is not None else []
    where += [f"column '{column}'"] if column is not None else []
    return WorkflowError(f"{', '.join(where)}: {message}")


def read_metadata_table(path):
    """The metadata table as text, cells stripped, read as `ingest` reads it (the delimiter from the header, a column
    named twice refused), with the label's values spelled as `ingest` names its classes (`0.0` is '0')."""
    if not os.path.isfile(path):
        raise WorkflowError(not_found("metadata"))
    try:
        used = ["subject_id", "filename", config["label_column"], config["group_column"]]
        table, separator = read_table(Path(path), used=[name for name in used if name is not None])
    except DeepRCError as error:  # empty, not UTF-8 (line and character named), a corrupt gzip, a column named twice
        raise metadata_error(error.message, error.line, error.column) from None
    except (pd.errors.EmptyDataError, OSError) as error:
        raise metadata_error(f"cannot parse the table: {str(error).strip()}") from None
    table.columns = table.columns.str.strip()
    table = table.apply(lambda column: column.str.strip())
    label = config["label_column"]
    if label in table.columns:  # else check_metadata names the missing column
        table[label] = label_classes(table[label], separator)
    return table


def label_classes(values, separator):
    """The label's values as `ingest` names its classes: one spelling per number (`0`, `0.0` and, in a
    ';'-separated table, `0,0` are '0'), missing values kept; classes that differ only in case are refused."""
    try:
        names = class_names(values, config["label_column"], decimal_comma=separator == ";")
    except DeepRCError as error:
        raise metadata_error(error.message, error.line, error.column) from None
    return names.fillna(values)


def check_metadata(table):
    """Stop before any job when the table lacks a column of ../schemas/metadata.schema.yaml, the
    label column or the group column, has an empty subject id or file name, names a subject or a
    file twice, or has a label without two distinct values (counted as `ingest` counts them: `0` and
    `0.0` are one). (`ingest` checks the rest: the files, the label values.)"""
    columns = ", ".join(table.columns)
    line_of = lambda row: int(table.index[row]) + 2  # the row's line in the file (the header is line 1)
    if table.empty:
        raise metadata_error("the table has no rows")
    try:
        validate(table, "../schemas/metadata.schema.yaml", set_default=False)
    except WorkflowError as error:
        problem = error.__context__  # the jsonschema ValidationError of the first bad row
        if problem is None:
            raise
        if problem.validator == "required":
            missing = [c for c in problem.validator_value if c not in table.columns]
            raise metadata_error(f"required column '{missing[0]}' is missing (columns: {columns})"
                                 f"{did_you_mean(missing[0], table.columns)}") from None
        column = problem.path[0] if problem.path else None  # a bad value: the first row that has it
        line = line_of((table[column] == problem.instance).to_numpy().argmax()) if column else None
        raise metadata_error(problem.message, line, column) from None
    label = config["label_column"]
    if label not in table.columns:
        raise metadata_error(f"label column '{label}' is missing (columns: {columns})"
                             f"{did_you_mean(label, table.columns)}")
    known = table[label][~missing_labels(table[label])]
    values = sorted(set(known))
    if len(values) != 2:
        shown = ", ".join(repr(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
        counts = known.value_counts()
        rarest = sorted(counts.index[counts == counts.min()])[0] if len(values) > 2 else None  # a stray spelling
        where = (f"; the rarest, '{rarest}', is on line {line_of(int((table[label] == rarest).to_numpy().argmax()))}"
                 if rarest is not None else "")
        raise metadata_error(f"{len(values)} distinct label value(s) ({shown or 'none'}): the workflow's "
                             f"baselines, evaluation and interpretation need a binary label{where}", column=label)
    check_positive_class(values)
    group = config["group_column"]
    if group is not None and group not in table.columns:
        raise metadata_error(f"group column '{group}' is missing (columns: {columns})"
                             f"{did_you_mean(group, table.columns)}")
    for column in ("subject_id", "filename"):
        repeated = table[column].duplicated().to_numpy().nonzero()[0]
        if len(repeated):
            value = table[column].iloc[repeated[0]]
            first = (table[column] == value).to_numpy().argmax()
            raise metadata_error(f"duplicate {column} '{value}' (also on line {line_of(first)})",
                                 line_of(repeated[0]), column)


def check_positive_class(classes):
    """The config's `positive_class` must be one of the label's two classes (spelled as `ingest` names them); without
    it, a note says which is positive where the names do not (the alphabet or the numbers decided)."""
    positive = POSITIVE_CLASS
    if positive is not None and positive not in classes:
        raise WorkflowError(f"config positive_class: '{config['positive_class']}' is not a class of the label "
                            f"'{config['label_column']}' ({', '.join(classes)})")
    guessed = guessed_order(classes) if positive is None else None
    if guessed:
        print(f"note: metadata {config['metadata']}, label '{config['label_column']}': {guessed}", file=sys.stderr)


def positive_class_spelled():
    """The config's `positive_class` as `ingest` names classes (`1.0` is '1'), or None."""
    value = config["positive_class"]
    if value is None:
        return None
    return str(class_names(pd.Series([str(value).strip()]), "positive_class", decimal_comma=False).iloc[0])


def check_folds(table):
    """Each class of the label needs at least `folds` subjects (with `group_column`: groups) for a stratified
    split; checked before ingest, naming the config key (the split job applies the same rule to the store)."""
    folds, label, group = config["folds"], config["label_column"], config["group_column"]
    if group is not None:  # as `split` refuses it, but before ingest
        missing = table[group].str.lower().isin(MISSING_VALUES).to_numpy().nonzero()[0]
        if len(missing):
            raise metadata_error(f"no group for subject '{table['subject_id'].iloc[missing[0]]}'",
                                 int(table.index[missing[0]]) + 2, group)
    labelled = table[~missing_labels(table[label])]
    if group is not None:
        classes = labelled.groupby(group, sort=True)[label].nunique()
        if (classes > 1).any():
            mixed = classes.index[classes > 1][0]
            rows = labelled[labelled[group] == mixed]
            who = ", ".join(f"{s} ({c})" for s, c in zip(rows["subject_id"][:4], rows[label][:4]))
            who += ", ..." if len(rows) > 4 else ""
            raise metadata_error(f"group '{mixed}' mixes the classes of the label: subjects {who}; a group's "
                                 "repertoires go to one fold, so they must share a class", column=group)
    units = labelled[group] if group is not None else labelled["subject_id"]
    what = f"group(s) of '{group}'" if group is not None else "subject(s)"
    for value, n in units.groupby(labelled[label]).nunique().items():
        if n < 2:
            raise metadata_error(f"class '{value}' has {n} {what}: cross-validation needs at least 2 of each "
                                 "class", column=label)
        if n < folds:
            raise metadata_error(f"class '{value}' has {n} {what}, fewer than the config's `folds` ({folds}); "
                                 "set `folds` lower", column=label)
        # groups: the even deal is the best case (each fold holds a group of each class: split refuses it otherwise), so
        # a thin best case is a thin fold for sure; uneven group sizes can thin a fold further (split's warning)
        thin = thin_training_part(n, folds) if BASELINES else None
        if thin:
            raise metadata_error(f"class '{value}' has {n} {what}: {thin} (the config's `folds`; or `baselines: []`)",
                                 column=label)


def labelled_rows(table):
    """The rows with a label value: with `drop_unlabelled` the others are left out (their files need not exist), with
    a note naming them; without it a missing value stops the plan (as `ingest` would after the plan)."""
    label = config["label_column"]
    missing = missing_labels(table[label])
    if not missing.any():
        return table
    rows = table[missing]
    if not config["drop_unlabelled"]:
        said = f" ('{rows[label].iloc[0]}' is read as missing)" if rows[label].iloc[0] else ""
        raise metadata_error(f"missing label value{said}; {len(rows)} row(s) have none: give each a value, or set "
                             "`drop_unlabelled: true` in the config to leave them out (and classify them with "
                             "`deeprc-hopfield predict` after training)", int(rows.index[0]) + 2, label)
    shown = ", ".join(f"{s} (line {int(i) + 2})" for s, i in zip(rows["subject_id"][:5], rows.index[:5]))
    print(f"note: metadata {config['metadata']}: {len(rows)} of {len(table)} subjects have no value for '{label}' "
          f"and are left out (drop_unlabelled): {shown}{', ...' if len(rows) > 5 else ''}", file=sys.stderr)
    return table[~missing]


def repertoire_files(table):
    """The repertoire file of each row (`filename` in the config's `repertoires` folder, as `ingest` finds it), the
    ingest job's inputs: a file changed in place (a newer modification time) makes the store again. A missing one
    stops the plan."""
    folder = config["repertoires"]
    if not os.path.isdir(folder):
        raise WorkflowError(not_found("repertoires", folder=True))
    files = []
    for row, name in enumerate(table["filename"]):
        found = resolve_file(Path(folder), name)
        if found is None:
            present = [entry.name for entry in os.scandir(folder) if entry.is_file()]
            raise metadata_error(f"repertoire file '{name}' not found in {folder}{did_you_mean(name, present)}",
                                 int(table.index[row]) + 2, "filename")
        files.append(str(found))
    return files


def ingest_repertoires():
    """The ingest job's repertoire inputs: the files the table names, or their folder where a name holds a brace,
    which Snakemake would take for a wildcard (then only a change to the folder itself re-runs ingest)."""
    if any("{" in path or "}" in path for path in REPERTOIRE_FILES):
        return [config["repertoires"]]
    return REPERTOIRE_FILES


def check_result_folders():
    """A file where the run's results or logs folder (or a folder above it) should be stops the plan in one line."""
    for top in ("results", "logs"):
        for path in (top, os.path.join(top, RUN)):
            if os.path.exists(path) and not os.path.isdir(path):
                raise WorkflowError(f"'{path}' is a file where the run's folder {os.path.join(top, RUN)} should be: "
                                    "rename it or choose another `run`")


def check_run_name():
    """The demo's run name (the schema's default `run`) is for the bundled demo cohort: another cohort under it would
    be ingested over results/demo/. A config naming its own `metadata` or `repertoires` must name its `run` too."""
    default = SCHEMA["properties"]["run"]["default"]
    if RUN != default:
        return
    bundled = {key: os.path.join(workflow.basedir, SCHEMA["properties"][key]["default"])
               for key in ("metadata", "repertoires")}
    own = [f"{key} {config[key]}" for key, path in bundled.items() if not same_path(config[key], path)]
    if own:
        raise WorkflowError(f"config: {' and '.join(own)} {'is' if len(own) == 1 else 'are'} not the demo's, but the "
                            f"run is '{default}', the demo's: add `run: NAME` to the config (or --config run=NAME), "
                            f"so that results/{default}/ is not overwritten")


def check_run_cohort():
    """A run's folder holds one cohort: where results/<run>/config.yaml (the `run_config` job's copy of the config)
    records another metadata table or repertoires folder than the config's, stop rather than ingest this cohort over
    that run's results (the paths compared as normalised absolute paths: another spelling of one path is the same)."""
    folder = os.path.join("results", RUN)
    recorded_file = os.path.join(folder, "config.yaml")  # run_config(), defined below with the other paths
    if not os.path.isfile(recorded_file):
        return
    try:
        with open(recorded_file, encoding="utf-8") as handle:
            recorded = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # not the job's file: the job will write it again
        return
    for key in ("metadata", "repertoires"):
        before = recorded.get(key) if isinstance(recorded, dict) else None
        if isinstance(before, str) and not same_path(before, config[key]):
            raise WorkflowError(f"{folder} holds run '{RUN}' made from {key} {before}, not the config's {config[key]} "
                                f"({recorded_file}): give this cohort another `run` name, or remove {folder} (and "
                                f"{os.path.join('logs', RUN)}) to make run '{RUN}' again from it")


def check_paths_without_braces():
    """A path the config names must hold no brace: Snakemake reads `{...}` in a job's input as a wildcard (an
    error naming no setting). Braces in the names of the files in a folder are fine (the folder is the input)."""
    paths = {key: config[key] for key in ("metadata", "repertoires", "new_repertoires", "new_metadata")}
    paths["reference: file:"] = config["reference"]["file"]
    for key, path in paths.items():
        if path and ("{" in str(path) or "}" in str(path)):
            raise WorkflowError(f"{key} {path}: Snakemake reads braces in a path as a wildcard, so it cannot be a "
                                "job's input: rename it, or link it under a name without braces (ln -s)")


check_run_name()
check_result_folders()
check_run_cohort()
check_paths_without_braces()
POSITIVE_CLASS = positive_class_spelled()
TABLE = read_metadata_table(config["metadata"])
check_metadata(TABLE)
METADATA = labelled_rows(TABLE)
UNLABELLED = len(TABLE) - len(METADATA)  # the subjects that drop_unlabelled leaves out
CLASSES = two_class_order(sorted(set(METADATA[config["label_column"]])))  # negative, positive: ingest's own order
check_folds(METADATA)
REPERTOIRE_FILES = repertoire_files(METADATA)
STARTED = time.time()


def report_job_errors():
    """After a failed run: the error each job that failed this run wrote to its log (the package's message with the
    indented lines under it, e.g. each file ingest refused; or a traceback's last line), so that it shows beside
    Snakemake's own summary."""
    for path in sorted(glob.glob(os.path.join("logs", RUN, "**", "*.log"), recursive=True)):
        if os.path.getmtime(path) >= STARTED:
            for line in logged_error(path):
                print(line, file=sys.stderr)


def report_location():
    """After a successful run: where the run's report is, in one line (when the run has one), a note of the
    repertoires `split` took for samples of one donor that no group keeps together (its log says which), and, for a
    run given new patients (`new_repertoires`), where their predictions are, last."""
    if os.path.isfile(report_html()):
        print(f"report: {os.path.abspath(report_html())} (metrics: {evaluation('metrics.tsv')})", file=sys.stderr)
    pairs, apart = related_pairs_apart(split_table()) if os.path.isfile(split_table()) else (0, 0)
    if apart:
        print(f"note: split found {pairs} pair(s) of repertoires that look like samples of one donor but are kept "
              f"together by no group, {apart} of them in different folds ({related_table(split_table())}; "
              f"{log_path('split.log')}): the "
              "held-out metrics may be optimistic; set group_column to a metadata column naming each repertoire's "
              "donor", file=sys.stderr)
    if config.get("new_repertoires") and os.path.isfile(new_patients("predictions.csv")):
        print(new_patients_line(new_patients("predictions.csv")), file=sys.stderr)


def new_patients_line(path):
    """Where the new patients' predictions are, and how many rows carry a warning (which the log details)."""
    warnings = pd.read_csv(path, dtype=str, usecols=lambda c: c in {"subject_id", "warnings"})
    flagged = int(warnings["warnings"].fillna("").ne("").sum()) if "warnings" in warnings else 0
    note = (f"; {flagged} of {len(warnings)} with a warning: see its `warnings` column and "
            f"{log_path('new_patients/predict.log')}" if flagged else "")
    return f"new patients' predictions: {os.path.abspath(path)} ({len(warnings)} repertoires{note})"


class NothingToDoReport(logging.Handler):
    """Where the report is after a run that had nothing to do: Snakemake then only logs so, and calls no `onsuccess`
    (a dry run aside). Each of Snakemake's log records is compared with that one message, nothing more."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == NOTHING_TO_BE_DONE_MSG and not workflow.dryrun and not NO_HOOKS:
            report_location()


#: `snakemake --no-hooks`: no onsuccess, and so no line after a run with nothing to do either.
NO_HOOKS = bool(getattr(getattr(workflow, "execution_settings", None), "no_hooks", False))
snakemake_logger.addHandler(NothingToDoReport())


def write_yaml(path, settings, log, what):
    """A settings file of the run (`run_config`, `train_config`), and a line in its job's log saying what it is."""
    with open(path, "w") as out:
        yaml.safe_dump(settings, out, sort_keys=False)
    with open(log, "w") as note:
        note.write(f"wrote {path}: {what}\n")


def result(*parts):
    """A path under results/<run>/."""
    return os.path.join("results", RUN, *parts)


def log_path(name):
    """A log file under logs/<run>/."""
    return os.path.join("logs", RUN, name)


def benchmark_path(name):
    """A job-timing table (Snakemake benchmark) under results/<run>/benchmarks/."""
    return result("benchmarks", name)


# --- the files of a run --------------------------------------------------------------------
def store():
    return result("cohort.h5")


def qc_table():
    return result("cohort.qc.tsv")


def split_table():
    return result("split.csv")


def run_config():
    return result("config.yaml")


def train_config():
    return result("train.yaml")


def shared_clones(job=None):
    """The clones file of every fold (`deeprc-hopfield clones`): made once where the clone memory (`job`
    "train") or the public-clone baseline ("baselines") needs it (None: either), so that no training fold
    reads the cohort again to collect its clones."""
    memory = config["training"].get("clone_memory", True)
    wanted = {"train": memory, "baselines": "public_clones" in BASELINES}
    return [result("clones.h5")] if (wanted[job] if job else any(wanted.values())) else []


def clones_option(wildcards, input):
    """`--clones FILE` for train and baselines when the run makes the clones file."""
    return f"--clones {input.clones}" if input.clones else ""


def models_dir():
    """The folder of fold models (predict --model on it is the fold ensemble)."""
    return result("models")


def model_dir(fold="{fold}"):
    return os.path.join(models_dir(), f"fold{fold}")


def note_stale_folds():
    """Fold models and outputs of an earlier run of this `run` with more folds: this run leaves them be (its jobs name
    its own folds), but a folder-wide `predict --model results/RUN/models` would average them in."""
    folds = {path: os.path.basename(path)[len("fold"):] for path in glob.glob(os.path.join(models_dir(), "fold*"))}
    stale = sorted(path for path, k in folds.items() if k.isdigit() and int(k) >= config["folds"])
    if stale:
        print(f"note: {', '.join(stale)}: fold model(s) of an earlier run with more folds than this one's "
              f"{config['folds']}; this run's jobs leave them out, but `deeprc-hopfield predict --model "
              f"{models_dir()}` would average them in (it warns): remove them", file=sys.stderr)


note_stale_folds()


def fold_predictions(fold="{fold}"):
    """Held-out predictions of one fold's model (subject_id, probability, predicted, true_label)."""
    return result("predictions", f"fold{fold}.csv")


def fold_attention(fold="{fold}"):
    """Every held-out sequence's attention under one fold's model (HDF5, 4 bytes a sequence)."""
    return result("attention", f"fold{fold}.h5")


def fold_attended(fold="{fold}"):
    """Top-K attended sequences of the held-out repertoires of one fold."""
    return result("attended", f"fold{fold}.tsv")


def fold_interpretation(fold="{fold}"):
    """Interpretation of one fold's model on its held-out repertoires (a folder)."""
    return result("interpretation", f"fold{fold}")


def cohort_interpretation():
    """The cohort summary of the folds' interpretations (a folder)."""
    return result("interpretation", "cohort")


def baseline_predictions(fold="{fold}"):
    """Each baseline's held-out predictions of one fold (one job a fold: the folds' fits run side by side)."""
    return {m: result("baselines", f"fold{fold}", f"{m}_predictions.csv") for m in BASELINES}


def all_baseline_predictions():
    """Every fold's file of each baseline, method by method."""
    return [baseline_predictions(fold)[m] for m in BASELINES for fold in FOLDS]


def evaluation(name=""):
    return result("evaluation", name) if name else result("evaluation")


def report_html():
    return result("report.html")


def new_patients(name):
    return result("new_patients", name)


# --- options passed to the package ---------------------------------------------------------
def evaluate_options():
    """evaluate's options: the label scored, named for metrics.tsv (the predictions files are single-label and
    name none), and the positive class where the config's changes it (positive_class_option)."""
    options = [f"--label-name {shlex.quote(config['label_column'])}"]
    if positive_class_option():
        options.append(positive_class_option())
    return " ".join(options)


def positive_class_option():
    """`--positive-class C` for ingest and evaluate where the config's `positive_class` is not the class they would
    take as positive anyway (CLASSES, by the same rule), else '': stating that class re-runs no job."""
    if POSITIVE_CLASS is None or POSITIVE_CLASS == CLASSES[1]:
        return ""
    return f"--positive-class {shlex.quote(POSITIVE_CLASS)}"


def chain_option():
    """`--chain LOCUS` where the config's qc.chain names one, else '': ingest keeps that locus of the cohort's files,
    and the predict target of the new patients' files, so that new patients are read as the training cohort was
    (predict would take the same chain from the models' config.json; the option says it in the job's command)."""
    chain = config["qc"]["chain"]
    return f"--chain {chain}" if chain else ""


def new_format_option():
    """`--format F` for the new patients' files: `new_format`, else the cohort's `format`; '' where that is auto
    (predict's default)."""
    fmt = config.get("new_format") or config["format"]
    return f"--format {fmt}" if fmt != "auto" else ""


def ingest_options():
    qc = config["qc"]
    options = [f"--label-column {shlex.quote(config['label_column'])}", f"--format {config['format']}",
               f"--min-length {qc['min_length']}", f"--max-length {qc['max_length']}"]
    # each only where it changes the store, so that an earlier run's ingest command (and store) stays current
    if config["drop_unlabelled"] and UNLABELLED:
        options.append("--drop-unlabelled")
    if positive_class_option():
        options.append(positive_class_option())
    if chain_option():
        options.append(chain_option())
    if config["species"] != "human":  # ingest's default: an earlier run's ingest command (and store) stays current
        options.append(f"--species {config['species']}")
    return " ".join(options)


def reference_input(wildcards):
    """The table of known receptors, when the config names one (a change to it retrains); the name of a
    list shipped with the package (`vdjdb-cmv-trb`) stands for its file."""
    from deeprc_hopfield.data import list_file

    return [str(list_file(config["reference"]["file"]))] if config["reference"]["file"] else []


def check_reference_file():
    """A reference the config names must be there, and not of another species than the cohort's, when the workflow
    is planned (one line, not Snakemake's missing-input report after the plan, nor train's refusal after ingest)."""
    from deeprc_hopfield.data import SHIPPED_LISTS, list_file
    from deeprc_hopfield.reference import ReferenceOptions

    reference = config["reference"]
    named = reference["file"]
    if named and not list_file(named).is_file():
        raise WorkflowError(f"reference {named}: file not found (the config's `reference: file:`; or the name of a "
                            f"shipped list: {', '.join(SHIPPED_LISTS)})")
    if named:
        try:
            ReferenceOptions(named, species=reference["species"]).check_species(config["species"])
        except DeepRCError as error:
            raise WorkflowError(f"config species {config['species']}: reference {error}") from None


check_reference_file()


def reference_options():
    """`--reference FILE` and its filters, when the config names a table of known receptors."""
    reference = config["reference"]
    if not reference["file"]:
        return ""
    flags = {"file": "--reference", "chain": "--reference-chain", "species": "--reference-species",
             "antigen": "--reference-antigen"}
    return " ".join(f"{flag} {shlex.quote(str(reference[key]))}" for key, flag in flags.items() if reference[key])


def split_options():
    """`--group-column C` when the config names a group column (its groups are kept in one fold)."""
    return f"--group-column {shlex.quote(config['group_column'])}" if config["group_column"] else ""


def evaluate_predictions(wildcards, input):
    """NAME=FILE pairs for evaluate: the model's held-out predictions (one file per fold), then
    each baseline."""
    pairs = [f"deeprc={path}" for path in input.model]
    pairs += [f"{m}={input.baselines[i * len(FOLDS) + k]}" for i, m in enumerate(BASELINES) for k in range(len(FOLDS))]
    return " ".join(pairs)


def gpus():
    """GPUs a train/predict job asks for: one when the config says device: cuda."""
    return 1 if config["device"] == "cuda" else 0


#: Settings of the new patients a run is given (the `predict` target), not of the run: its config copy leaves them out,
#: so that giving a batch re-makes nothing, and the copy, given to a later `predict`, brings no earlier batch's table.
NEW_PATIENT_SETTINGS = ("new_repertoires", "new_metadata", "new_format")


def run_settings():
    """The effective config of this run (defaults filled in), without the new patients' settings."""
    return {k: v for k, v in config.items() if k not in NEW_PATIENT_SETTINGS}


def predict_command():
    """The command that plans this run's predict target for a folder DIR: this run's --configfile (none for the demo's
    config) and its other --config settings, as given: without them snakemake would plan another run (the demo's)."""
    files = " ".join(shlex.quote(normalised_path(str(path))) for path in workflow.config_settings.configfiles)
    settings = [shlex.quote(str(word)) for word in workflow.config_settings.config_args or []
                if not str(word).startswith("new_repertoires=")]
    return " ".join(["snakemake predict", *([f"--configfile {files}"] if files else []),
                     "--config", *settings, "new_repertoires=DIR"])


def new_repertoires_folder():
    """The folder of new patients' repertoire files (the `predict` target needs it, and it must exist)."""
    folder = config["new_repertoires"]
    if not folder:
        raise WorkflowError(f"the predict target classifies new patients: name their folder with `{predict_command()}`")
    if not os.path.isdir(folder):
        raise WorkflowError(not_found("new_repertoires", folder=True))
    return folder


def new_metadata_option():
    """`--metadata TABLE` for the new patients when the config names their table (`new_metadata`), and `--group-column
    C` where the run's `group_column` is a column of it too: a new sample of a training donor is then scored by the
    fold models that held the donor out, as its training samples are."""
    table = config["new_metadata"]
    if not table:
        return ""
    column = config["group_column"]
    try:  # a table predict cannot read is its to refuse, naming it
        grouped = bool(column) and column in read_table(Path(table), used=["subject_id", "filename"])[0].columns.str.strip()
    except (DeepRCError, pd.errors.EmptyDataError, OSError):
        grouped = False
    return f"--metadata {shlex.quote(table)}" + (f" --group-column {shlex.quote(column)}" if grouped else "")


if config["new_metadata"] and not os.path.isfile(config["new_metadata"]):  # one line at plan time
    raise WorkflowError(not_found("new_metadata"))


def new_repertoires(wildcards):
    """The predict job's inputs: every file of the new patients' folder, so that a file added, removed or changed
    in place scores the patients again (the folder itself where a name holds a brace, a wildcard to Snakemake)."""
    folder = new_repertoires_folder()
    files = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if not name.startswith(".") and os.path.isfile(os.path.join(folder, name)))
    table = [config["new_metadata"]] if config["new_metadata"] else []
    return ([folder] if any("{" in path or "}" in path for path in files) else files) + table


# --- settings as job parameters ---------------------------------------------------------------
def sorted_settings(settings):
    """`settings` with the keys of every mapping in it sorted: Snakemake compares a job's params by their repr,
    so a config that only lists the same keys in another order would otherwise re-run the job."""
    if isinstance(settings, dict):
        return {key: sorted_settings(settings[key]) for key in sorted(settings, key=str)}
    if isinstance(settings, list):
        return [sorted_settings(value) for value in settings]
    return settings


#: The `training:` settings `deeprc-hopfield clones --config` reads (`shared_clones.collect_clones`; the seed comes
#: from --seed). Kept here rather than imported: that module imports torch, seconds on every plan.
CLONES_TRAINING_KEYS = ("clone_keys", "clone_memory", "clone_radius", "validation_fraction")


#: The `training:` settings of how a run goes, not of what it learns (`training.config.EXECUTION_SETTINGS`): they
#: reach `train` on its command line (`train_execution_options`), not in the training config, so that a change of them alone re-runs no train
#: job (the next one that runs uses them, and an interrupted one continues from its checkpoint).
TRAINING_EXECUTION_KEYS = ("checkpoint_every", "embed_chunk")


def learning_settings():
    """The `training:` settings the weights depend on (the training config's): all but TRAINING_EXECUTION_KEYS."""
    return sorted_settings({key: value for key, value in config["training"].items()
                            if key not in TRAINING_EXECUTION_KEYS})


def train_execution_options(wildcards, resources):
    """`--checkpoint-every N --embed-chunk N` for the train jobs. A params function of the job's resources: Snakemake
    leaves such params out of its params rerun trigger (as it does a function of input, output or threads)."""
    return " ".join(f"--{key.replace('_', '-')} {int(config['training'][key])}" for key in TRAINING_EXECUTION_KEYS)


def device_option(wildcards, resources) -> str:
    """The config's `device` for the train, predict and interpret jobs, as a params function of the job's resources (out
    of Snakemake's params rerun trigger, as `train_execution_options`): where a job runs changes its results by
    floating-point differences only, so `device: cpu` -> `auto` re-runs nothing (`-R train` trains again)."""
    return config["device"]


def clones_config():
    """The clones job's --config: a YAML file of only the training settings it reads."""
    return result("clones.yaml")


def clones_settings():
    """The clones-only config: another training setting (patience, checkpoint_every, n_updates) then leaves
    the clones file, and so the baselines, as they are."""
    training = config["training"]
    return {"training": sorted_settings({key: training[key] for key in CLONES_TRAINING_KEYS if key in training})}
