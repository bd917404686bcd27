# The deeprc-hopfield workflow (ingest -> split -> train -> evaluate -> report) is not built yet:
# its rules arrive in workflow/rules/ with the workflow issue. Until then, use the command line:
#   deeprc-hopfield ingest --metadata M --repertoires DIR --out cohort.h5
rule all:
    run:
        raise WorkflowError(
            "the deeprc-hopfield workflow is not built yet; use `deeprc-hopfield ingest` (see README.md)"
        )
