"""Benchmark: time and memory of every workflow job on a cohort shaped like the CMV one (issue 14).

Simulates a cohort with CMV-like sizes (`deeprc-hopfield simulate`; by default 786 repertoires whose
sizes are log-normal with median 200,000 and sigma 0.77, so that the 99th percentile is ~1.2 M and a
few repertoires pass 1 M), writes a workflow config for it (the demo's `configs/config.yaml` pointed
at the cohort, 5 folds, the package's default training settings), runs `snakemake --cores N` on it
and reads every job's Snakemake `benchmark:` table (seconds, max_rss, ...). Beside Snakemake's own
figures it samples the resident memory of each job's process tree every `--sample-interval` seconds
(Snakemake samples every 0.5 s for the first 15 s of a job, then only every 30 s, so it can miss a
short peak of a long job). Writes the raw figures to `benchmarks/results/cohort_scale/<label>.json`
and prints a table per rule: jobs, median and max seconds, peak RSS, the mem_mb that the SLURM
profile (`workflow/profiles/slurm/config.yaml`) gives the rule and whether the peak fits it.

    python benchmarks/cohort_scale.py --repertoires 30 --median-size 20000 --cores 2  # a small run
    python benchmarks/cohort_scale.py --scale 0.25 --cores 8                          # quarter size
    python benchmarks/cohort_scale.py --cores 8                                       # the full cohort
    python benchmarks/cohort_scale.py --cores 2 --resume                              # ...going on after a stop
    python benchmarks/cohort_scale.py --table-only benchmarks/results/cohort_scale/r30-m20000.json

`--scale F` multiplies both the number of repertoires and the median size by F (0.25: 196
repertoires, median 50,000: 1/16 of the sequences). `--profile slurm-like` runs the jobs here with
the threads and resources that the SLURM profile gives them (its `set-threads`, capped by
`--cores`), instead of one thread per job as the demo does. The cohort is kept in `--work` and
reused by a later run with the same cohort options; the workflow's folder there is remade each run, unless
`--resume`: a run stopped (e.g. at a session's end) goes on from the jobs it finished.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "cohort_scale"
BIN = Path(sys.executable).parent
RUN = "cohort_scale"
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
#: The 99th percentile of a log-normal is median * exp(2.326 sigma): 1.2 M over a 200,000 median.
DEFAULT_SIGMA = round(math.log(1_200_000 / 200_000) / 2.3263, 2)
LOG_PATH = re.compile(r"logs/" + RUN + r"/(\S+)\.log")


# --- the cohort --------------------------------------------------------------------------------
def cohort_options(args: argparse.Namespace) -> dict:
    """The cohort's size and signal options after --scale."""
    n = max(2, round(args.repertoires * args.scale))
    median = max(1, round(args.median_size * args.scale))
    # simulate's --size-spread keeps the mean S: median = S exp(-sigma^2 / 2)
    mean = max(1, round(median * math.exp(args.sigma**2 / 2)))
    return {"n_repertoires": n, "median_size": median, "sigma": args.sigma, "sequences_per_repertoire": mean,
            "seed": args.seed, "witness_rate": args.witness_rate, "motifs": args.motifs,
            "public_clones": args.public_clones, "public_rate": args.public_rate,
            "nucleotides": args.nucleotides}


def simulate_command(options: dict, out: Path, threads: int) -> list[str]:
    command = [str(BIN / "deeprc-hopfield"), "simulate", "--out", str(out),
               "--n-repertoires", str(options["n_repertoires"]),
               "--sequences-per-repertoire", str(options["sequences_per_repertoire"]),
               "--size-spread", str(options["sigma"]), "--seed", str(options["seed"]),
               "--witness-rate", str(options["witness_rate"]), "--motifs", options["motifs"],
               "--threads", str(threads)]
    if options["public_clones"]:
        command += ["--public-clones", str(options["public_clones"]), "--public-rate", str(options["public_rate"])]
    if not options["nucleotides"]:
        command.append("--no-nucleotides")
    return command


