"""Benchmark of `deeprc_hopfield.neighbours.ReceptorIndex`: a repertoire against a reference database.

A 300,000-sequence TRB repertoire (OLGA background) is matched against a 50,000-receptor reference
(another OLGA draw); 1% of the repertoire is made to match a reference receptor exactly and 1% at
one substitution in the CDR3 core, 2% of the repertoire and 5% of the reference lose their V call.
Times (median of --repeats): building the index, exact matching and radius-1 matching, against the
simple way on decoded strings: exact, a dict from (CDR3 core) to the reference receptors, looked up
per sequence; radius 1, every one-substitution variant of each sequence's core looked up in that
dict (timed on a --subsample of the repertoire and scaled up, as said in the output). Both ways
must find the same pairs (all of them exactly, radius 1 on the subsample). Peak memory is measured
by tracemalloc in separate, untimed runs (numpy reports its arrays to it), on the repertoire and on
it repeated 4 times (1.2 M sequences), to show that the query side's memory does not grow. Last,
the repertoire itself is indexed as the reference (~4 M wildcard keys) and matched against itself.

    python benchmarks/matching.py [--repeats 3] [--subsample 10000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import median_seconds  # noqa: E402

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def _peak_mb(function) -> float:
    """Peak memory traced while `function` runs, MB (its result is dropped)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def make_data(n_repertoire: int, n_reference: int, seed: int = 0):
    """(reference junctions, reference V codes, repertoire junctions, repertoire V codes)."""
    from deeprc_hopfield.public_clones import name_codes
    from deeprc_hopfield.simulate import background_model

    rng = np.random.default_rng(seed)
    model = background_model("TRB")
    reference = model.generate(n_reference, rng)
    repertoire = model.generate(n_repertoire, rng)
    ref_junctions = reference.junction_aa.astype(object)
    ref_v = name_codes(reference.v_call)
    ref_v[rng.random(n_reference) < 0.05] = -1
    junctions = repertoire.junction_aa.astype(object).copy()
    v = name_codes(repertoire.v_call)
    chosen = rng.choice(n_repertoire, size=2 * (n_repertoire // 100), replace=False)
    exact, substituted = np.array_split(chosen, 2)
    source = rng.integers(0, n_reference, size=len(chosen))
    junctions[exact] = ref_junctions[source[:len(exact)]]
    for row, j in zip(substituted, source[len(exact):]):  # one substitution inside the core (setup only)
        text = ref_junctions[j]
        position = int(rng.integers(1, len(text) - 1))
        letter = rng.choice([a for a in AMINO_ACIDS if a != text[position]])
        junctions[row] = text[:position] + letter + text[position + 1:]
    has_v = ref_v[source] >= 0
    v[chosen[has_v]] = ref_v[source[has_v]]
    v[rng.random(n_repertoire) < 0.02] = -1
    return list(ref_junctions), ref_v, list(junctions), v


# --- the simple way, on Python strings -------------------------------------------------------
def simple_table(ref_junctions: list[str], ref_v: np.ndarray) -> dict[str, list[tuple[int, int]]]:
    from deeprc_hopfield.cdr3 import core

    table: dict[str, list[tuple[int, int]]] = {}
    for j, (junction, v) in enumerate(zip(ref_junctions, ref_v.tolist())):
        table.setdefault(core(junction), []).append((j, v))
    return table


def simple_exact(table, junctions: list[str], v: np.ndarray) -> list[tuple[int, int, int]]:
    from deeprc_hopfield.cdr3 import core

    out = []
    for i, (junction, vq) in enumerate(zip(junctions, v.tolist())):
        for j, vr in table.get(core(junction), ()):
            if vq < 0 or vr < 0 or vq == vr:
                out.append((i, j, 0))
    return out


def simple_radius1(table, junctions: list[str], v: np.ndarray) -> list[tuple[int, int, int]]:
    from deeprc_hopfield.cdr3 import core

    out = []
    for i, (junction, vq) in enumerate(zip(junctions, v.tolist())):
        c = core(junction)
        variants = [(c, 0)] + [(c[:p] + a + c[p + 1:], 1) for p in range(len(c)) for a in AMINO_ACIDS if a != c[p]]
        for variant, d in variants:
            for j, vr in table.get(variant, ()):
                if vq < 0 or vr < 0 or vq == vr:
                    out.append((i, j, d))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--subsample", type=int, default=10_000, help="sequences for the simple radius-1 way")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test, not figures)")
    args = parser.parse_args()

    import pandas
    import torch  # noqa: F401  (imported by the package anyway; loaded before memory is measured)

    from deeprc_hopfield.encoding import decode, encode
    from deeprc_hopfield.neighbours import CHUNK, ReceptorIndex

    n_rep, n_ref = (30_000, 5_000) if args.quick else (300_000, 50_000)
    subsample = min(args.subsample, n_rep)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
          f"Python {platform.python_version()}, numpy {np.__version__}, pandas {pandas.__version__}")
    print(f"date: {time.strftime('%Y-%m-%d')}; repeats: {args.repeats} (median); chunk: {CHUNK:,} queries; "
          f"load average at start {os.getloadavg()[0]:.1f} (other work shares the CPUs when above 0)")
    start = time.perf_counter()
    ref_junctions, ref_v, junctions, v = make_data(n_rep, n_ref)
    codes, lengths = encode(junctions)
    lengths = lengths.astype(np.uint8)  # the store's format
    ref_codes, ref_lengths = encode(ref_junctions)
    core_lengths = lengths.astype(np.int64) - 2
    print(f"data: repertoire {n_rep:,} TRB sequences (OLGA), core length mean {core_lengths.mean():.1f} "
          f"(max {core_lengths.max()}), {np.mean(v < 0):.1%} without V; reference {n_ref:,} receptors "
          f"(OLGA), {np.mean(ref_v < 0):.1%} without V; made in {time.perf_counter() - start:.1f} s")
    print()

    t_build0, index0 = median_seconds(lambda: ReceptorIndex(ref_codes, ref_lengths, ref_v, radius=0), args.repeats)
    t_build1, index1 = median_seconds(lambda: ReceptorIndex(ref_codes, ref_lengths, ref_v, radius=1), args.repeats)
    t_exact, exact = median_seconds(lambda: index0.pairs(codes, lengths, v), args.repeats)
    t_r1, r1 = median_seconds(lambda: index1.pairs(codes, lengths, v), args.repeats)
    t_first, _ = median_seconds(lambda: index1.first_match(codes, lengths, v), args.repeats)

    t_decode, decoded = median_seconds(lambda: decode(codes, lengths), args.repeats)
    t_table, table = median_seconds(lambda: simple_table(ref_junctions, ref_v), args.repeats)
    t_simple_exact, simple = median_seconds(lambda: simple_exact(table, decoded, v), args.repeats)
    rng = np.random.default_rng(1)
    rows_sub = np.sort(rng.choice(n_rep, size=subsample, replace=False))
    sub = [decoded[i] for i in rows_sub.tolist()]
    t_simple_r1_sub, simple_r1 = median_seconds(lambda: simple_radius1(table, sub, v[rows_sub]), args.repeats)
    t_simple_r1 = t_simple_r1_sub * n_rep / subsample

    # the same pairs both ways
    ours_exact = set(zip(*(a.tolist() for a in exact)))
    same_exact = ours_exact == set(simple)
    sub_codes, sub_lengths = encode(sub)
    ours_sub = set(zip(*(a.tolist() for a in index1.pairs(sub_codes, sub_lengths, v[rows_sub]))))
    same_r1 = ours_sub == set(simple_r1)
    in_sub = np.isin(r1[0], rows_sub)
    same_r1_rows = set(zip(np.searchsorted(rows_sub, r1[0][in_sub]).tolist(), r1[1][in_sub].tolist(),
                           r1[2][in_sub].tolist())) == set(simple_r1)

    rep, ref = f"{n_rep // 1000}k", f"{n_ref // 1000}k"
    print(f"{'what':<62} {'seconds':>9}")
    rows = [
        (f"build index, radius 0 ({ref} receptors)", t_build0),
        (f"build index, radius 1 ({ref} receptors, wildcard keys)", t_build1),
        (f"exact match, {rep} sequences (pairs)", t_exact),
        (f"radius-1 match, {rep} sequences (pairs)", t_r1),
        (f"radius-1 first_match, {rep} sequences", t_first),
        (f"simple: decode {rep} sequences to str", t_decode),
        ("simple: build dict core -> receptors", t_table),
        (f"simple: exact lookups, {rep} sequences (decoded)", t_simple_exact),
        (f"simple: radius-1 variants, {subsample:,} sequences (measured)", t_simple_r1_sub),
        (f"simple: radius-1 variants, {rep} (x{n_rep / subsample:g} extrapolated)", t_simple_r1),
    ]
    for what, seconds in rows:
        print(f"{what:<62} {seconds:>9.3f}")
    print()
    simple_exact_total = t_decode + t_simple_exact
    simple_r1_total = t_decode + t_simple_r1
    print(f"exact: ours {t_exact:.3f} s vs simple {simple_exact_total:.3f} s (decode + lookups): "
          f"{simple_exact_total / t_exact:.1f}x faster; lookups alone {t_simple_exact / t_exact:.1f}x")
    print(f"radius 1: ours {t_r1:.3f} s vs simple {simple_r1_total:.1f} s (decode + extrapolated variants): "
          f"{simple_r1_total / t_r1:.0f}x faster")
    print(f"index build + radius-1 match: {t_build1 + t_r1:.3f} s; simple dict + radius 1: "
          f"{t_table + simple_r1_total:.1f} s")
    print()
    n_hit0 = len(np.unique(exact[0]))
    n_hit1 = len(np.unique(r1[0]))
    print(f"pairs: exact {len(exact[0]):,} ({n_hit0:,} sequences, {n_hit0 / n_rep:.2%}); radius 1 {len(r1[0]):,} "
          f"({int((r1[2] == 1).sum()):,} at distance 1; {n_hit1:,} sequences, {n_hit1 / n_rep:.2%})")
    print(f"same pairs as the simple way: exact (all {n_rep:,}) {same_exact}; radius 1 ({subsample:,} subsample, "
          f"{len(simple_r1):,} pairs) {same_r1}; full run restricted to the subsample {same_r1_rows}")
    print()

    big = 4
    big_codes, big_lengths, big_v = np.tile(codes, big), np.tile(lengths, big), np.tile(v, big)
    peak_build = _peak_mb(lambda: ReceptorIndex(ref_codes, ref_lengths, ref_v, radius=1))
    peak_300k = _peak_mb(lambda: index1.pairs(codes, lengths, v))
    peak_big = _peak_mb(lambda: index1.first_match(big_codes, big_lengths, big_v))
    peak_big_pairs = _peak_mb(lambda: index1.pairs(big_codes, big_lengths, big_v))
    t_big = time.perf_counter()
    index1.first_match(big_codes, big_lengths, big_v)
    t_big = time.perf_counter() - t_big
    print("peak memory (tracemalloc, beyond the inputs):")
    print(f"  build radius-1 index of {n_ref:,}: {peak_build:.1f} MB")
    print(f"  radius-1 pairs of {n_rep:,}: {peak_300k:.1f} MB")
    print(f"  radius-1 first_match of {big * n_rep:,} (repertoire x{big}): {peak_big:.1f} MB "
          f"(one run: {t_big:.2f} s)")
    print(f"  radius-1 pairs of {big * n_rep:,} (repertoire x{big}; output {big}x larger): {peak_big_pairs:.1f} MB")
    print()

    # a repertoire as the reference (one repertoire's clones against another's, e.g. a public-clone radius)
    t_self_build, self_index = median_seconds(lambda: ReceptorIndex(codes, lengths, v, radius=1), 1)
    t_self, self_pairs = median_seconds(lambda: self_index.pairs(codes, lengths, v), 1)
    peak_self = _peak_mb(lambda: ReceptorIndex(codes, lengths, v, radius=1))
    print(f"the repertoire as the reference ({int(core_lengths.sum()):,} wildcard keys), one run each: build "
          f"radius-1 index {t_self_build:.2f} s (peak {peak_self:.0f} MB), match the repertoire against it "
          f"{t_self:.2f} s, {len(self_pairs[0]):,} pairs ({int((self_pairs[2] == 1).sum()):,} at distance 1)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"process peak RSS (ru_maxrss, whole benchmark incl. data and strings): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
