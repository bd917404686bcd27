"""Files shipped with the package: receptor lists, each usable by name wherever a list file is asked for
(`train --reference`, `simulate --signal-pool` and `--public-clone-list`; provenance and licence: ``NOTICE.md``
next to this file), and the workflow config's schema (:data:`CONFIG_SCHEMA`)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The JSON schema of the workflow's config: every key's type, bounds, default and meaning (read by the Snakefile and
#: `deeprc-hopfield check-config`, so it ships inside the package).
CONFIG_SCHEMA = HERE / "config.schema.yaml"
#: :data:`CONFIG_SCHEMA` as messages and help name it: its path in the repository, and under the installed package.
CONFIG_SCHEMA_NAME = "deeprc_hopfield/data/config.schema.yaml"
#: Name -> file of each shipped list.
SHIPPED_LISTS = {"vdjdb-cmv-trb": HERE / "vdjdb_cmv_trb.tsv"}
#: Name -> the species (`deeprc_hopfield.species.SPECIES`) of each shipped list's receptors.
SHIPPED_SPECIES = {"vdjdb-cmv-trb": "human"}


def shipped_species(path_or_name: str | Path) -> str | None:
    """The species of the shipped list that `path_or_name` names (as :func:`list_file` reads it); None for a file."""
    name = str(path_or_name)
    return SHIPPED_SPECIES.get(name) if list_file(path_or_name) == SHIPPED_LISTS.get(name) else None


def list_file(path_or_name: str | Path) -> Path:
    """The file of a shipped list named `path_or_name`, else `path_or_name` as a path (a file of that name
    in the working folder wins over a shipped list)."""
    path = Path(path_or_name)
    if not path.is_file() and str(path_or_name) in SHIPPED_LISTS:
        return SHIPPED_LISTS[str(path_or_name)]
    return path
