"""One source of truth for hyper-parameters: the workflow's config schema.

The `model:` and `training:` sections of `deeprc_hopfield/data/config.schema.yaml` describe every
setting a user may change, with its type, bounds and default. The dataclasses that the package
builds (`ModelConfig`, `TrainingConfig`) and README's defaults block must say the same.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import yaml

from deeprc_hopfield.data import CONFIG_SCHEMA
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.model import ModelConfig, TaskSpec
from deeprc_hopfield.sampling import SAMPLING_MODES
from deeprc_hopfield.training import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load(CONFIG_SCHEMA.read_text())["properties"]
from deeprc_hopfield.training.config import SET_BY_TRAINING  # noqa: E402 (ModelConfig fields no user sets)
TOP_LEVEL = {"seed"}  # TrainingConfig fields the workflow takes from the config's top level
JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _fields(cls: type, exclude: set[str]) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.name not in exclude}


def _default(f: dataclasses.Field) -> object:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _build(section: str, **values: object) -> object:
    if section == "model":
        return ModelConfig(tasks=[TaskSpec("status", "binary")], **values)
    return TrainingConfig(**values)


SECTIONS = {"model": (ModelConfig, SET_BY_TRAINING), "training": (TrainingConfig, TOP_LEVEL)}


@pytest.mark.parametrize("section", SECTIONS)
def test_schema_and_dataclass_name_the_same_settings_with_the_same_defaults(section):
    cls, exclude = SECTIONS[section]
    fields = _fields(cls, exclude)
    schema = SCHEMA[section]["properties"]
    assert set(schema) == set(fields), f"{section}: only in the schema {set(schema) - set(fields)}, " \
                                       f"only in {cls.__name__} {set(fields) - set(schema)}"
    for name, f in fields.items():
        assert schema[name]["default"] == _default(f), f"{section}.{name}: schema and {cls.__name__} defaults differ"
        types = schema[name]["type"] if isinstance(schema[name]["type"], list) else [schema[name]["type"]]
        kinds = [JSON_TYPES[t] for t in (int, float, bool, str) if t.__name__ in str(f.type)]
        assert set(kinds) <= set(types) and ("null" in types) == ("None" in str(f.type)), \
            f"{section}.{name}: schema type {types} for a field of type {f.type}"
    for name in exclude & set(SCHEMA):  # the top-level seed
        assert SCHEMA[name]["default"] == _default(_fields(cls, set())[name])


@pytest.mark.parametrize("section", SECTIONS)
def test_every_schema_bound_is_enforced_by_the_dataclass(section):
    """A value just outside a schema bound is refused by the dataclass too, so the CLI (which reads a
    YAML without the schema) refuses what the workflow refuses; the schema's default is accepted."""
    _build(section)
    checked, accepted = 0, []
    for name, spec in SCHEMA[section]["properties"].items():
        outside = []
        if "minimum" in spec:
            outside.append(spec["minimum"] - (1 if spec["type"] == "integer" else 1e-6))
        if "exclusiveMinimum" in spec:
            outside.append(spec["exclusiveMinimum"])
        if "maximum" in spec:
            outside.append(spec["maximum"] + (1 if spec["type"] == "integer" else 1e-6))
        if "exclusiveMaximum" in spec:
            outside.append(spec["exclusiveMaximum"])
        if "enum" in spec:
            outside.append(max((v for v in spec["enum"] if isinstance(v, int)), default=0) + 1
                           if spec["type"] == "integer" else "not-a-choice")
        for value in outside:
            try:
                _build(section, **{name: value})
                accepted.append(f"{name}={value!r}")
            except (ValueError, DeepRCError):
                pass
            checked += 1
    assert not accepted, f"{section}: outside the schema's bounds, yet accepted: {', '.join(accepted)}"
    assert checked >= 5


def test_sampling_modes_are_the_schema_enum():
    assert SCHEMA["training"]["properties"]["sampling"]["enum"] == list(SAMPLING_MODES)


