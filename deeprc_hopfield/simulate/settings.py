"""The parameters of a simulated cohort and their validation (all checked before anything is written)."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from deeprc_hopfield.cdr3 import GERMLINE_ENDS
from deeprc_hopfield.errors import SimulationError
from deeprc_hopfield.simulate.background import CHAIN_MODELS, background_model

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
GAP = "."
#: Residues at each end of a junction that implanting leaves alone (the conserved C ... F/W and the two
#: germline residues next to each: `deeprc_hopfield.cdr3.GERMLINE_ENDS`, where motifs are also searched).
END_MARGIN = GERMLINE_ENDS
FORMATS = ("airr", "immunoseq")
#: How a listed receptor's chance to be implanted depends on it (see :mod:`deeprc_hopfield.simulate.signal_pool`).
SHARING = ("pgen", "zipf", "uniform")
#: The settings of a signal pool, with the options that set them.
POOL_OPTIONS = {"pool_size": "--pool-size", "receptors_per_positive": "--receptors-per-positive",
                "receptors_per_negative": "--receptors-per-negative", "pool_sharing": "--pool-sharing",
                "pool_sharing_exponent": "--pool-sharing-exponent"}


@dataclass(frozen=True)
class SimulationSettings:
    """Everything that determines a simulated cohort (the thread count does not: see :func:`simulate`).

    Attributes
    ----------
    n_repertoires
        Number of repertoires (subjects), at least 2.
    sequences_per_repertoire
        Rows (distinct clones) per repertoire; the mean when `size_spread` > 0.
    witness_rate
        Expected share of a positive repertoire's sequences that carry a motif, in (0, 1]; may be 0
        with a signal pool (no motif then).
    seed
        Non-negative integer seed; the same settings and seed give byte-identical files.
    motifs
        Motifs to implant, each of the 20 amino acids or '.' (a gap that keeps the background residue).
    substitution_rate
        Probability that an implanted motif residue is replaced by another amino acid.
    positive_fraction
        Share of repertoires labelled positive (rounded to a whole number of repertoires).
    noise_rate
        Expected share of a negative repertoire's sequences that carry a motif.
    size_spread
        Standard deviation of the log of the repertoire size (log-normal sizes, mean kept); 0 = equal sizes.
    public_clones
        Number of disease-associated public clones (CDR3 + V + J) shared by positives.
    public_rate
        Probability that a positive repertoire carries a given public clone.
    chain
        Locus of the background: one of TRB, TRA, IGH, IGK, IGL (OLGA's default human models).
    fmt
        'airr' (AIRR Rearrangement TSV) or 'immunoseq' (Adaptive immunoSEQ v1 export).
    compress
        Write gzip-compressed repertoire files (`.tsv.gz`, reproducible bytes).
    nucleotides
        Write the nucleotide junction column (kept consistent with the implanted amino acids);
        without it the files are about half the size.
    count_exponent
        Exponent a of the Zipf law P(count = k) ~ k^-a of clone counts (heavy-tailed; most counts are 1).
    signal_pool
        A list of receptors (TSV/CSV with junction_aa or CDR3, v_call or V, j_call or J) to implant
        whole; None: none. The other pool settings apply only with it.
    pool_size
        How many receptors of the list form the disease pool (drawn once with the seed); None: all.
    receptors_per_positive
        Mean (Poisson) number of distinct pool receptors a positive repertoire carries.
    receptors_per_negative
        Mean (Poisson) number of distinct receptors of the whole list that every repertoire carries by
        chance (a negative carries only these; a positive carries them besides its pool receptors).
    pool_sharing
        How a receptor's chance to be drawn depends on it: 'pgen' (its OLGA generation probability
        to the power `pool_sharing_exponent`), 'zipf' (rank^-exponent in a random order of the list)
        or 'uniform'.
    pool_sharing_exponent
        The exponent of 'pgen' and 'zipf' sharing, > 0 (larger: the most likely receptors shared more).
    """

    n_repertoires: int
    sequences_per_repertoire: int
    witness_rate: float
    seed: int = 0
    motifs: tuple[str, ...] = ("GR.DT",)
    substitution_rate: float = 0.0
    positive_fraction: float = 0.5
    noise_rate: float = 0.0
    size_spread: float = 0.0
    public_clones: int = 0
    public_rate: float = 0.0
    chain: str = "TRB"
    fmt: str = "airr"
    compress: bool = False
    nucleotides: bool = True
    count_exponent: float = 2.0
    max_count: int = field(default=100_000, repr=False)
    signal_pool: str | None = None
    pool_size: int | None = None
    receptors_per_positive: float = 10.0
    receptors_per_negative: float = 1.0
    pool_sharing: str = "pgen"
    pool_sharing_exponent: float = 1.0

    def as_dict(self) -> dict:
        """Plain types only (for YAML); without a signal pool, its settings are left out."""
        out = asdict(self)
        out["motifs"] = list(self.motifs)
        if self.signal_pool is None:
            for name in ("signal_pool", *POOL_OPTIONS):
                del out[name]
        else:
            out["signal_pool"] = str(self.signal_pool)
        return out

    @property
    def n_positive(self) -> int:
        """Number of positive repertoires."""
        return int(round(self.n_repertoires * self.positive_fraction))


def parse_motifs(text: str) -> tuple[str, ...]:
    """A comma-separated motif list (``GRDT,AL.QG``) as upper-case motifs; empty entries are kept
    (as '') so that :func:`validate` can report them."""
    return tuple(part.strip().upper() for part in text.split(","))


@functools.lru_cache(maxsize=None)
def max_motif_length(chain: str) -> tuple[int, int]:
    """The longest motif a chain's CDR3s allow, and the median CDR3 length it derives from.

    A motif must fit between the conserved ends (:data:`END_MARGIN` residues each side) of at least
    half of the background CDR3s: median length - 2 * END_MARGIN. The median is measured on 5,000
    sequences drawn with a fixed seed, so the limit is the same on every run.
    """
    sample = background_model(chain).generate(5000, np.random.default_rng(0))
    median = int(np.median([len(s) for s in sample.junction_aa]))
    return median - 2 * END_MARGIN, median


def _check_rate(name: str, value: float, low_open: bool = False) -> None:
    if not isinstance(value, (int, float)) or math.isnan(value):
        raise SimulationError(f"{name} must be a number, got {value!r}")
    if low_open and not 0 < value <= 1:
        raise SimulationError(f"{name} must be in (0, 1], got {value:g}")
    if not low_open and not 0 <= value <= 1:
        raise SimulationError(f"{name} must be in [0, 1], got {value:g}")


def validate(settings: SimulationSettings) -> None:
    """Check every parameter, raising :class:`SimulationError` with one clear line on the first problem."""
    s = settings
    if s.n_repertoires < 2:
        raise SimulationError(f"need at least 2 repertoires, got {s.n_repertoires}")
    if s.sequences_per_repertoire < 1:
        raise SimulationError(f"sequences per repertoire must be >= 1, got {s.sequences_per_repertoire}")
    if s.seed < 0:
        raise SimulationError(f"seed must be a non-negative integer, got {s.seed}")
    _check_rate("witness rate", s.witness_rate, low_open=s.signal_pool is None)
    _check_rate("noise rate", s.noise_rate)
    _check_rate("positive fraction", s.positive_fraction)
    _check_rate("substitution rate", s.substitution_rate)
    _check_rate("public rate", s.public_rate)
    if not s.size_spread >= 0:
        raise SimulationError(f"size spread must be >= 0, got {s.size_spread:g}")
    if s.public_clones < 0:
        raise SimulationError(f"public clones must be >= 0, got {s.public_clones}")
    if s.chain not in CHAIN_MODELS:
        raise SimulationError(f"unknown chain '{s.chain}'; OLGA has default human models for "
                              f"{', '.join(CHAIN_MODELS)}")
    if s.fmt not in FORMATS:
        raise SimulationError(f"unknown format '{s.fmt}'; choose one of {', '.join(FORMATS)}")
    if not s.count_exponent > 1:
        raise SimulationError(f"count exponent must be > 1, got {s.count_exponent:g}")
    if not s.motifs:
        raise SimulationError("no motif given")
    longest, median = max_motif_length(s.chain)
    for number, motif in enumerate(s.motifs, start=1):
        if not motif.strip(GAP):
            raise SimulationError(f"motif {number} is empty: a motif needs at least one amino acid "
                                  f"(got '{motif}')")
        bad = sorted(set(motif) - set(AMINO_ACIDS + GAP))
        if bad:
            raise SimulationError(f"motif '{motif}' has {', '.join(repr(c) for c in bad)}: use the 20 "
                                  f"amino-acid letters and '.' for a gap")
        if len(motif) > longest:
            raise SimulationError(
                f"motif '{motif}' has {len(motif)} positions; {s.chain} CDR3s allow at most {longest} "
                f"(median length {median} minus {END_MARGIN} conserved residues at each end)")
    if s.public_clones and s.public_rate == 0:
        raise SimulationError("--public-clones needs a --public-rate above 0")
    _validate_pool(s)


def _validate_pool(s: SimulationSettings) -> None:
    """The signal pool's settings (the list itself is read by :func:`~.signal_pool.read_signal_pool`)."""
    if s.signal_pool is None:
        defaults = SimulationSettings(n_repertoires=2, sequences_per_repertoire=1, witness_rate=1.0)
        for name, option in POOL_OPTIONS.items():
            if getattr(s, name) != getattr(defaults, name):
                raise SimulationError(f"{option} needs a signal pool (--signal-pool)")
        return
    if not str(s.signal_pool).strip():
        raise SimulationError("--signal-pool is empty: give a file")
    if s.pool_size is not None and not s.pool_size >= 1:
        raise SimulationError(f"--pool-size must be >= 1, got {s.pool_size}")
    for name in ("receptors_per_positive", "receptors_per_negative"):
        value = getattr(s, name)
        if not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise SimulationError(f"{POOL_OPTIONS[name]} must be a number >= 0, got {value!r}")
    if s.pool_sharing not in SHARING:
        raise SimulationError(f"unknown --pool-sharing '{s.pool_sharing}'; choose one of {', '.join(SHARING)}")
    exponent = s.pool_sharing_exponent
    if not isinstance(exponent, (int, float)) or not 0 < exponent < math.inf:
        raise SimulationError(f"--pool-sharing-exponent must be a number > 0, got {exponent!r}")
