"""`RepertoireClassifier`: sequence embedder -> Hopfield pooling per repertoire -> output network.

With a clone memory (`model.memory`), sequences equal to a stored public clone get its learned
bonus added to their attention scores in every path (forward, score, attention_logits); with a
reference (`model.reference`, known receptors), so do sequences matching a reference receptor.

`forward` streams: sequences are embedded in length-sorted chunks and each chunk goes straight
into the online softmax of its bags, so the (n, d) embedding matrix of a huge repertoire is never
held at once (with update_steps > 1 the embeddings are kept, as every update re-reads them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from deeprc_hopfield.model import seeding
from deeprc_hopfield.model.batch import SequenceBags
from deeprc_hopfield.model.config import ModelConfig
from deeprc_hopfield.model.embedding import SequenceEmbedder
from deeprc_hopfield.model.heads import OutputNetwork
from deeprc_hopfield.model.pooling import HopfieldPooling
from deeprc_hopfield.model.reference import ReferenceMemory, clone_memory, store_clones
from deeprc_hopfield.public_clones import V_MODE
from deeprc_hopfield.model.streaming import DEFAULT_CHUNK, Index, LeftOut, embedding_chunks, segment_ids


@dataclass
class ModelOutput:
    """outputs: task name -> (B,) or (B, n_classes); attention: (N, heads) weights or None."""

    outputs: dict[str, torch.Tensor]
    attention: torch.Tensor | None = None


class RepertoireClassifier(nn.Module):
    """Classify bags of sequences.

    Input: `SequenceBags` with B bags and N sequences in all (on the model's device).
    Output: `ModelOutput` (per-task outputs of shape (B,) or (B, n_classes); optional attention (N, heads)).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedder = SequenceEmbedder.from_config(config)
        self.pooling = HopfieldPooling.from_config(config, self.embedder.out_dim)
        self.head = OutputNetwork(self.pooling.out_dim, config.tasks, config.head_hidden, config.head_layers)
        self.memory = (clone_memory(config.clone_memory, config.attention_heads, config.n_v_genes,
                                    config.clone_radius, config.clone_width) if config.clone_memory else None)
        self.reference = (ReferenceMemory(config.reference_size, config.reference_width, config.attention_heads,
                                          config.n_v_genes) if config.reference_size else None)

    def clones(self, bags: SequenceBags, hidden: torch.Tensor | None = None) -> torch.Tensor | None:
        """Each sequence's stored clone in the memory, long (N,) (-1 = none), or None without a memory.
        `hidden`: bool (B, memory size), stored clones that bag b must not see (training: those its own
        label helped choose), matched as none."""
        if self.memory is None:
            return None
        clone = self.memory.lookup(bags.codes, bags.lengths, bags.v_index)
        if hidden is None:
            return clone
        return torch.where(hidden[bags.bag_index(), clone.clamp(min=0)], -1, clone)

    def references(self, bags: SequenceBags) -> torch.Tensor | None:
        """Each sequence's matching reference receptor, long (N,) (-1 = none), or None without a reference."""
        return self.reference.lookup(bags.codes, bags.lengths, bags.v_index) if self.reference is not None else None

    def memory_bias(self, clones: torch.Tensor | None, references: torch.Tensor | None = None
                    ) -> torch.Tensor | None:
        """The additive attention scores (N, heads) of the clone memory and the reference, or None without either."""
        terms = [memory.bias(match) for memory, match in ((self.memory, clones), (self.reference, references))
                 if match is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def _outputs(self, pooled: torch.Tensor, bags: SequenceBags, clones: torch.Tensor | None,
                 clones_carried: torch.Tensor | None, references: torch.Tensor | None = None,
                 references_carried: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The output network's outputs, plus the clone memory's and the reference's evidence in a binary
        first task's logit."""
        outputs = self.head(pooled)
        first = self.config.tasks[0]
        if first.kind != "binary":
            return outputs
        for memory, match, carried in ((self.memory, clones, clones_carried),
                                       (self.reference, references, references_carried)):
            if match is not None:
                carried = carried if carried is not None else memory.carried(match, bags)
                outputs[first.name] = outputs[first.name] + memory.evidence_logit(carried).to(outputs[first.name].dtype)
        return outputs

    def embed(self, bags: SequenceBags, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Sequence embeddings (N, embedder.out_dim) in the batch's order."""
        return self.embedder(bags.codes, bags.lengths, bags.v_index, bags.j_index, bags.counts, chunk_size)

    def _stream(self, bags: SequenceBags, bag: torch.Tensor, bias: torch.Tensor | None, chunk_size: int
                ) -> tuple[Iterable[tuple[Index, torch.Tensor]], torch.Tensor]:
        """Chunks `(index, embeddings)` of the batch and the query of the final update. With one update the
        chunks come straight from the embedder; an iterated query re-reads every embedding, so they are kept."""
        if self.pooling.update_steps == 1:
            return self.embedder.iter_chunks(bags.codes, bags.lengths, bags.v_index, bags.j_index, bags.counts,
                                             chunk_size), self.pooling.queries()
        emb = self.embed(bags, chunk_size)
        query = self.pooling.retrieval_query(emb, bag, bags.n_bags, chunk_size, bias)
        return embedding_chunks(emb, chunk_size), query

    def forward(self, bags: SequenceBags, return_attention: bool = False, chunk_size: int = DEFAULT_CHUNK,
                left_out: LeftOut | None = None, clones_carried: torch.Tensor | None = None,
                references_carried: torch.Tensor | None = None, hidden_clones: torch.Tensor | None = None
                ) -> ModelOutput:
        """Outputs of every bag (and, with `return_attention`, every sequence's attention weight).

        left_out: sequences of each bag scored without gradients and left out of `bags`
        (top-fraction training); they join the softmax, so the output is that of the whole sample.
        clones_carried, references_carried: float (B,), the distinct stored clones (reference receptors)
        each bag's whole repertoire carries, for bags that are samples of larger repertoires; None counts
        them in the bags. hidden_clones: bool (B, memory size), stored clones each bag does not see
        (:meth:`clones`).
        """
        bag = segment_ids(bags.offsets)  # (N,); raises on an empty bag
        clones, references = self.clones(bags, hidden_clones), self.references(bags)
        bias = self.memory_bias(clones, references)
        chunks, query = self._stream(bags, bag, bias, chunk_size)
        pooled, attention = self.pooling.pool(chunks, query, bag, bags.offsets, return_attention, bias, left_out)
        return ModelOutput(self._outputs(pooled, bags, clones, clones_carried, references, references_carried),
                           attention)

    @torch.no_grad()
    def score(self, bags: SequenceBags, chunk_size: int = DEFAULT_CHUNK, values: bool = True,
              hidden_clones: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention logits (N, heads) and, with `values`, values (N, heads, attention_dim) of every
        sequence, without gradients (`hidden_clones` as in :meth:`forward`)."""
        pooling = self.pooling
        bag = segment_ids(bags.offsets)
        bias = self.memory_bias(self.clones(bags, hidden_clones), self.references(bags))
        chunks, query = self._stream(bags, bag, bias, chunk_size)
        dtype = pooling.query.dtype
        logits = torch.empty(bags.n_sequences, pooling.heads, device=bags.device, dtype=dtype)
        out = torch.empty(bags.n_sequences, pooling.heads, pooling.attention_dim, device=bags.device, dtype=dtype) \
            if values else None
        for index, lg, _, v in pooling.stream(chunks, query, bag, bias, values):
            logits[index] = lg.to(dtype)
            if out is not None:
                out[index] = v.to(dtype)
        return logits, out

    def attention_logits(self, bags: SequenceBags, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Pre-softmax attention scores (N, heads) of every sequence, without gradients (to rank)."""
        return self.score(bags, chunk_size, values=False)[0]

    # --- initial state, set by training -------------------------------------------------------------
    def seed_filters(self, kmers: list, strength: float) -> int:
        """Start first-layer filters from gapped k-mers (`seeding.GappedKmer`); returns how many were seeded."""
        return seeding.seed_filters(self.embedder, kmers, strength)

    def aim_at_seeds(self, n_seeded: int, sample: SequenceBags, families: list[int] | None = None) -> float:
        """Point attention at sequences firing the first `n_seeded` filters, each head at one `families`
        group of them (see `seeding.aim_at_seeds`)."""
        return seeding.aim_at_seeds(self, n_seeded, sample, families)

    def aim_at_memory(self, sample: SequenceBags) -> float:
        """Start the clone memory's attention bonus at ln(bag size of `sample`) (see `seeding.aim_at_memory`)."""
        return seeding.aim_at_memory(self, sample)

    @torch.no_grad()
    def set_memory(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor, v_genes: list[str],
                   weight: float, intercept: float, v_level: str = V_MODE) -> None:
        """Store the clones (flat codes, lengths, V indices into the model's V gene table `v_genes`, V
        keyed at `v_level`) and start the first task's logit at the regression `weight * log1p(clones
        carried) + intercept` on top of the output network's."""
        store_clones(self.memory, codes, lengths, v_index, v_genes, v_level)
        self.memory.evidence.fill_(weight)
        self.head.output.bias[0] += intercept

    @torch.no_grad()
    def replace_memory(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor, v_genes: list[str],
                       radius: int, v_level: str = V_MODE) -> None:
        """Swap the clone memory for one holding these clones (as :meth:`set_memory`, matched at
        `radius`), its evidence weight and attention bonus kept (where the model had a memory); the config
        follows (`clone_memory`, `clone_radius`, `clone_width`). For a memory chosen again after training
        (the memory alone)."""
        old = self.memory
        width = int(lengths.max()) if len(lengths) else 0
        self.config = replace(self.config, clone_memory=len(lengths), clone_radius=radius, clone_width=width)
        self.memory = clone_memory(len(lengths), self.config.attention_heads, self.config.n_v_genes, radius,
                                   width).to(self.head.output.weight.device)
        store_clones(self.memory, codes, lengths, v_index, v_genes, v_level)
        if old is not None:
            self.memory.evidence.copy_(old.evidence)
            self.memory.bonus.copy_(old.bonus)

    @torch.no_grad()
    def set_reference(self, codes: np.ndarray, lengths: np.ndarray, v_family: np.ndarray, v_genes: list[str],
                      radius: int, weight: float, intercept: float) -> None:
        """Store the reference receptors (flat codes, lengths, V family codes; the model's V gene table
        `v_genes`) matched at `radius`, and start the first task's logit at the regression
        `weight * log1p(receptors matched) + intercept` on top of the output network's."""
        self.reference.store(codes, lengths, v_family, v_genes, radius)
        self.reference.evidence.fill_(weight)
        self.head.output.bias[0] += intercept

    @torch.no_grad()
    def use_memory_alone(self, weight: float, intercept: float, sample: SequenceBags,
                         chunk_size: int = DEFAULT_CHUNK) -> None:
        """Make the first task's output the memory's regression alone (the output network's weights for it
        set to 0), and raise the attention bonus so a stored clone outscores every other sequence of
        `sample` (by the spread of the other scores, plus 1): attention no longer enters the prediction,
        but `attend` and `interpret` then show the stored clones first."""
        self.head.output.weight[0].zero_()
        self.head.output.bias[0] = intercept
        self.memory.evidence.fill_(weight)
        logits = self.attention_logits(sample, chunk_size)
        plain = logits - self.memory_bias(self.clones(sample), self.references(sample))
        spread = plain.max(dim=0).values - plain.min(dim=0).values + 1.0
        self.memory.bonus.copy_(torch.maximum(self.memory.bonus, spread))
