"""Tests of the model core: embedder, streamed Hopfield pooling, heads, batches and config."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deeprc_hopfield.model import (HopfieldPooling, ModelConfig, RepertoireClassifier, SequenceBags,
                                   SequenceEmbedder, TaskSpec, position_features, probabilities, task_loss)
from deeprc_hopfield.model.pooling import Subsets
from deeprc_hopfield.model.streaming import LeftOut

torch.set_num_threads(2)


def random_bags(rng: np.random.Generator, sizes: list[int], lo: int = 3, hi: int = 20) -> SequenceBags:
    n = sum(sizes)
    lengths = rng.integers(lo, hi + 1, n)
    codes = rng.integers(1, 21, lengths.sum()).astype(np.uint8)
    return SequenceBags.from_arrays(codes, lengths, np.concatenate(([0], np.cumsum(sizes))),
                                    v_index=rng.integers(-1, 4, n), j_index=rng.integers(-1, 2, n),
                                    counts=np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 100, n)))


def config(**kwargs) -> ModelConfig:
    return ModelConfig(tasks=[TaskSpec("status", "binary")], **kwargs)


# --- pooling ---------------------------------------------------------------------------------------
def dense_pooling(pool: HopfieldPooling, emb: torch.Tensor, offsets: torch.Tensor):
    """Reference: each bag on its own, full softmax, the key-space query iteration done densely."""
    pooled, attention = [], []
    for b in range(len(offsets) - 1):
        x = emb[offsets[b]:offsets[b + 1]]
        k, v = pool.keys_values(x)  # (n, H, dk)
        q = pool.queries()  # (H, dk)
        for _ in range(pool.update_steps - 1):
            a = torch.softmax(pool.beta * torch.einsum("nhd,hd->nh", k, q), dim=0)
            q = torch.einsum("nh,nhd->hd", a, k)
        logits = pool.beta * torch.einsum("nhd,hd->nh", k, q)
        a = torch.softmax(logits, dim=0)  # (n, H)
        out = pool.out(torch.einsum("nh,nhd->hd", a, v).flatten())
        if pool.energy_feature:  # log-mean-exp of the logits per head
            out = torch.cat((out, torch.logsumexp(logits, 0) - math.log(len(x))))
        pooled.append(out)
        centred = logits - logits.mean(0)  # reported: one softmax over (instance, head), centred per head, x H
        attention.append(a if pool.heads == 1 else pool.heads * torch.softmax(centred.flatten(), 0).view_as(a))
    return torch.stack(pooled), torch.cat(attention)


@pytest.mark.parametrize("heads,steps", [(1, 1), (3, 1), (2, 3)])
@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_streamed_pooling_equals_dense(heads, steps, chunk):
    torch.manual_seed(0)
    pool = HopfieldPooling(12, heads=heads, attention_dim=8, update_steps=steps, beta=2.0)
    sizes = [1, 5, 17, 1, 40, 2]
    offsets = torch.tensor(np.concatenate(([0], np.cumsum(sizes))))
    emb = torch.randn(sum(sizes), 12) * 3
    pooled, attention = pool(emb, offsets, return_attention=True, chunk_size=chunk)
    ref_pooled, ref_attention = dense_pooling(pool, emb, offsets)
    torch.testing.assert_close(pooled, ref_pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention, ref_attention, atol=1e-5, rtol=1e-5)
    sums = torch.zeros(len(sizes), heads).index_add(0, torch.repeat_interleave(torch.arange(len(sizes)),
                                                                               torch.tensor(sizes)), attention)
    torch.testing.assert_close(sums.sum(dim=1), torch.full((len(sizes),), float(heads)))
    one_instance = torch.tensor(np.cumsum([0] + sizes))[:-1][torch.tensor(sizes) == 1]
    assert torch.allclose(attention[one_instance], torch.ones(1))


@pytest.mark.parametrize("heads", [1, 3])
def test_a_bag_larger_than_the_subset_size_pools_as_the_mean_of_its_subsets(heads):
    """Whole repertoires are pooled as training saw its samples: the mean of the pooled vectors of
    subsets of about `subset_size`; smaller bags pool as before, and attention stays one softmax."""
    torch.manual_seed(4)
    whole = HopfieldPooling(12, heads=heads, attention_dim=8, beta=2.0)
    subsetted = HopfieldPooling(12, heads=heads, attention_dim=8, beta=2.0, subset_size=10)
    subsetted.load_state_dict(whole.state_dict())
    sizes = torch.tensor([35, 7, 10])
    offsets = torch.cat((torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)))
    emb = torch.randn(int(sizes.sum()), 12) * 3
    pooled, attention = subsetted(emb, offsets, return_attention=True, chunk_size=6)
    plain, plain_attention = whole(emb, offsets, return_attention=True, chunk_size=6)
    torch.testing.assert_close(attention, plain_attention, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(pooled[1:], plain[1:], atol=1e-6, rtol=1e-5)  # not larger than 10: unchanged
    subsets = Subsets.of_bags(sizes, 10)
    assert subsets.n == 4 + 1 + 1 and int(subsets.sizes[:4].sum()) == 35 and int(subsets.sizes[:4].max()) <= 10
    members = [torch.nonzero(subsets.of[:35] == k).reshape(-1) for k in range(4)]
    each = [whole(emb[m], torch.tensor([0, len(m)]))[0] for m in members]  # every subset pooled alone
    torch.testing.assert_close(pooled[0], torch.cat(each).mean(0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(pooled[0], plain[0], atol=1e-3)


def test_subsets_of_a_large_repertoire_are_even_and_interleaved():
    subsets = Subsets.of_bags(torch.tensor([300_000, 1_234_567]), 10_000)
    first = subsets.sizes[:30]
    assert subsets.n == 30 + 124 and int(first.max() - first.min()) <= 5  # ~10,000 each
    assert len(torch.unique(subsets.of[:100])) > 25  # consecutive sequences spread over the subsets
    assert Subsets.of_bags(torch.tensor([10_000, 5]), 10_000) is None  # training's samples: whole bags


def test_left_out_sequences_join_the_forward_pass():
    """Training back-propagates a top fraction; with the left-out state the output equals the full pass."""
    torch.manual_seed(3)
    model = RepertoireClassifier(config(attention_heads=2))
    bags = random_bags(np.random.default_rng(3), [30, 11, 50])
    kept = torch.cat([torch.arange(0, 30, 3), torch.arange(30, 41, 2), torch.arange(41, 91, 5)])
    left = torch.ones(bags.n_sequences, dtype=torch.bool)
    left[kept] = False
    logits, values = model.score(bags)
    left_out = LeftOut.from_scores(logits[left], values[left], bags.bag_index()[left], bags.n_bags)
    selected = bags.select(kept)
    with torch.no_grad():
        full = model(bags).outputs["status"]
        without = model(selected).outputs["status"]
    part = model(selected, left_out=left_out).outputs["status"]
    torch.testing.assert_close(part, full, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(without, full, atol=1e-4)
    part.sum().backward()  # gradients reach the weights through the kept sequences
    assert model.embedder.convs[0].weight.grad.abs().sum() > 0


def test_pooling_extreme_logits_do_not_overflow():
    pool = HopfieldPooling(4, attention_dim=4, beta=1e4)
    emb = torch.randn(50, 4) * 100
    offsets = torch.tensor([0, 20, 50])
    pooled, attention = pool(emb, offsets, return_attention=True, chunk_size=6)
    assert torch.isfinite(pooled).all() and torch.isfinite(attention).all()
    torch.testing.assert_close(pooled, dense_pooling(pool, emb, offsets)[0], atol=1e-4, rtol=1e-4)


def test_model_forward_streamed_equals_pooling_of_embeddings():
    torch.manual_seed(1)
    model = RepertoireClassifier(config(attention_heads=2))
    bags = random_bags(np.random.default_rng(1), [30, 1, 70])
    with torch.no_grad():
        out = model(bags, return_attention=True, chunk_size=16)
        pooled, attention = model.pooling(model.embed(bags, chunk_size=7), bags.offsets, return_attention=True)
        ref = model.head(pooled)["status"]
        torch.testing.assert_close(out.outputs["status"], ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.attention, attention, atol=1e-5, rtol=1e-5)
        logits = model.attention_logits(bags, chunk_size=9)
        torch.testing.assert_close(logits, model.pooling.attention_logits(model.embed(bags), None), atol=1e-5,
                                   rtol=1e-5)


def test_permutation_invariance():
    torch.manual_seed(2)
    model = RepertoireClassifier(config(attention_heads=2, n_v_genes=4, n_j_genes=2, gene_embedding_dim=3,
                                        use_counts=True))
    rng = np.random.default_rng(2)
    bags = random_bags(rng, [25, 40])
    perm = torch.cat([torch.randperm(25), 25 + torch.randperm(40)])
    shuffled = SequenceBags(bags.codes, bags.lengths, bags.v_index, bags.j_index, bags.counts, bags.offsets)
    # rebuild the flat codes in the permuted order
    starts, lengths = bags.starts(), bags.lengths
    shuffled = SequenceBags.from_arrays(
        torch.cat([bags.codes[starts[i]:starts[i] + lengths[i]] for i in perm.tolist()]), lengths[perm],
        bags.offsets, bags.v_index[perm], bags.j_index[perm], bags.counts[perm])
    with torch.no_grad():
        a = model(bags, return_attention=True, chunk_size=8)
        b = model(shuffled, return_attention=True, chunk_size=5)
    torch.testing.assert_close(a.outputs["status"], b.outputs["status"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.attention[perm], b.attention, atol=1e-6, rtol=1e-5)


def test_empty_bag_is_an_error():
    pool = HopfieldPooling(4, attention_dim=4)
    with pytest.raises(ValueError, match="bag 1 is empty"):
        pool(torch.randn(5, 4), torch.tensor([0, 3, 3, 5]))
    with pytest.raises(ValueError, match="bag 1 is empty"):
        SequenceBags.from_arrays(np.ones(6, np.uint8), [3, 3], offsets=[0, 2, 2])

    class Rep:
        subject_id = "p7"
        codes = np.zeros(0, np.uint8)
        lengths = counts = v_index = j_index = np.zeros(0)
    with pytest.raises(ValueError, match=r"bag 0 \(p7\) is empty"):
        SequenceBags.from_repertoires([Rep()])


# --- embedder --------------------------------------------------------------------------------------
def reference_embedding(embedder: SequenceEmbedder, seq: torch.Tensor) -> torch.Tensor:
    """One sequence, no padding at all, plain one-hot + conv1d + SELU + max."""
    n = seq.shape[0]
    x = F.one_hot(seq.long(), 21)[:, 1:].float()
    x = torch.cat((x, position_features(torch.tensor([n]), n, torch.float32)[0]), 1).T[None]  # (1, 23, n)
    for conv in embedder.convs:
        x = F.selu(conv(F.pad(x, embedder.padding)))
    return x.amax(2)[0]


@pytest.mark.parametrize("layers,kernel", [(1, 9), (2, 5), (1, 4)])
def test_embedding_is_exact_and_padding_free(layers, kernel):
    torch.manual_seed(3)
    embedder = SequenceEmbedder(kernel_size=kernel, n_filters=16, n_conv_layers=layers)
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 40, 60)  # includes sequences shorter than the kernel and longer than 30
    codes = torch.tensor(rng.integers(1, 21, lengths.sum()), dtype=torch.uint8)
    lengths = torch.tensor(lengths)
    with torch.no_grad():
        bucketed = embedder(codes, lengths, chunk_size=7)
        starts = torch.cumsum(lengths, 0) - lengths
        for i in range(len(lengths)):
            seq = codes[starts[i]:starts[i] + lengths[i]]
            alone = embedder(seq, lengths[i:i + 1])
            torch.testing.assert_close(bucketed[i], alone[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(alone[0], reference_embedding(embedder, seq), atol=1e-5, rtol=1e-5)
        # one padded chunk holding a short sequence among longer ones
        padded = torch.zeros(3, 39, dtype=torch.uint8)
        for row, i in enumerate([0, int(lengths.argmax()), 5]):
            padded[row, :lengths[i]] = codes[starts[i]:starts[i] + lengths[i]]
        chunk = embedder.embed_padded(padded, lengths[[0, int(lengths.argmax()), 5]])
        torch.testing.assert_close(chunk[0], bucketed[0, :16], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(chunk[2], bucketed[5, :16], atol=1e-5, rtol=1e-5)


def test_embedding_gradients_match_plain_conv():
    torch.manual_seed(9)
    embedder = SequenceEmbedder(kernel_size=5, n_filters=8, n_conv_layers=2)
    rng = np.random.default_rng(9)
    lengths = torch.tensor(rng.integers(2, 12, 15))
    codes = torch.tensor(rng.integers(1, 21, int(lengths.sum())), dtype=torch.uint8)
    weights = torch.randn(15, 8)
    (embedder(codes, lengths, chunk_size=4) * weights).sum().backward()
    fast = [p.grad.clone() for p in embedder.parameters()]
    embedder.zero_grad()
    starts = torch.cumsum(lengths, 0) - lengths
    ref = torch.stack([reference_embedding(embedder, codes[starts[i]:starts[i] + lengths[i]]) for i in range(15)])
    (ref * weights).sum().backward()
    for a, p in zip(fast, embedder.parameters()):
        torch.testing.assert_close(a, p.grad, atol=1e-4, rtol=1e-4)


def test_gene_and_count_features():
    torch.manual_seed(4)
    embedder = SequenceEmbedder(n_filters=8, n_v_genes=3, n_j_genes=2, gene_embedding_dim=4, use_counts=True)
    assert embedder.out_dim == 8 + 4 + 4 + 2
    codes = torch.tensor([1, 2, 3, 4, 5, 6], dtype=torch.uint8)
    lengths = torch.tensor([3, 3])
    with torch.no_grad():
        out = embedder(codes, lengths, torch.tensor([-1, 2]), torch.tensor([0, -1]), torch.tensor([float("nan"), 1.0]))
    torch.testing.assert_close(out[0, 8:12], embedder.v_embedding.weight[3])  # unknown V -> row 3
    torch.testing.assert_close(out[1, 12:16], embedder.j_embedding.weight[2])  # unknown J -> row 2
    torch.testing.assert_close(out[:, 16:], torch.tensor([[0.0, 1.0], [float(np.log1p(1.0)), 0.0]]))
    with pytest.raises(ValueError, match="v_index holds 3"):
        embedder(codes, lengths, torch.tensor([3, 0]), torch.tensor([0, 0]))


# --- batches ----------------------------------------------------------------------------------------
def test_select_keeps_the_right_sequences():
    rng = np.random.default_rng(5)
    bags = random_bags(rng, [6, 4, 9])
    keep = torch.tensor([0, 2, 5, 7, 10, 11, 18])
    sub = bags.select(keep)
    assert sub.offsets.tolist() == [0, 3, 4, 7]
    starts = bags.starts()
    expected = torch.cat([bags.codes[starts[i]:starts[i] + bags.lengths[i]] for i in keep.tolist()])
    assert torch.equal(sub.codes, expected)
    for name in ("lengths", "v_index", "j_index"):
        assert torch.equal(getattr(sub, name), getattr(bags, name)[keep])
    torch.testing.assert_close(sub.counts, bags.counts[keep], equal_nan=True)
    with pytest.raises(ValueError, match="bag 1 empty"):
        bags.select(torch.tensor([0, 1, 12]))
    with pytest.raises(ValueError, match="increasing"):
        bags.select(torch.tensor([2, 0, 7, 12]))


# --- determinism, config, heads ----------------------------------------------------------------------
def test_cpu_determinism():
    bags = random_bags(np.random.default_rng(6), [20, 30])
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = RepertoireClassifier(config(attention_heads=2))
        loss = model(bags).outputs["status"].sum()
        loss.backward()
        outs.append((model(bags).outputs["status"].detach(), model.embedder.convs[0].weight.grad.clone()))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_config_round_trip_and_refusals():
    cfg = ModelConfig(tasks=[TaskSpec("cmv", "binary", class_weights=[1.0, 3.0]), TaskSpec("hla", "categorical", 4),
                             TaskSpec("age", "numeric")], n_conv_layers=2, beta=0.5, learn_beta=True)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ModelConfig.from_dict(data) == cfg
    for bad, message in [({"kernel_size": 0}, "kernel_size"), ({"beta": -1.0}, "beta"),
                         ({"attention_heads": 1.5}, "attention_heads"), ({"position_features": 2}, "position_features"),
                         ({"colour": "red"}, "unknown model config key"),
                         ({"tasks": [{"name": "x", "kind": "ordinal"}]}, "kind"),
                         ({"tasks": [{"name": "x", "kind": "categorical", "n_classes": 1}]}, "n_classes"),
                         ({"tasks": []}, "at least one task")]:
        with pytest.raises(ValueError, match=message):
            ModelConfig.from_dict({**data, **bad})


def test_losses_and_probabilities():
    tasks = [TaskSpec("b", "binary", class_weights=[1.0, 2.0]), TaskSpec("c", "categorical", 3),
             TaskSpec("y", "numeric")]
    outputs = {"b": torch.tensor([0.0, 2.0]), "c": torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
               "y": torch.tensor([1.0, 2.0])}
    targets = {"b": torch.tensor([1.0, float("nan")]), "c": torch.tensor([-1, 0]), "y": torch.tensor([0.0, 2.0])}
    expected = 2 * np.log(2) + -np.log(np.e / (np.e + 2)) + 0.5
    assert task_loss(outputs, targets, tasks).item() == pytest.approx(expected, rel=1e-5)
    probs = probabilities(outputs, tasks)
    assert probs["b"][0].item() == pytest.approx(0.5) and probs["c"].shape == (2, 3)
    torch.testing.assert_close(probs["c"].sum(1), torch.ones(2))


def test_model_overfits_planted_motif():
    """8 bags of 40 random sequences; the 4 positive ones carry a motif in 2 sequences each."""
    torch.manual_seed(8)
    rng = np.random.default_rng(8)
    motif = np.array([6, 15, 3, 17], dtype=np.uint8)  # G R D T
    reps_codes, reps_lengths, labels = [], [], []
    for b in range(8):
        lengths = rng.integers(10, 16, 40)
        seqs = [rng.integers(1, 21, n).astype(np.uint8) for n in lengths]
        if b % 2:
            for s in seqs[:2]:
                s[4:8] = motif
        reps_codes.append(np.concatenate(seqs))
        reps_lengths.append(lengths)
        labels.append(float(b % 2))
    bags = SequenceBags.from_arrays(np.concatenate(reps_codes), np.concatenate(reps_lengths), np.arange(0, 321, 40))
    cfg = config(n_filters=16, attention_dim=16, head_hidden=16)
    model = RepertoireClassifier(cfg)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    targets = {"status": torch.tensor(labels)}
    losses = []
    for _ in range(80):
        optimiser.zero_grad()
        loss = task_loss(model(bags).outputs, targets, cfg.tasks)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 and losses[-1] < 0.2 * losses[0], losses[::10]