def simulated_cohort(options: dict, work: Path, threads: int) -> dict:
    """Simulate the cohort into work/cohort, or reuse the one there when it has the same options."""
    out = work / "cohort"
    stamp = out / "cohort_scale.json"
    if stamp.is_file() and json.loads(stamp.read_text())["options"] == options:
        print(f"reusing the cohort in {out}", flush=True)
        return {**json.loads(stamp.read_text()), "reused": True}
    if out.exists():
        shutil.rmtree(out)
    command = simulate_command(options, out, threads)
    print("$ " + " ".join(command), flush=True)
    started = time.perf_counter()
    peak = PeakSampler(lambda: {"simulate": [psutil.Process(process.pid)]}, 1.0)
    process = subprocess.Popen(command)
    with peak:
        if process.wait():
            raise SystemExit(f"simulate failed (exit status {process.returncode})")
    record = {"options": options, "command": " ".join(command), "seconds": round(time.perf_counter() - started, 1),
              "peak_rss_mb": round(peak.peaks.get("simulate", 0.0), 1)}
    stamp.write_text(json.dumps(record, indent=1))
    return {**record, "reused": False}


def cohort_sizes(qc_table: Path) -> dict:
    """Repertoires and sequences as ingest read them (input rows) and kept them, from its QC table."""
    rows, kept = [], []
    with open(qc_table) as handle:
        header = handle.readline().rstrip("\n").split("\t")
        for line in handle:
            cells = dict(zip(header, line.rstrip("\n").split("\t")))
            rows.append(int(cells["input_rows"]))
            kept.append(int(cells["kept"]))
    rows.sort()
    quantile = lambda q: rows[min(len(rows) - 1, int(q * len(rows)))]
    return {"repertoires": len(rows), "total_sequences": sum(rows), "total_kept": sum(kept),
            "median_size": statistics.median(rows), "p99_size": quantile(0.99), "min_size": rows[0],
            "max_size": rows[-1], "over_1M": sum(r > 1_000_000 for r in rows)}


