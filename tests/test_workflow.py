"""The Snakemake workflow: dry runs of every shipped config and profile, lint, the conda deployment's
plan, config and metadata validation, and (slow) a full run on a tiny simulated cohort through the
`snakemake` command."""

from __future__ import annotations

import ast
import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
STAGES = {"ingest", "split", "train_config", "train", "predict_fold", "interpret_fold",
          "interpret_cohort", "baselines", "evaluate", "run_config", "report", "all"}

#: --config for a dry run on a metadata table of a test's own: not the demo's, so not under the demo's run name
OWN_RUN = ("--config", "run=own_cohort")

assert SNAKEMAKE.exists(), "snakemake (a dependency of the package) must be installed beside python"


def snakemake(*args: str | Path, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run the `snakemake` command (the package's CLI on PATH for the jobs)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(SNAKEMAKE), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:")) + 3
    jobs = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def fake_immunoseq_cohort(folder: Path, n: int = 10) -> tuple[Path, Path]:
    """A metadata table and immunoSEQ v1 files (5 subjects a class: one a fold), enough for a dry run of the CMV layout."""
    repertoires = folder / "repertoires"
    repertoires.mkdir(parents=True)
    lines = ["subject_id\tfilename\tcmv_status"]
    for i in range(n):
        (repertoires / f"HIP{i:05d}.tsv").write_text(
            "amino_acid\ttemplates\tv_gene\tj_gene\tframe_type\nCASSLGQAYEQYF\t3\tTCRBV05-01\tTCRBJ02-07\tIn\n")
        lines.append(f"HIP{i:05d}\tHIP{i:05d}.tsv\t{'+' if i % 2 else '-'}")
    metadata = folder / "metadata.tsv"
    metadata.write_text("\n".join(lines) + "\n")
    return metadata, repertoires


def test_dry_run_of_the_demo_config_plans_every_stage():
    result = snakemake("-n", "-F", "-p", "--nolock", "--cores", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    jobs = planned_jobs(out)
    assert STAGES <= set(jobs)
    assert jobs["train"] == jobs["predict_fold"] == jobs["interpret_fold"] == 5
    assert jobs["interpret_cohort"] == 1
    assert "results/demo/report.html" in out
    # each fold's model interprets its own held-out fold; the summary merges all five into the report
    interpret = [line for line in out.splitlines() if "deeprc-hopfield interpret " in line]
    assert sorted(line.split("--fold ")[1].split()[0] for line in interpret) == ["0", "1", "2", "3", "4"]
    assert all(f"--model results/demo/models/fold{line.split('--fold ')[1].split()[0]} " in line for line in interpret)
    # one pass per held-out repertoire: predict writes what attend and interpret would otherwise recompute
    assert all(f"--attention results/demo/attention/fold{line.split('--fold ')[1].split()[0]}.h5" in line
               for line in interpret)
    predict = [line for line in out.splitlines() if "deeprc-hopfield predict " in line]
    assert len(predict) == 5 and all("--attended results/demo/attended/fold" in line for line in predict)
    assert "deeprc-hopfield attend " not in out
    summary = next(line for line in out.splitlines() if "deeprc-hopfield interpret-summary" in line)
    assert summary.count("results/demo/interpretation/fold") == 5
    assert "--interpretation results/demo/interpretation/cohort" in out
    # every fold's held-out predictions reach evaluate, beside both baselines
    evaluate = next(line for line in out.splitlines() if "deeprc-hopfield evaluate" in line)
    assert evaluate.count("deeprc=results/demo/predictions/fold") == 5
    assert "kmer=" in evaluate and "public_clones=" in evaluate
    # the predictions files are single-label and name no label: evaluate is told which, for metrics.tsv
    assert " --label-name label " in evaluate
    # no group column: the split is the plain stratified one
    assert "--group-column" not in next(line for line in out.splitlines() if "deeprc-hopfield split " in line)


def test_no_baselines_is_a_valid_choice():
    result = snakemake("-n", "-F", "-p", "--nolock", "--config", "baselines=[]")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "baselines" not in planned_jobs(out)
    assert "kmer=" not in out


def test_dry_run_of_the_cmv_example(tmp_path: Path):
    metadata, repertoires = fake_immunoseq_cohort(tmp_path)
    new = tmp_path / "new"  # and its new patients, planned in the same run (the `predict` target beside `all`)
    new.mkdir()
    result = snakemake("-n", "-F", "-p", "--nolock", "--cores", "2", "all", "predict", "--configfile",
                       "configs/cmv_example.yaml", "--replace-workflow-config", "--config", f"metadata={metadata}",
                       f"repertoires={repertoires}", f"new_repertoires={new}")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    jobs = planned_jobs(out)
    assert STAGES <= set(jobs) and jobs["train"] == 5 and jobs["predict_new"] == 1
    ingests = [line for line in out.splitlines() if "deeprc-hopfield ingest " in line]
    assert len(ingests) == jobs["ingest"] == 1
    assert all("--format immunoseq" in line for line in ingests)  # the example's format reaches the job
    # its qc.chain (TRB) reaches ingest and the new patients' predict alike: a TRA+TRB file keeps its TRB rows
    assert "--chain TRB " in ingests[0]
    assert "--chain TRB " in next(line for line in out.splitlines() if "--repertoires " + str(new) in line)
    assert "--label-name cmv_status " in next(line for line in out.splitlines() if "deeprc-hopfield evaluate " in line)
    assert "results/cmv/report.html" in out


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_dry_run_of_each_profile(profile: str):
    if profile == "slurm":
        pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install 'deeprc-hopfield[cluster]'")
    result = snakemake("-n", "-F", "--nolock", "--profile", f"workflow/profiles/{profile}")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["train"] == 5 and "report" in jobs
    if profile == "slurm":  # the GPU request of the training jobs reaches the executor
        train_block = result.stdout[result.stdout.index("rule train:"):]
        assert "gpu=1" in train_block.split("\n\n")[0]


def test_predict_target_needs_a_folder_and_plans_the_ensemble(tmp_path: Path):
    refused = snakemake("-n", "-F", "--nolock", "predict")
    assert refused.returncode != 0
    assert "`snakemake predict --config new_repertoires=DIR`" in refused.stdout + refused.stderr  # the demo's: no file
    new = tmp_path / "new"
    missing = snakemake("-n", "-F", "--nolock", "predict", "--config", f"new_repertoires={new}")
    assert missing.returncode != 0 and f"new_repertoires {new}: folder not found" in missing.stdout + missing.stderr
    new.mkdir()
    planned = snakemake("-n", "-F", "-p", "--nolock", "predict", "--config", f"new_repertoires={new}")
    assert planned.returncode == 0, planned.stderr
    jobs = planned_jobs(planned.stdout + planned.stderr)
    assert jobs["predict_new"] == 1 and "attend_new" not in jobs and jobs["train"] == 5  # one pass
    assert "--attended results/demo/new_patients/attended.tsv" in planned.stdout
    # this run's fold models by name: a model of an earlier run with more folds is no member
    folds = " ".join(f"results/demo/models/fold{k}" for k in range(5))
    assert f"--model {folds} --repertoires" in planned.stdout
    assert "--chain" not in planned.stdout  # the demo's qc.chain is null: the models' own (none) is the one
    assert "--format" not in planned.stdout.split("deeprc-hopfield predict", 1)[1]  # auto: each file's own
    airr = snakemake("-n", "-F", "-p", "--nolock", "predict", "--config", f"new_repertoires={new}", "new_format=airr")
    assert airr.returncode == 0 and "--repertoires" in airr.stdout, airr.stderr
    assert "--format airr --device" in airr.stdout.split("deeprc-hopfield predict", 1)[1]  # new_format, not the cohort's
    table = tmp_path / "new.csv"  # their table: the files to read, ids and (known) labels
    table.write_text("subject_id,filename,label\nP1,a.tsv,1\n")
    named = snakemake("-n", "-F", "-p", "--nolock", "predict", "--config", f"new_repertoires={new}",
                      f"new_metadata={table}")
    assert named.returncode == 0 and f"--repertoires {new} --metadata {table}" in named.stdout, named.stderr
    gone = snakemake("-n", "-F", "--nolock", "predict", "--config", f"new_repertoires={new}",
                     f"new_metadata={tmp_path / 'gone.csv'}")
    out = gone.stdout + gone.stderr
    assert gone.returncode != 0 and f"new_metadata {tmp_path / 'gone.csv'}: file not found" in out
    assert "MissingInputException" not in out and "Traceback" not in out


def test_the_runs_config_copy_plans_that_runs_predict_and_the_hint_names_the_runs_config(tmp_path: Path):
    """The report tells how to score new patients with `snakemake predict --configfile results/<run>/config.yaml
    --config new_repertoires=DIR` (without --configfile snakemake plans the demo's run): that copy (the report's
    --config) is the run's whole config, so it plans this run's jobs as the run's own config does, not the demo's. A
    predict target without the folder names the run's --configfile and --config settings in its hint."""
    config = tmp_path / "mine.yaml"
    config.write_text(f"run: mine\nmetadata: {ROOT / 'data/demo/metadata.csv'}\n"
                      f"repertoires: {ROOT / 'data/demo/repertoires'}\nfolds: 3\ntraining:\n  n_updates: 7\n")
    copy, args = "results/mine/config.yaml", ("-s", ROOT / "Snakefile", "-d", tmp_path, "--nolock")
    (tmp_path / "batch1.csv").write_text("subject_id,filename\nnew1,new1.tsv\n")
    written = snakemake(copy, *args, "--cores", "1", "--configfile", config, "--config",
                        f"new_metadata={tmp_path / 'batch1.csv'}", "new_format=airr", cwd=tmp_path)  # run_config alone
    assert written.returncode == 0, written.stderr[-2000:]
    kept = yaml.safe_load((tmp_path / copy).read_text())
    assert not {"new_repertoires", "new_metadata", "new_format"} & set(kept)  # no earlier batch's table rides along
    again = snakemake(copy, *args, "-n", "--configfile", copy, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stderr[-2000:]  # its settings are the run's
    (tmp_path / "new").mkdir()
    commands = {}
    for given in (copy, config):
        planned = snakemake("predict", *args, "-n", "-p", "--configfile", given, "--config", "new_repertoires=new",
                            cwd=tmp_path)
        assert planned.returncode == 0, planned.stderr[-2000:]
        commands[given] = sorted(line.split("deeprc-hopfield ", 1)[1] for line in planned.stdout.splitlines()
                                 if "deeprc-hopfield " in line)
    assert len(commands[copy]) == 7  # ingest, split, clones, 3 x train, predict
    assert commands[copy] == commands[config] and "results/demo" not in "".join(commands[copy])
    folds = " ".join(f"results/mine/models/fold{k}" for k in range(3))
    assert any(line.startswith(f"predict --model {folds} --repertoires new ") for line in commands[copy])
    report = snakemake(*args, "-n", "-p", "--configfile", config, cwd=tmp_path).stdout
    assert f" --config {copy} " in next(line for line in report.splitlines() if "deeprc-hopfield report " in line)
    hint = snakemake("predict", *args, "-n", "--configfile", config, "--config", "top_k=5", cwd=tmp_path)
    assert hint.returncode != 0
    assert ("name their folder with `snakemake predict --configfile mine.yaml --config top_k=5 new_repertoires=DIR`"
            in hint.stdout + hint.stderr), hint.stderr[-2000:]


def test_lint_is_clean():
    result = snakemake("--lint", "--nolock")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Lints for" not in out and not [line for line in out.splitlines() if line.strip().startswith("* ")]
    assert "Congratulations, your workflow is in a good condition!" in out


def test_whole_numbers_written_with_a_decimal_point_are_whole(tmp_path: Path):
    """`folds: 3.0` and `seed: 1.0` pass the schema as integers; they must reach range() and the int options of the
    commands as 3 and 1, not fail inside a job (or the plan) with a traceback."""
    config = tmp_path / "c.yaml"
    config.write_text("folds: 3.0\nseed: 1.0\nqc: {min_length: 4.0}\ntraining: {n_updates: 20.0}\n")
    result = snakemake("-n", "-F", "-p", "--nolock", "--configfile", config)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert planned_jobs(result.stdout)["train"] == 3
    split = next(line for line in result.stdout.splitlines() if "deeprc-hopfield split " in line)
    assert "--folds 3 " in split and "--seed 1 " in split and "--min-length 4 " in result.stdout


def test_a_run_of_its_own_without_a_cohort_is_refused_rather_than_run_on_the_demo(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("run: mycohort\n")
    result = snakemake("-n", "--nolock", "--configfile", config)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "run 'mycohort' does not name both `metadata` and `repertoires`" in out, \
        out[-2000:]


def test_a_cohort_of_its_own_under_the_demos_run_name_is_refused(tmp_path: Path):
    """A config that names its own metadata table but no `run` would be ingested over results/demo: one line, before
    any job, says to name the run. The demo's own files, however they are written, are the demo's."""
    metadata = tmp_path / "metadata.csv"
    shutil.copy(ROOT / "data" / "demo" / "metadata.csv", metadata)
    config = tmp_path / "mine.yaml"
    config.write_text(f"metadata: {metadata}\nrepertoires: {ROOT / 'data/demo/repertoires'}\n")
    for how in (("--configfile", config), ("--config", f"metadata={metadata}")):
        result = snakemake("-n", "-F", "--nolock", *how)
        out = result.stdout + result.stderr
        assert result.returncode != 0 and "Job stats" not in out and "Traceback" not in out
        assert f"config: metadata {metadata} is not the demo's, but the run is 'demo', the demo's: add `run: NAME` " \
               "to the config (or --config run=NAME), so that results/demo/ is not overwritten" in out.splitlines(), out
    named = snakemake("-n", "-F", "--nolock", "--configfile", config, "--config", "run=mine")
    assert named.returncode == 0 and "results/mine/cohort.h5" in named.stdout, named.stderr[-2000:]
    for demo in (ROOT / "data/demo/metadata.csv", "./data/demo/metadata.csv"):
        result = snakemake("-n", "-F", "--nolock", "--config", f"metadata={demo}", "repertoires=data/demo/repertoires/")
        assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple]:
    """A working directory with a tiny cohort (cohort/metadata.csv, classes '0' and '1', none unlabelled) whose run
    `tiny` has been ingested and has its config copy (results/tiny/config.yaml), and the snakemake arguments that
    plan those two outputs again."""
    from deeprc_hopfield.simulate import SimulationSettings, simulate

    workdir = tmp_path_factory.mktemp("ingested")
    simulate(SimulationSettings(n_repertoires=16, sequences_per_repertoire=150, witness_rate=0.05, motifs=["GR.DT"],
                                seed=5), workdir / "cohort")
    config = workdir / "config.yaml"
    config.write_text("run: tiny\nmetadata: cohort/metadata.csv\nrepertoires: cohort/repertoires\nfolds: 2\n"
                      "threads: {ingest: 1}\n")
    args = ("results/tiny/cohort.h5", "results/tiny/config.yaml", "-s", ROOT / "Snakefile", "-d", workdir,
            "--cores", "1", "--configfile", config)
    made = snakemake(*args, cwd=workdir)
    assert made.returncode == 0, made.stderr[-3000:]
    return workdir, args


def planned_after(ingested: tuple[Path, tuple], *config: str) -> str:
    """The output of a dry run of the ingested run's outputs with `config` given on the command line."""
    workdir, args = ingested
    result = snakemake(*args, "-n", "-p", "--nolock", *(("--config", *config) if config else ()), cwd=workdir)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    return out


def test_another_spelling_of_a_path_plans_nothing_new(ingested: tuple[Path, tuple], tmp_path: Path):
    """Snakemake compares inputs and params as text: `./cohort/metadata.csv`, `cohort/repertoires/` or the absolute
    path must not ingest the cohort again (the config's paths are normalised before any rule sees them)."""
    workdir, _ = ingested
    assert "Nothing to be done" in planned_after(ingested)
    for spelling in ("metadata=./cohort/metadata.csv", "repertoires=cohort/repertoires/",
                     f"metadata={workdir / 'cohort' / 'metadata.csv'}",
                     f"repertoires={workdir}/cohort/../cohort/repertoires"):
        assert "Nothing to be done" in planned_after(ingested, spelling), spelling
    # outside the working directory: the normalised absolute path
    shutil.copy(workdir / "cohort" / "metadata.csv", tmp_path / "metadata.csv")
    result = snakemake("-n", "-F", "-p", "--nolock", *OWN_RUN, f"metadata={tmp_path}/./sub/../metadata.csv",
                       f"repertoires={workdir}/cohort/repertoires/")
    ingest = next(line for line in result.stdout.splitlines() if "deeprc-hopfield ingest " in line)
    assert f"--metadata {tmp_path / 'metadata.csv'} --repertoires {workdir / 'cohort' / 'repertoires'} " in ingest


def test_a_run_folder_made_from_another_cohort_stops_the_plan(ingested: tuple[Path, tuple]):
    """results/<run>/config.yaml records the cohort the run was made from: a config naming another table or folder
    under the same run stops before any job, naming both paths and the ways on."""
    workdir, args = ingested
    other = workdir / "other.csv"
    shutil.copy(workdir / "cohort" / "metadata.csv", other)
    result = snakemake(*args, "-n", "--nolock", "--config", "metadata=other.csv", cwd=workdir)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Job stats" not in out and "Traceback" not in out
    assert "results/tiny holds run 'tiny' made from metadata cohort/metadata.csv, not the config's other.csv " \
           "(results/tiny/config.yaml): give this cohort another `run` name, or remove results/tiny (and logs/tiny) " \
           "to make run 'tiny' again from it" in out.splitlines(), out[-2000:]
    renamed = snakemake("-n", "--nolock", *args[2:], "--config", "metadata=other.csv", "run=other", cwd=workdir)
    assert renamed.returncode == 0 and "results/other/cohort.h5" in renamed.stdout, renamed.stderr[-2000:]


def test_stating_what_ingest_would_do_anyway_reruns_no_ingest(ingested: tuple[Path, tuple]):
    """`positive_class` set to the class ingest takes as positive anyway, or `drop_unlabelled: true` on a cohort with
    no unlabelled subject, changes no store: ingest's command stays as it was (only the config copy is written
    again); the other class, which changes the store, reaches ingest (and evaluate)."""
    for setting in ("positive_class=1", "positive_class=1.0", "drop_unlabelled=True"):
        out = planned_after(ingested, setting)
        assert set(planned_jobs(out)) == {"run_config"}, (setting, out[-2000:])
    out = planned_after(ingested, "positive_class=0")
    assert planned_jobs(out)["ingest"] == 1
    assert "--positive-class 0 " in next(line for line in out.splitlines() if "deeprc-hopfield ingest " in line)
    stated = snakemake("-n", "-F", "-p", "--nolock", "--config", "positive_class=1")
    assert stated.returncode == 0 and "--positive-class" not in stated.stdout, stated.stderr[-2000:]
    other = snakemake("-n", "-F", "-p", "--nolock", "--config", "positive_class=0")
    assert sum("--positive-class 0 " in line for line in other.stdout.splitlines()) == 2  # ingest and evaluate


def test_command_line_words_for_true_null_and_numbers_take_the_schemas_types(tmp_path: Path):
    """`--config` hands over `true`, `null`, `None` and `1e-3` as text (and a nested value all as text): where the
    schema allows a boolean, null or a number and not text, they are read as such rather than refused."""
    metadata = demo_metadata_with(tmp_path, lambda t: t.assign(label=t["label"].where(t.index != 3, "Unknown")))
    result = snakemake("-n", "-F", "-p", "--nolock", *OWN_RUN, f"metadata={metadata}",
                       "drop_unlabelled=true", "group_column=null", "positive_class=None", "report_title=true",
                       "training={learning_rate: 1e-3, n_updates: '20'}", "model={beta: ~}", "folds=3.0")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "--drop-unlabelled" in next(line for line in out.splitlines() if "deeprc-hopfield ingest " in line)
    assert "--group-column" not in next(line for line in out.splitlines() if "deeprc-hopfield split " in line)
    assert "--title true " in next(line for line in out.splitlines() if "deeprc-hopfield report " in line)
    assert planned_jobs(out)["train"] == 3
    refused = snakemake("-n", "-F", "--nolock", "--config", "drop_unlabelled=maybe")
    assert refused.returncode != 0
    assert "config $.drop_unlabelled: 'maybe' is not of type 'boolean'" in refused.stdout + refused.stderr


def test_a_successful_run_says_where_the_report_is(tmp_path: Path):
    """One line at the end of a run that succeeded, or had nothing to do, when the run has a report."""
    demo = ROOT / "data" / "demo"
    args = ("results/demo/config.yaml", "-s", ROOT / "Snakefile", "-d", tmp_path, "--cores", "1", "--configfile",
            ROOT / "configs" / "config.yaml", "--config", f"metadata={demo / 'metadata.csv'}",
            f"repertoires={demo / 'repertoires'}")
    first = snakemake(*args, cwd=tmp_path)
    assert first.returncode == 0 and "report: " not in first.stderr, first.stderr[-2000:]
    (tmp_path / "results" / "demo" / "report.html").write_text("<html></html>")
    again = snakemake(*args, "--forcerun", "run_config", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    said = f"report: {tmp_path}/results/demo/report.html (metrics: results/demo/evaluation/metrics.tsv)"
    assert said in again.stderr.splitlines()
    idle = snakemake(*args, cwd=tmp_path)  # nothing to do: Snakemake calls no onsuccess, the line still comes
    assert idle.returncode == 0 and "Nothing to be done" in idle.stderr, idle.stderr[-2000:]
    assert idle.stderr.splitlines().count(said) == 1
    planned = snakemake(*args, "-n", cwd=tmp_path)  # a dry run (its log on stdout) says nothing of the report
    out = planned.stdout + planned.stderr
    assert planned.returncode == 0 and "Nothing to be done" in out and "report: " not in out, out[-2000:]


# A stand-in for conda that answers only what Snakemake asks it during a dry run, and records the
# checkout that the environment's pip line would install (CI has no conda; nothing is built).
FAKE_CONDA = """#!/bin/sh
case "$*" in
  "info --json") printf '%s' "$DEEPRC_HOPFIELD_SOURCE" > "$(dirname "$0")/source"
                 echo '{"conda_prefix": "/nonexistent", "platform": "linux-64"}' ;;
  "--version") echo "conda 25.1.0" ;;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}' ;;
  *) echo "the stand-in conda was asked: conda $*" >&2; exit 1 ;;
esac
"""


def test_conda_deployment_plans_every_job_in_the_package_environment(tmp_path: Path):
    conda = tmp_path / "conda"
    conda.write_text(FAKE_CONDA)
    conda.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("DEEPRC_HOPFIELD_SOURCE", None)
    result = subprocess.run([str(SNAKEMAKE), "-n", "-F", "--nolock", "--sdm", "conda"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert STAGES <= set(planned_jobs(out))
    # one environment for every job, found relative to the rules
    assert out.count("Conda environment workflow/envs/deeprc-hopfield.yaml will be created.") == 1
    assert out.count("will be created") == 1
    # its pip line names this checkout through the variable that the workflow sets
    spec = yaml.safe_load((ROOT / "workflow" / "envs" / "deeprc-hopfield.yaml").read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    source = (tmp_path / "source").read_text()
    assert Path(source) == ROOT
    assert [line.replace("${DEEPRC_HOPFIELD_SOURCE}", source) for line in pip] == [f"-e {ROOT}"]
    assert any(d.startswith("pytorch >=") for d in spec["dependencies"] if isinstance(d, str))


def demo_metadata_with(tmp_path: Path, edit) -> Path:
    """A copy of the demo's metadata table changed by `edit` (a function of the DataFrame)."""
    table = pd.read_csv(ROOT / "data" / "demo" / "metadata.csv", dtype=str)
    metadata = tmp_path / "metadata.csv"
    edit(table).to_csv(metadata, index=False)
    return metadata


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t.drop(columns="filename"), ": required column 'filename' is missing (columns: subject_id, label)"),
    (lambda t: t.rename(columns={"subject_id": "patient"}),
     ": required column 'subject_id' is missing (columns: patient, filename, label)"),
    (lambda t: t.drop(columns="label"), ": label column 'label' is missing (columns: subject_id, filename)"),
    (lambda t: t.rename(columns={"label": "Label"}),
     ": label column 'label' is missing (columns: subject_id, filename, Label) (did you mean 'Label'?)"),
    (lambda t: pd.concat([t, pd.DataFrame({"subject_id": ["rep001"], "filename": ["extra.tsv"], "label": ["1"]})]),
     ", line 102, column 'subject_id': duplicate subject_id 'rep001' (also on line 3)"),
    (lambda t: t.assign(filename=t["filename"].where(t.index != 9, "rep003.tsv.gz")),
     ", line 11, column 'filename': duplicate filename 'rep003.tsv.gz' (also on line 5)"),
    (lambda t: t.iloc[:0], ": the table has no rows"),
    (lambda t: t.assign(label=t["label"].where(t.index != 5, "O")), ", column 'label': 3 distinct label value(s) "
     "('0', '1', 'O'): the workflow's baselines, evaluation and interpretation need a binary label; the rarest, 'O', "
     "is on line 7"),
    (lambda t: t.assign(label="1"), ", column 'label': 1 distinct label value(s) ('1'): the workflow's baselines, "
     "evaluation and interpretation need a binary label"),
    (lambda t: t.assign(filename=t["filename"].where(t.index != 4, "gone.tsv")),
     ", line 6, column 'filename': repertoire file 'gone.tsv' not found in data/demo/repertoires"),
    (lambda t: t.assign(filename=t["filename"].where(t.index != 4, "REP004.tsv.gz")),
     ", line 6, column 'filename': repertoire file 'REP004.tsv.gz' not found in data/demo/repertoires (did you mean "
     "'rep004.tsv.gz'?)"),
    (lambda t: t.assign(filename=t["filename"].where(t.index != 4, "rep04.tsv.gz")),  # rep004? rep094? no guess
     ", line 6, column 'filename': repertoire file 'rep04.tsv.gz' not found in data/demo/repertoires"),
    (lambda t: t.assign(label=["1" if i < 3 else "0" for i in range(len(t))]),
     ", column 'label': class '1' has 3 subject(s), fewer than the config's `folds` (5); set `folds` lower"),
    (lambda t: t.assign(label=["1" if i == 0 else "0" for i in range(len(t))]),
     ", column 'label': class '1' has 1 subject(s): cross-validation needs at least 2 of each class"),
])
def test_a_wrong_metadata_table_stops_the_plan_before_any_job(tmp_path: Path, edit, problem: str):
    metadata = demo_metadata_with(tmp_path, edit)
    result = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"metadata {metadata}{problem}" in out.splitlines()  # the whole problem on one line
    assert "Job stats" not in out and "rule ingest" not in out and "Traceback" not in out


def test_a_class_too_small_for_the_training_parts_stops_the_plan(tmp_path: Path):
    """3 positives in 2 folds: a fold's training part holds 1, too few for training's inner cross-validation
    (the baselines' job failed on it after ingest and training); `folds: 3` keeps 2 and plans."""
    metadata = demo_metadata_with(tmp_path, lambda t: t.assign(label=["1" if i < 3 else "0" for i in range(len(t))]))
    result = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}", "folds=2")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in out
    assert f"metadata {metadata}, column 'label': class '1' has 3 subject(s): with 2 folds a fold's training part " \
           "would hold 1 of them, fewer than the 2 that the baselines' inner cross-validation needs (3 folds would " \
           "keep 2) (the config's `folds`; or `baselines: []`)" in out.splitlines(), out[-2000:]
    assert snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}", "folds=3").returncode == 0
    # groups: 3 positive donors (two samples each) in 2 folds leave 1 donor in a training part, however dealt
    grouped = demo_metadata_with(tmp_path, lambda t: t.assign(
        label=["1" if i < 6 else "0" for i in range(len(t))], donor=[f"D{i // 2}" for i in range(len(t))]))
    result = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={grouped}", "folds=2", "group_column=donor")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in out
    assert "class '1' has 3 group(s) of 'donor': with 2 folds a fold's training part would hold 1 of them" in out, \
        out[-2000:]


def test_a_missing_metadata_table_stops_the_plan_in_one_line(tmp_path: Path):
    result = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={tmp_path / 'nowhere.csv'}")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"metadata {tmp_path / 'nowhere.csv'}: file not found (the config's `metadata`)" in out.splitlines()
    assert "Job stats" not in out
    assert "WorkflowError" not in out and 'File "' not in out  # the line alone: not where common.smk raised it


def test_a_path_not_found_says_where_a_relative_one_is_read_from_and_a_near_one(tmp_path: Path):
    """Relative paths are read from the folder snakemake runs in, not the config file's: the message says so, and
    names the path that is there (from the config file's folder, or one part of it spelled another way)."""
    cohort = tmp_path / "cohort"
    (cohort / "lab" / "export").mkdir(parents=True)
    shutil.copy(ROOT / "data" / "demo" / "metadata.csv", cohort / "lab" / "samples.csv")
    config = cohort / "config.yaml"
    config.write_text("run: own_cohort\nmetadata: lab/samples.csv\nrepertoires: lab/exports\n")
    elsewhere = snakemake("-n", "-F", "--nolock", "--configfile", config)  # run in the checkout
    assert elsewhere.returncode != 0
    assert (f"metadata lab/samples.csv: file not found (did you mean '{cohort / 'lab' / 'samples.csv'}'?) (the "
            f"config's `metadata`; a relative path is taken from the folder snakemake runs in, {ROOT}, not from the "
            "config file's folder)") in (elsewhere.stdout + elsewhere.stderr).splitlines(), elsewhere.stderr[-2000:]
    beside = snakemake("-n", "-F", "--nolock", "-s", ROOT / "Snakefile", "--configfile", config, cwd=cohort)
    assert beside.returncode != 0
    assert (f"repertoires lab/exports: folder not found (did you mean 'lab/export'?) (the config's `repertoires`; a "
            f"relative path is taken from the folder snakemake runs in, {cohort}, not from the config file's "
            "folder)") in (beside.stdout + beside.stderr).splitlines(), beside.stderr[-2000:]
    (cohort / "configs").mkdir()
    above = cohort / "configs" / "mine.yaml"  # `../lab/...`, meant from the config file's folder
    above.write_text("run: own_cohort\nmetadata: ../lab/samples.csv\nrepertoires: ~/lab/export\n")
    up = snakemake("-n", "-F", "--nolock", "-s", ROOT / "Snakefile", "--configfile", above, cwd=cohort)
    assert (f"metadata ../lab/samples.csv: file not found (did you mean '{cohort / 'lab' / 'samples.csv'}'?) (the "
            f"config's `metadata`; a relative path is taken from the folder snakemake runs in, {cohort}, not from the "
            "config file's folder)") in (up.stdout + up.stderr).splitlines(), up.stderr[-2000:]
    shutil.copy(cohort / "lab" / "samples.csv", cohort / "samples.csv")
    above.write_text("run: own_cohort\nmetadata: samples.csv\nrepertoires: ~/lab/export\n")
    home = snakemake("-n", "-F", "--nolock", "-s", ROOT / "Snakefile", "--configfile", above, cwd=cohort)
    assert ("repertoires ~/lab/export: folder not found (the config's `repertoires`; `~` is not expanded: write the "
            "whole path)") in (home.stdout + home.stderr).splitlines(), home.stderr[-2000:]


@pytest.mark.parametrize("bad, message", [
    ("folds: one\n", "config $.folds: 'one' is not of type 'integer'"),
    ("folds:\n", "config $.folds: no value (`folds:` with nothing after it): give it one, or leave the key out to take "
     "its default (keys, types"),  # a section with nothing under it takes its defaults; an empty value is refused
    ("trainng: {n_updates: 3}\n", "Additional properties are not allowed ('trainng' was unexpected) (did you mean "
     "'training'?)"),
    ("training: {n_updates: 0}\n", "config $.training.n_updates: 0 is less than the minimum of 1"),
    ("device: gpu\n", "config $.device: 'gpu' is not one of auto, cpu, cuda"),
    ("training: {n_updates: 3}\nfolds: 3\ntraining: {sample_size: 100}\n",  # YAML would drop n_updates silently
     "bad.yaml, line 3: not valid YAML at character 1: the key 'training' appears twice (first on line 1)"),
    ("species: rat\n", "config $.species: 'rat' is not one of human, mouse"),
    ("species: mouse\nreference: {file: vdjdb-cmv-trb}\n",  # refused at the plan, not by train after ingest
     "config species mouse: reference vdjdb-cmv-trb: the shipped list vdjdb-cmv-trb holds human receptors"),
])
def test_a_wrong_config_gets_the_schema_message_not_a_traceback(tmp_path: Path, bad: str, message: str):
    config = tmp_path / "bad.yaml"
    config.write_text(bad)
    result = snakemake("-n", "-F", "--nolock", "--configfile", config)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in out
    assert "Traceback" not in out and "Failed validating" not in out


#: The settings of the finished run that the slow tests share (`finished_run`); metadata and repertoires are added.
TINY_RUN = {"run": "tiny", "folds": 2, "device": "cpu", "top_k": 3, "baselines": ["kmer", "public_clones"],
            "training": {"n_updates": 6, "repertoires_per_update": 2, "sample_size": 100, "evaluate_every": 3,
                         "checkpoint_every": 6},
            "threads": {"ingest": 1, "clones": 1, "train": 1, "predict": 1, "baselines": 1}}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real run of the whole workflow (every job of 2 folds, interpretation included) on a tiny simulated cohort:
    its working directory (the cohort outside it), settings and the snakemake run's output. Tests work on copies
    (:func:`copy_of_run`): the run is made once."""
    from deeprc_hopfield.simulate import SimulationSettings, simulate

    root = tmp_path_factory.mktemp("finished_run")
    cohort = simulate(SimulationSettings(n_repertoires=16, sequences_per_repertoire=150, witness_rate=0.05,
                                         motifs=["GR.DT"], seed=5), root / "cohort")
    settings = {**TINY_RUN, "metadata": str(cohort / "metadata.csv"), "repertoires": str(cohort / "repertoires")}
    workdir = root / "work"
    workdir.mkdir()
    config = workdir / "tiny.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    first = snakemake("-s", ROOT / "Snakefile", "-d", workdir, "--cores", "2", "--configfile", config, cwd=workdir,
                      timeout=240)
    assert first.returncode == 0, first.stderr[-3000:]
    return {"workdir": workdir, "cohort": cohort, "settings": settings, "first": first}


def copy_of_run(finished_run: dict, to: Path) -> Path:
    """A copy of the finished run's working directory at `to`, modification times kept (what `cp -a` gives)."""
    shutil.copytree(finished_run["workdir"], to, symlinks=True, dirs_exist_ok=True)
    return to


@pytest.mark.slow
def test_full_run_on_a_tiny_cohort_then_nothing_to_do(finished_run: dict, tmp_path: Path):
    from deeprc_hopfield.io import output_command

    first, cohort, made_in = finished_run["first"], finished_run["cohort"], finished_run["workdir"]
    assert f"report: {made_in}/results/tiny/report.html (metrics: results/tiny/evaluation/metrics.tsv)" in \
        first.stderr.splitlines()  # the Snakefile's onsuccess
    copy_of_run(finished_run, tmp_path)  # the run's working directory, moved: nothing to do there either
    config = tmp_path / "tiny.yaml"
    args = ("-s", ROOT / "Snakefile", "-d", tmp_path, "--cores", "2", "--configfile", config)

    run = tmp_path / "results" / "tiny"
    metrics = pd.read_csv(run / "evaluation" / "metrics.tsv", sep="\t", dtype={"fold": str})
    assert set(metrics["method"]) == {"deeprc", "kmer", "public_clones"}
    assert (metrics["label"] == "label").all()  # the label scored is named (the config's label_column)
    for method, rows in metrics.groupby("method"):  # an AUC for every fold, then mean and sd, then all pooled
        assert list(rows["fold"]) == ["0", "1", "mean", "sd", "pooled"], method
        auc = rows.set_index("fold")["roc_auc"]
        assert auc[["0", "1"]].between(0, 1).all() and auc["mean"] == pytest.approx(auc[["0", "1"]].mean())
    predictions = pd.concat([pd.read_csv(run / "predictions" / f"fold{k}.csv") for k in (0, 1)])
    assert sorted(predictions["subject_id"]) == sorted(pd.read_csv(cohort / "metadata.csv")["subject_id"])
    attended = pd.concat([pd.read_csv(run / "attended" / f"fold{k}.tsv", sep="\t") for k in (0, 1)])
    assert attended["repertoire_id"].nunique() == 16 and attended["rank"].max() == 3
    report = (run / "report.html").read_text()
    assert "kmer" in report and "public_clones" in report.replace("public clones", "public_clones")
    assert "<h2>Interpretation</h2>" in report
    assert "<h2>Fold models</h2>" in report and "<td>fold0</td>" in report and "<td>fold1</td>" in report
    cohort_ranking = pd.read_csv(run / "interpretation" / "cohort" / "ranked_sequences.tsv", sep="\t")
    assert cohort_ranking["rank"].tolist() == list(range(1, len(cohort_ranking) + 1))
    assert (cohort_ranking["n_positive"] + cohort_ranking["n_negative"]).max() <= 16
    train_log = (tmp_path / "logs" / "tiny" / "train" / "fold0.log").read_text()
    assert "not resuming: there is no checkpoint" in train_log  # train runs with --resume-if-possible
    assert (run / "benchmarks" / "train" / "fold1.tsv").exists()
    empty_logs = [p.name for p in (tmp_path / "logs" / "tiny").rglob("*.log") if p.stat().st_size == 0]
    assert not empty_logs, empty_logs  # every job says what it did

    related = run / "split.csv.related.tsv"  # split wrote it: no pair of related repertoires in this cohort
    assert pd.read_csv(related, sep="\t").empty
    split = pd.read_csv(run / "split.csv", dtype={"subject_id": str})
    a, b = split.groupby("fold")["subject_id"].first()  # as if two samples of one donor sat in folds 0 and 1
    related.write_text(f"subject_a\tsubject_b\tshare\n{a}\t{b}\t0.6\n")
    second = snakemake(*args, cwd=tmp_path, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "Nothing to be done" in second.stdout + second.stderr
    assert "note: split found 1 pair(s) of repertoires that look like samples of one donor but are kept together by " \
           "no group, 1 of them in different folds" in second.stderr, second.stderr[-2000:]
    related.write_text("subject_a\tsubject_b\tshare\n")

    # jobs run again over their earlier outputs: the folders Snakemake keeps between runs (baselines/fold0/,
    # evaluation/: the rules pass --force, which replaces only an earlier output of the same command),
    # a directory() output and a file (Snakemake removes those first)
    rerun = snakemake(*args, "--forcerun", "baselines", "evaluate", "interpret_cohort", "report", cwd=tmp_path,
                      timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "rule baselines:" in rerun.stderr and "rule train:" not in rerun.stderr
    for folder, command in (("baselines/fold0", "baselines"), ("evaluation", "evaluate"),
                            ("interpretation/cohort", "interpret-summary"), ("models/fold0", "train")):
        assert output_command(run / folder) == command, folder

    # Snakemake's own report of the finished run (the snakemake[reports] extra): the marked outputs
    snakemake_report = run / "snakemake_report.html"
    made = snakemake("--report", snakemake_report, *args, cwd=tmp_path, timeout=60)
    assert made.returncode == 0, made.stderr[-3000:]
    html = snakemake_report.read_text()
    assert len(html) > 10_000 and "Attended sequences" in html and "Held-out metrics of every method" in html

    # new patients: the fold models as an ensemble, without retraining (the cohort's repertoires under new names,
    # re-compressed: predict knows each by its sequences and counts as a training repertoire of every fold model but
    # one, and scores it with the one that held it out)
    patients = tmp_path / "new_patients"
    patients.mkdir()
    for path in (cohort / "repertoires").iterdir():
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            (patients / f"new_{path.name[:-3]}").write_bytes(gzip.decompress(data))
        else:
            (patients / f"new_{path.name}.gz").write_bytes(gzip.compress(data, mtime=0))
    new = snakemake("predict", *args, "--config", f"new_repertoires={patients}", cwd=tmp_path, timeout=90)
    assert new.returncode == 0, new.stderr[-3000:]
    guarded = (tmp_path / "logs" / "tiny" / "new_patients" / "predict.log").read_text()
    assert "its repertoire is training subject" in guarded and "by the 1 of 2 models that held it out" in guarded
    assert "rule train:" not in new.stdout + new.stderr
    assert [line for line in new.stderr.splitlines() if line.startswith("new patients' predictions: ")] == [
        f"new patients' predictions: {run / 'new_patients' / 'predictions.csv'} (16 repertoires; 16 of 16 with a "
        "warning: see its `warnings` column and logs/tiny/new_patients/predict.log)"]  # copies of training repertoires
    ensemble = pd.read_csv(run / "new_patients" / "predictions.csv")
    assert len(ensemble) == 16 and {"probability", "probability_sd"} <= set(ensemble.columns)
    assert list(ensemble.columns[-2:]) == ["unknown_v_share", "warnings"]  # the cohort's own genes: share 0
    assert (ensemble["unknown_v_share"] == 0).all()  # but each is a training file renamed, which the table says too
    assert ensemble["warnings"].str.fullmatch(r"a copy of training subject rep\d+'s repertoire: scored as that "
                                              r"subject by the models that held it out \(fold[01]\)").all()
    assert pd.read_csv(run / "new_patients" / "attended.tsv", sep="\t")["repertoire_id"].nunique() == 16
    changed = sorted(patients.iterdir())[0]  # a file replaced in place scores the patients again
    changed.write_bytes(sorted(patients.iterdir())[1].read_bytes())
    again = snakemake("-n", "predict", *args, "--config", f"new_repertoires={patients}", cwd=tmp_path, timeout=90)
    assert again.returncode == 0 and planned_jobs(again.stdout + again.stderr).get("predict_new") == 1, again.stdout
    # an external validation cohort: their table names the files to read, their ids and true labels
    files = sorted(p.name for p in patients.iterdir())[:3]
    (tmp_path / "new.csv").write_text("subject_id,filename,label\n" + "".join(f"V{k},{name},{k % 2}\n"
                                                                          for k, name in enumerate(files)))
    labelled = snakemake("predict", *args, "--config", f"new_repertoires={patients}",
                         f"new_metadata={tmp_path / 'new.csv'}", cwd=tmp_path, timeout=90)
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    table = pd.read_csv(run / "new_patients" / "predictions.csv", dtype={"true_label": str})
    assert table["subject_id"].tolist() == ["V0", "V1", "V2"] and table["true_label"].tolist() == ["0", "1", "0"]


def test_group_column_reaches_split_and_is_checked_before_any_job(tmp_path: Path):
    donors = lambda t: t.assign(donor="D" + t["label"] + "-" + (t.groupby("label").cumcount() // 2).astype(str))  # noqa: E731
    metadata = demo_metadata_with(tmp_path, donors)
    result = snakemake("-n", "-F", "-p", "--nolock", *OWN_RUN, f"metadata={metadata}", "group_column=donor")
    assert result.returncode == 0, result.stderr
    split = next(line for line in result.stdout.splitlines() if "deeprc-hopfield split " in line)
    assert "--group-column donor " in split
    # the baselines and evaluation read that same split table
    for command in ("deeprc-hopfield baselines ", "deeprc-hopfield evaluate "):
        line = next(line for line in result.stdout.splitlines() if command in line)
        assert "--split results/own_cohort/split.csv " in line
    # new patients' table with the donor column: predict matches their donors to the models' training donors
    new = tmp_path / "new"
    new.mkdir()
    for columns, grouped in (("subject_id,filename,donor\nP1,a.tsv,D1-0\n", True), ("subject_id,filename\nP1,a.tsv\n",
                                                                                  False)):
        (tmp_path / "new.csv").write_text(columns)
        planned = snakemake("-n", "-F", "-p", "--nolock", "predict", *OWN_RUN, f"metadata={metadata}",
                            "group_column=donor", f"new_repertoires={new}", f"new_metadata={tmp_path / 'new.csv'}")
        assert planned.returncode == 0, planned.stderr
        line = next(line for line in planned.stdout.splitlines() if "deeprc-hopfield predict " in line
                    and "--repertoires" in line)
        assert ("--group-column donor" in line) == grouped, line
    refused = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}", "group_column=patient")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert (f"metadata {metadata}: group column 'patient' is missing (columns: subject_id, filename, label, donor)"
            in out.splitlines())
    assert "Job stats" not in out and "Traceback" not in out
    refused = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}", "group_column=Donor")
    assert (f"metadata {metadata}: group column 'Donor' is missing (columns: subject_id, filename, label, donor) "
            "(did you mean 'donor'?)" in (refused.stdout + refused.stderr).splitlines())
    mixed = demo_metadata_with(tmp_path, lambda t: t.assign(donor=["D0", "D0"] + [f"D{i}" for i in range(2, len(t))],
                                                            label=["0", "1"] + list(t["label"][2:])))
    refused = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={mixed}", "group_column=donor")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Job stats" not in out
    assert (f"metadata {mixed}, column 'donor': group 'D0' mixes the classes of the label: subjects rep000 (0), "
            "rep001 (1); a group's repertoires go to one fold, so they must share a class") in out.splitlines(), out[-2000:]
    few = demo_metadata_with(tmp_path, lambda t: t.assign(donor="D" + t["label"] + "-" + (t.groupby("label").cumcount()
                                                                                        % 2).astype(str)))
    refused = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={few}", "group_column=donor", "folds=5")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert any(line.endswith("group(s) of 'donor', fewer than the config's `folds` (5); set `folds` lower")
               for line in out.splitlines()), out[-2000:]
    assert "Job stats" not in out and "Traceback" not in out
    gap = demo_metadata_with(tmp_path, lambda t: donors(t).assign(donor=lambda d: d["donor"].where(d.index != 6, "NA")))
    refused = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={gap}", "group_column=donor")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Job stats" not in out
    assert f"metadata {gap}, line 8, column 'donor': no group for subject 'rep006'" in out.splitlines(), out[-2000:]


def test_a_reference_reaches_every_training_job(tmp_path: Path):
    """`reference:` in the config becomes `--reference FILE` and its filters on each fold's `train`, and the
    file is an input (a changed reference retrains); a chain outside the schema is refused before any job."""
    known = tmp_path / "known receptors.tsv"
    known.write_text("junction_aa\tv_call\tepitope\nCASSLGQAYEQYF\tTRBV7-9\tNLVPMVATV\n")
    config = tmp_path / "config.yaml"
    config.write_text((ROOT / "configs" / "config.yaml").read_text()
                      + f"reference: {{file: '{known}', chain: TRB, species: HomoSapiens}}\n")
    result = snakemake("-n", "-F", "-p", "--nolock", "--configfile", config)
    assert result.returncode == 0, result.stderr
    trains = [line for line in result.stdout.splitlines() if "deeprc-hopfield train " in line]
    assert len(trains) == 5
    assert all(f"--reference '{known}' --reference-chain TRB --reference-species HomoSapiens" in t for t in trains)
    blocks = [block for block in result.stdout.split("\n\n") if "\nrule train:" in block]
    inputs = [next(line for line in block.splitlines() if line.strip().startswith("input:")) for block in blocks]
    assert len(inputs) == 5 and all(str(known) in line for line in inputs)  # an input: a changed file retrains
    config.write_text(config.read_text().replace("chain: TRB", "chain: TCRB"))
    refused = snakemake("-n", "-F", "--nolock", "--configfile", config)
    assert refused.returncode != 0 and "Traceback" not in refused.stdout + refused.stderr
    config.write_text(config.read_text().replace("chain: TCRB", "chain: TRB").replace(str(known), "gone.tsv"))
    missing = snakemake("-n", "-F", "--nolock", "--configfile", config)
    out = missing.stdout + missing.stderr
    assert missing.returncode != 0 and "reference gone.tsv: file not found (the config's `reference: file:`" in out
    assert "MissingInputException" not in out and "Traceback" not in out


def test_semicolon_metadata_and_braces_in_file_names_plan_as_ingest_reads_them(tmp_path: Path):
    """A semicolon-separated table, and a repertoire file whose name holds braces (no wildcard), plan."""
    import shutil

    folder = tmp_path / "repertoires"
    shutil.copytree(ROOT / "data" / "demo" / "repertoires", folder)
    table = pd.read_csv(ROOT / "data" / "demo" / "metadata.csv", dtype=str)
    (folder / table["filename"][0]).rename(folder / f"{{1}}{table['filename'][0]}")
    table.loc[0, "filename"] = f"{{1}}{table['filename'][0]}"
    metadata = tmp_path / "metadata.csv"
    table.to_csv(metadata, index=False, sep=";")
    result = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}", f"repertoires={folder}")
    assert result.returncode == 0 and "rule ingest" in result.stdout, result.stdout + result.stderr
    braced = folder.rename(tmp_path / "batch{2}")  # a folder's own braces cannot be an input: one line, at plan
    refused = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}", f"repertoires={braced}")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "WildcardError" not in out and "Traceback" not in out
    assert f"repertoires {braced}: Snakemake reads braces in a path as a wildcard" in out, out[-2000:]


def test_settings_that_contradict_each_other_or_a_file_in_place_of_the_run_folder_stop_the_plan(tmp_path: Path):
    """Rules between two settings, and a file where results/<run> should be, stop the plan in one line."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "taken").write_text("not a folder")
    cases = {
        "qc: {min_length: 30, max_length: 10}\n": "config $.qc: min_length 30 is greater than max_length 10",
        "model: {pool_subset_size: 10}\ntraining: {sample_size: 60}\n":
            "config $.model.pool_subset_size: 10 must be 0 (off) or at least training.sample_size (60)",
        "run: taken\n": "'results/taken' is a file where the run's folder results/taken should be: rename it or "
                        "choose another `run`",
    }
    for text, message in cases.items():
        config = tmp_path / "config.yaml"
        config.write_text(f"metadata: {ROOT / 'data/demo/metadata.csv'}\nrepertoires: {ROOT / 'data/demo/repertoires'}\n"
                          + text)
        result = snakemake("-s", ROOT / "Snakefile", "-d", tmp_path, "-n", "--nolock", "--configfile", config,
                           cwd=tmp_path)
        out = result.stdout + result.stderr
        assert result.returncode != 0 and message in out.splitlines(), (text, out)
        assert "Traceback" not in out and "Job stats" not in out


def test_a_users_configfile_is_the_whole_config_and_paths_with_spaces_are_quoted(tmp_path: Path):
    """--configfile alone does not inherit the demo's settings (the keys left out take the schema's defaults, and so
    do sections with nothing under them, as `train --config` reads them), and a metadata path or label column with
    spaces reaches the jobs as one argument each; `species: mouse` reaches ingest as --species mouse."""
    cohort = tmp_path / "my cohort"
    cohort.mkdir()
    table = pd.read_csv(ROOT / "data" / "demo" / "metadata.csv", dtype=str).rename(columns={"label": "CMV status"})
    table.to_csv(cohort / "metadata.csv", index=False)
    config = tmp_path / "mine.yaml"
    config.write_text(f"run: mine\nmetadata: '{cohort / 'metadata.csv'}'\nrepertoires: {ROOT / 'data/demo/repertoires'}\n"
                      "label_column: CMV status\nspecies: mouse\n"
                      "qc:\n  # min_length: 6\ntraining:\n  # n_updates: 3\ninterpret:\nthreads:\nmodel:\nreference:\n")
    result = snakemake("-s", ROOT / "Snakefile", "-d", tmp_path, "-n", "-p", "--nolock", "--configfile", config,
                       cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    ingest = next(line for line in out.splitlines() if "deeprc-hopfield ingest " in line)
    # (inside the working directory, the path is written relative to it: one spelling of each path)
    assert "--metadata 'my cohort/metadata.csv'" in ingest and "--label-column 'CMV status'" in ingest
    assert "--species mouse" in ingest and "--min-length 4 --max-length 40 " in ingest  # an empty qc: its defaults
    trains = [line for line in out.splitlines() if "deeprc-hopfield train " in line]
    assert len(trains) == 5 and all("--label-column 'CMV status'" in line for line in trains)
    assert "--device auto" in trains[0]  # the schema's default, not the demo's `device: cpu`


def test_a_failed_job_shows_its_error(tmp_path: Path):
    """Snakemake's own summary of a failed job points at the log; the workflow prints the job's error too: its line,
    and below it the line of each file that ingest refused (not a line that stops at its colon)."""
    metadata = demo_metadata_with(tmp_path, lambda t: t)
    folder = tmp_path / "repertoires"
    folder.mkdir()
    for file in (ROOT / "data" / "demo" / "repertoires").iterdir():
        (folder / file.name).symlink_to(file)
    broken = [folder / name for name in pd.read_csv(metadata)["filename"][[3, 5]]]
    for file in broken:
        file.unlink()
        file.write_text("a\tb\n1\t2\n")  # no repertoire format
    config = tmp_path / "config.yaml"
    config.write_text(f"run: bad\nmetadata: {metadata}\nrepertoires: {folder}\n")
    result = snakemake("results/bad/cohort.h5", "-s", ROOT / "Snakefile", "-d", tmp_path, "--cores", "1", "--nolock",
                       "--configfile", config, cwd=tmp_path, timeout=240)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    said = ("logs/bad/ingest.log: deeprc-hopfield ingest: error: 2 of 100 repertoire files cannot be used, and "
            "nothing was written; fix them (or leave them out) and run again:")
    assert said in lines, out[-3000:]
    first = lines.index(said)
    assert [line.split(":")[0] for line in lines[first + 1:first + 3]] == [
        f"  {file.relative_to(tmp_path)}, line 1" for file in broken], out[-3000:]
    assert all("unrecognised repertoire format" in line for line in lines[first + 1:first + 3])
    assert not (tmp_path / "results" / "bad" / "cohort.h5").exists()


def test_positive_class_reaches_ingest_and_evaluate_and_a_guessed_one_is_noted(tmp_path: Path):
    """`positive_class` decides what the model looks for: ingest codes the classes by it and evaluate scores by it;
    one that is no class stops the plan; without it, an order that the names do not say is noted at the plan."""
    metadata = demo_metadata_with(tmp_path, lambda t: t.assign(label=t["label"].map({"0": "mild", "1": "severe"})))
    result = snakemake("-n", "-F", "-p", "--nolock", *OWN_RUN, f"metadata={metadata}")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert f"note: metadata {metadata}, label 'label': neither name says which is negative, so the alphabet makes " \
           "the positive class: negative 'mild', positive 'severe'; if the positive class is 'mild', say so with " \
           "--positive-class (the workflow: positive_class)" in out.splitlines()
    result = snakemake("-n", "-F", "-p", "--nolock", *OWN_RUN, f"metadata={metadata}", "positive_class=mild")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "note: metadata" not in out
    commands = [line for line in out.splitlines() if "deeprc-hopfield ingest " in line or
                "deeprc-hopfield evaluate " in line]
    assert len(commands) == 2 and all("--positive-class mild" in line for line in commands)
    assert "--label-name label " in next(line for line in commands if "evaluate" in line)  # beside the class
    result = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}", "positive_class=Mild")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in out
    assert "config positive_class: 'Mild' is not a class of the label 'label' (mild, severe)" in out, out[-2000:]


def test_subjects_without_a_label_stop_the_plan_unless_drop_unlabelled(tmp_path: Path):
    """An `Unknown` status stops the plan in one line that says how to go on; with `drop_unlabelled: true` the
    subject is left out (its file need not exist) and ingest is told to leave it out too."""
    unknown = lambda t: t.assign(label=t["label"].where(t.index != 3, "Unknown"),  # noqa: E731
                                 filename=t["filename"].where(t.index != 3, "gone.tsv"))
    metadata = demo_metadata_with(tmp_path, unknown)
    result = snakemake("-n", "-F", "--nolock", *OWN_RUN, f"metadata={metadata}")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in out
    assert f"metadata {metadata}, line 5, column 'label': missing label value ('Unknown' is read as missing); 1 " \
           "row(s) have none: give each a value, or set `drop_unlabelled: true` in the config to leave them out (and " \
           "classify them with `deeprc-hopfield predict` after training)" in out.splitlines(), out[-2000:]
    result = snakemake("-n", "-F", "-p", "--nolock", *OWN_RUN, f"metadata={metadata}", "drop_unlabelled=True")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert f"note: metadata {metadata}: 1 of 100 subjects have no value for 'label' and are left out " \
           "(drop_unlabelled): rep003 (line 5)" in out
    ingest = next(line for line in out.splitlines() if "deeprc-hopfield ingest " in line)
    assert "--drop-unlabelled" in ingest


def test_the_default_profile_runs_on_the_cores_the_machine_has(tmp_path: Path):
    """`cores: all`, not a fixed 8 that a 2-core machine would be oversubscribed with."""
    from snakemake.utils import available_cpu_count

    demo = ROOT / "data" / "demo"
    result = snakemake("results/demo/config.yaml", "-s", ROOT / "Snakefile", "-d", tmp_path, "--profile",
                       ROOT / "workflow" / "profiles" / "default", "--configfile", ROOT / "configs" / "config.yaml",
                       "--config", f"metadata={demo / 'metadata.csv'}", f"repertoires={demo / 'repertoires'}",
                       cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f"Provided cores: {available_cpu_count()}\n" in out


@pytest.mark.slow
def test_a_changed_setting_redoes_only_the_jobs_that_read_it(finished_run: dict, tmp_path: Path):
    """After a finished run, dry runs of one change each: the jobs Snakemake plans are those whose results
    the change can alter (settings compared whatever their order; the clones file depends on the clone
    settings alone, and not on the `baselines` list)."""
    copy_of_run(finished_run, tmp_path)
    settings = finished_run["settings"]

    def planned(settings: dict, *extra: str) -> set[str]:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(settings, sort_keys=False))
        result = snakemake(*extra, "-s", ROOT / "Snakefile", "-d", tmp_path, "--cores", "2", "--configfile", config,
                           cwd=tmp_path, timeout=240)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-3000:]
        return set() if "Nothing to be done" in out else set(planned_jobs(out))

    def changed(**changes) -> dict:
        return {**settings, **changes}

    def training(**changes) -> dict:
        return changed(training={**settings["training"], **changes})

    assert planned(settings, "-n") == set()  # the finished run, copied with its times
    reordered = {key: settings[key] for key in reversed(settings)}
    reordered["training"] = dict(reversed(settings["training"].items()))
    assert planned(reordered, "-n") == set()
    jobs = planned(training(patience=2), "-n")
    assert "train" in jobs and not jobs & {"clones", "clones_config", "baselines"}, jobs
    for how_it_runs in (training(checkpoint_every=2), training(embed_chunk=1000), changed(device="auto")):  # not what
        # it learns or scores: the same model on the CPU and on a GPU
        assert planned(how_it_runs, "-n") == {"run_config", "report", "all"}  # the report lists the run's settings
    for baselines in ([], ["kmer"], ["public_clones", "kmer"]):
        jobs = planned(changed(baselines=baselines), "-n")
        assert "evaluate" in jobs and not jobs & {"clones", "train_config", "train", "predict_fold"}, (baselines, jobs)
    jobs = planned(training(validation_fraction=0.3), "-n")  # the folds' parts of the clones file: not the baselines'
    assert {"clones", "train"} <= jobs and "baselines" not in jobs, jobs
    jobs = planned(changed(species="mouse"), "-n")  # whose genes the names are: everything from ingest on
    assert {"ingest", "split", "clones", "train", "baselines", "predict_fold"} <= jobs, jobs

    # the next train job that runs uses them: they are on its command line
    shutil.rmtree(tmp_path / "results" / "tiny" / "models" / "fold1")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(training(embed_chunk=1000, checkpoint_every=2)))
    dry = snakemake("-n", "-p", "-s", ROOT / "Snakefile", "-d", tmp_path, "--cores", "2", "--configfile", config,
                    cwd=tmp_path, timeout=240)
    out = dry.stdout + dry.stderr
    assert planned_jobs(out)["train"] == 1 and "--checkpoint-every 2 --embed-chunk 1000" in out, out[-3000:]


def test_the_workflow_keeps_the_packages_list_of_execution_settings():
    """common.smk keeps its own copy (importing the training code costs every plan seconds of torch): the same."""
    from deeprc_hopfield.training.config import EXECUTION_SETTINGS

    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    kept = re.search(r"^TRAINING_EXECUTION_KEYS = (\(.*\))$", text, re.MULTILINE)
    assert kept and ast.literal_eval(kept[1]) == EXECUTION_SETTINGS


def test_fold_models_of_an_earlier_run_with_more_folds_are_noted(tmp_path: Path):
    """After `folds` was lowered, the run's folder still holds the earlier run's higher folds: the plan says so (its
    jobs name their own folds, but a folder-wide `predict --model` would average them in)."""
    import shutil

    run = "stale_folds_check"
    models = ROOT / "results" / run / "models"
    try:
        for name in ("fold1", "fold7", "fold7.checkpoint"):
            (models / name).mkdir(parents=True)
        metadata = demo_metadata_with(tmp_path, lambda t: t)
        result = snakemake("-n", "-F", "--nolock", "--config", f"run={run}", f"metadata={metadata}", "folds=5")
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-2000:]
        notes = [line for line in out.splitlines() if "of an earlier run with more folds" in line]
        assert len(notes) == 1 and notes[0].startswith(f"note: results/{run}/models/fold7: fold model(s)"), notes
    finally:
        shutil.rmtree(ROOT / "results" / run, ignore_errors=True)
        shutil.rmtree(ROOT / "logs" / run, ignore_errors=True)
