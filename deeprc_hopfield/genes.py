"""IMGT normalisation of V/J gene names (e.g. `TCRBV05-01*01` -> `TRBV5-1`), done by `tidytcells`.

Only distinct names are normalised (a repertoire has a few hundred), and results are cached, so
this costs milliseconds per file. A name that cannot be resolved (`unresolved`, an ambiguous
`TCRBV12-03/12-04`, an empty cell) becomes missing rather than being guessed.
"""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd

_MISSING_WORDS = {"", "na", "nan", "none", "null", "unresolved", "unknown", "-"}


@lru_cache(maxsize=65536)
def normalise_gene(name: str, level: str = "gene") -> str | None:
    """One gene name in IMGT form at `level` 'gene' (TRBV5-1) or 'family' (TRBV5); None if unresolved."""
    import tidytcells as tt

    text = name.strip()
    if text.lower() in _MISSING_WORDS:
        return None
    module = tt.ig if text.upper().startswith("IG") else tt.tr
    logging.getLogger("tidytcells").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = module.standardize(text, precision="gene", suppress_warnings=True)
    if result is None:
        return None
    if level == "family":
        return result.split("-", 1)[0]
    return result


def normalise_genes(names: pd.Series, level: str = "gene") -> pd.Series:
    """Vector form of :func:`normalise_gene`, working on distinct values only; missing stays missing."""
    values = names.astype(object).where(names.notna(), None).to_numpy()
    codes, uniques = pd.factorize(values)
    mapped = np.array(
        [normalise_gene(str(u), level) for u in uniques] + [None], dtype=object
    )
    return pd.Series(mapped[codes], index=names.index, dtype=object)
