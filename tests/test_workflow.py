"""The Snakemake workflow: dry runs of every shipped config and profile, lint, config validation,
and (slow) a full run on a tiny simulated cohort through the `snakemake` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
STAGES = {"ingest", "split", "train", "predict_fold", "attend_fold", "collect_predictions",
          "collect_attended", "baselines", "evaluate", "report", "all"}

pytestmark = pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed beside python")


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


def fake_immunoseq_cohort(folder: Path, n: int = 6) -> tuple[Path, Path]:
    """A metadata table and immunoSEQ v1 files, enough for a dry run of the CMV layout."""
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
    result = snakemake("-n", "--nolock", "--cores", "2")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    assert STAGES <= set(jobs)
    assert jobs["train"] == jobs["predict_fold"] == jobs["attend_fold"] == 5
    assert "results/demo/report.html" in result.stdout + result.stderr


def test_dry_run_of_the_cmv_example(tmp_path: Path):
    metadata, repertoires = fake_immunoseq_cohort(tmp_path)
    result = snakemake("-n", "--nolock", "--cores", "2", "--configfile", "configs/cmv_example.yaml",
                       "--replace-workflow-config", "--config", f"metadata={metadata}",
                       f"repertoires={repertoires}")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    jobs = planned_jobs(out)
    assert STAGES <= set(jobs) and jobs["train"] == 5
    assert "--format immunoseq" in out or "results/cmv/" in out
    assert "results/cmv/report.html" in out


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_dry_run_of_each_profile(profile: str):
    if profile == "slurm":
        pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install 'deeprc-hopfield[cluster]'")
    result = snakemake("-n", "--nolock", "--profile", f"workflow/profiles/{profile}")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["train"] == 5 and "report" in jobs
    if profile == "slurm":  # the GPU request of the training jobs reaches the executor
        train_block = result.stdout[result.stdout.index("rule train:"):]
        assert "gpu=1" in train_block.split("\n\n")[0]


def test_predict_target_needs_a_folder_and_plans_the_ensemble(tmp_path: Path):
    refused = snakemake("-n", "--nolock", "predict")
    assert refused.returncode != 0
    assert "--config new_repertoires=DIR" in refused.stdout + refused.stderr
    new = tmp_path / "new"
    new.mkdir()
    planned = snakemake("-n", "-p", "--nolock", "predict", "--config", f"new_repertoires={new}")
    assert planned.returncode == 0, planned.stderr
    jobs = planned_jobs(planned.stdout + planned.stderr)
    assert jobs["predict_new"] == jobs["attend_new"] == 1 and jobs["train"] == 5
    assert "--model results/demo/models " in planned.stdout


def test_lint_is_clean_apart_from_conda():
    result = snakemake("--lint", "--nolock")
    out = result.stdout + result.stderr
    warnings = [line.strip() for line in out.splitlines() if line.strip().startswith("* ")]
    assert warnings, out  # the conda/container advice is expected (README, "Lint")
    assert all(w.startswith("* Specify a conda environment or container") for w in warnings), warnings


@pytest.mark.parametrize("bad, message", [
    ("folds: one\n", "config $.folds: 'one' is not of type 'integer'"),
    ("trainng: {n_updates: 3}\n", "Additional properties are not allowed ('trainng' was unexpected)"),
    ("training: {n_updates: 0}\n", "config $.training.n_updates: 0 is less than the minimum of 1"),
    ("device: gpu\n", "config $.device: 'gpu' is not one of ['auto', 'cpu', 'cuda']"),
])
def test_a_wrong_config_gets_the_schema_message_not_a_traceback(tmp_path: Path, bad: str, message: str):
    config = tmp_path / "bad.yaml"
    config.write_text(bad)
    result = snakemake("-n", "--nolock", "--configfile", config)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in out
    assert "Traceback" not in out and "Failed validating" not in out
