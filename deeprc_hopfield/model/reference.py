"""`ReferenceMemory`: known receptors (a reference database such as VDJdb) as prior knowledge.

Why: for many conditions part of the disease-specific receptors is listed in public databases. A
repertoire's matches to such a list separate patients where each signal receptor is carried by too
few training repertoires for any test to find it (AIRR-ML 2025). The memory holds the receptors of
the reference that training was given (`deeprc_hopfield.reference`), and, like the clone memory
(`memory.CloneMemory`, whose learned part it shares), gives every sequence that matches one a learned
attention bonus per head and puts a learned weight of log1p(distinct reference receptors matched in
the bag) in the first task's logit. Whether the reference is used at all is decided by training on
the fitting repertoires (`deeprc_hopfield.training.reference_fit`).

A sequence matches a receptor by the rule of :class:`deeprc_hopfield.neighbours.ReceptorIndex`: the
same CDR3 core, or one substitution apart at `radius` 1, and the same V family where both are known.
The receptors are kept in the model's state (padded residue codes, lengths, V family codes), so a
saved model matches what it was trained with, without the file.

The same class holds the clone memory when training chose a match radius of 1 for public clones
(`deeprc_hopfield.clone_rules`; :func:`clone_memory` picks the class by radius): then the V codes
are at the clone rule's level (family, gene or none) rather than always the family.
"""

from __future__ import annotations

import numpy as np
import torch

from deeprc_hopfield.model.batch import SequenceBags
from deeprc_hopfield.model.memory import CloneMemory, ReceptorMemory, picked_sequences
from deeprc_hopfield.neighbours import ReceptorIndex
from deeprc_hopfield.public_clones import gene_codes


