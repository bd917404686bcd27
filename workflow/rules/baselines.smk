rule baselines:
    """The simple baselines on the same folds: 3-mer L1 logistic regression, public clones; one job a
    fold (fit on the other folds, score this one), so that the folds' fits run side by side.
    The outputs are files in a folder that Snakemake keeps between runs: --force lets a rerun replace
    the earlier baselines folder (and refuses any other folder, as without it)."""
    input:
        store=store(),
        split=split_table(),
        # ancient: the baselines' part of the clones file changes only with the store, split, label, seed or clone
        # rules, each also an input or param here (and `baselines --clones` refuses a file of another store, split,
        # label or seed); a file made again for the folds' clone memory (validation_fraction, clone_memory) re-runs
        # no baseline
        clones=ancient(shared_clones("baselines")),
    output:
        list(baseline_predictions().values()),
    log:
        log_path("baselines/fold{fold}.log"),
    benchmark:
        benchmark_path("baselines/fold{fold}.tsv")
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
        methods=",".join(BASELINES),
        label=config["label_column"],
        seed=config["seed"],
        # the public-clone test compares the clone rules the model's memory compares (one implementation)
        clone_keys=config["training"].get("clone_keys", "auto"),
        clone_radius=config["training"].get("clone_radius", "auto"),
        clone_pgen="on" if config["training"].get("clone_pgen", True) else "off",
        clone_pgen_limit=config["training"].get("clone_pgen_limit", 20000),
        clones=clones_option,
    threads: config["threads"]["baselines"]
    resources:
        mem_mb=8000,
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield baselines --store {input.store} --split {input.split} --fold {wildcards.fold} --out {params.out}"
        " --methods {params.methods} --label-column {params.label:q} --seed {params.seed}"
        " --clone-keys {params.clone_keys} --clone-radius {params.clone_radius}"
        " --clone-pgen {params.clone_pgen} --clone-pgen-limit {params.clone_pgen_limit}"
        " {params.clones} --threads {threads} --force > {log} 2>&1"
