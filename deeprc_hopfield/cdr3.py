"""The one CDR3 convention: the store holds junctions; clones are compared on the CDR3 core.

Tools write a receptor's CDR3 in one of two conventions. The *junction* (AIRR `junction_aa`, IMGT
JUNCTION) includes the conserved C at its start and the conserved F or W at its end
(`CASSLGQAYEQYF`); the *IMGT CDR3* (AIRR `cdr3_aa`) is the junction without them (`ASSLGQAYEQY`).
Every reader but AIRR gives junctions: immunoSEQ's `amino_acid`, MiXCR's `aaSeqCDR3` (its CDR3
runs from the conserved Cys to the conserved Phe/Trp, both included), 10x's `cdr3` and VDJtools'
`cdr3aa`. An AIRR file gives junctions in `junction_aa` (or translated from `junction`) and IMGT
CDR3s in `cdr3_aa` (or translated from `cdr3`).

**Recognition** (:func:`recognise`, per file): the column says which convention it holds; the
sequences confirm it by their anchors, the share that start with C and end with F or W (nearly all
junctions, nearly no IMGT CDR3). Where a file of at least :data:`MIN_EVIDENCE` sequences clearly
contradicts its column (at most :data:`UNANCHORED` of a junction column anchored, or at least
:data:`ANCHORED` of a CDR3 column), the sequences win and the log warns.

**One convention in the store**: junctions. A file of IMGT CDR3s gets the anchors back
(:func:`add_anchors`): C before, and after it W for a heavy chain (IGHJ), F otherwise (the rare
TRAJ whose anchor is W gets F too). So the model always sees the same kind of sequence.

**The core** (:func:`core_bounds`): the junction without its :data:`ANCHOR` residue at each end,
i.e. the IMGT CDR3. Clone keys, the k-mer baseline and the motif search read the core only, so the
same receptor matches whichever convention its file used, and a guessed (or non-canonical) anchor
never decides a match. Motifs are searched, and implanted by the simulator, between the
:data:`GERMLINE_ENDS` residues at each end of a junction that germline genes encode in nearly
every receptor (the anchor and two more: C-A-S... and ...Q-Y-F of TRB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.encoding import JoinedSequences

log = logging.getLogger(__name__)

JUNCTION = "junction"
IMGT_CDR3 = "imgt_cdr3"
CONVENTIONS = (JUNCTION, IMGT_CDR3)
#: Residues of a junction outside the IMGT CDR3 at each end: the conserved C and F/W.
ANCHOR = 1
#: Residues at each end of a junction that are germline-encoded in nearly every receptor (the anchor
#: and the two next to it): motifs are found and implanted between them.
GERMLINE_ENDS = ANCHOR + 2
#: Fewest sequences with which the anchors may overrule the column's convention.
MIN_EVIDENCE = 20
#: A junction column with at most this share of anchored sequences holds IMGT CDR3s.
UNANCHORED = 0.2
#: A CDR3 column with at least this share of anchored sequences holds junctions.
ANCHORED = 0.8


@dataclass(frozen=True)
class Cdr3Convention:
    """What one file's CDR3 column held.

    column: the column read; declared: the convention its name says; found: the one used
    (:data:`JUNCTION` or :data:`IMGT_CDR3`); anchored: share of the file's non-empty CDR3s that
    start with C and end with F or W (NaN when there are none); n: how many those are.
    """

    column: str
    declared: str
    found: str
    anchored: float
    n: int

    def describe(self) -> str:
        """One phrase for the log, e.g. `cdr3_aa: IMGT CDR3s (2% anchored), anchors added`."""
        share = "no sequences" if self.n == 0 else f"{self.anchored:.0%} of {self.n:,} start with C and end with F/W"
        what = "junctions" if self.found == JUNCTION else "IMGT CDR3s, conserved C and F/W added"
        return f"column '{self.column}' holds {what} ({share})"


def anchored_share(sequences: pd.Series | JoinedSequences) -> tuple[float, int]:
    """Share of the non-empty sequences that start with C and end with F or W, and their number
    (read from one byte buffer of all sequences; white space or lower case anywhere: cleaned first)."""
    joined = sequences if isinstance(sequences, JoinedSequences) else JoinedSequences.of(sequences)
    if np.any((joined.buffer <= ord(" ")) | (joined.buffer >= ord("a"))):
        joined = joined.cleaned()
    lengths = joined.lengths
    ends = np.cumsum(lengths)[lengths > 0]
    if len(ends) == 0:
        return float("nan"), 0
    starts = ends - lengths[lengths > 0]
    first, last = joined.buffer[starts], joined.buffer[ends - 1]
    anchored = (first == ord("C")) & ((last == ord("F")) | (last == ord("W")))
    return float(anchored.mean()), int(len(ends))


def recognise(sequences: pd.Series | JoinedSequences, column: str, declared: str,
              path: str | Path | None = None) -> Cdr3Convention:
    """The convention of one file's CDR3 column: the column's own (`declared`) unless its anchors
    clearly say otherwise (see the module docstring); a contradiction is logged as a warning."""
    if declared not in CONVENTIONS:
        raise ValueError(f"declared must be one of {CONVENTIONS}, got {declared!r}")
    share, n = anchored_share(sequences)
    found = declared
    if n >= MIN_EVIDENCE:
        if declared == JUNCTION and share <= UNANCHORED:
            found = IMGT_CDR3
        elif declared == IMGT_CDR3 and share >= ANCHORED:
            found = JUNCTION
    convention = Cdr3Convention(column, declared, found, share, n)
    if found != declared:
        log.warning("%s: column '%s' should hold %s, but %.0f%% of its %d sequences start with C and end with "
                    "F/W: read as %s", path, column, "junctions" if declared == JUNCTION else "IMGT CDR3s",
                    100 * share, n, "IMGT CDR3s" if found == IMGT_CDR3 else "junctions")
    return convention


def add_anchors(cdr3: pd.Series, j_call: pd.Series, locus: pd.Series | None = None) -> pd.Series:
    """Junctions from IMGT CDR3s: C before, and W after for a heavy chain (J call IGHJ..., or no J
    call and locus IGH), F otherwise. Missing and empty CDR3s stay as they are."""
    text = cdr3.astype(object)
    present = text.notna().to_numpy() & (text.fillna("").astype(str).str.strip().str.len() > 0).to_numpy()
    j = pd.Series(np.asarray(j_call, dtype=object), index=cdr3.index).fillna("").astype(str).str.upper()
    heavy = j.str.startswith("IGHJ")
    if locus is not None:
        chain = pd.Series(np.asarray(locus, dtype=object), index=cdr3.index).fillna("").astype(str).str.upper()
        heavy |= (j == "") & (chain == "IGH")
    end = np.where(heavy.to_numpy(), "W", "F")
    out = text.copy()
    out[present] = "C" + text[present].astype(str).str.strip() + end[present]
    return out


def core_bounds(lengths: np.ndarray, trim: int = ANCHOR) -> tuple[np.ndarray, np.ndarray]:
    """Where each junction's core lies: (offset of its first residue, its length), int64 (n,) each.

    `trim` residues are left out at each end (:data:`ANCHOR`: the core is the IMGT CDR3), fewer for a
    sequence too short to keep one residue (a sequence of 1 or 2 residues is its own core).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    offset = np.minimum(trim, np.maximum((lengths - 1) // 2, 0))
    return offset, lengths - 2 * offset


def core(junction: str, trim: int = ANCHOR) -> str:
    """The core of one junction (see :func:`core_bounds`)."""
    offset = min(trim, max((len(junction) - 1) // 2, 0))
    return junction[offset:len(junction) - offset]
