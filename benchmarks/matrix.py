"""Benchmark matrix: held-out accuracy on every kind of signal, all folds, re-made by one command.

Each row is a simulated cohort (`deeprc_hopfield.simulate`) on which `accuracy.py`'s fold loop runs
every fold: the model trained at the package's defaults on the other folds (with a reference of
known receptors where the row says so), and beside it the 3-mer regression and the public-clone
test fitted on the same training folds. Per row it writes the raw per-fold results to
`benchmarks/results/matrix/<row>.json`, then rebuilds the matrix table in `benchmarks/RESULTS.md`
(between its `matrix` markers) from every row file there, so rows run at different times add up.

    python benchmarks/matrix.py --threads 2                  # every row (hours on 2 cores)
    python benchmarks/matrix.py --rows clones,clones-v-noise  # some rows
    python benchmarks/matrix.py --table                      # only rebuild the table
    make benchmarks                                          # every row, from a fresh venv

Goals checked per row (mean of folds): model AUC >= the better baseline (the 150-subject public-clone
row: >= the public-clone test + 0.05); recall@20 >= 0.8 on motif rows (each signal); on the mixed
row also >= the model trained with its clone memory off (issue 13, item 4); issue 15's reference
rows: list >= 0.95, an unrelated reference within 0.02 of none, variants >= 0.90.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from accuracy import LABEL, baselines, evaluate_fold, simulated_cohort, timed, train_and_predict
from deeprc_hopfield.baselines import read_features
from deeprc_hopfield.simulate import SimulationSettings, parse_motifs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "matrix"
RESULTS_MD = HERE / "RESULTS.md"
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"
MOTIF_RATES = {"0.1%": 0.001, "0.2%": 0.002}


@dataclass
class Row:
    """One cohort of the matrix: simulation settings, an optional reference (`reference.py`'s list
    kinds), and what it is checked against."""

    name: str
    what: str
    settings: dict
    reference: str | None = None  # none | list | unrelated | variants (a signal-pool cohort)
    goal: str = "best"  # best: >= the better baseline; clones+0.05; recall; or a reference goal
    recall: bool = False
    extra: dict = field(default_factory=dict)
    pure: bool = False  # also train with the clone memory off (item 4's motif-only pure model)


COHORT = {"n_repertoires": 200, "sequences_per_repertoire": 5000, "seed": 0, "nucleotides": False}
CLONES = {**COHORT, "witness_rate": 0.0001, "motifs": ("GR.DT",), "public_clones": 20, "public_rate": 0.3}
POOL = {"n_repertoires": 150, "sequences_per_repertoire": 10_000, "seed": 0, "nucleotides": False,
        "witness_rate": 0.0, "pool_size": 160, "receptors_per_positive": 10.0,
        "receptors_per_negative": 1.0, "pool_sharing": "uniform"}
#: Real CMV-specific TRB receptors (the VDJdb extract the package ships) in ~0.2% of a positive's sequences.
CMV = {**COHORT, "witness_rate": 0.0, "signal_pool": "vdjdb-cmv-trb", "receptors_per_positive": 10.0,
       "receptors_per_negative": 1.0, "pool_sharing": "zipf", "public_v_noise": 0.5}
ROWS = {row.name: row for row in [
    Row("motif-0.1", "motif SA.FY at 0.1%", {**COHORT, "witness_rate": 0.001, "motifs": ("SA.FY",)}, recall=True),
    Row("motif-0.2", "motif SA.FY at 0.2%", {**COHORT, "witness_rate": 0.002, "motifs": ("SA.FY",)}, recall=True),
    Row("two-motifs-0.1", "motifs SA.FY + KW.DL at 0.1%",
        {**COHORT, "witness_rate": 0.001, "motifs": ("SA.FY", "KW.DL")}, recall=True),
    Row("two-motifs-0.2", "motifs SA.FY + KW.DL at 0.2%",
        {**COHORT, "witness_rate": 0.002, "motifs": ("SA.FY", "KW.DL")}, recall=True),
    Row("clones", "20 public clones, each in a positive with p = 0.3", CLONES),
    Row("clones-v-noise", "the same, half of the occurrences with another, family-only or missing V call",
        {**CLONES, "public_v_noise": 0.5}),
    Row("clones-neighbours", "the same, each clone a family of 5 one-substitution variants",
        {**CLONES, "public_variants": 5}),
    Row("mixed", "half the positives carry clones only, half the motif SA.FY (0.2%) only",
        {**CLONES, "witness_rate": 0.002, "motifs": ("SA.FY",), "mixed_positives": 0.5}, pure=True),
    Row("clones-150", "150 subjects, 20 clones at p = 0.2, V noise 0.5",
        {**CLONES, "n_repertoires": 150, "public_rate": 0.2, "public_v_noise": 0.5}, goal="clones+0.05"),
    Row("clones-150-rough", "150 subjects, 20 clones at p = 0.2, V noise 0.5, each a family of 5 one-substitution "
        "variants", {**CLONES, "n_repertoires": 150, "public_rate": 0.2, "public_v_noise": 0.5, "public_variants": 5},
        goal="clones+0.05"),
    Row("cmv-vdjdb", "real CMV-specific TRB receptors (the VDJdb extract: 212 CDR3 + V + J): ~10 per positive (0.2%), Zipf sharing, "
        "~1 per repertoire by chance, V noise 0.5", CMV),
    Row("cmv-vdjdb-150", "the same, 150 subjects", {**CMV, "n_repertoires": 150}),
    Row("cmv-vdjdb-rare", "150 subjects, the same receptors shared uniformly: each in ~5% of the positives",
        {**CMV, "n_repertoires": 150, "pool_sharing": "uniform"}),
    Row("reference-none", "150 x 10,000, ~10 of a 160-receptor pool per positive; no reference", POOL,
        reference="none", goal="none"),
    Row("reference-list", "the same, the 500-receptor list as the reference", POOL, reference="list",
        goal="list"),
    Row("reference-unrelated", "the same, an unrelated 500-receptor reference", POOL, reference="unrelated",
        goal="unrelated"),
    Row("reference-variants", "the same, the list as one-substitution variants", POOL, reference="variants",
        goal="variants"),
]}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{os.cpu_count()} CPUs ({cpu}), torch {torch.__version__}, Python {platform.python_version()}"


def commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=HERE, capture_output=True, text=True).stdout.strip()
    code = git("status", "--porcelain", "--untracked-files=no", "--", "../deeprc_hopfield", "*.py")
    return git("rev-parse", "--short", "HEAD") + ("+changes" if code else "")  # results written here do not count


def run_row(row: Row, args: argparse.Namespace) -> dict:
    """Every fold of one row; returns (and writes) its raw results."""
    from reference import write_references  # its list and references (issue 15)

    started = time.perf_counter()
    work = args.work / row.name
    work.mkdir(parents=True, exist_ok=True)
    ns, listed = row_namespace(row, args)
    rows = []
    with simulated_cohort(ns, "matrix.") as (cohort_work, cohort, store, split, seconds):
        if row.reference not in (None, "none"):
            ns.reference = write_references(work, pd.read_csv(listed, sep="\t"),
                                            args.seed)[row.reference]
        truth = pd.read_csv(cohort / "truth" / "implanted.tsv", sep="\t", dtype=str)
        with timed(seconds, "features"):
            features = read_features(store, LABEL, ("kmer", "public_clones"))
        for fold in args.fold_list or range(args.folds):
            result = evaluate_fold(fold, split, features, store, cohort_work, truth, ns)
            if row.pure:
                result["memory_off_auc"] = memory_off_auc(fold, split, store, cohort_work, ns,
                                                          dict(zip(features.subject_ids, features.y)))
            print(json.dumps({"row": row.name, **result}, default=str), flush=True)
            rows.append(result)
    out = {"row": row.name, "what": row.what, "settings": ns.settings.as_dict(), "reference": row.reference,
           "goal": row.goal, "recall_goal": row.recall, "folds": rows, "seconds": seconds,
           "wall_s": time.perf_counter() - started, "commit": commit(), "machine": machine(),
           "date": time.strftime("%Y-%m-%d"), "load_average": os.getloadavg()[0],
           "command": "python benchmarks/matrix.py --rows " + row.name + f" --threads {args.threads}"
               + (f" --fold-list {','.join(map(str, args.fold_list))}" if args.fold_list else "")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{row.name}.json").write_text(json.dumps(out, indent=1, default=str))
    return out


def row_namespace(row: Row, args: argparse.Namespace) -> tuple[argparse.Namespace, Path]:
    """What `accuracy.simulated_cohort` and `evaluate_fold` take for a row, and the reference rows' list
    (written, as their cohort's signal pool)."""
    from reference import receptor_list

    settings = dict(row.settings)
    if "motifs" in settings:
        settings["motifs"] = parse_motifs(",".join(settings["motifs"])) if settings["motifs"] else ()
    listed = args.work / "signal_list.tsv"  # one list for every reference row, so they share their cohort
    if row.reference is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        receptor_list(500, args.seed + 500).to_csv(listed, sep="\t", index=False)
        settings["signal_pool"] = str(listed)
    ns = argparse.Namespace(settings=SimulationSettings(**settings), keep=args.work / f"cohort-{_cohort_id(row)}",
                            threads=args.threads, folds=args.folds, seed=args.seed, config=None, updates=None,
                            top=20, reference=None)
    return ns, listed


def rerun_baselines(row: Row, args: argparse.Namespace) -> dict:
    """A row's baseline columns re-made at the current commit on the same cohort and folds, its model's kept:
    for a change to the baselines alone (the row keeps its model's commit; the table names both)."""
    path = RESULTS / f"{row.name}.json"
    if not path.is_file():
        print(f"{row.name}: no row file yet, nothing to re-make (run the row first)", flush=True)
        return {}
    out = json.loads(path.read_text())
    ns, _ = row_namespace(row, args)
    if json.loads(json.dumps(ns.settings.as_dict())) != out["settings"]:
        raise SystemExit(f"{row.name}: the row's cohort settings changed since its model ran; run the whole row")
    with simulated_cohort(ns, "matrix.") as (_, _, store, split, _):
        features = read_features(store, LABEL, ("kmer", "public_clones"))
        fold_of = split["fold"].to_numpy()
        for result in [r for r in out["folds"] if not args.fold_list or r["fold"] in args.fold_list]:
            seconds: dict = {}
            test, train = np.flatnonzero(fold_of == result["fold"]), np.flatnonzero(fold_of != result["fold"])
            result.update(baselines(features, train, test, args.seed, seconds),
                          kmer_lr_s=seconds["kmer_lr"], public_clone_s=seconds["public_clone"])
            print(json.dumps({"row": row.name, "baselines_only": True, **result}, default=str), flush=True)
    out.update(baselines_commit=commit(), baselines_date=time.strftime("%Y-%m-%d"),
               baselines_command=f"python benchmarks/matrix.py --baselines-only --rows {row.name} "
                                 f"--threads {args.threads}")
    path.write_text(json.dumps(out, indent=1, default=str))
    return out


def memory_off_auc(fold: int, split: pd.DataFrame, store: Path, cohort_work: Path, ns: argparse.Namespace,
                   label_of: dict[str, int]) -> float:
    """Held-out ROC AUC of the model trained with `clone_memory: false` on the same fold: the pure model
    without clones. (The pure memory-alone model is the public-clone test: one implementation, and
    a memory alone is refit on all training repertoires as the test is.)"""
    work = cohort_work / "memory_off"
    work.mkdir(exist_ok=True)
    config = work / "config.yaml"
    config.write_text("training: {clone_memory: false}\n")
    test_ids = set(split["subject_id"][split["fold"] == fold])
    predictions, _, _ = train_and_predict(store, work, cohort_work / "split.csv", fold,
                                          argparse.Namespace(**{**vars(ns), "config": str(config)}), test_ids, {})
    return float(roc_auc_score([label_of[s] for s in predictions["subject_id"]], predictions["probability"]))


def _cohort_id(row: Row) -> str:
    """Rows on the same cohort (the reference rows) share its folder, so it is simulated once."""
    return row.name.split("-")[0] if row.reference is not None else row.name


# --- the table ------------------------------------------------------------------------------------
def summarise(result: dict) -> dict:
    folds = pd.DataFrame(result["folds"])
    mean = folds.mean(numeric_only=True)
    recalls = {c[len("recall_"):]: mean[c] for c in folds if c.startswith("recall_")}
    used = folds["memory_clones"] > 0 if "memory_clones" in folds else pd.Series(False, index=folds.index)
    rules = (folds["clone_rule"].where(used).dropna().value_counts() if "clone_rule" in folds
             else pd.Series(dtype=int))
    return {"row": result["row"], "what": result["what"], "model": mean["model_auc"], "kmer": mean["kmer_l1_auc"],
            "clones": mean["public_clone_auc"], "plain": mean.get("plain_clone_auc", np.nan),
            "model_sd": folds["model_auc"].std(),
            "recall": mean.get("recall", np.nan), "recalls": recalls, "goal": result["goal"],
            "recall_goal": result.get("recall_goal", False), "memory_off": mean.get("memory_off_auc", np.nan),
            "rule": "; ".join([", ".join(f"{r} ({n})" for r, n in rules.items())] * bool(len(rules))
                              + [f"memory empty ({int((~used).sum())})"] * bool((~used).any())) or "-",
            "memory_alone": int(folds.get("memory_alone", pd.Series(dtype=bool)).fillna(False).astype(bool).sum()),
            "train_s": float(folds["train_s"].median()), "n_folds": len(folds),
            "commit": result["commit"] + (f"; baselines {result['baselines_commit']}"
                                          if result.get("baselines_commit") else ""),
            "date": result["date"], "machine": result["machine"], "command": result["command"],
            "pooled": pooled_calls(result["folds"])}


def pooled_calls(folds: list[dict]) -> str:
    """The model's held-out calls of every fold pooled, as `evaluate` gives them: ROC AUC with its 95% interval,
    then the calibration intercept / slope ('-' for rows run before the calls were kept)."""
    from deeprc_hopfield.evaluate import auc_text, calibration_text, fold_metrics, uncertainty

    if not folds or any("calls" not in f for f in folds):
        return "-"
    calls = np.array([call[1:] for fold in folds for call in fold["calls"]], dtype=np.float64)
    y, p = calls[:, 0].astype(np.int64), calls[:, 1]
    row = {**fold_metrics(y, p), **uncertainty(y, p), "constant": bool(np.ptp(p) == 0)}
    return f"{auc_text(row)}; {calibration_text(row)}"


def goal_met(s: dict, by_row: dict[str, dict]) -> str:
    best = max(s["kmer"], s["clones"])
    checks = []
    if s["goal"] == "best":
        checks.append(("AUC >= best baseline", s["model"] >= best - 1e-9))
    elif s["goal"] == "clones+0.05":
        checks.append(("AUC >= test + 0.05", s["model"] >= s["clones"] + 0.05))
        if not np.isnan(s["plain"]):
            checks.append(("AUC >= Emerson's test + 0.05", s["model"] >= s["plain"] + 0.05))
    elif s["goal"] == "list":
        checks.append(("AUC >= 0.95", s["model"] >= 0.95))
    elif s["goal"] == "variants":
        checks.append(("AUC >= 0.90", s["model"] >= 0.90))
    elif s["goal"] == "unrelated" and "reference-none" in by_row:
        checks.append(("within 0.02 of none", abs(s["model"] - by_row["reference-none"]["model"]) <= 0.02))
    if not np.isnan(s["memory_off"]):
        checks.append((f"AUC >= memory off ({s['memory_off']:.3f})", s["model"] >= s["memory_off"] - 1e-9))
    if s["recall_goal"]:
        checks.append(("recall@20 >= 0.8", all(v >= 0.8 for v in s["recalls"].values()) and s["recall"] >= 0.8))
    if not checks:
        return "-"
    return "; ".join(f"{name}: {'**yes**' if ok else 'no'}" for name, ok in checks)


def table() -> str:
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    summaries = {r["row"]: summarise(r) for r in results}
    lines = ["| row | cohort | model AUC (sd; folds) | 3-mer | public-clone test | Emerson's test | recall@20 (per signal) "
             "| memory's clone rule (folds) | goal met | train s/fold (median) | model pooled: AUC (95% CI); calibration "
             "intercept / slope |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ROWS:
        s = summaries.get(name)
        if s is None:
            lines.append(f"| {name} | {ROWS[name].what} | not run yet | | | | | | | | |")
            continue
        recalls = ", ".join(f"{k} {v:.2f}" for k, v in s["recalls"].items())
        lines.append(f"| {name} ({s['commit']}) | {s['what']} | **{s['model']:.3f}** ({s['model_sd']:.3f}; {s['n_folds']}) | {s['kmer']:.3f} | "
                     f"{s['clones']:.3f} | {_auc(s['plain'])} | {s['recall']:.2f} ({recalls}) | {s['rule']} | {goal_met(s, summaries)} | "
                     f"{s['train_s']:.0f} | {s['pooled']} |")
    runs = sorted({(s["commit"], s["date"], s["machine"]) for s in summaries.values()})
    notes = [f"- rows of commit {c}, {d}, on {m}" for c, d, m in runs] + [
        "- each row names the commit it ran at: a row of an older commit predates later changes to the code and is "
        "stale where those changes touch its path (see the session notes below the table); \"baselines C\": the "
        "baseline columns re-made at commit C (`--baselines-only`, after a change to the baselines alone), the "
        "model's from the row's commit"]
    return "\n".join(lines + [""] + notes + [
        "- public-clone test: the package's `public_clones` baseline (clone rule, p threshold and pgen cutoff "
        "chosen by inner CV; the same implementation as the clone memory); Emerson's test: the same test with one "
        "key as Emerson et al. 2017 used it (CDR3 + V gene, exact, no pgen filter; p threshold by inner CV); "
        "- where a row was run before that column existed",
        "- memory's clone rule: the rule chosen on the fitting repertoires (80% of the training ones); where the "
        "validation repertoires keep the memory alone, it is chosen again on all training repertoires "
        "(`clone_refit`, rows of commit c6fcef9 on; the model's `config.json`, `clone_rule.refit`)",
        "- raw per-fold results: `benchmarks/results/matrix/<row>.json` (each with its command); "
        "re-made by `python benchmarks/matrix.py --rows <row> --threads 2`"])


def _auc(value: float) -> str:
    """A table cell: the AUC, or - for rows run before the column existed."""
    return "-" if np.isnan(value) else f"{value:.3f}"


def write_table() -> None:
    text = RESULTS_MD.read_text()
    if START not in text:
        text = text.rstrip() + f"\n\n## matrix (issues 13 and 15)\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    RESULTS_MD.write_text(f"{head}{START}\n{table()}\n{END}{tail}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="all", help=f"comma-separated rows, or all: {', '.join(ROWS)}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("/tmp/deeprc-matrix"), help="cohorts and models (reused)")
    p.add_argument("--fold-list", type=lambda t: [int(x) for x in t.split(",")],
                   help="run only these folds (exploration; the table shows how many folds a row has)")
    p.add_argument("--table", action="store_true", help="only rebuild the table from the row files")
    p.add_argument("--baselines-only", action="store_true",
                   help="re-make only the baseline columns of the rows' files (after a change to the baselines alone)")
    args = p.parse_args(argv)
    names = list(ROWS) if args.rows == "all" else args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.table:
        for name in args.names:
            (rerun_baselines if args.baselines_only else run_row)(ROWS[name], args)
            write_table()
    write_table()
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
