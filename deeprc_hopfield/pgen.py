"""Generation probability (pgen) of CDR3 junctions under OLGA's default recombination models.

A CDR3 can be public (carried by many people) because V(D)J recombination makes it often, not
because of any disease: its generation probability is high. OLGA (Sethna et al. 2019) computes
that probability for an amino-acid junction exactly, summing over every recombination event and
codon that yields it. :class:`PgenModel` wraps OLGA's default model of one chain (human TRB, TRA,
IGH, IGK, IGL; mouse TRB, TRA, IGH, IGK, IGL: the models OLGA ships, where the installed version
has them) and caches one value per distinct (junction, V, J).

**What is conditioned on.** The value is the *joint* probability that a recombination yields this
amino-acid junction with a V gene of the given V family (OLGA's V usage mask), J marginalised. That
is the chance of exactly the clone that :mod:`deeprc_hopfield.public_clones` counts, whose key is
(CDR3 core, V family): a clone shared by chance is shared in proportion to it. A V family rather
than a gene, because calls disagree at the gene level between tools and a family-only call must
give the clone the same value; no J, because the key has none. Where the V call is missing, of
another locus or unknown to OLGA, V is marginalised too (the pgen of the junction alone): a clone
of unknown V matches any V. ``v_level='gene'`` or ``'none'`` and `j_calls` change this.

**Speed.** OLGA computes pgen in pure Python, one sequence per call: **about 50-75 sequences/s**
for human TRB junctions, with or without a V family (45-77/s measured on one core of the shared
2-core development machine, 300 fresh junctions of OLGA's own model; ``benchmarks/pgen_filter.py``
measures it, ``benchmarks/results/pgen_filter.txt``); human TRA 150-300/s, IGK and IGL about 100/s,
and IGH only **3-4/s** (long junctions, a D segment). So pgen is for a few hundred to a few
thousand sequences (the candidate clones of a test: under a minute of TRB for a thousand), never
for whole repertoires. Each distinct (junction, V, J) is computed once per :class:`PgenModel`;
``pgen(..., workers=N)`` computes the new ones in N processes (forked, so they share the loaded model).

A junction OLGA cannot generate (no conserved C first or F/W last, a symbol outside the 20 amino
acids) has pgen 0.

**Kept on disk.** Inside :func:`disk_cache` (which `train` and `baselines` open, by default on
:func:`default_cache_folder`), every value computed is also written to a folder shared by processes,
and values another process wrote there are read instead of computed: the folds' training jobs and
the baselines of one cohort ask pgen of mostly the same chance-public clones. The values are those
OLGA computes (written exactly), keyed by OLGA's version, the species and the chain.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from contextlib import contextmanager
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Sequence

import numpy as np

from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.genes import V_LEVELS, gene_family
from deeprc_hopfield.interrupts import worker_pool
from deeprc_hopfield.progress import LoggedProgress

log = logging.getLogger(__name__)

#: (species, chain) -> (OLGA default model folder, recombination type).
OLGA_MODELS = {
    ("human", "TRB"): ("human_T_beta", "VDJ"),
    ("human", "TRA"): ("human_T_alpha", "VJ"),
    ("human", "IGH"): ("human_B_heavy", "VDJ"),
    ("human", "IGK"): ("human_B_kappa", "VJ"),
    ("human", "IGL"): ("human_B_lambda", "VJ"),
    ("mouse", "TRB"): ("mouse_T_beta", "VDJ"),
    ("mouse", "TRA"): ("mouse_T_alpha", "VJ"),
    ("mouse", "IGH"): ("mouse_B_heavy", "VDJ"),
    ("mouse", "IGK"): ("mouse_B_kappa", "VJ"),
    ("mouse", "IGL"): ("mouse_B_lambda", "VJ"),
}
#: Other names of a locus (AIRR `locus`, immunoSEQ, older TCR nomenclature) -> the IMGT locus.
CHAIN_ALIASES = {"TCRB": "TRB", "TCRA": "TRA", "BETA": "TRB", "ALPHA": "TRA", "HEAVY": "IGH",
                 "KAPPA": "IGK", "LAMBDA": "IGL", "IGHV": "IGH", "TRBV": "TRB", "TRAV": "TRA"}


def olga_chain(chain: str, species: str = "human") -> tuple[str, str]:
    """The (species, IMGT locus) of a chain name such as ``TRB``, ``tcrb`` or ``TCRB``; a
    :class:`DeepRCError` in one line where OLGA has no default model for it."""
    name = str(chain).strip().upper()
    name = CHAIN_ALIASES.get(name, name)
    kind = str(species).strip().lower()
    if (kind, name) not in OLGA_MODELS:
        have = ", ".join(f"{s} {c}" for s, c in OLGA_MODELS)
        raise DeepRCError(f"no OLGA generation-probability model for {species} {chain!r}; supported: {have}")
    return kind, name


def chain_of_genes(v_genes: Sequence[str | None]) -> str:
    """The locus (TRB, TRA, IGH, ...) that IMGT V gene names such as a store's ``v_genes`` belong to:
    the most common 3-letter prefix; a :class:`DeepRCError` where there is none."""
    prefixes = [g.strip().upper()[:3] for g in v_genes if isinstance(g, str) and len(g.strip()) >= 4]
    if not prefixes:
        raise DeepRCError("cannot tell the chain: no V gene names (give the chain, e.g. TRB)")
    values, counts = np.unique(prefixes, return_counts=True)
    return str(values[np.argmax(counts)])


@lru_cache(maxsize=None)
def _olga_pgen(species: str, chain: str):  # noqa: ANN202 (an OLGA object)
    """OLGA's GenerationProbability object of a default model (loaded once per process)."""
    import olga.generation_probability as generation_probability

    folder, kind = OLGA_MODELS[(species, chain)]
    genomic, generative = olga_default_model(folder, kind, f"{species} {chain}")
    return getattr(generation_probability, f"GenerationProbability{kind}")(generative, genomic)


