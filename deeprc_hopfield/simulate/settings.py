"""The parameters of a simulated cohort and their validation (all checked before anything is written)."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from deeprc_hopfield.cdr3 import GERMLINE_ENDS
from deeprc_hopfield.errors import SimulationError
from deeprc_hopfield.simulate.background import CHAIN_MODELS, background_model
from deeprc_hopfield.species import DEFAULT_SPECIES, SPECIES

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
#: The settings that make public-clone signals as rough as real data, with their options; each is left
#: out of :meth:`SimulationSettings.as_dict` at its default (which is the simulator as it was before
#: them), so earlier cohorts keep their parameters and cache keys.
ROUGH_OPTIONS = {"public_v_noise": "--public-v-noise", "public_variants": "--public-variants",
                 "public_clone_list": "--public-clone-list"}
#: How a noised occurrence's V call is written (see :mod:`deeprc_hopfield.simulate.implant`).
V_NOISE_KINDS = ("gene", "family", "missing")


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
        Number of disease-associated public clones (CDR3 + V + J) shared by positives; with
        `public_variants` K > 1, each is a family of K CDR3s.
    public_rate
        Probability that a positive repertoire carries a given public clone.
    chain
        Locus of the background: one of TRB, TRA, IGH, IGK, IGL (OLGA's default human models).
    species
        'human', or 'mouse' (OLGA's mouse TRB and TRA models, with mouse gene names; ingest the cohort with
        `--species mouse`). Receptor lists (`signal_pool`, `public_clone_list`) are human.
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
    public_v_noise
        Share F in [0, 1] of the occurrences of public clones and of signal-pool receptors written with
        another V call, each of them one of :data:`V_NOISE_KINDS` drawn with equal chance: another gene
        of the same family, the family alone (`TRBV5` for `TRBV5-1`) or no V call (a V whose family
        has no other gene gets one of the other two).
    public_variants
        K >= 1: each public clone is a family of K distinct CDR3s of one length with the clone's V and
        J, the clone's own and K - 1 variants one amino-acid substitution away from it (outside the
        :data:`END_MARGIN` residues at each end); each occurrence carries one member drawn with
        equal chance. 1: exact clones.
    public_clone_list
        A table of receptors (read by :func:`deeprc_hopfield.reference.read_reference`: a VDJdb export
        or a plain table) from which the `public_clones` clones are drawn instead of from the
        background model; None: from the model.
    mixed_positives
        F in [0, 1]: the positives are split in two groups, a seeded share F of them (rounded; at
        least one of each group when 0 < F < 1 and there are two positives or more:
        :attr:`n_clone_only`) carry public clones and no motif witness, the others motif witnesses
        and no public clone; on the signal it lacks, each group is like a negative (clone-only
        positives get motifs at `noise_rate`, as negatives do). Needs public clones and a
        `witness_rate` > 0. None: every positive carries both (the cohort as before the option).
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
    species: str = DEFAULT_SPECIES
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
    public_v_noise: float = 0.0
    public_variants: int = 1
    public_clone_list: str | None = None
    mixed_positives: float | None = None

    def as_dict(self) -> dict:
        """Plain types only (for YAML); without a signal pool, its settings are left out, and so is each
        of :data:`ROUGH_OPTIONS` and `mixed_positives` at its default (the cohort is then what it was
        before they existed)."""
        out = asdict(self)
        out["motifs"] = list(self.motifs)
        if self.signal_pool is None:
            for name in ("signal_pool", *POOL_OPTIONS):
                del out[name]
        else:
            out["signal_pool"] = str(self.signal_pool)
        for name in ROUGH_OPTIONS:
            if out[name] == _ROUGH_DEFAULTS[name]:
                del out[name]
        if self.public_clone_list is not None:
            out["public_clone_list"] = str(self.public_clone_list)
        if self.mixed_positives is None:
            del out["mixed_positives"]
        if self.species == DEFAULT_SPECIES:  # a human cohort's parameters as before species existed
            del out["species"]
        return out

    @property
    def rough(self) -> bool:
        """Whether any of :data:`ROUGH_OPTIONS` is set (V noise, clone families or a clone list)."""
        return any(getattr(self, name) != _ROUGH_DEFAULTS[name] for name in ROUGH_OPTIONS)

    @property
    def n_positive(self) -> int:
        """Number of positive repertoires."""
        return int(round(self.n_repertoires * self.positive_fraction))

    @property
    def n_clone_only(self) -> int:
        """Positives that carry public clones and no motif witness (0 without `mixed_positives`): the
        share of :attr:`n_positive` rounded, kept from 1 to n - 1 when 0 < share < 1 and n >= 2."""
        if self.mixed_positives is None:
            return 0
        n = self.n_positive
        k = int(round(n * self.mixed_positives))
        if 0 < self.mixed_positives < 1 and n >= 2:
            k = min(max(k, 1), n - 1)
        return k


_ROUGH_DEFAULTS = {"public_v_noise": 0.0, "public_variants": 1, "public_clone_list": None}


def parse_motifs(text: str) -> tuple[str, ...]:
    """A comma-separated motif list (``GRDT,AL.QG``) as upper-case motifs; empty entries are kept
    (as '') so that :func:`validate` can report them."""
    return tuple(part.strip().upper() for part in text.split(","))


@functools.lru_cache(maxsize=None)
def max_motif_length(chain: str, species: str = DEFAULT_SPECIES) -> tuple[int, int]:
    """The longest motif a chain's CDR3s allow, and the median CDR3 length it derives from.

    A motif must fit between the conserved ends (:data:`END_MARGIN` residues each side) of at least
    half of the background CDR3s: median length - 2 * END_MARGIN. The median is measured on 5,000
    sequences drawn with a fixed seed, so the limit is the same on every run.
    """
    sample = background_model(chain, species).generate(5000, np.random.default_rng(0))
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
    _validate_species(s)
    if s.fmt not in FORMATS:
        raise SimulationError(f"unknown format '{s.fmt}'; choose one of {', '.join(FORMATS)}")
    if not s.count_exponent > 1:
        raise SimulationError(f"count exponent must be > 1, got {s.count_exponent:g}")
    if not s.motifs:
        raise SimulationError("no motif given")
    longest, median = max_motif_length(s.chain, s.species)
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
    if s.public_rate > 0 and not s.public_clones:
        raise SimulationError("--public-rate needs public clones (--public-clones N): without them it would do nothing")
    _validate_pool(s)
    _validate_rough(s)
    _validate_mixed(s)


def _validate_mixed(s: SimulationSettings) -> None:
    """`mixed_positives`: a share of the positives, with both signals to split between them."""
    share = s.mixed_positives
    if share is None:
        return
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise SimulationError(f"--mixed-positives must be a number in [0, 1], got {share!r}")
    if not s.public_clones:
        raise SimulationError("--mixed-positives needs public clones (--public-clones and --public-rate)")
    if not s.witness_rate > 0:
        raise SimulationError("--mixed-positives needs a motif (--witness-rate above 0)")


def _validate_rough(s: SimulationSettings) -> None:
    """The options of :data:`ROUGH_OPTIONS` (the clone list itself is read by
    :func:`~.cohort.read_public_clone_list`)."""
    noise = s.public_v_noise
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
        raise SimulationError(f"--public-v-noise must be a number in [0, 1], got {noise!r}")
    if noise > 0 and not s.public_clones and s.signal_pool is None:
        raise SimulationError("--public-v-noise needs public clones (--public-clones) or a signal pool "
                              "(--signal-pool)")
    variants = s.public_variants
    if isinstance(variants, bool) or not isinstance(variants, (int, np.integer)) or not 1 <= variants <= 100:
        raise SimulationError(f"--public-variants must be a whole number from 1 to 100, got {variants!r}")
    if variants > 1 and not s.public_clones:
        raise SimulationError("--public-variants needs public clones (--public-clones)")
    if s.public_clone_list is not None:
        if not str(s.public_clone_list).strip():
            raise SimulationError("--public-clone-list is empty: give a file")
        if not s.public_clones:
            raise SimulationError("--public-clone-list needs public clones (--public-clones)")


#: Chains of a mouse cohort: OLGA's mouse IG models name no IMGT genes (`IGHV0-SDOY`), which ingest cannot read.
MOUSE_CHAINS = ("TRB", "TRA")


def _validate_species(s: SimulationSettings) -> None:
    """A species the package reads; for mouse, a chain of :data:`MOUSE_CHAINS` and no (human) receptor list."""
    if s.species not in SPECIES:
        raise SimulationError(f"unknown species '{s.species}'; choose one of {', '.join(SPECIES)}")
    if s.species == DEFAULT_SPECIES:
        return
    if s.chain not in MOUSE_CHAINS:
        raise SimulationError(f"a {s.species} cohort's chain is one of {', '.join(MOUSE_CHAINS)} (OLGA's mouse IG models "
                              f"name no IMGT genes), not {s.chain}")
    lists = [name for name, value in (("--signal-pool", s.signal_pool), ("--public-clone-list", s.public_clone_list))
             if value is not None]
    if lists:
        raise SimulationError(f"{' and '.join(lists)} with --species {s.species}: receptor lists are read as human "
                              "receptors; leave them out (public clones are then drawn from the mouse background)")


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
