"""Per-residue contributions of single sequences, by integrated gradients (Captum).

**Target.** What we attribute is the sequence's *attention logit*: the pre-softmax score beta <k(x), q>
that Hopfield pooling gives the sequence (for the head that scores it highest). The positive score of
a repertoire is an attention-weighted mean of its sequences' values passed through the output
network; which sequences enter that mean, and with how much weight, is decided by their logits
alone, the same in every repertoire (the learned query is fixed when `update_steps` = 1). The
repertoire's output itself is a poor target for one sequence: a positive repertoire holds many
sequences of the same kind, so removing one barely moves it and its gradient says little about the
residues. A residue with a large positive contribution is one that makes the model pick the
sequence out of a repertoire. A clone memory's bonus (`model.memory`) is left out of the target:
it is added whole to an exact copy of a stored CDR3, so it has no per-residue share (the ranking
that chooses the sequences does include it).

**Baseline.** The same sequence with every residue blanked: an all-zero one-hot input (code 0 is
padding, which the CNN sees as no residue), the same length (the position channels and the V/J and
count features stay). Integrated gradients then split logit(x) - logit(blank) over the residues:
the contributions add up to that difference (completeness), up to the error of the path integral,
which `convergence_delta` reports per sequence.

**Differentiable path.** The embedder runs its first convolution as a table lookup with a custom
backward (`SequenceEmbedder.embed_padded`), which has no gradient with respect to the residues.
:func:`onehot_embedding` computes the same CNN as a convolution over a float one-hot input with the
embedder's own weights (equal to the lookup up to float rounding; the tests check it).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from deeprc_hopfield.encoding import encode
from deeprc_hopfield.model.embedding import N_AMINO_ACIDS, SequenceEmbedder, position_features
from deeprc_hopfield.saved_model import SavedModel

log = logging.getLogger(__name__)

#: Steps of the path integral (trapezoid rule). The max over positions makes the logit piecewise smooth,
#: so the integral converges slowly: 256 steps keep |convergence delta| near 1% of logit - baseline, at
#: about 0.5 s for 20 sequences on one CPU core.
N_STEPS = 256
METHOD = "riemann_trapezoid"
CONTRIBUTION_COLUMNS = ["rank", "junction_aa", "v_call", "j_call", "position", "residue", "contribution",
                        "attention_logit", "baseline_logit", "convergence_delta"]


def onehot(sequences: list[str], dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot residues (n, max_length, 20), zero beyond each sequence, and the lengths (n,)."""
    codes, lengths = encode(sequences)
    width = int(lengths.max())
    owner = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(len(codes)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    x = torch.zeros(len(lengths), width, N_AMINO_ACIDS, dtype=dtype)
    x[owner, position, codes.astype(np.int64) - 1] = 1.0
    return x, torch.as_tensor(lengths)


def onehot_embedding(embedder: SequenceEmbedder, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The embedder's CNN part (n, n_filters) on a one-hot float input x (n, width, 20).

    Same weights and the same result as the embedder's lookup path (convolution over one-hot
    residues and position channels, SELU between layers, max over each sequence's own positions),
    but differentiable with respect to x. Rows of x beyond a sequence's length must be zero.
    """
    n, width, _ = x.shape
    lengths = lengths.to(x.device)
    valid = torch.arange(width, device=x.device)[None, :] < lengths[:, None]  # (n, w)
    channels = x
    if embedder.n_position:
        channels = torch.cat((x, position_features(lengths, width, x.dtype)), dim=2)  # (n, w, 20 + 3)
    h = channels.transpose(1, 2)  # (n, C, w)
    for i, conv in enumerate(embedder.convs):
        if i:
            h = F.selu(h) * valid[:, None, :]  # padding stays zero for the next layer
        h = conv(F.pad(h, embedder.padding))  # (n, F, w)
    h = h.masked_fill(~valid[:, None, :], float("-inf"))
    return F.selu(h.amax(dim=2))


def _model_inputs(saved: SavedModel, ranked: pd.DataFrame) -> dict[str, torch.Tensor]:
    """Encoded sequences, gene indices of the model's tables (-1 unknown) and counts of `ranked` rows."""
    v_pos = {g: i for i, g in enumerate(saved.v_genes)}
    j_pos = {g: i for i, g in enumerate(saved.j_genes)}
    codes, lengths = encode(ranked["junction_aa"].tolist())
    counts = (ranked["top_duplicate_count"] if "top_duplicate_count" in ranked else pd.Series(np.nan, ranked.index))
    return {"codes": torch.as_tensor(codes), "lengths": torch.as_tensor(lengths),
            "v_index": torch.tensor(ranked["v_call"].map(v_pos).fillna(-1).to_numpy(np.int64)),
            "j_index": torch.tensor(ranked["j_call"].map(j_pos).fillna(-1).to_numpy(np.int64)),
            "counts": torch.tensor(pd.to_numeric(counts, errors="coerce").to_numpy(np.float64))}


def integrated_gradients(saved: SavedModel, ranked: pd.DataFrame, n_steps: int = N_STEPS
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integrated gradients of each sequence's attention logit under one model.

    Parameters
    ----------
    saved
        A loaded model with `update_steps` = 1 (its query is the same for every repertoire).
    ranked
        Rows with junction_aa, v_call, j_call and optionally top_duplicate_count.
    n_steps
        Steps of the path integral (Captum's trapezoid rule).

    Returns
    -------
    contributions (n, max_length): per residue, 0 beyond each sequence; logit (n,) of the sequence;
    baseline logit (n,) of its blanked copy; convergence delta (n,) = sum of contributions -
    (logit - baseline logit).
    """
    from captum.attr import IntegratedGradients

    model = saved.model
    embedder, pooling = model.embedder, model.pooling
    if pooling.update_steps != 1:
        raise ValueError("integrated gradients of the attention logit need update_steps = 1")
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in _model_inputs(saved, ranked).items()}
    x, lengths = onehot(ranked["junction_aa"].tolist())
    x, lengths = x.to(device), lengths.to(device)
    with torch.no_grad():  # genes and counts do not depend on the residues: computed once
        full = embedder(inputs["codes"], inputs["lengths"], inputs["v_index"], inputs["j_index"], inputs["counts"])
        extras = full[:, embedder.convs[-1].out_channels:]
        head = pooling.attention_logits(full).argmax(dim=1)  # (n,) the head that scores each sequence highest

    def logit(x_: torch.Tensor, lengths_: torch.Tensor, extras_: torch.Tensor, head_: torch.Tensor) -> torch.Tensor:
        emb = torch.cat((onehot_embedding(embedder, x_, lengths_), extras_), dim=1)
        return pooling.attention_logits(emb).gather(1, head_[:, None])[:, 0]

    with torch.enable_grad():
        attributions, delta = IntegratedGradients(logit).attribute(
            x, baselines=torch.zeros_like(x), additional_forward_args=(lengths, extras, head), n_steps=n_steps,
            method=METHOD, return_convergence_delta=True)
    with torch.no_grad():
        value = logit(x, lengths, extras, head)
        base = logit(torch.zeros_like(x), lengths, extras, head)
    per_residue = attributions.sum(dim=2)  # only the present residue's channel is non-zero
    return (per_residue.detach().cpu().numpy(), value.cpu().numpy(), base.cpu().numpy(),
            delta.detach().cpu().numpy())


def contributions_table(models: list[SavedModel], ranked: pd.DataFrame, n_steps: int = N_STEPS) -> pd.DataFrame:
    """Per-residue contributions of the `ranked` sequences, averaged over the models (a fold ensemble).

    One row per residue: columns :data:`CONTRIBUTION_COLUMNS` (position 1-based; the logits, the
    baseline logits and the convergence delta are per sequence, repeated on its rows, and are means
    over the models, so the contributions of a sequence still add up to logit - baseline logit).
    """
    if ranked.empty:
        return pd.DataFrame(columns=CONTRIBUTION_COLUMNS)
    results = [integrated_gradients(saved, ranked, n_steps) for saved in models]
    contributions, value, base, delta = (np.mean([r[k] for r in results], axis=0) for k in range(4))
    lengths = ranked["junction_aa"].str.len().to_numpy()
    row = np.repeat(np.arange(len(ranked)), lengths)
    position = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    residues = np.frombuffer("".join(ranked["junction_aa"]).encode("ascii"), dtype="S1").astype(str)
    table = pd.DataFrame({
        "rank": ranked["rank"].to_numpy()[row] if "rank" in ranked else row + 1,
        "junction_aa": ranked["junction_aa"].to_numpy()[row],
        "v_call": ranked["v_call"].to_numpy()[row],
        "j_call": ranked["j_call"].to_numpy()[row],
        "position": position + 1,
        "residue": residues,
        "contribution": contributions[row, position],
        "attention_logit": value[row], "baseline_logit": base[row], "convergence_delta": delta[row],
    })
    worst = float(np.abs(delta).max())
    log.info("integrated gradients of %d sequences (%d models, %d steps): largest |convergence delta| %.2g",
             len(ranked), len(models), n_steps, worst)
    return table

