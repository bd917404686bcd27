"""Streaming over chunks of a batch's sequences: the online softmax and what flows through it.

Every chunked pass of the model (forward, scoring, ranking, the iterated Hopfield query) takes
chunks of `(index, embeddings)` and folds each into a `StreamingSoftmax`, so the (N, d) embedding
matrix of a huge repertoire is never needed at once and the result equals the dense softmax.
`DEFAULT_CHUNK` is the one default chunk size of every such pass (a setting: `training.embed_chunk`,
`--chunk-size` where offered); it bounds memory, never the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

DEFAULT_CHUNK = 8192  # sequences per chunk: ~10 MB of activations at the default model size

Index = torch.Tensor | slice  # positions of a chunk's sequences in the batch


def segment_ids(offsets: torch.Tensor) -> torch.Tensor:
    """Bag index of every instance, long (N,), from offsets (B+1,); an empty bag is an error."""
    sizes = offsets[1:] - offsets[:-1]
    if bool((sizes <= 0).any()):
        bad = int(torch.nonzero(sizes <= 0)[0, 0])
        raise ValueError(f"bag {bad} is empty: attention pooling needs at least one instance per bag")
    return torch.repeat_interleave(torch.arange(sizes.shape[0], device=offsets.device), sizes)


def embedding_chunks(embeddings: torch.Tensor, chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[slice, torch.Tensor]]:
    """Chunks `(slice, rows)` of embeddings already computed (N, d), in order."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, embeddings.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        yield rows, embeddings[rows]


class StreamingSoftmax:
    """Online softmax-weighted sums over instances that arrive in chunks, per bag and head.

    State: running max m (B, H), running sum of exp(logit - m) s (B, H), running weighted sum of
    values acc (B, H, dv). `add(logits (c, H), values (c, H, dv), bag (c,))` takes a chunk in any
    order; `result()` returns the weighted means (B, H, dv) and the log-sum-exp (B, H).
    The maximum only stabilises the exponentials (softmax is shift-invariant), so it is detached.
    """

    def __init__(self, n_bags: int, heads: int, value_dim: int, device: torch.device, dtype: torch.dtype) -> None:
        self.m = torch.full((n_bags, heads), float("-inf"), device=device, dtype=dtype)
        self.s = torch.zeros(n_bags, heads, device=device, dtype=dtype)
        self.acc = torch.zeros(n_bags, heads, value_dim, device=device, dtype=dtype)

    def add(self, logits: torch.Tensor, values: torch.Tensor | None, bag: torch.Tensor) -> None:
        heads = logits.shape[1]
        logits = logits.to(self.s.dtype)  # accumulate in full precision under autocast
        values = values.to(self.s.dtype) if values is not None else None
        new_m = self.m.detach().scatter_reduce(0, bag[:, None].expand(-1, heads), logits.detach(), "amax")
        scale = torch.exp(self.m - new_m).nan_to_num(0.0)  # -inf - -inf (bag not seen yet) -> 0
        w = torch.exp(logits - new_m[bag])  # (c, H)
        self.s = self.s * scale + torch.zeros_like(self.s).index_add(0, bag, w)
        if values is not None:
            self.acc = self.acc * scale[..., None] + torch.zeros_like(self.acc).index_add(0, bag, w[..., None] * values)
        self.m = new_m

    def clone(self) -> "StreamingSoftmax":
        """An independent copy of the state (to continue from without changing this one)."""
        copy = StreamingSoftmax.__new__(StreamingSoftmax)
        copy.m, copy.s, copy.acc = self.m.clone(), self.s.clone(), self.acc.clone()
        return copy

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        if bool((self.s <= 0).any()):
            bad = int(torch.nonzero((self.s <= 0).any(1))[0, 0])
            raise ValueError(f"bag {bad} is empty: attention pooling needs at least one instance per bag")
        return self.acc / self.s[..., None], self.m + torch.log(self.s)


@dataclass
class LeftOut:
    """Sequences a forward pass does not see but whose softmax it must include (top-fraction training).

    softmax: the online-softmax state of the left-out sequences' final-update logits and values,
    computed without gradients; count: long (B,), how many were left out of each bag. With it the
    pooled vector equals that of the whole sample while gradients flow through the kept sequences.
    """

    softmax: StreamingSoftmax
    count: torch.Tensor

    @classmethod
    def from_scores(cls, logits: torch.Tensor, values: torch.Tensor, bag: torch.Tensor, n_bags: int) -> "LeftOut":
        """From the left-out sequences' logits (n, H), values (n, H, dk) and bags (n,)."""
        state = StreamingSoftmax(n_bags, logits.shape[1], values.shape[2], logits.device, logits.dtype)
        if bag.numel():
            state.add(logits, values, bag)
        return cls(state, torch.bincount(bag, minlength=n_bags))
