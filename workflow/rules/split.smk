rule split:
    """Stratified, seeded k-fold assignment of the subjects (split.csv: subject_id, fold).

    `split` also writes split.csv.related.tsv, the pairs of repertoires that look like samples of one donor but no
    group keeps together, which the report and the run's last lines warn of. It is not a declared output on purpose:
    declaring it would re-run this job, and with it every training, in each run made before it existed. So Snakemake
    neither removes it (--delete-all-output) nor carries it to remote storage; without it the warning is left out."""
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
