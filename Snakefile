# deeprc-hopfield workflow: repertoire files -> store -> k-fold split -> one model per fold ->
# held-out predictions, attended sequences, interpretation and baselines -> metrics and curves -> HTML report.
# Edit a config (configs/config.yaml, or --configfile), never this file. See README.md.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from deeprc_hopfield.errors import DeepRCError, did_you_mean
from deeprc_hopfield.io import empty_sections, read_yaml, typed_strings, whole_numbers

min_version("9.0")


# A config read again as the package reads YAML: the demo's before Snakemake does (Snakemake's own message for a
# broken one names no line), a user's --configfile (which Snakemake has read) for a key given twice, which YAML
# would otherwise settle silently by keeping the last.
for path in workflow.config_settings.configfiles or [p for p in ["configs/config.yaml"] if os.path.isfile(p)]:
    try:
        read_yaml(path)
    except DeepRCError as error:
        raise WorkflowError(f"config {error}") from None
if not workflow.config_settings.configfiles:  # the demo's config; a user's --configfile takes the schema's defaults
    configfile: "configs/config.yaml"


report: "workflow/report/workflow.rst"  # `snakemake --report FILE.html` after a run


if config.get("run", "demo") != "demo" and not {"metadata", "repertoires"} <= set(config):  # before defaults
    raise WorkflowError(f"config: run '{config['run']}' does not name both `metadata` and `repertoires`, so it would "
                        "read the demo cohort's (data/demo); set both to your cohort's table and folder")


SCHEMA = read_yaml(os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))
config.update(typed_strings(dict(config), SCHEMA))  # --config drop_unlabelled=true: 'true' is true, 'null' None
config.update(empty_sections(dict(config), SCHEMA))  # `training:` with nothing under it: the section's defaults
try:
    validate(config, "workflow/schemas/config.schema.yaml")
except WorkflowError as error:  # one line with the schema's message, not a dump of the schema
    problem = error.__context__  # the jsonschema ValidationError
    if not hasattr(problem, "json_path"):
        raise
    known = problem.schema.get("properties", {}) if problem.validator == "additionalProperties" else {}
    typos = did_you_mean([key for key in problem.instance if key not in known], known) if known else ""
    key = problem.path[-1] if problem.path else None
    empty = problem.validator == "type" and problem.instance is None and isinstance(key, str)  # `folds:`, no value
    message = (f"no value (`{key}:` with nothing after it): give it one, or leave the key out to take its default"
               if empty else problem.message)
    raise WorkflowError(
        f"config {problem.json_path}: {message}{typos} "
        "(keys, types and defaults: workflow/schemas/config.schema.yaml)"
    ) from None
config.update(whole_numbers(dict(config), SCHEMA))  # `folds: 3.0` is 3, as the schema lets it be


include: "workflow/rules/common.smk"
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
