"""Background repertoires: productive CDR3s with V and J genes drawn from OLGA's default human models (or, for a
:class:`BackgroundModel` of its own, mouse ones: `simulate` makes human cohorts).

OLGA (Sethna et al. 2019) ships the recombination models (gene usage, deletions, insertion lengths
and the Markov chain of inserted nucleotides) and a generator that draws one sequence at a time in
pure Python (about 5,000 sequences/s on one core). :class:`BackgroundModel` draws from the same
model with numpy, a whole block of recombination events at once, and keeps the productive ones by
the same rule as OLGA (in frame, no stop codon, a conserved C first and F/V/W last). The tables are
taken from OLGA's own loaded model objects, so the distribution is OLGA's; only the order in which
random numbers are consumed differs. Each block draws from its own ``numpy.random.Generator``, so
a block's sequences depend on its seed only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from deeprc_hopfield.genes import normalise_gene
from deeprc_hopfield.species import DEFAULT_SPECIES

#: Chains with an OLGA default human model: chain -> (model folder, recombination type).
CHAIN_MODELS = {
    "TRB": ("human_T_beta", "VDJ"),
    "TRA": ("human_T_alpha", "VJ"),
    "IGH": ("human_B_heavy", "VDJ"),
    "IGK": ("human_B_kappa", "VJ"),
    "IGL": ("human_B_lambda", "VJ"),
}

_NT = "ACGT"
_PAD = 4  # nucleotide code of padding
#: The standard genetic code, codon index 16*first + 4*second + third with A=0, C=1, G=2, T=3.
_CODE = "KNKNTTTTRSRSIIMIQHQHPPPPRRRRLLLLEDEDAAAAGGGGVVVV*Y*YSSSS*CWCLFLF"
_AA_OF_CODON = np.zeros(85, dtype=np.uint8)  # codons that touch padding translate to byte 0
_AA_OF_CODON[:64] = np.frombuffer(_CODE.encode(), dtype=np.uint8)
_NT_BYTES = np.frombuffer(b"ACGT\0", dtype=np.uint8)
_STOP, _CYS = ord("*"), ord("C")
_J_ANCHORS = np.frombuffer(b"FVW", dtype=np.uint8)  # OLGA's conserved_J_residues


@dataclass
class Background:
    """A block of background sequences (n rows).

    Attributes
    ----------
    junction : (n,) object array of str
        Nucleotide junction (CDR3 including the conserved C and F/W codons).
    junction_aa : (n,) object array of str
        Its translation.
    v_call, j_call : (n,) object array of str
        IMGT allele names (e.g. ``TRBV5-1*01``).
    """

    junction: np.ndarray
    junction_aa: np.ndarray
    v_call: np.ndarray
    j_call: np.ndarray

    def __len__(self) -> int:
        return len(self.junction_aa)

    @staticmethod
    def concatenate(blocks: list["Background"]) -> "Background":
        """One block made of several, in order."""
        return Background(*(np.concatenate([getattr(b, name) for b in blocks])
                            for name in ("junction", "junction_aa", "v_call", "j_call")))


def _codes(segments: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Nucleotide segments as a padded (n, max_len) uint8 code array and their lengths."""
    lengths = np.array([len(s) for s in segments], dtype=np.int64)
    table = np.full((len(segments), max(1, lengths.max(initial=0))), _PAD, dtype=np.uint8)
    lookup = np.full(256, _PAD, dtype=np.uint8)
    lookup[np.frombuffer(_NT.encode(), dtype=np.uint8)] = np.arange(4, dtype=np.uint8)
    lookup[np.frombuffer(_NT.lower().encode(), dtype=np.uint8)] = np.arange(4, dtype=np.uint8)
    for i, seg in enumerate(segments):
        table[i, : len(seg)] = lookup[np.frombuffer(seg.encode(), dtype=np.uint8)]
    return table, lengths


