"""IMGT normalisation of V/J gene names (e.g. `TCRBV05-01*01` -> `TRBV5-1`), done by `tidytcells`.

Only distinct names are normalised (a repertoire has a few hundred), and results are cached, so
this costs milliseconds per file. A name that cannot be resolved (`unresolved`, an ambiguous
`TCRBV12-03/12-04`, an empty cell) becomes missing rather than being guessed, and a name that
gives only a family (`TCRBV05`) stays a family (`TRBV5`) rather than becoming one of its genes.
Of several comma-separated calls (AIRR `TRBV7-2*01,TRBV7-3*01`) the first is kept (the proximal gene of a gene
and its distal duplicate, `IGHV3-23D,IGHV3-23`, in either order). Names are read as
genes of one species (`deeprc_hopfield.species`: human by default, or mouse): tidytcells' tables of that species.
"""

from __future__ import annotations

import logging
import re
import warnings
from functools import lru_cache
from types import ModuleType

import numpy as np
import pandas as pd

from deeprc_hopfield.species import DEFAULT_SPECIES, TIDYTCELLS_SPECIES, check_species

#: IMGT loci (chains) a row, a reference receptor or `ingest --chain` may name.
LOCI = ("TRA", "TRB", "TRG", "TRD", "IGH", "IGK", "IGL")
#: What of a V call a clone key (and a clone's pgen) holds: the family, the gene, or nothing; in the order
#: the clone rules break ties.
V_LEVELS = ("family", "gene", "none")
#: How logs, `inspect` and the report name a clone key of each V level.
V_LEVEL_NAMES = {"family": "CDR3 + V family", "gene": "CDR3 + V gene", "none": "CDR3 alone"}


def clone_rule_name(v_level: str | None, radius: int | None) -> str:
    """A clone rule as logs, `inspect` and the report name it: `CDR3 + V family, exact`."""
    key = V_LEVEL_NAMES.get(v_level, f"CDR3 + V {v_level}")
    return f"{key}, {'exact' if radius == 0 else '1 substitution'}"


_MISSING_WORDS = {"", "na", "nan", "none", "null", "unresolved", "unknown", "-"}
#: A name that ends in a member number (`TRBV5-1`, `TCRBV05-01`, `TRAV1S1`) names a gene, not a family.
_NAMES_MEMBER = re.compile(r"[-S.]\d+$")


@lru_cache(maxsize=65536)
def normalise_gene(name: str, level: str = "gene", species: str = DEFAULT_SPECIES) -> str | None:
    """One gene name in IMGT form at `level` 'gene' (TRBV5-1) or 'family' (TRBV5), as a gene of `species`
    (`human`, `mouse`: mouse `TRBV13-2` is no human gene); None if unresolved."""
    species = check_species(species)
    # First of several calls; the allele is dropped (only the gene is kept), which also saves
    # genes whose allele tidytcells does not know, such as MiXCR's `TRBV5-1*00`.
    text = _first_call(name)
    if text.lower() in _MISSING_WORDS:
        return None
    result = _standardised(text, species)
    if result is not None and level == "family":
        return gene_family(result)
    return result


def is_known_gene(name: str, species: str) -> bool:
    """Whether a name (`TRBV13-2*01`) is a gene in tidytcells' tables of `species`; False where it holds none for
    the name's receptor (mouse IG), whose names are only checked for IMGT form."""
    text = _first_call(name)
    known = _has_tables(_tidytcells_module(text), check_species(species))
    return known and text.lower() not in _MISSING_WORDS and normalise_gene(name, species=species) is not None


