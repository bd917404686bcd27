rule report:
    """One self-contained HTML report: cohort and QC, metrics, curves, fold models, attended
    sequences, interpretation, config."""
    input:
        store=store(),
        metrics=evaluation("metrics.tsv"),
        roc=evaluation("roc.png"),
        pr=evaluation("pr.png"),
        attended=expand(fold_attended("{fold}"), fold=FOLDS),
        interpretation=cohort_interpretation(),
        models=expand(model_dir("{fold}"), fold=FOLDS),
        config=run_config(),
        split=split_table(),
    output:
        report(report_html(), caption="../report/report.rst", category="Report"),
    log:
        log_path("report.log"),
    benchmark:
        benchmark_path("report.tsv")
    params:
        figures=lambda wildcards, input: os.path.dirname(input.roc),
        title=config["report_title"],
        label=config["label_column"],
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield report --store {input.store} --metrics {input.metrics}"
        " --figures {params.figures} --attended {input.attended} --interpretation {input.interpretation}"
        " --models {input.models} --config {input.config} --split {input.split}"
        " --label-column {params.label:q} --title {params.title:q} --out {output} > {log} 2>&1"
