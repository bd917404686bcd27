"""Benchmark: ingest of 300,000-row immunoSEQ files against a bare `pandas.read_csv`, reading one
repertoire back from the store, and peak memory.

Each measurement runs in a fresh process so that its peak RSS is its own. Prints medians of
`--repeats` runs and the ratios the foundation issue asks for (ingest <= 1.5x the bare read; one
300k repertoire read back in <= 50 ms). Each ingest run follows a bare read of its own and the
ratio is the median of these pairs, so that other work on a shared machine skews it less.

    python benchmarks/ingest.py [--rows 300000] [--repeats 3] [--files 1 8]
    python benchmarks/ingest.py --stages [--repeats 7]   # where one file's time goes, in one process

`--stages` ingests one file `--repeats` times in this process, each after a bare read, and prints the first call's
and the median seconds of each stage (the package's functions timed where it has them; another package version's
stages are timed as far as it has the same names, e.g. with `PYTHONPATH` set to an older checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AMINO_ACIDS = list("ACDEFGHIKLMNPQRSTVWY")
V_GENES = [f"TCRBV{f:02d}-{g:02d}*01" for f in range(2, 31) for g in (1, 2)] + ["unresolved"]
J_GENES = [f"TCRBJ{f:02d}-{g:02d}*01" for f in (1, 2) for g in range(1, 8)]
# The columns of an immunoSEQ v1 ("snake_case") export, most of which ingest does not need.
EXTRA = ["productive_frequency", "cdr3_length", "v_deletions", "d5_deletions", "d3_deletions", "j_deletions",
         "n2_insertions", "n1_insertions", "v_index", "n1_index", "n2_index", "d_index", "j_index",
         "v_allele", "d_family", "d_gene", "d_allele", "j_allele", "v_shm_count", "sequence_tags"]


def write_immunoseq(path: Path, rows: int, seed: int = 0) -> None:
    """A synthetic immunoSEQ v1 export: 27 columns, ~5% out-of-frame rows, heavy-tailed templates."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 20, size=rows)
    letters = rng.choice(AMINO_ACIDS, size=int(lengths.sum()))
    ends = np.cumsum(lengths)
    text = "".join(letters)
    amino = ["C" + text[e - k:e] + "F" for e, k in zip(ends, lengths)]
    frame = rng.choice(["In", "Out", "Stop"], p=[0.95, 0.04, 0.01], size=rows)
    templates = np.minimum(rng.zipf(2.0, size=rows), 100_000)
    header = ["rearrangement", "amino_acid", "frame_type", "rearrangement_type", "templates", "reads",
              "frequency", "v_family", "v_gene", "j_family", "j_gene", *EXTRA]
    nucleotide = "TGTGCCAGCAGTTTAGCGGGACAGGGGGCAAATGAAGCTTTCTTTGGACAAGGCACCAGACTCACAGTTGTAG"
    with open(path, "w") as handle:
        handle.write("\t".join(header) + "\n")
        for i in range(rows):
            v = V_GENES[i % len(V_GENES)]
            aa = amino[i] if frame[i] == "In" else ""
            fields = [nucleotide, aa, frame[i], "VDJ", str(templates[i]), str(templates[i] * 7),
                      f"{templates[i] / rows:.3e}", v[:7], v, "TCRBJ02", J_GENES[i % len(J_GENES)]]
            fields += ["0.0001", str(3 * (lengths[i] + 2)), "2", "3", "1", "4", "5", "2", "30", "40", "45", "42",
                       "50", "1", "TCRBD01", "TCRBD01-01", "1", "1", "0", ""]
            handle.write("\t".join(fields) + "\n")


def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it starts afresh at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: (module, attribute) of the stages `--stages` times, in the order of one file's ingest.
STAGES = [("deeprc_hopfield.readers.immunoseq", "read_columns"), ("deeprc_hopfield.readers", "scan_file"),
          ("deeprc_hopfield.ingest", "sha256_file"), ("deeprc_hopfield.readers.immunoseq", "_gene"),
          ("deeprc_hopfield.readers.immunoseq", "tidy"), ("deeprc_hopfield.encoding", "JoinedSequences.of"),
          ("deeprc_hopfield.readers", "recognise"), ("deeprc_hopfield.ingest", "read_repertoire_file"),
          ("deeprc_hopfield.ingest", "check_repertoire"), ("deeprc_hopfield.ingest", "sha256_file"),
          ("deeprc_hopfield.store", "StoreWriter.append"), ("deeprc_hopfield.store", "StoreWriter.commit"),
          ("deeprc_hopfield.ingest", "parse_repertoire"), ("deeprc_hopfield.ingest", "ingest")]


