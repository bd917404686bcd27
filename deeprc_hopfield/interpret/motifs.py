"""Gapped k-mer motifs enriched among the sequences the model attends in positives, against a background of the cohort.

A *pattern* is a run of `width` positions (3 to 6) whose first and last positions are residues and
whose inner positions are residues or gaps ('.', any residue), at most two gaps: `GR.DT` is the
pattern of width 5 with a gap in the middle, as the simulator writes implanted motifs. A sequence
*supports* a pattern when the pattern occurs in its middle (counted once per sequence): the
`TRIM` residues at each end of a junction are left out, as GLIPH does: the conserved anchor and the
two germline-encoded residues next to it, nearly the same in every TRB junction (C-A-S..., ...Q-Y-F;
`deeprc_hopfield.cdr3.GERMLINE_ENDS`, the CDR3 core less two residues each side; the store holds
junctions whatever the files gave); otherwise a motif that the model's top picks often carry right
after C-A-S would grow into `A.GRDT`, more specific against the background than the motif itself.

Foreground: the most-attended sequences of each positive repertoire (`interpret`'s `motif_top`). Background: a seeded sample, as many from each repertoire, of the
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

**Which patterns are tested.** A pattern is tested when at least `min_support` foreground sequences carry it,
from at least `min_support` (and :data:`MIN_REPERTOIRE_SHARE` of the) positive repertoires whose top sequences were
searched (`owners`): a clone family of one patient is not a motif of the condition.

**Significance.** Only motifs that pass two one-sided tests, each at `alpha` over the number of
patterns tested (Bonferroni), are reported: the Fisher test above (enriched in the foreground),
and, with samples of each repertoire's sequences (`repertoires`), Welch's t-test that the share of a
repertoire's sequences carrying the pattern is higher in positive than in negative repertoires
(`label_log10_p`; the repertoire is the unit, so one patient's large clone family does not make a
motif). The first alone is circular: the foreground is chosen by the model's attention, so whatever
its filters select (even in a cohort with no signal) is enriched there; the second asks the
repertoires themselves, whatever the model attends. A cohort without a pattern that passes both gets
an empty table, not the best of noise.

The reported list is made non-redundant greedily: a motif is kept only if at most half of its
foreground supporters are already explained by a motif ranked above it, so a second, different
motif shows up instead of variants of the first.
"""

from __future__ import annotations

from dataclasses import dataclass
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
MOTIF_COLUMNS = ["rank", "motif", "width", "gaps", "support", "repertoires", "support_fraction",
                 "background_support", "background_fraction", "log2_enrichment", "log10_p", "positive_fraction",
                 "negative_fraction", "label_log10_p"]
#: Share of the searched positive repertoires whose top sequences must carry a pattern before it is tested.
MIN_REPERTOIRE_SHARE = 0.1
#: Family-wise error rate of the motif tests (Bonferroni over the patterns tested).
ALPHA = 0.05


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


@dataclass
class RepertoireSamples:
    """Samples of each positive and each negative repertoire's sequences, for the label test."""

    positive: list[list[str]]
    negative: list[list[str]]