def test_the_qc_chain_is_one_of_the_loci_ingest_takes_in_any_case():
    """The schema's `qc: chain:` accepts what `ingest --chain` accepts (an IMGT locus, any case) and nothing else."""
    import jsonschema

    from deeprc_hopfield.genes import LOCI

    chain = SCHEMA["qc"]["properties"]["chain"]
    for locus in LOCI:
        for spelling in (locus, locus.lower()):
            jsonschema.validate(spelling, chain)
    jsonschema.validate(None, chain)
    for wrong in ("XYZ", "TRBV", " TRB", "TCRB"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, chain)


def test_the_species_is_one_ingest_reads_and_human_by_default():
    """The schema's `species` is ingest's --species: human or mouse, human when left out; `rat` is refused (in one
    line by the workflow: tests/test_workflow.py)."""
    import jsonschema

    from deeprc_hopfield.species import DEFAULT_SPECIES, SPECIES

    species = SCHEMA["species"]
    assert species["enum"] == list(SPECIES) and species["default"] == DEFAULT_SPECIES
    jsonschema.validate("mouse", species)
    with pytest.raises(jsonschema.ValidationError) as refused:
        jsonschema.validate("rat", species)
    assert refused.value.message == "'rat' is not one of ['human', 'mouse']"


def _readme_defaults() -> dict:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(model:.*?)```", text, re.S)
    assert block, "README.md lost its defaults block (```yaml model: ... training: ...```)"
    return yaml.safe_load(block.group(1))


def test_readme_defaults_block_is_the_schema():
    """README's block lists every setting with its default; on a change, paste the block this prints."""
    readme = _readme_defaults()
    expected = {section: {name: spec["default"] for name, spec in SCHEMA[section]["properties"].items()}
                for section in SECTIONS}
    expected["training"]["seed"] = SCHEMA["seed"]["default"]
    for section, values in expected.items():
        for name, value in values.items():
            got = readme.get(section, {}).get(name, "missing")
            same = got == value or (isinstance(value, float) and isinstance(got, float) and math.isclose(got, value))
            assert same, f"README {section}.{name}: {got}, schema default {value}; expected block:\n" + \
                yaml.safe_dump(expected, default_flow_style=None, sort_keys=False, width=100)
        assert set(readme.get(section, {})) == set(values), f"README {section} keys differ from the schema"


def test_metadata_schema_requires_the_columns_ingest_requires():
    """The workflow checks the metadata table at planning time against its schema; `ingest` checks the
    same required columns, so a table passes both or neither."""
    from deeprc_hopfield.metadata import REQUIRED_COLUMNS

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "metadata.schema.yaml").read_text())
    assert set(schema["required"]) == set(REQUIRED_COLUMNS)


def test_a_training_setting_of_the_wrong_type_is_refused_naming_the_file_and_key(tmp_path):
    """YAML hands over what it parses: `n_updates: five`, `n_updates: true`, `clone_pgen: yes please` must be
    refused in one line that names the config file and the key, as the workflow's schema refuses them."""
    from deeprc_hopfield.training.config import read_config

    for f in dataclasses.fields(TrainingConfig):
        wrong = 1 if isinstance(f.default, bool) else 1.5 if isinstance(f.default, str) else "five"
        path = tmp_path / f"{f.name}.yaml"
        path.write_text(yaml.safe_dump({"training": {f.name: wrong}}))
        with pytest.raises(DeepRCError) as caught:
            read_config(path)
        assert str(caught.value).startswith(f"{path}: ") and f"{f.name} must be" in str(caught.value), caught.value
    (tmp_path / "bool.yaml").write_text("training:\n  n_updates: true\n")
    with pytest.raises(DeepRCError, match="n_updates must be a whole number, got True"):
        read_config(tmp_path / "bool.yaml")
    (tmp_path / "ok.yaml").write_text("training:\n  learning_rate: 1\n  clone_radius: 1\n")
    assert read_config(tmp_path / "ok.yaml")[1].learning_rate == 1


def _refused(path, text: str) -> str:
    """The one-line error of reading a config of `text` (written to `path`)."""
    from deeprc_hopfield.training.config import read_config

    path.write_text(text)
    with pytest.raises(DeepRCError) as caught:
        read_config(path)
    return str(caught.value)


@pytest.mark.parametrize("text, message", [
    # a misspelled or malformed section, and a range error, name the file
    ("modle:\n  n_filters: 8\n", "unknown section(s) 'modle'; a config has 'model' and/or 'training'"),
    ("training:\n  - n_updates\n", "section 'training' must be a mapping"),
    ("training:\n  sample_size: 0\n", "training config: sample_size must be >= 1"),
    # model options that the model refuses once training has started are refused when `train` reads its config
    ("model: {pool_subset_size: 10}\ntraining: {sample_size: 60}\n",
     "model config: pool_subset_size (10) must be 0 (off) or at least training.sample_size (60)"),
    ("model: {n_filtres: 8}\n", "model: unknown key(s) n_filtres; known: "),
    ("model: {clone_radius: auto}\n", "model: unknown key(s) clone_radius; known: "),
    ("model: {n_filters: eight}\n", "model config: ModelConfig.n_filters must be an integer"),
    # a number YAML reads as text gets a hint
    ("training:\n  learning_rate: 1e-3\n", "training config: learning_rate must be a number, got '1e-3' (YAML reads "
     "a number without a decimal point before the exponent as text: write 1.0e-3 for 1e-3)"),
])
def test_a_config_that_training_would_refuse_is_refused_naming_the_file(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    assert _refused(path, text).startswith(f"{path}: {message}")


@pytest.mark.parametrize("text, where", [
    ("training:\n  n_updates: 3\n   sample_size: 2\n", "line 3: not valid YAML at character 15: mapping values are not "
     "allowed here"),
    ("training:\n\tn_updates: 3\n", "line 2: not valid YAML at character 1: found character '\\t' that cannot start "
     "any token"),
    ("training:\n  n_updates: 3\x07\n", "line 2: not valid YAML at character 15: the character #x0007 is not allowed"),
    ("training:\n  n_updates: 3\n  sample_size: 2\n  n_updates: 4\n", "line 4: not valid YAML at character 3: the key "
     "'n_updates' appears twice (first on line 2), and YAML would keep only the last; merge the two"),
])
def test_a_config_that_is_not_yaml_is_refused_in_one_line_with_its_line(tmp_path, text, where):
    path = tmp_path / "config.yaml"
    assert _refused(path, text) == f"{path}, {where}"


def test_keys_a_yaml_merge_brings_may_be_overridden_and_keys_of_other_types_are_other_keys(tmp_path):
    """The refusal of a key given twice looks at the keys a mapping writes: a merged mapping's (`<<: *base`) may be
    overridden there, as YAML means; `1` and `'1'` are two keys, `1` and `01` one."""
    from deeprc_hopfield.io import read_yaml
    from deeprc_hopfield.training.config import read_config

    path = tmp_path / "config.yaml"
    path.write_text("base: &quick {n_updates: 3, sample_size: 10}\ntraining:\n  <<: *quick\n  n_updates: 5\n")
    with pytest.raises(DeepRCError, match="unknown section"):  # read as YAML means it; the config's sections judged
        read_config(path)
    path.write_text("training:\n  <<: {n_updates: 3, sample_size: 10}\n  n_updates: 5\n")
    assert (read_config(path)[1].n_updates, read_config(path)[1].sample_size) == (5, 10)
    path.write_text("labels: {1: a, '1': b}\n")
    assert read_yaml(path) == {"labels": {1: "a", "1": "b"}}
    for same in ("{1: a, 01: b}", "{on: a, true: b}", "{null: a, ~: b}"):  # one key to Python: one would be lost
        path.write_text(f"labels: {same}\n")
        with pytest.raises(DeepRCError, match="appears twice"):
            read_yaml(path)


def test_a_broken_demo_config_stops_the_workflow_naming_its_line(tmp_path):
    """Snakemake's own message for a config that is not YAML names no line; the workflow's read of
    configs/config.yaml does."""
    import subprocess
    import sys

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "config.yaml").write_text("run: x\nfolds: [\n")
    snakemake = Path(sys.executable).parent / "snakemake"
    result = subprocess.run([str(snakemake), "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--nolock"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config configs/config.yaml, line 3: not valid YAML at character 1: expected the node content" in out, out


def test_what_a_config_may_say_is_read(tmp_path):
    from deeprc_hopfield.training.config import read_config

    path = tmp_path / "config.yaml"
    path.write_text("model: {pool_subset_size: 0}\ntraining: {sample_size: 60, learning_rate: 1.0e-3}\n")
    model, training = read_config(path)
    assert model == {"pool_subset_size": 0} and training.learning_rate == 1e-3 and training.sample_size == 60


def test_the_cmv_example_lists_every_key_of_the_schema():
    """configs/cmv_example.yaml says it lists every key, so that it stands alone: every section's too."""
    example = yaml.safe_load((ROOT / "configs" / "cmv_example.yaml").read_text())
    for key, spec in SCHEMA.items():
        assert key in example, f"configs/cmv_example.yaml lacks '{key}'"
        for inner in spec.get("properties", {}):
            assert inner in (example[key] or {}), f"configs/cmv_example.yaml lacks '{key}: {inner}'"


def test_text_where_the_schema_asks_for_a_boolean_null_or_number_takes_that_type():
    """`snakemake --config key=true` (or `null`, `1e-3`, and every value of a nested `--config training='{...}'`)
    hands over text; it takes the type the schema allows where text is not (or is, but not these words): a word
    that is a string's own value stays text, and what fits no type is left for the schema to refuse."""
    import jsonschema

    from deeprc_hopfield.workflow_config import typed_strings

    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    given = {"drop_unlabelled": "TRUE", "group_column": "null", "positive_class": "None", "new_metadata": "~",
             "report_title": "true", "run": "1e3", "folds": "3", "seed": "+2",
             "model": {"beta": "1e-3", "use_counts": "False", "pool_subset_size": "NONE"},
             "training": {"learning_rate": "1e-3", "clone_radius": "1", "clone_keys": "auto", "top_fraction": ".5"},
             "reference": {"chain": "null", "file": "true"}, "baselines": ["kmer"]}
    expected = {"drop_unlabelled": True, "group_column": None, "positive_class": None, "new_metadata": None,
                "report_title": "true", "run": "1e3", "folds": 3, "seed": 2,
                "model": {"beta": 0.001, "use_counts": False, "pool_subset_size": None},
                "training": {"learning_rate": 0.001, "clone_radius": 1, "clone_keys": "auto", "top_fraction": 0.5},
                "reference": {"chain": None, "file": "true"}, "baselines": ["kmer"]}
    typed = typed_strings(given, schema)
    assert typed == expected and all(type(typed[k]) is type(expected[k]) for k in expected)
    jsonschema.validate(typed, schema)
    for wrong in ({"drop_unlabelled": "yes"}, {"folds": "five"}, {"training": {"learning_rate": "nan"}},
                  {"positive_class": "1e-3"}, {"positive_class": 1}):  # text is a class's name: kept
        assert typed_strings(wrong, schema) == wrong


def test_a_section_with_nothing_under_it_takes_its_defaults():
    """`training:` with its settings all commented out is null to YAML: an empty section, which takes the schema's
    defaults (as `train --config` reads it); a null where the schema allows one, or where it asks for a value that is
    no section (`baselines:`), is left for the schema to judge."""
    import jsonschema

    from deeprc_hopfield.workflow_config import empty_sections
    from deeprc_hopfield.training.config import config_from_sections

    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    given = {section: None for section in ("qc", "reference", "model", "training", "interpret", "threads")}
    given.update(group_column=None, baselines=None, folds=3)
    filled = empty_sections(given, schema)
    assert filled == {**{section: {} for section in given if section not in ("group_column", "baselines", "folds")},
                      "group_column": None, "baselines": None, "folds": 3}
    jsonschema.validate({**filled, "baselines": []}, schema)
    assert empty_sections({"reference": {"file": None}}, schema) == {"reference": {"file": None}}  # nullable: kept
    assert config_from_sections({"training": None}, "config.yaml")[1] == TrainingConfig()  # the package's reading
