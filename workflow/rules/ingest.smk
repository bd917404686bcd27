rule ingest:
    """Read, quality-control and store every repertoire of the metadata table (one HDF5 store)."""
    input:
        metadata=config["metadata"],
        repertoires=ingest_repertoires(),
    output:
        store=store(),
        qc=qc_table(),
    log:
        log_path("ingest.log"),
    benchmark:
        benchmark_path("ingest.tsv")
    params:
        folder=lambda wildcards: config["repertoires"],  # the folder the metadata names files in
        options=ingest_options(),
    threads: config["threads"]["ingest"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/deeprc-hopfield.yaml"
    shell:
        "deeprc-hopfield ingest --metadata {input.metadata:q} --repertoires {params.folder:q}"
        " --out {output.store} {params.options} --threads {threads} > {log} 2>&1"
