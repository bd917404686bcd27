"""Cohort-level ranking of the sequences that the model's attention ties to the positive class.

**Relative attention.** A repertoire's attention weights are a softmax over its sequences (with several
heads, one softmax over its (sequence, head) pairs, a sequence's weight its best head's, times the number of
heads: `HopfieldPooling.joint_attention`): they sum to between 1 and the number of heads whatever its size,
so a weight means nothing across repertoires as it is. Each sequence gets its *relative attention*
w = attention x n (n = sequences of its repertoire): w = 1 is what uniform attention would give every
sequence, w = 20 twenty times that. An ensemble's attention is the mean over its models (as `attend`
reports it). A head far more confident than another takes nearly all of the joint softmax, so the other's
finds can rank high in their repertoire yet get w < 1 (no evidence here); motifs are therefore searched in
each positive repertoire's own order (`positives_top_attended`), not in this ranking's top.

**Score.** One occurrence of a sequence in a repertoire adds the evidence e = max(0, log2 w), the bits
by which the model's attention to it exceeds uniform; attention below uniform adds nothing (most
sequences are simply not looked at, and how little says nothing). A sequence, i.e. a distinct
(junction_aa, v_call, j_call), scores

    score = sum of e over positive repertoires - sum of e over negative repertoires
          = evidence_positive - evidence_negative.

It grows with the number of positive repertoires whose attention picks the sequence and with how
strongly each picks it, and every negative repertoire that picks it too takes the same amount off: a
sequence the model also looks at in controls is not disease-specific (e.g. one that wins a control's
attention only because that repertoire holds nothing better). Summing, not averaging, rewards a
sequence that recurs in many positive patients (public signal), while a private sequence (most
receptors are private) still ranks by the strength of its one occurrence.

**Which repertoires are positive** (`labels`): "auto" takes the store's label of a repertoire, or,
where the store has no such label, the model's call (P(positive) >= 0.5); "store" takes the store's
labels and refuses a repertoire without one; "model" takes the model's calls even where the store has
labels (what interpreting new, unlabelled patients gives). `AttentionPass.label_source` says which
were used ("store", "predicted").

**What counts as one sequence**: a clone as `deeprc_hopfield.public_clones` defines it, here with
its J gene: (CDR3 core, V family, J gene), a missing V call resolved to the clones of its CDR3 core
and J that the interpreted repertoires hold with one. A repertoire holding several sequences of one
clone (two genes of a family, a junction and an IMGT CDR3) counts once, by the most attended; a row
is named by its most attended sequence (its V call by the most attended sequence that has one).

**Enrichment.** Beside the score, `attended_positive`/`attended_negative` count the repertoires
of each label that attend the sequence above uniform (w > 1); `fisher_p` is the one-sided Fisher
exact test of that 2 x 2 table against all interpreted repertoires (the hypergeometric chance of at
least as many attending positives), and `log_odds_ratio` its log odds ratio with 0.5 added to each
cell. A private sequence cannot reach significance (one repertoire is all there is), which is why
these describe the ranking rather than make it.

**Donors.** Where the repertoires are grouped (`groups`: several samples of one donor, e.g. time points or
tissues), a donor's samples are not independent, and a sequence one donor carries in three samples is one
finding, not three. The unit of the score and of the test is then the donor (of one side: a donor whose samples
the model calls differently counts on each side once): a donor adds the mean evidence of its samples (a sample
without the sequence adds 0, so that a donor sampled often weighs as one sampled once; `evidence_positive`/`_negative`
and `score` are sums over donors), `n_donors_positive`/`_negative` count the donors that carry the sequence and
`attended_donors_positive`/`_negative` those whose mean relative attention over their samples is above uniform, from
which `fisher_p` and `log_odds_ratio` are computed against the donors of each side. `n_`, `attended_` and
`mean_attention_` stay counts and means over repertoires.

**Memory.** Every sequence of the interpreted repertoires is kept as a 64-bit clone key
(`deeprc_hopfield.public_clones.clone_keys`), its V code, its repertoire and its w: 20 bytes a
sequence (6 MB for 60 x 5,000; 4.2 GB for 700 x 300,000). Only the `per_repertoire` most-attended
sequences of each repertoire enter the ranking as candidates, but their counts and means cover all
their occurrences, which are looked up `BLOCK` sequences at a time (no resolved key, copy or sort of every
sequence's; `benchmarks/rank_memory.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from deeprc_hopfield.encoding import decode, encode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.infer import Scored
from deeprc_hopfield.interrupts import raise_if_interrupted
from deeprc_hopfield.interpret.families import sequence_families
from deeprc_hopfield.interpret.known import KNOWN_COLUMNS
from deeprc_hopfield.split import donor_names
from deeprc_hopfield.public_clones import (V_MODE, clone_keys, expand_wildcards, in_sorted, name_codes,
                                           repertoire_keys, resolve_rows, unique_keys, wildcard_table)

log = logging.getLogger(__name__)

KEY_COLUMNS = ["junction_aa", "v_call", "j_call"]
#: Columns of ranked_sequences.tsv, in order.
RANKED_COLUMNS = ["rank", *KEY_COLUMNS, "score", "n_repertoires", "n_positive", "n_negative", "attended_positive",
                  "attended_negative", "mean_attention_positive", "mean_attention_negative", "evidence_positive",
                  "evidence_negative", "log_odds_ratio", "fisher_p", "top_repertoire", "top_attention",
                  "top_duplicate_count", "family", "family_size"]
#: Columns of a grouped ranking (several samples a donor), placed after attended_negative: see "Donors" above.
DONOR_COLUMNS = ["n_donors_positive", "n_donors_negative", "attended_donors_positive", "attended_donors_negative"]
#: Where a repertoire's side (positive or negative) comes from; see the module docstring.
LABEL_CHOICES = ("auto", "store", "model")
#: Sequences looked up at a time when every occurrence of the candidate clones is found (~40 MB a block).
BLOCK = 1 << 20


@dataclass
class AttentionPass:
    """What one pass of the model over the interpreted repertoires leaves for the ranking.

    key, repertoire, weight: one entry per sequence of every repertoire: int64 clone key of (CDR3
    core, V, J), index into `repertoires`, relative attention w (float32). candidates: the
    most-attended sequences of each repertoire (key, v, junction_aa, v_call, j_call, repertoire,
    weight, duplicate_count). repertoires: subject_id, positive (bool), probability (the model's
    P(positive)), n_sequences, donor (:func:`donor_names`), one row per
    repertoire. v: int32 V code of each sequence (-1 = no V call); None = all known. grouped: whether
    the repertoires came with groups (the tests then count donors).
    """

    key: np.ndarray
    repertoire: np.ndarray
    weight: np.ndarray
    candidates: pd.DataFrame
    repertoires: pd.DataFrame
    label_source: set[str] = field(default_factory=set)
    v: np.ndarray | None = None
    grouped: bool = False

    def donor_units(self) -> np.ndarray:
        """The test unit of each repertoire: its donor on its side (int, 0..units-1)."""
        reps = self.repertoires
        donor = reps["donor"] if "donor" in reps.columns else reps["subject_id"]
        return pd.factorize(pd.MultiIndex.from_arrays([donor.to_numpy(), reps["positive"].to_numpy()]))[0]

    def donors_by_side(self) -> tuple[int, int]:
        """Donors (units) of the positive and of the negative side."""
        unit, positive = self.donor_units(), self.repertoires["positive"].to_numpy(bool)
        return len(np.unique(unit[positive])), len(np.unique(unit[~positive]))


def name_keys(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Clone keys of the rows of a table of `junction_aa`, `v_call`, `j_call` (names) and the V code
    of each row, int64 (n,) each: the key of the ranking (V at the rule's level, J as a gene)."""
    codes, lengths = encode(table["junction_aa"].tolist())
    v, j = name_codes(table["v_call"].to_numpy(), V_MODE), name_codes(table["j_call"].to_numpy(), "gene")
    return clone_keys(*(torch.from_numpy(a) for a in (codes, lengths, v, j))).numpy(), v


