rule split:
    """Stratified, seeded k-fold assignment of the subjects (split.csv: subject_id, fold)."""
    input:
        store=store(),
    output:
        split_table(),
    log:
        log_path("split.log"),
    benchmark:
        benchmark_path("split.tsv")
    params:
        folds=config["folds"],
        seed=config["seed"],
        label=config["label_column"],
        groups=split_options(),
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield split --store {input.store} --out {output} --folds {params.folds}"
        " --seed {params.seed} --label-column {params.label:q} {params.groups} > {log} 2>&1"
