"""Public clones: one key per clone, the incidence of shared clones, and the Emerson et al. 2017 test.

A *clone* is a CDR3 (`junction_aa`) with its V gene. :func:`clone_keys` is the one function that
keys clones for the public-clone baseline, the model's clone memory and the interpretation's
ranking: a 62-bit key from two polynomial hashes of the residue codes modulo primes below 2**31,
computed without overflow in int64 (torch, so the memory keys sequences on the model's device, the
same on CPU and GPU). A sequence without a V gene keys as its CDR3 alone, which is distinct from
the same CDR3 with any known V. An optional J gene enters the same way (the ranking keys
(junction_aa, V, J)).

The test (:class:`PublicCloneTest`): each clone shared by two repertoires or more gets a one-sided
Fisher's exact test of enrichment in the positive repertoires; the clones with p below a threshold
are *associated*, and a repertoire's score is the number of associated clones it carries (not
divided by its size). The threshold is chosen from :data:`P_THRESHOLDS` by inner cross-validation
(ROC AUC), and the score is turned into a probability by a logistic fit of the inner out-of-fold
scores (as a share of the associated clones), so 0.5 is a usable threshold.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy import sparse
from scipy.stats import hypergeom
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from deeprc_hopfield.errors import DeepRCError

log = logging.getLogger(__name__)

MODULI = (2_147_483_647, 2_147_483_629)  # primes below 2**31: a product of two residues fits int64
MULTIPLIERS = (1_000_003, 999_983)
GENE_FACTORS = (1_234_567_891, 987_654_323)  # how the V and the J gene enter a key (times their index + 1)
#: Fisher p-value thresholds tried by the inner cross-validation of the public-clone test.
P_THRESHOLDS = (1e-2, 1e-3, 1e-4, 1e-5)
INNER_FOLDS = 5


# --- keys ----------------------------------------------------------------------------------------
def _powers(multiplier: int, modulus: int, n: int, device: torch.device) -> torch.Tensor:
    """multiplier**j mod modulus for j < n, long (n,)."""
    out, value = [], 1
    for _ in range(n):
        out.append(value)
        value = value * multiplier % modulus
    return torch.tensor(out, dtype=torch.long, device=device)


def clone_keys(codes: torch.Tensor, lengths: torch.Tensor, v_index: torch.Tensor | None = None,
               j_index: torch.Tensor | None = None) -> torch.Tensor:
    """One int64 key per sequence, on the device of `codes`: equal (CDR3, V, J) get equal keys,
    distinct ones collide with probability about 2**-62.

    Parameters
    ----------
    codes
        Residue codes 1..20 of all sequences concatenated, (n_residues,).
    lengths
        (n,) sequence lengths.
    v_index, j_index
        (n,) gene indices, -1 (or None for all) = unknown. An unknown gene adds nothing to the key:
        a clone of unknown V keys as its CDR3 alone; without `j_index` the key is that of (CDR3, V).

    Returns
    -------
    long (n,).
    """
    lengths = lengths.long()
    n = lengths.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=codes.device)
    sequence = torch.repeat_interleave(torch.arange(n, device=codes.device), lengths)  # (R,)
    position = torch.arange(sequence.shape[0], device=codes.device) - (torch.cumsum(lengths, 0) - lengths)[sequence]
    residues = codes.long()
    genes = [(g.long() + 1).clamp(min=0) if g is not None else None for g in (v_index, j_index)]  # 0 = unknown
    key = torch.zeros(n, dtype=torch.long, device=codes.device)
    for multiplier, modulus in zip(MULTIPLIERS, MODULI):
        power = _powers(multiplier, modulus, int(lengths.max()), codes.device)
        terms = residues * power[position] % modulus  # (R,) each < 2**31
        h = torch.zeros(n, dtype=torch.long, device=codes.device).index_add_(0, sequence, terms)  # < 2**31 * length
        h = (h + lengths) % modulus
        for gene, factor in zip(genes, GENE_FACTORS):
            if gene is not None:
                h = h + gene * (factor % modulus) % modulus  # each term < 2**31
        key = key * (1 << 31) + h % modulus
    return key


def repertoire_keys(repertoire, chunk: int = 1 << 16, v_index: np.ndarray | None = None,
                    j_index: np.ndarray | None = None) -> np.ndarray:
    """:func:`clone_keys` of every sequence of a store `Repertoire` (codes, lengths, v_index), int64 (n,),
    computed on the CPU `chunk` sequences at a time.

    `v_index`/`j_index` (n,), where given, replace the repertoire's V genes and add J genes (e.g. a
    cohort-wide index of gene names); by default the key is the clone's, (CDR3, repertoire.v_index).
    """
    lengths = np.asarray(repertoire.lengths, dtype=np.int64)
    genes = [np.asarray(g, dtype=np.int64) if g is not None else None
             for g in (repertoire.v_index if v_index is None else v_index, j_index)]
    ends = np.cumsum(lengths)
    out = []
    for start in range(0, len(lengths), chunk):
        stop = min(start + chunk, len(lengths))
        first, last = int(ends[start] - lengths[start]), int(ends[stop - 1])
        v, j = (torch.from_numpy(g[start:stop]) if g is not None else None for g in genes)
        out.append(clone_keys(torch.from_numpy(np.asarray(repertoire.codes[first:last])),
                              torch.from_numpy(lengths[start:stop]), v, j).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def clone_incidence(keys: list[np.ndarray]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Repertoire-by-clone presence matrix of the clones shared by two repertoires or more, and
    their keys (one per column, sorted).

    `keys` holds each repertoire's distinct clone keys. Memory stays near one copy of all keys: the
    shared keys are found on one sorted copy, then each repertoire is looked up in them.
    """
    everything = np.concatenate(keys)
    everything.sort()
    shared = np.unique(everything[1:][everything[1:] == everything[:-1]])
    del everything
    rows, columns = [], []
    for i, k in enumerate(keys):
        position = np.minimum(np.searchsorted(shared, k), max(len(shared) - 1, 0))
        hit = shared[position] == k if len(shared) else np.zeros(len(k), dtype=bool)
        columns.append(position[hit])
        rows.append(np.full(int(hit.sum()), i, dtype=np.int64))
    row, column = np.concatenate(rows), np.concatenate(columns)
    matrix = sparse.csr_matrix((np.ones(len(row), dtype=bool), (row, column)), shape=(len(keys), len(shared)))
    return matrix, shared


