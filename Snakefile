# The deeprc-hopfield workflow (ingest -> split -> train -> evaluate -> report) is not built yet:
# its rules arrive in workflow/rules/ with the workflow issue. Until then, say so instead of
# pretending to run.
from snakemake.exceptions import WorkflowError

raise WorkflowError(
    "the deeprc-hopfield workflow is not built yet; use the command line for now: "
    "`deeprc-hopfield ingest --metadata M --repertoires DIR --out cohort.h5` (see README.md)"
)
