"""What is known of a sequence: its match to a receptor of the reference a model was trained with.

A model trained with `--reference` keeps the reference's receptors with their epitopes and antigens
(`reference.tsv` in the model folder, :data:`deeprc_hopfield.saved_model.REFERENCE_FILE`). `attend`,
`interpret` and the report mark each listed sequence that matches one by the model's own rule (CDR3
core and V family, at the radius training chose; exact where the model does not use the reference),
so a user sees which of the sequences behind a call have a known specificity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deeprc_hopfield.encoding import encode
from deeprc_hopfield.neighbours import ReceptorIndex
from deeprc_hopfield.public_clones import name_codes
from deeprc_hopfield.saved_model import REFERENCE_FILE, SavedModel

#: Columns added to a table of sequences: the matching receptor's epitope(s) and antigen(s) (';'-joined,
#: as in the reference), empty where the sequence matches none.
KNOWN_COLUMNS = ("known_epitope", "known_antigen")


@dataclass
class KnownReceptors:
    """A model's reference receptors (`table`: junction_aa, v_call, epitope, antigen) and their index."""

    table: pd.DataFrame
    index: ReceptorIndex

    def mark(self, sequences: pd.DataFrame) -> pd.DataFrame:
        """`sequences` (junction_aa, v_call) with :data:`KNOWN_COLUMNS` added."""
        out = sequences.copy()
        if len(out) == 0:
            return out.assign(**{c: pd.Series(dtype=object) for c in KNOWN_COLUMNS})
        codes, lengths = encode(out["junction_aa"].astype(str).tolist())
        ref, _ = self.index.first_match(codes, lengths, name_codes(out["v_call"].to_numpy()))
        hit = ref >= 0
        for column, source in zip(KNOWN_COLUMNS, ("epitope", "antigen")):
            values = np.full(len(out), "", dtype=object)
            values[hit] = self.table[source].fillna("").to_numpy(dtype=object)[ref[hit]]
            out[column] = values
        return out


def known_receptors(models: list[SavedModel]) -> KnownReceptors | None:
    """The reference of the first model that has one (a fold ensemble shares it), None without one."""
    for saved in models:
        path = saved.path / REFERENCE_FILE if saved.path is not None else None
        if path is None or not path.is_file():
            continue
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False).replace("", None)
        recorded = saved.training.get("reference") or {}
        radius = int(recorded.get("radius", 0)) if recorded.get("used") else 0
        return KnownReceptors(table, ReceptorIndex.from_sequences(
            table["junction_aa"].tolist(), name_codes(table["v_call"].to_numpy()), radius))
    return None


def known_share(table: pd.DataFrame) -> float | None:
    """Share of the rows of `table` with a known specificity; None when the table is not marked."""
    if KNOWN_COLUMNS[0] not in table.columns or len(table) == 0:
        return None
    return float((table[KNOWN_COLUMNS[0]].fillna("").astype(str) != "").mean())