# --- the test ------------------------------------------------------------------------------------
def inner_cv(y: np.ndarray, seed: int, folds: int = INNER_FOLDS) -> StratifiedKFold:
    """Stratified inner cross-validation over the training repertoires (class codes `y`), with fewer
    folds where the smallest class has fewer than `folds` repertoires."""
    smallest = int(np.bincount(y, minlength=2).min())
    if smallest < 2:
        raise DeepRCError("a training part has fewer than 2 repertoires of a class: too few for inner "
                          "cross-validation; use fewer folds")
    return StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)


def fisher_enrichment(clones: sparse.csr_matrix, y: np.ndarray) -> np.ndarray:
    """One-sided Fisher's exact p-value of each clone's enrichment in the positive repertoires.

    p = P(X >= a) for X hypergeometric (population: the repertoires; successes: the positives;
    draws: the clone's carriers) and a the positive carriers. Shape (n_clones,).
    """
    carriers = np.asarray(clones.sum(axis=0)).ravel()
    positive = np.asarray(clones[y == 1].sum(axis=0)).ravel()
    return hypergeom.sf(positive - 1, len(y), int(y.sum()), carriers)


def _associated(clones: sparse.csr_matrix, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fisher p-values of the clones that some training positive carries, and their columns."""
    present = np.flatnonzero(np.asarray(clones[y == 1].sum(axis=0)).ravel() > 0)
    return fisher_enrichment(clones[:, present], y), present


class PublicCloneTest(ClassifierMixin, BaseEstimator):
    """The public-clone test (Emerson et al. 2017) as a scikit-learn classifier of repertoires.

    `X` is a bool repertoire-by-clone incidence matrix (n_repertoires, n_clones), e.g. from
    :func:`clone_incidence`; `y` (n_repertoires,) two classes, the second (in sorted order) positive.

    Parameters
    ----------
    thresholds
        Fisher p-value thresholds tried by the inner cross-validation.
    inner_folds
        Inner folds (fewer where a class is smaller).
    random_state
        Seed of the inner folds.

    Fitted attributes
    -----------------
    associated_ : int64 (n_associated,), the columns of the associated clones (found on all of X);
    threshold_ : the chosen p threshold; inner_aucs_ : (n_thresholds,) inner-CV ROC AUC of each;
    inner_auc_ : that of the chosen one; out_of_fold_ : float64 (n_repertoires,), each training
    repertoire's number of associated clones at that threshold, chosen without it (inner CV);
    calibration_ : the logistic map from the share of associated clones carried to a probability
    (None where the inner scores are all equal; then base_rate_, the share of positives, is it);
    classes_. `associated`, `threshold`, `inner_auc`, `out_of_fold` are the same without the `_`.
    """

    def __init__(self, thresholds: tuple[float, ...] = P_THRESHOLDS, inner_folds: int = INNER_FOLDS,
                 random_state: int = 0) -> None:
        self.thresholds = thresholds
        self.inner_folds = inner_folds
        self.random_state = random_state

    def fit(self, X: sparse.csr_matrix, y: np.ndarray) -> "PublicCloneTest":
        """Choose the p threshold by inner CV (ROC AUC of the associated-clone count), then find the
        associated clones on all of (X, y) and calibrate the score on the inner out-of-fold scores."""
        X = sparse.csr_matrix(X)
        self.classes_, y = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) != 2:
            raise DeepRCError(f"the public-clone test needs two classes, got {len(self.classes_)}")
        thresholds = tuple(self.thresholds)
        shares = np.zeros((len(thresholds), len(y)))
        counts = np.zeros((len(thresholds), len(y)))
        for inner_train, inner_test in inner_cv(y, self.random_state, self.inner_folds).split(np.zeros(len(y)), y):
            p, columns = _associated(X[inner_train], y[inner_train])
            carried = X[inner_test][:, columns]
            for t, threshold in enumerate(thresholds):
                chosen = p < threshold
                counts[t, inner_test] = np.asarray(carried[:, chosen].sum(axis=1)).ravel()
                shares[t, inner_test] = counts[t, inner_test] / max(int(chosen.sum()), 1)
        self.inner_aucs_ = np.array([roc_auc_score(y, s) if np.ptp(s) > 0 else 0.5 for s in shares])
        best = int(np.argmax(self.inner_aucs_))
        p, columns = _associated(X, y)
        self.threshold_ = thresholds[best]
        self.associated_ = columns[p < self.threshold_]
        self.inner_auc_ = float(self.inner_aucs_[best])
        self.out_of_fold_ = counts[best]
        self.base_rate_ = float(y.mean())
        self.calibration_ = (LogisticRegression(C=1e4).fit(shares[best][:, None], y) if np.ptp(shares[best]) > 0
                             else None)
        self.n_features_in_ = X.shape[1]
        log.debug("public clones: inner AUC %s per threshold %s; %d associated clones at p < %g",
                  np.round(self.inner_aucs_, 3).tolist(), thresholds, len(self.associated_), self.threshold_)
        return self

    def decision_function(self, X: sparse.csr_matrix) -> np.ndarray:
        """Number of associated clones each repertoire carries, float64 (n,)."""
        check_is_fitted(self)
        return np.asarray(sparse.csr_matrix(X)[:, self.associated_].sum(axis=1)).ravel().astype(np.float64)

    def predict_proba(self, X: sparse.csr_matrix) -> np.ndarray:
        """Probabilities of the two classes, (n, 2), from the share of associated clones carried."""
        check_is_fitted(self)
        if self.calibration_ is None:
            positive = np.full(X.shape[0], self.base_rate_)
        else:
            share = self.decision_function(X) / max(len(self.associated_), 1)
            positive = self.calibration_.predict_proba(share[:, None])[:, 1]
        return np.column_stack([1 - positive, positive])

    def predict(self, X: sparse.csr_matrix) -> np.ndarray:
        """The class of each repertoire: the positive one where its probability is 0.5 or more."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    @property
    def associated(self) -> np.ndarray:
        return self.associated_

    @property
    def threshold(self) -> float:
        return self.threshold_

    @property
    def inner_auc(self) -> float:
        return self.inner_auc_

    @property
    def out_of_fold(self) -> np.ndarray:
        return self.out_of_fold_


def fit_public_clones(incidence: sparse.csr_matrix, y: np.ndarray, seed: int = 0) -> PublicCloneTest:
    """:class:`PublicCloneTest` with the default thresholds, inner folds seeded by `seed`, fitted on (incidence, y)."""
    return PublicCloneTest(random_state=seed).fit(incidence, y)