def _standardised(text: str, species: str) -> str | None:
    """One call without allele as tidytcells names that gene of `species`; a family-only name stays a family."""
    module = _tidytcells_module(text)
    if not _has_tables(module, species):
        return _imgt_shaped(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = module.standardize(text, species=TIDYTCELLS_SPECIES[species], precision="gene",
                                    suppress_warnings=True)
    if result is None:
        return _ig_family(text, species)
    if result.endswith("-1") and not _NAMES_MEMBER.search(text.upper()):
        result = result[:-2]  # tidytcells completed a family (TRBV5, mouse TRBV13) to its first gene (TRBV5-1)
    return result


def _tidytcells_module(text: str) -> ModuleType:
    """tidytcells' module of a name's receptor: `tt.ig` for an immunoglobulin gene, else `tt.tr`."""
    import tidytcells as tt

    logging.getLogger("tidytcells").setLevel(logging.ERROR)
    return tt.ig if text.upper().startswith("IG") else tt.tr


#: A name no species has: tidytcells refuses it where it holds the species' tables, and returns it where not.
_NO_GENE = "XYZV1"


@lru_cache(maxsize=16)
def _has_tables(module: ModuleType, species: str) -> bool:
    """Whether tidytcells' `module` (`tt.tr`, `tt.ig`) holds gene tables of `species`: for a species it lacks
    (mouse IG in tidytcells 2.2) it returns every name as given, so names can only be checked for IMGT form."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return module.standardize(_NO_GENE, species=TIDYTCELLS_SPECIES[species], suppress_warnings=True) is None


#: An IMGT-shaped V/D/J name (`IGHV1-72`, `IGHV5-9-1`, `IGKV04-91`, `IGHJ2`): locus and segment, family, an
#: optional D (distal duplicate), members.
_IMGT_NAME = re.compile(r"((?:TR[ABGD]|IG[HKL])[VDJ])0*(\d+)(D?)((?:-0*\d+)*)")


def _imgt_shaped(text: str) -> str | None:
    """A name in IMGT form (leading zeros dropped: `IGHV01-072` -> `IGHV1-72`), where no gene table can check it;
    None where it is not IMGT-shaped."""
    match = _IMGT_NAME.fullmatch(text.upper())
    if match is None:
        return None
    members = re.sub(r"-0*(\d+)", r"-\1", match[4])
    return f"{match[1]}{int(match[2])}{match[3]}{members}"


_IG_FAMILY = re.compile(r"(IG[HKL][VDJ])0*(\d+)")


@lru_cache(maxsize=256)
def _ig_family(text: str, species: str = DEFAULT_SPECIES) -> str | None:
    """A family-only immunoglobulin name (`IGHV3`, `IGHV03`) as IMGT writes it, when tidytcells knows a gene of
    that family in `species` (it resolves TR families, `TRBV05` -> `TRBV5-1`, but no human IG one); else None."""
    import tidytcells as tt

    match = _IG_FAMILY.fullmatch(text.upper())
    if match is None:
        return None
    family = f"{match[1]}{int(match[2])}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        known = any(tt.ig.standardize(f"{family}-{k}", species=TIDYTCELLS_SPECIES[species], precision="gene",
                                      suppress_warnings=True) for k in range(1, 80))
    return family if known else None


def gene_family(name: str) -> str:
    """The family of an IMGT gene name (`TRBV5-1` -> `TRBV5`); a family (`TRBV5`) is its own. A distal duplicate's
    `D` is not the family's (`IGKV1D-39` -> `IGKV1`, as `IGKV1-39`, whose sequence it shares). A name with a
    delta or orphon part and no member is its own family (`TRAV29/DV5`, `TRBV20/OR9-2` -> `TRBV20/OR9`), as
    OLGA's masks and tidytcells' family-only names (`TCRAV29` -> `TRAV29/DV5`) have it; so is mouse
    `TRAV16D/DV11`, apart from `TRAV16`, as in OLGA's mouse model."""
    head = name.strip().split("*", 1)[0].split("-", 1)[0]
    return head[:-1] if "-" in name and re.fullmatch(r"[A-Z]{4}\d+D", head) else head


def normalise_genes(names: pd.Series, level: str = "gene", species: str = DEFAULT_SPECIES) -> pd.Series:
    """Vector form of :func:`normalise_gene` (genes of `species`), working on distinct values only; missing stays
    missing.

    Returns a categorical Series (IMGT names as categories), cheap to compare, merge and store.
    """
    if isinstance(names.dtype, pd.CategoricalDtype):
        codes, uniques = names.cat.codes.to_numpy(), names.cat.categories
    else:
        codes, uniques = pd.factorize(names.astype(object).where(names.notna(), None).to_numpy())
    mapped = [normalise_gene(str(u), level, species) for u in uniques]
    categories = pd.Index(sorted({m for m in mapped if m is not None}), dtype=object)
    lookup = np.append(categories.get_indexer(pd.Index(mapped, dtype=object)), -1).astype(np.int32)
    out = pd.Series(pd.Categorical.from_codes(lookup[codes], categories=categories), index=names.index)
    rows = np.bincount(codes[codes >= 0], minlength=len(uniques))
    out.attrs["unresolved"] = {str(u): int(n) for u, m, n in zip(uniques, mapped, rows)
                               if m is None and not _is_missing_word(str(u))}
    return out


def _first_call(name: str) -> str:
    """The first of a cell's calls without its allele (`TRBV7-2*01,TRBV7-3*01` -> `TRBV7-2`); where the calls are a
    gene and its distal duplicate, in either order (`IGHV3-23D*01,IGHV3-23*01`: the same sequence, which an aligner
    lists in no set order), the proximal gene, so that one receptor is one clone whichever came first."""
    calls = [call.split("*", 1)[0].strip() for call in re.split(r"[,;|]", name)]
    proximal = re.sub(r"(?<=\d)D(?=-|$)", "", calls[0])
    return proximal if proximal != calls[0] and proximal in calls[1:] else calls[0]


def _is_missing_word(name: str) -> bool:
    """Whether a gene cell says "no call" (`unresolved`, `NA`, empty) rather than naming a gene."""
    return _first_call(name).lower() in _MISSING_WORDS


def gene_categorical(column: pd.Series) -> pd.Categorical:
    """A gene column as a categorical of the names it uses, sorted, code -1 where missing (a categorical
    column is recoded, which sorts no codes; anything else is factorized)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, names = column.cat.codes.to_numpy(), column.cat.categories
        used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(names)))
        order = names[used].argsort()
        recode = np.full(len(names) + 1, -1, dtype=np.int64)  # the last place maps a missing code (-1)
        recode[used[order]] = np.arange(len(used))
        return pd.Categorical.from_codes(recode[codes], categories=names[used[order]])
    codes, names = pd.factorize(column, sort=True)
    return pd.Categorical.from_codes(codes, categories=names)
