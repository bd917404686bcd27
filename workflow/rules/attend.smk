rule attend_new:
    """New patients: top-K attended sequences under the fold ensemble (mean attention)."""
    input:
        models=[model_dir(f) for f in FOLDS],
        repertoires=new_repertoires,
    output:
        new_patients("attended.tsv"),
    log:
        log_path("new_patients/attend.log"),
    benchmark:
        benchmark_path("new_patients/attend.tsv")
    params:
        models=lambda wildcards, input: os.path.dirname(input.models[0]),
        top=config["top_k"],
        device=config["device"],
    threads: config["threads"]["predict"]
    resources:
        mem_mb=4000,
        gpu=gpus(),
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield attend --model {params.models} --repertoires {input.repertoires}"
        " --top {params.top} --device {params.device} --out {output} --threads {threads}"
        " > {log} 2>&1"