def stages(rows: int, repeats: int) -> None:
    """Each stage's first and median seconds over `repeats` ingests of one file in this process."""
    import functools
    import importlib

    import pandas as pd

    seconds: dict[str, list[float]] = {}

    def timed(name: str, function):  # noqa: ANN001, ANN202
        @functools.wraps(function)
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds.setdefault(name, []).append(time.perf_counter() - start)
        return wrapper

    for module_name, attribute in STAGES:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        function = getattr(owner, name, None) if owner is not None else None
        if function is None:
            print(f"(no {module_name}.{attribute} in this version)")
            continue
        if isinstance(owner.__dict__.get(name), classmethod):
            function = classmethod(timed(attribute, function.__func__))
        else:
            function = timed(attribute, function)
        setattr(owner, name, function)
    from deeprc_hopfield.ingest import ingest

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_immunoseq(tmp / "s0.tsv", rows)
        (tmp / "metadata.csv").write_text("subject_id,filename\nS0,s0.tsv\n")
        for _ in range(repeats):
            start = time.perf_counter()
            pd.read_csv(tmp / "s0.tsv", sep="\t")
            seconds.setdefault("bare read_csv", []).append(time.perf_counter() - start)
            ingest(tmp / "metadata.csv", tmp, tmp / "out.h5", progress=False, force=True)
    for name, values in seconds.items():
        print(f"{name:28s} first {values[0] * 1000:7.1f} ms   median {statistics.median(values) * 1000:7.1f} ms "
              f"({len(values)} calls)")


def _child(mode: str, path: str, out: str, threads: int = 1) -> dict:
    """One measurement in this (fresh) process: seconds (imports excluded) and peak memory in MB."""
    import pandas as pd

    from deeprc_hopfield.ingest import ingest
    from deeprc_hopfield.store import RepertoireStore

    start = time.perf_counter()
    if mode == "read_csv":
        pd.read_csv(path, sep="\t")
    elif mode == "ingest":
        ingest(Path(path) / "metadata.csv", Path(path), out, threads=threads, progress=False, force=True)
    elif mode == "read_back":
        with RepertoireStore(out) as store:
            start = time.perf_counter()
            rep = store.repertoire(0)
            assert len(rep) > 0
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": _peak_mb()}


def _run(mode: str, path: Path, out: Path, threads: int = 1) -> dict:
    """One measurement in a fresh process (see `_child`)."""
    result = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(out), str(threads)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(mode: str, path: Path, out: Path, repeats: int, threads: int = 1) -> dict:
    """Median seconds and largest peak memory of `repeats` fresh-process runs."""
    runs = [_run(mode, path, out, threads) for _ in range(repeats)]
    return {"seconds": statistics.median(r["seconds"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs)}


def measure_against_bare(cohort: Path, source: Path, out: Path, n_files: int, repeats: int, threads: int) -> dict:
    """Ingest `repeats` times, each run right after a bare read of the same file, so that load from other
    work on the machine weighs on both alike: medians, and the median of the paired per-file ratios."""
    bare, runs = [], []
    for _ in range(repeats):
        bare.append(_run("read_csv", source, out)["seconds"])
        runs.append(_run("ingest", cohort, out, threads))
    return {"seconds": statistics.median(r["seconds"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs),
            "bare_seconds": statistics.median(bare),
            "ratio": statistics.median(r["seconds"] / n_files / b for r, b in zip(runs, bare))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, nargs="+", default=[1, 8],
                        help="cohort sizes (copies of the file) for the bounded-memory check")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ingest --threads values to try")
    parser.add_argument("--stages", action="store_true", help="time each stage of one file's ingest, in one process")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages:
        stages(args.rows, args.repeats)
        return
    if args.child:
        mode, path, out, threads = args.child
        print(json.dumps(_child(mode, path, out, int(threads))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = tmp / "subject.tsv"
        write_immunoseq(source, args.rows)
        print(f"file: {args.rows:,} rows, {source.stat().st_size / 1e6:.1f} MB immunoSEQ v1 export, 31 columns")
        bare = measure("read_csv", source, tmp / "unused.h5", args.repeats)
        print(f"bare pandas.read_csv            {bare['seconds']:.2f} s   peak {bare['peak_mb']:.0f} MB")
        for n in args.files:
            cohort = tmp / f"cohort{n}"
            cohort.mkdir()
            for i in range(n):
                os.link(source, cohort / f"s{i}.tsv")
            (cohort / "metadata.csv").write_text("subject_id,filename\n" + "".join(f"S{i},s{i}.tsv\n" for i in range(n)))
            store = tmp / f"cohort{n}.h5"
            for threads in args.threads if n > 1 else [1]:
                result = measure_against_bare(cohort, source, store, n, args.repeats, threads)
                per_file = result["seconds"] / n
                print(f"ingest {n:>3} file(s), {threads} thread(s)  {result['seconds']:.2f} s   ({per_file:.2f} s per file, "
                      f"{args.rows * n / result['seconds']:,.0f} rows/s, {result['ratio']:.2f}x the bare read run just "
                      f"before it [{result['bare_seconds']:.2f} s])   peak {result['peak_mb']:.0f} MB (main process)")
        back = measure("read_back", source, tmp / f"cohort{args.files[0]}.h5", max(args.repeats, 5))
        print(f"read one repertoire back        {back['seconds'] * 1000:.1f} ms  ({args.rows:,} sequences)")


if __name__ == "__main__":
    main()