# --- the workflow's config and profile ---------------------------------------------------------
def write_config(args: argparse.Namespace, cohort: Path, into: Path) -> Path:
    """The demo's config pointed at the cohort: 5 folds, the package's default training settings."""
    config = yaml.safe_load((ROOT / "configs" / "config.yaml").read_text())
    config.update(run=RUN, metadata=str(cohort / "metadata.csv"), repertoires=str(cohort / "repertoires"),
                  folds=5, device="cpu", report_title=f"cohort_scale {args.label}")
    config.pop("training", None)  # every training setting at the schema's default
    if args.n_updates:  # smoke tests of this script only
        config["training"] = {"n_updates": args.n_updates, "evaluate_every": max(1, args.n_updates // 2),
                              "checkpoint_every": args.n_updates}
    config["threads"] = {key: args.threads_per_job for key in ("ingest", "train", "predict", "baselines")}
    path = into / "config.yaml"
    path.write_text("# Written by benchmarks/cohort_scale.py: the demo's config on a simulated cohort.\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return path


def slurm_like_profile(into: Path) -> Path:
    """The SLURM profile's threads and resources for jobs run here (no executor, queue, retries, GPU)."""
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    for key in ("executor", "jobs", "retries"):
        profile.pop(key, None)
    profile["latency-wait"] = 5
    profile["default-resources"] = {k: v for k, v in profile.get("default-resources", {}).items()
                                    if not k.startswith("slurm_")}
    for resources in profile.get("set-resources", {}).values():
        for key in [k for k in resources if k == "gpu" or k.startswith("slurm_")]:
            del resources[key]
    folder = into / "profile-slurm-like"
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def declared_resources() -> dict:
    """Per rule, the mem_mb and runtime a SLURM job of it gets: the profile's set-resources, else the
    rule's own `resources:`, else the profile's default-resources; None for the local rules."""
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    defaults = profile.get("default-resources", {})
    out = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        local = set()
        for block in re.findall(r"^localrules:\n((?:\s+\w+,?\n)+)", text, re.M):
            local |= set(re.findall(r"\w+", block))
        for name, body in re.findall(r"^rule (\w+):\n((?:(?:[ \t]+.*)?\n)+)", text, re.M):
            if name in local:
                out[name] = {"mem_mb": None, "runtime": None, "source": "local rule (runs where snakemake runs)"}
                continue
            own = re.search(r"^\s+resources:\n(?:\s+\w+=.*\n)*?\s+mem_mb=(\d+)", body, re.M)
            override = profile.get("set-resources", {}).get(name, {})
            if "mem_mb" in override:
                mem, source = override["mem_mb"], "set-resources"
            elif own:
                mem, source = int(own.group(1)), "rule"
            else:
                mem, source = defaults.get("mem_mb"), "default-resources"
            out[name] = {"mem_mb": mem, "runtime": override.get("runtime", defaults.get("runtime")),
                         "source": source}
    return out


def write_json(path: Path, value) -> None:
    """Write `value` as JSON to a temporary file, then rename it to `path` (a stopped run leaves a whole file)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value, indent=1))
    temporary.replace(path)


# --- memory sampling ---------------------------------------------------------------------------
class PeakSampler:
    """Peak summed RSS (MB) of groups of process trees, sampled every `interval` seconds in a thread.
    `groups()` returns {key: [root processes]}; each root counts with its descendants. With `record`, the peaks
    start from that file's and are written back to it every minute and at the end, so that a run stopped
    and resumed (`--resume`) keeps the peaks of the jobs it finished."""

    def __init__(self, groups, interval: float, record: Path | None = None):
        self.groups, self.interval, self.record = groups, interval, record
        self.peaks: dict[str, float] = json.loads(record.read_text()) if record and record.is_file() else {}
        self._written = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._write()

    def _write(self) -> None:
        if self.record is not None:
            write_json(self.record, self.peaks)
            self._written = time.monotonic()

    def _loop(self):
        while not self._stop.is_set():
            try:
                groups = self.groups()
            except psutil.Error:
                groups = {}
            for key, roots in groups.items():
                total = 0
                for root in roots:
                    try:
                        tree = [root, *root.children(recursive=True)]
                    except psutil.Error:
                        continue
                    for process in tree:
                        try:
                            total += process.memory_info().rss
                        except psutil.Error:
                            pass
                self.peaks[key] = max(self.peaks.get(key, 0.0), total / 2**20)
            if time.monotonic() - self._written >= 60:
                self._write()
            self._stop.wait(self.interval)


def job_roots(snakemake: psutil.Process) -> dict[str, list[psutil.Process]]:
    """The running jobs under snakemake, by their log's name (`train/fold0`): the outermost process
    whose command line names the job's log (the job's shell)."""
    jobs: dict[str, list[psutil.Process]] = {}
    claimed: set[int] = set()
    for process in snakemake.children(recursive=True):  # parents come before their children
        try:
            if process.pid in claimed:
                continue
            match = LOG_PATH.search(" ".join(process.cmdline()))
            if match:
                jobs.setdefault(match.group(1), []).append(process)
                claimed |= {p.pid for p in process.children(recursive=True)}
        except psutil.Error:
            continue
    return jobs


# --- the run -----------------------------------------------------------------------------------
def run_workflow(args: argparse.Namespace, work: Path, config: Path) -> tuple[list[str], list[dict], dict, str]:
    """Run snakemake in work/workflow; returns its command, every run's record (one, or with `--resume` the
    earlier runs' too: start, wall seconds, commit), sampled peaks and output (of every run)."""
    folder, log, runs, peaks = work / "workflow", work / "snakemake.log", work / "runs.json", work / "peaks.json"
    if not args.resume:
        for path in (folder, log, runs, peaks):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    profile = ROOT / "workflow" / "profiles" / "default" if args.profile == "default" else slurm_like_profile(work)
    command = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(folder), "--cores", str(args.cores),
               "--profile", str(profile), "--configfile", str(config), "--replace-workflow-config",
               *(["--rerun-incomplete"] if args.resume else [])]
    print("$ " + " ".join(command), flush=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if args.resume:  # a run killed with its session leaves its lock
        subprocess.run([*command, "--unlock"], cwd=folder, env=env, check=True, capture_output=True)
    record = json.loads(runs.read_text()) if runs.is_file() else []
    record.append({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": git_state().get("commit"),
                   "cores": args.cores, "wall_s": None})
    started = time.perf_counter()
    with open(log, "a") as out:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(process.pid)
        with PeakSampler(lambda: job_roots(root), args.sample_interval, peaks) as sampler:
            status = None
            while status is None:  # the wall so far written every 10 s: a stopped run keeps its time
                record[-1]["wall_s"] = round(time.perf_counter() - started, 1)
                write_json(runs, record)
                try:
                    status = process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
    record[-1]["wall_s"] = round(time.perf_counter() - started, 1)
    write_json(runs, record)
    text = log.read_text()
    if status:
        print(text[-4000:])
        raise SystemExit(f"snakemake failed (exit status {status}); its output: {log}"
                         + ("" if args.resume else "; --resume goes on from the jobs it finished"))
    return command, record, sampler.peaks, text


def job_benchmarks(snakemake_output: str) -> list[dict]:
    """Every job of the run, from Snakemake's output: its rule, benchmark table and wildcards."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule \w+:)", snakemake_output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        bench = re.search(r"^\s+benchmark: (\S+)", block, re.M)
        if rule and bench:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            threads = re.search(r"^\s+threads: (\d+)", block, re.M)
            jobs.append({"rule": rule.group(1), "benchmark": bench.group(1),
                         "wildcards": wildcards.group(1) if wildcards else "",
                         "threads": int(threads.group(1)) if threads else 1})
    return jobs


def finished_jobs(snakemake_output: str, folder: Path, resumed: bool) -> list[dict]:
    """The jobs of :func:`job_benchmarks`, each once: a job stopped with its run (no benchmark file written; only
    where `resumed`) and run again by a resumed one counts as its last start."""
    jobs = {job["benchmark"]: job for job in job_benchmarks(snakemake_output)}
    return [job for job in jobs.values() if not resumed or (folder / job["benchmark"]).is_file()]


def read_benchmark(path: Path) -> dict:
    """Snakemake's benchmark TSV (one row): s, max_rss, ... as numbers (None for NA)."""
    header, row = path.read_text().splitlines()[:2]
    out = {}
    for key, value in zip(header.split("\t"), row.split("\t")):
        if key == "h:m:s":
            continue
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = None
    return out


def summarise(jobs: list[dict], wall: float, declared: dict) -> dict:
    """Per rule: jobs, seconds, peaks, the SLURM mem_mb and whether the peak fits."""
    busy = sum(job["s"] for job in jobs)
    rules = {}
    for job in jobs:
        rules.setdefault(job["rule"], []).append(job)
    out = {}
    for rule, group in rules.items():
        seconds = [job["s"] for job in group]
        peak_job = max(group, key=lambda job: job["peak_rss_mb"] or 0)
        mem = declared.get(rule, {}).get("mem_mb")
        peak = peak_job["peak_rss_mb"]
        out[rule] = {
            "jobs": len(group), "total_s": round(sum(seconds), 1), "median_s": round(statistics.median(seconds), 1),
            "total_cpu_s": round(sum(job.get("cpu_time") or 0 for job in group), 1),
            "max_s": round(max(seconds), 1), "share_of_job_seconds": round(sum(seconds) / busy, 4) if busy else None,
            "total_s_over_wall": round(sum(seconds) / wall, 4),
            "max_rss_mb_snakemake": max((j["max_rss"] or 0 for j in group), default=None),
            "max_rss_mb_sampled": max((j["sampled_rss_mb"] or 0 for j in group), default=None),
            "peak_rss_mb": peak, "peak_job": peak_job["benchmark"],
            "slurm_mem_mb": mem, "slurm_mem_source": declared.get(rule, {}).get("source"),
            "slurm_runtime_min": declared.get(rule, {}).get("runtime"),
            "fits": None if mem is None or peak is None else peak <= mem,
            "runtime_fits": (None if declared.get(rule, {}).get("runtime") is None
                             else max(seconds) <= 60 * declared[rule]["runtime"]),
        }
    return dict(sorted(out.items(), key=lambda item: -item[1]["total_s"]))


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def git_state() -> dict:
    """`git rev-parse HEAD` and the tracked files that differ from it (the run measures the working tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"),
                "uncommitted": git("status", "--porcelain", "--untracked-files=no").splitlines()}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "uncommitted": []}


# --- the table ---------------------------------------------------------------------------------
def mb(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(result: dict) -> str:
    """The per-rule markdown table of a result, with a line on the cohort and the run."""
    c, rules = result["cohort"], result["rules"]
    lines = [f"Cohort: {c['repertoires']} repertoires, {c['total_sequences']:,} sequences (median "
             f"{c['median_size']:,.0f}, 99th percentile {c['p99_size']:,}, max {c['max_size']:,}); "
             f"`snakemake --cores {result['cores']}` ({result['profile']} profile): "
             f"**{result['wall_s'] / 60:.1f} min** end to end, {result['job_seconds'] / 60:.1f} min of job time.",
             "",
             "| rule | jobs | total s (share) | median s | max s | CPU s | peak RSS MB (job) | SLURM mem_mb | fits |",
             "|---|---|---|---|---|---|---|---|---|"]
    for rule, r in rules.items():
        job = re.sub(r"^.*?/benchmarks/", "", r["peak_job"]).removesuffix(".tsv") if r["jobs"] > 1 else ""
        mem = "local" if r["slurm_mem_source"] and r["slurm_mem_source"].startswith("local") else mb(r["slurm_mem_mb"])
        if r["slurm_mem_source"] in ("rule", "default-resources"):
            mem += f" ({r['slurm_mem_source']})"
        fits = "-" if r["fits"] is None else ("yes" if r["fits"] else "**no**")
        lines.append(f"| {rule} | {r['jobs']} | {r['total_s']:,.0f} ({100 * r['share_of_job_seconds']:.0f}%) | "
                     f"{r['median_s']:,.1f} | {r['max_s']:,.1f} | {r['total_cpu_s']:,.0f} | {mb(r['peak_rss_mb'])}"
                     f"{f' ({job})' if job else ''} | {mem} | {fits} |")
    return "\n".join(lines)


def extrapolation(result: dict, sequences: int) -> dict:
    """Job seconds and job CPU seconds per rule scaled linearly by total sequences (a crude
    extrapolation: training's updates are a fixed count of sampled sequences, but its seeding,
    validation and the clone memory read whole repertoires)."""
    factor = sequences / result["cohort"]["total_sequences"]
    return {"sequences": sequences,
            "job_s": {rule: round(r["total_s"] * factor) for rule, r in result["rules"].items()},
            "cpu_s": {rule: round(r["total_cpu_s"] * factor) for rule, r in result["rules"].items()}}


def add_summaries(result: dict, targets: dict[str, int]) -> dict:
    """The per-rule summary and the extrapolations, from the raw jobs of a result."""
    result["rules"] = summarise(result["jobs"], result["wall_s"], result["slurm_resources"])
    result["extrapolated"] = {
        "note": "job seconds and CPU seconds per rule scaled linearly by total sequences: an extrapolation "
                "from this run, not a measurement",
        **{name: extrapolation(result, n) for name, n in targets.items()}}
    return result


def extrapolation_lines(result: dict) -> list[str]:
    lines = []
    for name, e in result["extrapolated"].items():
        if name != "note":
            lines.append(f"linear extrapolation to {name}, {e['sequences']:,} sequences: "
                         f"{sum(e['job_s'].values()) / 3600:,.0f} h of job time (train "
                         f"{e['job_s'].get('train', 0) / 3600:,.0f} h), {sum(e['cpu_s'].values()) / 3600:,.0f} CPU h "
                         f"(train {e['cpu_s'].get('train', 0) / 3600:,.0f})")
    return lines


# --- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repertoires", type=int, default=786)
    p.add_argument("--median-size", type=int, default=200_000, help="median sequences per repertoire")
    p.add_argument("--sigma", type=float, default=DEFAULT_SIGMA,
                   help="sd of log size (default %(default)s: 99th percentile = 6 x the median)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply repertoires and median size by this")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="snakemake --cores (and simulate's)")
    p.add_argument("--threads-per-job", type=int, default=1,
                   help="the config's threads per job (default profile; as the demo)")
    p.add_argument("--profile", choices=("default", "slurm-like"), default="default")
    p.add_argument("--work", type=Path, help="cohort and workflow folder (default /tmp/cohort_scale/<label>)")
    p.add_argument("--label", help="result name (default r<repertoires>-m<median>[-slurm-like])")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--witness-rate", type=float, default=0.001)
    p.add_argument("--motifs", default="SA.FY")
    p.add_argument("--public-clones", type=int, default=20)
    p.add_argument("--public-rate", type=float, default=0.3)
    p.add_argument("--nucleotides", action="store_true", help="write nucleotide junctions (files ~2x larger)")
    p.add_argument("--n-updates", type=int, help="training updates (smoke tests of this script only)")
    p.add_argument("--sample-interval", type=float, default=1.0, help="seconds between memory samples")
    p.add_argument("--json", type=Path, help="raw result file (default benchmarks/results/cohort_scale/<label>.json)")
    p.add_argument("--resume", action="store_true",
                   help="go on from the workflow folder of a stopped run with the same options (Snakemake reruns "
                        "the jobs it did not finish; training resumes from its checkpoints): wall_s is the sum "
                        "of the runs', each recorded with its commit")
    p.add_argument("--table-only", type=Path, metavar="RESULT.json", help="print the table of a raw result file")
    args = p.parse_args(argv)
    if args.table_only:
        result = json.loads(args.table_only.read_text())
        result.setdefault("slurm_resources", declared_resources())  # files written before it was stored
        add_summaries(result, target_sizes(args))
        print("\n".join([table(result), *extrapolation_lines(result)]))
        return 0

    options = cohort_options(args)
    args.label = args.label or (f"r{options['n_repertoires']}-m{options['median_size']}"
                                + ("-slurm-like" if args.profile == "slurm-like" else ""))
    work = (args.work or Path("/tmp/cohort_scale") / args.label).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    host = machine()
    print(f"cohort_scale {args.label}: {options['n_repertoires']} repertoires, median {options['median_size']:,}, "
          f"sigma {args.sigma}; work {work}; load {host['load_average_at_start']}", flush=True)
    simulated = simulated_cohort(options, work, args.cores)
    config = write_config(args, work / "cohort", work)
    command, runs, sampled, output = run_workflow(args, work, config)
    wall = sum(run["wall_s"] or 0 for run in runs)

    folder = work / "workflow"
    declared = declared_resources()
    jobs = []
    for job in finished_jobs(output, folder, args.resume):
        figures = read_benchmark(folder / job["benchmark"])
        key = re.sub(r"^.*?/benchmarks/", "", job["benchmark"]).removesuffix(".tsv")
        sampled_peak = sampled.get(key)
        job.update(figures, sampled_rss_mb=round(sampled_peak, 1) if sampled_peak is not None else None)
        job["peak_rss_mb"] = max((v for v in (figures.get("max_rss"), job["sampled_rss_mb"]) if v is not None),
                                 default=None)
        jobs.append(job)
    result = {
        "benchmark": "cohort_scale", "label": args.label, **git_state(), "date": started,
        "machine": host, "cores": args.cores, "profile": args.profile,
        "command": " ".join([Path(sys.executable).name, "benchmarks/cohort_scale.py", *(argv or sys.argv[1:])]),
        "snakemake_command": " ".join(command), "cohort_options": options, "simulate": simulated,
        "cohort": cohort_sizes(folder / "results" / RUN / "cohort.qc.tsv"),
        "config": yaml.safe_load(config.read_text()), "wall_s": round(wall, 1), "runs": runs,
        "job_seconds": round(sum(job["s"] for job in jobs), 1),
        "memory_note": ("peak_rss_mb = max(Snakemake's max_rss, this script's sample every "
                        f"{args.sample_interval} s of the job's process tree); Snakemake samples every 0.5 s for a "
                        "job's first 15 s, then every 30 s"),
        "slurm_resources": declared, "jobs": jobs,
    }
    add_summaries(result, target_sizes(args))
    path = args.json or RESULTS / f"{args.label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join([table(result), *extrapolation_lines(result)]))
    print(f"raw: {path}")
    return 0


def target_sizes(args: argparse.Namespace) -> dict[str, int]:
    """Expected total sequences of the full and the quarter-size (--scale 0.25) cohorts: n x mean size."""
    out = {}
    for name, scale in (("full (786 x median 200,000)", 1.0), ("quarter (--scale 0.25)", 0.25)):
        n, median = round(786 * scale), 200_000 * scale
        out[name] = round(n * median * math.exp(args.sigma**2 / 2))
    return out


if __name__ == "__main__":
    sys.exit(main())
