"""Benchmark: does `interpret` rank the implanted sequences first, and find the implanted motif?

One run: simulate a cohort with known truth (`deeprc_hopfield.simulate`), ingest it, split it into
`--folds` stratified folds, train the model on every fold but fold 0 (`deeprc_hopfield.training`,
package defaults unless `--updates`/`--config`), then interpret the held-out fold 0 with
`deeprc_hopfield.interpret.interpret` (every sequence a ranking candidate, so that the whole ranking
is scored) and print:

- the held-out ROC AUC of the model (is there anything to interpret?);
- the share of implanted sequences (`truth/implanted.tsv`, matched on junction_aa) among the top 20
  and top 100 of the cohort ranking, and the average precision of the whole ranking against them
  (the share of implanted sequences among all held-out sequences is the AP of a random ranking);
- whether the top motif of motifs.tsv equals the implanted one, gaps included;
- seconds of `interpret` on the held-out repertoires (the default `--per-repertoire` and every
  sequence), beside the seconds of `predict` on them, the forward pass it cannot do without.

The figures above come from the stored labels of the held-out repertoires (`labels="store"`, what the
workflow gives on a labelled cohort). The same model on the same fold is then interpreted a second
time with `labels="model"` (each repertoire's side is the model's call P >= 0.5, what new patients
without labels get), every sequence a candidate again, and the same figures are printed for it, with
how many held-out repertoires the model's calls put on the wrong side. The second run repeats the
forward pass (its seconds are `interpret_model_calls`).

The defaults (180 repertoires in 3 folds: 120 train, 60 x 5,000 interpreted) are the issue's setting:

    python benchmarks/interpret.py --witness-rate 0.05 --threads 2 --keep /tmp/interpret_bench

With `--keep DIR` the cohort, store and model stay in DIR and a later run with the same options
reuses them (their seconds are then reported as reused).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from accuracy import settings_from, simulated_cohort, timed, with_cohort_defaults
from deeprc_hopfield.infer import predict, subjects_from_store
from deeprc_hopfield.interpret import interpret
from deeprc_hopfield.saved_model import load_model
from deeprc_hopfield.training import train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repertoires", type=int, default=180)
    p.add_argument("--sequences", type=int, default=5_000, help="sequences per repertoire")
    p.add_argument("--witness-rate", type=float, default=0.002)
    p.add_argument("--motif", default="SA.FY", help="the implanted motif; '.' is a gap (SA.FY: in 0.005%% of OLGA TRB backgrounds, GR.DT in 0.23%%)")
    p.add_argument("--folds", type=int, default=3, help="fold 0 is interpreted, the others train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--updates", type=int, help="training updates (default: the package's)")
    p.add_argument("--config", help="training/model YAML passed to train")
    p.add_argument("--threads", type=int, default=2, help="simulate/ingest workers and torch threads")
    p.add_argument("--keep", type=Path, help="work folder to keep (and reuse the cohort and model from)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    args.public_clones, args.public_rate = 0, 0.0  # what accuracy.settings_from reads
    return with_cohort_defaults(args)


def trained_model(store: Path, work: Path, args: argparse.Namespace, seconds: dict) -> Path:
    """Train on every fold but 0, or reuse the model an earlier run with the same options left."""
    model_dir, stamp = work / "model_fold0", work / "model.json"
    wanted = json.dumps({"updates": args.updates, "config": args.config, "seed": args.seed, "folds": args.folds})
    if (model_dir / "config.json").is_file() and stamp.is_file() and stamp.read_text() == wanted:
        seconds["train"] = float("nan")
        return model_dir
    with timed(seconds, "train"):
        train(store, model_dir, config_path=args.config, split=work / "split.csv", fold=0, device="cpu",
              seed=args.seed, n_updates=args.updates, progress=False, force=True)  # a kept earlier model
    stamp.write_text(wanted)
    return model_dir


def ranking_quality(out: Path, implanted: set[str], motif: str) -> dict:
    """Share of implanted sequences among the top 20 and 100 of an interpretation folder's ranking (and
    of sequences carrying the motif, implanted or by chance, anywhere in the CDR3), the average precision
    of the whole ranking, its top motifs, and the repertoires by side."""
    ranked = pd.read_csv(out / "ranked_sequences.tsv", sep="\t")
    motifs = pd.read_csv(out / "motifs.tsv", sep="\t")
    info = json.loads((out / "interpretation.json").read_text())
    hit = ranked["junction_aa"].isin(implanted)
    carrier = ranked["junction_aa"].str.contains(motif, regex=True)  # '.' of the motif: any residue
    top_motif = motifs["motif"].iloc[0] if len(motifs) else None
    return {"label_source": info["label_source"], "positive_subjects": info["positive_subjects"],
            "ranked_sequences": len(ranked), "implanted": int(hit.sum()), "implanted_share_all": float(hit.mean()),
            "implanted_top20": float(hit.head(20).mean()), "implanted_top100": float(hit.head(100).mean()),
            "motif_carriers_top20": float(carrier.head(20).mean()),
            "motif_carriers_top100": float(carrier.head(100).mean()),
            "average_precision": float(average_precision_score(hit, -ranked["rank"])),
            "top_motif": top_motif, "top_motif_matches": top_motif == motif,
            "top_motifs": motifs["motif"].head(5).tolist(),
            "not_implanted_ranks_top20": ranked.loc[~hit.to_numpy() & (ranked["rank"] <= 20), "rank"].tolist(),
            "motif_rows": motifs.head(3)[[c for c in MOTIF_SHOWN if c in motifs.columns]].to_dict("records")}


#: Columns of motifs.tsv printed for the first motifs (why one pattern was listed before another).
MOTIF_SHOWN = ["motif", "support", "repertoires", "log10_p", "positive_fraction", "negative_fraction", "label_log10_p"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = settings_from(args)
    with simulated_cohort(args, "interpret.") as (work, cohort, store, split, seconds):
        held_out = set(split.loc[split["fold"] == 0, "subject_id"])
        model_dir = trained_model(store, work, args, seconds)
        saved = load_model(model_dir)
        with timed(seconds, "predict"):
            predictions, _ = predict([saved], subjects_from_store(store, saved, held_out), torch.device("cpu"))
        with timed(seconds, "interpret_default"):
            interpret(model_dir, store, work / "interpretation_default", subjects=held_out, force=True)
        every = args.sequences * 100  # every sequence a ranking candidate
        with timed(seconds, "interpret_all"):
            out = interpret(model_dir, store, work / "interpretation", subjects=held_out, per_repertoire=every,
                            labels="store", force=True)
        with timed(seconds, "interpret_model_calls"):
            out_calls = interpret(model_dir, store, work / "interpretation_model_calls", subjects=held_out,
                                  per_repertoire=every, labels="model", force=True)
        truth = pd.read_csv(cohort / "truth" / "implanted.tsv", sep="\t", dtype=str)
        implanted = set(truth.loc[truth["subject_id"].isin(held_out), "junction_aa"])
        stored, calls = (ranking_quality(o, implanted, args.motif) for o in (out, out_calls))
    positive = set(predictions.loc[predictions["true_label"].astype(str) == "1", "subject_id"].astype(str))
    called = set(calls.pop("positive_subjects"))
    wrong = {"false_positive": len(called - positive), "false_negative": len(positive - called)}
    stored.pop("positive_subjects")
    result = {
        "held_out_repertoires": len(held_out), "ranked_sequences": stored["ranked_sequences"],
        "model_auc": float(roc_auc_score(predictions["true_label"].astype(str) == "1", predictions["probability"])),
        **{k: stored[k] for k in ("implanted_share_all", "implanted_top20", "implanted_top100", "average_precision",
                                  "top_motif")},
        "implanted_motif": args.motif, "top_motif_matches": stored["top_motif_matches"],
        "top_motifs": stored["top_motifs"],
        "stored_labels": stored, "model_calls": calls,
        "held_out_positive": len(positive), "model_calls_positive": len(called),
        "model_calls_wrong": sum(wrong.values()), **wrong,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    print(f"cohort: {settings}")
    print(f"held out: {len(held_out)} repertoires x {args.sequences}, {stored['ranked_sequences']} ranked sequences, "
          f"{stored['implanted']} implanted ({stored['implanted_share_all']:.4f} of them: the AP of a random ranking)")
    print(f"held-out AUC of the model: {result['model_auc']:.3f}")
    _print_quality(stored, args.motif)
    print(f"with the model's calls (labels='model'): {len(called)} positive, {len(held_out) - len(called)} negative "
          f"(stored: {len(positive)} / {len(held_out) - len(positive)}); {result['model_calls_wrong']} of "
          f"{len(held_out)} calls wrong ({wrong['false_positive']} false positive, {wrong['false_negative']} false "
          "negative)")
    _print_quality(calls, args.motif, "  ")
    print(f"{'labels':<12} {'top 20':>6} {'top 100':>7} {'AP':>6} {'carriers top 20/100':>19}  top motif")
    for name, quality in (("stored", stored), ("model calls", calls)):
        print(f"{name:<12} {quality['implanted_top20']:>6.2f} {quality['implanted_top100']:>7.2f} "
              f"{quality['average_precision']:>6.3f} {quality['motif_carriers_top20']:>14.2f} / "
              f"{quality['motif_carriers_top100']:.2f}  {quality['top_motif']} "
              f"({'match' if quality['top_motif_matches'] else 'NO match'})")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()) + " (nan = reused); "
          f"torch threads {args.threads}; load average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))
    return 0


def _print_quality(quality: dict, motif: str, indent: str = "") -> None:
    print(f"{indent}implanted among the top 20: {quality['implanted_top20']:.2f}, top 100: "
          f"{quality['implanted_top100']:.2f}, average precision of the whole ranking: "
          f"{quality['average_precision']:.3f}")
    print(f"{indent}carriers of {motif} (implanted or by chance) among the top 20: "
          f"{quality['motif_carriers_top20']:.2f}, top 100: {quality['motif_carriers_top100']:.2f}")
    print(f"{indent}top motif: {quality['top_motif']} (implanted {motif}: "
          f"{'match' if quality['top_motif_matches'] else 'NO match'}); next: {', '.join(quality['top_motifs'][1:])}")
    print(f"{indent}ranks of the top 20 that are not implanted: {quality['not_implanted_ranks_top20'] or 'none'}")
    for row in quality["motif_rows"]:
        print(f"{indent}  motif " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in row.items()))


if __name__ == "__main__":
    sys.exit(main())
