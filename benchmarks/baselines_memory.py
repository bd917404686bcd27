"""Benchmark: peak memory and seconds of `deeprc-hopfield baselines` as the cohort grows (issue 14, item 2).

For each cohort size (`--repertoires 10,20,40` x `--size` sequences) it simulates a cohort with public
clones (`deeprc-hopfield simulate`; by default 20 clones at p = 0.3 and `--public-v-noise 0.5`, so the
V levels of the clone rules differ), ingests it and splits it (5 folds), then runs `deeprc-hopfield
baselines` on it in a fresh child process and records the child's peak resident memory (VmHWM of
/proc/<pid>/status, read by the child itself just before it exits) and its seconds, with KB per
sequence. Cohorts are kept in `--work` and reused by a later run with the same options.

The predictions and the log of each run go to `--work/<cohort>/baselines-<label>/`; `--compare A,B`
checks that two labels gave identical predictions (`<method>_predictions.csv`) and clone rules on every
cohort. `--package-root DIR` runs the baselines of another copy of the package (DIR/deeprc_hopfield),
e.g. a snapshot taken before a change:

    python benchmarks/baselines_memory.py --label before --package-root /tmp/bm_before
    python benchmarks/baselines_memory.py --label after
    python benchmarks/baselines_memory.py --compare before,after
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "baselines_memory"
BIN = Path(sys.executable).parent
#: Run in the child: the CLI, then its own peak resident memory on stderr's last line.
CHILD = ("import sys\nfrom deeprc_hopfield.cli import main\ntry:\n    code = main(sys.argv[1:])\nfinally:\n"
         "    status = open('/proc/self/status').read()\n"
         "    print('VmHWM_kB', status.split('VmHWM:')[1].split()[0], file=sys.stderr)\nsys.exit(code)\n")
RULE = re.compile(r"public clones, fold (\d+): (.+), (\d+) associated clones at p < (\S+)")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, stop the benchmark with its stderr if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done


def cohort(args: argparse.Namespace, n: int) -> tuple[Path, dict]:
    """Simulate, ingest and split a cohort of `n` repertoires, or reuse one made with the same options."""
    options = {"n": n, "size": args.size, "public_clones": args.public_clones, "public_rate": args.public_rate,
               "public_v_noise": args.public_v_noise, "witness_rate": args.witness_rate, "seed": args.seed}
    folder = args.work / f"r{n}-s{args.size}"
    stamp = folder / "cohort.json"
    if stamp.is_file() and json.loads(stamp.read_text())["options"] == options:
        return folder, json.loads(stamp.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    cli = str(BIN / "deeprc-hopfield")
    run([cli, "simulate", "--out", str(folder / "sim"), "--force", "--n-repertoires", str(n),
         "--sequences-per-repertoire", str(args.size), "--witness-rate", str(args.witness_rate),
         "--public-clones", str(args.public_clones), "--public-rate", str(args.public_rate),
         "--public-v-noise", str(args.public_v_noise), "--seed", str(args.seed), "--no-nucleotides", "-q"])
    run([cli, "ingest", "--metadata", str(folder / "sim" / "metadata.csv"), "--repertoires",
         str(folder / "sim" / "repertoires"), "--out", str(folder / "store.h5"), "--force", "-q"])
    run([cli, "split", "--store", str(folder / "store.h5"), "--out", str(folder / "split.csv"), "--force", "-q"])
    with open(folder / "store.qc.tsv") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        kept = sum(int(dict(zip(header, line.rstrip("\n").split("\t")))["kept"]) for line in handle)
    record = {"options": options, "sequences": kept}
    stamp.write_text(json.dumps(record, indent=1))
    return folder, record


def measure(args: argparse.Namespace, folder: Path, sequences: int) -> dict:
    """One `baselines` run in a fresh child: its peak RSS (MB), seconds and the clone rule of each fold."""
    out = folder / f"baselines-{args.label}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if args.package_root:
        env["PYTHONPATH"] = os.pathsep.join([str(args.package_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-c", CHILD, "baselines", "--store", str(folder / "store.h5"), "--split",
               str(folder / "split.csv"), "--out", str(out), "--force", "--methods", args.methods,
               "--log", str(folder / f"baselines-{args.label}.log")]
    (folder / f"baselines-{args.label}.log").unlink(missing_ok=True)  # --log appends
    started = time.perf_counter()
    done = run(command, env=env, cwd=args.work)
    seconds = time.perf_counter() - started
    peak_mb = int(done.stderr.strip().splitlines()[-1].split()[1]) / 1024
    rules = fold_rules(folder / f"baselines-{args.label}.log")
    return {"cohort": folder.name, "sequences": sequences, "peak_mb": round(peak_mb, 1), "seconds": round(seconds, 1),
            "kb_per_sequence": round(peak_mb * 1024 / sequences, 3), "rules": rules}


def fold_rules(log: Path) -> list[tuple[str, ...]]:
    """(fold, clone rule, associated clones, p threshold) of each fold of the last run in a baselines log."""
    found = [m.groups() for m in RULE.finditer(log.read_text())]
    starts = [i for i, row in enumerate(found) if row[0] == "0"]
    return found[starts[-1]:] if starts else found


def compare(args: argparse.Namespace) -> None:
    """Whether two labels' predictions and fold rules are identical on every cohort they both ran."""
    first, second = args.compare.split(",")
    for folder in sorted(p for p in args.work.iterdir() if (p / f"baselines-{first}").is_dir()):
        if not (folder / f"baselines-{second}").is_dir():
            continue
        for csv in sorted((folder / f"baselines-{first}").glob("*_predictions.csv")):
            same = csv.read_bytes() == (folder / f"baselines-{second}" / csv.name).read_bytes()
            print(f"{folder.name} {csv.name}: {'identical' if same else 'DIFFERENT'}")
        rules = [fold_rules(folder / f"baselines-{label}.log") for label in (first, second)]
        print(f"{folder.name} clone rules per fold: {'identical' if rules[0] == rules[1] else 'DIFFERENT'} "
              f"({'; '.join(f'fold {r[0]}: {r[1]}' for r in rules[0])})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repertoires", default="10,20,40", help="comma-separated cohort sizes (repertoires)")
    p.add_argument("--size", type=int, default=20_000, help="sequences per repertoire")
    p.add_argument("--public-clones", type=int, default=20)
    p.add_argument("--public-rate", type=float, default=0.3)
    p.add_argument("--public-v-noise", type=float, default=0.5)
    p.add_argument("--witness-rate", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default="kmer,public_clones")
    p.add_argument("--label", default="current", help="names this run's outputs (e.g. before, after)")
    p.add_argument("--package-root", type=Path, help="folder holding the deeprc_hopfield package to measure")
    p.add_argument("--work", type=Path, default=Path("/tmp/baselines_memory"))
    p.add_argument("--compare", help="two labels, e.g. before,after: compare their outputs and exit")
    args = p.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.compare:
        compare(args)
        return
    rows = []
    for n in (int(x) for x in args.repertoires.split(",")):
        folder, record = cohort(args, n)
        rows.append(measure(args, folder, record["sequences"]))
        print(f"{rows[-1]['cohort']}: {rows[-1]['sequences']:,} sequences, peak {rows[-1]['peak_mb']:.0f} MB "
              f"({rows[-1]['kb_per_sequence']:.3f} KB/sequence), {rows[-1]['seconds']:.0f} s", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.label}.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                            "runs": rows}, indent=1))
    print("| repertoires x size | sequences | peak MB | KB/sequence | s |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['cohort']} | {row['sequences']:,} | {row['peak_mb']:.0f} | {row['kb_per_sequence']:.3f} "
              f"| {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
