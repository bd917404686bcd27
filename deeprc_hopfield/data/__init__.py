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


def list_file(path_or_name: str | Path) -> Path:
    """The file of a shipped list named `path_or_name`, else `path_or_name` as a path (a file of that name
    in the working folder wins over a shipped list)."""
    path = Path(path_or_name)
    if not path.is_file() and str(path_or_name) in SHIPPED_LISTS:
        return SHIPPED_LISTS[str(path_or_name)]
    return path
