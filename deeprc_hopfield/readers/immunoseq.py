"""Adaptive immunoSEQ exports, both generations.

- v1 (snake_case): `amino_acid`, `templates` or `seq_reads`, `v_gene`/`v_family`, `j_gene`, `frame_type`.
- v2 (camelCase): `aminoAcid`, `count (templates/reads)` or `count (reads)`, `vGeneName`,
  `jGeneName`, `sequenceStatus`.

Real exports are messy: some carry only `frequencyCount (%)` (no counts: recorded as missing),
some have no V/J columns, and gene names such as `TCRBV05-01*01` or `unresolved` are normalised
to IMGT (or missing). When the V gene is unresolved the V family (e.g. `TRBV5`) is used.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deeprc_hopfield.cdr3 import JUNCTION
from deeprc_hopfield.genes import normalise_genes
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.readers.common import (
    column_or_missing,
    first_present,
    parse_counts,
    parse_productive,
    read_columns,
    require,
    tidy,
)

NAME = "immunoseq"

_V1 = {
    "aa": "amino_acid",
    "counts": ["templates", "seq_reads", "reads"],
    "v_gene": ["v_gene", "v_resolved"],
    "v_family": ["v_family"],
    "j_gene": ["j_gene", "j_resolved"],
    "j_family": ["j_family"],
    "status": ["frame_type"],
}
_V2 = {
    "aa": "aminoAcid",
    "counts": ["count (templates/reads)", "count (templates)", "count (reads)", "count"],
    "v_gene": ["vGeneName", "vMaxResolved"],
    "v_family": ["vFamilyName"],
    "j_gene": ["jGeneName", "jMaxResolved"],
    "j_family": ["jFamilyName"],
    "status": ["sequenceStatus"],
}


def matches(header: list[str]) -> bool:
    """immunoSEQ names its CDR3 `amino_acid` (v1) or `aminoAcid` (v2)."""
    return "amino_acid" in header or "aminoAcid" in header


def cdr3_column(header: list[str]) -> tuple[str, str]:
    """The CDR3 column and its convention: Adaptive's CDR3 includes the conserved C and F (a junction)."""
    return ("amino_acid" if "amino_acid" in header else "aminoAcid"), JUNCTION


def _gene(frame: pd.DataFrame, header: list[str], genes: list[str], families: list[str], species: str) -> pd.Series:
    """Normalised gene of `species`, falling back to the normalised family where the gene is unresolved."""
    gene = normalise_genes(column_or_missing(frame, first_present(header, genes)), species=species)
    family_col = first_present(header, families)
    if family_col is None:
        return gene
    family = normalise_genes(column_or_missing(frame, family_col), level="family", species=species)
    categories = gene.cat.categories.union(family.cat.categories)
    return gene.cat.set_categories(categories).where(gene.notna(), family.cat.set_categories(categories))


def read(path: Path, header: list[str], delimiter: str, species: str = DEFAULT_SPECIES) -> pd.DataFrame:
    """Read an immunoSEQ export (either generation) into the tidy table."""
    require(header, [_V1["aa"], _V2["aa"]], path, "immunoSEQ")
    spec = _V1 if _V1["aa"] in header else _V2
    wanted = [spec["aa"]] + [c for key in ("counts", "v_gene", "v_family", "j_gene", "j_family", "status")
                             for c in spec[key]]
    frame = read_columns(path, delimiter, [c for c in wanted if c in header], text=(spec["aa"],))
    return tidy(
        column_or_missing(frame, spec["aa"]),
        _gene(frame, header, spec["v_gene"], spec["v_family"], species),
        _gene(frame, header, spec["j_gene"], spec["j_family"], species),
        parse_counts(frame, spec["counts"], path),
        parse_productive(frame, first_present(header, spec["status"]), path),
    )
