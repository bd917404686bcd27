"""Public clones as rough as real cohorts carry them: families of near-identical CDR3s, V calls that
disagree, clones drawn from a list of known receptors.

* **Clones.** `--public-clones N` clones are N distinct CDR3s (with V and J) drawn from the background
  model, or, with `--public-clone-list FILE`, N distinct receptors of that table (a VDJdb export or a
  plain table, read by :func:`deeprc_hopfield.reference.read_reference`; rows without a V or J call,
  or of another chain, are left out), drawn uniformly without replacement with the seed.
* **Families** (`--public-variants K`). Each clone is a family of K distinct CDR3s of one length and
  the clone's V and J: the clone's own (member 0) and K - 1 variants, each one amino-acid
  substitution away from it (a star: two variants are one or two substitutions apart), at a position
  outside the :data:`~.settings.END_MARGIN` residues at each end (the conserved C and F/W and their
  germline neighbours). The (position, residue) pairs are drawn without replacement, so members are
  distinct; a CDR3 too short for K - 1 of them gets all it allows (logged). The substituted codon
  is a synonymous codon of the new residue drawn at random. A positive carries each clone with
  probability `--public-rate`, as one member drawn with equal chance.
* **V noise** (`--public-v-noise F`). Each occurrence of a public clone or of a signal-pool receptor
  is written, with probability F, with another V call, one of three kinds with equal chance, as
  annotations disagree in real cohorts: ``gene``, another gene of the same family (among the genes of
  OLGA's model of the chain, e.g. `TRBV5-6*01` for `TRBV5-1*01`; the V of a family with no other
  gene, such as TRBV2 or TRBV9 (42% of OLGA's TRB rows), gets one of the other two kinds, so on
  TRB about a fifth of the noised calls are of another gene); ``family``, the family alone (`TRBV5`:
  immunoSEQ's family-only call, written there as `v_family` TCRBV05 with `v_gene` unresolved);
  ``missing``, no V call (AIRR: an empty `v_call`; immunoSEQ: `unresolved`). The J call is kept.

Chance-public CDR3s need no option (none was added): the background samples CDR3s from OLGA's generation model, so
CDR3s of high generation probability recur in unrelated repertoires as in real cohorts. Measured by
:func:`chance_public` on the backgrounds of seed 0 (TRB; ``python -c "from deeprc_hopfield.simulate.public
import chance_public; print(chance_public(40, 5000))"``, 3 s; 200 x 5,000: 16 s):

* 40 x 5,000: 197,628 distinct CDR3s; 1,883 (0.95%) in >= 2 repertoires, 20 in >= 5, none in >= 10
  (at most 7); keyed on CDR3 + V gene, 203 in >= 2;
* 200 x 5,000: 961,878 distinct CDR3s; 23,883 (2.5%) in >= 2 repertoires, 1,502 in >= 5, 186 in >= 10
  (at most 32); keyed on CDR3 + V gene, 4,345 in >= 2

(2.1% and 6.2% of the rows carry a CDR3 that another repertoire also holds.) This is the sharing of
the generation model alone: the backgrounds have no thymic selection, which shapes real sharing too.

Randomness: the founders come from the (PUBLIC,) stream, the variants from (VARIANTS,), each
repertoire's choice of members from (ROUGH, r, 0) and its V noise from (ROUGH, r, 1); at the
defaults none of these new streams is used, so the files of a cohort are byte-identical to those made
before these options (truth/public_clones.tsv and the extra truth columns come only with them).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeprc_hopfield.errors import SimulationError
from deeprc_hopfield.genes import gene_family
from deeprc_hopfield.simulate.background import Background, background_model
from deeprc_hopfield.simulate.implant import Implant, _synonymous, implant_receptors
from deeprc_hopfield.simulate.settings import AMINO_ACIDS, END_MARGIN, V_NOISE_KINDS, SimulationSettings
from deeprc_hopfield.species import DEFAULT_SPECIES

log = logging.getLogger(__name__)

#: Columns of truth/public_clones.tsv.
CLONE_COLUMNS = ["clone", "member", "junction_aa", "v_call", "j_call", "source", "epitope", "positives",
                 "negatives"]


@dataclass
class PublicClones:
    """The cohort's public clones (n of them) and their families (m members in all, clone-major order).

    Attributes
    ----------
    members
        (m,) junction, junction_aa, v_call, j_call of every member; a clone's own CDR3 is its member 0.
    clone : (m,) int64
        The clone each member belongs to.
    member : (m,) int64
        Its number within the family (0: the clone itself).
    start, size : (n,) int64
        Where each clone's members begin in `members`, and how many it has.
    source
        Where the clones come from: 'model' or the list's file name.
    epitope : (n,) object
        The list's epitopes of each clone ('' when drawn from the model or none is given).
    """

    members: Background
    clone: np.ndarray
    member: np.ndarray
    start: np.ndarray
    size: np.ndarray
    source: str
    epitope: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


@dataclass
class CloneList:
    """The usable receptors of a public clone list (n): junction_aa, v_call, j_call (nucleotide junctions
    empty until drawn) and each one's epitopes ((n,) object, '' where none)."""

    receptors: Background
    epitope: np.ndarray

    def __len__(self) -> int:
        return len(self.receptors)


