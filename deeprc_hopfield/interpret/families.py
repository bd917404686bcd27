"""Families of near-identical sequences among a ranking's first rows.

Antigen-specific receptors come in families of near-identical CDR3s: T cells of one specificity by convergent
recombination, B cells as somatic-hypermutation siblings of one lineage. A ranking lists each as a row of its own,
so its top 20 may be 3 receptors, or 20. `family` says which rows belong together: two rows are linked when their
CDR3 cores (the junction less :data:`deeprc_hopfield.cdr3.ANCHOR` residues at each end) are of equal length and
at most one substitution apart and their V families agree or one is unknown (the radius-1 clone rule of
`deeprc_hopfield.public_clones`; the J gene is ignored), and a family is a connected set of linked rows (so a
lineage whose members differ by more than one substitution joins through its intermediates). A family is numbered
by the rank of its best row. Only the first :data:`FAMILY_ROWS` rows are grouped (the rows a reader reads; beyond
them the column is empty): a single-linkage chain through thousands of rows of low score would join unrelated
receptors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from deeprc_hopfield.cdr3 import ANCHOR
from deeprc_hopfield.public_clones import name_codes

#: Rows of a ranking (its first, in rank order) grouped into families.
FAMILY_ROWS = 1000
#: Most substitutions between two linked cores.
FAMILY_SUBSTITUTIONS = 1


def sequence_families(junctions: pd.Series, v_calls: pd.Series, rows: int = FAMILY_ROWS
                      ) -> tuple[pd.Series, pd.Series]:
    """For a ranking's rows in rank order: each row's family (the 1-based position of its family's first row;
    missing beyond the first `rows` rows) and the family's size among those rows, as nullable integers."""
    n = min(len(junctions), rows)
    family = pd.Series(pd.NA, index=junctions.index, dtype="Int64")
    size = pd.Series(pd.NA, index=junctions.index, dtype="Int64")
    if n == 0:
        return family, size
    cores = junctions.iloc[:n].astype(str).str.slice(ANCHOR, -ANCHOR if ANCHOR else None).to_numpy(dtype=object)
    v = name_codes(v_calls.iloc[:n].to_numpy(dtype=object), "family")
    a, b = _linked_pairs(cores, v)
    graph = sparse.coo_matrix((np.ones(len(a), dtype=bool), (a, b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first = pd.Series(np.arange(n)).groupby(component).transform("min").to_numpy()
    family.iloc[:n] = first + 1
    size.iloc[:n] = np.bincount(component)[component]
    return family, size


def _linked_pairs(cores: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows (i < j) whose cores are of one length and at most :data:`FAMILY_SUBSTITUTIONS` apart and whose
    V family codes agree or one is unknown (-1); compared length by length, all pairs of a length at once."""
    lengths = np.fromiter((len(c) for c in cores), dtype=np.int64, count=len(cores))
    found_a, found_b = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        if len(rows) < 2:
            continue
        codes = np.frombuffer("".join(cores[rows]).encode(), dtype=np.uint8).reshape(len(rows), int(length))
        i, j = np.triu_indices(len(rows), k=1)
        near = (codes[i] != codes[j]).sum(axis=1) <= FAMILY_SUBSTITUTIONS
        same_v = (v[rows[i]] == v[rows[j]]) | (v[rows[i]] < 0) | (v[rows[j]] < 0)
        keep = near & same_v
        found_a.append(rows[i[keep]])
        found_b.append(rows[j[keep]])
    return np.concatenate(found_a), np.concatenate(found_b)
