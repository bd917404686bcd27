"""`SequenceEmbedder`: a 1D CNN that turns each CDR3 (plus optional genes and count) into one vector.

Sequences arrive flat (all residue codes concatenated, with lengths). They are sorted by length and
embedded `chunk_size` at a time, each chunk padded only to its own longest sequence, so no global
maximum length exists and short sequences cost little. Padding never reaches a result: the input
channels are zero outside a sequence, hidden layers are re-zeroed there, and the max over positions
runs over valid positions only, so a sequence's embedding does not depend on its chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from deeprc_hopfield.encoding import AMINO_ACIDS

N_AMINO_ACIDS = len(AMINO_ACIDS)
DEFAULT_CHUNK = 4096


def position_features(lengths: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """Three position channels per residue, as DeepRC: (c, width, 3), zero beyond each sequence.

    With t = position / (length - 1) in [0, 1] (t = 0.5 for a single residue): channel 0 falls from
    1 at the start to 0 at the middle, channel 2 rises from 0 at the middle to 1 at the end, and
    channel 1 = 1 - channel 0 - channel 2 peaks at the middle.
    """
    pos = torch.arange(width, device=lengths.device, dtype=dtype)[None, :]  # (1, w)
    span = (lengths.to(dtype) - 1)[:, None]  # (c, 1)
    t = torch.where(span > 0, pos / span.clamp(min=1), torch.full_like(pos, 0.5))  # (c, w)
    start = (1 - 2 * t).clamp(min=0)
    end = (2 * t - 1).clamp(min=0)
    feats = torch.stack((start, 1 - start - end, end), dim=-1)  # (c, w, 3)
    valid = pos < lengths[:, None]
    return feats * valid[..., None]


def _lecun_init(module: nn.Module) -> None:
    """LeCun-normal weights and zero biases (the initialisation SELU networks expect)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            fan_in = m.weight[0].numel()
            nn.init.normal_(m.weight, std=fan_in ** -0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SequenceEmbedder(nn.Module):
    """CNN embedding of variable-length sequences.

    Input: flat `codes` uint8 (n_residues,) with values 1..20, `lengths` long (n,), optional
    `v_index`/`j_index` long (n,) (-1 = unknown) and `counts` float (n,) (NaN = unknown).
    Output: (n, out_dim) float in the input order, out_dim = n_filters [+ gene_embedding_dim for
    V, + for J] [+ 2 with counts: log1p(count) (0 when unknown) and an 'unknown count' flag].
    """

    def __init__(self, kernel_size: int = 9, n_filters: int = 32, n_conv_layers: int = 1,
                 position_features: int = 3, n_v_genes: int = 0, n_j_genes: int = 0,
                 gene_embedding_dim: int = 0, use_counts: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.n_position = position_features
        in_channels = N_AMINO_ACIDS + position_features
        self.convs = nn.ModuleList(
            nn.Conv1d(in_channels if i == 0 else n_filters, n_filters, kernel_size, padding="same")
            for i in range(n_conv_layers))
        _lecun_init(self.convs)
        self.v_embedding = (nn.Embedding(n_v_genes + 1, gene_embedding_dim)
                            if gene_embedding_dim > 0 and n_v_genes > 0 else None)
        self.j_embedding = (nn.Embedding(n_j_genes + 1, gene_embedding_dim)
                            if gene_embedding_dim > 0 and n_j_genes > 0 else None)
        self.n_v_genes, self.n_j_genes = n_v_genes, n_j_genes
        self.use_counts = use_counts
        self.out_dim = (n_filters + sum(e.embedding_dim for e in (self.v_embedding, self.j_embedding) if e is not None)
                        + (2 if use_counts else 0))

    @classmethod
    def from_config(cls, config) -> "SequenceEmbedder":
        return cls(config.kernel_size, config.n_filters, config.n_conv_layers, config.position_features,
                   config.n_v_genes, config.n_j_genes, config.gene_embedding_dim, config.use_counts)

    # --- the CNN on one padded chunk ---------------------------------------------------------------
    def embed_padded(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """CNN + masked max of one chunk.

        padded: uint8/long (c, w) codes, 0 beyond each sequence; lengths: long (c,), all >= 1.
        Returns (c, n_filters).
        """
        dtype = self.convs[0].weight.dtype
        c, w = padded.shape
        # one-hot with the padding code 0 mapped to an all-zero row
        x = F.one_hot(padded.long(), N_AMINO_ACIDS + 1)[..., 1:].to(dtype)  # (c, w, 20)
        if self.n_position:
            x = torch.cat((x, position_features(lengths, w, dtype)), dim=-1)  # (c, w, 23)
        x = x.transpose(1, 2)  # (c, channels, w)
        valid = (torch.arange(w, device=padded.device)[None, :] < lengths[:, None])[:, None, :]  # (c, 1, w)
        for i, conv in enumerate(self.convs):
            x = F.selu(conv(x))  # (c, filters, w)
            if i + 1 < len(self.convs):
                x = x * valid  # padding must stay zero for the next layer
        x = x.masked_fill(~valid, float("-inf"))
        return x.amax(dim=2)  # (c, filters)

    def _extras(self, index: torch.Tensor, v_index: torch.Tensor | None, j_index: torch.Tensor | None,
                counts: torch.Tensor | None, dtype: torch.dtype) -> list[torch.Tensor]:
        """Features concatenated after pooling for the sequences at `index`."""
        out = []
        for emb, genes, n in ((self.v_embedding, v_index, self.n_v_genes), (self.j_embedding, j_index, self.n_j_genes)):
            if emb is None:
                continue
            g = genes[index] if genes is not None else torch.full_like(index, -1)
            out.append(emb(torch.where(g < 0, n, g)))  # -1 -> the 'unknown' row n
        if self.use_counts:
            cnt = counts[index].to(dtype) if counts is not None else torch.full(index.shape, float("nan"),
                                                                                 device=index.device, dtype=dtype)
            unknown = torch.isnan(cnt)
            out.append(torch.stack((torch.where(unknown, 0.0, torch.log1p(cnt.clamp(min=0))), unknown.to(dtype)), -1))
        return out

    def _check_genes(self, v_index: torch.Tensor | None, j_index: torch.Tensor | None) -> None:
        for name, genes, emb, n in (("v_index", v_index, self.v_embedding, self.n_v_genes),
                                    ("j_index", j_index, self.j_embedding, self.n_j_genes)):
            if emb is not None and genes is not None and genes.numel():
                lo, hi = int(genes.min()), int(genes.max())
                if lo < -1 or hi >= n:
                    raise ValueError(f"{name} holds {lo if lo < -1 else hi}, outside -1..{n - 1} (the model's gene table)")

    # --- streaming over length-sorted chunks -------------------------------------------------------
    def iter_chunks(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor | None = None,
                    j_index: torch.Tensor | None = None, counts: torch.Tensor | None = None,
                    chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (index long (c,), embedding (c, out_dim)) for chunks of length-sorted sequences.

        Every sequence appears in exactly one chunk; `index` gives its position in the input.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        n = lengths.shape[0]
        if n == 0:
            return
        self._check_genes(v_index, j_index)
        lengths = lengths.long()
        dtype = self.convs[0].weight.dtype
        order = torch.argsort(lengths, stable=True)  # (n,)
        sorted_lengths = lengths[order]
        starts = torch.cumsum(lengths, 0) - lengths  # (n,) first residue of each sequence
        # chunk widths in one transfer: the longest sequence of a sorted chunk is its last one
        ends = torch.arange(chunk_size, n + chunk_size, chunk_size).clamp(max=n)
        widths = sorted_lengths[(ends - 1).to(lengths.device)].tolist()
        last_residue = codes.shape[0] - 1
        for k, width in enumerate(widths):
            index = order[k * chunk_size: (k + 1) * chunk_size]
            chunk_lengths = sorted_lengths[k * chunk_size: (k + 1) * chunk_size]
            col = torch.arange(width, device=codes.device)
            source = (starts[index][:, None] + col[None, :]).clamp(max=last_residue)  # (c, w)
            valid = col[None, :] < chunk_lengths[:, None]
            padded = codes[source] * valid  # (c, w), zero beyond each sequence
            emb = self.embed_padded(padded, chunk_lengths)
            extras = self._extras(index, v_index, j_index, counts, dtype)
            if extras:
                emb = torch.cat([emb, *extras], dim=1)
            yield index, emb

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor | None = None,
                j_index: torch.Tensor | None = None, counts: torch.Tensor | None = None,
                chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Embeddings (n, out_dim) in input order (see the class docstring)."""
        n = lengths.shape[0]
        parts, indices = [], []
        for index, emb in self.iter_chunks(codes, lengths, v_index, j_index, counts, chunk_size):
            parts.append(emb)
            indices.append(index)
        if not parts:
            return torch.zeros(0, self.out_dim, device=codes.device, dtype=self.convs[0].weight.dtype)
        order = torch.cat(indices)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(n, device=order.device)
        return torch.cat(parts)[inverse]
