"""`CloneMemory`: stored public clones that raise the attention on every exact copy of them.

Why: when patients share whole receptor sequences (public clones, as for CMV), a CNN filter sees
only k residues of a clone and also fires on unrelated sequences that hold them by chance, while
the clone itself is the exact, specific evidence: the public-clone test (Emerson et al. 2017)
finds it by counting. The memory holds the CDR3s that the training repertoires single out (see
`deeprc_hopfield.training`). Every sequence equal to one of them gets a learned bonus, per head,
added to its attention logit: in Hopfield terms a second set of stored patterns retrieved at
infinite inverse temperature (an exact match or nothing), so the carried clones lead the attention
ranking. And the first (binary) task's logit gets a learned weight times log1p(distinct stored
clones in the bag), a count that does not depend on the bag's size.

Sequences are matched by their clone key (`deeprc_hopfield.public_clones.clone_keys`, the key of
the public-clone test: CDR3 core and V family by default, or the V gene or no V as training chose,
`deeprc_hopfield.clone_rules`; a missing V call a wildcard), computed on the model's device. The memory keeps what its keys were made with (`trim`, the V code of each of the model's V
genes), so a model saved before the CDR3 core and the V family (whose state has neither) loads with
its own rule, whole junctions and V genes, and predicts as it did.
"""

from __future__ import annotations

import torch
from torch import nn

from deeprc_hopfield.cdr3 import ANCHOR
from deeprc_hopfield.model.batch import SequenceBags
from deeprc_hopfield.public_clones import V_MODE, clone_keys, gene_codes

SIGNATURE_RESIDUES = 5  # residues from each end in a sequence's signature: 6 + 2 * 5 * 5 = 56 bits


