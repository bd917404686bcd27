"""Benchmark: classify one whole repertoire, against the bare CNN floor and a naive padded version.

Measurements, each in a fresh process (so that its peak memory, VmHWM, is its own), all with
`torch.set_num_threads(--threads)` and under `torch.inference_mode()`, on the same random sequences
(codes 1..20, CDR3-like lengths 8-20, one bag):

- `floor`: the bare length-bucketed CNN (sort by length, chunks padded to their longest sequence,
  one-hot + position features, Conv1d, SELU, masked max over positions) - no pooling, no head;
- `model`: the full `RepertoireClassifier` forward (default config: DeepRC's sizes);
- `memory`: the same with a clone memory of `--clones` stored CDR3s (`model/memory.py`), a tenth of
  them planted in the bag (a trained model on a cohort with public clones has one);
- `embed`: the model's own embedder alone (for reference);
- `naive`: every sequence padded to the global maximum length, one dense conv and a dense softmax;
- `huge`: a bag of `--huge` sequences (10 million) through the full streamed forward.

Prints medians of `--repeats` runs, the ratio of the model to the floor, and peak memory.

    python benchmarks/infer.py [--sequences 300000] [--repeats 5] [--huge 10000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from deeprc_hopfield.model import ModelConfig, RepertoireClassifier, SequenceBags, TaskSpec, position_features


def _peak_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_bags(n: int, seed: int = 0) -> SequenceBags:
    """One bag of `n` random sequences with lengths 8..20."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 21, n).astype(np.uint8)
    codes = rng.integers(1, 21, int(lengths.sum()), dtype=np.uint8)
    return SequenceBags.from_arrays(codes, lengths)


def make_model(clones: int = 0, bags: SequenceBags | None = None) -> RepertoireClassifier:
    """The default model; with `clones`, a clone memory storing every 10th sequence of `bags` among
    `clones` stored sequences (the rest random)."""
    torch.manual_seed(0)
    model = RepertoireClassifier(ModelConfig(tasks=[TaskSpec("status", "binary")], clone_memory=clones)).eval()
    if clones:
        planted = torch.arange(0, clones, 10)
        stored = bags.select(planted).codes, bags.lengths[planted]
        other = make_bags(clones - len(planted), seed=1)
        codes = torch.cat((stored[0], other.codes))
        lengths = torch.cat((stored[1], other.lengths))
        model.memory.store(codes, lengths, torch.full((clones,), -1), v_genes=[])  # V unknown: CDR3 matching
    return model


def floor_forward(model: RepertoireClassifier, bags: SequenceBags, chunk_size: int = 4096) -> torch.Tensor:
    """The physical floor: length-bucketed one-hot + Conv1d + SELU + masked max, written plainly."""
    conv = model.embedder.convs[0]
    lengths = bags.lengths
    order = torch.argsort(lengths, stable=True)
    starts = torch.cumsum(lengths, 0) - lengths
    out = torch.empty(len(lengths), conv.out_channels)
    for s in range(0, len(order), chunk_size):
        index = order[s:s + chunk_size]
        chunk_lengths = lengths[index]
        width = int(chunk_lengths.max())
        col = torch.arange(width)
        valid = col[None, :] < chunk_lengths[:, None]
        padded = bags.codes[(starts[index][:, None] + col).clamp(max=len(bags.codes) - 1)].long() * valid
        x = torch.cat((F.one_hot(padded, 21)[..., 1:].float(), position_features(chunk_lengths, width, torch.float32)), -1)
        x = F.selu(conv(F.pad(x.transpose(1, 2), model.embedder.padding)))
        out[index] = x.masked_fill(~valid[:, None, :], float("-inf")).amax(2)
    return out


