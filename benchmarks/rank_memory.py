"""Benchmark of the memory of the cohort ranking of one fold's held-out repertoires (`interpret`, `interpret_fold`).

`interpret.ranking.collect_attention` keeps every held-out sequence's clone key, V code, repertoire and relative
attention (20 bytes a sequence), and `rank_sequences` scores each candidate clone over all its occurrences. At 786
repertoires x median 200,000 a fold holds ~42 M sequences, against the interpret rule's `mem_mb` of 4,000. A
synthetic pass stands in: `--repertoires` repertoires of `--sequences` sequences each, clone keys unique except a
`--public` share drawn from a pool of 100,000 public clones, `--missing-v` of the sequences without a V call (the
missing-V policy then resolves them against the others), log-normal attention, the 1,000 most attended of each
repertoire as candidates. Each way runs in a fresh process: the peak resident memory of the ranking above the pass
already held (VmHWM, reset before it), its seconds, and a sha256 of the ranked table, which must agree.

    python benchmarks/rank_memory.py [--repertoires 157] [--sequences 270000] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.interpret import ranking
from deeprc_hopfield.interpret.ranking import AttentionPass
from deeprc_hopfield.public_clones import MODULI, expand_wildcards, wildcard_table, with_v

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_clone_fit import memory_kb  # noqa: E402
from run_record import each_way_in_a_child, provenance, write_result  # noqa: E402

WAYS = ("whole", "streamed")
PER_REPERTOIRE = 1000


def attention_pass(args: argparse.Namespace, seed: int = 0) -> AttentionPass:
    """The synthetic pass (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = args.repertoires * args.sequences

    def random_keys(size: int) -> np.ndarray:
        return (rng.integers(0, MODULI[0], size) << 31) + rng.integers(0, MODULI[1], size)

    base = random_keys(n)
    public = rng.random(n) < args.public
    base[public] = random_keys(100_000)[rng.zipf(1.5, int(public.sum())) % 100_000]
    v = rng.integers(0, 60, n).astype(np.int32)
    v[rng.random(n) < args.missing_v] = -1
    key = with_v(base, v)
    del base, public
    weight = rng.lognormal(0.0, 1.0, n).astype(np.float32)
    owner = np.repeat(np.arange(args.repertoires, dtype=np.int32), args.sequences)
    top = np.concatenate([r * args.sequences + np.argsort(-weight[r * args.sequences:(r + 1) * args.sequences],
                                                          kind="stable")[:PER_REPERTOIRE]
                          for r in range(args.repertoires)])
    candidates = pd.DataFrame({"junction_aa": [f"CASS{k % 10_000_000}F" for k in key[top]],
                               "v_call": np.where(v[top] >= 0, "TRBV" + (v[top] % 30).astype(str), None),
                               "j_call": "TRBJ2-1", "key": key[top], "v": v[top], "repertoire": owner[top],
                               "weight": weight[top], "duplicate_count": 1})
    repertoires = pd.DataFrame({"subject_id": [f"rep{r}" for r in range(args.repertoires)],
                                "positive": np.arange(args.repertoires) % 2 == 0, "probability": 0.5,
                                "n_sequences": args.sequences})
    return AttentionPass(key, owner, weight, candidates, repertoires, {"store"}, v)


def rank_once(args: argparse.Namespace, way: str) -> dict:
    """The ranking, one way, in this process: its seconds, peak growth and sha256."""
    attention = attention_pass(args)
    if way == "whole":
        ranking._carrying = whole_carrying
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    held = memory_kb("VmRSS")
    start = time.perf_counter()
    ranked = ranking.rank_sequences(attention)
    seconds = time.perf_counter() - start
    return {"way": way, "sequences": int(len(attention.key)), "seconds": round(seconds, 1),
            "held_mb": round(held / 1024), "peak_above_held_mb": round((memory_kb("VmHWM") - held) / 1024),
            "ranked": len(ranked), "sha256": hashlib.sha256(pd.util.hash_pandas_object(ranked).to_numpy()
                                                            .tobytes()).hexdigest()[:16]}


def whole_carrying(keys: np.ndarray, v: np.ndarray | None, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference, as the code did before: every sequence's clone resolved at once (the sequences with a V call
    copied for the wildcard table), then kept where one of `wanted` (`np.isin`)."""
    row, key = np.arange(len(keys)), keys
    if v is not None and v.min(initial=0) < 0:
        known, without = v >= 0, np.flatnonzero(v < 0)
        table = wildcard_table([keys[known]], [v[known]], keys[without])
        rows, resolved = expand_wildcards(keys[without], table)
        row, key = np.concatenate([np.flatnonzero(known), without[rows]]), np.concatenate([keys[known], resolved])
    mask = np.isin(key, wanted)
    return row[mask], key[mask]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repertoires", type=int, default=157)
    parser.add_argument("--sequences", type=int, default=270_000, help="sequences per repertoire")
    parser.add_argument("--public", type=float, default=0.05, help="share of sequences drawn from public clones")
    parser.add_argument("--missing-v", type=float, default=0.05, help="share of sequences without a V call")
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.way:
        print(json.dumps(rank_once(args, args.way)))
        return
    results = each_way_in_a_child(__file__, ["--repertoires", str(args.repertoires), "--sequences", str(args.sequences),
                                              "--public", str(args.public), "--missing-v", str(args.missing_v)],
                                  args.ways.split(","))
    if len({r["sha256"] for r in results}) > 1:
        raise SystemExit("the ways ranked differently")
    write_result(args.json, {**provenance("1 thread"), "repertoires": args.repertoires, "sequences": args.sequences,
                             "results": results})


if __name__ == "__main__":
    main()
