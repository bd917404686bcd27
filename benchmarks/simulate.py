"""Benchmark of `deeprc-hopfield simulate`: background sequences per second, and whole cohorts.

Compares, in the same run, our vectorised sampler of OLGA's model with OLGA's own generator
(`SequenceGenerationVDJ.gen_rnd_prod_CDR3`, one sequence per call, single process), then times the
two sizes the simulator issue asks for: a 200 x 10,000 cohort with --threads 2 and one
300,000-sequence repertoire (generate, implant, write). Each figure is the median of --repeats runs.

    python benchmarks/simulate.py [--repeats 3] [--chain TRB] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def olga_reference(chain: str, n: int) -> None:
    """OLGA's plain generation loop: one productive CDR3 per call."""
    import olga.sequence_generation as sequence_generation

    from deeprc_hopfield.simulate import background_model
    from deeprc_hopfield.simulate.background import olga_model

    model = background_model(chain)
    genomic, generative = olga_model(chain)
    generator = getattr(sequence_generation, f"SequenceGeneration{model.kind}")(generative, genomic)
    np.random.seed(0)
    for _ in range(n):
        generator.gen_rnd_prod_CDR3()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--chain", default="TRB", help="chain of the background model (default: TRB)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test, not figures)")
    args = parser.parse_args()

    from deeprc_hopfield.simulate import SimulationSettings, background_model, simulate
    from deeprc_hopfield.simulate.cohort import _Task, build_repertoire

    n_ours, n_olga = (20_000, 1_000) if args.quick else (200_000, 10_000)
    cohort_shape = (20, 2_000) if args.quick else (200, 10_000)
    one_size = 30_000 if args.quick else 300_000
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, numpy {np.__version__}")

    model = background_model(args.chain)
    model.generate(1000, np.random.default_rng(0))  # warm-up (model load)
    ours = _median_time(lambda: model.generate(n_ours, np.random.default_rng(1)), args.repeats)
    theirs = _median_time(lambda: olga_reference(args.chain, n_olga), args.repeats)
    print(f"background {args.chain}, 1 process: vectorised sampler {n_ours / ours:,.0f} sequences/s "
          f"({n_ours:,} in {ours:.2f} s); OLGA gen_rnd_prod_CDR3 loop {n_olga / theirs:,.0f} sequences/s "
          f"({n_olga:,} in {theirs:.2f} s); speed-up x{(n_ours / ours) / (n_olga / theirs):.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        n_rep, n_seq = cohort_shape
        settings = SimulationSettings(n_repertoires=n_rep, sequences_per_repertoire=n_seq, witness_rate=0.001,
                                      chain=args.chain)
        runs = iter(range(args.repeats))
        seconds = _median_time(lambda: simulate(settings, Path(tmp) / f"cohort{next(runs)}", threads=2),
                               args.repeats)
        print(f"cohort {n_rep} x {n_seq:,} ({n_rep * n_seq:,} sequences), --threads 2, written as AIRR TSV: "
              f"{seconds:.1f} s ({n_rep * n_seq / seconds:,.0f} sequences/s)")

        folder = Path(tmp) / "one"
        folder.mkdir()
        task = _Task(index=0, subject_id="rep0", filename="rep0.tsv", label=1, size=one_size,
                     settings=SimulationSettings(n_repertoires=2, sequences_per_repertoire=one_size,
                                                 witness_rate=0.001, chain=args.chain),
                     clones=None, pool=None, folder=folder)
        seconds = _median_time(lambda: build_repertoire(task), args.repeats)
        print(f"one repertoire of {one_size:,} sequences (generate, implant, write; 1 process): {seconds:.1f} s")


if __name__ == "__main__":
    main()
