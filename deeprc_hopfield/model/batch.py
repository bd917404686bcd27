"""`SequenceBags`: one or more repertoires (bags of sequences) concatenated flat, without padding.

Sequences are stored as in the repertoire store: all residue codes of all sequences one after the
other, with each sequence's length; bags are consecutive runs of sequences given by `offsets`
(bag b holds sequences ``offsets[b]:offsets[b+1]``). Nothing is padded, so a batch costs memory in
proportion to its residues.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SequenceBags:
    """Flat batch of bags.

    codes: uint8 (n_residues,) amino-acid codes 1..20, sequences concatenated;
    lengths: long (n,) residues per sequence (>= 1); v_index, j_index: long (n,) gene-table rows,
    -1 = unknown; counts: float (n,) clone counts, NaN = unknown; offsets: long (B+1,) bag
    boundaries in sequences (offsets[0] = 0, offsets[-1] = n, every bag non-empty).
    """

    codes: torch.Tensor
    lengths: torch.Tensor
    v_index: torch.Tensor
    j_index: torch.Tensor
    counts: torch.Tensor
    offsets: torch.Tensor

    def __post_init__(self) -> None:
        n = self.lengths.shape[0]
        for name in ("v_index", "j_index", "counts"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"SequenceBags.{name} has shape {tuple(getattr(self, name).shape)}, expected ({n},)")
        if self.offsets.ndim != 1 or self.offsets.shape[0] < 2:
            raise ValueError("SequenceBags.offsets needs at least two entries (one bag)")
        if int(self.offsets[0]) != 0 or int(self.offsets[-1]) != n:
            raise ValueError(f"SequenceBags.offsets must run from 0 to the number of sequences ({n}), "
                             f"got {int(self.offsets[0])}..{int(self.offsets[-1])}")
        sizes = self.offsets[1:] - self.offsets[:-1]
        if bool((sizes <= 0).any()):
            bad = int(torch.nonzero(sizes <= 0)[0, 0])
            raise ValueError(f"bag {bad} is empty (or offsets decrease there): every bag needs at least one sequence")
        if n and bool((self.lengths <= 0).any()):
            raise ValueError("every sequence needs at least one residue")
        if int(self.lengths.sum()) != self.codes.shape[0]:
            raise ValueError(f"SequenceBags: lengths sum to {int(self.lengths.sum())} residues "
                             f"but codes holds {self.codes.shape[0]}")

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, codes: np.ndarray | torch.Tensor, lengths: np.ndarray | torch.Tensor,
                    offsets: np.ndarray | torch.Tensor | None = None,
                    v_index: np.ndarray | torch.Tensor | None = None,
                    j_index: np.ndarray | torch.Tensor | None = None,
                    counts: np.ndarray | torch.Tensor | None = None) -> "SequenceBags":
        """Build from flat arrays (numpy or torch).

        Parameters
        ----------
        codes, lengths
            Residue codes 1..20 (n_residues,) and sequence lengths (n,).
        offsets
            Bag boundaries (B+1,); None means one bag holding every sequence.
        v_index, j_index, counts
            Per-sequence genes (-1 = unknown) and clone counts (NaN = unknown); None = all unknown.
        """
        lengths_t = torch.as_tensor(np.asarray(lengths) if not torch.is_tensor(lengths) else lengths).long()
        n = lengths_t.shape[0]
        if offsets is None:
            offsets = [0, n]
        codes_t = torch.as_tensor(np.asarray(codes) if not torch.is_tensor(codes) else codes).to(torch.uint8)

        def _long(x, fill):
            if x is None:
                return torch.full((n,), fill, dtype=torch.long)
            return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).long()

        counts_t = (torch.full((n,), float("nan")) if counts is None
                    else torch.as_tensor(np.asarray(counts) if not torch.is_tensor(counts) else counts).float())
        return cls(codes=codes_t, lengths=lengths_t, v_index=_long(v_index, -1), j_index=_long(j_index, -1),
                   counts=counts_t, offsets=torch.as_tensor(np.asarray(offsets) if not torch.is_tensor(offsets)
                                                            else offsets).long())

    @classmethod
    def from_repertoires(cls, repertoires: Sequence) -> "SequenceBags":
        """Concatenate store `Repertoire` objects (one bag each, in order); an empty one is an error."""
        if len(repertoires) == 0:
            raise ValueError("SequenceBags.from_repertoires needs at least one repertoire")
        for i, rep in enumerate(repertoires):
            if len(rep.lengths) == 0:
                name = getattr(rep, "subject_id", None)
                raise ValueError(f"bag {i}{f' ({name})' if name else ''} is empty: no sequences")
        sizes = np.array([len(r.lengths) for r in repertoires], dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(sizes)))
        return cls.from_arrays(
            codes=np.concatenate([r.codes for r in repertoires]),
            lengths=np.concatenate([r.lengths for r in repertoires]).astype(np.int64),
            offsets=offsets,
            v_index=np.concatenate([r.v_index for r in repertoires]).astype(np.int64),
            j_index=np.concatenate([r.j_index for r in repertoires]).astype(np.int64),
            counts=np.concatenate([r.counts for r in repertoires]).astype(np.float32),
        )

    # --- properties and transforms ----------------------------------------------------------------
    @property
    def n_bags(self) -> int:
        return self.offsets.shape[0] - 1

    @property
    def n_sequences(self) -> int:
        return self.lengths.shape[0]

    def __len__(self) -> int:
        return self.n_sequences

    @property
    def device(self) -> torch.device:
        return self.lengths.device

    def bag_sizes(self) -> torch.Tensor:
        """Sequences per bag, long (B,)."""
        return self.offsets[1:] - self.offsets[:-1]

    def bag_index(self) -> torch.Tensor:
        """The bag of every sequence, long (n,)."""
        return torch.repeat_interleave(torch.arange(self.n_bags, device=self.device), self.bag_sizes(),
                                       output_size=self.n_sequences)

    def starts(self) -> torch.Tensor:
        """First residue of every sequence in `codes`, long (n,)."""
        return torch.cumsum(self.lengths, 0) - self.lengths

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "SequenceBags":
        """A copy on `device` (codes stay uint8, so moving a batch moves few bytes)."""
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return SequenceBags(move(self.codes), move(self.lengths), move(self.v_index), move(self.j_index),
                            move(self.counts), move(self.offsets))

    def select(self, indices: torch.Tensor) -> "SequenceBags":
        """Keep the sequences at global positions `indices` (sorted within each bag, bags in order).

        Offsets are rebuilt from the bag of each kept sequence; a bag left with no sequence is an
        error. Vectorised: the kept residues are gathered with one index computation.
        """
        indices = torch.as_tensor(indices, device=self.device).long()
        if indices.ndim != 1:
            raise ValueError("select() needs a 1-D tensor of sequence indices")
        n = self.n_sequences
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
            raise ValueError(f"select(): indices must lie in [0, {n})")
        if indices.numel() > 1 and bool((indices[1:] <= indices[:-1]).any()):
            raise ValueError("select(): indices must be strictly increasing (sorted within each bag, bags in order)")
        bag = torch.searchsorted(self.offsets, indices, right=True) - 1
        counts_per_bag = torch.bincount(bag, minlength=self.n_bags)
        if bool((counts_per_bag == 0).any()):
            empty = int(torch.nonzero(counts_per_bag == 0)[0, 0])
            raise ValueError(f"select() would leave bag {empty} empty")
        offsets = torch.zeros(self.n_bags + 1, dtype=torch.long, device=self.device)
        offsets[1:] = torch.cumsum(counts_per_bag, 0)
        lengths = self.lengths[indices]
        new_starts = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        # residue r of the output belongs to kept sequence s(r); its source is old_start[s] + (r - new_start[s])
        seq_of_residue = torch.repeat_interleave(torch.arange(indices.numel(), device=self.device), lengths,
                                                 output_size=total)
        shift = self.starts()[indices] - new_starts
        source = torch.arange(total, device=self.device) + shift[seq_of_residue]
        return SequenceBags(codes=self.codes[source], lengths=lengths, v_index=self.v_index[indices],
                            j_index=self.j_index[indices], counts=self.counts[indices], offsets=offsets)