def collect_attention(scored: Iterable[Scored], label: str, positive_class: str, per_repertoire: int = 1000,
                      labels: str = "auto", groups: Mapping[str, str] | None = None) -> AttentionPass:
    """Keep every sequence's relative attention from a pass of the model(s) over whole repertoires.

    Parameters
    ----------
    scored
        The repertoires to interpret with their scores and attention (one model or a fold ensemble:
        attention averaged over models, highest head of each), from
        :func:`deeprc_hopfield.infer.score_subjects` or, without a second pass, from the attention file
        that `predict` wrote (:func:`deeprc_hopfield.infer.scored_from_file`).
    label, positive_class
        The binary label and its positive class name.
    per_repertoire
        Sequences of each repertoire, the most attended, that become ranking candidates.
    labels
        Which repertoires are positive: "auto" (the true label, i.e. the store's, when the subject
        has one, else the model's call P(positive) >= 0.5), "store" (the true label; a subject
        without one is an error, raised before its forward pass) or "model" (the model's call always).
    groups
        The donor of each subject (several samples a donor): the tests then count donors (see "Donors" above); a
        subject it lacks is a donor of its own. None: every repertoire its own donor.
    """
    if labels not in LABEL_CHOICES:
        raise ValueError(f"labels must be one of {', '.join(LABEL_CHOICES)}, not {labels!r}")
    keys, owners, weights, candidates, rows = [], [], [], [], []
    sources: set[str] = set()
    v_codes = []
    for index, item in enumerate(scored):
        subject, scores = item.subject, item.scores
        truth = subject.truth.get(label)
        if truth is None and labels == "store":
            raise DeepRCError(f"repertoire '{subject.subject_id}' has no stored label '{label}' (labels 'auto' or "
                              "'model' use the model's call)")
        rep = subject.repertoire
        n = len(rep)
        w = (item.attention.astype(np.float64) * n).astype(np.float32)  # (n,) relative attention
        v = name_codes(subject.v_names, V_MODE)  # from the names: the same whatever the gene table
        key = repertoire_keys(rep, v, name_codes(subject.j_names, "gene"))
        probability = float(scores[label].mean(axis=0)[0])
        if truth is None or labels == "model":
            positive, source = probability >= 0.5, "predicted"
        else:
            positive, source = str(truth) == positive_class, "store"
        sources.add(source)
        top = np.argsort(-w, kind="stable")[:per_repertoire]
        picked = rep.subset(top)
        candidates.append(pd.DataFrame({"junction_aa": decode(picked.codes, picked.lengths),
                                        "v_call": subject.v_names[top], "j_call": subject.j_names[top],
                                        "key": key[top], "v": v[top], "repertoire": index, "weight": w[top],
                                        "duplicate_count": rep.counts[top]}))
        keys.append(key)
        v_codes.append(v.astype(np.int32))
        owners.append(np.full(n, index, dtype=np.int32))
        weights.append(w)
        rows.append({"subject_id": subject.subject_id, "positive": positive, "probability": probability,
                     "n_sequences": n, "donor": donor_names([subject.subject_id], groups)[0]})
        raise_if_interrupted()
    if not rows:
        raise ValueError("no repertoire to interpret")
    log.info("attention of %d sequences in %d repertoires", sum(map(len, keys)), len(rows))
    key, owner, weight, v = (_joined(parts) for parts in (keys, owners, weights, v_codes))  # one at a time
    return AttentionPass(key, owner, weight, pd.concat(candidates, ignore_index=True), pd.DataFrame(rows), sources, v,
                         grouped=groups is not None)


