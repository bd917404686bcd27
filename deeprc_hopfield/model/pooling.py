"""`HopfieldPooling`: attention pooling of whole bags with an exact softmax streamed over chunks.

A bag's instances X (n, d) are the stored patterns of a modern Hopfield network and learned query
patterns the state patterns. After layer norms, keys K = LN(X) W_K, values V = LN(X) W_V and
queries Q = LN(xi) W_Q (one query per head), one update retrieves
``softmax(beta * K q) V`` per head, and the heads are joined by an output projection. With
`update_steps` > 1 the query is first iterated in key space, q <- K^T softmax(beta * K q), before
the values are read.

With `energy_feature` the pooled vector also carries, per head, the log-mean-exp of the bag's
attention logits: up to sign, scale and constants the energy of the learned state pattern under the
bag's stored patterns. It says how well the bag holds a pattern that matches the query, and it hands
every instance's score a gradient at once (d/d logit_i = attention_i), where the retrieved values
only reach the scores through the output network: with witnesses at 0.1% this is what lets training
find them in hundreds of updates instead of tens of thousands.

With several heads (`attention_heads`; training aims each at one family of seeded k-mers, i.e.
one motif), the attention weight reported for an instance (`pool`, `joint_attention`) is one
softmax over the (instance, head) pairs of its bag, of logits centred per head: each head's own
softmax sums to 1 whatever it finds, so a head whose motif a bag lacks would otherwise put its whole
weight on the background. The pooled vector uses each head's own softmax.

Training sees samples of a fixed size and prediction whole repertoires, up to 100 times larger; the
energy and, through its sharpest instances, the softmax mean grow with the bag when the logits are
heavy-tailed, so the output would drift with repertoire size. With `subset_size` (training sets it to
its sample size) a larger bag is therefore pooled as the mean of the pooled vectors of disjoint,
interleaved subsets of about that size (`subsets`): each subset looks to the output network like a
training sample. Attention weights stay one softmax over the whole bag. With `update_steps` > 1 the
iterated query is still computed over the whole bag (not per subset).

The softmax runs over every instance of a bag. It is computed in one pass over chunks of instances
(in any order, bags mixed) with a running maximum, a running sum of exponentials and a running
weighted sum of values: an online softmax. The result equals the dense softmax, and memory does
not grow with the bag size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from deeprc_hopfield.model.streaming import DEFAULT_CHUNK, Index, LeftOut, StreamingSoftmax, embedding_chunks, segment_ids

class HopfieldPooling(nn.Module):
    """Pool a variable number of instances per bag into one vector with learned query patterns.

    Input: embeddings (N, input_dim) of all bags concatenated, offsets long (B+1,).
    Output: pooled (B, out_dim) with out_dim = attention_dim (+ heads with `energy_feature`), and
    with `return_attention` the attention weight of every instance (N, heads), summing to heads over
    each bag (`joint_attention`; with one head, the softmax itself).
    """

    def __init__(self, input_dim: int, heads: int = 1, attention_dim: int = 32, beta: float | None = None,
                 learn_beta: bool = False, update_steps: int = 1, energy_feature: bool = True,
                 subset_size: int = 0) -> None:
        super().__init__()
        self.heads, self.attention_dim, self.update_steps = heads, attention_dim, update_steps
        self.energy_feature, self.subset_size = energy_feature, subset_size
        self.out_dim = attention_dim + (heads if energy_feature else 0)
        self.query = nn.Parameter(torch.randn(heads, input_dim) * 0.02)  # learned state patterns
        self.norm_stored = nn.LayerNorm(input_dim)
        self.norm_query = nn.LayerNorm(input_dim)
        self.key = nn.Linear(input_dim, heads * attention_dim)
        self.value = nn.Linear(input_dim, heads * attention_dim)
        self.query_projection = nn.Linear(input_dim, heads * attention_dim)
        self.out = nn.Linear(heads * attention_dim, attention_dim)
        beta = beta if beta is not None else 1.0 / math.sqrt(attention_dim)
        log_beta = torch.tensor(math.log(beta))
        if learn_beta:
            self.log_beta = nn.Parameter(log_beta)
        else:
            self.register_buffer("log_beta", log_beta)

    @classmethod
    def from_config(cls, config, input_dim: int) -> "HopfieldPooling":
        return cls(input_dim, config.attention_heads, config.attention_dim, config.beta, config.learn_beta,
                   config.update_steps, config.energy_feature, config.pool_subset_size or 0)

    @property
    def beta(self) -> torch.Tensor:
        return self.log_beta.exp()

    def queries(self) -> torch.Tensor:
        """Projected learned queries, (heads, attention_dim): head h uses block h of W_Q."""
        q = self.query_projection(self.norm_query(self.query))  # (H, H*dk)
        q = q.view(self.heads, self.heads, self.attention_dim)
        return q[torch.arange(self.heads), torch.arange(self.heads)]  # (H, dk)

    def keys_values(self, embeddings: torch.Tensor, values: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Keys (c, H, dk) and, if asked, values (c, H, dk) of a chunk of instances (c, input_dim)."""
        x = self.norm_stored(embeddings)
        k = self.key(x).view(-1, self.heads, self.attention_dim)
        v = self.value(x).view(-1, self.heads, self.attention_dim) if values else None
        return k, v

    def logits(self, keys: torch.Tensor, query: torch.Tensor, bag: torch.Tensor,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """beta * <k_i, q_bag> (+ bias_i) per head, (c, H); query is (H, dk) shared or (B, H, dk) per
        bag; `bias` (c, H) is an additive score per instance (the clone memory's, `model.memory`)."""
        q = query[bag] if query.ndim == 3 else query[None]
        scores = self.beta * (keys * q).sum(-1)
        return scores if bias is None else scores + bias

    def stream(self, chunks: Iterable[tuple[Index, torch.Tensor]], query: torch.Tensor, bag: torch.Tensor,
               bias: torch.Tensor | None = None, values: bool = True
               ) -> Iterator[tuple[Index, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """The one chunked pass: for each chunk `(index, embeddings (c, input_dim))`, yield `(index,
        logits (c, H), keys (c, H, dk), values (c, H, dk) or None)`; `bag` (N,) and `bias` (N, H) are
        indexed by `index`."""
        for index, emb in chunks:
            k, v = self.keys_values(emb, values)
            yield index, self.logits(k, query, bag[index], bias[index] if bias is not None else None), k, v

    def accumulate(self, chunks: Iterable[tuple[Index, torch.Tensor]], query: torch.Tensor, bag: torch.Tensor,
                   n_bags: int, bias: torch.Tensor | None = None, left_out: LeftOut | None = None,
                   read_keys: bool = False, logits_out: torch.Tensor | None = None,
                   subsets: Subsets | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax-weighted means of the values (or of the keys, `read_keys`) (B, H, dk) and the
        log-sum-exp (B, H) over every chunk, continuing from `left_out`'s state; each chunk's
        logits are also written into `logits_out` (N, H) when given. With `subsets`, per subset
        (S, H, dk) and (S, H) instead of per bag."""
        key, n_keys = (subsets.of, subsets.n) if subsets is not None else (bag, n_bags)
        acc = left_out.softmax.clone() if left_out is not None else \
            StreamingSoftmax(n_keys, self.heads, self.attention_dim, bag.device, self.query.dtype)
        for index, logits, k, v in self.stream(chunks, query, bag, bias, values=not read_keys):
            acc.add(logits, k if read_keys else v, key[index])
            if logits_out is not None:
                logits_out[index] = logits.to(logits_out.dtype)
        return acc.result()

    def retrieval_query(self, embeddings: torch.Tensor, bag: torch.Tensor, n_bags: int,
                        chunk_size: int = DEFAULT_CHUNK, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The query of the final update: learned (H, dk), or per bag (B, H, dk) after iterating in key space."""
        query = self.queries()
        for _ in range(self.update_steps - 1):
            query, _ = self.accumulate(embedding_chunks(embeddings, chunk_size), query, bag, n_bags, bias,
                                       read_keys=True)
        return query

    def attention_logits(self, embeddings: torch.Tensor, offsets: torch.Tensor | None = None,
                         chunk_size: int = DEFAULT_CHUNK, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-softmax scores (N, heads) of the final update. `offsets` is needed only with update_steps > 1;
        `bias` (N, H) is added to every score (see `logits`)."""
        if offsets is None:
            if self.update_steps > 1:
                raise ValueError("attention_logits needs offsets when update_steps > 1 (queries depend on the bag)")
            bag = torch.zeros(embeddings.shape[0], dtype=torch.long, device=embeddings.device)
            n_bags = 1
        else:
            bag, n_bags = segment_ids(offsets), offsets.shape[0] - 1
        query = self.retrieval_query(embeddings, bag, n_bags, chunk_size, bias)
        out = embeddings.new_zeros(embeddings.shape[0], self.heads, dtype=self.query.dtype)
        for index, logits, _, _ in self.stream(embedding_chunks(embeddings, chunk_size), query, bag, bias, False):
            out[index] = logits.to(out.dtype)
        return out

    def finish(self, mean_values: torch.Tensor, lse: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """Join the heads, (B, H, dk) -> (B, out_dim), and append the energy feature if configured.

        lse (B, H) and sizes (B,) are the log-sum-exp of the logits and the number of instances
        they cover.
        """
        pooled = self.out(mean_values.flatten(1))
        if not self.energy_feature:
            return pooled
        log_mean_exp = lse - torch.log(sizes.to(lse.dtype))[:, None]
        return torch.cat((pooled.float(), log_mean_exp.float()), dim=1)  # not rounded to bfloat16 (`heads`)

    def forward(self, embeddings: torch.Tensor, offsets: torch.Tensor, return_attention: bool = False,
                chunk_size: int = DEFAULT_CHUNK, left_out: LeftOut | None = None,
                bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """pooled (B, out_dim) and, with `return_attention`, weights (N, heads) of these instances.

        `left_out` (instances scored without gradients but not passed here) joins the final softmax,
        so the result is that of all instances; the iterated query (update_steps > 1) is computed
        from the instances passed here only. `bias` (N, H) is added to the instances' scores (see `logits`).
        """
        bag = segment_ids(offsets)
        n_bags = offsets.shape[0] - 1
        if bag.shape[0] != embeddings.shape[0]:
            raise ValueError(f"offsets describe {bag.shape[0]} instances but embeddings has {embeddings.shape[0]}")
        query = self.retrieval_query(embeddings, bag, n_bags, chunk_size, bias)
        return self.pool(embedding_chunks(embeddings, chunk_size), query, bag, offsets, return_attention, bias,
                         left_out)

    def pool(self, chunks: Iterable[tuple[Index, torch.Tensor]], query: torch.Tensor, bag: torch.Tensor,
             offsets: torch.Tensor, return_attention: bool = False, bias: torch.Tensor | None = None,
             left_out: LeftOut | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The final update over `chunks` of a batch: pooled (B, out_dim) and optionally attention (N, H)."""
        logits = torch.empty(bag.shape[0], self.heads, device=bag.device, dtype=self.query.dtype) \
            if return_attention else None
        sizes = offsets[1:] - offsets[:-1]
        subsets = Subsets.of_bags(sizes, self.subset_size) if left_out is None else None
        mean, lse = self.accumulate(chunks, query, bag, offsets.shape[0] - 1, bias, left_out, logits_out=logits,
                                    subsets=subsets)
        if subsets is not None:  # the mean of the subsets' pooled vectors; the bag's log-sum-exp for attention
            pooled = subsets.mean_per_bag(self.finish(mean, lse, subsets.sizes))
            lse = subsets.logsumexp_per_bag(lse)
        else:
            pooled = self.finish(mean, lse, sizes if left_out is None else sizes + left_out.count)
        attention = None
        if logits is not None:  # one head: its softmax, left-out instances included
            attention = torch.exp(logits - lse[bag]) if self.heads == 1 else self.joint_attention(logits, bag, sizes)
        return pooled, attention

    def joint_attention(self, logits: torch.Tensor, bag: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """Attention weights (N, H) of instances with `logits` (N, H) in bags `bag` (N,) of `sizes` (B,):
        one softmax over every (instance, head) pair of a bag, of the logits less their head's mean in
        the bag, times H, so the weights of a bag sum to H (to 1 over each head with one head, or when
        every head is as peaked); over the instances given (`pool` with several heads: not the left-out ones).

        Each head's own softmax sums to 1 over the bag whatever it finds: a head aimed at a motif the
        bag lacks spreads its whole weight over the best of the background, which then outweighs
        the real witnesses that another head shares among themselves, and its logits' offset is
        arbitrary (the per-head softmax ignores it). Centred logits compare across heads, and the
        joint softmax gives each head a share by how far its best instances stand out of its own
        background: a head with nothing to find shares a little, so the most attended instances of a
        bag are those that some head singles out. Within a head the order is that of its logits.
        """
        counts = sizes.clamp(min=1).to(logits.dtype)[:, None]  # (B, 1)
        centre = logits.new_zeros(counts.shape[0], self.heads).index_add_(0, bag, logits) / counts  # (B, H)
        centred = logits - centre[bag]  # (N, H)
        top = centred.new_full((counts.shape[0],), -torch.inf).scatter_reduce(
            0, bag, centred.max(dim=1).values, reduce="amax", include_self=True)  # (B,)
        weights = torch.exp(centred - top[bag, None])  # (N, H), at most 1
        total = weights.new_zeros(counts.shape[0]).index_add_(0, bag, weights.sum(dim=1))  # (B,)
        return weights * (self.heads / total)[bag, None]


# Fibonacci hashing: consecutive positions of a bag land in different subsets, evenly (a bag's
# order in a file, e.g. by clone size, never makes one subset different from another).
_GOLDEN = 2654435769  # round(2**32 / golden ratio), odd


@dataclass
class Subsets:
    """Disjoint subsets of the instances of each bag, for pooling a bag larger than `subset_size` as the
    mean over subsets of about that size: `of` (N,) the subset of each instance, `bag` (S,) the bag of
    each subset, `sizes` (S,) their sizes, `n` = S."""

    of: torch.Tensor
    bag: torch.Tensor
    sizes: torch.Tensor
    n: int

    @classmethod
    def of_bags(cls, sizes: torch.Tensor, subset_size: int) -> "Subsets | None":
        """Subsets of bags of `sizes` (B,): ceil(size / subset_size) per bag; None when no bag is larger
        than `subset_size` (or it is 0: pool whole bags), so that training's samples pool as before."""
        if subset_size <= 0 or not bool((sizes > subset_size).any()):
            return None
        counts = torch.div(sizes + subset_size - 1, subset_size, rounding_mode="floor")  # (B,) subsets per bag
        first = torch.cumsum(counts, 0) - counts  # (B,) index of each bag's first subset
        bag = segment_ids(torch.cat((sizes.new_zeros(1), torch.cumsum(sizes, 0))))
        starts = torch.cumsum(sizes, 0) - sizes
        position = torch.arange(bag.shape[0], device=sizes.device) - starts[bag]  # within its bag
        hashed = (position * _GOLDEN) % (1 << 32)
        of = first[bag] + (hashed * counts[bag]) // (1 << 32)  # multiply-shift into [0, counts)
        n = int(counts.sum())
        subset_bag = torch.repeat_interleave(torch.arange(sizes.shape[0], device=sizes.device), counts)
        return cls(of, subset_bag, torch.bincount(of, minlength=n), n)

    def mean_per_bag(self, values: torch.Tensor) -> torch.Tensor:
        """(S, d) per subset -> (B, d) mean per bag."""
        n_bags = int(self.bag.max()) + 1
        total = values.new_zeros(n_bags, values.shape[1]).index_add_(0, self.bag, values)
        return total / torch.bincount(self.bag, minlength=n_bags).to(values.dtype)[:, None]

    def logsumexp_per_bag(self, lse: torch.Tensor) -> torch.Tensor:
        """(S, H) log-sum-exp per subset -> (B, H) over each bag's subsets."""
        n_bags = int(self.bag.max()) + 1
        top = lse.new_full((n_bags, lse.shape[1]), -torch.inf).scatter_reduce(
            0, self.bag[:, None].expand_as(lse), lse, reduce="amax", include_self=True)
        total = lse.new_zeros(n_bags, lse.shape[1]).index_add_(0, self.bag, torch.exp(lse - top[self.bag]))
        return top + torch.log(total)
