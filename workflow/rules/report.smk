rule report:
    """One self-contained HTML report: cohort and QC, metrics, curves, attended sequences, config."""
    input:
        store=store(),
        metrics=evaluation("metrics.tsv"),
        roc=evaluation("roc.png"),
        pr=evaluation("pr.png"),
        attended=result("attended.tsv"),
        config=run_config(),
    output:
        report_html(),
    log:
        log_path("report.log"),
    params:
        figures=lambda wildcards, input: os.path.dirname(input.roc),
        title=config["report_title"],
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "deeprc-hopfield report --store {input.store} --metrics {input.metrics}"
        " --figures {params.figures} --attended {input.attended} --config {input.config}"
        " --title {params.title:q} --out {output} > {log} 2>&1"