def olga_default_model(folder: str, kind: str, what: str = "") -> tuple[object, object]:
    """OLGA's (genomic data, generative model) objects of the default model in `folder` (e.g.
    `human_T_beta`) of recombination `kind` ('VDJ' or 'VJ'); one line where OLGA lacks it."""
    import olga
    import olga.load_model as load_model

    path = os.path.join(os.path.dirname(olga.__file__), "default_models", folder)
    if not os.path.isdir(path):
        raise DeepRCError(f"the installed OLGA has no default model {folder} ({what or folder}); upgrade olga")
    genomic = getattr(load_model, f"GenomicData{kind}")()
    genomic.load_igor_genomic_data(os.path.join(path, "model_params.txt"),
                                   os.path.join(path, "V_gene_CDR3_anchors.csv"),
                                   os.path.join(path, "J_gene_CDR3_anchors.csv"))
    generative = getattr(load_model, f"GenerativeModel{kind}")()
    generative.load_and_process_igor_model(os.path.join(path, "model_marginals.txt"))
    return genomic, generative


class PgenModel:
    """Amino-acid generation probability of junctions under OLGA's default model of one chain.

    Parameters
    ----------
    chain
        The locus: TRB, TRA, IGH, IGK or IGL (also TCRB, TCRA, ...; see :data:`CHAIN_ALIASES`).
    species
        'human' or 'mouse'.
    v_level
        What of a V call conditions the value (:data:`V_LEVELS`): 'family' (default, as clone keys),
        'gene', or 'none' (V marginalised).

    A chain without a model is refused in one line (:class:`DeepRCError`) before anything loads.
    """

    def __init__(self, chain: str = "TRB", species: str = "human", v_level: str = "family") -> None:
        if v_level not in V_LEVELS:
            raise DeepRCError(f"v_level must be one of {', '.join(V_LEVELS)}, got {v_level!r}")
        self.species, self.chain = olga_chain(chain, species)
        self.v_level = v_level
        self._olga = _olga_pgen(self.species, self.chain)
        self._cache: dict[tuple[str, str | None, str | None], float] = {}
        self.seconds = 0.0  # spent in OLGA
        self.computed = 0  # values OLGA computed (not read from this cache or a disk cache)

    def __len__(self) -> int:
        """Distinct (junction, V, J) computed so far."""
        return len(self._cache)

    def _gene(self, name: object, segment: str, level: str) -> str | None:
        """A gene name as OLGA's usage mask takes it (family or gene, no allele), or None
        (marginalised) where missing, of another locus, or unknown to the model."""
        if level == "none" or not isinstance(name, str) or not name.strip():
            return None
        gene = name.strip().split("*", 1)[0].upper()
        if not gene.startswith(self.chain + segment):  # OLGA would read TRAV1 as TRBV1
            return None
        gene = gene_family(gene) if level == "family" else gene
        from olga.utils import gene_to_num_str

        mapping = self._olga.V_mask_mapping if segment == "V" else self._olga.J_mask_mapping
        return gene if gene_to_num_str(gene, segment) in mapping else None

    def pgen(self, junctions: Sequence[str], v_calls: Sequence[str | None] | None = None,
             j_calls: Sequence[str | None] | None = None, workers: int = 1) -> np.ndarray:
        """The generation probability of each junction (with the conserved C and F/W), float64 (n,).

        Parameters
        ----------
        junctions
            (n,) amino-acid junctions, e.g. ``CASSLGQAYEQYF``.
        v_calls, j_calls
            (n,) V and J calls (IMGT names, alleles allowed; None or '' = unknown), or None for all
            unknown. V enters at :attr:`v_level`; J as a gene where given (default: marginalised).
        workers
            Processes that compute the values not cached yet (OLGA is pure Python, one sequence at a
            time); the values do not depend on it.

        Returns
        -------
        float64 (n,): the joint probability of the junction and the V (family) and J given, 0 where
        OLGA cannot generate the junction.
        """
        n = len(junctions)
        v_calls = [None] * n if v_calls is None else list(v_calls)
        j_calls = [None] * n if j_calls is None else list(j_calls)
        if not len(v_calls) == len(j_calls) == n:
            raise ValueError(f"{n} junctions but {len(v_calls)} V and {len(j_calls)} J calls")
        start = time.perf_counter()
        keys = [(str(junction), self._gene(v, "V", self.v_level), self._gene(j, "J", "gene"))
                for junction, v, j in zip(junctions, v_calls, j_calls)]
        new = list(dict.fromkeys(key for key in keys if key not in self._cache))
        disk = _DISK_CACHE[0]
        if new and disk is not None:
            found = disk.lookup(self.species, self.chain, new)
            self._cache.update(found)
            if found:
                log.info("pgen (%s %s): %d of %d new values read from %s", self.species, self.chain, len(found),
                         len(new), disk.folder)
            new = [key for key in new if key not in self._cache]
        computed: dict[tuple, float] = {}
        progress = LoggedProgress(log, f"pgen ({self.species} {self.chain})", len(new), "sequences", last_line=False)
        for part, values in self._compute(new, max(int(workers), 1)):
            computed.update(zip(part, values))
            progress.update(len(part))
        self._cache.update(computed)
        if computed and disk is not None:
            disk.write(self.species, self.chain, computed)
        out = np.array([self._cache[key] for key in keys], dtype=np.float64)
        seconds = time.perf_counter() - start
        self.seconds += seconds
        self.computed += len(computed)
        log.debug("pgen (%s %s): %d sequences, %d computed, in %.1f s (%d workers)", self.species, self.chain, n,
                  len(computed), seconds, workers)
        return out

    def _compute(self, keys: list[tuple], workers: int):
        """OLGA's value of each (junction, V, J) key, in parts: yields (keys, values) per part."""
        if workers == 1 or len(keys) < PARALLEL_FROM:
            for first in range(0, len(keys), PART):
                yield keys[first:first + PART], _olga_values(self.species, self.chain, keys[first:first + PART])
            return
        parts = [keys[first:first + PART] for first in range(0, len(keys), PART)]
        with worker_pool(min(workers, len(parts))) as pool:  # forked where it can: the children share the loaded model
            yield from zip(parts, pool.map(_olga_values, repeat(self.species), repeat(self.chain), parts))


