"""The workflow's config as the package reads and checks it (`deeprc_hopfield/workflow_config.py`): `deeprc-hopfield
check-config` on real files, each problem in one line that names the file, and the line where YAML stopped or the
key's path; the config the Snakefile runs on, typed and with the schema's defaults filled as Snakemake fills them."""

from __future__ import annotations

import copy
import fnmatch
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import deeprc_cli
from deeprc_hopfield.data import CONFIG_SCHEMA
from deeprc_hopfield.errors import ConfigError
from deeprc_hopfield.workflow_config import (config_schema, empty_sections, read_config_file, typed_strings,
                                             whole_numbers, workflow_config)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ERROR = "deeprc-hopfield check-config: error: "
HINT = " (keys, types and defaults: deeprc_hopfield/data/config.schema.yaml)"


def checked(tmp_path: Path, text: str, name: str = "my.yaml") -> tuple[Path, subprocess.CompletedProcess]:
    """A config file of `text` and what `deeprc-hopfield check-config` said of it."""
    path = tmp_path / name
    path.write_text(text)
    return path, deeprc_cli("check-config", path)


def refused(tmp_path: Path, text: str) -> str:
    """The one error line of `check-config` on a config of `text` (asserting the exit, that it is one line and that
    nothing went to stdout)."""
    path, result = checked(tmp_path, text)
    assert result.returncode == 1 and result.stdout == "", result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(ERROR), result.stderr
    return result.stderr[len(ERROR):].rstrip("\n").replace(str(path), "FILE")


def test_the_shipped_configs_are_valid():
    shipped = sorted((ROOT / "configs").glob("*.yaml"))
    assert ROOT / "configs" / "config.yaml" in shipped and ROOT / "configs" / "cmv_example.yaml" in shipped
    result = deeprc_cli("check-config", *shipped)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {str(path) for path in shipped}
    assert lines[str(ROOT / "configs" / "cmv_example.yaml")] == "valid (all 78 settings given)"  # it lists every key
    assert lines[str(ROOT / "configs" / "config.yaml")].endswith(" settings given; the rest take the schema's "
                                                                  "defaults)")


def test_a_valid_config_counts_the_settings_it_gives(tmp_path: Path):
    """A section counts its settings (one with nothing under it none), a list one; text YAML leaves (`1e-3`) and a
    whole number written `3.0` are read as the workflow reads them."""
    path, result = checked(tmp_path, "training:\nmodel: {beta: 0.5}\nfolds: 3.0\nbaselines: [kmer]\n"
                                     "group_column: null\ninterpret: {top: 5, motif_alpha: 1e-3}\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{path}: valid (6 settings given; the rest take the schema's defaults)\n"
    path, result = checked(tmp_path, "folds: 4\n", "one.yaml")
    assert result.stdout == f"{path}: valid (1 setting given; the rest take the schema's defaults)\n"


@pytest.mark.parametrize("text, message", [
    ("run: x\nfolds: [\n", "config FILE, line 3: not valid YAML at character 1: expected the node content, but found "
     "'<stream end>'"),
    ("training:\n\tn_updates: 3\n", "config FILE, line 2: not valid YAML at character 1: found character '\\t' that "
     "cannot start any token"),
    ("training:\n  n_updates: 3\n   sample_size: 2\n", "config FILE, line 3: not valid YAML at character 15: mapping "
     "values are not allowed here"),
])
def test_broken_yaml_is_named_by_its_line(tmp_path: Path, text: str, message: str):
    """What Snakemake calls 'not valid JSON or YAML', naming no line."""
    assert refused(tmp_path, text) == message


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path):
    assert refused(tmp_path, "training: {n_updates: 3}\nfolds: 3\ntraining: {sample_size: 100}\n") == (
        "config FILE, line 3: not valid YAML at character 1: the key 'training' appears twice (first on line 1), and "
        "YAML would keep only the last; merge the two")


@pytest.mark.parametrize("text, message", [
    ("trainng: {n_updates: 3}\n", "config FILE $: Additional properties are not allowed ('trainng' was unexpected) "
     "(did you mean 'training'?)" + HINT),
    ("training: {n_updatse: 3, sample_size: 10}\n", "config FILE $.training: Additional properties are not allowed "
     "('n_updatse' was unexpected) (did you mean 'n_updates'?)" + HINT),
    ("nonsense: 1\n", "config FILE $: Additional properties are not allowed ('nonsense' was unexpected)" + HINT),
])
def test_an_unknown_key_names_the_known_one_it_is_likely_a_typo_of(tmp_path: Path, text: str, message: str):
    assert refused(tmp_path, text) == message


