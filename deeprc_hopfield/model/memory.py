"""`CloneMemory`: stored public clones that raise the attention on every exact copy of them.

Why: when patients share whole receptor sequences (public clones, as for CMV), a CNN filter sees
only k residues of a clone and also fires on unrelated sequences that hold them by chance, while
the clone itself is the exact, specific evidence: the public-clone test (Emerson et al. 2017)
finds it by counting. The memory holds the CDR3s that the fitting repertoires single out (see
`deeprc_hopfield.train`), and every sequence equal to one of them gets a learned bonus, per head,
added to its attention logit. In Hopfield terms it is a second set of stored patterns retrieved at
infinite inverse temperature (an exact match or nothing). With the energy feature the output
network then sees about log(1 + clones carried), and the carried clones lead the attention ranking.

Sequences are matched by a 62-bit key of their residues: two polynomial hashes modulo primes
below 2**31, computed without overflow in int64 from the flat residue codes, the same on CPU and GPU.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MODULI = (2_147_483_647, 2_147_483_629)  # primes below 2**31: a product of two residues fits int64
MULTIPLIERS = (1_000_003, 999_983)
SIGNATURE_RESIDUES = 5  # residues from each end in a sequence's signature: 6 + 2 * 5 * 5 = 56 bits


def _powers(multiplier: int, modulus: int, n: int, device: torch.device) -> torch.Tensor:
    """multiplier**j mod modulus for j < n, long (n,)."""
    out, value = [], 1
    for _ in range(n):
        out.append(value)
        value = value * multiplier % modulus
    return torch.tensor(out, dtype=torch.long, device=device)


def junction_keys(codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """One int64 key per sequence from flat residue codes (n_residues,) and lengths (n,): equal
    sequences get equal keys; distinct ones collide with probability about 2**-62."""
    lengths = lengths.long()
    n = lengths.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=codes.device)
    sequence = torch.repeat_interleave(torch.arange(n, device=codes.device), lengths)  # (R,)
    position = torch.arange(sequence.shape[0], device=codes.device) - (torch.cumsum(lengths, 0) - lengths)[sequence]
    residues = codes.long()
    key = torch.zeros(n, dtype=torch.long, device=codes.device)
    for multiplier, modulus in zip(MULTIPLIERS, MODULI):
        power = _powers(multiplier, modulus, int(lengths.max()), codes.device)
        terms = residues * power[position] % modulus  # (R,) each < 2**31
        h = torch.zeros(n, dtype=torch.long, device=codes.device).index_add_(0, sequence, terms)  # < 2**31 * length
        key = key * (1 << 31) + (h + lengths) % modulus
    return key


def _sequences(codes: torch.Tensor, lengths: torch.Tensor, which: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat codes and lengths of the sequences at `which` (sorted)."""
    lengths = lengths.long()
    starts = torch.cumsum(lengths, 0) - lengths
    picked = lengths[which]
    within = torch.arange(int(picked.sum()), device=codes.device) - torch.repeat_interleave(
        torch.cumsum(picked, 0) - picked, picked)
    return codes[torch.repeat_interleave(starts[which], picked) + within], picked


def signatures(codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A cheap exact summary per sequence, int64 (n,): its length and its first and last
    `SIGNATURE_RESIDUES` residues packed in 5 bits each (equal sequences share it; most others do not)."""
    lengths = lengths.long()
    n = lengths.shape[0]
    starts = torch.cumsum(lengths, 0) - lengths
    last = (lengths - 1).clamp(min=0)
    out = lengths.clone()
    for j in range(SIGNATURE_RESIDUES):
        offset = torch.minimum(torch.full_like(lengths, j), last)
        out = (out << 5) + codes[starts + offset].long()
        out = (out << 5) + codes[starts + last - offset].long()
    return out if n else out.new_zeros(0)


class CloneMemory(nn.Module):
    """Stored clones (keys and signatures), a learned attention bonus per head for sequences that
    equal one, and a learned weight of the evidence log1p(distinct stored clones carried) in the
    first task's logit.

    `lookup(codes (n_residues,), lengths (N,))` gives each sequence's stored clone, long (N,), -1
    for none; `bias(clone)` the additive attention logits (N, heads); `carried(clone, offsets)` the
    distinct clones per bag (B,); `evidence_logit(carried)` the logit term (B,).
    """

    def __init__(self, size: int, heads: int) -> None:
        super().__init__()
        self.register_buffer("keys", torch.zeros(size, dtype=torch.long))  # sorted
        self.register_buffer("signatures", torch.zeros(size, dtype=torch.long))  # sorted
        self.bonus = nn.Parameter(torch.zeros(heads))
        self.evidence = nn.Parameter(torch.zeros(()))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    def store(self, codes: torch.Tensor, lengths: torch.Tensor) -> None:
        """Store the clones given as flat codes and lengths (as many distinct ones as the memory holds)."""
        keys = torch.unique(junction_keys(codes, lengths))
        if keys.shape != self.keys.shape:
            raise ValueError(f"the memory holds {self.size} clones, got {keys.shape[0]} distinct ones")
        self.keys.copy_(keys)
        self.signatures.copy_(torch.sort(signatures(codes, lengths)).values)

    def lookup(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Index of each sequence's clone in `keys`, long (N,), -1 where it is none of them.

        Only sequences whose signature is stored are hashed, so a repertoire costs a few gathers per
        sequence instead of a pass over every residue.
        """
        n = lengths.shape[0]
        clone = torch.full((n,), -1, dtype=torch.long, device=lengths.device)
        if self.size == 0 or n == 0:
            return clone
        sig = signatures(codes, lengths)
        position = torch.searchsorted(self.signatures, sig).clamp(max=self.size - 1)
        candidate = torch.nonzero(self.signatures[position] == sig).ravel()
        if candidate.numel() == 0:
            return clone
        key = junction_keys(*_sequences(codes, lengths, candidate))
        found = torch.searchsorted(self.keys, key).clamp(max=self.size - 1)
        match = self.keys[found] == key
        clone[candidate[match]] = found[match]
        return clone

    def bias(self, clone: torch.Tensor) -> torch.Tensor:
        """Additive attention logits (N, heads): the bonus where a sequence is stored, 0 elsewhere."""
        return (clone >= 0).to(self.bonus.dtype)[:, None] * self.bonus[None, :]

    def carried(self, clone: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Distinct stored clones in each bag, float (B,) (a clone seen twice in a bag counts once)."""
        n_bags = offsets.shape[0] - 1
        sequence = torch.nonzero(clone >= 0).ravel()
        if sequence.numel() == 0:
            return torch.zeros(n_bags, device=clone.device)
        bag = torch.searchsorted(offsets, sequence, right=True) - 1
        pairs = torch.unique(bag * self.size + clone[sequence])
        return torch.bincount(pairs // self.size, minlength=n_bags).float()

    def evidence_logit(self, carried: torch.Tensor) -> torch.Tensor:
        """The memory's additive logit of the positive class, (B,)."""
        return self.evidence * torch.log1p(carried.to(self.evidence.dtype))


def repertoire_keys(repertoire, chunk: int = 1 << 16) -> np.ndarray:
    """`junction_keys` of every sequence of a store `Repertoire`, int64 (n,), computed `chunk` sequences at a time."""
    lengths = np.asarray(repertoire.lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    out = []
    for start in range(0, len(lengths), chunk):
        stop = min(start + chunk, len(lengths))
        first, last = int(ends[start] - lengths[start]), int(ends[stop - 1])
        out.append(junction_keys(torch.from_numpy(np.asarray(repertoire.codes[first:last])),
                                 torch.from_numpy(lengths[start:stop])).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
