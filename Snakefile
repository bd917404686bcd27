# deeprc-hopfield workflow: repertoire files -> store -> k-fold split -> one model per fold ->
# held-out predictions, attended sequences, interpretation and baselines -> metrics and curves -> HTML report.
# Edit a config (configs/config.yaml, or --configfile), never this file. See README.md.
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.workflow_config import check_config_yaml, workflow_config

min_version("9.0")


# The config, read and checked by the package (deeprc_hopfield/workflow_config.py; `deeprc-hopfield check-config FILE`
# checks a file alike): its files read again as the package reads YAML, the demo's before Snakemake reads it
# (Snakemake's own message for a broken one names no line), a user's --configfile for a key given twice, which YAML
# would otherwise settle silently by keeping the last; then the whole against the schema, typed, its defaults filled.
# Then common.smk checks the cohort (the metadata table, the paths) before any job. A problem stops the plan in its one
# line: as a WorkflowError, Snakemake would print it under the file and line that raised it, and two traceback lines.
# (A check made by an input function while Snakemake builds the jobs, as the predict target's of its folder, still
# prints in Snakemake's own frame, its line among them.)
try:
    check_config_yaml(workflow.config_settings.configfiles or ["configs/config.yaml"])
    if not workflow.config_settings.configfiles:  # the demo's config; a user's --configfile takes the schema's defaults
        configfile: "configs/config.yaml"
    config.update(workflow_config(config))
    include: "workflow/rules/common.smk"
except (DeepRCError, WorkflowError) as error:
    sys.exit(str(error))  # Snakemake's command line catches Exception, not SystemExit: Python prints the line, exit 1


report: "workflow/report/workflow.rst"  # `snakemake --report FILE.html` after a run


include: "workflow/rules/ingest.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/interpret.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


onsuccess:
    report_location()


onerror:
    report_job_errors()


rule all:
    """The cross-validated run: report, metrics, held-out predictions, attended sequences and
    interpretation per fold, and the cohort interpretation."""
    input:
        report_html(),
        evaluation("metrics.tsv"),
        expand(fold_predictions("{fold}"), fold=FOLDS),
        expand(fold_attended("{fold}"), fold=FOLDS),
        cohort_interpretation(),
    default_target: True


rule predict:
    """New patients (--config new_repertoires=DIR): ensemble predictions and attended sequences."""
    input:
        new_patients("predictions.csv"),
        new_patients("attended.tsv"),