@pytest.mark.parametrize("text, message", [
    ("folds: one\n", "config FILE $.folds: 'one' is not of type 'integer'" + HINT),
    ("training: {n_updates: 2.5}\n", "config FILE $.training.n_updates: 2.5 is not of type 'integer'" + HINT),
    ("training: {n_updates: 0}\n", "config FILE $.training.n_updates: 0 is less than the minimum of 1" + HINT),
    ("drop_unlabelled: maybe\n", "config FILE $.drop_unlabelled: 'maybe' is not of type 'boolean'" + HINT),
    ("baselines: kmer\n", "config FILE $.baselines: 'kmer' is not of type 'array'" + HINT),
    ("folds:\n", "config FILE $.folds: no value (`folds:` with nothing after it): give it one, or leave the key out "
     "to take its default" + HINT),
])
def test_a_wrong_type_or_value_names_the_keys_path(tmp_path: Path, text: str, message: str):
    assert refused(tmp_path, text) == message


@pytest.mark.parametrize("config, message", [
    ({"qc": {"chain": "TCRB"}}, "config $.qc.chain: 'TCRB' is not one of TRA, TRB, TRG, TRD, IGH, IGK, IGL (any case) "
     "(did you mean 'TRB'?)" + HINT),  # not the schema's regex, '^(?i:TRA|TRB|...)$'
    ({"qc": {"chain": "tcrb"}}, "config $.qc.chain: 'tcrb' is not one of TRA, TRB, TRG, TRD, IGH, IGK, IGL (any case) "
     "(did you mean 'TRB'?)" + HINT),
    ({"qc": {"chain": "beta"}}, "config $.qc.chain: 'beta' is not one of TRA, TRB, TRG, TRD, IGH, IGK, IGL (any case)"
     + HINT),
    ({"reference": {"file": "known.tsv", "chain": "TCRB"}}, "config $.reference.chain: 'TCRB' is not one of TRA, TRB, "
     "TRG, TRD, IGH, IGK, IGL, or null (did you mean 'TRB'?)" + HINT),
    ({"device": "CPU"}, "config $.device: 'CPU' is not one of auto, cpu, cuda (did you mean 'cpu'?)" + HINT),
    ({"run": "my run", "metadata": "m.csv", "repertoires": "r"},  # a pattern that lists no names: jsonschema's words
     "config $.run: 'my run' does not match '^[A-Za-z0-9][A-Za-z0-9_.-]*$'" + HINT),
])
def test_a_value_outside_a_list_of_names_is_said_in_words_with_the_name_meant(config: dict, message: str):
    with pytest.raises(ConfigError) as refused_value:
        workflow_config(config)
    assert str(refused_value.value) == message


@pytest.mark.parametrize("text, message", [
    ("", "config FILE: holds nothing where the workflow takes `key: value` settings at the top level"),
    ("- folds: 3\n", "config FILE: holds a list where the workflow takes `key: value` settings at the top level"),
    ("run: mine\n", "config FILE: run 'mine' does not name both `metadata` and `repertoires`, so it would read the "
     "demo cohort's (data/demo); set both to your cohort's table and folder"),
])
def test_a_file_without_settings_or_a_run_without_its_cohort_is_refused(tmp_path: Path, text: str, message: str):
    assert refused(tmp_path, text) == message


@pytest.mark.parametrize("text, message", [
    ("training: {on: 3}\n", "config FILE $.training: the key True is not text (YAML reads on, off, yes, no, true and "
     "false as booleans, and digits as a number): no setting is named so; quote it if you meant text"),
    ("1: x\n", "config FILE $: the key 1 is not text (YAML reads on, off, yes, no, true and false as booleans, and "
     "digits as a number): no setting is named so; quote it if you meant text"),
    ("qc: {min_length: 30, max_length: 10}\n", "config FILE $.qc: min_length 30 is greater than max_length 10"),
    ("model: {pool_subset_size: 10}\ntraining: {sample_size: 60}\n",
     "config FILE $.model.pool_subset_size: 10 must be 0 (off) or at least training.sample_size (60)"),
])
def test_settings_that_contradict_each_other_are_refused_as_the_workflow_refuses_them(tmp_path: Path, text: str,
                                                                                      message: str):
    assert refused(tmp_path, text) == message


def test_every_file_is_checked_and_each_problem_named(tmp_path: Path):
    good, bad, worse = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "worse.yaml"
    good.write_text("folds: 3\n")
    bad.write_text("folds: one\n")
    worse.write_text("folds: [\n")
    result = deeprc_cli("check-config", bad, good, worse, tmp_path / "missing.yaml")
    assert result.returncode == 1
    assert result.stdout == f"{good}: valid (1 setting given; the rest take the schema's defaults)\n"
    assert result.stderr.splitlines() == [
        f"{ERROR}3 of 4 config files are not valid:",
        f"  config {bad} $.folds: 'one' is not of type 'integer'" + HINT,
        f"  config {worse}, line 2: not valid YAML at character 1: expected the node content, but found "
        "'<stream end>'",
        f"  config {tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"]


