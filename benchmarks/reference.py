"""Benchmark: known receptors (`train --reference`) on a challenge-style cohort, 5 folds.

The cohort (`deeprc_hopfield.simulate` with a signal pool): a list of `--list-size` TRB receptors
(OLGA, gene-level V), of which `--pool-size` form the disease pool; each positive carries a Poisson
number (mean `--per-positive`) of pool receptors, every repertoire a Poisson number (mean
`--per-negative`) of list receptors by chance (`--sharing` law). Each signal receptor then sits in a
few training positives only: too few for the public-clone test or for learning from scratch.

For every fold, the model is trained four times on the same training folds (package defaults unless
`--updates`/`--config`) and scored on the held-out fold:

- `none`: no reference;
- `list`: the list as the reference (what a user exports from a database);
- `unrelated`: another list of as many receptors (another antigen's), which should change nothing;
- `variants`: the list with each receptor replaced by a one-substitution variant of its CDR3 core.

Beside them, the 3-mer regression and the public-clone test on the same split, and the plain count
of distinct list receptors matched (exact) as a score, the ceiling of what the list can give.

    python benchmarks/reference.py --threads 2 --json benchmarks/results/reference.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from accuracy import LABEL, baselines, simulated_cohort, timed
from deeprc_hopfield.baselines import read_features
from deeprc_hopfield.infer import predict, subjects_from_store
from deeprc_hopfield.reference import ReferenceOptions, read_reference
from deeprc_hopfield.saved_model import load_model
from deeprc_hopfield.simulate import SimulationSettings
from deeprc_hopfield.simulate.background import background_model
from deeprc_hopfield.store import RepertoireStore
from deeprc_hopfield.training import train
from deeprc_hopfield.training.reference_fit import matched_receptors, reference_index

CONDITIONS = ("none", "list", "unrelated", "variants")
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def receptor_list(n: int, seed: int) -> pd.DataFrame:
    """`n` distinct TRB receptors from OLGA's model (gene-level V names)."""
    block = background_model("TRB").generate(3 * n, np.random.default_rng(seed))
    table = pd.DataFrame({"junction_aa": block.junction_aa, "v_call": [v.split("*")[0] for v in block.v_call],
                          "j_call": block.j_call}).drop_duplicates("junction_aa")
    return table.head(n).reset_index(drop=True)


def one_substitution(junctions: pd.Series, seed: int) -> list[str]:
    """Each junction with one residue of its core (anchors and their neighbours kept) replaced."""
    rng = np.random.default_rng(seed)
    out = []
    for junction in junctions:
        position = int(rng.integers(2, len(junction) - 2))
        choices = [a for a in AMINO_ACIDS if a != junction[position]]
        out.append(junction[:position] + choices[int(rng.integers(len(choices)))] + junction[position + 1:])
    return out


def write_references(work: Path, listed: pd.DataFrame, seed: int) -> dict[str, Path | None]:
    paths: dict[str, Path | None] = {"none": None}
    listed.assign(epitope="KLVALGINAV", antigen="HCV").to_csv(work / "list_reference.tsv", sep="\t", index=False)
    paths["list"] = work / "list_reference.tsv"
    unrelated = receptor_list(len(listed) * 2, seed + 1000)
    unrelated = unrelated[~unrelated["junction_aa"].isin(listed["junction_aa"])].head(len(listed))
    unrelated.assign(epitope="GILGFVFTL", antigen="InfluenzaA").to_csv(work / "unrelated_reference.tsv", sep="\t",
                                                                       index=False)
    paths["unrelated"] = work / "unrelated_reference.tsv"
    variants = listed.assign(junction_aa=one_substitution(listed["junction_aa"], seed), epitope="KLVALGINAV",
                             antigen="HCV")
    variants.to_csv(work / "variants_reference.tsv", sep="\t", index=False)
    paths["variants"] = work / "variants_reference.tsv"
    return paths


def list_counts(store_path: Path, listed: Path) -> np.ndarray:
    """Distinct list receptors each repertoire carries (exact), the plain count score."""
    index = reference_index(read_reference(listed), 1)
    with RepertoireStore(store_path) as store:
        return np.array([matched_receptors(index, store.repertoire(i), store.v_genes)[0] for i in range(len(store))])


