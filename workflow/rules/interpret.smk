rule interpret_fold:
    """Ranked sequences, motifs, logos and contributions of a fold's model on its held-out repertoires,
    from the attention predict_fold wrote (no second pass over the repertoires)."""
    input:
        model=model_dir(),
        store=store(),
        split=split_table(),
        attention=fold_attention(),
    output:
        directory(fold_interpretation()),
    log:
        log_path("interpret/fold{fold}.log"),
    benchmark:
        benchmark_path("interpret/fold{fold}.tsv")
    params:
        label=config["label_column"],
        top=config["interpret"]["top"],
        motif_top=config["interpret"]["motif_top"],
        per_repertoire=config["interpret"]["per_repertoire"],
        motif_alpha=config["interpret"]["motif_alpha"],
        seed=config["seed"],
        device=device_option,
    threads: config["threads"]["predict"]
    resources:
        mem_mb=4000,
        gpu=gpus(),
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield interpret --model {input.model} --store {input.store} --split {input.split}"
        " --fold {wildcards.fold} --label-column {params.label:q} --top {params.top}"
        " --motif-top {params.motif_top} --per-repertoire {params.per_repertoire} --seed {params.seed}"
        " --motif-alpha {params.motif_alpha}"
        " --attention {input.attention} --device {params.device} --out {output} --threads {threads}"
        " > {log} 2>&1"


rule interpret_cohort:
    """The folds' interpretations merged into one cohort-level ranking, motifs and logos."""
    input:
        folds=expand(fold_interpretation("{fold}"), fold=FOLDS),
        store=store(),
    output:
        directory(cohort_interpretation()),
    log:
        log_path("interpret/cohort.log"),
    benchmark:
        benchmark_path("interpret/cohort.tsv")
    params:
        top=config["interpret"]["top"],
        motif_top=config["interpret"]["motif_top"],
        motif_alpha=config["interpret"]["motif_alpha"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield interpret-summary --interpretations {input.folds} --store {input.store}"
        " --top {params.top} --motif-top {params.motif_top} --motif-alpha {params.motif_alpha} --seed {params.seed}"
        " --out {output} > {log} 2>&1"
