"""Benchmark: what the pgen filter of the public-clone test buys on small simulated cohorts.

For each cohort (`--cohorts`, repertoires x sequences per repertoire, default 100 x 5,000 and 150 x
5,000) and cohort seed (`--seeds`): simulate a cohort with `--public-clones` disease clones, each
carried by a positive with probability `--public-rate` (`deeprc_hopfield.simulate`, made, ingested
and split by the functions of `benchmarks/accuracy.py`); build the clone incidence from the store
as the baseline does (`deeprc_hopfield.baselines.read_features`), with each column's junction and
V family read from the store's repertoires; then for each of the 5 folds fit the public-clone test
on the other folds twice, without and with the pgen filter (`PublicCloneTest.fit(..., pgen=...)`,
OLGA pgen of the clone's junction and V family, `deeprc_hopfield.pgen`), and score the held-out
fold (ROC AUC of the associated-clone count). Also reported per fold: the chosen p threshold and
pgen cutoff, the associated clones and how many of them are planted disease clones (truth), the
candidates whose pgen was computed and the seconds spent in OLGA.

    python benchmarks/pgen_filter.py [--cohorts 100x5000 150x5000] [--public-clones 20]
        [--public-rate 0.15] [--seeds 0 1 2] [--threads 2] [--out benchmarks/results/pgen_filter]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import LABEL, simulated_cohort  # noqa: E402  (benchmarks/ is not a package)
from accuracy import parse_args as accuracy_options  # noqa: E402

from deeprc_hopfield.encoding import decode  # noqa: E402
from deeprc_hopfield.genes import gene_family  # noqa: E402
from deeprc_hopfield.pgen import chain_of_genes, pgen_model  # noqa: E402
from deeprc_hopfield.public_clones import (  # noqa: E402
    PublicCloneTest,
    clone_incidence,
    repertoire_clones,
    repertoire_keys,
    resolve_wildcards,
    v_codes,
)
from deeprc_hopfield.store import RepertoireStore  # noqa: E402


def incidence_with_junctions(store_path: Path):  # noqa: ANN201
    """The baseline's clone incidence of a store (as `read_features` builds it), its labels, and the
    junction and V family of each column's clone (from the first sequence with that key; only the
    sequences of shared clones are decoded)."""
    with RepertoireStore(store_path) as store:
        label = store.label(LABEL)
        sets, keys = [], []
        for i in range(len(store)):
            rep = store.repertoire(i)
            sets.append(repertoire_clones(rep, store.v_genes))
            keys.append(repertoire_keys(rep, v_codes(rep, store.v_genes)))
        incidence, shared = clone_incidence(resolve_wildcards(sets))
        found: dict[int, tuple[str, str | None]] = {}
        v_names = np.array(store.v_genes + [None], dtype=object)
        for i, k in enumerate(keys):
            rows = np.flatnonzero(np.isin(k, shared))
            rows = rows[[key not in found for key in k[rows].tolist()]]
            if len(rows):
                rep = store.repertoire(i).subset(rows)
                for key, junction, v in zip(k[rows].tolist(), decode(rep.codes, rep.lengths), v_names[rep.v_index]):
                    found.setdefault(key, (junction, gene_family(v) if isinstance(v, str) else None))
        chain = chain_of_genes(store.v_genes)
    junction = np.array([found[k][0] for k in shared.tolist()], dtype=object)
    v_family = np.array([found[k][1] for k in shared.tolist()], dtype=object)
    return incidence, np.asarray(label.values, dtype=np.int64), junction, v_family, chain


def one_cohort(n: int, sequences: int, seed: int, args: argparse.Namespace) -> list[dict]:
    cohort_args = accuracy_options([])  # accuracy.py's defaults for every cohort option not set here
    for name, value in dict(repertoires=n, sequences=sequences, witness_rate=args.witness_rate, seed=seed,
                            motif=args.motif, public_clones=args.public_clones, public_rate=args.public_rate,
                            threads=args.threads, folds=args.folds, keep=None).items():
        setattr(cohort_args, name, value)
    rows = []
    with simulated_cohort(cohort_args, "pgen_filter.") as (work, cohort, store_path, split, seconds):
        truth = pd.read_csv(cohort / "truth" / "implanted.tsv", sep="\t", dtype=str)
        planted = truth[truth["kind"] == "public_clone"]
        planted = set(zip(planted["junction_aa"], planted["v_call"].map(gene_family)))
        start = time.perf_counter()
        x, y, junction, v_family, chain = incidence_with_junctions(store_path)
        features_s = time.perf_counter() - start
    model = pgen_model(chain)
    is_planted = np.array([(j, v) in planted for j, v in zip(junction, v_family)])
    carriers = np.asarray(x.sum(axis=0)).ravel()

    def pgen(columns: np.ndarray) -> np.ndarray:
        return model.pgen(junction[columns], v_family[columns])

    fold_of = split["fold"].to_numpy()
    for fold in range(args.folds):
        train, test = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        row = {"repertoires": n, "sequences": sequences, "seed": seed, "fold": fold, "n_test": len(test),
               "shared_clones": x.shape[1], "planted_shared": int(is_planted.sum()),
               "chance_clones_7plus_carriers": int(((carriers >= 7) & ~is_planted).sum()),
               "chance_clones_20plus_carriers": int(((carriers >= 20) & ~is_planted).sum()),
               "simulate_s": seconds.get("simulate"),
               "features_s": features_s}
        for name, function in (("none", None), ("pgen", pgen)):
            before, cached = model.seconds, len(model)
            start = time.perf_counter()
            test_fit = PublicCloneTest(random_state=seed).fit(x[train], y[train], pgen=function)
            row[f"{name}_fit_s"] = time.perf_counter() - start
            row[f"{name}_auc"] = roc_auc_score(y[test], test_fit.decision_function(x[test]))
            row[f"{name}_inner_auc"] = test_fit.inner_auc
            row[f"{name}_threshold"] = test_fit.threshold
            row[f"{name}_associated"] = len(test_fit.associated)
            row[f"{name}_associated_planted"] = int(is_planted[test_fit.associated].sum())
            if function is not None:
                row["pgen_cutoff"] = test_fit.pgen_cutoff
                row["pgen_removed"] = test_fit.pgen_removed_
                row["pgen_candidates"] = len(test_fit.pgen_columns_)
                row["pgen_new_sequences"] = len(model) - cached
                row["olga_s"] = model.seconds - before
                candidates, values = test_fit.pgen_columns_, test_fit.pgen_values_
                planted_candidate = is_planted[candidates]
                row["candidates_planted"] = int(planted_candidate.sum())
                row["candidates_chance"] = int((~planted_candidate).sum())
                for kind, which in (("planted", planted_candidate), ("chance", ~planted_candidate)):
                    row[f"{kind}_log10_pgen_median"] = (float(np.median(np.log10(np.maximum(values[which], 1e-30))))
                                                        if which.any() else float("nan"))
                row["chance_above_1e-6"] = int((values[~planted_candidate] > 1e-6).sum())
                row["planted_above_1e-6"] = int((values[planted_candidate] > 1e-6).sum())
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, header=fold == 0), flush=True)
    return rows


def pgen_speed(chain: str, n: int, seed: int = 0) -> dict:
    """Sequences/s of OLGA's pgen on `n` fresh junctions of OLGA's own `chain` model, V marginalised
    and V family given (each on a fresh model, so nothing is cached)."""
    from deeprc_hopfield.pgen import PgenModel
    from deeprc_hopfield.simulate.background import background_model

    drawn = background_model(chain).generate(n, np.random.default_rng(seed))
    out = {"chain": chain, "n": n}
    for name, v in (("marginal", None), ("v_family", list(drawn.v_call))):
        model = PgenModel(chain)
        start = time.perf_counter()
        model.pgen(list(drawn.junction_aa), v)
        out[f"{name}_per_s"] = n / (time.perf_counter() - start)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cohorts", nargs="+", default=["100x5000", "150x5000"],
                   help="cohorts as REPERTOIRESxSEQUENCES (sequences per repertoire)")
    p.add_argument("--public-clones", type=int, default=20)
    p.add_argument("--public-rate", type=float, default=0.15, help="chance that a positive carries a given clone")
    p.add_argument("--witness-rate", type=float, default=1e-4, help="motif implants (the simulator needs some)")
    p.add_argument("--motif", default="SA.FY")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="cohort seeds (also of split and inner CV)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--speed", type=int, default=300, help="junctions per chain of the pgen speed measurement")
    p.add_argument("--speed-chains", nargs="*", default=["TRB", "TRA", "IGH"])
    p.add_argument("--out", type=Path, help="write OUT.txt (the printed table) and OUT.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    for cohort in args.cohorts:
        n, sequences = (int(part) for part in cohort.lower().split("x"))
        for seed in args.seeds:
            rows += one_cohort(n, sequences, seed, args)
    table = pd.DataFrame(rows)
    by = table.groupby(["repertoires", "sequences"])
    summary = by[["none_auc", "pgen_auc", "none_associated", "none_associated_planted",
                                            "pgen_associated", "pgen_associated_planted"]].mean()
    summary["auc_gain"] = summary["pgen_auc"] - summary["none_auc"]
    summary["cutoff_chosen"] = by["pgen_cutoff"].apply(
        lambda c: ", ".join("none" if v is None or pd.isna(v) else f"{v:g}" for v in c))
    text = [f"command: python benchmarks/pgen_filter.py {' '.join(argv if argv is not None else sys.argv[1:])}",
            f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.2f}",
            f"cohorts (repertoires x sequences): {', '.join(args.cohorts)}; {args.public_clones} public clones at rate "
            f"{args.public_rate}, motif {args.motif} at {args.witness_rate}, seeds {args.seeds}, {args.folds} folds",
            "", "per fold:"]
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.precision", 3):
        text += [table.to_string(index=False), "", "mean over folds and seeds:", summary.to_string()]
    olga = table["olga_s"].sum()
    new = table["pgen_new_sequences"].sum()
    text.append(f"\nOLGA pgen: {new} distinct sequences in {olga:.1f} s ({new / max(olga, 1e-9):.0f} sequences/s)")
    speed = [pgen_speed(chain, args.speed if chain != "IGH" else max(args.speed // 10, 1))
             for chain in args.speed_chains]
    if speed:
        text += ["", f"OLGA pgen speed on fresh junctions of OLGA's own models (load average "
                     f"{os.getloadavg()[0]:.2f}):", pd.DataFrame(speed).round(1).to_string(index=False)]
    print("\n".join(text[4:]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".txt").write_text("\n".join(text) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps({"arguments": {k: str(v) if isinstance(v, Path) else v
                                                                          for k, v in vars(args).items()},
                                                            "folds": rows, "pgen_speed": speed},
                                                           indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
