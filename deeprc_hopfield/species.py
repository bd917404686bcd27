"""The species of a cohort: which IMGT gene tables names are read with (tidytcells') and which OLGA model gives
pgen (`deeprc_hopfield.pgen`). A store records the species it was ingested as, a model its store's; a store or
model that predates recording it is human."""

from __future__ import annotations

from deeprc_hopfield.errors import DeepRCError

#: Species the package reads, as `ingest --species`, the workflow config and OLGA's models (`pgen.OLGA_MODELS`)
#: name them.
SPECIES = ("human", "mouse")
#: The species of a store or model that does not say (written before species were recorded).
DEFAULT_SPECIES = "human"
#: tidytcells' name of each species (`species=` of `tidytcells.tr.standardize`).
TIDYTCELLS_SPECIES = {"human": "homosapiens", "mouse": "musmusculus"}


def check_species(species: str) -> str:
    """`species` in lower case, when it is one of :data:`SPECIES`; else a :class:`DeepRCError` in one line."""
    name = str(species).strip().lower()
    if name not in SPECIES:
        raise DeepRCError(f"unknown species '{species}'; choose one of {', '.join(SPECIES)}")
    return name