def model_auc(store: Path, work: Path, split_csv: Path, fold: int, test_ids: set[str], truth: dict,
              reference: Path | None, condition: str, args: argparse.Namespace) -> dict:
    model_dir = work / f"model_{condition}_fold{fold}"
    started = time.perf_counter()
    train(store, model_dir, config_path=args.config, split=split_csv, fold=fold, device="cpu", seed=args.seed,
          n_updates=args.updates, progress=False, force=True,
          reference=ReferenceOptions(reference) if reference is not None else None)
    seconds = time.perf_counter() - started
    saved = load_model(model_dir)
    predictions, _ = predict([saved], subjects_from_store(store, saved, only=test_ids), torch.device("cpu"))
    auc = roc_auc_score([truth[s] for s in predictions["subject_id"]], predictions["probability"])
    recorded = saved.training.get("reference") or {}
    return {f"{condition}_auc": auc, f"{condition}_train_s": seconds,
            f"{condition}_used": recorded.get("used"), f"{condition}_radius": recorded.get("radius")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repertoires", type=int, default=150)
    p.add_argument("--sequences", type=int, default=10_000)
    p.add_argument("--list-size", type=int, default=500)
    p.add_argument("--pool-size", type=int, default=160)
    p.add_argument("--per-positive", type=float, default=10.0)
    p.add_argument("--per-negative", type=float, default=1.0)
    p.add_argument("--sharing", default="uniform", choices=("uniform", "zipf", "pgen"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--updates", type=int, help="training updates (default: the package's)")
    p.add_argument("--config", help="training/model YAML passed to train")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--keep", type=Path, help="work folder to keep (and reuse the cohort from)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    # what accuracy.simulated_cohort reads
    args.witness_rate, args.motif, args.public_clones, args.public_rate = 0.0, "", 0, 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    conditions = args.conditions.split(",")
    work_list = Path(args.keep or tempfile.mkdtemp(prefix="reference_list."))  # the list outlives the cohort's folder
    work_list.mkdir(parents=True, exist_ok=True)
    listed = receptor_list(args.list_size, args.seed + 500)
    listed.to_csv(work_list / "signal_list.tsv", sep="\t", index=False)
    args.settings = SimulationSettings(
        n_repertoires=args.repertoires, sequences_per_repertoire=args.sequences, witness_rate=0.0, seed=args.seed,
        signal_pool=str(work_list / "signal_list.tsv"), pool_size=args.pool_size,
        receptors_per_positive=args.per_positive, receptors_per_negative=args.per_negative,
        pool_sharing=args.sharing, nucleotides=False)
    with simulated_cohort(args, "reference.") as (work, cohort, store, split, seconds):
        references = write_references(work, listed, args.seed)
        with timed(seconds, "features"):
            features = read_features(store, LABEL, ("kmer", "public_clones"))
        counts = list_counts(store, references["list"])
        y, ids = features.y, split["subject_id"].to_numpy()
        truth = dict(zip(ids, y))
        rows = []
        for fold in range(args.folds):
            test_idx = np.flatnonzero(split["fold"].to_numpy() == fold)
            train_idx = np.flatnonzero(split["fold"].to_numpy() != fold)
            row = {"fold": fold, "n_test": len(test_idx),
                   "list_count_auc": roc_auc_score(y[test_idx], counts[test_idx])}
            row.update(baselines(features, train_idx, test_idx, args.seed, {}))
            for condition in conditions:
                row.update(model_auc(store, work, work / "split.csv", fold, set(ids[test_idx]), truth,
                                     references[condition], condition, args))
            rows.append(row)
            print(json.dumps(row, default=float), flush=True)
        table = pd.DataFrame(rows)
        positives, negatives = counts[y == 1], counts[y == 0]
        print(f"cohort: {args.settings}")
        print(f"list receptors carried (exact): positives {positives.mean():.2f}, negatives {negatives.mean():.2f}")
        keep = ["fold", "list_count_auc", "kmer_l1_auc", "public_clone_auc", *[f"{c}_auc" for c in conditions]]
        with pd.option_context("display.width", 200, "display.precision", 3):
            print(table[keep].to_string(index=False))
            print("mean over folds:")
            print(table.drop(columns="fold").mean(numeric_only=True).round(3).to_string())
        result = {"settings": args.settings.as_dict(), "seconds": seconds, "folds": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