class PgenDiskCache:
    """pgen values kept in `folder`, shared by processes: each writes the values it computed to a file of
    its own (under a temporary name, then renamed), and reads the complete files of the others once.
    Files are `olga<version>_<species>_<chain>.<writer>.tsv` (junction, V, J, value; `-` for none);
    past :data:`MERGE_FROM` files of a model, a reader merges them into one. A folder that cannot be
    written is logged once and then left alone (pgen is computed as without it)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        from importlib.metadata import version

        self.folder = Path(folder)
        self.olga = version("olga")
        self._read: set[str] = set()
        self._values: dict[str, dict[tuple, float]] = {}  # per file prefix (model), every value read or written
        self.working = True

    def _prefix(self, species: str, chain: str) -> str:
        return f"olga{self.olga}_{species}_{chain}."

    def lookup(self, species: str, chain: str, keys: list[tuple]) -> dict[tuple, float]:
        """The values of `keys` (junction, V, J) found in the folder, reading the files not read yet."""
        prefix = self._prefix(species, chain)
        values = self._values.setdefault(prefix, {})
        try:
            names = sorted(f.name for f in self.folder.glob(prefix + "*.tsv"))
        except OSError:
            names = []
        for name in names:
            if name not in self._read:
                values.update(_read_values(self.folder / name))
                self._read.add(name)
        if len(names) >= MERGE_FROM and self.working:
            self._merge(prefix, names, values)
        return {key: values[key] for key in keys if key in values}

    def write(self, species: str, chain: str, values: dict[tuple, float]) -> None:
        """Add `values` (key -> pgen) as a new file of this model."""
        prefix = self._prefix(species, chain)
        self._values.setdefault(prefix, {}).update(values)
        if not self.working:
            return
        name = f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:12]}.tsv"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_values(self.folder / name, values)
        except OSError as exc:
            log.warning("pgen cache %s: cannot write (%s); pgen values are not kept on disk", self.folder,
                        exc.strerror or exc)
            self.working = False
            return
        self._read.add(name)

    def _merge(self, prefix: str, names: list[str], values: dict[tuple, float]) -> None:
        """One file of `values` (everything in `names`, read already, and more) written before `names` are
        removed: a reader listing the folder in between reads a value twice, or (a file gone before it
        opened it) computes it again."""
        merged = f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:12]}.tsv"
        try:
            _write_values(self.folder / merged, values)
            for name in names:
                (self.folder / name).unlink(missing_ok=True)
        except OSError:
            return
        self._read.add(merged)


#: Files of one model in a :class:`PgenDiskCache` folder from which a reader merges them.
MERGE_FROM = 64
_NONE = "-"


def _write_values(path: Path, values: dict[tuple, float]) -> None:
    """(junction, V, J) -> value lines to `path`, whole or not at all (a temporary file renamed)."""
    text = "".join(f"{j}\t{v or _NONE}\t{jj or _NONE}\t{value!r}\n" for (j, v, jj), value in values.items())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_values(path: Path) -> dict[tuple, float]:
    """The values of a file written by :func:`_write_values` (empty when it is gone or unreadable)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 4:
            try:
                values[(parts[0], None if parts[1] == _NONE else parts[1],
                        None if parts[2] == _NONE else parts[2])] = float(parts[3])
            except ValueError:
                continue
    return values


