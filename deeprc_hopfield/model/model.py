"""`RepertoireClassifier`: sequence embedder -> Hopfield pooling per repertoire -> output network.

With a clone memory (`model.memory`), sequences equal to a stored public clone get its learned
bonus added to their attention scores in every path (forward, score, attention_logits).

`forward` streams: sequences are embedded in length-sorted chunks and each chunk goes straight
into the online softmax of its bags, so the (n, d) embedding matrix of a huge repertoire is never
held at once (with update_steps > 1 the embeddings are kept, as every update re-reads them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deeprc_hopfield.model.batch import SequenceBags
from deeprc_hopfield.model.config import ModelConfig
from deeprc_hopfield.model.embedding import DEFAULT_CHUNK, SequenceEmbedder
from deeprc_hopfield.model.heads import OutputNetwork
from deeprc_hopfield.model.memory import CloneMemory
from deeprc_hopfield.model.pooling import HopfieldPooling, StreamingSoftmax, segment_ids


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
        self.memory = CloneMemory(config.clone_memory, config.attention_heads) if config.clone_memory else None

    def clones(self, bags: SequenceBags) -> torch.Tensor | None:
        """Each sequence's stored clone in the memory, long (N,) (-1 = none), or None without a memory."""
        return self.memory.lookup(bags.codes, bags.lengths, bags.v_index) if self.memory is not None else None

    def memory_bias(self, clones: torch.Tensor | None) -> torch.Tensor | None:
        """The clone memory's additive attention scores (N, heads), or None without a memory."""
        return self.memory.bias(clones) if clones is not None else None

    def _outputs(self, pooled: torch.Tensor, bags: SequenceBags, clones: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The output network's outputs, plus the clone memory's evidence in a binary first task's logit."""
        outputs = self.head(pooled)
        first = self.config.tasks[0]
        if clones is not None and first.kind == "binary":
            carried = bags.clones_carried if bags.clones_carried is not None else \
                self.memory.carried(clones, bags.offsets)
            outputs[first.name] = outputs[first.name] + self.memory.evidence_logit(carried).to(outputs[first.name].dtype)
        return outputs

    def _chunks(self, bags: SequenceBags, chunk_size: int):
        return self.embedder.iter_chunks(bags.codes, bags.lengths, bags.v_index, bags.j_index, bags.counts,
                                         chunk_size)

    def embed(self, bags: SequenceBags, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Sequence embeddings (N, embedder.out_dim) in the batch's order."""
        return self.embedder(bags.codes, bags.lengths, bags.v_index, bags.j_index, bags.counts, chunk_size)

    def forward(self, bags: SequenceBags, return_attention: bool = False,
                chunk_size: int = DEFAULT_CHUNK) -> ModelOutput:
        bag = segment_ids(bags.offsets)  # (N,); raises on an empty bag
        pooling = self.pooling
        clones = self.clones(bags)
        bias = self.memory_bias(clones)
        if pooling.update_steps > 1:
            pooled, attention = pooling(self.embed(bags, chunk_size), bags.offsets, return_attention, chunk_size,
                                        bags.left_out_softmax, bags.left_out_count, bias)
            return ModelOutput(self._outputs(pooled, bags, clones), attention)
        query = pooling.queries()  # (H, dk)
        dtype = self.pooling.query.dtype
        acc = bags.left_out_softmax.clone() if bags.left_out_softmax is not None else \
            StreamingSoftmax(bags.n_bags, pooling.heads, pooling.attention_dim, bags.device, dtype)
        logits = torch.empty(bags.n_sequences, pooling.heads, device=bags.device, dtype=dtype) \
            if return_attention else None
        for index, emb in self._chunks(bags, chunk_size):
            b = bag[index]
            k, v = pooling.keys_values(emb)
            lg = pooling.logits(k, query, b, bias[index] if bias is not None else None)  # (c, H)
            acc.add(lg, v, b)
            if logits is not None:
                logits[index] = lg.to(logits.dtype)
        mean, lse = acc.result()
        attention = torch.exp(logits - lse[bag]) if logits is not None else None
        pooled = pooling.finish(mean, lse, bags.sampled_sizes())
        return ModelOutput(self._outputs(pooled, bags, clones), attention)

    @torch.no_grad()
    def score(self, bags: SequenceBags, chunk_size: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention logits (N, heads) and values (N, heads, attention_dim) of every sequence, without gradients."""
        pooling = self.pooling
        bag = segment_ids(bags.offsets)
        bias = self.memory_bias(self.clones(bags))
        if pooling.update_steps > 1:
            emb = self.embed(bags, chunk_size)
            query = pooling.retrieval_query(emb, bag, bags.n_bags, chunk_size, bias)
            k, v = pooling.keys_values(emb)
            return pooling.logits(k, query, bag, bias), v
        query = pooling.queries()
        dtype = pooling.query.dtype
        logits = torch.empty(bags.n_sequences, pooling.heads, device=bags.device, dtype=dtype)
        values = torch.empty(bags.n_sequences, pooling.heads, pooling.attention_dim, device=bags.device, dtype=dtype)
        for index, emb in self._chunks(bags, chunk_size):
            k, v = pooling.keys_values(emb)
            logits[index] = pooling.logits(k, query, bag[index], bias[index] if bias is not None else None).to(dtype)
            values[index] = v.to(dtype)
        return logits, values

    def attention_logits(self, bags: SequenceBags, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Pre-softmax attention scores (N, heads) of every sequence (call under no_grad to rank)."""
        pooling = self.pooling
        bias = self.memory_bias(self.clones(bags))
        if pooling.update_steps > 1:
            return pooling.attention_logits(self.embed(bags, chunk_size), bags.offsets, chunk_size, bias)
        bag = segment_ids(bags.offsets)
        query = pooling.queries()
        out = torch.empty(bags.n_sequences, pooling.heads, device=bags.device, dtype=pooling.query.dtype)
        for index, emb in self._chunks(bags, chunk_size):
            k, _ = pooling.keys_values(emb, values=False)
            out[index] = pooling.logits(k, query, bag[index], bias[index] if bias is not None else None).to(out.dtype)
        return out
