rule predict_fold:
    """One pass of a fold's model over its held-out repertoires: predictions, the top-K attended
    sequences of each, and every sequence's attention (what interpret_fold reads; kept, so that a
    change of interpret's settings re-runs interpret only)."""
    input:
        model=model_dir(),
        store=store(),
        split=split_table(),
    output:
        predictions=fold_predictions(),
        attended=report(fold_attended(), caption="../report/attended.rst", category="Attended sequences",
                        labels={"fold": "{fold}"}),
        attention=fold_attention(),
    log:
        log_path("predict/fold{fold}.log"),
    benchmark:
        benchmark_path("predict/fold{fold}.tsv")
    params:
        top=config["top_k"],
        device=device_option,
    threads: config["threads"]["predict"]
    resources:
        mem_mb=4000,
        gpu=gpus(),
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield predict --model {input.model} --store {input.store} --split {input.split}"
        " --fold {wildcards.fold} --device {params.device} --out {output.predictions}"
        " --attended {output.attended} --top {params.top} --attention {output.attention}"
        " --threads {threads} > {log} 2>&1"


rule predict_new:
    """New patients, in one pass: the fold models of this run (its `folds`, not whatever else lies in its
    models folder) as an ensemble (mean probability and spread) and the top-K attended sequences of each
    patient (mean attention). Every file of the folder is an input: a change scores them again. Their files are
    read with the cohort's QC, its qc.chain named (a TRA+TRB 10x file to a TRB run keeps its TRB rows)."""
    input:
        models=[model_dir(f) for f in FOLDS],
        repertoires=new_repertoires,
    output:
        predictions=new_patients("predictions.csv"),
        attended=new_patients("attended.tsv"),
    log:
        log_path("new_patients/predict.log"),
    benchmark:
        benchmark_path("new_patients/predict.tsv")
    params:
        folder=lambda wildcards: new_repertoires_folder(),
        metadata=lambda wildcards: new_metadata_option(),
        chain=chain_option(),  # the locus the cohort was ingested with (qc.chain)
        format=new_format_option(),  # new_format, else the cohort's format
        top=config["top_k"],
        device=device_option,
    threads: config["threads"]["predict"]
    resources:
        mem_mb=4000,
        gpu=gpus(),
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield predict --model {input.models} --repertoires {params.folder:q} {params.metadata}"
        " {params.chain} {params.format} --device {params.device} --out {output.predictions} --attended {output.attended}"
        " --top {params.top} --threads {threads} > {log} 2>&1"
