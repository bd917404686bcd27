"""No leak through the whole training path: with permuted labels, cross-validated AUC is at chance.

The cohort carries strong signals (public clones and a motif), so every data-driven step has
something to pick up: the filter seeding, the clone rule and the clone memory (its AUC gate lowered
to 0.5 so it is filled whenever the test finds anything), the memory-versus-model selection. With
the true labels the same path separates the held-out repertoires; with the labels permuted, only a
step that read the held-out fold could.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import simulated_store
from sklearn.metrics import roc_auc_score

from deeprc_hopfield.infer import predict, subjects_from_store
from deeprc_hopfield.ingest import ingest
from deeprc_hopfield.saved_model import load_model
from deeprc_hopfield.simulate import SimulationSettings
from deeprc_hopfield.training import train

TRAINING = {"n_updates": 30, "evaluate_every": 10, "checkpoint_every": 30, "sample_size": 300,
            "repertoires_per_update": 4, "clone_memory_min_auc": 0.5, "seed_sample": 300}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """48 repertoires x 300 sequences: 8 public clones (each in a positive with p = 0.7) and GRDT in 3%."""
    return simulated_store(tmp_path_factory.mktemp("leak"), SimulationSettings(
        n_repertoires=48, sequences_per_repertoire=300, witness_rate=0.03, seed=11, motifs=("GRDT",),
        public_clones=8, public_rate=0.7, nucleotides=False))


def _permuted_store(cohort: dict, root) -> tuple:
    """The same repertoires with their labels permuted (seeded), ingested into a store of their own."""
    meta = pd.read_csv(cohort["metadata"])
    meta["label"] = np.random.default_rng(0).permutation(meta["label"].to_numpy())
    metadata = root / "permuted.csv"
    meta.to_csv(metadata, index=False)
    return ingest(metadata, cohort["repertoires"], root / "permuted.h5", progress=False), meta


def _cross_validated(store, meta: pd.DataFrame, split, root) -> tuple[float, list[dict]]:
    """Pooled held-out ROC AUC over the split's folds, and each fold model's training record."""
    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"training": TRAINING}))
    folds = pd.read_csv(split, dtype={"subject_id": str})
    scores, records = [], []
    for fold in sorted(folds["fold"].unique()):
        model_dir = train(store, root / f"model{fold}", config, split=split, fold=int(fold), device="cpu",
                          progress=False, force=True)
        held_out = set(folds.loc[folds["fold"] == fold, "subject_id"])
        saved = load_model(model_dir)
        predictions, _ = predict([saved], subjects_from_store(store, saved, only=held_out), torch.device("cpu"))
        scores.append(predictions)
        records.append(json.loads((model_dir / "config.json").read_text())["training"])
    pooled = pd.concat(scores)
    truth = dict(zip(meta["subject_id"].astype(str), meta["label"].astype(bool)))
    return roc_auc_score([truth[s] for s in pooled["subject_id"]], pooled["probability"]), records


@pytest.mark.slow
def test_permuted_labels_give_chance_auc_through_the_whole_training_path(cohort, tmp_path):
    true_auc, true_records = _cross_validated(cohort["store"], cohort["meta"], cohort["split"], tmp_path / "true")
    assert true_auc >= 0.9  # the path does learn these signals
    assert any(r["memory_clones"] for r in true_records)
    store, meta = _permuted_store(cohort, tmp_path)
    permuted_auc, records = _cross_validated(store, meta, cohort["split"], tmp_path / "permuted")
    assert all(r["seeded_kmers"] for r in records)  # the seeding ran on the permuted labels too
    assert 0.25 <= permuted_auc <= 0.75, f"held-out AUC {permuted_auc:.3f} with permuted labels"
