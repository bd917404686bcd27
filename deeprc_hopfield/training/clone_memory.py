"""Filling the clone memory: the public clones that the public-clone test associates with positives.

The clone rule (V level of the key, match radius; `deeprc_hopfield.clone_rules`) and the test's p
threshold are chosen by inner cross-validation on the fitting repertoires, and the clones stored are
those the test then finds on all fitting repertoires. The validation repertoires play no part in
that choice, so they judge it honestly: the memory is used only when the test reaches
`clone_memory_min_auc` both in inner CV and, with the clones it stored, on the validation
repertoires; and they later judge the trained model against its memory alone (`selection`). When
they choose the memory alone, its clones are chosen again, the same way, on all training
repertoires (`refit_clone_memory`; `clone_refit`), so that the test sees every training carrier; and
where the fitting repertoires leave it empty, the memory chosen on all training repertoires may still
replace the trained model (`Trainer._memory_of_all_training`).
The held-out fold is never read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from deeprc_hopfield.clone_rules import (AUTO, KEYED_ROWS_BYTES, CloneRule, KeyedRows, RuleChoice, choose_clone_rule,
                                         clone_rules, clone_sequences, each_cohort_clones, pgen_for)
from deeprc_hopfield.encoding import encode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.metrics import significantly_higher
from deeprc_hopfield.model.batch import SequenceBags
from deeprc_hopfield.model.memory import ReceptorMemory
from deeprc_hopfield.model.reference import clone_memory, store_clones
from deeprc_hopfield.public_clones import FitCandidates, groups_at, min_carriers, positive_rows
from deeprc_hopfield.shared_clones import SharedClones
from deeprc_hopfield.sampling import RepertoireCache
from deeprc_hopfield.training.config import TrainingConfig

log = logging.getLogger(__name__)


@dataclass
class MemoryFit:
    """What training stores in the clone memory and how it starts.

    clones: (CDR3, V index; -1 = unknown) of each stored clone; rule: how they match; carried: float
    (n_store,), the distinct stored clones of each fitting repertoire as the test found them without
    it (inner CV; 0 elsewhere); validation_carried: the same, counted by the memory's own matching,
    for the validation repertoires; weight, intercept: a class-balanced logistic regression of the
    label on log1p(carried) over the fitting repertoires (the memory's evidence weight and the first
    task's bias to start from); hidden: bool (n_store, n_clones), for each fitting repertoire the stored
    clones that its own label helped choose (the inner fold that left it out did not associate them;
    False elsewhere), which training does not let its samples see: to a fitting positive they would be
    evidence chosen for it, and the model would learn to trust them more than new repertoires warrant.
    """

    clones: list[tuple[str, int]]
    carried: np.ndarray
    validation_carried: np.ndarray
    weight: float
    intercept: float
    rule: CloneRule = field(default_factory=CloneRule)
    hidden: np.ndarray | None = None

    def names(self, v_genes: list[str]) -> list[str]:
        """'CDR3 V-gene' (or the CDR3 alone where the V gene is unknown) of each clone."""
        return clone_names(self.clones, v_genes)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stored clones as a memory takes them: :func:`clone_tensors`."""
        return clone_tensors(self.clones)

    @property
    def width(self) -> int:
        """The longest stored junction (the model's `clone_width`)."""
        return max((len(junction) for junction, _ in self.clones), default=0)


def clone_names(clones: list[tuple[str, int]], v_genes: list[str]) -> list[str]:
    """'CDR3 V-gene' (or the CDR3 alone where the V gene is unknown) of each (CDR3, V index) clone."""
    return [f"{junction} {v_genes[v]}" if v >= 0 else junction for junction, v in clones]


def fit_clone_memory(cache: RepertoireCache, labels: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray,
                     config: TrainingConfig, v_genes: list[str], shared: SharedClones | None = None,
                     groups: np.ndarray | None = None) -> tuple[MemoryFit | None, dict | None]:
    """The clone memory of a binary task with store-wide `labels` (None when the cohort shows no such
    signal) and the clone rule chosen with its AUCs (None when no clone is shared). `shared`: a clones file
    holding the fitting repertoires' clones (else they are collected here); `groups` (store-wide, e.g. donors):
    kept whole in the inner folds."""
    started = time.perf_counter()
    try:
        choice, clones, clone_of_column = associated_clones(cache, labels, fit_idx, config, v_genes, shared=shared,
                                                            groups=groups)
    except DeepRCError as exc:
        log.info("clone memory: left empty (%s)", exc)
        return None, None
    test, rule = choice.test, choice.rule
    summary = {**choice.summary(), "validation_auc": 0.5, "used": False}
    if not clones:
        log.info("clone memory: left empty; the public-clone test associates no clone (%s)", rule)
        return None, summary
    matcher = clone_matcher(clones, v_genes, rule)
    validation_carried = np.array([carried_by(matcher, cache[int(i)]) for i in val_idx], dtype=np.float64)
    validation_auc = carried_auc(validation_carried, labels[val_idx])
    summary["validation_auc"] = round(validation_auc, 4)
    if min(test.inner_auc, validation_auc) < config.clone_memory_min_auc:
        log.info("clone memory: left empty; the public-clone test (%s) reaches AUC %.2f in inner CV on the "
                 "fitting repertoires and %.2f on the validation ones (needs %.2f on both)", rule, test.inner_auc,
                 validation_auc, config.clone_memory_min_auc)
        return None, summary
    summary["used"] = True
    # what training sees: each fitting repertoire's clones as the test found them without it (inner CV),
    # which the model's count equals; counted with the clones chosen on it, its positives would all look
    # like carriers
    carried = np.zeros(len(labels))
    carried[fit_idx] = test.out_of_fold
    weight, intercept = evidence_regression(carried[fit_idx], labels[fit_idx])
    hidden = np.zeros((len(labels), len(clones)), dtype=bool)
    hidden[fit_idx] = chosen_with_own_label(choice, clone_of_column, len(clones))
    named = clone_names(clones, v_genes)
    log.info("clone memory: %d public clones (%s; p < %g; AUC %.2f in inner CV, %.2f on validation) in %.1f s: %s",
             len(clones), rule, test.threshold, test.inner_auc, validation_auc, time.perf_counter() - started,
             ", ".join(named[:10]) + (" ..." if len(named) > 10 else ""))
    log.info("clone memory: evidence weight starts at %.2f per log1p(clone carried)", weight)
    log.info("clone memory: training samples see a stored clone only where the inner fold that left their "
             "repertoire out chose it too (%.1f of %d hidden per fitting repertoire)", hidden[fit_idx].sum(1).mean(),
             len(clones))
    return MemoryFit(clones, carried, validation_carried, weight, intercept, rule, hidden), summary


def refit_clone_memory(cache: RepertoireCache, labels: np.ndarray, train_idx: np.ndarray, config: TrainingConfig,
                       v_genes: list[str], radius: int, above_chance: bool = False,
                       shared: SharedClones | None = None, groups: np.ndarray | None = None
                       ) -> tuple[MemoryFit, dict] | None:
    """The clone memory chosen again, the same way, on all training repertoires `train_idx` (fitting and
    validation), once the validation repertoires have chosen the memory alone, or where the fitting
    repertoires left it empty: the test then sees every training carrier, as the `public_clones`
    baseline does. The V level, p threshold and pgen cutoff are chosen again among the rules of
    `radius` (the one the fitting repertoires chose: the one-substitution collection costs the most, so
    no other radius 1 is tried) and, where the config leaves the radius to the data, the exact rules (cheap;
    the fitting repertoires may have held too few carriers of rare exact clones). `carried` holds each training
    repertoire's clones found without it (inner CV), and the evidence regression is fitted on them.
    None (keep the first memory) when the refit associates no clone or its inner AUC falls below
    `clone_memory_min_auc`; with `above_chance` (where there is no first memory, and the validation
    repertoires then judge the refit against the trained model), when its out-of-fold counts do not rank
    the training repertoires significantly better than chance (one-sided DeLong test at 5%): a fixed bar
    would turn on the inner split's noise (about 0.05 in AUC between seeds on 120 repertoires)."""
    started = time.perf_counter()
    try:
        choice, clones, _ = associated_clones(cache, labels, train_idx, config, v_genes,
                                              clone_rules(config.clone_keys, AUTO if radius == 1 and
                                                          config.clone_radius == AUTO else radius), shared,
                                              groups)
    except DeepRCError as exc:
        log.info("clone memory refit: none (%s); the first memory is kept", exc)
        return None
    test, rule = choice.test, choice.rule
    passes = (significantly_higher(labels[train_idx], test.out_of_fold) if above_chance
              else test.inner_auc >= config.clone_memory_min_auc)
    if not clones or not passes:
        log.info("clone memory refit: %d clones, inner AUC %.2f (%s; needs %s); none kept", len(clones),
                 test.inner_auc, rule, "more than chance" if above_chance else f"{config.clone_memory_min_auc:.2f}")
        return None
    carried = np.zeros(len(labels))
    carried[train_idx] = test.out_of_fold
    weight, intercept = evidence_regression(carried[train_idx], labels[train_idx])
    summary = {**choice.summary(), "clones": len(clones), "repertoires": len(train_idx)}
    log.info("clone memory refit on all %d training repertoires: %d public clones (%s; p < %g; AUC %.2f in inner "
             "CV) in %.1f s; evidence weight %.2f", len(train_idx), len(clones), rule, test.threshold, test.inner_auc,
             time.perf_counter() - started, weight)
    return MemoryFit(clones, carried, np.zeros(0), weight, intercept, rule), summary


def associated_clones(cache: RepertoireCache, labels: np.ndarray, rows: np.ndarray, config: TrainingConfig,
                      v_genes: list[str], rules: tuple[CloneRule, ...] | None = None,
                      shared: SharedClones | None = None, groups: np.ndarray | None = None
                      ) -> tuple[RuleChoice, list[tuple[str, int]], dict[int, int]]:
    """The clone rule chosen by inner CV on the repertoires `rows` (store indices) among `rules` (default:
    those of the config), the (CDR3, V index) clones its test associates there, sorted, and the clone of
    each associated incidence column (column -> index in the clones). Raises `DeepRCError` when there is
    no rule to choose from. `shared`: a clones file that may hold these repertoires' clones (the same as
    collecting them here, which is done where it does not); `groups` (store-wide): kept whole in the inner folds."""
    rules = clone_rules(config.clone_keys, config.clone_radius) if rules is None else rules
    own = groups_at(groups, rows)
    candidates = shared.clones(rows, rules) if shared is not None else None
    if candidates is None:
        candidates = each_cohort_clones(cache.rows(rows), v_genes, rules,
                                        min_carriers=min_carriers(labels[rows], config.seed, groups=own),
                                        positives=positive_rows(labels[rows]),
                                        candidates=FitCandidates(labels[rows], config.seed, groups=own),
                                        workers=torch.get_num_threads())
    of_row = KeyedRows(lambda row: cache[int(rows[row])],  # the incidence's rows are `rows`: each keyed once
                       KEYED_ROWS_BYTES if config.clone_pgen else 0)  # without pgen only the memory's clones read them
    choice = choose_clone_rule(candidates, labels[rows], config.seed,
                               pgen_for(of_row, v_genes, config.clone_pgen, workers=torch.get_num_threads(),
                                        species=cache.store.species),
                               expected=len(rules), pgen_limit=config.clone_pgen_limit, groups=own)
    associated = choice.test.associated
    if len(associated) == 0:
        return choice, [], {}
    keys = choice.clones.keys[associated]
    found = clone_sequences(of_row, choice.clones.incidence[:, associated], keys, v_genes, choice.rule.v_level)
    clones = sorted(set(found.values()))
    position = {clone: i for i, clone in enumerate(clones)}
    return choice, clones, {int(column): position[found[int(key)]] for column, key in zip(associated, keys)
                            if int(key) in found}


def chosen_with_own_label(choice: RuleChoice, clone_of_column: dict[int, int], n_clones: int) -> np.ndarray:
    """bool (incidence rows, n_clones): the stored clones (`clone_of_column`: associated column -> clone)
    that each row's inner fold, fitted without it, did not associate: chosen with its own label."""
    hidden = np.ones((choice.clones.incidence.shape[0], n_clones), dtype=bool)
    for rows, columns in choice.test.inner_associated_:
        seen = [clone_of_column[int(c)] for c in columns if int(c) in clone_of_column]
        hidden[np.ix_(rows, seen)] = False
    return hidden


def clone_tensors(clones: list[tuple[str, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(flat residue codes, lengths, V indices), long where not codes, of (CDR3, V index) clones."""
    codes, lengths = encode([junction for junction, _ in clones])
    return (torch.from_numpy(codes), torch.from_numpy(lengths.astype(np.int64)),
            torch.tensor([v for _, v in clones], dtype=torch.long))


def clone_matcher(clones: list[tuple[str, int]], v_genes: list[str], rule: CloneRule) -> ReceptorMemory:
    """A clone memory holding `clones` (one attention head), to count what a repertoire carries the way the
    model will."""
    codes, lengths, v_index = clone_tensors(clones)
    memory = clone_memory(len(clones), 1, len(v_genes), rule.radius, int(lengths.max()) if len(lengths) else 0)
    store_clones(memory, codes, lengths, v_index, v_genes, rule.v_level)
    return memory


def carried_by(matcher: ReceptorMemory, repertoire) -> int:
    """Distinct clones of `matcher` that a store `Repertoire` carries, counted as the model counts them."""
    bags = SequenceBags.from_arrays(repertoire.codes, repertoire.lengths, v_index=repertoire.v_index)
    return int(matcher.carried(matcher.lookup(bags.codes, bags.lengths, bags.v_index), bags)[0])


def evidence_regression(carried: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(weight, intercept) of a class-balanced logistic regression of the label on log1p(`carried`), so
    that the clones explain the positives from the first update and the CNN is not pushed to
    memorise them one by one."""
    fit = LogisticRegression(C=1.0, class_weight="balanced").fit(np.log1p(carried)[:, None], labels)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def carried_auc(carried: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of clones-carried counts; 0.5 when they or the labels do not vary."""
    if np.ptp(carried) == 0 or len(np.unique(labels)) < 2:
        return 0.5
    return float(roc_auc_score(labels, carried))