def read_public_clone_list(settings: SimulationSettings) -> CloneList:
    """The usable receptors of `settings.public_clone_list` (V and J given, of the settings' chain),
    checked against `--public-clones` before anything is written."""
    from deeprc_hopfield.reference import ReferenceFileError, read_reference

    path = settings.public_clone_list
    reference = read_reference(path, chain=settings.chain)
    table = reference.table
    complete = table["v_call"].notna() & table["j_call"].notna()
    complete &= table["v_call"].astype(str).str.upper().str.startswith(settings.chain)
    table = table[complete].reset_index(drop=True)
    if len(table) < settings.public_clones:
        raise ReferenceFileError(
            f"--public-clones {settings.public_clones} is more than the {len(table)} receptors of chain "
            f"{settings.chain} with a V and a J call in the public clone list "
            f"({reference.counts['n_rows_read']} rows; {int((~complete).sum())} entries lack a V or J call of "
            f"{settings.chain})", path)
    log.info("%s; %d with a V and J call", reference.describe(), len(table))
    receptors = Background(np.full(len(table), "", dtype=object), table["junction_aa"].to_numpy(dtype=object),
                           table["v_call"].to_numpy(dtype=object), table["j_call"].to_numpy(dtype=object))
    return CloneList(receptors, table["epitope"].fillna("").to_numpy(dtype=object))


def draw_founders(settings: SimulationSettings, rng: np.random.Generator,
                  listed: CloneList | None = None) -> tuple[Background, np.ndarray]:
    """The cohort's `settings.public_clones` distinct clones, from the model or from `listed` (with
    nucleotide junctions back-translated), and their epitopes ((n,) object, '' where none)."""
    n = settings.public_clones
    if listed is None:
        drawn = background_model(settings.chain, settings.species).generate(4 * n + 16, rng)
        _, first = np.unique(drawn.junction_aa.astype(str), return_index=True)
        keep = np.sort(first)[:n]
        if len(keep) < n:
            raise SimulationError(f"could not draw {n} distinct public clones")
        founders = Background(drawn.junction[keep], drawn.junction_aa[keep], drawn.v_call[keep], drawn.j_call[keep])
        return founders, np.full(n, "", dtype=object)
    from deeprc_hopfield.simulate.signal_pool import back_translate

    keep = np.sort(rng.choice(len(listed), size=n, replace=False))
    r = listed.receptors
    junction_aa = r.junction_aa[keep]
    founders = Background(back_translate(junction_aa, rng), junction_aa, r.v_call[keep], r.j_call[keep])
    return founders, listed.epitope[keep]


