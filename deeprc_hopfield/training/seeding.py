"""Seeding counts: the gapped k-mers most enriched in the positive fitting repertoires, and the model
started from them.

Per fitting repertoire (a seeded sample of up to `seed_sample` sequences), the occurrences of every
gapped k-mer (k residues within a span, gaps anywhere, e.g. ``GR.DT``) are counted with one
vectorised bincount; per k-mer, the difference of the mean count between positive and negative
repertoires over its standard error (a Welch z) ranks them. The model's methods then set filters
to the top k-mers and aim attention at them (`deeprc_hopfield.model.seeding`). Only the fitting
repertoires are counted, never the validation or test ones.

The top k-mers of one implanted motif are its variants (``SA.FY``, ``S.SA.F``, ``S.A.FY``, ...):
the same witness sequences. Two independent motifs are two *families* of k-mers, held by different
sequences. Each family gets attention heads of its own (`kmer_families`, then
`model.aim_at_seeds`): a single head aimed at all seeded filters learnt one motif only (the softmax
hands the gradient to whichever motif scores higher, which then scores higher still) and left the
other's sequences among the background, about half of the implanted sequences of a two-motif cohort.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable

import numpy as np

from deeprc_hopfield.encoding import AMINO_ACIDS
from deeprc_hopfield.model import RepertoireClassifier, SequenceBags
from deeprc_hopfield.model.seeding import GappedKmer
from deeprc_hopfield.progress import logged
from deeprc_hopfield.sampling import RepertoireCache, sample_indices
from deeprc_hopfield.store import Repertoire
from deeprc_hopfield.training.config import TrainingConfig

log = logging.getLogger(__name__)
BASE = len(AMINO_ACIDS) + 1  # residue codes 1..20, 0 = outside the sequence
SEEDING_STREAM = 2**31 - 1  # the random stream of the seeding's sample, apart from every update's
FAMILY_SHARE = 0.5  # the least share of a k-mer's witnesses that makes it a member of a family (kmer_families)


def kmer_patterns(k: int, span: int) -> list[tuple[int, ...]]:
    """Every placement of k residues within `span` positions that starts with a residue."""
    return [(0, *rest) for rest in itertools.combinations(range(1, span), k - 1)]


def kmer_starts(lengths: np.ndarray, last: int) -> tuple[np.ndarray, np.ndarray]:
    """The flat residue positions where `last` + 1 positions fit inside their sequence (a k-mer whose last residue
    is `last` after its first may start there), ascending, and the sequence of each: int64 each."""
    lengths = np.asarray(lengths, dtype=np.int64)
    fits = np.maximum(lengths - last, 0)
    within = np.arange(int(fits.sum())) - np.repeat(np.cumsum(fits) - fits, fits)
    return np.repeat(np.cumsum(lengths) - lengths, fits) + within, np.repeat(np.arange(len(lengths)), fits)


def kmer_hashes(repertoire: Repertoire, patterns: list[tuple[int, ...]]) -> np.ndarray:
    """Every occurrence of every gapped k-mer as one int64: pattern index * BASE**k + residue hash, pattern by
    pattern, each in sequence and position order. Read from the flat residue codes: no padding to the longest
    sequence, so a sample with a few long CDR3s costs no more than its residues."""
    k, codes = len(patterns[0]), np.asarray(repertoire.codes, dtype=np.int64)
    starts = {last: kmer_starts(repertoire.lengths, last)[0] for last in {p[-1] for p in patterns}}
    hashes = []
    for index, pattern in enumerate(patterns):
        at = starts[pattern[-1]]
        h = codes[at + pattern[0]]
        for offset in pattern[1:]:
            h = h * BASE + codes[at + offset]
        hashes.append(h + index * BASE ** k)
    return np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)


def count_kmers(repertoire: Repertoire, patterns: list[tuple[int, ...]]) -> np.ndarray:
    """Occurrences of every gapped k-mer, (len(patterns) * BASE**k,) float: pattern-major, then hash."""
    n_bins = len(patterns) * BASE ** len(patterns[0])
    return np.bincount(kmer_hashes(repertoire, patterns), minlength=n_bins).astype(np.float64)


def enriched_kmers(repertoires: Iterable[Repertoire], labels: Iterable[int], n: int, k: int = 4,
                   span: int = 6) -> list[GappedKmer]:
    """The `n` gapped k-mers whose mean count per repertoire is most raised in positives (label 1).

    z = (mean_pos - mean_neg) / sqrt(v_pos / n_pos + v_neg / n_neg), where each class's variance
    is floored at its mean (Poisson) and at 1 / n_class, so a k-mer seen once does not rank high.
    """
    patterns = kmer_patterns(k, span)
    sums = {0: 0.0, 1: 0.0}
    squares = {0: 0.0, 1: 0.0}
    sizes = {0: 0, 1: 0}
    for repertoire, label in zip(repertoires, labels):
        counts = count_kmers(repertoire, patterns)
        sums[label] = sums[label] + counts
        squares[label] = squares[label] + counts ** 2
        sizes[label] += 1
    if min(sizes.values()) == 0:
        return []
    stats = {}
    for label in (0, 1):
        mean = sums[label] / sizes[label]
        variance = np.maximum(squares[label] / sizes[label] - mean ** 2, np.maximum(mean, 1.0 / sizes[label]))
        stats[label] = (mean, variance / sizes[label])
    z = (stats[1][0] - stats[0][0]) / np.sqrt(stats[1][1] + stats[0][1])
    best = np.argsort(-z, kind="stable")[:n]
    return [_kmer(int(i), patterns, float(z[i])) for i in best if z[i] > 0]


def shared_kmers(repertoires: Iterable[Repertoire], labels: Iterable[int], n: int, k: int = 7) -> list[GappedKmer]:
    """The `n` contiguous k-mers most often present in positive rather than negative repertoires, one per clone.

    For clones shared by patients (public clones) a long contiguous k-mer is specific where a gapped
    4-mer is not. z = (p_pos - p_neg) / sqrt(p (1 - p) (1/n_pos + 1/n_neg)) on the shares of
    repertoires that hold the k-mer (p pooled, kept within [1/n, 1 - 1/n]); a k-mer held by nearly the same
    repertoires as a chosen one (Jaccard >= 0.8: most likely the same clone) is skipped.
    """
    patterns = [tuple(range(k))]
    holders: list[np.ndarray] = []
    classes: list[int] = []
    for repertoire, label in zip(repertoires, labels):
        holders.append(np.unique(kmer_hashes(repertoire, patterns)))
        classes.append(label)
    sizes = np.bincount(classes, minlength=2)
    if len(holders) == 0 or sizes.min() == 0:
        return []
    hashes = np.concatenate(holders)
    positive = np.repeat(np.asarray(classes) == 1, [len(h) for h in holders])
    kmers, inverse = np.unique(hashes, return_inverse=True)
    in_positive = np.bincount(inverse, weights=positive, minlength=len(kmers))
    in_negative = np.bincount(inverse, minlength=len(kmers)) - in_positive
    p_pos, p_neg = in_positive / sizes[1], in_negative / sizes[0]
    pooled = np.clip((in_positive + in_negative) / sizes.sum(), 1.0 / sizes.sum(), 1.0 - 1.0 / sizes.sum())
    z = (p_pos - p_neg) / np.sqrt(pooled * (1 - pooled) * (1 / sizes[0] + 1 / sizes[1]))
    candidates = [i for i in np.argsort(-z, kind="stable")[: 50 * n] if z[i] > 0]
    held = np.stack([np.isin(kmers[candidates], h) for h in holders], axis=1)  # (candidates, repertoires)
    chosen: list[int] = []
    for c in range(len(candidates)):
        if len(chosen) == n:
            break
        both = (held[chosen] & held[c]).sum(axis=1)
        either = (held[chosen] | held[c]).sum(axis=1)
        if not (both >= 0.8 * either).any():
            chosen.append(c)
    return [_kmer(int(kmers[candidates[c]]), patterns, float(z[candidates[c]])) for c in chosen]


def kmer_matches(repertoire: Repertoire, kmers: list[GappedKmer]) -> np.ndarray:
    """Whether each sequence holds each k-mer anywhere, bool (n, len(kmers))."""
    codes = np.asarray(repertoire.codes)
    out = np.zeros((len(repertoire.lengths), len(kmers)), dtype=bool)
    starts = {last: kmer_starts(repertoire.lengths, last) for last in {m.offsets[-1] for m in kmers}}
    for j, kmer in enumerate(kmers):
        at, sequence = starts[kmer.offsets[-1]]
        hit = np.ones(len(at), dtype=bool)
        for offset, residue in zip(kmer.offsets, kmer.residues):
            hit &= codes[at + offset] == AMINO_ACIDS.index(residue) + 1
        out[sequence[hit], j] = True
    return out


def kmer_families(kmers: list[GappedKmer], repertoires: Iterable[Repertoire], labels: Iterable[int],
                  share: float = FAMILY_SHARE) -> list[int]:
    """Group enriched k-mers (best first) into families carried by the same sequences: one family per signal.

    A k-mer's *excess* is how many more sequences hold it in the positive repertoires than in as
    many negative ones (the negatives' count scaled by n_pos / n_neg), i.e. about its witnesses.
    Taken best first, a k-mer joins the family whose sequences (those holding any of its members)
    account for the largest part of its excess, when that part is at least `share`; else it starts a
    new family. Variants of one motif share their witnesses and fall into one family; a second,
    independent motif is held by other sequences and starts its own. Returns each k-mer's family,
    numbered in order of the families' best k-mer (0 = the most enriched); all 0 without both classes.
    """
    if not kmers:
        return []
    held: dict[int, list[np.ndarray]] = {0: [], 1: []}
    n_repertoires = {0: 0, 1: 0}
    for repertoire, label in zip(repertoires, labels):
        matches = kmer_matches(repertoire, kmers)
        held[int(label)].append(matches[matches.any(axis=1)])  # only sequences holding a k-mer matter
        n_repertoires[int(label)] += 1
    if min(n_repertoires.values()) == 0:
        return [0] * len(kmers)
    ratio = n_repertoires[1] / n_repertoires[0]
    pos, neg = np.concatenate(held[1]), np.concatenate(held[0])  # (sequences, k-mers)
    families: list[int] = []
    members_pos: list[np.ndarray] = []  # per family: the sequences holding any member
    members_neg: list[np.ndarray] = []
    for j in range(len(kmers)):
        excess = pos[:, j].sum() - ratio * neg[:, j].sum()
        shared = [(pos[:, j] & fp).sum() - ratio * (neg[:, j] & fn).sum() for fp, fn in zip(members_pos, members_neg)]
        best = int(np.argmax(shared)) if shared else -1
        if best >= 0 and excess > 0 and shared[best] >= share * excess:
            families.append(best)
            members_pos[best] |= pos[:, j]
            members_neg[best] |= neg[:, j]
        else:
            families.append(len(members_pos))
            members_pos.append(pos[:, j].copy())
            members_neg.append(neg[:, j].copy())
    return families


def _kmer(flat: int, patterns: list[tuple[int, ...]], z: float) -> GappedKmer:
    k = len(patterns[0])
    index, code = divmod(flat, BASE ** k)
    residues = []
    for _ in range(k):
        code, residue = divmod(code, BASE)
        residues.append(AMINO_ACIDS[residue - 1])
    return GappedKmer(patterns[index], "".join(reversed(residues)), z)


def seed_model(model: RepertoireClassifier, cache: RepertoireCache, fit_idx: np.ndarray, labels: np.ndarray,
               config: TrainingConfig) -> list[str]:
    """Start some first-layer filters from k-mers enriched in the positive fitting repertoires (`fit_idx`,
    binary `labels` of them), and aim the attention at them, at the clone memory's clones and at the
    reference's receptors.

    Counts a seeded sample of up to `seed_sample` sequences per fitting repertoire. Returns the
    seeded k-mers, as motif strings.
    """
    cfg = config
    if cfg.seed_filters == 0 and model.memory is None and model.reference is None:
        return []
    rng = np.random.default_rng([cfg.seed, SEEDING_STREAM])
    started = time.perf_counter()
    counted = fit_idx if cfg.seed_filters else fit_idx[:cfg.repertoires_per_update]
    reps = [r.subset(sample_indices(r, cfg.seed_sample, rng, cfg.sampling))  # one whole at a time
            for r in logged(cache.rows(counted), log, "seeding: sampling the fitting repertoires", len(counted))]
    kmers: list[GappedKmer] = []
    if cfg.seed_filters:
        n_clones = min(cfg.seed_clones, cfg.seed_filters)
        kmers = enriched_kmers(logged(reps, log, "seeding: counting gapped k-mers"), labels,
                               cfg.seed_filters - n_clones, cfg.seed_kmer, cfg.seed_span)
        if n_clones:
            kmers += shared_kmers(logged(reps, log, "seeding: counting shared k-mers"), labels, n_clones,
                                  cfg.seed_clone_kmer)
    n = model.seed_filters(kmers, cfg.seed_strength)
    seeded = [m for m in kmers if m.offsets[-1] < model.embedder.kernel_size][:n]  # as `seed_filters` chose
    families = kmer_families(seeded, logged(reps, log, "seeding: grouping the k-mers"), labels)
    # the aim is set on bags of the size training samples
    sample = SequenceBags.from_repertoires([r.subset(sample_indices(r, cfg.sample_size, rng, cfg.sampling))
                                            for r in reps[:cfg.repertoires_per_update]])
    scale = model.aim_at_seeds(n, sample, families)
    model.aim_at_memory(sample)
    log.info("seeded %d filters with enriched k-mers in %.1f s (query scale up to %.1f; %d famil%s over %d "
             "attention heads): %s", n, time.perf_counter() - started, scale, len(set(families)),
             "y" if len(set(families)) == 1 else "ies", model.pooling.heads,
             ", ".join(f"{m} (z {m.z:.1f}, family {f})" for m, f in zip(seeded, families)))
    return [str(m) for m in seeded]