def naive_forward(model: RepertoireClassifier, bags: SequenceBags) -> torch.Tensor:
    """Padded to the global maximum length, all sequences at once, dense softmax attention."""
    conv, pool = model.embedder.convs[0], model.pooling
    lengths = bags.lengths
    width = int(lengths.max())
    col = torch.arange(width)
    valid = col[None, :] < lengths[:, None]
    starts = torch.cumsum(lengths, 0) - lengths
    padded = bags.codes[(starts[:, None] + col).clamp(max=len(bags.codes) - 1)].long() * valid
    x = torch.cat((F.one_hot(padded, 21)[..., 1:].float(), position_features(lengths, width, torch.float32)), -1)
    x = F.selu(conv(F.pad(x.transpose(1, 2), model.embedder.padding)))
    emb = x.masked_fill(~valid[:, None, :], float("-inf")).amax(2)  # (n, d)
    k, v = pool.keys_values(emb)
    logits = pool.beta * (k * pool.queries()[None]).sum(-1)  # (n, H)
    a = torch.softmax(logits, dim=0)
    lse = torch.logsumexp(logits, dim=0, keepdim=True)  # (1, H)
    pooled = pool.finish((a[..., None] * v).sum(0, keepdim=True), lse, torch.tensor([len(lengths)]))
    return model.head(pooled)["status"]


def measure(what: str, n: int, repeats: int, threads: int, clones: int) -> dict:
    """Run one measurement in this process (called in a fresh subprocess)."""
    torch.set_num_threads(threads)
    bags = make_bags(n)
    model = make_model(clones if what == "memory" else 0, bags)
    run = {
        "floor": lambda: floor_forward(model, bags),
        "model": lambda: model(bags).outputs["status"],
        "memory": lambda: model(bags).outputs["status"],
        "embed": lambda: model.embed(bags),
        "naive": lambda: naive_forward(model, bags),
        "huge": lambda: model(bags).outputs["status"],
    }[what]
    seconds = []
    with torch.inference_mode():
        if what != "huge":
            run()  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - start)
    return {"what": what, "sequences": n, "seconds": statistics.median(seconds), "peak_mb": _peak_mb()}


def _subprocess(what: str, n: int, repeats: int, threads: int, clones: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "--measure", what, "--sequences", str(n),
                             "--repeats", str(repeats), "--threads", str(threads), "--clones", str(clones)],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--huge", type=int, default=10_000_000, help="sequences of the huge bag (0 = skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clones", type=int, default=1000, help="stored CDR3s of the clone-memory model")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.sequences, args.repeats, args.threads, args.clones)))
        return

    # sanity: the model's embedder equals the plain floor computation on these sequences
    torch.set_num_threads(args.threads)
    bags, model = make_bags(20_000), make_model()
    with torch.inference_mode():
        err = (model.embed(bags) - floor_forward(model, bags)).abs().max().item()
    print(f"max |model embedding - plain CNN| on 20,000 sequences: {err:.2e}")

    results = {w: _subprocess(w, args.sequences, args.repeats, args.threads, args.clones)
               for w in ("floor", "model", "memory", "embed", "naive")}
    if args.huge:
        results["huge"] = _subprocess("huge", args.huge, 1, args.threads, args.clones)
    floor = results["floor"]["seconds"]
    print(f"\n{args.sequences:,} sequences, {args.threads} threads, median of {args.repeats}\n")
    print("| what | seconds | x floor | peak memory (VmHWM) |\n|---|---|---|---|")
    names = {"floor": "bare length-bucketed CNN (floor)", "model": "full model forward (embed + pool + head)",
             "memory": f"full model forward with a clone memory of {args.clones:,} CDR3s",
             "embed": "the model's embedder alone", "naive": "naive: padded to global max, dense attention",
             "huge": f"full forward, one bag of {args.huge:,} sequences"}
    for what, r in results.items():
        ratio = f"{r['seconds'] / floor:.2f}" if what != "huge" else "-"
        print(f"| {names[what]} | {r['seconds']:.3f} | {ratio} | {r['peak_mb']:,.0f} MB |")


if __name__ == "__main__":
    main()