def make_families(founders: Background, k: int, rng: np.random.Generator) -> tuple[Background, np.ndarray,
                                                                                      np.ndarray]:
    """Each founder and up to k - 1 distinct one-substitution variants of it (see the module docstring).

    Returns
    -------
    members, clone, member
        The members in clone-major order, each one's clone index and number within its family.
    """
    rows: list[tuple[str, str, str, str]] = []
    clone, member = [], []
    short = 0
    for c in range(len(founders)):
        aa, nt = founders.junction_aa[c], founders.junction[c]
        v, j = founders.v_call[c], founders.j_call[c]
        rows.append((nt, aa, v, j))
        clone.append(c)
        member.append(0)
        if k == 1:
            continue
        positions = np.arange(END_MARGIN, len(aa) - END_MARGIN)
        pairs = [(int(p), r) for p in positions for r in AMINO_ACIDS if r != aa[p]]
        chosen = rng.choice(len(pairs), size=min(k - 1, len(pairs)), replace=False) if pairs else []
        short += len(chosen) < k - 1
        for number, index in enumerate(chosen, start=1):
            position, residue = pairs[int(index)]
            new_aa = aa[:position] + residue + aa[position + 1:]
            new_nt = nt[: 3 * position] + _synonymous(residue, rng) + nt[3 * position + 3:] if nt else nt
            rows.append((new_nt, new_aa, v, j))
            clone.append(c)
            member.append(number)
    if short:
        log.warning("%d public clones are too short for %d one-substitution variants outside the %d conserved "
                    "residues at each end; they have fewer", short, k - 1, END_MARGIN)
    columns = [np.array(col, dtype=object) for col in zip(*rows)] if rows else [np.array([], dtype=object)] * 4
    return Background(*columns), np.array(clone, dtype=np.int64), np.array(member, dtype=np.int64)


def public_clones(settings: SimulationSettings, founder_rng: np.random.Generator, variant_rng: np.random.Generator,
                  listed: CloneList | None = None) -> PublicClones | None:
    """The cohort's public clones and their families; None without public clones."""
    if settings.public_clones == 0:
        return None
    founders, epitope = draw_founders(settings, founder_rng, listed)
    members, clone, member = make_families(founders, settings.public_variants, variant_rng)
    size = np.bincount(clone, minlength=len(founders)).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    source = "model" if listed is None else Path(str(settings.public_clone_list)).name
    return PublicClones(members, clone, member, start, size, source, epitope)


def implant_public(background: Background, clones: PublicClones, rate: float, rng: np.random.Generator,
                   taken: np.ndarray, member_rng: np.random.Generator | None = None) -> list[Implant]:
    """Overwrite random rows with public clones, each carried with probability `rate`, as one member of
    its family (drawn with `member_rng`; families of one need none).

    Parameters
    ----------
    background
        The repertoire (changed in place: junction, junction_aa, v_call, j_call of chosen rows).
    clones
        The cohort's public clones.
    rate
        Probability that this repertoire carries a given clone.
    rng
        The repertoire's implanting generator (which clones, which rows).
    taken
        (n,) bool, rows already used by an implant; updated in place.
    member_rng
        The repertoire's generator for the choice of members.
    """
    carried = np.flatnonzero(rng.random(len(clones)) < rate)
    chosen = choose_members(clones, carried, member_rng)
    founders = clones.members.junction_aa[clones.start]
    return implant_receptors(background, clones.members, chosen, "public_clone", rng, taken,
                             signals=founders[carried], clones=carried)


