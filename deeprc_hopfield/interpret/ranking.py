"""Cohort-level ranking of the sequences that the model's attention ties to the positive class.

**Relative attention.** A repertoire's attention weights are a softmax over its sequences: they sum
to 1 whatever its size, so a weight means nothing across repertoires as it is. Each sequence gets
its *relative attention* w = attention x n (n = sequences of its repertoire): w = 1 is what uniform
attention would give every sequence, w = 20 twenty times that. An ensemble's attention is the mean
over its models (as `attend` reports it).

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
receptors are private) still ranks by the strength of its one occurrence. "Positive" is the store's
label of the repertoire, or, where the store has no such label, the model's call (P >= 0.5).

**Enrichment.** Beside the score, `attended_positive`/`attended_negative` count the repertoires
of each label that attend the sequence above uniform (w > 1); `fisher_p` is the one-sided Fisher
exact test of that 2 x 2 table against all interpreted repertoires (the hypergeometric chance of at
least as many attending positives), and `log_odds_ratio` its log odds ratio with 0.5 added to each
cell. A private sequence cannot reach significance (one repertoire is all there is), which is why
these describe the ranking rather than make it.

**Memory.** Every sequence of the interpreted repertoires is kept as a 64-bit key of (junction_aa,
V, J) (`deeprc_hopfield.public_clones.clone_keys`), its repertoire and its w: 16 bytes a sequence
(5 MB for 60 x 5,000; 3.4 GB for 700 x 300,000). Only the `per_repertoire` most-attended sequences of each repertoire enter the ranking as
candidates, but their counts and means cover all their occurrences.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from deeprc_hopfield.encoding import decode
from deeprc_hopfield.infer import Subject, score_repertoire
from deeprc_hopfield.interrupts import raise_if_interrupted
from deeprc_hopfield.public_clones import repertoire_keys
from deeprc_hopfield.saved_model import SavedModel

log = logging.getLogger(__name__)

KEY_COLUMNS = ["junction_aa", "v_call", "j_call"]
#: Columns of ranked_sequences.tsv, in order.
RANKED_COLUMNS = ["rank", *KEY_COLUMNS, "score", "n_repertoires", "n_positive", "n_negative", "attended_positive",
                  "attended_negative", "mean_attention_positive", "mean_attention_negative", "evidence_positive",
                  "evidence_negative", "log_odds_ratio", "fisher_p", "top_repertoire", "top_attention",
                  "top_duplicate_count"]


@dataclass
class AttentionPass:
    """What one pass of the model over the interpreted repertoires leaves for the ranking.

    key, repertoire, weight: one entry per sequence of every repertoire: int64 key of (junction_aa,
    V, J), index into `repertoires`, relative attention w (float32). candidates: the most-attended
    sequences of each repertoire (key, junction_aa, v_call, j_call, repertoire, weight,
    duplicate_count). repertoires: subject_id, positive (bool), probability (the model's P(positive)),
    n_sequences, one row per repertoire.
    """

    key: np.ndarray
    repertoire: np.ndarray
    weight: np.ndarray
    candidates: pd.DataFrame
    repertoires: pd.DataFrame
    label_source: set[str] = field(default_factory=set)


def _name_index(names: np.ndarray, index: dict[object, int]) -> np.ndarray:
    """Cohort-wide index of each gene name, int64 (n,), -1 where there is none (None, NaN); names new
    to `index` are added to it."""
    codes, uniques = pd.factorize(np.asarray(names, dtype=object))
    known = np.array([index.setdefault(name, len(index)) for name in uniques] + [-1], dtype=np.int64)
    return known[codes]


def collect_attention(models: list[SavedModel], subjects: Iterable[Subject], device: torch.device,
                      label: str, positive_class: str, per_repertoire: int = 1000) -> AttentionPass:
    """Run the model(s) over whole repertoires and keep every sequence's relative attention.

    Parameters
    ----------
    models
        One model or a fold ensemble (attention averaged over models, highest head of each).
    subjects
        The repertoires to interpret, e.g. from :func:`deeprc_hopfield.infer.subjects_from_store`.
    label, positive_class
        The binary label and its positive class name; a repertoire is positive when its true label
        (the store's) is that class, or, without a true label, when the model's P(positive) >= 0.5.
    per_repertoire
        Sequences of each repertoire, the most attended, that become ranking candidates.
    """
    keys, owners, weights, candidates, rows = [], [], [], [], []
    sources: set[str] = set()
    v_genes: dict[object, int] = {}  # gene names -> indices shared by all repertoires, for the keys
    j_genes: dict[object, int] = {}
    for index, subject in enumerate(subjects):
        scores, attention = score_repertoire(models, subject.repertoire, device, attention=True)
        rep = subject.repertoire
        n = len(rep)
        w = (attention.double().numpy() * n).astype(np.float32)  # (n,) relative attention
        key = repertoire_keys(rep, v_index=_name_index(subject.v_names, v_genes),
                              j_index=_name_index(subject.j_names, j_genes))
        probability = float(scores[label].mean(axis=0)[0])
        truth = subject.truth.get(label)
        if truth is None:
            positive, source = probability >= 0.5, "predicted"
        else:
            positive, source = str(truth) == positive_class, "store"
        sources.add(source)
        top = np.argsort(-w, kind="stable")[:per_repertoire]
        picked = rep.subset(top)
        candidates.append(pd.DataFrame({"junction_aa": decode(picked.codes, picked.lengths),
                                        "v_call": subject.v_names[top], "j_call": subject.j_names[top],
                                        "key": key[top], "repertoire": index, "weight": w[top],
                                        "duplicate_count": rep.counts[top]}))
        keys.append(key)
        owners.append(np.full(n, index, dtype=np.int32))
        weights.append(w)
        rows.append({"subject_id": subject.subject_id, "positive": positive, "probability": probability,
                     "n_sequences": n})
        raise_if_interrupted()
    if not rows:
        raise ValueError("no repertoire to interpret")
    log.info("attention of %d sequences in %d repertoires", sum(map(len, keys)), len(rows))
    return AttentionPass(np.concatenate(keys), np.concatenate(owners), np.concatenate(weights),
                         pd.concat(candidates, ignore_index=True), pd.DataFrame(rows), sources)


def rank_sequences(attention: AttentionPass) -> pd.DataFrame:
    """The cohort ranking (columns :data:`RANKED_COLUMNS`), most disease-associated first.

    Every candidate sequence is scored over all its occurrences (see the module docstring).
    """
    reps = attention.repertoires
    candidates = attention.candidates
    # the occurrence of each candidate with the highest attention names it and its top repertoire
    best = candidates.sort_values("weight", ascending=False, kind="stable").drop_duplicates("key")
    mask = np.isin(attention.key, best["key"].to_numpy())
    w = attention.weight[mask].astype(np.float64)
    occurrences = pd.DataFrame({"key": attention.key[mask],
                                "positive": reps["positive"].to_numpy()[attention.repertoire[mask]],
                                "weight": w, "attended": w > 1, "evidence": np.log2(np.maximum(w, 1.0))})
    stats = counts_by_label(occurrences)
    table = best.set_index("key")[KEY_COLUMNS].join(stats)
    table["top_repertoire"] = reps["subject_id"].to_numpy()[best["repertoire"].to_numpy()]
    table["top_attention"] = best["weight"].to_numpy()
    table["top_duplicate_count"] = best["duplicate_count"].to_numpy()
    n_positive = int(reps["positive"].sum())
    return finish_ranking(table.reset_index(drop=True), n_positive, len(reps) - n_positive)


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


def finish_ranking(table: pd.DataFrame, n_positive: int, n_negative: int) -> pd.DataFrame:
    """Score, means, Fisher test and order of a table of per-sequence sums by label.

    `table` holds the key columns, n_/attended_/attention_/evidence_ + positive/negative (sums over
    occurrences) and the top_* columns; `n_positive`/`n_negative` count the interpreted repertoires.
    Returns the columns :data:`RANKED_COLUMNS`, sorted by score, then Fisher p, then mean attention
    in positives, then junction_aa (ties broken the same way every time).
    """
    from scipy.stats import hypergeom

    out = table.copy()
    for column in ("n", "attended"):
        for suffix in ("positive", "negative"):
            out[f"{column}_{suffix}"] = out[f"{column}_{suffix}"].astype(np.int64)
    out["n_repertoires"] = out["n_positive"] + out["n_negative"]
    out["score"] = out["evidence_positive"] - out["evidence_negative"]
    for suffix in ("positive", "negative"):
        n = out[f"n_{suffix}"]
        out[f"mean_attention_{suffix}"] = (out[f"attention_{suffix}"] / n).where(n > 0)
    a, c = out["attended_positive"], out["attended_negative"]
    b, d = n_positive - a, n_negative - c
    out["log_odds_ratio"] = np.log((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5)))
    # P(X >= a), X ~ hypergeometric(all repertoires, positives, attending repertoires); computed once
    # per distinct (a, a + c), of which there are few
    pairs = pd.DataFrame({"a": a, "t": a + c}).drop_duplicates()
    p = hypergeom.sf(pairs["a"] - 1, n_positive + n_negative, n_positive, pairs["t"])
    lookup = pd.Series(p, index=pd.MultiIndex.from_frame(pairs))
    out["fisher_p"] = lookup.reindex(pd.MultiIndex.from_arrays([a, a + c])).to_numpy()
    out = out.sort_values(["score", "fisher_p", "mean_attention_positive", "junction_aa"],
                          ascending=[False, True, False, True], na_position="last", kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    return out[RANKED_COLUMNS].reset_index(drop=True)
