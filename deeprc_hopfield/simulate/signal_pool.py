"""Whole receptors (CDR3 with V and J) implanted from a list, as in disease-specific database entries.

A list (`--signal-pool FILE`, e.g. a VDJdb export) holds receptors; a *pool* of them (`--pool-size`,
drawn once with the seed) is the disease signal. Each receptor of the list has a chance to be drawn
that depends on it (`--pool-sharing`): its OLGA generation probability (``pgen``: Pgen^a), a Zipf law
over a random order of the list (``zipf``: rank^-a), or none (``uniform``). A positive repertoire
carries Poisson(R) distinct pool receptors drawn by that chance (R = `--receptors-per-positive`);
every repertoire, positive or negative, also carries Poisson(R0) distinct receptors of the whole
list by chance (R0 = `--receptors-per-negative`), drawn by the same law, so a receptor of the list
outside the pool is no sign of either class. A receptor replaces a background row (the repertoire
keeps its size and the row its clone count) and keeps the list's V and J; its nucleotide junction is
back-translated once per receptor with synonymous codons drawn at random.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.cdr3 import IMGT_CDR3, JUNCTION, add_anchors, recognise
from deeprc_hopfield.data import list_file
from deeprc_hopfield.reference import VDJDB_PAIRED
from deeprc_hopfield.errors import InputFormatError, SimulationError
from deeprc_hopfield.io import sha256_file
from deeprc_hopfield.simulate.background import CHAIN_MODELS, Background, olga_model
from deeprc_hopfield.simulate.implant import CODONS
from deeprc_hopfield.simulate.settings import AMINO_ACIDS, SimulationSettings

log = logging.getLogger(__name__)

#: Column of the list -> accepted names (case-insensitive), first found wins (VDJdb: CDR3, V, J).
LIST_COLUMNS = {"junction_aa": ("junction_aa", "cdr3"), "v_call": ("v_call", "v"), "j_call": ("j_call", "j")}
#: Columns of truth/signal_pool.tsv.
POOL_COLUMNS = ["line", "junction_aa", "v_call", "j_call", "in_pool", "pgen", "weight", "positives", "negatives"]


@dataclass
class ReceptorList:
    """The usable receptors of a list file, in file order, and what was left out.

    Attributes
    ----------
    path
        The file.
    table
        Columns line (1-based line in the file), junction_aa, v_call, j_call; distinct receptors.
    notes
        Counts: rows read, incomplete (no CDR3, V or J), other_chain, duplicates; anchors_added
        (1 when the CDR3 column held IMGT CDR3s and the conserved C and F/W were added).
    """

    path: Path
    table: pd.DataFrame
    notes: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class SignalPool:
    """The receptors of a list (n of them), which form the disease pool and how often each is drawn.

    Attributes
    ----------
    source
        The list they come from.
    receptors
        (n,) junction (back-translated), junction_aa, v_call, j_call.
    in_pool : (n,) bool
        Part of the disease pool.
    pgen : (n,) float
        OLGA generation probability (with the V and J as masks); NaN unless sharing is 'pgen'.
    weight : (n,) float
        Chance of each receptor to be drawn, summing to 1 over the list (0: never drawn).
    """

    source: ReceptorList
    receptors: Background
    in_pool: np.ndarray
    pgen: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.in_pool)


def _separator(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        header = handle.readline()
    return "\t" if "\t" in header else ","


def _list_columns(chain: str) -> dict[str, tuple[str, ...]]:
    """The names each column of a receptor list may have for `chain` (a paired file's for that chain last)."""
    paired = VDJDB_PAIRED.get(chain, {})
    role = {"junction_aa": "cdr3", "v_call": "v_call", "j_call": "j_call"}
    return {target: (*aliases, paired[role[target]]) if paired else aliases for target, aliases in LIST_COLUMNS.items()}


def read_receptor_list(path: str | Path, chain: str) -> ReceptorList:
    """Read a list of receptors (TSV or CSV, plain or gzip) for implanting into `chain` backgrounds.

    Columns (case-insensitive): `junction_aa` or VDJdb's `CDR3` (junctions; a column of IMGT CDR3s,
    recognised by its anchors, gets the conserved C and F/W back), `v_call` or `V`, `j_call` or `J`;
    or those of `chain` in a VDJdb paired file (`cdr3.beta`, `v.beta`, `j.beta` for TRB).
    Rows without a CDR3, V or J, and rows whose V or J is not of `chain` (a VDJdb export mixes TRA
    and TRB), are left out and counted; repeated receptors (same CDR3, V and J) are kept once.

    Parameters
    ----------
    path
        The list file.
    chain
        Locus of the background (``TRB``, ...): V and J names must start with it.

    Returns
    -------
    The usable receptors. Raises :class:`InputFormatError` (naming the file, and the line and column
    of a bad value) when the file is missing, unreadable, lacks a column or has no usable receptor.
    """
    path = list_file(path)
    if not path.is_file():
        raise InputFormatError("signal pool file not found", path)
    try:
        frame = pd.read_csv(path, sep=_separator(path), dtype=str, keep_default_na=False)
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:  # pandas' parse errors are ValueErrors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputFormatError(f"cannot read the signal pool file: {reason}", path) from None
    by_name = {}
    for name in frame.columns:
        by_name.setdefault(str(name).strip().lower(), name)
    columns = {}
    for target, aliases in _list_columns(chain).items():
        found = [by_name[a] for a in aliases if a in by_name]
        paired = sorted(c for c in ("cdr3.alpha", "cdr3.beta") if c in by_name)
        if not found and paired:
            raise InputFormatError(f"a VDJdb paired file holds T-cell alpha and beta receptors ({', '.join(paired)}), "
                                   f"none of the simulated chain {chain}: give a list of {chain} receptors", path)
        if not found:
            raise InputFormatError(f"the signal pool needs a column {' or '.join(aliases)} (found: "
                                   f"{', '.join(map(str, frame.columns)) or 'none'})", path)
        columns[target] = found[0]
    table = pd.DataFrame({target: frame[name].str.strip() for target, name in columns.items()})
    table["junction_aa"] = table["junction_aa"].str.upper()
    table.insert(0, "line", np.arange(len(table)) + 2)
    notes = {"rows": len(table)}
    complete = (table[["junction_aa", "v_call", "j_call"]] != "").all(axis=1)
    notes["incomplete"] = int((~complete).sum())
    table = table[complete]
    own = table["v_call"].str.upper().str.startswith(chain) & table["j_call"].str.upper().str.startswith(chain)
    notes["other_chain"] = int((~own).sum())
    table = table[own]
    if table.empty:
        raise InputFormatError(f"no receptor of chain {chain} in the signal pool ({notes['rows']} rows: "
                               f"{notes['incomplete']} without a CDR3, V or J, {notes['other_chain']} of another "
                               "chain)", path)
    bad = ~table["junction_aa"].str.fullmatch(f"[{AMINO_ACIDS}]+")
    if bad.any():
        first = table[bad].iloc[0]
        raise InputFormatError(f"'{first['junction_aa']}' is not a sequence of the 20 amino-acid letters", path,
                               int(first["line"]), str(columns["junction_aa"]))
    convention = recognise(table["junction_aa"], str(columns["junction_aa"]), JUNCTION, path)
    notes["anchors_added"] = int(convention.found == IMGT_CDR3)
    if notes["anchors_added"]:
        table["junction_aa"] = add_anchors(table["junction_aa"], table["j_call"]).astype(str)
    distinct = ~table.duplicated(["junction_aa", "v_call", "j_call"])
    notes["duplicates"] = int((~distinct).sum())
    return ReceptorList(path, table[distinct].reset_index(drop=True), notes)


def read_signal_pool(settings: SimulationSettings) -> ReceptorList:
    """The list of `settings.signal_pool`, checked against the pool options (before anything is written)."""
    receptors = read_receptor_list(settings.signal_pool, settings.chain)
    size = len(receptors) if settings.pool_size is None else settings.pool_size
    if size > len(receptors):
        raise SimulationError(f"--pool-size {size} is more than the {len(receptors)} usable receptors of the "
                              "signal pool", settings.signal_pool)
    if settings.receptors_per_positive > size:
        raise SimulationError(f"--receptors-per-positive {settings.receptors_per_positive:g} is more than the "
                              f"{size} receptors of the pool", settings.signal_pool)
    return receptors


def back_translate(junction_aa: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A nucleotide junction for each amino-acid junction, each codon drawn among the synonymous ones."""
    out = []
    for aa in junction_aa:
        u = rng.random(len(aa))
        out.append("".join(CODONS[a][int(x * len(CODONS[a]))] for a, x in zip(aa, u)))
    return np.array(out, dtype=object)


def generation_probabilities(chain: str, junction_aa: np.ndarray, v_call: np.ndarray,
                             j_call: np.ndarray) -> np.ndarray:
    """OLGA's generation probability of each amino-acid junction given its V and J (float64, (n,)).

    A V or J name that OLGA's model does not know leaves that gene unconditioned (all genes). OLGA
    takes about 20 ms a TRB junction, seconds an IGH one.
    """
    import olga.generation_probability as generation_probability

    genomic, generative = olga_model(chain)
    model = getattr(generation_probability, f"GenerationProbability{CHAIN_MODELS[chain][1]}")(generative, genomic)
    return np.array([model.compute_aa_CDR3_pgen(aa, v, j, print_warnings=False)
                     for aa, v, j in zip(junction_aa, v_call, j_call)], dtype=np.float64)


def make_signal_pool(settings: SimulationSettings, source: ReceptorList, rng: np.random.Generator) -> SignalPool:
    """Draw the pool, the Zipf order and the nucleotide junctions with `rng` (in that order, whatever the
    sharing law, so that changing the law keeps the pool), and compute each receptor's chance to be drawn."""
    table, n = source.table, len(source)
    in_pool = np.zeros(n, dtype=bool)
    in_pool[rng.permutation(n)[: n if settings.pool_size is None else settings.pool_size]] = True
    rank = np.empty(n, dtype=np.int64)
    rank[rng.permutation(n)] = np.arange(n)
    junction_aa = table["junction_aa"].to_numpy(dtype=object)
    receptors = Background(back_translate(junction_aa, rng), junction_aa, table["v_call"].to_numpy(dtype=object),
                           table["j_call"].to_numpy(dtype=object))
    a = settings.pool_sharing_exponent
    pgen = np.full(n, np.nan)
    if settings.pool_sharing == "pgen":
        log.info("computing OLGA generation probabilities of the %d receptors of %s", n, source.path)
        pgen = generation_probabilities(settings.chain, junction_aa, receptors.v_call, receptors.j_call)
        weight = pgen ** a
    elif settings.pool_sharing == "zipf":
        weight = (rank + 1.0) ** -a
    else:
        weight = np.ones(n)
    if not (weight[in_pool] > 0).any():
        raise SimulationError(f"no receptor of the pool can be drawn: OLGA's {settings.chain} model gives each a "
                              "generation probability of 0 (are they junctions with their V and J?)", source.path)
    zero = int((weight == 0).sum())
    if zero:
        log.warning("%s: %d of %d receptors have a generation probability of 0 under OLGA's %s model and are "
                    "never implanted", source.path, zero, n, settings.chain)
    return SignalPool(source, receptors, in_pool, pgen, weight / weight.sum())


def _weighted(ids: np.ndarray, weight: np.ndarray, mean: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson(`mean`) distinct ids (fewer if fewer can be drawn), each by its weight, without replacement."""
    ids = ids[weight[ids] > 0]
    k = min(int(rng.poisson(mean)), len(ids))
    if k == 0:
        return np.array([], dtype=np.int64)
    return rng.choice(ids, size=k, replace=False, p=weight[ids] / weight[ids].sum())


def draw_receptors(pool: SignalPool, label: int, settings: SimulationSettings,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The receptors (indices into the list) one repertoire carries: as signal (a positive: Poisson(R) of
    the pool) and by chance (any repertoire: Poisson(R0) of the whole list, less those already drawn)."""
    signal = np.array([], dtype=np.int64)
    if label == 1:
        signal = _weighted(np.flatnonzero(pool.in_pool), pool.weight, settings.receptors_per_positive, rng)
    chance = _weighted(np.arange(len(pool)), pool.weight, settings.receptors_per_negative, rng)
    return signal, chance[~np.isin(chance, signal)]


def pool_table(pool: SignalPool, positives: np.ndarray, negatives: np.ndarray) -> str:
    """truth/signal_pool.tsv: every receptor of the list, its pool membership, pgen, chance to be drawn
    (`weight`) and how many positive and negative repertoires carry it (implanted, any kind)."""
    table = pool.source.table
    rows = ["\t".join(POOL_COLUMNS)]
    for i in range(len(pool)):
        pgen = "" if np.isnan(pool.pgen[i]) else f"{pool.pgen[i]:.6g}"
        rows.append("\t".join([str(table["line"].iat[i]), pool.receptors.junction_aa[i], pool.receptors.v_call[i],
                               pool.receptors.j_call[i], str(int(pool.in_pool[i])), pgen, f"{pool.weight[i]:.6g}",
                               str(int(positives[i])), str(int(negatives[i]))]))
    return "\n".join(rows) + "\n"


def describe(pool: SignalPool) -> dict:
    """The list and pool, for truth/parameters.yaml."""
    return {
        "file": str(pool.source.path),
        "sha256": sha256_file(pool.source.path),
        **{f"list_{key}": value for key, value in pool.source.notes.items()},
        "receptors_listed": len(pool),
        "pool_size": int(pool.in_pool.sum()),
        "never_drawn": int((pool.weight == 0).sum()),
        "nucleotides": "back-translated once per receptor, synonymous codons drawn uniformly",
    }