def choose_members(clones: PublicClones, carried: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """The member (index into `clones.members`) each carried clone is written as, drawn with equal chance;
    with families of one (no `rng` needed, none used), the clones themselves."""
    if rng is None or (clones.size[carried] == 1).all():
        return clones.start[carried]
    u = rng.random(len(carried))
    return clones.start[carried] + np.minimum((u * clones.size[carried]).astype(np.int64), clones.size[carried] - 1)


@functools.lru_cache(maxsize=None)
def _genes_by_family(chain: str, species: str = DEFAULT_SPECIES) -> dict[str, tuple[str, ...]]:
    """Family -> the V genes of OLGA's model of `chain` in it, each as its first allele's name, sorted."""
    first: dict[str, str] = {}
    for name in filter(None, background_model(chain, species).v_names):
        first.setdefault(str(name).split("*", 1)[0], str(name))
    families: dict[str, list[str]] = {}
    for gene, name in sorted(first.items()):
        families.setdefault(gene_family(gene), []).append(name)
    return {family: tuple(names) for family, names in families.items()}


def other_genes(chain: str, v_call: str, species: str = DEFAULT_SPECIES) -> tuple[str, ...]:
    """The genes of OLGA's model in the family of `v_call`, other than its own gene (allele names)."""
    gene = v_call.split("*", 1)[0]
    return tuple(name for name in _genes_by_family(chain, species).get(gene_family(gene), ())
                 if name.split("*", 1)[0] != gene)


def noise_v_calls(background: Background, implants: list[Implant], share: float, chain: str,
                  rng: np.random.Generator, species: str = DEFAULT_SPECIES) -> None:
    """Write each implant's V call, with probability `share`, as another gene of its family, its family
    alone or nothing (kinds :data:`~.settings.V_NOISE_KINDS`, equal chances among those possible).

    Parameters
    ----------
    background
        The repertoire; `v_call` of the chosen rows is changed in place.
    implants
        Whole-receptor implants (public clones, signal-pool receptors); a noised one gets `true_v`
        (the V it had) and `v_noise` (the kind) set.
    share
        Probability that an occurrence is noised, in [0, 1].
    chain, species
        The chain and species, whose OLGA model lists the genes of each family.
    rng
        The repertoire's stream for V noise: three uniform numbers are drawn per implant, whatever
        happens, so one implant's fate does not shift another's.
    """
    u = rng.random((len(implants), 3))
    for implant, (noised, which, pick) in zip(implants, u):
        if noised >= share:
            continue
        true_v = str(background.v_call[implant.row])
        if not true_v:  # no call to noise (a gene IMGT lacks, written as none)
            continue
        others = other_genes(chain, true_v, species)
        kinds = V_NOISE_KINDS if others else V_NOISE_KINDS[1:]
        kind = kinds[min(int(which * len(kinds)), len(kinds) - 1)]
        if kind == "gene":
            written = others[min(int(pick * len(others)), len(others) - 1)]
        elif kind == "family":
            written = gene_family(true_v)
        else:
            written = ""
        background.v_call[implant.row] = written
        implant.true_v, implant.v_noise = true_v, kind


def clone_table(clones: PublicClones, positives: np.ndarray, negatives: np.ndarray) -> str:
    """truth/public_clones.tsv: every member of every clone's family (`member` 0: the clone itself), its
    V and J, where the clone comes from, its epitopes, and how many positive and negative repertoires
    carry that member."""
    m = clones.members
    rows = ["\t".join(CLONE_COLUMNS)]
    for i in range(len(m)):
        c = int(clones.clone[i])
        rows.append("\t".join([str(c), str(int(clones.member[i])), m.junction_aa[i], m.v_call[i], m.j_call[i],
                               clones.source, str(clones.epitope[c]), str(int(positives[i])),
                               str(int(negatives[i]))]))
    return "\n".join(rows) + "\n"


def chance_public(n_repertoires: int, size: int, chain: str = "TRB", seed: int = 0) -> dict[str, int]:
    """How many distinct CDR3s the backgrounds of a cohort share by chance (no implant).

    Parameters
    ----------
    n_repertoires, size
        The cohort: repertoires of `size` background sequences each (those :func:`simulate` would
        draw with this `seed`).
    chain, seed
        The background model and seed.

    Returns
    -------
    Counts: `sequences`, `distinct` CDR3s, those in >= 2, >= 5 and >= 10 repertoires (`shared_2`,
    `shared_5`, `shared_10`), the most repertoires one CDR3 is in (`max_repertoires`), the rows that
    carry a CDR3 held by >= 2 repertoires (`rows_shared`), and distinct CDR3 + V gene pairs in >= 2
    repertoires (`shared_2_with_v`).
    """
    from collections import Counter

    from deeprc_hopfield.simulate.cohort import make_background

    settings = SimulationSettings(n_repertoires=max(2, n_repertoires), sequences_per_repertoire=size,
                                  witness_rate=1.0, seed=seed, chain=chain)
    by_cdr3: Counter = Counter()
    by_cdr3_v: Counter = Counter()
    for index in range(n_repertoires):
        rep = make_background(settings, index, size)
        by_cdr3.update(set(rep.junction_aa.tolist()))
        by_cdr3_v.update(set(zip(rep.junction_aa.tolist(), (v.split("*", 1)[0] for v in rep.v_call))))
    k = np.fromiter(by_cdr3.values(), dtype=np.int64, count=len(by_cdr3))
    k_v = np.fromiter(by_cdr3_v.values(), dtype=np.int64, count=len(by_cdr3_v))
    return {"sequences": n_repertoires * size, "distinct": len(k), "shared_2": int((k >= 2).sum()),
            "shared_5": int((k >= 5).sum()), "shared_10": int((k >= 10).sum()), "max_repertoires": int(k.max()),
            "rows_shared": int(k[k >= 2].sum()), "shared_2_with_v": int((k_v >= 2).sum())}
