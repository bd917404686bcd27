"""Data-driven start for the model: first-layer filters set to enriched gapped k-mers, attention aimed at them.

Why: a disease signal carried by 0.1% of sequences gives gradient descent from random filters
almost nothing to climb. Attention can only single out the witnesses once some filter responds to
them, and a random filter does not: training then sits at chance for thousands of updates, or
memorises the training repertoires first. Counting is cheap and finds the same signal
directly: per repertoire, the occurrences of every gapped k-mer (k residues within a span, gaps
anywhere, e.g. ``GR.DT``), then per k-mer the difference of the mean count between positive
and negative training repertoires over its standard error (a Welch z). The top k-mers become the
starting weights of a few first-layer filters (each fires on a full match only); the other filters
stay random, and training may change all of them. The counting is training's
(`deeprc_hopfield.training.seeding`); this module sets the model's weights from its result and is
called through the model's methods (`seed_filters`, `aim_at_seeds`, `aim_at_memory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deeprc_hopfield.encoding import AMINO_ACIDS
from deeprc_hopfield.model.batch import SequenceBags
from deeprc_hopfield.model.embedding import SequenceEmbedder


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


def head_filters(families: list[int], heads: int) -> list[list[int]]:
    """The seeded filters each attention head is aimed at: the best filter (the first) of one family
    (`families[i]` is filter i's) per head, best family first, the families repeated when there are
    fewer than heads, and the last head taking the families left over when there are more.

    Only the best filter of a family: aimed at all of them, a head scored a witness by how many of its
    motif's variants (the motif less a residue plus a neighbour, ``S.SA.F``) it also holds, and
    training sharpened that into a few witnesses far above the others."""
    groups = [[f for f, family in enumerate(families) if family == k][:1] for k in sorted(set(families))]
    if len(groups) > heads:
        groups = groups[:heads - 1] + [sum(groups[heads - 1:], [])]
    return [groups[h % len(groups)] for h in range(heads)] if groups else [[] for _ in range(heads)]


def aim_at_seeds(model: torch.nn.Module, n_seeded: int, sample: SequenceBags,
                 families: list[int] | None = None) -> float:
    """Point attention at sequences that fire the first `n_seeded` filters, as evidence for the positive class.

    `families` (n_seeded,) groups the seeded filters by the signal their k-mers come from (see
    `training.seeding.kmer_families`; None: one family), and each head is aimed at one family
    (`head_filters`): its state pattern starts as the embedding pattern "this family's best filter
    high, the rest low", and its block of the query projection as the key projection's, scaled so that, on
    `sample` (a few training repertoires), a sequence firing one of its filters scores ln(size of a
    repertoire) above the median: then even one such sequence per repertoire takes a visible share of
    the head's attention. A head shared by two motifs would learn one only: the softmax hands the
    gradient to whichever scores higher. With the energy feature, the output network's first task
    starts with a positive slope in each head's energy. Without all this the seeded signal could
    reach the output through either sign, and too faintly at 0.1% witnesses to be learnt. Returns
    the largest scale applied to a head's query projection.
    """
    if n_seeded == 0:
        return 1.0
    families = list(families) if families is not None else [0] * n_seeded
    if len(families) != n_seeded:
        raise ValueError(f"families names {len(families)} filters, but {n_seeded} were seeded")
    pooling = model.pooling
    dk = pooling.attention_dim
    aims = head_filters(families, pooling.heads)
    with torch.no_grad():
        pooling.query.zero_()
        for h, filters in enumerate(aims):
            pooling.query[h, filters] = 1.0
        pooling.query_projection.weight.copy_(pooling.key.weight)
        pooling.query_projection.bias.copy_(pooling.key.bias)
        logits = model.attention_logits(sample)  # (N, H)
        embedded = model.embed(sample)  # (N, d)
        target = math.log(float(sample.bag_sizes().float().mean()))
        scales = []
        for h, filters in enumerate(aims):
            fires = embedded[:, filters].max(dim=1).values > 0  # (N,)
            gap = float(logits[fires, h].mean() - logits[:, h].median()) if bool(fires.any()) else 0.0
            scale = max(1.0, target / gap) if gap > 0 else 1.0
            block = slice(h * dk, (h + 1) * dk)  # head h's rows of W_Q (`HopfieldPooling.queries`)
            pooling.query_projection.weight[block] *= scale
            pooling.query_projection.bias[block] *= scale
            scales.append(scale)
        _raise_energy_slope(model)
    return max(scales)


def aim_at_memory(model: torch.nn.Module, sample: SequenceBags) -> float:
    """Start the bonus of the clone memory and the reference at ln(size of a repertoire of `sample`), as
    evidence for the positive class.

    A stored clone then takes about as much attention as all other sequences of a training sample
    together (less in a larger whole repertoire, where its rank stays first). Returns the bonus.
    """
    memories = [m for m in (model.memory, getattr(model, "reference", None)) if m is not None]
    if not memories:
        return 0.0
    bonus = math.log(float(sample.bag_sizes().float().mean()))
    with torch.no_grad():
        for memory in memories:
            memory.bonus.fill_(bonus)
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
