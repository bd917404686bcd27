"""Benchmark: the model on CUDA against the CPU, in one command (prints "no GPU" and stops without one).

- predict: one bag of `--sequences` random CDR3-like sequences through the default model's full
  forward (`benchmarks/infer.py`'s `make_bags`/`make_model`), on the CPU with `--threads` threads, on
  CUDA in float32 and under bfloat16 autocast; median seconds of `--repeats`, sequences/s, the ratio
  to the CPU, peak GPU memory, and the largest difference of the probability from the CPU's;
- train: median seconds per training update with the default training settings (4 repertoires x
  10,000 sampled sequences, top 10% back-propagated) on a small simulated cohort
  (`benchmarks/train.py`'s `make_store`), on the CPU and on CUDA (mixed precision, as `precision: auto`).

    python benchmarks/gpu.py [--sequences 300000] [--repeats 5] [--updates 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from infer import make_bags, make_model  # noqa: E402
from train import make_store, time_steps  # noqa: E402

from deeprc_hopfield.devices import autocast  # noqa: E402
from deeprc_hopfield.store import RepertoireStore  # noqa: E402
from deeprc_hopfield.training import Trainer, TrainingConfig  # noqa: E402
from deeprc_hopfield.training.config import tasks_from_store  # noqa: E402


def _timed_forward(model: torch.nn.Module, bags, device: torch.device, dtype: torch.dtype | None,
                   repeats: int) -> tuple[float, float]:
    """Median seconds of the forward pass and the probability of the last one."""
    times = []
    with torch.inference_mode(), autocast(device, dtype):
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            logit = model(bags).outputs["status"]
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), float(torch.sigmoid(logit.float()).cpu())


def predict_rows(n: int, repeats: int) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    bags = make_bags(n)
    model = make_model()
    reference, p_cpu = _timed_forward(model, bags, cpu, None, repeats)
    print(f"predict, one bag of {n:,} sequences (median of {repeats})")
    print(f"  cpu float32           {reference:7.3f} s  {n / reference:12,.0f} seq/s")
    model, bags = model.to(cuda), bags.to(cuda)
    for name, dtype in (("float32", None), ("bfloat16 autocast", torch.bfloat16)):
        torch.cuda.reset_peak_memory_stats()
        seconds, p = _timed_forward(model, bags, cuda, dtype, repeats)
        print(f"  cuda {name:17s} {seconds:7.3f} s  {n / seconds:12,.0f} seq/s  {reference / seconds:6.1f}x the cpu  "
              f"peak {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB  |p - p_cpu| {abs(p - p_cpu):.2e}")


def train_rows(updates: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = RepertoireStore(make_store(Path(tmp), 12, 10_000))
        tasks, labels = tasks_from_store(store, None)
        seconds = {}
        for device in (torch.device("cpu"), torch.device("cuda")):
            trainer = Trainer(store, Path(tmp) / device.type, tasks, labels, np.arange(len(store)), {},
                              TrainingConfig(), device)
            seconds[device.type] = time_steps(Trainer.step, trainer, updates)
        cfg = TrainingConfig()
        print(f"train, {cfg.repertoires_per_update} x {cfg.sample_size:,} sampled sequences per update "
              f"(median of {updates})")
        print(f"  cpu  {seconds['cpu']:7.3f} s per update")
        print(f"  cuda {seconds['cuda']:7.3f} s per update ({seconds['cpu'] / seconds['cuda']:.1f}x the cpu, "
              f"mixed precision: precision auto)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no GPU: torch sees no CUDA device; nothing measured")
        return
    torch.set_num_threads(args.threads)
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, cpu threads {args.threads}")
    predict_rows(args.sequences, args.repeats)
    train_rows(args.updates)


if __name__ == "__main__":
    main()