def _imgt_calls(genes: list, species: str) -> np.ndarray:
    """The call written for each gene of an OLGA model: its allele name, or '' (no call) for a gene that IMGT's
    list lacks (OLGA's not-localised IGHV4-NL1 and IGKV1-NL1, 2% of IGH), as an annotator would report it."""
    return np.array([gene[0] if normalise_gene(gene[0], species=species) is not None else "" for gene in genes],
                    dtype=object)


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: the index of the first cumulative probability >= u (clipped to the last)."""
    return np.minimum(np.searchsorted(cdf, u), len(cdf) - 1)


def _stacked(cdfs: np.ndarray) -> np.ndarray:
    """Rows of cumulative distributions laid end to end, row r shifted by r, as one sorted array."""
    clipped = np.clip(np.asarray(cdfs, dtype=np.float64), 0.0, 1.0)
    return (clipped + np.arange(len(clipped))[:, None]).ravel()


def _draw_given(stacked: np.ndarray, n_cols: int, given: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws from row `given[i]` of a table of cumulative distributions, all at once:
    `stacked` is :func:`_stacked` of the table, whose rows have `n_cols` entries."""
    position = np.searchsorted(stacked, given + u) - given * n_cols
    return np.clip(position, 0, n_cols - 1)


def _markov(lengths: np.ndarray, first: np.ndarray, transition: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Nucleotide codes from a first-order Markov chain (OLGA's insertion model), one row per length.

    `first` is the cumulative distribution of the first nucleotide, `transition[a]` the cumulative
    distribution of the nucleotide following `a`. Returns an (n, max(lengths)) array; row i is
    valid up to `lengths[i]`. Rows are processed longest first, so step k touches only the rows
    that are still growing.
    """
    n, width = len(lengths), int(lengths.max(initial=0))
    seq = np.zeros((n, max(width, 1)), dtype=np.uint8)
    if width == 0:
        return seq
    order = np.argsort(-lengths, kind="stable")
    active = np.searchsorted(-lengths[order], -np.arange(width), side="left")  # rows with length > k
    grown = np.zeros((n, width), dtype=np.uint8)  # in `order`
    grown[: active[0], 0] = _draw(first, rng.random(active[0]))
    for k in range(1, width):
        m = active[k]
        cdf = transition[grown[:m, k - 1]]  # (m, 4) cumulative
        grown[:m, k] = np.minimum((cdf < rng.random(m)[:, None]).sum(axis=1), 3)
    seq[order] = grown
    return seq


def _place(out: np.ndarray, offset: np.ndarray, length: np.ndarray, source) -> None:
    """Copy a variable-length piece into each row of `out` at `offset`: ``source(rows, cols)``
    gives the piece's nucleotide at position `cols` of row `rows`."""
    width = int(length.max(initial=0))
    if width == 0:
        return
    rows, cols = np.nonzero(np.arange(width)[None, :] < length[:, None])
    out[rows, offset[rows] + cols] = source(rows, cols)


def _strings(codes: np.ndarray) -> np.ndarray:
    """Rows of a zero-padded uint8 byte array as an object array of str."""
    if codes.shape[1] == 0:
        return np.array([""] * len(codes), dtype=object)
    fixed = np.ascontiguousarray(codes).view(f"S{codes.shape[1]}").ravel()
    return fixed.astype(str).astype(object)


def olga_model(chain: str, species: str = DEFAULT_SPECIES) -> tuple[object, object]:
    """OLGA's own (genomic data, generative model) objects of its default model of `chain` in `species`."""
    from deeprc_hopfield.pgen import OLGA_MODELS, olga_default_model

    return olga_default_model(*OLGA_MODELS[(species, chain)])


class BackgroundModel:
    """A vectorised generator of productive CDR3s for one chain, using OLGA's default model of the species.

    Parameters
    ----------
    chain
        One of :data:`CHAIN_MODELS` (``TRB``, ``TRA``, ``IGH``, ``IGK``, ``IGL``).
    species
        'human' (what `simulate` draws) or 'mouse' (OLGA's mouse models, with mouse gene names).
    """

    def __init__(self, chain: str, species: str = DEFAULT_SPECIES) -> None:
        import olga.sequence_generation as sequence_generation

        from deeprc_hopfield.pgen import OLGA_MODELS

        folder, kind = OLGA_MODELS[(species, chain)]
        genomic, generative = olga_model(chain, species)
        # OLGA's generator object holds the cumulative tables it samples from; we sample the same.
        tables = getattr(sequence_generation, f"SequenceGeneration{kind}")(generative, genomic)
        self.chain, self.kind = chain, kind
        self.model_name = folder
        self.v_names, self.j_names = _imgt_calls(genomic.genV, species), _imgt_calls(genomic.genJ, species)
        self._v, self._v_len = _codes(tables.cutV_genomic_CDR3_segs)
        self._j, self._j_len = _codes(tables.cutJ_genomic_CDR3_segs)
        self._del_v = (_stacked(tables.given_V_CPdelV), tables.given_V_CPdelV.shape[1])
        self._del_j = (_stacked(tables.given_J_CPdelJ), tables.given_J_CPdelJ.shape[1])
        self._n_j = tables.num_J_genes
        if kind == "VDJ":
            self._d, self._d_len = _codes(tables.cutD_genomic_CDR3_segs)
            self._cp_v, self._cp_dj = tables.CPV, tables.CPDJ
            self._del_d = (_stacked(tables.given_D_CPdelDldelDr), tables.given_D_CPdelDldelDr.shape[1])
            self._n_del_dr = tables.num_delDr_poss
            self._ins_vd, self._ins_dj = tables.CinsVD, tables.CinsDJ
            self._r_vd, self._r_dj = tables.C_Rvd, tables.C_Rdj
            self._first_vd, self._first_dj = tables.C_first_nt_bias_insVD, tables.C_first_nt_bias_insDJ
        else:
            self._cp_vj, self._ins_vj = tables.CPVJ, tables.CPinsVJ
            self._r_vj, self._first_vj = tables.C_Rvj, tables.C_first_nt_bias_insVJ

    # -- one batch of recombination events -> the productive ones ----------------------------
    def _events_vdj(self, n: int, rng: np.random.Generator):
        u = rng.random((n, 7))
        v = _draw(self._cp_v, u[:, 0])
        dj = _draw(self._cp_dj, u[:, 1])
        d, j = dj // self._n_j, dj % self._n_j
        del_v = _draw_given(*self._del_v, v, u[:, 2])
        del_j = _draw_given(*self._del_j, j, u[:, 3])
        del_d = _draw_given(*self._del_d, d, u[:, 4])
        del_dl, del_dr = del_d // self._n_del_dr, del_d % self._n_del_dr
        ins_vd, ins_dj = _draw(self._ins_vd, u[:, 5]), _draw(self._ins_dj, u[:, 6])
        len_v, len_d, len_j = self._v_len[v] - del_v, self._d_len[d] - del_dl - del_dr, self._j_len[j] - del_j
        total = len_v + ins_vd + len_d + ins_dj + len_j
        ok = (len_v > 0) & (len_d >= 0) & (len_j >= 0) & (total % 3 == 0)
        v, d, j, del_dl, del_j = v[ok], d[ok], j[ok], del_dl[ok], del_j[ok]
        len_v, ins_vd, len_d, ins_dj, len_j, total = (x[ok] for x in (len_v, ins_vd, len_d, ins_dj, len_j, total))
        m = len(v)
        n_vd = _markov(ins_vd, self._first_vd, self._r_vd, rng)
        n_dj = _markov(ins_dj, self._first_dj, self._r_dj, rng)
        nt = np.full((m, int(total.max(initial=0))), _PAD, dtype=np.uint8)
        o1 = len_v
        o2 = o1 + ins_vd
        o3 = o2 + len_d
        o4 = o3 + ins_dj
        _place(nt, np.zeros(m, np.int64), len_v, lambda r, c: self._v[v[r], c])
        _place(nt, o1, ins_vd, lambda r, c: n_vd[r, c])
        _place(nt, o2, len_d, lambda r, c: self._d[d[r], del_dl[r] + c])
        _place(nt, o3, ins_dj, lambda r, c: n_dj[r, ins_dj[r] - 1 - c])  # OLGA reverses the DJ insertion
        _place(nt, o4, len_j, lambda r, c: self._j[j[r], del_j[r] + c])
        return nt, total, v, j

    def _events_vj(self, n: int, rng: np.random.Generator):
        u = rng.random((n, 4))
        vj = _draw(self._cp_vj, u[:, 0])
        v, j = vj // self._n_j, vj % self._n_j
        del_v = _draw_given(*self._del_v, v, u[:, 1])
        del_j = _draw_given(*self._del_j, j, u[:, 2])
        ins = _draw(self._ins_vj, u[:, 3])
        len_v, len_j = self._v_len[v] - del_v, self._j_len[j] - del_j
        total = len_v + ins + len_j
        ok = (len_v > 0) & (len_j >= 0) & (total % 3 == 0)
        v, j, del_j, len_v, ins, len_j, total = (x[ok] for x in (v, j, del_j, len_v, ins, len_j, total))
        m = len(v)
        n_vj = _markov(ins, self._first_vj, self._r_vj, rng)
        nt = np.full((m, int(total.max(initial=0))), _PAD, dtype=np.uint8)
        _place(nt, np.zeros(m, np.int64), len_v, lambda r, c: self._v[v[r], c])
        _place(nt, len_v, ins, lambda r, c: n_vj[r, c])
        _place(nt, len_v + ins, len_j, lambda r, c: self._j[j[r], del_j[r] + c])
        return nt, total, v, j

    def _batch(self, n: int, rng: np.random.Generator) -> tuple[Background, int]:
        """Draw `n` recombination events; return the productive ones and how many were drawn."""
        nt, total, v, j = (self._events_vdj if self.kind == "VDJ" else self._events_vj)(n, rng)
        width = nt.shape[1] - nt.shape[1] % 3
        nt3 = nt[:, :width].astype(np.int64)
        aa = _AA_OF_CODON[np.minimum(16 * nt3[:, 0::3] + 4 * nt3[:, 1::3] + nt3[:, 2::3], 84)]
        n_aa = total // 3
        rows = np.arange(len(aa))
        last = aa[rows, np.maximum(n_aa - 1, 0)] if aa.shape[1] else np.zeros(len(aa), np.uint8)
        first = aa[:, 0] if aa.shape[1] else np.zeros(len(aa), np.uint8)
        keep = (n_aa > 0) & ~(aa == _STOP).any(axis=1) & (first == _CYS) & np.isin(last, _J_ANCHORS)
        nt, aa, v, j = nt[keep], aa[keep], v[keep], j[keep]
        block = Background(_strings(_NT_BYTES[nt]), _strings(aa), self.v_names[v], self.j_names[j])
        return block, n

    def generate(self, n: int, rng: np.random.Generator) -> Background:
        """`n` productive background sequences drawn with `rng` (the result depends on `rng` only).

        Parameters
        ----------
        n
            Number of sequences.
        rng
            The random generator; the same generator state always gives the same sequences.
        """
        blocks, have, acceptance = [], 0, 0.2
        while have < n:
            want = int((n - have) / acceptance * 1.05) + 64
            block, drawn = self._batch(want, rng)
            acceptance = max(0.02, len(block) / drawn)
            blocks.append(block)
            have += len(block)
        whole = Background.concatenate(blocks)
        return Background(whole.junction[:n], whole.junction_aa[:n], whole.v_call[:n], whole.j_call[:n])


@functools.lru_cache(maxsize=None)
def background_model(chain: str, species: str = DEFAULT_SPECIES) -> BackgroundModel:
    """The (cached, per process) :class:`BackgroundModel` of a chain in `species`."""
    return BackgroundModel(chain, species)
