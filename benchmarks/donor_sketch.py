"""What telling samples of one donor costs (`deeprc_hopfield.donors`): the clone sketch of one repertoire beside
the sequence digest that training and predict already compute (the reference: the same keying of every sequence),
and the shares of every pair of a cohort's sketches (what `split` adds after reading the store).

    python benchmarks/donor_sketch.py [--sequences 300000] [--repertoires 786] [--repeats 5]

Prints medians over the repeats; a random repertoire of Zipf-like counts stands for a real one (the cost depends on
the number of sequences, not on what they are).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deeprc_hopfield.donors import clone_sketch, sketch_shares
from deeprc_hopfield.store import Repertoire, sequence_digest, sequence_keys


def _repertoire(n: int, seed: int) -> Repertoire:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 20, n).astype(np.uint8)
    codes = rng.integers(1, 21, int(lengths.sum())).astype(np.uint8)
    counts = np.floor(rng.pareto(1.5, n) + 1)
    return Repertoire(f"r{seed}", codes, lengths, counts, np.zeros(n, np.int16), np.zeros(n, np.int16))


def _median_seconds(work, repeats: int) -> float:  # noqa: ANN001 (a callable)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=300_000)
    parser.add_argument("--repertoires", type=int, default=786)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rep = _repertoire(args.sequences, 0)
    digest = _median_seconds(lambda: sequence_digest(rep), args.repeats)
    both = _median_seconds(lambda: (lambda keys: (sequence_digest(rep, keys), clone_sketch(rep, keys)))(
        sequence_keys(rep.codes, rep.lengths)), args.repeats)
    print(f"one repertoire of {args.sequences:,} sequences: digest alone {digest:.3f} s, digest and sketch from one "
          f"keying {both:.3f} s (x{both / digest:.2f}; the sketch adds {both - digest:.3f} s)")
    sketches = [clone_sketch(_repertoire(2_000, seed)) for seed in range(args.repertoires)]
    shares = _median_seconds(lambda: sketch_shares(sketches), args.repeats)
    print(f"shares of every pair of {args.repertoires} sketches: {shares:.3f} s")


if __name__ == "__main__":
    main()
