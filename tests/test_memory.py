"""The clone memory: exact-sequence keys, the attention bonus in every model path, and training filling it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import simulated_store
from sklearn.metrics import roc_auc_score

from deeprc_hopfield.encoding import encode
from deeprc_hopfield.infer import predict, subjects_from_store
from deeprc_hopfield.model import ModelConfig, RepertoireClassifier, SequenceBags, TaskSpec
from deeprc_hopfield.baselines import fit_public_clone_baseline, read_features
from deeprc_hopfield.cdr3 import core
from deeprc_hopfield.clone_rules import clone_sequences
from deeprc_hopfield.model.memory import CloneMemory, signatures
from deeprc_hopfield.public_clones import clone_keys
from deeprc_hopfield.inspect import model_summary
from deeprc_hopfield.saved_model import load_model
from deeprc_hopfield.simulate import SimulationSettings
from deeprc_hopfield.store import RepertoireStore
from deeprc_hopfield.training import train
from deeprc_hopfield.training.clone_memory import clone_names

torch.set_num_threads(2)


def _tensors(sequences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    codes, lengths = encode(sequences)
    return torch.from_numpy(codes), torch.from_numpy(lengths.astype(np.int64))


def test_lookup_finds_exactly_the_stored_sequences():
    """The signature prefilter never loses a stored clone, and a same-signature variant is no hit;
    a sequence matches by its CDR3 core (the junction without its first and last residue)."""
    rng = np.random.default_rng(2)
    alphabet = list("ACDEFGHIKLMNPQRSTVWY")
    stored = sorted({core(s): s for s in ("".join(rng.choice(alphabet, rng.integers(3, 25))) for _ in range(50))}
                    .values())  # distinct cores
    variants = [c[:5] + ("A" if c[5] != "A" else "C") + c[6:] for c in stored if len(c) > 11]  # middle changed
    anchors = [("C" if c[0] != "C" else "W") + c[1:-1] + "F" for c in stored[:10]]  # other ends: the same core
    queries = stored + variants + anchors + ["".join(rng.choice(alphabet, rng.integers(1, 25))) for _ in range(500)]
    queries = [queries[i] for i in rng.permutation(len(queries))]
    memory = CloneMemory(len(stored), heads=1)
    memory.store(*_tensors(stored), torch.full((len(stored),), -1), v_genes=[])
    clone = memory.lookup(*_tensors(queries))
    cores = {core(c) for c in stored}
    assert [bool(c >= 0) for c in clone] == [core(q) in cores for q in queries]
    assert all(clone[queries.index(a)] >= 0 for a in anchors)
    same = {q: int(c) for q, c in zip(queries, clone) if c >= 0}
    assert len(set(same.values())) == len(stored)  # one index per stored clone


def test_v_families_must_agree_where_both_are_known():
    """The rule of `public_clones`: V family, a gene and a family-only call of it alike, and a missing
    V call on either side matches on the CDR3 core alone."""
    genes = ["TRBV5-1", "TRBV5", "TRBV5-6", "TRBV6-5", "TRBV7-2", "TRBV6"]
    memory = CloneMemory(3, heads=1, n_v_genes=len(genes))
    memory.store(*_tensors(["CASSLGQF", "CASSLGQF", "CAWSVF"]), torch.tensor([0, 3, -1]), v_genes=genes)
    queries = [("CASSLGQF", 0), ("CASSLGQF", 1), ("CASSLGQF", 2), ("CASSLGQF", 3), ("CASSLGQF", 5),
               ("CASSLGQF", 4), ("CASSLGQF", -1), ("CAWSVF", 4), ("CAWSVF", -1), ("CASSLGQY", 0), ("CASSLGQW", 1)]
    clone = memory.lookup(*_tensors([q for q, _ in queries]), torch.tensor([v for _, v in queries]))
    found = clone >= 0
    assert found.tolist() == [True, True, True, True, True, False, True, True, True, True, True]
    assert clone[0] == clone[1] == clone[2] == clone[9] == clone[10]  # TRBV5 family, any anchor
    assert clone[3] == clone[4] != clone[0]  # TRBV6: the gene and the family-only call
    assert clone[7] == clone[8]  # stored without V: any V matches


def test_a_memory_saved_before_the_cdr3_core_keeps_its_own_rule():
    """A state without `trim` and `v_codes` (saved before the CDR3 core and the V family) loads, and
    matches whole junctions and V gene rows as it did."""
    memory = CloneMemory(2, heads=1, n_v_genes=4)
    codes, lengths = _tensors(["CASSLGQF", "CAWSVF"])
    v = torch.tensor([2, -1])
    old = {"keys": clone_keys(codes, lengths, v, trim=0), "cdr3_keys": clone_keys(codes, lengths, trim=0),
           "signatures": signatures(codes, lengths, trim=0)}
    order = torch.argsort(old["keys"])
    by_cdr3 = torch.argsort(old["cdr3_keys"][order], stable=True)
    state = {"keys": old["keys"][order], "stored_v": v[order], "cdr3_keys": old["cdr3_keys"][order][by_cdr3],
             "cdr3_clone": by_cdr3, "signatures": torch.sort(old["signatures"]).values,
             "bonus": torch.zeros(1), "evidence": torch.zeros(())}
    memory.load_state_dict(state, strict=True)
    assert int(memory.trim) == 0 and memory.v_codes.tolist() == [0, 1, 2, 3, -1]
    queries = [("CASSLGQF", 2), ("CASSLGQF", 1), ("CASSLGQY", 2), ("CAWSVF", 3), ("WAWSVW", 3)]
    clone = memory.lookup(*_tensors([q for q, _ in queries]), torch.tensor([v for _, v in queries]))
    assert (clone >= 0).tolist() == [True, False, False, True, False]  # whole junctions, V gene rows


def _bags_with_memory(heads: int = 2, update_steps: int = 1) -> tuple[RepertoireClassifier, SequenceBags, np.ndarray]:
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    sequences = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), rng.integers(5, 18))) for _ in range(60)]
    sequences[7] = sequences[41] = "CASSPVTGGIYGYTF"  # a stored clone, carried by both bags
    sequences[50] = sequences[45] = "CASSLAPGATNEKLFF"  # another, twice in the second bag
    codes, lengths = encode(sequences)
    bags = SequenceBags.from_arrays(codes, lengths, np.array([0, 30, 60]))
    model = RepertoireClassifier(ModelConfig(tasks=[TaskSpec("status", "binary")], attention_heads=heads,
                                             update_steps=update_steps, clone_memory=2))
    codes, lengths = encode(["CASSLAPGATNEKLFF", "CASSPVTGGIYGYTF"])
    model.memory.store(torch.from_numpy(codes), torch.from_numpy(lengths.astype(np.int64)), torch.tensor([-1, -1]),
                       v_genes=[])
    with torch.no_grad():
        model.memory.bonus.copy_(torch.tensor([3.0, 5.0][:heads]))
        model.memory.evidence.fill_(1.5)
    return model, bags, np.array([7, 41, 45, 50])


@pytest.mark.parametrize("update_steps", [1, 2])
def test_stored_clones_get_the_bonus_in_every_path(update_steps):
    model, bags, stored = _bags_with_memory(update_steps=update_steps)
    clones = model.clones(bags)
    assert torch.equal(torch.nonzero(clones >= 0).ravel(), torch.from_numpy(stored))
    assert clones[7] == clones[41] != clones[50] == clones[45]
    carried = model.memory.carried(clones, bags)
    assert carried.tolist() == [1.0, 2.0]  # distinct clones: a copy seen twice counts once
    with torch.no_grad():
        logits = model.attention_logits(bags, chunk_size=7)
        scored, _ = model.score(bags, chunk_size=11)
        out = model(bags, return_attention=True, chunk_size=5)
        emb = model.embed(bags)
        pooled, attention = model.pooling(emb, bags.offsets, return_attention=True, bias=model.memory_bias(clones))
        plain = model.pooling.attention_logits(emb, bags.offsets)
    torch.testing.assert_close(scored, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.attention, attention, atol=1e-5, rtol=1e-5)
    evidence = model.memory.evidence_logit(carried)
    torch.testing.assert_close(out.outputs["status"], model.head(pooled)["status"] + evidence, atol=1e-5, rtol=1e-5)
    if update_steps == 1:  # the bonus is added to the plain score (iterating also moves the query)
        bonus = torch.zeros_like(plain)
        bonus[stored] = torch.tensor([3.0, 5.0])
        torch.testing.assert_close(logits, plain + bonus, atol=1e-5, rtol=1e-5)


def test_hidden_clones_are_matched_as_none_in_their_bag_only():
    """Training hides from a bag the stored clones its own label chose: no bonus there, the same clone
    elsewhere keeps it."""
    model, bags, stored = _bags_with_memory()
    clones = model.clones(bags)
    hidden = torch.zeros(2, 2, dtype=torch.bool)
    hidden[1, clones[45]] = True  # the second clone, in the second bag (sequences 41, 45, 50)
    masked = model.clones(bags, hidden)
    assert masked[45] == masked[50] == -1 and masked[41] == clones[41] == clones[7] == masked[7]
    with torch.no_grad():
        logits, _ = model.score(bags, hidden_clones=hidden)
        out = model(bags, hidden_clones=hidden)
        pooled, _ = model.pooling(model.embed(bags), bags.offsets, bias=model.memory_bias(masked))
    torch.testing.assert_close(logits, model.pooling.attention_logits(model.embed(bags), bags.offsets)
                               + model.memory_bias(masked), atol=1e-5, rtol=1e-5)
    expected = model.head(pooled)["status"] + model.memory.evidence_logit(model.memory.carried(masked, bags))
    torch.testing.assert_close(out.outputs["status"], expected, atol=1e-5, rtol=1e-5)


def test_a_model_without_memory_has_none():
    model = RepertoireClassifier(ModelConfig(tasks=[TaskSpec("status", "binary")]))
    assert model.memory is None and not any("memory" in k for k in model.state_dict())


@pytest.fixture(scope="module")
def clone_cohort(tmp_path_factory) -> dict:
    """48 repertoires x 400 sequences; each positive carries each of 6 public clones with p = 0.6 (and a
    motif in 0.1% of its sequences, which the simulator requires)."""
    root = tmp_path_factory.mktemp("clones")
    cohort = simulated_store(root, SimulationSettings(n_repertoires=48, sequences_per_repertoire=400,
                                                      witness_rate=0.001, seed=5, motifs=("SA.FY",),
                                                      public_clones=6, public_rate=0.6))
    return {**cohort, "implanted": pd.read_csv(root / "cohort" / "truth" / "implanted.tsv", sep="\t")}


def test_training_stores_the_public_clones_and_ranks_them_first(clone_cohort, tmp_path):
    torch.set_num_threads(1)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"n_updates": 40, "evaluate_every": 20, "checkpoint_every": 20,
                                                   "sample_size": 400}}))
    model_dir = train(clone_cohort["store"], tmp_path / "model", config, split=clone_cohort["split"], fold=0,
                      device="cpu", progress=False)
    training = json.loads((model_dir / "config.json").read_text())["training"]
    implanted = clone_cohort["implanted"].query("kind == 'public_clone'")
    clones = set(implanted["junction_aa"] + " " + implanted["v_call"].str.split("*").str[0])  # the store keeps genes
    assert len(clones) == 6 and set(training["memory_clones"]) == clones  # CDR3 + V, found on the training repertoires

    assert isinstance(training["memory_alone"], bool) and training["memory_alone_val_loss"] > 0
    summary = dict((line[:14].strip(), line[14:]) for line in model_summary(model_dir).splitlines())  # `inspect`
    assert summary["clone memory"].startswith("6 stored clone(s): ")
    assert summary["memory/model"].startswith("validation AUC ") and summary["memory/model"].endswith(
        "the memory alone kept" if training["memory_alone"] else "the trained model kept")
    saved = load_model(model_dir)  # the memory survives saving and loading
    assert saved.model.memory is not None and saved.model.memory.size == 6
    held_out = set(clone_cohort["meta"]["subject_id"].astype(str)[clone_cohort["folds"] == 0])
    table, _ = predict([saved], subjects_from_store(clone_cohort["store"], saved, held_out), torch.device("cpu"))
    assert len(table) == 12 and roc_auc_score(table["true_label"], table["probability"]) >= 0.9
    if training["memory_alone"]:  # chosen on validation: the output is then a function of the clones carried
        assert table["probability"].round(6).nunique() <= 7
    with RepertoireStore(clone_cohort["store"]) as store:
        positive = next(i for i, s in enumerate(store.subject_ids)
                        if s in held_out and store.label("label").values[i] == 1)
        rep = store.repertoire(positive)
        bags = SequenceBags.from_repertoires([rep])
        with torch.no_grad():
            order = torch.argsort(saved.model.attention_logits(bags).max(dim=1).values, descending=True)
        carried = saved.model.clones(bags) >= 0
        n = int(carried.sum())
        assert n > 0 and bool(carried[order[:n]].all())  # the clones it carries lead the attention ranking


@pytest.mark.parametrize("refit", [True, False])
def test_a_memory_alone_is_chosen_again_on_all_training_repertoires(clone_cohort, tmp_path, refit):
    """Where the validation repertoires choose the memory alone, its clones are those the public-clone test
    (the `public_clones` baseline) finds on all training repertoires, fitting and validation; the saved
    model holds them and is calibrated on the training repertoires' out-of-fold counts."""
    torch.set_num_threads(1)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"n_updates": 4, "evaluate_every": 2, "checkpoint_every": 4,
                                                   "sample_size": 400, "clone_refit": refit}}))
    model_dir = train(clone_cohort["store"], tmp_path / "model", config, split=clone_cohort["split"], fold=0,
                      device="cpu", progress=False)
    training = json.loads((model_dir / "config.json").read_text())["training"]
    assert training["memory_alone"]  # six clones each in 60% of positives: the memory alone ranks validation best
    training_subjects = training["fit_subjects"] + training["validation_subjects"]
    saved = load_model(model_dir)
    assert saved.model.memory.size == len(training["memory_clones"]) == saved.model.config.clone_memory
    if not refit:
        assert "refit" not in training["clone_rule"]
        return
    refit_rule = training["clone_rule"]["refit"]
    assert refit_rule["repertoires"] == len(training_subjects) > len(training["fit_subjects"])
    assert refit_rule["clones"] == saved.model.memory.size
    # calibrated on the out-of-fold counts of every training repertoire
    assert training["calibration"]["label"]["n_validation"] == len(training_subjects)
    features = read_features(clone_cohort["store"], "label", ("public_clones",))
    train_rows = np.flatnonzero(np.isin(features.subject_ids, training_subjects))
    baseline = fit_public_clone_baseline(features, train_rows, seed=0)
    assert baseline.rule.as_dict() == {key: refit_rule[key] for key in ("v_level", "radius")}
    with RepertoireStore(clone_cohort["store"]) as store:
        found = clone_sequences(lambda row: store.repertoire(int(row)),
                                baseline.clones.incidence[:, baseline.test.associated],
                                baseline.clones.keys[baseline.test.associated], features.v_genes,
                                baseline.rule.v_level)
    assert set(training["memory_clones"]) == set(clone_names(list(found.values()), features.v_genes))


