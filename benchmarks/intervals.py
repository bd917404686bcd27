"""Benchmark: do the ROC AUC intervals `evaluate` writes cover the true AUC as often as they say?

`metrics.tsv`'s `roc_auc_low`/`roc_auc_high` are 95% intervals: the wider at each end of DeLong's logit interval
(Obuchowski's clustered error for a split of groups: several samples a donor) and Newcombe's score interval. This script draws many small cohorts of
scores whose true AUC is known (a binormal model: a positive's score is a normal shifted by `shift`, plus a donor
effect shared by a donor's samples) and counts how often each interval holds the true AUC, beside the simple
reference way (DeLong's error, a symmetric interval clipped to [0, 1]) and `evaluate`'s interval without its
donors (as for a split without groups). Cohorts are shaped unlike our simulator's: few subjects (10 a class), an AUC near 1, unequal classes, and
donors of 1 to 4 samples whose samples share much of their score.

    python benchmarks/intervals.py [--replicates 2000] [--seed 0] [--json benchmarks/results/intervals.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm

from deeprc_hopfield.metrics import INTERVAL_LEVEL, _score_interval, auc_interval, paired_auc_difference


@dataclass(frozen=True)
class Cohort:
    """A kind of cohort: donors a class, samples a donor (a range, drawn per donor), the positives' shift of the
    score and the share of a sample's score variance that its donor gives (0: samples independent)."""

    name: str
    positive_donors: int
    negative_donors: int
    samples: tuple[int, int]
    shift: float
    donor_share: float

    def true_auc(self) -> float:
        """P(positive sample > negative sample) of two samples of different donors: binormal, unit variance."""
        return float(norm.cdf(self.shift / np.sqrt(2.0)))

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels, scores and donor ids of one cohort."""
        labels, donors = [], []
        for donor, label in enumerate([1] * self.positive_donors + [0] * self.negative_donors):
            k = int(rng.integers(self.samples[0], self.samples[1] + 1))
            labels += [label] * k
            donors += [donor] * k
        labels, donors = np.array(labels), np.array(donors)
        effect = rng.normal(size=donors.max() + 1)[donors]
        noise = rng.normal(size=len(labels))
        scores = self.shift * labels + np.sqrt(self.donor_share) * effect + np.sqrt(1 - self.donor_share) * noise
        return labels, scores, donors


COHORTS = (
    Cohort("independent, 10 a class, AUC 0.76", 10, 10, (1, 1), 1.0, 0.0),
    Cohort("independent, 40 a class, AUC 0.76", 40, 40, (1, 1), 1.0, 0.0),
    Cohort("independent, 10 a class, AUC 0.96", 10, 10, (1, 1), 2.5, 0.0),
    Cohort("independent, 40 a class, AUC 0.96", 40, 40, (1, 1), 2.5, 0.0),
    Cohort("independent, 8 vs 60, AUC 0.86", 8, 60, (1, 1), 1.5, 0.0),
    Cohort("donors of 1-4 samples sharing 60%, 12 a class, AUC 0.86", 12, 12, (1, 4), 1.5, 0.6),
    Cohort("donors of 3 samples sharing 80%, 25 a class, AUC 0.76", 25, 25, (3, 3), 1.0, 0.8),
    Cohort("donors of 2 samples sharing 30%, 40 a class, AUC 0.86", 40, 40, (2, 2), 1.5, 0.3),
)


def wald_interval(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The simple reference: AUC ± 1.96 DeLong standard errors, clipped to [0, 1]."""
    gain, se = paired_auc_difference(labels, np.zeros(len(labels)), scores)
    half = norm.ppf(0.5 + INTERVAL_LEVEL / 2) * se
    return max(0.0, 0.5 + gain - half), min(1.0, 0.5 + gain + half)


def newcombe_interval(labels: np.ndarray, scores: np.ndarray, donors: np.ndarray) -> tuple[float, float]:
    """Newcombe's score interval alone (one half of `evaluate`'s), on the donors' counts."""
    auc = 0.5 + paired_auc_difference(labels, np.zeros(len(labels)), scores)[0]
    positives, negatives = (len(np.unique(donors[side])) for side in (labels == 1, labels == 0))
    return _score_interval(auc, positives, negatives, INTERVAL_LEVEL)


def coverage(cohort: Cohort, replicates: int, rng: np.random.Generator) -> dict:
    """How often each interval holds the true AUC, its median width, and how often it is undefined or one point."""
    truth = cohort.true_auc()
    methods = {"wald_delong": [], "newcombe_by_donor": [], "evaluate_donors_ignored": [], "evaluate_by_donor": []}
    for _ in range(replicates):
        labels, scores, donors = cohort.draw(rng)
        methods["wald_delong"].append(wald_interval(labels, scores))
        methods["newcombe_by_donor"].append(newcombe_interval(labels, scores, donors))
        methods["evaluate_donors_ignored"].append(auc_interval(labels, scores))
        methods["evaluate_by_donor"].append(auc_interval(labels, scores, clusters=donors))
    result = {"cohort": cohort.name, "true_auc": round(truth, 4), **asdict(cohort)}
    for name, intervals in methods.items():
        bounds = np.array(intervals, dtype=np.float64)
        defined = np.isfinite(bounds).all(axis=1)
        held = (bounds[defined, 0] <= truth) & (truth <= bounds[defined, 1])
        result[name] = {"coverage": round(float(held.mean()), 4), "median_width": round(float(
            np.median(bounds[defined, 1] - bounds[defined, 0])), 4), "undefined": int((~defined).sum()),
            "one_point": int((bounds[defined, 0] == bounds[defined, 1]).sum())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=2000, help="cohorts drawn per kind (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    rows = [coverage(cohort, args.replicates, rng) for cohort in COHORTS]
    print(f"95% intervals of the ROC AUC: share of {args.replicates} cohorts whose interval holds the true AUC "
          "(median width; one-point intervals)")
    print(f"{'cohort':58s} {'Wald DeLong':>22s} {'Newcombe alone':>22s} {'ours, donors ignored':>22s} "
          f"{'evaluate (by donor)':>22s}")
    for row in rows:
        cells = [f"{row[m]['coverage']:.3f} ({row[m]['median_width']:.3f}; {row[m]['one_point']})"
                 for m in ("wald_delong", "newcombe_by_donor", "evaluate_donors_ignored", "evaluate_by_donor")]
        print(f"{row['cohort']:58s} " + " ".join(f"{c:>22s}" for c in cells))
    print(f"{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"command": "python benchmarks/intervals.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if v is not None), "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