#: The disk cache in use in this process (:func:`disk_cache`), or None.
_DISK_CACHE: list[PgenDiskCache | None] = [None]


def default_cache_folder() -> Path | None:
    """Where `train` and `baselines` keep pgen values by default: $DEEPRC_HOPFIELD_PGEN_CACHE, else
    `deeprc-hopfield/pgen` in $XDG_CACHE_HOME (default ~/.cache); None where there is no home folder."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no HOME and no password entry (some batch systems)
        return None
    return base / "deeprc-hopfield" / "pgen"


CACHE_VARIABLE = "DEEPRC_HOPFIELD_PGEN_CACHE"


@contextmanager
def disk_cache(folder: str | os.PathLike | None):
    """Keep pgen values in `folder` (:class:`PgenDiskCache`) inside the block; None: not on disk."""
    previous = _DISK_CACHE[0]
    _DISK_CACHE[0] = PgenDiskCache(folder) if folder is not None else None
    if folder is not None:
        log.debug("pgen values kept in %s", folder)
    try:
        yield _DISK_CACHE[0]
    finally:
        _DISK_CACHE[0] = previous


#: Keys computed per part (a progress step, and a task of a worker process).
PART = 200
#: Fewer new keys than this are computed in this process whatever the workers (a pool costs ~0.1 s).
PARALLEL_FROM = 2 * PART


def _olga_values(species: str, chain: str, keys: list[tuple]) -> list[float]:
    """OLGA's amino-acid pgen of each (junction, V, J) key (0 where it cannot generate the junction)."""
    olga = _olga_pgen(species, chain)
    return [float(olga.compute_aa_CDR3_pgen(j, v, jj, print_warnings=False) or 0.0) for j, v, jj in keys]


def pgen_model(chain: str = "TRB", species: str = "human", v_level: str = "family") -> PgenModel:
    """One shared :class:`PgenModel` (and its cache) per (chain, species, v_level) in a process."""
    species, chain = olga_chain(chain, species)
    return _shared_model(chain, species, v_level)


@lru_cache(maxsize=None)
def _shared_model(chain: str, species: str, v_level: str) -> PgenModel:
    return PgenModel(chain, species, v_level)


def generation_probability(junctions: Sequence[str], chain: str = "TRB", species: str = "human",
                           v_calls: Sequence[str | None] | None = None,
                           j_calls: Sequence[str | None] | None = None) -> np.ndarray:
    """:meth:`PgenModel.pgen` with the shared model of (chain, species) (V at family level), float64 (n,)."""
    return pgen_model(chain, species).pgen(junctions, v_calls, j_calls)