@pytest.fixture(scope="module")
def family_cohort(tmp_path_factory) -> dict:
    """48 repertoires x 400 sequences; 6 public clones, each a family of 4 one-substitution variants (an
    occurrence carries one member), each in a positive with p = 0.8."""
    root = tmp_path_factory.mktemp("families")
    return simulated_store(root, SimulationSettings(n_repertoires=48, sequences_per_repertoire=400,
                                                    witness_rate=0.001, seed=6, motifs=("SA.FY",),
                                                    public_clones=6, public_rate=0.8, public_variants=4))


def test_a_one_substitution_memory_is_saved_and_matches_unseen_variants(family_cohort, tmp_path):
    """With `clone_radius: 1` the memory stores clones and matches their neighbours; the model keeps its
    rule through saving, and `predict` separates the held-out fold."""
    torch.set_num_threads(1)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"n_updates": 20, "evaluate_every": 10, "checkpoint_every": 20,
                                                   "sample_size": 400, "clone_radius": 1}}))
    model_dir = train(family_cohort["store"], tmp_path / "model", config, split=family_cohort["split"], fold=0,
                      device="cpu", progress=False)
    training = json.loads((model_dir / "config.json").read_text())["training"]
    assert training["clone_rule"]["radius"] == 1 and training["clone_rule"]["used"]
    assert set(training["clone_rule"]["inner_aucs"]) == {"CDR3 + V family, 1 substitution",
                                                         "CDR3 + V gene, 1 substitution", "CDR3 alone, 1 substitution"}
    saved = load_model(model_dir)
    assert saved.model.config.clone_radius == 1 and saved.model.memory.size == len(training["memory_clones"])
    stored = saved.model.memory.index()
    variant = "CASSLGQGAYEQYF"
    codes, lengths = encode([variant])
    assert stored.first_match(codes, lengths)[0][0] == -1  # an unrelated CDR3 matches nothing
    junction = training["memory_clones"][0].split(" ")[0]
    mutated = junction[:5] + ("W" if junction[5] != "W" else "Y") + junction[6:]
    codes, lengths = encode([mutated])
    assert stored.first_match(codes, lengths)[0][0] >= 0  # a variant never seen in training still matches
    held_out = set(family_cohort["meta"]["subject_id"].astype(str)[family_cohort["folds"] == 0])
    table, _ = predict([saved], subjects_from_store(family_cohort["store"], saved, held_out), torch.device("cpu"))
    assert roc_auc_score(table["true_label"], table["probability"]) >= 0.9


