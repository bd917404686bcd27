"""The public-clone path keeps only sequences whose clone can be shared (issue 14, item 2), with the
same clones as collecting every sequence."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import junction_repertoire, random_junctions
from scipy import sparse

from deeprc_hopfield.clone_rules import CloneCollector, clone_rules, cohort_clones, shareable_cores
from deeprc_hopfield.public_clones import KeyCounter, repertoire_keys
from deeprc_hopfield.store import Repertoire

V_GENES = ["TRBV5-1", "TRBV5", "TRBV6-1", "TRBV7-2", "TRBV9"]
AMINO = "ACDEFGHIKLMNPQRSTVWY"


def rough_cohort(seed: int = 0, n: int = 12) -> list[Repertoire]:
    """Random repertoires sharing a few clones exactly, one substitution apart, under other V calls
    (family-only, another gene, missing) and with short junctions (cores of 0 or 1 residue)."""
    rng = np.random.default_rng(seed)
    public = random_junctions(rng, 6)
    reps = []
    for i in range(n):
        junctions = random_junctions(rng, 60) + ["CF", "CAF", "CASF"]
        for clone in public:
            if rng.random() < 0.4:
                p = int(rng.integers(1, len(clone) - 1))
                junctions.append(clone if rng.random() < 0.5 else clone[:p] + AMINO[int(rng.integers(20))]
                                 + clone[p + 1:])
        v = [int(x) for x in rng.integers(-1, len(V_GENES), len(junctions))]
        reps.append(junction_repertoire(f"r{i}", junctions, v))
    return reps


def every_sequence(reps: list[Repertoire]) -> list:
    """The clones of every rule, collected from every sequence (no filter)."""
    collector = CloneCollector(V_GENES, clone_rules())
    for rep in reps:
        collector.add(rep)
    return collector.result()


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_key_counter_finds_the_keys_of_two_repertoires_or_more(chunk):
    rng = np.random.default_rng(1)
    sets = [np.unique(rng.integers(-50, 50, int(rng.integers(0, 30)))) for _ in range(25)]
    counter = KeyCounter(chunk)
    for keys in sets:
        counter.add(keys)
    values, counts = np.unique(np.concatenate(sets), return_counts=True)
    assert np.array_equal(counter.shared(), values[counts >= 2])


@pytest.mark.parametrize("keys_per_pass", [1 << 27, 50, 1])
@pytest.mark.parametrize("seed", [0, 1])
def test_filtered_clones_are_those_of_every_sequence(seed, keys_per_pass):
    reps = rough_cohort(seed)
    expected = every_sequence(reps)
    found = cohort_clones(reps, V_GENES, clone_rules(), keys_per_pass=keys_per_pass)
    assert [c.rule for c in found] == [c.rule for c in expected]
    for mine, theirs in zip(found, expected):
        assert np.array_equal(mine.keys, theirs.keys), mine.rule
        assert (sparse.csr_matrix(mine.incidence) != sparse.csr_matrix(theirs.incidence)).nnz == 0, mine.rule
    assert sum(c.incidence.shape[1] for c in expected) > 0


def test_private_sequences_are_dropped():
    reps = rough_cohort(2)
    shareable = shareable_cores(reps, radius_one=True)
    kept = sum(int(shareable.holds(rep, repertoire_keys(rep)).sum()) for rep in reps)
    assert 0 < kept < sum(len(rep) for rep in reps) // 2  # the random background is private
