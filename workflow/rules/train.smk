# Writing small YAML files is no cluster job: these run where snakemake runs. Their settings are params with
# sorted keys (sorted_settings), so a config that lists the same settings in another order re-runs nothing.
localrules:
    run_config,
    train_config,
    clones_config,


rule run_config:
    """The effective configuration of this run (defaults filled in), for the report and for users."""
    output:
        run_config(),
    log:
        log_path("run_config.log"),
    benchmark:
        benchmark_path("run_config.tsv")
    params:
        settings=sorted_settings(run_settings()),
    threads: 1
    resources:
        mem_mb=500,
    run:
        write_yaml(output[0], params.settings, log[0], "the run's settings, defaults filled in")


rule train_config:
    """The `model:` and `training:` sections of the config as the YAML file that `train` reads."""
    output:
        train_config(),
    log:
        log_path("train_config.log"),
    benchmark:
        benchmark_path("train_config.tsv")
    params:
        model=sorted_settings(config["model"]),
        training=learning_settings(),  # checkpoint_every and embed_chunk go on train's command line
    threads: 1
    resources:
        mem_mb=500,
    run:
        write_yaml(output[0], {"model": params.model, "training": params.training}, log[0],
                   "the config's model and training sections, as `train --config` reads them")


rule clones_config:
    """The training settings that `clones` reads, alone: any other training setting leaves the clones as they are."""
    output:
        clones_config(),
    log:
        log_path("clones_config.log"),
    benchmark:
        benchmark_path("clones_config.tsv")
    params:
        settings=clones_settings(),
    threads: 1
    resources:
        mem_mb=500,
    run:
        write_yaml(output[0], params.settings, log[0], "the training settings `clones --config` reads")


rule clones:
    """Every fold's public clones (the clone memory's fitting and training repertoires, the public-clone
    baseline's), collected in one reading of the cohort for train and baselines (--clones).
    The baseline's part is collected whether or not the public-clone baseline is run (one part more than the
    folds' 2K): the file is then the same for every `baselines` list, so changing the list re-runs neither this
    job nor the training jobs that read it."""
    input:
        store=store(),
        split=split_table(),
        config=clones_config(),
    output:
        shared_clones(),
    log:
        log_path("clones.log"),
    benchmark:
        benchmark_path("clones.tsv")
    params:
        label=config["label_column"],
        seed=config["seed"],
    threads: config["threads"]["clones"]
    resources:
        mem_mb=16000,  # 14.5 GB measured at 786 x 200,000 (benchmarks/RESULTS.md, the full cohort's clones file)
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield clones --store {input.store} --split {input.split} --config {input.config}"
        " --label-column {params.label:q} --seed {params.seed} --out {output} --threads {threads} --force"
        " > {log} 2>&1"


rule train:
    """One model per fold: fold K held out, inner validation inside the other folds.

    The checkpoint written beside the model (models/fold{fold}.checkpoint) is deliberately not an
    output: Snakemake deletes the outputs of a failed or interrupted job, and the checkpoint has to
    survive so that the rerun (--rerun-incomplete) continues from it. `--resume-if-possible` uses it
    only when it is of this very run (store, split, fold, labels, model and training config, whatever its
    checkpoint_every and embed_chunk) and trains from update 0 otherwise; the job's log says which. Those two
    settings come on the command line (`train_execution_options`), so that a change of them re-runs no train job.
    """
    input:
        store=store(),
        split=split_table(),
        config=train_config(),
        reference=reference_input,
        clones=shared_clones("train"),
    output:
        model=directory(model_dir()),
    log:
        log_path("train/fold{fold}.log"),
    benchmark:
        benchmark_path("train/fold{fold}.tsv")
    params:
        label=config["label_column"],
        seed=config["seed"],
        device=device_option,
        reference=reference_options(),
        clones=clones_option,
        execution=train_execution_options,
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        gpu=gpus(),
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield train --store {input.store} --split {input.split} --fold {wildcards.fold}"
        " --config {input.config} --label-column {params.label:q} --seed {params.seed}"
        " --device {params.device} --out {output.model} --threads {threads} --resume-if-possible {params.reference}"
        " {params.execution}"
        " {params.clones}"
        " > {log} 2>&1"