def test_rare_clones_the_fitting_repertoires_cannot_find_fill_the_memory_from_all_training(tmp_path):
    """Six clones, each carried by every validation positive and held-out positive but by only four of the
    fourteen fitting positives (every repertoire 66 sequences): too few for the test on the fitting
    repertoires, which leave the memory empty; on all training repertoires it finds them, the validation
    repertoires (counted with the clones found without each) rank better by them than by a model that
    learnt little (no seeded filters, two updates), and the memory alone is kept."""
    from conftest import J_GENES, V_GENES, random_junctions

    from deeprc_hopfield.ingest import ingest
    from deeprc_hopfield.training.config import inner_validation_split

    torch.set_num_threads(1)
    rng = np.random.default_rng(11)
    clones = [("CASSLAPGATNEKLFF", "TRBV20-1*01"), ("CASSQDRGNQPQHF", "TRBV5-1*01"), ("CASRPGLAGGRPEQYF", "TRBV7-2*01"),
              ("CASSYSTGELFF", "TRBV28*01"), ("CASSPTSGGYNEQFF", "TRBV20-1*01"), ("CAWSVGQGAYEQYF", "TRBV5-1*01")]
    labels = np.repeat([1, 0], 24)
    folds = np.r_[np.arange(24) % 4, np.arange(24) % 4]
    train_rows = np.flatnonzero(folds != 0)
    fit, validation = inner_validation_split(train_rows, labels[train_rows], 0.2, 0)
    fitting_positives = [i for i in fit if labels[i] == 1]
    carriers = {k: set(validation[labels[validation] == 1]) | set(np.flatnonzero((folds == 0) & (labels == 1)))
                | {fitting_positives[(4 * k + j) % len(fitting_positives)] for j in range(4)} for k in range(6)}
    folder = tmp_path / "repertoires"
    folder.mkdir()
    for i in range(48):
        rows = [clones[k] for k in range(6) if i in carriers[k]]
        rows += [(j, rng.choice(V_GENES)) for j in random_junctions(rng, 66 - len(rows))]
        (folder / f"r{i}.tsv").write_text("junction_aa\tv_call\tj_call\tduplicate_count\n" + "".join(
            f"{j}\t{v}\t{rng.choice(J_GENES)}\t1\n" for j, v in rows))
    pd.DataFrame({"subject_id": [f"S{i}" for i in range(48)], "filename": [f"r{i}.tsv" for i in range(48)],
                  "label": labels}).to_csv(tmp_path / "metadata.csv", index=False)
    pd.DataFrame({"subject_id": [f"S{i}" for i in range(48)], "fold": folds}).to_csv(tmp_path / "split.csv",
                                                                                    index=False)
    store = ingest(tmp_path / "metadata.csv", folder, tmp_path / "store.h5", progress=False)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"n_updates": 2, "evaluate_every": 2, "checkpoint_every": 2,
                                                   "sample_size": 100, "seed_filters": 0}}))  # a model that learnt little
    model_dir = train(store, tmp_path / "model", config, split=tmp_path / "split.csv", fold=0, device="cpu",
                      progress=False)
    training = json.loads((model_dir / "config.json").read_text())["training"]
    assert sorted(training["validation_subjects"]) == sorted(f"S{i}" for i in validation)
    assert not training["clone_rule"].get("used")  # the fitting repertoires kept no memory
    assert training["memory_alone"] and training["clone_rule"]["refit"]["repertoires"] == len(train_rows)
    assert set(training["memory_clones"]) == {f"{j} {v.split('*')[0]}" for j, v in clones}
    saved = load_model(model_dir)
    assert saved.model.memory.size == 6 == saved.model.config.clone_memory
    held_out = {f"S{i}" for i in np.flatnonzero(folds == 0)}
    table, _ = predict([saved], subjects_from_store(store, saved, held_out), torch.device("cpu"))
    assert roc_auc_score(table["true_label"], table["probability"]) == 1.0


