"""Benchmark: OLGA's generation probability by chain: speed, and where the pgen filter's cutoffs fall.

The public-clone test may leave out clones whose pgen is above one of `public_clones.PGEN_CUTOFFS` (1e-6, 1e-7,
1e-8), chosen by inner cross-validation. Those cutoffs are absolute: a clone of pgen p turns up by chance in a
repertoire of M distinct sequences with probability about 1 - exp(-M p), whatever the chain. This prints, per
chain, OLGA's speed (sequences/s with `--threads` workers), the quantiles of pgen over sequences of OLGA's own
model (the simulator's background, `deeprc_hopfield.simulate.background_model`; V family given, as the clone
memory's keys; quantiles of the values above 0, the rare 0 being a V call OLGA's mask cannot give that junction)
and the share of all of them above each cutoff, with the chance that a repertoire of `--repertoire-size`
carries a clone at each cutoff. Where no background sequence reaches the loosest cutoff (IGH), no clone can be
left out, and the filter costs only the pgen of the test's candidates.

    python benchmarks/pgen_by_chain.py [--chains TRB TRA IGH IGK IGL] [--sequences 2000 2000 200 1000 1000]
        [--threads 2] [--repertoire-size 100000] [--json benchmarks/results/pgen_by_chain.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from deeprc_hopfield.pgen import pgen_model
from deeprc_hopfield.public_clones import PGEN_CUTOFFS
from deeprc_hopfield.simulate import background_model

QUANTILES = (0.5, 0.9, 0.99)


def chain_figures(chain: str, n: int, threads: int, repertoire_size: int, seed: int) -> dict:
    """Speed and pgen distribution of `n` background sequences of `chain`."""
    block = background_model(chain).generate(n, np.random.default_rng(seed))
    model = pgen_model(chain, v_level="family")
    start = time.perf_counter()
    values = np.asarray(model.pgen(list(block.junction_aa), [v or None for v in block.v_call], workers=threads))
    seconds = time.perf_counter() - start
    positive = values[values > 0]
    return {"chain": chain, "sequences": n, "sequences_per_s": n / seconds, "zero": int((values == 0).sum()),
            "quantiles": {str(q): float(np.quantile(positive, q)) for q in QUANTILES},
            "share_above": {f"{c:g}": float((values > c).mean()) for c in PGEN_CUTOFFS},
            "chance_carrier_at_cutoff": {f"{c:g}": float(1 - np.exp(-repertoire_size * c)) for c in PGEN_CUTOFFS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", nargs="+", default=["TRB", "TRA", "IGH", "IGK", "IGL"])
    parser.add_argument("--sequences", nargs="+", type=int, default=[2000, 2000, 200, 1000, 1000],
                        help="background sequences per chain, in the order of --chains (IGH: ~4 a second a core)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repertoire-size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if len(args.sequences) != len(args.chains):
        parser.error("--sequences needs one number per chain of --chains")
    rows = [chain_figures(c, n, args.threads, args.repertoire_size, args.seed)
            for c, n in zip(args.chains, args.sequences)]
    cutoffs = [f"{c:g}" for c in PGEN_CUTOFFS]
    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} workers; "
          f"repertoire of {args.repertoire_size:,} sequences")
    print("chance a repertoire carries a clone at the cutoff: "
          + ", ".join(f"{c}: {rows[0]['chance_carrier_at_cutoff'][c]:.3f}" for c in cutoffs))
    print("chain  seq/s   median    p90       p99       " + "  ".join(f"share>{c}" for c in cutoffs))
    for r in rows:
        q = r["quantiles"]
        print(f"{r['chain']:<6} {r['sequences_per_s']:6.1f}  {q['0.5']:.1e}  {q['0.9']:.1e}  {q['0.99']:.1e}   "
              + "  ".join(f"{r['share_above'][c]:10.3f}" for c in cutoffs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
