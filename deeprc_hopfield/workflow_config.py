"""The workflow's config, read and checked as the workflow reads it: one place for the `Snakefile` and for
`deeprc-hopfield check-config`.

Snakemake reads a `--configfile` itself, before the Snakefile runs, and its message for one that is not YAML ("Config
file is not valid JSON or YAML") names no line. Here a config file is read again as the package reads YAML (the file,
line and character of a problem; a key given twice refused, which YAML would settle silently by keeping the last),
and the config the workflow runs on (its files merged, then `--config`'s text) is checked against the schema,
:data:`deeprc_hopfield.data.CONFIG_SCHEMA`, and given back typed, with every default filled. Each problem is one
:class:`~deeprc_hopfield.errors.ConfigError` line, which the Snakefile ends the plan with (`sys.exit`: no Snakemake
frame around it) and the CLI prints.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from deeprc_hopfield.data import CONFIG_SCHEMA, CONFIG_SCHEMA_NAME
from deeprc_hopfield.errors import ConfigError, closest, did_you_mean
from deeprc_hopfield.io import read_yaml

if TYPE_CHECKING:  # imported where used
    import jsonschema


def config_schema() -> dict:
    """The workflow config's JSON schema, read from the package's data folder at each call."""
    return read_yaml(CONFIG_SCHEMA)


def read_config_file(path: str | Path) -> dict:
    """A config file's settings as the package reads YAML; a file that cannot be read, is not YAML, names a key twice
    or holds no `key: value` settings at its top level (which Snakemake refuses without naming the file) raises
    :class:`ConfigError` naming the file, and the line and character where YAML stopped."""
    values = read_yaml(path, ConfigError)
    if not isinstance(values, dict):
        found = "nothing" if values is None else f"a {type(values).__name__}"
        raise ConfigError(f"holds {found} where the workflow takes `key: value` settings at the top level", path)
    return values


def check_config_yaml(paths: Iterable[str | Path]) -> None:
    """Read each config file of `paths` with :func:`read_config_file`, for the workflow: before Snakemake reads the
    demo's (its message for a broken file names no line), and after it has read a `--configfile` (whose key given
    twice it took silently). A path that is no regular file (missing: Snakemake names the path it looked for; a pipe
    it has already read) is left to Snakemake."""
    for path in paths:
        if os.path.isfile(path):
            read_config_file(path)


def workflow_config(config: Mapping, path: str | Path | None = None) -> dict:
    """The config the workflow runs on: checked against the schema, typed and with every default filled.

    A run of its own must name its cohort; text where the schema asks for another type takes that type
    (:func:`typed_strings`: `--config drop_unlabelled=true`); a section with nothing under it takes its defaults
    (:func:`empty_sections`); every key the config leaves out takes the schema's default, as `snakemake.utils.validate`
    fills them; a whole number written `3.0` becomes 3 (:func:`whole_numbers`).

    Parameters
    ----------
    config
        The settings as Snakemake hands them over (its config files merged, then `--config`'s text), or one config
        file's (:func:`read_config_file`).
    path
        The one file `config` comes from, named in the messages; None for Snakemake's merged config.

    Returns
    -------
    dict
        A new config; `config` is left as it was.

    Raises
    ------
    ConfigError
        One line: a run that names no cohort, or the first key or value the schema refuses, with its key path
        (`config $.folds: 'one' is not of type 'integer' (...)`) and, for an unknown key, the known one it is likely
        a typo of; or two settings that contradict each other (`qc.min_length` above `qc.max_length`).
    """
    schema = config_schema()
    _check_text_keys(config, path)
    _check_cohort(config, schema, path)
    values = empty_sections(typed_strings(dict(config), schema), schema)
    _validate(values, schema, path)
    values = whole_numbers(values, schema)
    _check_between_settings(values, path)
    return values


def check_config_file(path: str | Path) -> tuple[int, int]:
    """Check a config file as `snakemake --configfile FILE` (and no `--config`) would, for `check-config`: returns
    how many settings it gives (each of a section's; a section with nothing under it none) and how many the schema
    has; :class:`ConfigError` naming the file where the workflow would refuse it."""
    given = read_config_file(path)
    workflow_config(given, path)
    schema = config_schema()
    return _settings_in(empty_sections(given, schema)), _settings_of(schema)


def _settings_in(values: object) -> int:
    """How many settings `values` gives: a mapping (a section) its settings', anything else (a list too) one."""
    return sum(_settings_in(value) for value in values.values()) if isinstance(values, dict) else 1


def _settings_of(schema: dict) -> int:
    """How many settings `schema` has: a section (a mapping of named keys) its settings', any other key one."""
    properties = schema.get("properties")
    return sum(_settings_of(spec) for spec in properties.values()) if properties else 1


def _check_text_keys(values: Mapping, path: str | Path | None, where: str = "$") -> None:
    """Every key is text: YAML reads `on`, `off`, `yes`, `no`, `true` and `false` as booleans and digits as numbers,
    which no setting is named (a schema's message would quote them as something else)."""
    for key, value in values.items():
        if not isinstance(key, str):
            raise ConfigError(f"the key {key!r} is not text (YAML reads on, off, yes, no, true and false as booleans, "
                              "and digits as a number): no setting is named so; quote it if you meant text",
                              path, key=where)
        if isinstance(value, Mapping):
            _check_text_keys(value, path, f"{where}.{key}")


def _check_between_settings(config: Mapping, path: str | Path | None) -> None:
    """Rules between settings that the schema cannot state (`train` and `ingest` apply the same:
    `deeprc_hopfield.training.config.pool_subset_size`, `ingest --min-length/--max-length`)."""
    qc, sample = config["qc"], config["training"]["sample_size"]
    if qc["min_length"] > qc["max_length"]:
        raise ConfigError(f"min_length {qc['min_length']} is greater than max_length {qc['max_length']}", path,
                          key="$.qc")
    subset = config["model"].get("pool_subset_size")
    if subset is not None and 0 < subset < sample:
        raise ConfigError(f"{subset} must be 0 (off) or at least training.sample_size ({sample})", path,
                          key="$.model.pool_subset_size")


def _check_cohort(config: Mapping, schema: dict, path: str | Path | None) -> None:
    """A run of its own must name its cohort, both `metadata` and `repertoires` (checked before the schema's defaults,
    the demo's, fill them in): else it would read the demo cohort under another run's name."""
    demo = schema["properties"]["run"]["default"]
    if config.get("run", demo) != demo and not {"metadata", "repertoires"} <= set(config):
        raise ConfigError(f"run '{config['run']}' does not name both `metadata` and `repertoires`, so it would read "
                          "the demo cohort's (data/demo); set both to your cohort's table and folder", path)


def _validate(values: dict, schema: dict, path: str | Path | None) -> None:
    """Check `values` against `schema`, filling in place each default a mapping leaves out; the first problem raises
    :class:`ConfigError` in one line (:func:`_schema_error`), not jsonschema's dump of the schema."""
    import jsonschema

    try:
        _filling_validator(schema).validate(values)
    except jsonschema.ValidationError as problem:
        raise _schema_error(problem, path) from None


def _filling_validator(schema: dict) -> jsonschema.protocols.Validator:
    """A validator of `schema` (JSON schema draft 2020-12, the schema's own) that fills a mapping's missing keys with
    copies of their defaults before checking them, as `snakemake.utils.validate` does (a filled section is checked,
    and filled, in turn)."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def fill_then_check(validator: jsonschema.protocols.Validator, properties: dict, instance: object,
                        subschema: dict) -> Iterator[jsonschema.ValidationError]:
        """The `properties` keyword's check, after the defaults of the keys `instance` leaves out are filled in."""
        if isinstance(instance, dict):
            for key, spec in properties.items():
                if "default" in spec:
                    instance.setdefault(key, copy.deepcopy(spec["default"]))
        yield from check_properties(validator, properties, instance, subschema)

    return validators.extend(Draft202012Validator, {"properties": fill_then_check})(schema)


def _schema_error(problem: jsonschema.ValidationError, path: str | Path | None) -> ConfigError:
    """The one line of a value the schema refuses: its key path and the schema's message (:func:`_names_message` for a
    pattern that lists names); for an unknown key, the known one it is likely a typo of, and for a value outside a
    list of names, the name; for a key with no value (`folds:`), what to do."""
    known = problem.schema.get("properties", {}) if problem.validator == "additionalProperties" else {}
    typos = did_you_mean([key for key in problem.instance if key not in known], known) if known else ""
    key = problem.path[-1] if problem.path else None
    empty = problem.validator == "type" and problem.instance is None and isinstance(key, str)
    message = (f"no value (`{key}:` with nothing after it): give it one, or leave the key out to take its default"
               if empty else _names_message(problem) or problem.message)
    return ConfigError(f"{message}{typos or _name_meant(problem)} (keys, types and defaults: {CONFIG_SCHEMA_NAME})",
                       path, key=problem.json_path)


#: A pattern that only lists names, in any case or as written: `^(?i:TRA|TRB|IGH)$`, `^(TRA|TRB)$`.
_NAMES_PATTERN = re.compile(r"\^\((\?i:|\?:)?([\w-]+(?:\|[\w-]+)*)\)\$")


def _listed_names(problem: jsonschema.ValidationError) -> tuple[list[str], bool] | None:
    """The names a refused value could have been, and whether in any case: an `enum`'s text values (as written), a
    pattern's that only lists names (:data:`_NAMES_PATTERN`); None for other problems."""
    if problem.validator == "enum":
        return [value for value in problem.validator_value if isinstance(value, str)], False
    match = _NAMES_PATTERN.fullmatch(problem.validator_value) if problem.validator == "pattern" else None
    return (match[2].split("|"), match[1] == "?i:") if match else None


def _names_message(problem: jsonschema.ValidationError) -> str | None:
    """A list of names in words, not as the regex or Python list jsonschema quotes (`'TCRB' is not one of TRA, TRB, IGH
    (any case)`; `'gpu' is not one of auto, cpu, cuda`; `..., or null` where the list takes no value too); None for
    other problems."""
    listed = _listed_names(problem)
    if listed is None:
        return None
    names, any_case = listed
    empty = ", or null" if problem.validator == "enum" and None in problem.validator_value else ""
    return f"{problem.instance!r} is not one of {', '.join(names)}{' (any case)' if any_case else ''}{empty}"


def _name_meant(problem: jsonschema.ValidationError) -> str:
    """' (did you mean 'TRB'?)' for text refused by a list of names (:func:`_listed_names`) with a :func:`closest`
    one (compared in lower case where the list takes any case); else ''."""
    listed = _listed_names(problem) if isinstance(problem.instance, str) else None
    if not listed:
        return ""
    names, any_case = listed
    spelled = {name.casefold() if any_case else name: name for name in names}
    near = closest(problem.instance.casefold() if any_case else problem.instance, spelled)
    return f" (did you mean '{spelled[near]}'?)" if near is not None else ""


# --- what YAML and `--config` hand over, as the schema types it --------------------------------
def empty_sections(values: object, schema: dict) -> object:
    """`values` with each section that YAML read as null (`training:` with nothing under it, its settings all commented
    out) made an empty mapping where `schema` asks for a mapping (and allows no null), so that it takes its defaults:
    a section lists the settings it changes, and one that lists none changes none (as `train --config` reads it)."""
    if not isinstance(values, dict):
        return values
    properties = schema.get("properties", {})
    return {key: {} if value is None and properties.get(key, {}).get("type") == "object"
            else empty_sections(value, properties.get(key, {})) for key, value in values.items()}


def whole_numbers(values: object, schema: dict) -> object:
    """`values` with every whole float that `schema` types an integer made an int (`folds: 3.0` is 3): a JSON
    schema's "integer" admits 3.0, which Python's `range` and the command lines' int options refuse."""
    if isinstance(values, dict):
        properties = schema.get("properties", {})
        return {key: whole_numbers(value, properties.get(key, {})) for key, value in values.items()}
    if isinstance(values, list):
        return [whole_numbers(value, schema.get("items", {})) for value in values]
    kinds = schema.get("type", [])
    integer = "integer" in (kinds if isinstance(kinds, list) else [kinds])
    if integer and isinstance(values, float) and values.is_integer():
        return int(values)
    return values


#: Text that means "no value" where a schema allows null (compared in lower case).
_NULL_WORDS = {"null", "none", "~"}
_BOOLEAN_WORDS = {"true": True, "false": False}
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def typed_strings(values: object, schema: dict) -> object:
    """`values` with text where `schema` asks for another type made that type, as the command line
    (`snakemake --config drop_unlabelled=true group_column=null`, which hands over 'true' and 'null') and YAML
    (`learning_rate: 1e-3`, text to YAML 1.1) leave it: 'null', 'none' or '~' (any case) becomes None where the
    schema allows null; 'true' or 'false' (any case) a boolean, and a number written as text ('1e-3', '5') a
    number, where the schema allows that type and not text (or text, but only other words: `auto, 0, 1`). Other
    values are left as they are, for the schema to judge.

    Parameters
    ----------
    values
        A config, or a value of it (mappings and lists are followed down `properties` and `items`).
    schema
        The JSON schema of `values`.

    Returns
    -------
    object
        `values`, converted where said.
    """
    if isinstance(values, dict):
        properties = schema.get("properties", {})
        return {key: typed_strings(value, properties.get(key, {})) for key, value in values.items()}
    if isinstance(values, list):
        return [typed_strings(value, schema.get("items", {})) for value in values]
    if not isinstance(values, str):
        return values
    kinds = schema.get("type", [])
    kinds = set(kinds if isinstance(kinds, list) else [kinds])
    word = values.strip().lower()
    if "null" in kinds and word in _NULL_WORDS:
        return None
    if "string" in kinds and ("enum" not in schema or values in schema["enum"]):
        return values
    if "boolean" in kinds and word in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[word]
    if kinds & {"integer", "number"} and _NUMBER.fullmatch(values.strip()):
        return int(values) if _INTEGER.fullmatch(values.strip()) else float(values)
    return values