class ReferenceMemory(ReceptorMemory):
    """`size` known receptors of junctions up to `width` residues, matched at `radius` 0 or 1.

    `lookup(codes (n_residues,), lengths (N,), v_index (N,))` gives each sequence's matching receptor,
    long (N,), -1 for none (`v_index`: rows of the model's V gene table, `n_v_genes` rows); the closest
    one takes the attention bonus. A bag carries every receptor that one of its sequences matches
    (`carried`), not only the closest ones, so the count is the public-clone test's (a repertoire holding
    the centre of a one-substitution family carries each member) and the reference fit's. Matching runs
    in numpy on the CPU (the sequences come from there) and the result goes to the sequences' device.
    """

    def __init__(self, size: int, width: int, heads: int, n_v_genes: int = 0) -> None:
        super().__init__(heads)
        self.register_buffer("residues", torch.zeros(size, width, dtype=torch.uint8))  # junction codes, 0-padded
        self.register_buffer("lengths", torch.zeros(size, dtype=torch.long))
        self.register_buffer("v_family", torch.full((size,), -1, dtype=torch.long))  # family code, -1 unknown
        self.register_buffer("v_codes", torch.full((n_v_genes + 1,), -1, dtype=torch.long))  # last: unknown
        self.register_buffer("radius", torch.tensor(0, dtype=torch.long))
        self._index: ReceptorIndex | None = None

    @property
    def size(self) -> int:
        return self.residues.shape[0]

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 (nn.Module's signature)
        super()._load_from_state_dict(*args, **kwargs)
        self._index = None

    def store(self, codes: np.ndarray, lengths: np.ndarray, v_family: np.ndarray, v_genes: list[str],
              radius: int, v_level: str = "family") -> None:
        """Store receptors given as flat residue codes, lengths and V codes at `v_level` (-1 = unknown;
        family codes for a reference), with the model's V gene table `v_genes` and the match radius."""
        if len(v_genes) + 1 != self.v_codes.shape[0]:
            raise ValueError(f"the memory knows {self.v_codes.shape[0] - 1} V genes, got a table of {len(v_genes)}")
        lengths = np.asarray(lengths, dtype=np.int64)
        if len(lengths) != self.size or (len(lengths) and lengths.max() > self.residues.shape[1]):
            raise ValueError(f"the memory holds {self.size} receptors of up to {self.residues.shape[1]} residues")
        padded = np.zeros(tuple(self.residues.shape), dtype=np.uint8)
        padded[np.arange(self.residues.shape[1])[None, :] < lengths[:, None]] = codes
        with torch.no_grad():
            self.residues.copy_(torch.from_numpy(padded))
            self.lengths.copy_(torch.from_numpy(lengths))
            self.v_family.copy_(torch.from_numpy(np.asarray(v_family, dtype=np.int64)))
            self.v_codes.copy_(torch.from_numpy(gene_codes(v_genes, v_level)))
            self.radius.fill_(int(radius))
        self._index = None

    def index(self) -> ReceptorIndex:
        """The receptors' match index (built once from the state)."""
        if self._index is None:
            residues, lengths = self.residues.cpu().numpy(), self.lengths.cpu().numpy()
            flat = residues[np.arange(residues.shape[1])[None, :] < lengths[:, None]]
            self._index = ReceptorIndex(flat, lengths, self.v_family.cpu().numpy(), int(self.radius))
        return self._index

    def stored_index(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor) -> torch.Tensor:
        """Receptors keep the order `store` was given."""
        if lengths.shape[0] != self.size:
            raise ValueError(f"the memory holds {self.size} receptors, got {lengths.shape[0]}")
        return torch.arange(self.size, device=lengths.device)

    def _v(self, v_index: torch.Tensor | None) -> np.ndarray | None:
        """The V code of each sequence's V gene row (-1 = unknown), on the CPU; None without V."""
        if v_index is None:
            return None
        rows = v_index.long().cpu()
        return torch.where(rows >= 0, self.v_codes.cpu()[rows.clamp(min=0)], -1).numpy()

    def lookup(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor | None = None) -> torch.Tensor:
        """Index of each sequence's matching receptor (the closest; the first of equally close ones),
        long (N,), -1 where none matches."""
        n = lengths.shape[0]
        if self.size == 0 or n == 0:
            return torch.full((n,), -1, dtype=torch.long, device=lengths.device)
        ref, _ = self.index().first_match(codes.cpu().numpy(), lengths.cpu().numpy(), self._v(v_index))
        return torch.from_numpy(ref).to(lengths.device)

    def carried(self, clone: torch.Tensor, bags: SequenceBags) -> torch.Tensor:
        """Distinct receptors matched by some sequence of each bag, float (B,): every receptor within the
        radius of a sequence, found again for the few sequences whose `lookup` matched one."""
        hit = torch.nonzero(clone >= 0).ravel().cpu()
        if hit.numel() == 0:
            return self._count(hit, hit, bags.offsets)
        codes, lengths = picked_sequences(bags.codes.cpu(), bags.lengths.cpu(), hit)
        v = self._v(bags.v_index[hit.to(bags.v_index.device)])
        query, ref, _ = self.index().pairs(codes.numpy(), lengths.numpy(), v)
        return self._count(hit[torch.from_numpy(query)], torch.from_numpy(ref), bags.offsets)


def clone_memory(size: int, heads: int, n_v_genes: int, radius: int = 0, width: int = 0) -> ReceptorMemory:
    """The clone memory of `size` public clones: matched by key (:class:`CloneMemory`) at radius 0, by
    `ReceptorIndex` (this class, junctions up to `width` residues) within one substitution at radius 1."""
    if radius == 0:
        return CloneMemory(size, heads, n_v_genes)
    return ReferenceMemory(size, width, heads, n_v_genes)


def store_clones(memory: ReceptorMemory, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor,
                 v_genes: list[str], v_level: str) -> None:
    """Store clones (flat codes, lengths, V indices into the model's V gene table `v_genes`, V keyed at
    `v_level`) in a memory of :func:`clone_memory`."""
    if isinstance(memory, CloneMemory):
        memory.store(codes, lengths.long(), v_index.long(), v_genes, v_level)
        return
    v = gene_codes(v_genes, v_level)[np.asarray(v_index, dtype=np.int64)]
    memory.store(np.asarray(codes), np.asarray(lengths), v, v_genes, radius=1, v_level=v_level)