def test_help_says_what_is_checked_and_why(tmp_path: Path):
    text = " ".join(deeprc_cli("check-config", "--help").stdout.split())
    assert "usage: deeprc-hopfield check-config [-h]" in text and "FILE [FILE ...]" in text
    assert "Snakemake's own message for broken YAML, 'Config file is not valid JSON or YAML', names no line" in text
    for checked_too in ("line and character", "given twice", "deeprc_hopfield/data/config.schema.yaml",
                        "did you mean", "`metadata` and `repertoires`"):
        assert checked_too in text
    assert "check-config" in deeprc_cli("--help").stdout


def test_the_installed_command_and_the_workflow_say_the_same_line(tmp_path: Path):
    """The entry point in a process of its own: one line, no traceback; a dry run of the workflow with the same file
    stops with that line (the workflow reads its config as `check-config` does)."""
    path = tmp_path / "my.yaml"
    path.write_text("training: {n_updates: 3}\nfolds: 3\ntraining: {sample_size: 100}\n")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = subprocess.run([str(BIN / "deeprc-hopfield"), "check-config", str(path)], capture_output=True,
                             text=True, timeout=120, env=env)
    assert command.returncode == 1 and command.stderr.startswith(ERROR) and "Traceback" not in command.stderr
    line = command.stderr[len(ERROR):].rstrip("\n")
    assert line.startswith(f"config {path}, line 3: ")
    plan = subprocess.run([str(BIN / "snakemake"), "-n", "-F", "--nolock", "--configfile", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert plan.returncode != 0 and line in (plan.stdout + plan.stderr).splitlines()


def _as_snakemake_fills_it(config: dict) -> dict:
    """The config as the Snakefile made it before the package did: typed, then `snakemake.utils.validate`'s defaults."""
    from snakemake.utils import validate

    schema = config_schema()
    values = empty_sections(typed_strings(copy.deepcopy(config), schema), schema)
    validate(values, str(CONFIG_SCHEMA))
    return whole_numbers(values, schema)


@pytest.mark.parametrize("config", [
    {},
    read_config_file(ROOT / "configs" / "config.yaml"),
    read_config_file(ROOT / "configs" / "cmv_example.yaml"),
    {"training": None, "model": {"beta": "~"}, "qc": {"min_length": 4.0}, "folds": "3.0", "drop_unlabelled": "TRUE",
     "group_column": "null", "interpret": {"top": "5"}},
])
def test_defaults_are_filled_and_text_typed_as_snakemake_filled_them(config: dict):
    given = copy.deepcopy(config)
    typed = workflow_config(config)
    assert typed == _as_snakemake_fills_it(config)
    assert config == given  # left as it was
    schema = config_schema()["properties"]
    assert set(typed) == set(schema) and set(typed["training"]) == set(schema["training"]["properties"])
    typed["training"]["n_updates"] = -1  # a default is a copy: the next config gets the schema's
    assert workflow_config(config) == _as_snakemake_fills_it(config)


def test_command_line_text_takes_the_schemas_types():
    """`--config folds=3.0 drop_unlabelled=true group_column=null` hands over text."""
    typed = workflow_config({"folds": "3.0", "drop_unlabelled": "true", "group_column": "null", "report_title": "true"})
    assert (typed["folds"], typed["drop_unlabelled"], typed["group_column"], typed["report_title"]) == (3, True, None,
                                                                                                       "true")
    assert type(typed["folds"]) is int


def test_the_merged_config_is_named_config_and_one_file_by_its_path(tmp_path: Path):
    with pytest.raises(ConfigError) as merged:
        workflow_config({"folds": "one"})
    assert str(merged.value) == "config $.folds: 'one' is not of type 'integer'" + HINT
    with pytest.raises(ConfigError) as run:
        workflow_config({"run": "mine", "metadata": "m.csv"})
    assert str(run.value).startswith("config: run 'mine' does not name both")
    with pytest.raises(ConfigError) as one:
        workflow_config({"folds": "one"}, tmp_path / "my.yaml")
    assert str(one.value).startswith(f"config {tmp_path / 'my.yaml'} $.folds: 'one'")
    assert str(pickle.loads(pickle.dumps(one.value))) == str(one.value)  # across process pools too


def test_the_schema_ships_inside_the_package():
    """`check-config` of an installed (not editable) package finds the schema: it lies in the package's data folder,
    which pyproject's package data names."""
    import deeprc_hopfield.data

    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    assert CONFIG_SCHEMA.parent == Path(deeprc_hopfield.data.__file__).resolve().parent and CONFIG_SCHEMA.is_file()
    with open(ROOT / "pyproject.toml", "rb") as handle:
        shipped = tomllib.load(handle)["tool"]["setuptools"]["package-data"]["deeprc_hopfield.data"]
    assert any(fnmatch.fnmatch(CONFIG_SCHEMA.name, pattern) for pattern in shipped)
    assert not (ROOT / "workflow" / "schemas" / "config.schema.yaml").exists()  # one copy
