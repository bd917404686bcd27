"""Sequence logos (logomaker), each written as PNG and SVG.

- A motif logo stacks the searched sequences (the positives' most attended) that carry a motif, aligned at its first match with
  `flank` residues either side, as information content (bits): the motif's fixed residues stand
  tall, its gaps show whatever residues fill them.
- A contribution logo draws, for each of the top sequences, every residue at a height equal to its
  integrated-gradient contribution (below the axis when negative), one row per sequence.
Figures are built on a `matplotlib.figure.Figure` (no pyplot: no global state, no display).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deeprc_hopfield.interpret.motifs import motif_matches

COLOR_SCHEME = "chemistry"
FORMATS = ("png", "svg")


#: Letters lower than this (bits, or |contribution|) are left out of a logo: invisible, and logomaker
#: builds a glyph for every cell of its matrix, the slow part of drawing.
MIN_HEIGHT = 0.02


def _save(fig, stem: Path) -> list[Path]:  # noqa: ANN001 (a matplotlib Figure)
    paths = []
    for fmt in FORMATS:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, format=fmt)
        paths.append(path)
    return paths


def _visible(matrix: pd.DataFrame) -> pd.DataFrame:
    """The matrix without letters that are never taller than MIN_HEIGHT (at least one letter kept)."""
    tall = matrix.abs().max() >= MIN_HEIGHT
    return matrix.loc[:, tall] if tall.any() else matrix.iloc[:, :1]


def motif_logo(sequences: list[str], motif: str, stem: Path, flank: int = 2, title: str | None = None
               ) -> list[Path]:
    """Logo of the sequences that carry `motif`, aligned on it; writes `stem`.png and `stem`.svg.

    Returns the paths written (none when no sequence carries the motif).
    """
    import logomaker
    from matplotlib.figure import Figure

    starts = motif_matches(sequences, motif)
    carriers = [s for s, p in zip(sequences, starts) if p >= 0]
    if not carriers:
        return []
    pad = "-" * flank
    width = len(motif) + 2 * flank
    windows = [(pad + s + pad)[p:p + width] for s, p in zip(carriers, starts[starts >= 0])]
    matrix = logomaker.alignment_to_matrix(windows, to_type="information", characters_to_ignore="-.")
    fig = Figure(figsize=(max(4.0, 0.55 * width), 2.4), dpi=100)
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.86)
    ax = fig.subplots()
    logomaker.Logo(_visible(matrix), ax=ax, color_scheme=COLOR_SCHEME)
    ax.set_xticks(range(width), [" "] * flank + list(motif) + [" "] * flank)
    ax.set_ylabel("bits")
    ax.set_title(title or f"{motif} ({len(carriers)} sequences)", fontsize=10)
    return _save(fig, stem)


def contribution_logo(contributions: pd.DataFrame, stem: Path, max_sequences: int = 10) -> list[Path]:
    """One saliency row per sequence (the first `max_sequences` by rank) from a contributions table
    (rank, junction_aa, v_call, position, residue, contribution); writes `stem`.png and `stem`.svg."""
    import logomaker
    from matplotlib.figure import Figure

    ranks = contributions["rank"].drop_duplicates().to_numpy()[:max_sequences]
    if not len(ranks):
        return []
    longest = int(contributions.loc[contributions["rank"].isin(ranks), "position"].max())
    height = 0.6 + 1.3 * len(ranks)
    fig = Figure(figsize=(max(5.0, 0.4 * longest), height), dpi=100)
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.5 / height, top=1 - 0.3 / height, hspace=0.45)
    axes = fig.subplots(len(ranks), 1, sharex=True, squeeze=False)[:, 0]
    for ax, rank in zip(axes, ranks):
        rows = contributions[contributions["rank"] == rank].sort_values("position")
        sequence = "".join(rows["residue"])
        matrix = logomaker.saliency_to_matrix(sequence, rows["contribution"].to_numpy())
        matrix = matrix.loc[:, sorted(set(sequence))]  # one non-zero letter per position: only these can show
        logomaker.Logo(matrix.reindex(range(longest), fill_value=0.0), ax=ax, color_scheme=COLOR_SCHEME)
        ax.axhline(0, color="#888", linewidth=0.5)
        v_call = rows["v_call"].iloc[0]
        ax.set_title(f"#{rank} {sequence}" + ("" if pd.isna(v_call) else f"  {v_call}"), fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1].set_xticks(range(longest), [str(p) for p in range(1, longest + 1)])
    axes[-1].set_xlabel("position in the CDR3")
    fig.supylabel("contribution to the attention logit", fontsize=8, x=0.02)
    return _save(fig, stem)
