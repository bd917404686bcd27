"""Data-driven start for the embedder: first-layer filters seeded with enriched gapped k-mers.

Why: a disease signal carried by 0.1% of sequences gives gradient descent from random filters
almost nothing to climb. Attention can only single out the witnesses once some filter responds to
them, and a random filter does not: training then sits at chance for thousands of updates, or
memorises the training repertoires first. Counting is cheap and finds the same signal
directly: per repertoire, the occurrences of every gapped k-mer (k residues within a span, gaps
anywhere, e.g. ``GR.DT``), then per k-mer the difference of the mean count between positive
and negative training repertoires over its standard error (a Welch z). The top k-mers become the
starting weights of a few first-layer filters (each fires on a full match only); the other filters
stay random, and training may change all of them. Only the fitting repertoires are counted, never
the validation or test ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from deeprc_hopfield.encoding import AMINO_ACIDS
from deeprc_hopfield.model.batch import SequenceBags
from deeprc_hopfield.model.embedding import SequenceEmbedder
from deeprc_hopfield.store import Repertoire

BASE = len(AMINO_ACIDS) + 1  # residue codes 1..20, 0 = outside the sequence


@dataclass(frozen=True)
class GappedKmer:
    """k residues at `offsets` (the first 0) from a start; `z` is its enrichment in positives."""

    offsets: tuple[int, ...]
    residues: str
    z: float

    def __str__(self) -> str:
        motif = ["."] * (self.offsets[-1] + 1)
        for offset, residue in zip(self.offsets, self.residues):
            motif[offset] = residue
        return "".join(motif)


def kmer_patterns(k: int, span: int) -> list[tuple[int, ...]]:
    """Every placement of k residues within `span` positions that starts with a residue."""
    return [(0, *rest) for rest in itertools.combinations(range(1, span), k - 1)]


def padded_codes(repertoire: Repertoire, extra: int) -> np.ndarray:
    """Residue codes as an (n, longest + extra) matrix, 0 beyond each sequence."""
    lengths = repertoire.lengths.astype(np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    out = np.zeros((len(lengths), width + extra), dtype=np.int64)
    col = np.arange(width)
    valid = col[None, :] < lengths[:, None]
    starts = np.cumsum(lengths) - lengths
    out[:, :width][valid] = repertoire.codes[(starts[:, None] + col)[valid]]
    return out


def kmer_hashes(repertoire: Repertoire, patterns: list[tuple[int, ...]]) -> np.ndarray:
    """Every occurrence of every gapped k-mer as one int64: pattern index * BASE**k + residue hash."""
    k, span = len(patterns[0]), max(p[-1] for p in patterns) + 1
    codes = padded_codes(repertoire, span)
    width = codes.shape[1] - span
    hashes = []
    for index, pattern in enumerate(patterns):
        h = np.zeros((codes.shape[0], width), dtype=np.int64)
        inside = np.ones_like(h, dtype=bool)
        for offset in pattern:
            residue = codes[:, offset:offset + width]
            h = h * BASE + residue
            inside &= residue > 0
        hashes.append(h[inside] + index * BASE ** k)
    return np.concatenate(hashes)


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


def _kmer(flat: int, patterns: list[tuple[int, ...]], z: float) -> GappedKmer:
    k = len(patterns[0])
    index, code = divmod(flat, BASE ** k)
    residues = []
    for _ in range(k):
        code, residue = divmod(code, BASE)
        residues.append(AMINO_ACIDS[residue - 1])
    return GappedKmer(patterns[index], "".join(reversed(residues)), z)


def seed_filters(embedder: SequenceEmbedder, kmers: list[GappedKmer], strength: float) -> int:
    """Set first-layer filter i to fire on kmers[i] only; returns how many filters were seeded.

    Filter weights: `strength` on each k-mer residue at its offset (centred in the kernel), 0
    elsewhere, bias -(k - 1) * strength: a full match gives `strength` before the SELU, one
    mismatch 0, more mismatches less. K-mers wider than the kernel are skipped.
    """
    conv = embedder.convs[0]
    kernel = embedder.kernel_size
    usable = [m for m in kmers if m.offsets[-1] < kernel][: conv.weight.shape[0]]
    with torch.no_grad():
        for f, kmer in enumerate(usable):
            start = (kernel - kmer.offsets[-1] - 1) // 2
            conv.weight[f].zero_()
            for offset, residue in zip(kmer.offsets, kmer.residues):
                conv.weight[f, AMINO_ACIDS.index(residue), start + offset] = strength
            conv.bias[f] = -(len(kmer.residues) - 1) * strength
    return len(usable)


def aim_at_seeds(model: torch.nn.Module, n_seeded: int, sample: SequenceBags) -> float:
    """Point attention at sequences that fire the first `n_seeded` filters, as evidence for the positive class.

    Every head's state pattern starts as the embedding pattern "seeded filters high, the rest
    low", and the query projection as the key projection scaled so that, on `sample` (a few
    training repertoires), a sequence firing a seeded filter scores ln(size of a repertoire) above
    the median: then even one such sequence per repertoire takes a visible share of the attention.
    With the energy feature, the output network's first task starts with a positive slope in each
    head's energy. Without all this the seeded signal could reach the output through either sign,
    and too faintly at 0.1% witnesses to be learnt. Returns the scale applied to the query projection.
    """
    if n_seeded == 0:
        return 1.0
    pooling = model.pooling
    with torch.no_grad():
        pooling.query.zero_()
        pooling.query[:, :n_seeded] = 1.0
        pooling.query_projection.weight.copy_(pooling.key.weight)
        pooling.query_projection.bias.copy_(pooling.key.bias)
        logits = model.attention_logits(sample).max(dim=1).values
        fires = model.embed(sample)[:, :n_seeded].max(dim=1).values > 0
        scale = 1.0
        gap = float(logits[fires].mean() - logits.median()) if bool(fires.any()) else 0.0
        if gap > 0:
            target = math.log(float(sample.bag_sizes().float().mean()))
            scale = max(1.0, target / gap)
            pooling.query_projection.weight.mul_(scale)
            pooling.query_projection.bias.mul_(scale)
        _raise_energy_slope(model)
    return scale


def aim_at_memory(model: torch.nn.Module, sample: SequenceBags) -> float:
    """Start the clone memory's bonus at ln(size of a repertoire of `sample`), as evidence for the positive class.

    A stored clone then takes about as much attention as all other sequences of a training sample
    together (less in a larger whole repertoire, where its rank stays first). Returns the bonus.
    """
    if model.memory is None:
        return 0.0
    bonus = math.log(float(sample.bag_sizes().float().mean()))
    with torch.no_grad():
        model.memory.bonus.fill_(bonus)
        _raise_energy_slope(model)
    return bonus


def _raise_energy_slope(model: torch.nn.Module) -> None:
    """Make the first task's output rise with every head's energy feature (when there is one)."""
    pooling, head = model.pooling, model.head
    if not pooling.energy_feature:
        return
    energy = slice(pooling.out_dim - pooling.heads, pooling.out_dim)
    first_layer = head.body[0] if len(head.body) else head.output
    slope = head.output.weight[0].sign()[:, None] if len(head.body) else 1.0
    first_layer.weight[:, energy] = first_layer.weight[:, energy].abs() * slope
