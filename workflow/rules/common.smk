# Paths and command-line options, built in one place from the validated config.
# Results go to results/<run>/, logs to logs/<run>/, job timings to results/<run>/benchmarks/.
import os

RUN = config["run"]
FOLDS = list(range(config["folds"]))
BASELINES = list(config["baselines"])


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


def models_dir():
    """The folder of fold models (predict --model on it is the fold ensemble)."""
    return result("models")


def model_dir(fold="{fold}"):
    return os.path.join(models_dir(), f"fold{fold}")


def fold_predictions(fold="{fold}"):
    """Held-out predictions of one fold's model (subject_id, probability, predicted, true_label)."""
    return result("predictions", f"fold{fold}.csv")


def fold_attended(fold="{fold}"):
    """Top-K attended sequences of the held-out repertoires of one fold."""
    return result("attended", f"fold{fold}.tsv")


def fold_interpretation(fold="{fold}"):
    """Interpretation of one fold's model on its held-out repertoires (a folder)."""
    return result("interpretation", f"fold{fold}")


def cohort_interpretation():
    """The cohort summary of the folds' interpretations (a folder)."""
    return result("interpretation", "cohort")


def baseline_predictions():
    return {m: result("baselines", f"{m}_predictions.csv") for m in BASELINES}


def evaluation(name=""):
    return result("evaluation", name) if name else result("evaluation")


def report_html():
    return result("report.html")


def new_patients(name):
    return result("new_patients", name)


# --- options passed to the package ---------------------------------------------------------
def ingest_options():
    qc = config["qc"]
    options = [f"--label-column {config['label_column']}", f"--format {config['format']}",
               f"--min-length {qc['min_length']}", f"--max-length {qc['max_length']}"]
    if qc["chain"]:
        options.append(f"--chain {qc['chain']}")
    return " ".join(options)


def evaluate_predictions(wildcards, input):
    """NAME=FILE pairs for evaluate: the model's held-out predictions (one file per fold), then
    each baseline."""
    pairs = [f"deeprc={path}" for path in input.model]
    pairs += [f"{m}={input.baselines[i]}" for i, m in enumerate(BASELINES)]
    return " ".join(pairs)


def gpus():
    """GPUs a train/predict job asks for: one when the config says device: cuda."""
    return 1 if config["device"] == "cuda" else 0


def run_settings():
    """The effective config of this run (defaults filled in), without the new-patient folder."""
    return {k: v for k, v in config.items() if k != "new_repertoires"}


def new_repertoires(wildcards):
    """The folder of new patients' repertoire files (the `predict` target needs it)."""
    folder = config["new_repertoires"]
    if not folder:
        raise WorkflowError(
            "the predict target classifies new patients: name their folder with "
            "`snakemake predict --config new_repertoires=DIR`"
        )
    return folder
