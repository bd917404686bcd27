"""Benchmark: seconds per training update at DeepRC's defaults (4 repertoires x 10,000 sampled
sequences, all scored without gradients, back-propagation through the top 10%), against the simple
way of doing the same update (back-propagation through all 40,000 sampled sequences) in the same run.

    python benchmarks/train.py [--repertoires 12] [--sequences 10000] [--updates 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.model import task_loss
from deeprc_hopfield.simulate import SimulationSettings, simulate
from deeprc_hopfield.store import RepertoireStore
from deeprc_hopfield.training import Trainer, TrainingConfig
from deeprc_hopfield.training.config import tasks_from_store


def make_store(folder: Path, repertoires: int, sequences: int) -> Path:
    settings = SimulationSettings(n_repertoires=repertoires, sequences_per_repertoire=sequences,
                                  witness_rate=0.001, seed=1, motifs=("GR.DT",))
    simulate(settings, folder / "cohort", threads=2)
    return ingest(folder / "cohort" / "metadata.csv", folder / "cohort" / "repertoires", folder / "s.h5",
                  progress=False)


def full_backprop_step(trainer: Trainer) -> None:
    """The reference update: the same sampled sequences, gradients through all of them."""
    from deeprc_hopfield.model import SequenceBags
    from deeprc_hopfield.sampling import sample_indices, update_rng

    cfg = trainer.config
    rng = update_rng(cfg.seed, trainer.progress.update)
    chosen = rng.choice(trainer.fit_idx, size=cfg.repertoires_per_update, replace=False)
    reps = [trainer.cache[int(i)] for i in chosen]
    bags = SequenceBags.from_repertoires([r.subset(sample_indices(r, cfg.sample_size, rng)) for r in reps])
    trainer.model.train()
    loss = task_loss(trainer.model(bags).outputs, trainer._targets(chosen), trainer.tasks)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    trainer.progress.update += 1


def time_steps(step, trainer: Trainer, n: int) -> float:
    step(trainer)  # warm-up
    times = []
    for _ in range(n):
        start = time.perf_counter()
        step(trainer)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repertoires", type=int, default=12)
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        store = RepertoireStore(make_store(Path(tmp), args.repertoires, args.sequences))
        tasks, labels = tasks_from_store(store, None)
        trainer = Trainer(store, Path(tmp) / "m", tasks, labels, np.arange(len(store)), {}, TrainingConfig(),
                          torch.device("cpu"))
        ours = time_steps(Trainer.step, trainer, args.updates)
        reference = time_steps(full_backprop_step, trainer, args.updates)
        cfg = trainer.config
        print(f"update: {cfg.repertoires_per_update} repertoires x {cfg.sample_size:,} sampled sequences, "
              f"{args.threads} threads, median of {args.updates}")
        print(f"scored without gradients, back-prop through top {cfg.top_fraction:.0%}   {ours:.3f} s per update")
        print(f"reference: back-prop through all sampled sequences      {reference:.3f} s per update "
              f"({reference / ours:.1f}x slower)")
        print(f"default run ({cfg.n_updates} updates) without evaluations: {cfg.n_updates * ours / 60:.1f} min")


if __name__ == "__main__":
    main()