def test_the_trained_model_must_rank_validation_better_than_its_memory_alone_beyond_noise() -> None:
    """24 validation repertoires: a trained model a little ahead of the clones counted (less than one paired
    standard error, as noise on so few would put it) gives way to the memory alone; one far ahead is kept;
    one class alone keeps it."""
    from deeprc_hopfield.training.selection import TRAINED_MODEL_MARGIN_SE, trained_model_wins

    labels = np.repeat([1, 0], 12)
    carried = np.r_[[2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    rng = np.random.default_rng(1)
    close = carried + rng.normal(scale=0.8, size=24)
    choice = trained_model_wins(carried, close, labels)
    assert choice["trained_auc"] > choice["memory_auc"] and 0 < choice["gain_z"] < TRAINED_MODEL_MARGIN_SE
    assert not choice["trained_wins"]
    far = labels + rng.normal(scale=0.1, size=24)
    choice = trained_model_wins(carried, far, labels)
    assert choice["trained_auc"] == 1.0 > choice["memory_auc"] and choice["trained_wins"]
    assert choice["gain_z"] > TRAINED_MODEL_MARGIN_SE
    assert trained_model_wins(carried, far, np.ones(24))["trained_wins"]

    # donors: the same 24 scores as 3 samples of each of 8 donors are 8 units, not 24 (its standard error grows)
    donors = np.repeat(np.arange(8), 3)
    few = labels[::3]
    base = np.r_[[2, 1, 1, 0], [1, 0, 0, 0]].astype(float)
    ahead = few + rng.normal(scale=0.3, size=8)
    tripled = trained_model_wins(np.repeat(base, 3), np.repeat(ahead, 3), np.repeat(few, 3))
    by_donor = trained_model_wins(np.repeat(base, 3), np.repeat(ahead, 3), np.repeat(few, 3), groups=donors)
    assert by_donor == {**trained_model_wins(base, ahead, few), "units": "donors"}  # each donor once, as one sample
    assert tripled["gain_z"] > by_donor["gain_z"] > 0  # triplicates made the lead look three standard errors surer
