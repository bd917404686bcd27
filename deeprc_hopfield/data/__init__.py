"""Receptor lists shipped with the package, each usable by name wherever a list file is asked for
(`train --reference`, `simulate --signal-pool` and `--public-clone-list`). Provenance and licence:
``NOTICE.md`` next to this file."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
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