def find_motifs(foreground: list[str], background: list[str], min_support: int = 3, top: int = 20,
                max_overlap: float = 0.5, repertoires: RepertoireSamples | None = None,
                owners: np.ndarray | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """Gapped patterns enriched in `foreground` over `background` (see the module docstring).

    Parameters
    ----------
    foreground
        The sequences searched (junction_aa strings): those the model attends most in positives.
    background
        Sequences of the same cohort, e.g. a uniform sample.
    min_support
        Foreground sequences a pattern needs before it is tested, and with `owners` positive repertoires (also at
        least :data:`MIN_REPERTOIRE_SHARE` of them).
    top
        Motifs reported at most.
    max_overlap
        Largest share of a motif's foreground supporters that may already support a better motif.
    repertoires
        Samples of each repertoire's sequences: the label test (see the module docstring); None tests enrichment
        in the foreground alone.
    owners
        The positive repertoire of each foreground sequence (any labels); None: every sequence its own.
    alpha
        Family-wise error rate of each test, Bonferroni over the patterns tested.

    Returns
    -------
    Columns :data:`MOTIF_COLUMNS` (support: foreground sequences carrying the motif; log10_p: of
    the one-sided Fisher test; repertoires: positive repertoires among whose searched sequences it is;
    label_log10_p: of the label test, NaN without `repertoires`), best first;
    empty when no pattern reaches `min_support` or passes the tests. ``attrs["patterns_tested"]`` and
    ``attrs["log10_p_max"]`` say how many patterns were tested and the largest log10 p that passed.
    """
    n_fg, n_bg = len(foreground), len(background)
    fg = sequence_patterns(foreground)
    owner = np.arange(n_fg) if owners is None else pd.factorize(np.asarray(owners))[0]
    fg["owner"] = owner[fg["sequence"].to_numpy()] if n_fg else fg["sequence"]
    counts = fg.groupby("pattern").agg(support=("sequence", "nunique"), repertoires=("owner", "nunique"))
    needed = max(min_support, int(np.ceil(MIN_REPERTOIRE_SHARE * len(np.unique(owner))))) if owners is not None \
        else min_support
    counts = counts[(counts["support"] >= min_support) & (counts["repertoires"] >= needed)]
    support = counts["support"]
    log10_p_max = float(np.log10(alpha / max(len(support), 1)))
    if support.empty:
        return _motif_table(pd.DataFrame(columns=MOTIF_COLUMNS), 0, log10_p_max, needed)
    stats = pd.DataFrame({"support": support, "repertoires": counts["repertoires"],
                          "background_support": _supporters(background, support.index)})
    k, kb = stats["support"].to_numpy(), stats["background_support"].to_numpy()
    stats["log10_p"] = _log10_fisher(k, n_fg, kb, n_bg)
    stats["support_fraction"] = k / n_fg
    stats["background_fraction"] = kb / max(n_bg, 1)
    stats["log2_enrichment"] = np.log2((k + 0.5) / (n_fg + 1) / ((kb + 0.5) / (n_bg + 1)))
    stats["positive_fraction"], stats["negative_fraction"], stats["label_log10_p"] = np.nan, np.nan, np.nan
    passed = stats["log10_p"] <= log10_p_max
    if repertoires is not None:
        positive = _carrier_shares(repertoires.positive, support.index)  # (repertoires, patterns)
        negative = _carrier_shares(repertoires.negative, support.index)
        stats["positive_fraction"], stats["negative_fraction"] = positive.mean(axis=0), negative.mean(axis=0)
        stats["label_log10_p"] = _log10_welch(positive, negative, (_mean_size(repertoires.positive),
                                                                 _mean_size(repertoires.negative)))
        passed &= stats["label_log10_p"] <= log10_p_max
    stats = stats[passed].sort_values(["log10_p", "log2_enrichment", "support"], ascending=[True, False, False],
                                      kind="stable")
    if stats.empty:
        return _motif_table(pd.DataFrame(columns=MOTIF_COLUMNS), len(support), log10_p_max)
    chosen = _non_redundant(stats.index.to_numpy(), fg, top, max_overlap)
    out = stats.loc[chosen].reset_index(names="code")
    out["motif"] = [pattern_string(int(c)) for c in out["code"]]
    out["width"] = out["motif"].str.len()
    out["gaps"] = out["motif"].str.count(r"\.")
    out["rank"] = np.arange(1, len(out) + 1)
    return _motif_table(out[MOTIF_COLUMNS], len(support), log10_p_max)


def no_motifs() -> pd.DataFrame:
    """The empty motif table of a search not run (no negative or no positive repertoire)."""
    return _motif_table(pd.DataFrame(columns=MOTIF_COLUMNS), 0, float("nan"))


def _motif_table(table: pd.DataFrame, tested: int, log10_p_max: float, needed: int = 0) -> pd.DataFrame:
    """`table` with how many patterns were tested, the threshold they had to pass and (where none was tested) the
    positive repertoires a pattern needed (``attrs``)."""
    table.attrs.update(patterns_tested=int(tested), log10_p_max=log10_p_max, repertoires_needed=int(needed))
    return table


def _supporters(sequences: list[str], patterns: pd.Index) -> pd.Series:
    """How many of `sequences` support each of `patterns` (codes), 0 where none."""
    found = sequence_patterns(sequences, keep=patterns.to_numpy())
    return found.groupby("pattern")["sequence"].nunique().reindex(patterns, fill_value=0)


def _mean_size(samples: list[list[str]]) -> float:
    """The mean number of sequences sampled from a repertoire."""
    return float(np.mean([len(sample) for sample in samples])) if samples else 0.0


def _carrier_shares(samples: list[list[str]], patterns: pd.Index) -> np.ndarray:
    """(repertoires, patterns): the share of each repertoire's sampled sequences that carry each pattern."""
    sizes = np.array([len(sample) for sample in samples], dtype=np.float64)
    owner = np.repeat(np.arange(len(samples)), sizes.astype(np.int64))
    found = sequence_patterns([s for sample in samples for s in sample], keep=patterns.to_numpy())
    column = patterns.get_indexer(found["pattern"].to_numpy())
    shares = np.zeros((len(samples), len(patterns)))
    np.add.at(shares, (owner[found["sequence"].to_numpy()], column), 1.0)  # one (sequence, pattern) pair each
    return shares / np.maximum(sizes, 1.0)[:, None]


def _log10_welch(positive: np.ndarray, negative: np.ndarray, sizes: tuple[float, float]) -> np.ndarray:
    """log10 of Welch's one-sided t-test p (positive repertoires' shares higher), per pattern. Each side's variance
    is at least a share's sampling variance, m (1 - m) / size (`sizes`: the mean sample of a repertoire on each side),
    so repertoires that happen to agree exactly (equal samples make ties common) do not make p = 0; p = 1 where the
    test is undefined (fewer than two repertoires a side, or no carrier on either side)."""
    from scipy.stats import t as student_t

    if len(positive) < 2 or len(negative) < 2:
        return np.zeros(positive.shape[1])
    terms = []
    for shares, size in ((positive, sizes[0]), (negative, sizes[1])):
        mean = shares.mean(axis=0)
        variance = np.maximum(shares.var(axis=0, ddof=1), mean * (1 - mean) / max(size, 1.0))
        terms.append((mean, variance / len(shares), len(shares)))
    (m1, e1, n1), (m2, e2, n2) = terms
    se2 = e1 + e2
    with np.errstate(all="ignore"):
        t = (m1 - m2) / np.sqrt(se2)
        df = se2 ** 2 / (e1 ** 2 / (n1 - 1) + e2 ** 2 / (n2 - 1))
        p = student_t.sf(t, df)
    p = np.where((se2 > 0) & np.isfinite(p), p, 1.0)
    return np.log10(np.clip(p, 1e-300, 1.0))


def _log10_fisher(k: np.ndarray, n: int, k_other: np.ndarray, n_other: int) -> np.ndarray:
    """log10 of the one-sided Fisher exact p (hypergeometric) of `k` of `n` against `k_other` of `n_other`
    supporters: at least `k` of all supporters falling in the first group."""
    from scipy.stats import hypergeom

    log_p = np.array([hypergeom.logsf(x - 1, n + n_other, x + y, n) if x > 0 else 0.0 for x, y in zip(k, k_other)])
    return log_p / np.log(10)


#: A more specific pattern stands for a motif when it keeps at least this share of the motif's supporters.
REFINE_SHARE = 0.9


def _non_redundant(ordered: np.ndarray, fg: pd.DataFrame, top: int, max_overlap: float) -> list[int]:
    """Greedy choice, best first, of patterns whose supporters are mostly not explained yet, each replaced by
    its most specific refinement (:func:`_refined`)."""
    members = fg[fg["pattern"].isin(ordered)].groupby("pattern")["sequence"].apply(np.asarray)
    residues = {int(code): len(pattern_string(int(code)).replace(GAP, "")) for code in ordered}
    explained = np.zeros(int(fg["sequence"].max()) + 1, dtype=bool)
    chosen: list[int] = []
    for code in ordered:
        supporters = members[code]
        if explained[supporters].mean() > max_overlap:
            continue
        code = _refined(int(code), ordered, members, residues)
        if code in chosen:
            continue
        chosen.append(code)
        explained[members[code]] = True
        if len(chosen) == top:
            break
    return chosen


def _refined(code: int, ordered: np.ndarray, members: pd.Series, residues: dict[int, int]) -> int:
    """The pattern with the most residues among those (passing ones, `ordered`) whose supporters are some of
    `code`'s and at least :data:`REFINE_SHARE` of them: `GRDT` for `RDT` when chance carriers of `RDT` are all
    that `GRDT` lacks (the shorter pattern can win the test by those few supporters), else `code` itself."""
    mine, motif = members[code], pattern_string(code)
    best, best_key = code, (residues[code], len(mine))
    for other in ordered:
        other = int(other)
        theirs = members[other]
        if residues[other] <= best_key[0] or len(theirs) < REFINE_SHARE * len(mine):
            continue
        if ((residues[other], len(theirs)) > best_key and _contains(pattern_string(other), motif)
                and np.isin(theirs, mine, assume_unique=True).all()):
            best, best_key = other, (residues[other], len(theirs))
    return best


def _contains(pattern: str, motif: str) -> bool:
    """Whether `pattern` holds `motif`'s residues at some offset (a gap of `motif` matches anything): `GRDT` holds
    `RDT` and `G.DT`, `HKWMPY` none of them."""
    return any(all(m == GAP or pattern[o + i] == m for i, m in enumerate(motif))
               for o in range(len(pattern) - len(motif) + 1))


def motif_matches(sequences: list[str], motif: str) -> np.ndarray:
    """Start of the first match of `motif` ('.' = any residue) in each sequence, -1 where none."""
    if not sequences:
        return np.zeros(0, dtype=np.int64)
    prefix = pd.Series(sequences, dtype=object).str.extract(f"^(.*?){motif.replace(GAP, '[A-Z]')}", expand=False)
    return prefix.str.len().fillna(-1).astype(np.int64).to_numpy()
