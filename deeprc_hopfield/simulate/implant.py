"""Implanting the signal into a background repertoire: motifs in the CDR3 middle, whole receptors
(public clones, receptors of a signal pool).

Every change keeps the nucleotide junction consistent with the amino acids: a residue that a motif
changes gets a codon of the new amino acid (chosen at random among its synonymous codons), so the
junction still translates to the junction_aa.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeprc_hopfield.simulate.background import _CODE, _NT, Background
from deeprc_hopfield.simulate.settings import AMINO_ACIDS, END_MARGIN, GAP

#: Codons of each amino acid, from the standard genetic code.
CODONS = {aa: [a + b + c for a in _NT for b in _NT for c in _NT if _CODE[16 * _NT.index(a) + 4 * _NT.index(b)
                                                                  + _NT.index(c)] == aa]
          for aa in AMINO_ACIDS}


@dataclass
class Implant:
    """One implanted sequence: row `row` of the repertoire now carries `signal`.

    `kind` is 'motif' (then `position` is the 0-based start of the motif in junction_aa and
    `implanted` the residues written there, gaps as '.') or a whole receptor (`position` -1,
    `signal` and `implanted` its junction_aa, `receptor` its index among the receptors implanted
    from): 'public_clone', 'pool_receptor' (a signal-pool receptor a positive carries as its
    signal) or 'chance_receptor' (a receptor of the signal pool's list carried by chance). A public
    clone's `signal` is the clone's own CDR3 and `implanted` the member of its family written
    (`clone`: the clone's index). A receptor whose V call was noised
    (:func:`~.public.noise_v_calls`) has `true_v` (the V it had) and `v_noise` (how it was written:
    'gene', 'family' or 'missing').
    """

    row: int
    kind: str
    signal: str
    position: int
    implanted: str
    receptor: int = -1
    clone: int = -1
    true_v: str | None = None
    v_noise: str = ""


def _synonymous(aa: str, rng: np.random.Generator) -> str:
    options = CODONS[aa]
    return options[int(rng.integers(len(options)))]


def implant_receptors(background: Background, receptors: Background, chosen: np.ndarray, kind: str,
                      rng: np.random.Generator, taken: np.ndarray, signals: np.ndarray | None = None,
                      clones: np.ndarray | None = None) -> list[Implant]:
    """Overwrite random free rows with whole receptors (junction, junction_aa, V and J).

    Parameters
    ----------
    background
        The repertoire (changed in place).
    receptors
        The receptors to implant from.
    chosen
        (k,) indices into `receptors`, one row each (the first ones only, if fewer rows are free).
    kind
        The implants' kind (see :class:`Implant`).
    rng
        The generator that places them.
    taken
        (n,) bool, rows already used by an implant; updated in place.
    signals
        (k,) the signal each chosen receptor stands for (a public clone's own CDR3 for a member of its
        family); default: the receptors' junction_aa.
    clones
        (k,) the clone index of each chosen receptor (public clones); default: -1.
    """
    free = np.flatnonzero(~taken)
    if len(chosen) > len(free):
        chosen = chosen[: len(free)]
    rows = rng.choice(free, size=len(chosen), replace=False) if len(chosen) else np.array([], int)
    implants = []
    for i, (receptor, row) in enumerate(zip(chosen, rows)):
        for name in ("junction", "junction_aa", "v_call", "j_call"):
            getattr(background, name)[row] = getattr(receptors, name)[receptor]
        taken[row] = True
        signal = receptors.junction_aa[receptor] if signals is None else signals[i]
        implants.append(Implant(int(row), kind, signal, -1, receptors.junction_aa[receptor], int(receptor),
                                -1 if clones is None else int(clones[i])))
    return implants


def implant_motifs(background: Background, motifs: tuple[str, ...], n_implants: int, substitution_rate: float,
                   rng: np.random.Generator, taken: np.ndarray) -> list[Implant]:
    """Write motifs over the middle of `n_implants` random CDR3s (each gets one motif, chosen uniformly).

    A motif of m positions goes at a uniform start in [END_MARGIN, len - END_MARGIN - m], so the
    conserved ends stay as they are; rows too short for the motif are not chosen. Each motif residue
    is replaced by another amino acid with probability `substitution_rate`; a gap '.' keeps the
    background residue. If fewer rows can hold a motif than asked for, all that can are used.

    Parameters
    ----------
    background
        The repertoire (junction and junction_aa of chosen rows changed in place).
    motifs
        Validated motifs.
    n_implants
        Number of sequences to implant.
    substitution_rate
        Per-residue substitution probability.
    rng
        The repertoire's implanting generator.
    taken
        (n,) bool, rows already used by an implant; updated in place.

    Returns
    -------
    The implants, in row order.
    """
    lengths = np.fromiter((len(s) for s in background.junction_aa), dtype=np.int64, count=len(background))
    which = rng.integers(len(motifs), size=n_implants)
    implants = []
    for k, motif in enumerate(motifs):
        wanted = int((which == k).sum())
        fits = np.flatnonzero(~taken & (lengths >= len(motif) + 2 * END_MARGIN))
        rows = np.sort(rng.choice(fits, size=min(wanted, len(fits)), replace=False))
        taken[rows] = True
        for row in rows:
            implants.append(_implant_one(background, int(row), motif, substitution_rate, rng))
    implants.sort(key=lambda implant: implant.row)
    return implants


def _implant_one(background: Background, row: int, motif: str, substitution_rate: float,
                 rng: np.random.Generator) -> Implant:
    aa, nt = list(background.junction_aa[row]), background.junction[row]
    start = int(rng.integers(END_MARGIN, len(aa) - END_MARGIN - len(motif) + 1))
    written = []
    codons = [nt[3 * i: 3 * i + 3] for i in range(len(aa))]
    for offset, residue in enumerate(motif):
        if residue == GAP:
            written.append(GAP)
            continue
        if substitution_rate and rng.random() < substitution_rate:
            others = AMINO_ACIDS.replace(residue, "")
            residue = others[int(rng.integers(len(others)))]
        position = start + offset
        if aa[position] != residue:
            aa[position] = residue
            codons[position] = _synonymous(residue, rng)
        written.append(residue)
    background.junction_aa[row] = "".join(aa)
    background.junction[row] = "".join(codons)
    return Implant(row, "motif", motif, start, "".join(written))
