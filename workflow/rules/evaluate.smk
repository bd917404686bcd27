rule evaluate:
    """ROC AUC (with its interval), PR AUC, balanced accuracy, F1 and calibration per fold, mean +- sd and pooled;
    every held-out call; ROC and PR curves.
    The outputs are files in a folder that Snakemake keeps between runs: --force lets a rerun replace
    the earlier evaluation folder (and refuses any other folder, as without it)."""
    input:
        model=expand(fold_predictions("{fold}"), fold=FOLDS),
        baselines=all_baseline_predictions(),
        split=split_table(),
    output:
        metrics=report(evaluation("metrics.tsv"), caption="../report/metrics.rst", category="Evaluation"),
        roc=report(evaluation("roc.png"), caption="../report/roc.rst", category="Evaluation"),
        pr=report(evaluation("pr.png"), caption="../report/pr.rst", category="Evaluation"),
        calls=evaluation("held_out.tsv"),
    log:
        log_path("evaluate.log"),
    benchmark:
        benchmark_path("evaluate.tsv")
    params:
        out=lambda wildcards, output: os.path.dirname(output.metrics),
        predictions=evaluate_predictions,
        options=evaluate_options(),
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield evaluate --predictions {params.predictions} --split {input.split} {params.options}"
        " --out {params.out} --force > {log} 2>&1"