#: Columns of motif_foreground.tsv: the most-attended sequences of each positive repertoire.
FOREGROUND_COLUMNS = ["subject_id", "rank", *KEY_COLUMNS, "attention"]


def positives_top_attended(attention: AttentionPass, top: int) -> pd.DataFrame:
    """The `top` most-attended sequences of each positive repertoire (columns :data:`FOREGROUND_COLUMNS`;
    attention relative, 1 = uniform), in the order `attend` lists them: what motifs are searched among.

    Not the cohort ranking's top: its scores are relative attention weights, which compare heads, and a head
    more confident than another can outweigh that head's witnesses while they still rank high in their
    repertoire; each repertoire's own order keeps every head's finds."""
    reps = attention.repertoires
    table = attention.candidates[attention.candidates["repertoire"].map(reps["positive"])]
    table = table.groupby("repertoire", sort=False).head(top)  # candidates come most attended first
    return pd.DataFrame({"subject_id": table["repertoire"].map(reps["subject_id"]).to_numpy(),
                         "rank": table.groupby("repertoire", sort=False).cumcount().to_numpy() + 1,
                         **{c: table[c].to_numpy() for c in KEY_COLUMNS}, "attention": table["weight"].to_numpy()})


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The arrays of `parts` concatenated, the list emptied (so that each repertoire's arrays are let go of once
    copied: the whole fold's arrays are not held twice)."""
    joined = np.concatenate(parts)
    parts.clear()
    return joined


def rank_sequences(attention: AttentionPass) -> pd.DataFrame:
    """The cohort ranking (columns :data:`RANKED_COLUMNS`, with :data:`DONOR_COLUMNS` where grouped), most
    disease-associated first.

    Every candidate clone is scored over all its occurrences (see the module docstring).
    """
    reps = attention.repertoires
    candidates = attention.candidates
    row, key = _resolved(attention.key, attention.v, candidates["key"].to_numpy(), candidates.get("v"))
    candidates = candidates.iloc[row].assign(key=key)
    # the occurrence of each candidate with the highest attention names it and its top repertoire
    best = candidates.sort_values("weight", ascending=False, kind="stable").drop_duplicates("key")
    named = candidates[candidates["v_call"].notna()].sort_values("weight", ascending=False, kind="stable")
    v_call = named.drop_duplicates("key").set_index("key")["v_call"]
    best = best.assign(v_call=best["v_call"].where(best["v_call"].notna(), best["key"].map(v_call)))
    row, key = _carrying(attention.key, attention.v, best["key"].to_numpy())
    per_repertoire = pd.DataFrame({"key": key, "repertoire": attention.repertoire[row],
                                   "weight": attention.weight[row].astype(np.float64)})
    per_repertoire = per_repertoire.groupby(["key", "repertoire"], sort=False)["weight"].max().reset_index()
    w = per_repertoire["weight"].to_numpy()  # a clone's most attended sequence in each repertoire
    occurrences = pd.DataFrame({"key": per_repertoire["key"].to_numpy(),
                                "positive": reps["positive"].to_numpy()[per_repertoire["repertoire"].to_numpy()],
                                "weight": w, "attended": w > 1, "evidence": np.log2(np.maximum(w, 1.0))})
    stats = counts_by_label(occurrences)
    if attention.grouped:  # evidence by donor (the mean of its samples), and the donors' counts
        by_donor = donor_counts(per_repertoire, attention)
        stats = stats.drop(columns=list(by_donor.columns.intersection(stats.columns))).join(by_donor)
    table = best.set_index("key")[KEY_COLUMNS].join(stats)
    table["top_repertoire"] = reps["subject_id"].to_numpy()[best["repertoire"].to_numpy()]
    table["top_attention"] = best["weight"].to_numpy()
    table["top_duplicate_count"] = best["duplicate_count"].to_numpy(np.float64)  # whole numbers when written
    n_positive = int(reps["positive"].sum())
    donors = attention.donors_by_side() if attention.grouped else None
    return finish_ranking(table.reset_index(drop=True), n_positive, len(reps) - n_positive, donors)


def donor_counts(per_repertoire: pd.DataFrame, attention: AttentionPass) -> pd.DataFrame:
    """Per key, by side: the donors carrying it, those attending it above uniform on the mean of their samples
    (:data:`DONOR_COLUMNS`), and each donor's mean evidence over its samples, summed (`evidence_positive`/`_negative`;
    a sample without the sequence adds 0, so a donor of many samples weighs as one of few); `per_repertoire`: key,
    repertoire, weight (a clone's most attended sequence in each repertoire that holds it)."""
    repertoire = per_repertoire["repertoire"].to_numpy()
    unit = attention.donor_units()
    samples = np.bincount(unit)[unit[repertoire]]  # the repertoires of each occurrence's donor (on its side)
    weight = per_repertoire["weight"].to_numpy()
    units = pd.DataFrame({"key": per_repertoire["key"].to_numpy(), "unit": unit[repertoire],
                          "positive": attention.repertoires["positive"].to_numpy(bool)[repertoire],
                          "weight": weight / samples, "evidence": np.log2(np.maximum(weight, 1.0)) / samples})
    mean = units.groupby(["key", "unit", "positive"], sort=False)[["weight", "evidence"]].sum().reset_index()
    grouped = (mean.assign(attended=mean["weight"] > 1).groupby(["key", "positive"])
               .agg(n=("unit", "size"), attended=("attended", "sum"), evidence=("evidence", "sum"))
               .unstack("positive", fill_value=0))
    out = pd.DataFrame(index=grouped.index)
    for flag, suffix in ((True, "positive"), (False, "negative")):
        for column, name in (("n", "n_donors"), ("attended", "attended_donors"), ("evidence", "evidence")):
            out[f"{name}_{suffix}"] = grouped[(column, flag)] if (column, flag) in grouped.columns else 0
    return out


def _resolved(keys: np.ndarray, v: np.ndarray | None, query: np.ndarray, query_v: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The `query` rows' clones (row, key) with the missing-V policy applied against all sequences
    (`keys`, `v`; see `public_clones.resolve_rows`)."""
    query = np.asarray(query, dtype=np.int64)
    if v is None or query_v is None:
        return np.arange(len(query)), query
    v, query_v = np.asarray(v), np.asarray(query_v)
    if query_v.min(initial=0) >= 0:
        return np.arange(len(query)), query
    without = np.flatnonzero(query_v < 0)
    starts = range(0, len(keys), BLOCK)  # the sequences with a V call a block at a time: no copy of them all
    table = wildcard_table((keys[s:s + BLOCK][v[s:s + BLOCK] >= 0] for s in starts),
                           (v[s:s + BLOCK][v[s:s + BLOCK] >= 0] for s in starts), query[without])
    rows, resolved = expand_wildcards(query[without], table)
    return (np.concatenate([np.flatnonzero(query_v >= 0), without[rows]]),
            np.concatenate([query[query_v >= 0], resolved]))


def _carrying(keys: np.ndarray, v: np.ndarray | None, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, key) of every sequence (`keys`, `v`) whose clone, the missing-V policy applied, is one of `wanted`, in
    the order :func:`_resolved` gives every sequence's: those with a V call looked up a block at a time, those
    without one resolved, so that no resolved key of every sequence is held."""
    wanted = unique_keys(np.asarray(wanted).astype(np.int64, copy=False))  # int64 as _resolved gives them
    v = None if v is None or len(wanted) == 0 else np.asarray(v)  # nothing wanted: no V-less sequence to resolve
    missing = np.zeros(0, dtype=np.int64) if v is None else np.flatnonzero(v < 0)
    rows = []
    for start in range(0, len(keys), BLOCK):
        hit = in_sorted(wanted, keys[start:start + BLOCK].astype(np.int64, copy=False))
        if len(missing):
            hit &= v[start:start + BLOCK] >= 0
        rows.append(start + np.flatnonzero(hit))
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if len(missing):
        local, resolved = _resolved(keys, v, keys[missing], v[missing])
        kept = in_sorted(wanted, resolved)
        return np.concatenate([row, missing[local[kept]]]), np.concatenate([keys[row].astype(np.int64), resolved[kept]])
    return row, keys[row].astype(np.int64, copy=False)


def clone_rows(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(row, clone key) pairs of a table of `junction_aa`, `v_call`, `j_call` names, a row without a V
    call resolved to the table's rows of its CDR3 core and J with one (to merge rankings)."""
    keys, v = name_keys(table)
    return resolve_rows(keys, v)


def counts_by_label(occurrences: pd.DataFrame) -> pd.DataFrame:
    """Per key: repertoires carrying it, attending it (w > 1), summed w and summed evidence, by label.

    `occurrences`: key, positive (bool), weight, attended (bool), evidence; one row per occurrence.
    """
    grouped = occurrences.groupby(["key", "positive"]).agg(
        n=("weight", "size"), attended=("attended", "sum"), attention=("weight", "sum"),
        evidence=("evidence", "sum"))
    wide = grouped.unstack("positive", fill_value=0)
    out = pd.DataFrame(index=wide.index)
    for flag, suffix in ((True, "positive"), (False, "negative")):
        for column in ("n", "attended", "attention", "evidence"):
            out[f"{column}_{suffix}"] = wide[(column, flag)] if (column, flag) in wide.columns else 0
    return out


def finish_ranking(table: pd.DataFrame, n_positive: int, n_negative: int,
                   donors: tuple[int, int] | None = None) -> pd.DataFrame:
    """Score, means, Fisher test and order of a table of per-sequence sums by label.

    `table` holds the key columns, n_/attended_/attention_/evidence_ + positive/negative (sums over
    occurrences) and the top_* columns; `n_positive`/`n_negative` count the interpreted repertoires.
    `donors`: the positive and negative donors of a grouped ranking, whose `table` then has :data:`DONOR_COLUMNS`:
    the Fisher test counts donors (see "Donors" above).
    Returns the columns :data:`RANKED_COLUMNS` (and :data:`DONOR_COLUMNS` with `donors`), sorted by score, then Fisher p, then mean attention
    in positives, then junction_aa (ties broken the same way every time); without positive repertoires, by the
    negatives' evidence, then their mean attention. `family` groups the first rows' near-identical sequences
    (:mod:`deeprc_hopfield.interpret.families`).
    """
    from scipy.stats import hypergeom

    out = table.copy()
    counted = [f"{column}_{suffix}" for column in ("n", "attended") for suffix in ("positive", "negative")]
    by_donor = DONOR_COLUMNS if donors is not None else []
    for column in counted + by_donor:
        out[column] = out[column].fillna(0).astype(np.int64)
    out["n_repertoires"] = out["n_positive"] + out["n_negative"]
    out["score"] = out["evidence_positive"] - out["evidence_negative"]
    for suffix in ("positive", "negative"):
        n = out[f"n_{suffix}"]
        out[f"mean_attention_{suffix}"] = (out[f"attention_{suffix}"] / n).where(n > 0)
    units = (n_positive, n_negative) if donors is None else donors
    unit = "donors_" if by_donor else ""  # the test counts donors where the ranking has them
    a, c = (out[f"attended_{unit}{side}"] for side in ("positive", "negative"))
    b, d = units[0] - a, units[1] - c
    out["log_odds_ratio"] = np.log((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5)))
    # P(X >= a), X ~ hypergeometric(all units, positive units, attending units); computed once
    # per distinct (a, a + c), of which there are few
    pairs = pd.DataFrame({"a": a, "t": a + c}).drop_duplicates()
    p = hypergeom.sf(pairs["a"] - 1, sum(units), units[0], pairs["t"])
    lookup = pd.Series(p, index=pd.MultiIndex.from_frame(pairs))
    out["fisher_p"] = lookup.reindex(pd.MultiIndex.from_arrays([a, a + c])).to_numpy()
    if n_positive:
        out = out.sort_values(["score", "fisher_p", "mean_attention_positive", "junction_aa"],
                              ascending=[False, True, False, True], na_position="last", kind="stable")
    else:  # negatives alone: every score is <= 0, so what they attend most leads, not the ties at 0
        out = out.sort_values(["evidence_negative", "mean_attention_negative", "junction_aa"],
                              ascending=[False, False, True], na_position="last", kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    out["family"], out["family_size"] = sequence_families(out["junction_aa"], out["v_call"])
    known = [c for c in KNOWN_COLUMNS if c in out.columns]  # a merged ranking keeps its marks
    after = RANKED_COLUMNS.index("attended_negative") + 1
    return out[RANKED_COLUMNS[:after] + by_donor + RANKED_COLUMNS[after:] + known].reset_index(drop=True)
