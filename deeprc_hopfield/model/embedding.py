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
from deeprc_hopfield.model.streaming import DEFAULT_CHUNK

N_AMINO_ACIDS = len(AMINO_ACIDS)


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


class _RowSum(torch.autograd.Function):
    """out[i] = sum_j table[index[i, j]]: `embedding_bag(mode='sum')` forward, a faster backward.

    torch's dense embedding_bag backward sorts all indices; scattering the output gradient once
    per index column with `index_add_` is about 3x faster on CPU for these small tables.
    """

    @staticmethod
    def forward(ctx, index: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.table_shape = table.shape
        return F.embedding_bag(index, table, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (index,) = ctx.saved_tensors
        grad_table = grad.new_zeros(ctx.table_shape)
        grad = grad.contiguous()
        for j in range(index.shape[1]):
            grad_table.index_add_(0, index[:, j], grad)
        return None, grad_table


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
        # 'same' padding (left, right): output position t sees inputs t - left .. t + right
        self.padding = ((kernel_size - 1) // 2, kernel_size - 1 - (kernel_size - 1) // 2)
        self.n_position = position_features
        in_channels = N_AMINO_ACIDS + position_features
        self.convs = nn.ModuleList(
            nn.Conv1d(in_channels if i == 0 else n_filters, n_filters, kernel_size)
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
    def first_layer_tables(self, max_length: int) -> torch.Tensor:
        """Lookup table that replaces the first convolution, (kernel*21 + max_length**2 + 1, n_filters).

        A convolution over one-hot residues is a sum of looked-up weight columns: row j*21 + a holds
        the weights of window offset j for amino acid code a (code 0, padding, is a zero row). The
        position channels depend only on (length, position), so their convolution plus the bias is
        precomputed for every length up to `max_length`: row kernel*21 + (L-1)*max_length + t. The
        last row is zero (for padded positions). Differentiable: gradients reach the conv weights.
        """
        conv = self.convs[0]
        weight = conv.weight  # (F, 20 + P, k)
        n_filters, k = weight.shape[0], self.kernel_size
        residue = weight[:, :N_AMINO_ACIDS, :].permute(2, 1, 0)  # (k, 20, F)
        residue = torch.cat((residue.new_zeros(k, 1, n_filters), residue), dim=1).reshape(k * (N_AMINO_ACIDS + 1), n_filters)
        lengths = torch.arange(1, max_length + 1, device=weight.device)
        if self.n_position:
            pf = position_features(lengths, max_length, weight.dtype).transpose(1, 2)  # (L, 3, L)
            pos = F.conv1d(F.pad(pf, self.padding), weight[:, N_AMINO_ACIDS:, :], conv.bias)  # (L, F, L)
            pos = pos.transpose(1, 2).reshape(max_length * max_length, n_filters)
        else:
            pos = conv.bias.expand(max_length * max_length, n_filters)
        return torch.cat((residue, pos, weight.new_zeros(1, n_filters)))

    def embed_padded(self, padded: torch.Tensor, lengths: torch.Tensor, table: torch.Tensor | None = None,
                     table_length: int | None = None, uniform: bool = False) -> torch.Tensor:
        """CNN + masked max of one chunk.

        padded: uint8/long (c, w) codes, 0 beyond each sequence; lengths: long (c,), all in 1..w.
        `table`/`table_length` from `first_layer_tables` (built here when None); `uniform` promises
        that every sequence has length w (no mask needed). Returns (c, n_filters).
        """
        c, w = padded.shape
        if table is None:
            table_length = w
            table = self.first_layer_tables(w)
        k = self.kernel_size
        n_res = k * (N_AMINO_ACIDS + 1)
        # first layer: one embedding_bag over k residue rows + 1 position/bias row per output position
        codes = F.pad(padded.long(), self.padding)  # (c, w + k - 1)
        window = codes.unfold(1, k, 1) + torch.arange(0, n_res, N_AMINO_ACIDS + 1, device=padded.device)  # (c, w, k)
        col = torch.arange(w, device=padded.device)
        valid = col[None, :] < lengths[:, None]  # (c, w)
        pos_row = n_res + (lengths[:, None] - 1) * table_length + col[None, :]
        pos_row = torch.where(valid, pos_row, table.shape[0] - 1)
        index = torch.cat((window, pos_row[..., None]), dim=2).reshape(c * w, k + 1)
        x = _RowSum.apply(index, table).view(c, w, -1)  # (c, w, F), pre-activation
        for conv in self.convs[1:]:
            x = F.selu(x)
            if not uniform:
                x = x * valid[..., None]  # padding must stay zero for the next layer
            x = conv(F.pad(x.transpose(1, 2), self.padding)).transpose(1, 2)  # (c, w, F)
        if not uniform:
            x = x.masked_fill(~valid[..., None], float("-inf"))
        return F.selu(x.amax(dim=1))  # SELU is increasing: max then SELU = max of SELU; (c, F)

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
        first = sorted_lengths[torch.arange(0, n, chunk_size, device=lengths.device)].tolist()
        max_length = max(widths)
        table = self.first_layer_tables(max_length)
        last_residue = codes.shape[0] - 1
        for k, width in enumerate(widths):
            index = order[k * chunk_size: (k + 1) * chunk_size]
            chunk_lengths = sorted_lengths[k * chunk_size: (k + 1) * chunk_size]
            col = torch.arange(width, device=codes.device)
            source = (starts[index][:, None] + col[None, :]).clamp(max=last_residue)  # (c, w)
            uniform = first[k] == width
            padded = codes[source]
            if not uniform:
                padded = padded * (col[None, :] < chunk_lengths[:, None])  # (c, w), zero beyond each sequence
            emb = self.embed_padded(padded, chunk_lengths, table, max_length, uniform)
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
