"""Filter seeding: enriched gapped k-mers found by counting, and filters that fire on them only."""

from __future__ import annotations

import numpy as np
import torch
from conftest import random_junctions

from deeprc_hopfield.encoding import encode
from deeprc_hopfield.model import RepertoireClassifier, SequenceBags, TaskSpec
from deeprc_hopfield.model.config import ModelConfig
from deeprc_hopfield.model.seeding import GappedKmer
from deeprc_hopfield.training.seeding import (BASE, enriched_kmers, kmer_hashes, kmer_matches, kmer_patterns,
                                             shared_kmers)
from deeprc_hopfield.store import Repertoire

MOTIF = "WK.HM"  # gapped, and absent from random backgrounds


def repertoire(junctions: list[str], name: str = "r") -> Repertoire:
    codes, lengths = encode(junctions)
    n = len(junctions)
    return Repertoire(name, codes, lengths, np.full(n, np.nan), np.full(n, -1, np.int16), np.full(n, -1, np.int16))


def with_motif(junction: str, rng: np.random.Generator) -> str:
    start = int(rng.integers(3, len(junction) - 3 - len(MOTIF) + 1))
    chars = list(junction)
    for i, residue in enumerate(MOTIF):
        if residue != ".":
            chars[start + i] = residue
    return "".join(chars)


def cohort(rng: np.random.Generator, n: int = 12, size: int = 400, witnesses: int = 4):
    reps, labels = [], []
    for i in range(n):
        junctions = [j if len(j) >= 11 else j + "AAAAA" for j in random_junctions(rng, size)]
        if i % 2:
            junctions[:witnesses] = [with_motif(j, rng) for j in junctions[:witnesses]]
        reps.append(repertoire(junctions, f"r{i}"))
        labels.append(i % 2)
    return reps, labels


def test_patterns_place_k_residues_within_the_span():
    patterns = kmer_patterns(4, 6)
    assert len(patterns) == 10 and all(p[0] == 0 and len(p) == 4 and p[-1] < 6 for p in patterns)


def test_kmer_hashes_and_matches_agree_with_a_plain_reading_of_each_sequence():
    """Every gapped k-mer inside a sequence, none across its end, in pattern, sequence and position order (the
    empty sequence and those shorter than the span hold none); a k-mer matches a sequence that holds it anywhere."""
    rng = np.random.default_rng(7)
    junctions = ["", "CA", "CASSF", *("".join(rng.choice(list("ACDG"), size=int(n))) for n in rng.integers(0, 30, 200))]
    rep = repertoire(junctions)
    code = {residue: i + 1 for i, residue in enumerate("ACDEFGHIKLMNPQRSTVWY")}
    patterns = kmer_patterns(3, 5)
    expected = [index * BASE ** 3 + sum(code[j[p + o]] * BASE ** (2 - i) for i, o in enumerate(pattern))
                for index, pattern in enumerate(patterns) for j in junctions for p in range(len(j) - pattern[-1])]
    assert kmer_hashes(rep, patterns).tolist() == expected
    kmers = [GappedKmer((0, 2, 3), "ADC", 1.0), GappedKmer((0, 1), "GG", 1.0), GappedKmer((0, 6), "AA", 1.0)]
    held = [[any(all(j[p + o] == r for o, r in zip(m.offsets, m.residues)) for p in range(len(j) - m.offsets[-1]))
             for m in kmers] for j in junctions]
    assert kmer_matches(rep, kmers).tolist() == held and 0 < np.sum(held) < 3 * len(junctions)


def test_the_planted_gapped_motif_is_the_most_enriched_kmer():
    reps, labels = cohort(np.random.default_rng(0))
    kmers = enriched_kmers(reps, labels, n=5)
    assert str(kmers[0]) == MOTIF and kmers[0].z > 4 and kmers[0].z > 1.5 * kmers[1].z
    assert all(kmers[i].z >= kmers[i + 1].z for i in range(len(kmers) - 1))
    assert enriched_kmers(reps[::2], labels[::2], n=5) == []  # one class only: nothing to compare


def test_a_seeded_filter_fires_on_a_full_match_only_and_attention_points_at_it():
    torch.manual_seed(0)
    model = RepertoireClassifier(ModelConfig(tasks=[TaskSpec("status", "binary")]))
    reps, labels = cohort(np.random.default_rng(1))
    kmers = enriched_kmers(reps, labels, n=1)
    assert model.seed_filters(kmers, strength=2.0) == 1
    probe = ["CASSLWKAHMYEQYF", "CASSLWKAHLYEQYF", "CASSLAKAHMYEQYF"]  # full match, then one mismatch each
    with torch.no_grad():
        fired = model.embed(SequenceBags.from_arrays(*encode(probe)))[:, 0]
    assert fired[0] > 1.5 and (fired[1:] <= 1e-6).all()
    sample = SequenceBags.from_repertoires([reps[1], reps[3]])
    scale = model.aim_at_seeds(1, sample)
    with torch.no_grad():
        logits = model.attention_logits(sample)[:, 0]
        carriers = model.embed(sample)[:, 0] > 0
    assert scale >= 1.0
    assert float(logits[carriers].mean() - logits.median()) >= np.log(400) - 1e-3


def test_shared_kmers_pick_one_kmer_per_public_clone():
    rng = np.random.default_rng(2)
    clones = ["CASSQWHKMPRYNEQFF", "CAWRMHYPKDTQYF"]
    reps, labels = [], []
    for i in range(16):
        junctions = random_junctions(rng, 300)
        if i % 2:
            junctions[: len(clones)] = clones if i % 4 == 1 else clones[:1] + junctions[1:2]
        reps.append(repertoire(junctions, f"r{i}"))
        labels.append(i % 2)
    kmers = shared_kmers(reps, labels, n=2, k=7)
    assert len(kmers) == 2
    assert clones[0].find(kmers[0].residues) >= 0  # carried by every positive: first
    assert clones[1].find(kmers[1].residues) >= 0  # the second clone, not a shift of the first's k-mer
    assert all(len(m.residues) == 7 and m.offsets == tuple(range(7)) for m in kmers)