def _member(values: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Index of each value in the sorted `table`, -1 where it is absent."""
    position = torch.searchsorted(table, values).clamp(max=table.shape[0] - 1)
    return torch.where(table[position] == values, position, -1)


def picked_sequences(codes: torch.Tensor, lengths: torch.Tensor, which: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat codes and lengths of the sequences at `which` (sorted)."""
    lengths = lengths.long()
    starts = torch.cumsum(lengths, 0) - lengths
    picked = lengths[which]
    within = torch.arange(int(picked.sum()), device=codes.device) - torch.repeat_interleave(
        torch.cumsum(picked, 0) - picked, picked)
    return codes[torch.repeat_interleave(starts[which], picked) + within], picked


def signatures(codes: torch.Tensor, lengths: torch.Tensor, trim: int = ANCHOR) -> torch.Tensor:
    """A cheap exact summary per sequence's core (`trim` residues left out at each end, as in
    `clone_keys`), int64 (n,): its length and its first and last `SIGNATURE_RESIDUES` residues packed
    in 5 bits each (equal cores share it; most others do not)."""
    lengths = lengths.long()
    n = lengths.shape[0]
    offset = torch.minimum(torch.full_like(lengths, trim), ((lengths - 1) // 2).clamp(min=0))
    starts = torch.cumsum(lengths, 0) - lengths + offset
    lengths = lengths - 2 * offset
    last = (lengths - 1).clamp(min=0)
    out = lengths.clone()
    for j in range(SIGNATURE_RESIDUES):
        offset = torch.minimum(torch.full_like(lengths, j), last)
        out = (out << 5) + codes[starts + offset].long()
        out = (out << 5) + codes[starts + last - offset].long()
    return out if n else out.new_zeros(0)


class ReceptorMemory(nn.Module):
    """Stored receptors that raise the attention on the sequences matching one, and count as evidence.

    What a memory stores and how a sequence matches is its subclass's (`lookup`: each sequence's stored
    receptor, long (N,), -1 for none); the learned part is shared: a bonus per head added to the
    attention logits of matching sequences (`bias`), and a weight of log1p(distinct stored receptors in
    the bag) in the first task's logit (`carried`, `evidence_logit`), a count that does not depend on
    the bag's size. A bag carries a stored receptor when one of its sequences matches it (a subclass
    where a sequence can match several counts them all, as the public-clone test does).
    """

    def __init__(self, heads: int) -> None:
        super().__init__()
        self.bonus = nn.Parameter(torch.zeros(heads))
        self.evidence = nn.Parameter(torch.zeros(()))

    @property
    def size(self) -> int:
        raise NotImplementedError

    def stored_index(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor) -> torch.Tensor:
        """The index (as `lookup` gives it) of each receptor given to `store`, in the order given, long (n,)."""
        raise NotImplementedError

    def bias(self, clone: torch.Tensor) -> torch.Tensor:
        """Additive attention logits (N, heads): the bonus where a sequence is stored, 0 elsewhere."""
        return (clone >= 0).to(self.bonus.dtype)[:, None] * self.bonus[None, :]

    def carried(self, clone: torch.Tensor, bags: SequenceBags) -> torch.Tensor:
        """Distinct stored receptors carried by each bag, float (B,) (one seen twice in a bag counts once),
        from each sequence's match `clone` (N,) as `lookup` gave it."""
        return self._count(torch.nonzero(clone >= 0).ravel(), clone[clone >= 0], bags.offsets)

    def _count(self, sequence: torch.Tensor, receptor: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Distinct receptors per bag, float (B,), of matching (sequence, receptor) pairs."""
        n_bags = offsets.shape[0] - 1
        if sequence.numel() == 0:
            return torch.zeros(n_bags, device=offsets.device)
        bag = torch.searchsorted(offsets, sequence.to(offsets.device), right=True) - 1
        pairs = torch.unique(bag * self.size + receptor.to(offsets.device))
        return torch.bincount(pairs // self.size, minlength=n_bags).float()

    def evidence_logit(self, carried: torch.Tensor) -> torch.Tensor:
        """The memory's additive logit of the positive class, (B,)."""
        return self.evidence * torch.log1p(carried.to(self.evidence.dtype))


class CloneMemory(ReceptorMemory):
    """Stored clones (CDR3 core + V family), a learned attention bonus per head for sequences that equal
    one, and a learned weight of the evidence log1p(distinct stored clones carried) in the first task's logit.
    Stored keys are distinct, so a sequence's attention bonus is that of one clone (with a missing V, the
    first of those of its core); what it carries counts every clone it equals, as the public-clone test's
    incidence does (a CDR3 without a V call carries each clone of its core).

    A sequence equals a stored clone when its CDR3 core is the same and, where both V calls are known,
    its V family too (a missing V call, on either side, is a wildcard: the match is on the core alone).
    `lookup(codes (n_residues,), lengths (N,), v_index (N,))` gives each sequence's stored clone, long
    (N,), -1 for none (`v_index`: rows of the model's V gene table, `n_v_genes` rows); `bias(clone)` the
    additive attention logits (N, heads); `carried(clone, bags)` the distinct clones per bag (B,);
    `evidence_logit(carried)` the logit term (B,).
    """

    def __init__(self, size: int, heads: int, n_v_genes: int = 0) -> None:
        super().__init__(heads)
        self.register_buffer("keys", torch.zeros(size, dtype=torch.long))  # (CDR3, V) keys, sorted
        self.register_buffer("stored_v", torch.zeros(size, dtype=torch.long))  # V index of keys[i], -1 unknown
        self.register_buffer("cdr3_keys", torch.zeros(size, dtype=torch.long))  # CDR3-only keys, sorted
        self.register_buffer("cdr3_clone", torch.zeros(size, dtype=torch.long))  # index in keys of cdr3_keys[i]
        self.register_buffer("signatures", torch.zeros(size, dtype=torch.long))  # sorted
        # how the keys are made: residues left out at each end, and the key code of each V gene row
        self.register_buffer("trim", torch.tensor(ANCHOR, dtype=torch.long))
        self.register_buffer("v_codes", torch.full((n_v_genes + 1,), -1, dtype=torch.long))  # last: unknown

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """A memory saved before the keys' rule was kept (no `trim`, no `v_codes`) keyed whole sequences
        and V gene rows: load it with that rule, so the model predicts as it did."""
        if prefix + "keys" in state_dict and prefix + "trim" not in state_dict:
            state_dict[prefix + "trim"] = torch.tensor(0, dtype=torch.long)
            rows = self.v_codes.shape[0] - 1
            state_dict[prefix + "v_codes"] = torch.cat([torch.arange(rows), torch.tensor([-1])]).long()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _codes(self, v_index: torch.Tensor) -> torch.Tensor:
        """The key code of each V gene row (-1 = unknown), long (N,)."""
        v_index = v_index.long()
        return torch.where(v_index >= 0, self.v_codes[v_index.clamp(min=0)], -1)

    def store(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor, v_genes: list[str],
              v_level: str = V_MODE) -> None:
        """Store the clones given as flat codes, lengths and V indices into the model's V gene table
        `v_genes` (as many distinct ones as the memory holds), keyed by the current rule with V at
        `v_level` ('family', 'gene' or 'none', `public_clones.gene_codes`)."""
        if len(v_genes) + 1 != self.v_codes.shape[0]:
            raise ValueError(f"the memory knows {self.v_codes.shape[0] - 1} V genes, got a table of {len(v_genes)}")
        self.trim.fill_(ANCHOR)
        self.v_codes.copy_(torch.from_numpy(gene_codes(v_genes, v_level)))
        trim = int(self.trim)
        keys = clone_keys(codes, lengths, self._codes(v_index), trim=trim)
        if torch.unique(keys).shape != self.keys.shape:
            raise ValueError(f"the memory holds {self.size} clones, got {torch.unique(keys).shape[0]} distinct ones")
        order = torch.argsort(keys)
        self.keys.copy_(keys[order])
        self.stored_v.copy_(v_index.long()[order])
        cdr3 = clone_keys(codes, lengths, trim=trim)[order]
        by_cdr3 = torch.argsort(cdr3, stable=True)
        self.cdr3_keys.copy_(cdr3[by_cdr3])
        self.cdr3_clone.copy_(by_cdr3)
        self.signatures.copy_(torch.sort(signatures(codes, lengths, trim)).values)

    def carried(self, clone: torch.Tensor, bags: SequenceBags) -> torch.Tensor:
        """Distinct stored clones carried by each bag, float (B,): every clone that a sequence equals (`lookup`
        gave `clone`, one of them), so a missing V call on either side counts each clone of the core."""
        sequence = torch.nonzero(clone >= 0).ravel()
        first, n = self._same_core(clone[sequence])
        sequence = torch.repeat_interleave(sequence, n)
        within = torch.arange(int(n.sum()), device=n.device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
        other = self.cdr3_clone[torch.repeat_interleave(first, n) + within]
        sequence_v, stored_v = self._codes(bags.v_index[sequence]), self._codes(self.stored_v[other])
        equal = (sequence_v < 0) | (stored_v < 0) | (sequence_v == stored_v)
        return self._count(sequence[equal], other[equal], bags.offsets)

    def _same_core(self, clone: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For each stored clone index, where the clones of its CDR3 core start in `cdr3_clone` and how many."""
        rank = torch.empty_like(self.cdr3_clone)
        rank[self.cdr3_clone] = torch.arange(self.size, device=rank.device)
        core = self.cdr3_keys[rank[clone]]
        start = torch.searchsorted(self.cdr3_keys, core)
        return start, torch.searchsorted(self.cdr3_keys, core, right=True) - start

    def stored_index(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor) -> torch.Tensor:
        """The position in `keys` of each clone given to `store` (keys are sorted there; each its own)."""
        index = self.lookup(codes, lengths, v_index)
        if bool((index < 0).any()) or torch.unique(index).numel() != index.numel():
            raise ValueError("these are not the clones the memory stores")
        return index

    def lookup(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor | None = None) -> torch.Tensor:
        """Index of each sequence's clone in `keys`, long (N,), -1 where it is none of them.

        Only sequences whose signature is stored are hashed, so a repertoire costs a few gathers per
        sequence instead of a pass over every residue.
        """
        n = lengths.shape[0]
        clone = torch.full((n,), -1, dtype=torch.long, device=lengths.device)
        if self.size == 0 or n == 0:
            return clone
        trim = int(self.trim)
        sig = signatures(codes, lengths, trim)
        candidate = torch.nonzero(_member(sig, self.signatures) >= 0).ravel()
        if candidate.numel() == 0:
            return clone
        picked_codes, picked_lengths = picked_sequences(codes, lengths, candidate)
        v = self._codes(v_index[candidate]) if v_index is not None else torch.full_like(candidate, -1)
        exact = _member(clone_keys(picked_codes, picked_lengths, v, trim=trim), self.keys)
        by_cdr3 = _member(clone_keys(picked_codes, picked_lengths, trim=trim), self.cdr3_keys)
        by_cdr3 = torch.where(by_cdr3 >= 0, self.cdr3_clone[by_cdr3.clamp(min=0)], -1)
        unknown_v = (v < 0) | (self.stored_v[by_cdr3.clamp(min=0)] < 0)
        clone[candidate] = torch.where(exact >= 0, exact, torch.where(unknown_v, by_cdr3, -1))
        return clone
