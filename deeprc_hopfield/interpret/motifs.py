"""Gapped k-mer motifs enriched among the top-ranked sequences, against a background of the cohort.

A *pattern* is a run of `width` positions (3 to 6) whose first and last positions are residues and
whose inner positions are residues or gaps ('.', any residue), at most two gaps: `GR.DT` is the
pattern of width 5 with a gap in the middle, as the simulator writes implanted motifs. A sequence
*supports* a pattern when the pattern occurs in its middle (counted once per sequence): the
`TRIM` residues at each end of a junction are left out, as GLIPH does: the conserved anchor and the
two germline-encoded residues next to it, nearly the same in every TRB junction (C-A-S..., ...Q-Y-F;
`deeprc_hopfield.cdr3.GERMLINE_ENDS`, the CDR3 core less two residues each side; the store holds
junctions whatever the files gave); otherwise a motif that the model's top picks often carry right
after C-A-S would grow into `A.GRDT`, more specific against the background than the motif itself.

Foreground: the top-ranked sequences (score > 0). Background: a seeded uniform sample of the
sequences of the negative repertoires, i.e. how common a pattern is without the condition (a sample
of the whole cohort would hold the motif itself at the witness rate of the positives, and would then
favour whatever the model's top picks share besides the motif, such as its position). Every
pattern seen in at least `min_support` foreground sequences is tested with the one-sided Fisher exact test (hypergeometric: at least this many
foreground supporters among all supporters); patterns are ranked by that p-value (log scale, so
none underflows), then by enrichment. The test prefers the most specific pattern that keeps the
foreground support: `R.DT` is supported by every `GR.DT` sequence and more, but by many more
background sequences, so `GR.DT` wins; `GRADT` is more specific still, but loses most of the
foreground. Patterns are encoded as base-21 integers (0 = gap) and counted with numpy over all
windows at once, never in a Python loop over sequences.

The reported list is made non-redundant greedily: a motif is kept only if at most half of its
foreground supporters are already explained by a motif ranked above it, so a second, different
motif shows up instead of variants of the first.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from deeprc_hopfield.cdr3 import GERMLINE_ENDS
from deeprc_hopfield.encoding import AMINO_ACIDS, encode

WIDTHS = (3, 4, 5, 6)
MAX_GAPS = 2
TRIM = GERMLINE_ENDS  # residues left out at each end of a junction
GAP = "."
_BASE = len(AMINO_ACIDS) + 1  # digit 0 = gap, 1..20 = residues
_LETTERS = np.array([GAP, *AMINO_ACIDS])
MOTIF_COLUMNS = ["rank", "motif", "width", "gaps", "support", "support_fraction", "background_support",
                 "background_fraction", "log2_enrichment", "log10_p"]


def gap_masks(width: int, max_gaps: int = MAX_GAPS) -> list[np.ndarray]:
    """Boolean masks (width,) of the residue positions of every pattern shape: ends fixed, up to
    `max_gaps` inner gaps."""
    inner = range(1, width - 1)
    masks = []
    for k in range(min(max_gaps, width - 2) + 1):
        for gaps in combinations(inner, k):
            mask = np.ones(width, dtype=bool)
            mask[list(gaps)] = False
            masks.append(mask)
    return masks


def pattern_string(code: int) -> str:
    """The pattern of a base-21 code, gaps as '.'."""
    digits = []
    while code:
        code, digit = divmod(code, _BASE)
        digits.append(digit)
    return "".join(_LETTERS[digits[::-1]])


def pattern_code(pattern: str) -> int:
    """Inverse of :func:`pattern_string`."""
    code = 0
    for letter in pattern:
        code = code * _BASE + (0 if letter == GAP else AMINO_ACIDS.index(letter) + 1)
    return code


def sequence_patterns(sequences: list[str], keep: np.ndarray | None = None, widths: tuple[int, ...] = WIDTHS,
                      max_gaps: int = MAX_GAPS, trim: int = TRIM) -> pd.DataFrame:
    """Every (sequence index, pattern code) pair, once per sequence, for all pattern shapes in the
    sequences' middles (`trim` residues left out at each end); only the codes in `keep`, when given."""
    scale = _BASE ** max(widths)  # every pattern code is below it
    pairs = [np.zeros(0, dtype=np.int64)]
    if not sequences:
        return pd.DataFrame({"sequence": pairs[0], "pattern": pairs[0]})
    codes, lengths = encode(sequences)
    codes = codes.astype(np.int64)
    owner = np.repeat(np.arange(len(lengths)), lengths)  # (n_residues,)
    offset = np.arange(len(codes)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # position in sequence
    for width in widths:
        starts = np.flatnonzero((offset >= trim) & (offset <= lengths[owner] - width - trim))  # fit in the middle
        if not len(starts):
            continue
        window = codes[starts[:, None] + np.arange(width)]  # (m, width)
        weights = _BASE ** np.arange(width - 1, -1, -1, dtype=np.int64)
        for mask in gap_masks(width, max_gaps):
            pattern = (window * (weights * mask)).sum(axis=1)
            owners = owner[starts]
            if keep is not None:
                hit = np.isin(pattern, keep)
                pattern, owners = pattern[hit], owners[hit]
            pairs.append(owners * scale + pattern)
    unique = np.unique(np.concatenate(pairs))
    return pd.DataFrame({"sequence": unique // scale, "pattern": unique % scale})


def find_motifs(foreground: list[str], background: list[str], min_support: int = 3, top: int = 20,
                max_overlap: float = 0.5) -> pd.DataFrame:
    """Gapped patterns enriched in `foreground` over `background` (see the module docstring).

    Parameters
    ----------
    foreground
        The top-ranked sequences (junction_aa strings).
    background
        Sequences of the same cohort, e.g. a uniform sample.
    min_support
        Foreground sequences a pattern needs before it is tested (also at least 5% of them).
    top
        Motifs reported at most.
    max_overlap
        Largest share of a motif's foreground supporters that may already support a better motif.

    Returns
    -------
    Columns :data:`MOTIF_COLUMNS` (support: foreground sequences carrying the motif; log10_p: of
    the one-sided Fisher test), best first; empty when no pattern reaches `min_support`.
    """
    from scipy.stats import hypergeom

    n_fg, n_bg = len(foreground), len(background)
    fg = sequence_patterns(foreground)
    support = fg.groupby("pattern")["sequence"].nunique()
    support = support[support >= max(min_support, int(np.ceil(0.05 * n_fg)))]
    if support.empty:
        return pd.DataFrame(columns=MOTIF_COLUMNS)
    bg = sequence_patterns(background, keep=support.index.to_numpy())
    stats = pd.DataFrame({"support": support,
                          "background_support": bg.groupby("pattern")["sequence"].nunique()
                          .reindex(support.index, fill_value=0)})
    k, kb = stats["support"].to_numpy(), stats["background_support"].to_numpy()
    log_p = np.array([hypergeom.logsf(x - 1, n_fg + n_bg, x + y, n_fg) for x, y in zip(k, kb)])
    stats["log10_p"] = log_p / np.log(10)
    stats["support_fraction"] = k / n_fg
    stats["background_fraction"] = kb / max(n_bg, 1)
    stats["log2_enrichment"] = np.log2((k + 0.5) / (n_fg + 1) / ((kb + 0.5) / (n_bg + 1)))
    stats = stats.sort_values(["log10_p", "log2_enrichment", "support"], ascending=[True, False, False],
                              kind="stable")
    chosen = _non_redundant(stats.index.to_numpy(), fg, top, max_overlap)
    out = stats.loc[chosen].reset_index(names="code")
    out["motif"] = [pattern_string(int(c)) for c in out["code"]]
    out["width"] = out["motif"].str.len()
    out["gaps"] = out["motif"].str.count(r"\.")
    out["rank"] = np.arange(1, len(out) + 1)
    return out[MOTIF_COLUMNS]


def _non_redundant(ordered: np.ndarray, fg: pd.DataFrame, top: int, max_overlap: float) -> list[int]:
    """Greedy choice, best first, of patterns whose supporters are mostly not explained yet."""
    members = fg[fg["pattern"].isin(ordered)].groupby("pattern")["sequence"].apply(np.asarray)
    explained = np.zeros(int(fg["sequence"].max()) + 1, dtype=bool)
    chosen = []
    for code in ordered:
        supporters = members[code]
        if explained[supporters].mean() > max_overlap:
            continue
        chosen.append(int(code))
        explained[supporters] = True
        if len(chosen) == top:
            break
    return chosen


def motif_matches(sequences: list[str], motif: str) -> np.ndarray:
    """Start of the first match of `motif` ('.' = any residue) in each sequence, -1 where none."""
    if not sequences:
        return np.zeros(0, dtype=np.int64)
    prefix = pd.Series(sequences, dtype=object).str.extract(f"^(.*?){motif.replace(GAP, '[A-Z]')}", expand=False)
    return prefix.str.len().fillna(-1).astype(np.int64).to_numpy()
