"""Training: one readable loop (sample -> score -> select -> forward -> loss -> step -> log -> checkpoint).

Per update, `repertoires_per_update` training repertoires are drawn and up to `sample_size`
sequences of each sampled; all of them are scored without gradients and only the most-attended
`top_fraction` of each repertoire is back-propagated through, as DeepRC does. The model is selected
on an inner validation split of the training repertoires (never the test fold) by validation loss.
Every random choice is seeded by (seed, update), so a resumed run reaches the same weights.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from deeprc_hopfield.baselines import clone_incidence, fit_public_clones
from deeprc_hopfield.encoding import decode, encode
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.interrupts import raise_if_interrupted
from deeprc_hopfield.metrics import task_metrics
from deeprc_hopfield.model import ModelConfig, RepertoireClassifier, SequenceBags, TaskSpec, task_loss
from deeprc_hopfield.model.memory import repertoire_keys
from deeprc_hopfield.model.pooling import StreamingSoftmax
from deeprc_hopfield.model.seeding import aim_at_memory, aim_at_seeds, enriched_kmers, seed_filters, shared_kmers
from deeprc_hopfield.sampling import SAMPLING_MODES, RepertoireCache, sample_indices, update_rng
from deeprc_hopfield.saved_model import save_model
from deeprc_hopfield.store import RepertoireStore

log = logging.getLogger(__name__)
SEEDING_STREAM = 2**31 - 1  # the random stream of the filter seeding's sample, apart from every update's


class TrainingError(DeepRCError):
    """Training cannot start: a label, split, device or configuration problem."""


@dataclass
class TrainingConfig:
    """Training hyper-parameters (the `training:` section of a config YAML)."""

    n_updates: int = 600
    repertoires_per_update: int = 4
    sample_size: int = 10_000
    sampling: str = "uniform"
    top_fraction: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    validation_fraction: float = 0.2
    evaluate_every: int = 50
    checkpoint_every: int = 100
    patience: int = 4  # evaluations without improvement before stopping early; 0 = never stop early
    embed_chunk: int = 8192
    seed: int = 0
    # first-layer filters started from gapped k-mers enriched in positive fitting repertoires (model/seeding.py)
    seed_filters: int = 8  # 0 = all filters random
    seed_sample: int = 100_000  # sequences counted per fitting repertoire (a sample of larger ones)
    seed_kmer: int = 4  # residues per k-mer
    seed_span: int = 6  # positions a k-mer may spread over (gaps included)
    seed_strength: float = 2.0  # filter weight per matching residue
    seed_clones: int = 0  # of seed_filters, how many are contiguous k-mers of shared clones (one per clone)
    seed_clone_kmer: int = 7  # residues per clone k-mer (at most the kernel size)
    # public clones (CDR3s) that the public-clone test associates with positives get an attention bonus (model/memory.py)
    clone_memory: bool = True
    clone_memory_min_auc: float = 0.7  # the test's AUC must reach this in inner CV on the fitting and on the validation repertoires

    def __post_init__(self) -> None:
        checks = [
            (self.n_updates >= 1, "n_updates must be >= 1"),
            (self.repertoires_per_update >= 1, "repertoires_per_update must be >= 1"),
            (self.sample_size >= 1, "sample_size must be >= 1"),
            (self.sampling in SAMPLING_MODES, f"sampling must be one of {', '.join(SAMPLING_MODES)}"),
            (0 < self.top_fraction <= 1, "top_fraction must be in (0, 1]"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 < self.validation_fraction < 1, "validation_fraction must be in (0, 1)"),
            (self.evaluate_every >= 1 and self.checkpoint_every >= 1, "evaluate_every and checkpoint_every must be >= 1"),
            (self.seed_filters >= 0, "seed_filters must be >= 0"),
            (self.seed_sample >= 1, "seed_sample must be >= 1"),
            (1 <= self.seed_kmer <= self.seed_span <= 8, "need 1 <= seed_kmer <= seed_span <= 8"),
            (self.seed_strength > 0, "seed_strength must be > 0"),
            (0 <= self.seed_clones and 2 <= self.seed_clone_kmer <= 9, "need seed_clones >= 0 and 2 <= seed_clone_kmer <= 9"),
            (0.5 <= self.clone_memory_min_auc <= 1, "clone_memory_min_auc must be in [0.5, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(f"training config: {message}")


def _dataclass_from(cls: type, values: dict, what: str):  # noqa: ANN202
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainingError(f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


def read_config(path: str | Path | None) -> tuple[dict, TrainingConfig]:
    """Model options and the training config from a YAML file with `model:` and `training:` sections."""
    import yaml

    if path is None:
        return {}, TrainingConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingError(f"cannot read config: {exc}", path) from None
    if not isinstance(data, dict) or set(data) - {"model", "training"}:
        raise TrainingError("config must be a mapping with sections 'model' and/or 'training'", path)
    try:
        training = _dataclass_from(TrainingConfig, data.get("training") or {}, f"{path}: training")
    except TypeError as exc:
        raise TrainingError(str(exc), path) from None
    return dict(data.get("model") or {}), training


def tasks_from_store(store: RepertoireStore, label_columns: list[str] | None) -> tuple[list[TaskSpec], dict]:
    """One task per label column (default: every label of the store) and the label descriptions."""
    names = label_columns or store.label_names
    if not names:
        raise TrainingError("the store has no label to train on (ingest with --label-column)", store.path)
    tasks, labels = [], {}
    for name in names:
        label = store.label(name)
        n_classes = len(label.classes) if label.kind == "categorical" else 1
        tasks.append(TaskSpec(name=name, kind=label.kind, n_classes=n_classes))
        labels[name] = {"kind": label.kind, "classes": label.classes}
    return tasks, labels


def read_split(path: str | Path, store: RepertoireStore, fold: int) -> np.ndarray:
    """Indices of the training repertoires of `fold`: every repertoire whose fold is not `fold`."""
    from deeprc_hopfield.split import read_split as read_split_table

    path = Path(path)
    split = read_split_table(path)
    fold_of = dict(zip(split["subject_id"], split["fold"]))
    missing = [s for s in store.subject_ids if s not in fold_of]
    if missing:
        raise TrainingError(f"subject '{missing[0]}' of the store is not in the split", path)
    if fold not in set(fold_of.values()):
        raise TrainingError(f"fold {fold} is not in the split (folds: {sorted(set(fold_of.values()))})", path)
    return np.array([i for i, s in enumerate(store.subject_ids) if fold_of[s] != fold])


def inner_validation_split(indices: np.ndarray, strata: np.ndarray, fraction: float,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of the training repertoires into (fit, validation)."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    fit, validation = [], []
    for value in np.unique(strata):
        members = rng.permutation(indices[strata == value])
        n_val = max(1, int(round(fraction * len(members)))) if len(members) > 1 else 0
        validation.extend(members[:n_val])
        fit.extend(members[n_val:])
    return np.sort(np.array(fit)), np.sort(np.array(validation))


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when present), 'cpu' or 'cuda'; asking for an absent GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda, but no CUDA GPU is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise TrainingError(f"unknown device '{name}'; choose auto, cpu or cuda")
    return torch.device(name)


class Trainer:
    """Holds what one training run needs; :meth:`run` is the loop."""

    def __init__(self, store: RepertoireStore, out: Path, tasks: list[TaskSpec], labels: dict,
                 train_indices: np.ndarray, model_options: dict, config: TrainingConfig, device: torch.device):
        self.store, self.out, self.tasks, self.labels, self.config, self.device = (
            store, out, tasks, labels, config, device)
        self.targets = {t.name: store.label(t.name).values for t in tasks}
        first = tasks[0]
        strata = self.targets[first.name] if first.kind != "numeric" else np.zeros(len(store), dtype=int)
        self.fit_idx, self.val_idx = inner_validation_split(
            train_indices, strata[train_indices], config.validation_fraction, config.seed)
        if len(self.val_idx) == 0 or len(self.fit_idx) == 0:
            raise TrainingError("too few training repertoires for an inner validation split", store.path)
        self._weight_tasks()
        if "clone_memory" in model_options:
            raise TrainingError("model: clone_memory is set by training; turn the memory on or off with "
                                "training: clone_memory: true/false")
        torch.manual_seed(config.seed)
        self.cache = RepertoireCache(store)
        self.clones_carried = np.zeros(len(store))  # distinct stored clones per (fitting) repertoire
        self.memory_clones = self._public_clones()
        options = {"n_v_genes": len(store.v_genes), "n_j_genes": len(store.j_genes), **model_options,
                   "clone_memory": len(self.memory_clones)}
        try:
            self.model_config = ModelConfig(tasks=self.tasks, **options)
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"model config: {exc}") from None
        self.model = RepertoireClassifier(self.model_config)
        if self.model.memory is not None:
            codes, lengths = encode([junction for junction, _ in self.memory_clones])
            v_index = np.array([v for _, v in self.memory_clones], dtype=np.int64)
            self.model.memory.store(*(torch.from_numpy(a) for a in (codes, lengths.astype(np.int64), v_index)))
            self._start_memory_evidence()
        self.seeded = self._seed_filters()
        self.model.to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        # mixed precision on CUDA only: bfloat16 where the GPU has it, else float16 with loss scaling
        self.amp_dtype = None
        if device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.update = 0
        self.best = {"loss": math.inf, "update": 0}
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history: list[dict] = []
        self.evaluations_without_gain = 0
        self.stopped_early = False
        self.checkpoint_dir = out.with_name(out.name + ".checkpoint")

    def _public_clones(self) -> list[tuple[str, int]]:
        """The clones (CDR3, V index; -1 = unknown) that the public-clone test (`baselines.fit_public_clones`)
        associates with the positive class of the first binary task; empty when the cohort shows no such signal.

        The test is checked first: fitted on the fitting repertoires, it must reach
        `clone_memory_min_auc` in inner cross-validation there and, with the clones it finds, on the
        validation repertoires. The clones stored are those it then finds on all training
        repertoires (fitting and validation, as the baseline does): a clone that few patients carry
        needs every carrier to pass. The held-out fold is never read.
        """
        cfg, task = self.config, self.tasks[0]
        if not cfg.clone_memory or task.kind != "binary":
            return []
        started = time.perf_counter()
        train_idx = np.sort(np.concatenate((self.fit_idx, self.val_idx)))
        keys = {int(i): np.unique(repertoire_keys(self.cache[int(i)])) for i in train_idx}
        labels = self.targets[task.name]
        checked = self._clone_test(keys, self.fit_idx)
        if checked is None:
            return []
        test, stored = checked
        validation_auc = _carried_auc([keys[int(i)] for i in self.val_idx], stored, labels[self.val_idx])
        if min(test.inner_auc, validation_auc) < cfg.clone_memory_min_auc or len(stored) == 0:
            log.info("clone memory: left empty; the public-clone test reaches AUC %.2f in inner CV on the fitting "
                     "repertoires and %.2f on the validation ones (needs %.2f on both)", test.inner_auc,
                     validation_auc, cfg.clone_memory_min_auc)
            return []
        final = self._clone_test(keys, train_idx)
        stored = final[1] if final is not None and len(final[1]) else stored
        # what training sees: each fitting repertoire's clones as the test found them without it (inner CV);
        # counted with the clones chosen on it, its positives would all look like carriers
        self.clones_carried[self.fit_idx] = test.out_of_fold
        self.validation_carried = np.array([len(np.intersect1d(keys[int(i)], stored, assume_unique=True))
                                            for i in self.val_idx], dtype=np.float64)
        clones = self._clones(train_idx, stored)
        named = self._clone_names(clones)
        log.info("clone memory: %d public clones (p < %g; AUC %.2f in inner CV, %.2f on validation) in %.1f s: %s",
                 len(clones), final[0].threshold if final else test.threshold, test.inner_auc, validation_auc,
                 time.perf_counter() - started, ", ".join(named[:10]) + (" ..." if len(named) > 10 else ""))
        return clones

    def _clone_test(self, keys: dict[int, np.ndarray], indices: np.ndarray) -> tuple | None:
        """The public-clone test fitted on the repertoires at `indices` (their distinct clone `keys`) and
        the keys of the clones it associates; None when no clone is shared or a class is too small."""
        incidence, shared = clone_incidence([keys[int(i)] for i in indices])
        if incidence.shape[1] == 0:
            return None
        try:
            test = fit_public_clones(incidence, self.targets[self.tasks[0].name][indices], self.config.seed)
        except DeepRCError as exc:
            log.info("clone memory: left empty (%s)", exc)
            return None
        return test, shared[test.associated]

    def _clones(self, indices: np.ndarray, stored: np.ndarray) -> list[tuple[str, int]]:
        """(CDR3, V index) of every stored key, read from the repertoires at `indices` that carry them."""
        found: dict[int, tuple[str, int]] = {}
        for i in indices:
            if len(found) == len(stored):
                break
            rep = self.cache[int(i)]
            keys = repertoire_keys(rep)
            hit = np.flatnonzero(np.isin(keys, stored))
            carriers = rep.subset(hit)
            found.update(zip(keys[hit].tolist(), zip(decode(carriers.codes, carriers.lengths),
                                                     carriers.v_index.astype(int).tolist())))
        return sorted(set(found.values()))

    def _clone_names(self, clones: list[tuple[str, int]]) -> list[str]:
        """'CDR3 V-gene' (or the CDR3 alone where the V gene is unknown) of each clone."""
        return [f"{junction} {self.store.v_genes[v]}" if v >= 0 else junction for junction, v in clones]

    def _start_memory_evidence(self) -> None:
        """Start the memory's evidence weight (and the first task's bias) at a class-balanced logistic
        regression of the label on log1p(clones carried, out of fold) over the fitting repertoires, so
        that the clones explain the positives from the first update and the CNN is not pushed to
        memorise them one by one."""
        from sklearn.linear_model import LogisticRegression

        x = np.log1p(self.clones_carried[self.fit_idx])[:, None]
        fit = LogisticRegression(C=1.0, class_weight="balanced").fit(x, self.targets[self.tasks[0].name][self.fit_idx])
        self.memory_alone = (float(fit.coef_[0, 0]), float(fit.intercept_[0]))
        with torch.no_grad():
            self.model.memory.evidence.fill_(self.memory_alone[0])
            self.model.head.output.bias[0] += self.memory_alone[1]
        log.info("clone memory: evidence weight starts at %.2f per log1p(clone carried)", float(fit.coef_[0, 0]))

    def _seed_filters(self) -> list[str]:
        """Start some first-layer filters from k-mers enriched in the positive fitting repertoires,
        aim the attention at them and at the clone memory's clones.

        Counts a seeded sample of up to `seed_sample` sequences per fitting repertoire, for the first
        binary task only (nothing is seeded otherwise). Returns the k-mers, as motif strings.
        """
        cfg = self.config
        task = self.tasks[0]
        if task.kind != "binary" or (cfg.seed_filters == 0 and self.model.memory is None):
            return []
        rng = np.random.default_rng([cfg.seed, SEEDING_STREAM])
        labels = self.targets[task.name][self.fit_idx]
        started = time.perf_counter()
        counted = self.fit_idx if cfg.seed_filters else self.fit_idx[:cfg.repertoires_per_update]
        reps = [self.cache[int(i)] for i in counted]
        reps = [r.subset(sample_indices(r, cfg.seed_sample, rng, cfg.sampling)) for r in reps]
        kmers: list = []
        if cfg.seed_filters:
            n_clones = min(cfg.seed_clones, cfg.seed_filters)
            kmers = enriched_kmers(reps, labels, cfg.seed_filters - n_clones, cfg.seed_kmer, cfg.seed_span)
            if n_clones:
                kmers += shared_kmers(reps, labels, n_clones, cfg.seed_clone_kmer)
        n = seed_filters(self.model.embedder, kmers, cfg.seed_strength)
        # the aim is set on bags of the size training samples
        sample = SequenceBags.from_repertoires([r.subset(sample_indices(r, cfg.sample_size, rng, cfg.sampling))
                                                for r in reps[:cfg.repertoires_per_update]])
        scale = aim_at_seeds(self.model, n, sample)
        aim_at_memory(self.model, sample)
        log.info("seeded %d filters with enriched k-mers in %.1f s (query scale %.1f): %s", n,
                 time.perf_counter() - started, scale, ", ".join(f"{m} (z {m.z:.1f})" for m in kmers[:n]))
        return [str(m) for m in kmers[:n]]

    def _weight_tasks(self) -> None:
        """Class weights from the fitting repertoires, so that a rare class counts as much as a common one."""
        for task in self.tasks:
            if task.kind == "numeric":
                continue
            k = max(2, task.n_classes)
            counts = np.bincount(self.targets[task.name][self.fit_idx], minlength=k).astype(float)
            task.class_weights = (counts.sum() / (k * np.maximum(counts, 1))).tolist()

    # --- one update -----------------------------------------------------------------------
    def _targets(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        out = {}
        for task in self.tasks:
            values = self.targets[task.name][indices]
            dtype = torch.long if task.kind == "categorical" else torch.float32
            out[task.name] = torch.as_tensor(values, dtype=dtype, device=self.device)
        return out

    def _top_attended(self, bags: SequenceBags) -> SequenceBags:
        """The most-attended `top_fraction` of each bag, carrying the softmax state of the rest.

        Only the kept sequences are back-propagated through, but the left-out ones still enter the
        forward pass (their scores and values, computed here without gradients), so training sees
        the same pooled vector as inference over the sample would.
        """
        logits, values = self.model.score(bags, chunk_size=self.config.embed_chunk)
        scores = logits.max(dim=1).values
        keep = []
        offsets = bags.offsets.tolist()
        for start, end in zip(offsets[:-1], offsets[1:]):
            k = max(1, math.ceil(self.config.top_fraction * (end - start)))
            top = torch.topk(scores[start:end], k).indices + start
            keep.append(torch.sort(top).values)
        kept = torch.cat(keep)
        left = torch.ones(bags.n_sequences, dtype=torch.bool, device=bags.device)
        left[kept] = False
        bag = bags.bag_index()[left]
        selected = bags.select(kept)
        pooling = self.model.pooling
        state = StreamingSoftmax(bags.n_bags, pooling.heads, pooling.attention_dim, bags.device, logits.dtype)
        if len(bag):
            state.add(logits[left], values[left], bag)
        selected.left_out_softmax = state
        selected.left_out_count = torch.bincount(bag, minlength=bags.n_bags)
        return selected

    def step(self) -> float:
        """One update; returns its loss."""
        cfg = self.config
        rng = update_rng(cfg.seed, self.update)
        chosen = rng.choice(self.fit_idx, size=min(cfg.repertoires_per_update, len(self.fit_idx)), replace=False)
        reps = [self.cache[int(i)] for i in chosen]
        reps = [r.subset(sample_indices(r, cfg.sample_size, rng, cfg.sampling)) for r in reps]
        bags = SequenceBags.from_repertoires(reps)
        bags.clones_carried = torch.as_tensor(self.clones_carried[chosen], dtype=torch.float32)
        bags = bags.to(self.device)
        self.model.eval()
        selected = self._top_attended(bags)
        self.model.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            output = self.model(selected, chunk_size=cfg.embed_chunk)
            loss = task_loss(output.outputs, self._targets(chosen), self.tasks)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.update += 1
        return float(loss.detach())

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, indices: np.ndarray) -> dict[str, float]:
        """Loss and metrics over whole repertoires (no sub-sampling), without gradients."""
        from deeprc_hopfield.infer import predict_outputs

        self.model.eval()
        outputs = predict_outputs(self.model, [self.cache[int(i)] for i in indices], self.device,
                                  self.config.embed_chunk)
        with torch.no_grad():
            loss = float(task_loss(outputs, self._targets(indices), self.tasks))
        result = {"val_loss": loss}
        for task in self.tasks:
            scores = _scores(outputs[task.name], task.kind)
            for name, value in task_metrics(task.kind, scores, self.targets[task.name][indices]).items():
                result[f"val_{task.name}_{name}" if len(self.tasks) > 1 else f"val_{name}"] = value
        return result

    # --- checkpoints ----------------------------------------------------------------------
    def identity(self) -> dict:
        """What a checkpoint must share with this run to be continued by `resume="auto"`: the store
        (creation time, size, ingest parameters), the fitting and validation repertoires (so the split
        and fold), the labels, the model and the training configuration; as JSON stores it."""
        identity = {
            "store": {"created": self.store.attrs.get("created"), "n_sequences": self.store.n_sequences,
                      "parameters": self.store.parameters},
            "subjects": {"fit": [self.store.subject_ids[i] for i in self.fit_idx],
                         "validation": [self.store.subject_ids[i] for i in self.val_idx]},
            "labels": self.labels, "model": self.model_config.to_dict(), "training": asdict(self.config),
        }
        return json.loads(json.dumps(identity, default=str))

    def save_checkpoint(self) -> None:
        """Model, optimizer, best weights and history, written atomically (safetensors + JSON)."""
        from safetensors.torch import save_file

        tmp = self.checkpoint_dir.with_name(self.checkpoint_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in self.best_state.items()})
        optimizer_state = self.optimizer.state_dict()
        for pid, state in optimizer_state["state"].items():
            for key, value in state.items():
                tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        save_file(tensors, str(tmp / "state.safetensors"))
        meta = {"update": self.update, "best": self.best, "history": self.history,
                "evaluations_without_gain": self.evaluations_without_gain, "stopped_early": self.stopped_early,
                "param_groups": optimizer_state["param_groups"], "config": asdict(self.config),
                "identity": self.identity()}
        (tmp / "progress.json").write_text(json.dumps(meta))
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        tmp.rename(self.checkpoint_dir)

    def load_checkpoint(self, required: bool = True) -> bool:
        """Continue from the checkpoint; returns whether it did.

        `required` (``--resume``): a missing or unreadable checkpoint, or one of another store, split,
        fold, labels or model, is an error; a different training config (more updates) is only logged.
        Otherwise (``--resume-if-possible``) the checkpoint is used only when everything of
        :meth:`identity` matches, and training starts from update 0 when it does not, saying why.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        def fresh(reason: str) -> bool:
            if required:
                raise TrainingError(f"--resume, but {reason}", self.checkpoint_dir)
            log.info("not resuming: %s; training from update 0", reason)
            return False

        state_file = self.checkpoint_dir / "state.safetensors"
        if not state_file.is_file():
            return fresh(f"there is no checkpoint {self.checkpoint_dir}")
        try:
            meta = json.loads((self.checkpoint_dir / "progress.json").read_text())
            tensors = load_file(str(state_file), device=str(self.device))
        except (OSError, ValueError, SafetensorError) as exc:
            return fresh(f"the checkpoint {self.checkpoint_dir} is unreadable ({exc})")
        stored = meta.get("identity") or {}
        differ = [key for key, value in self.identity().items() if stored.get(key) != value]
        if differ and (not required or differ != ["training"]):
            return fresh(f"the checkpoint {self.checkpoint_dir} is of another run (its {', '.join(differ)} differ)")
        if differ:
            log.warning("resuming although the training config differs from the checkpoint's")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        optim_state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                optim_state.setdefault(int(pid), {})[name] = value if name != "step" else value.cpu()
        self.optimizer.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
        self.update, self.best, self.history = meta["update"], meta["best"], meta["history"]
        self.evaluations_without_gain = meta["evaluations_without_gain"]
        self.stopped_early = meta.get("stopped_early", False)
        log.info("resumed from %s at update %d", self.checkpoint_dir, self.update)
        return True

    # --- the loop -------------------------------------------------------------------------
    def run(self, progress: bool = True) -> Path:
        cfg = self.config
        log.info("training on %d repertoires, validating on %d (device %s)", len(self.fit_idx),
                 len(self.val_idx), self.device)
        start_time = time.perf_counter()
        bar = tqdm(total=cfg.n_updates, initial=self.update, unit="update", desc="train", disable=not progress)
        losses: list[float] = []
        while self.update < cfg.n_updates:
            losses.append(self.step())
            bar.update()
            raise_if_interrupted()
            if self.update % cfg.evaluate_every == 0 or self.update == cfg.n_updates:
                row = {"update": self.update, "loss": float(np.mean(losses)), **self.evaluate(self.val_idx),
                       "seconds": round(time.perf_counter() - start_time, 2)}
                losses = []
                self.history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", val_loss=f"{row['val_loss']:.3f}")
                log.info("update %d: %s", self.update, ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                                                                     if k != "update"))
                if row["val_loss"] < self.best["loss"]:
                    self.best = {"loss": row["val_loss"], "update": self.update}
                    self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                    self.evaluations_without_gain = 0
                else:
                    self.evaluations_without_gain += 1
                if cfg.patience and self.evaluations_without_gain >= cfg.patience:
                    log.info("stopping early: no gain in validation loss for %d evaluations", cfg.patience)
                    self.stopped_early = True
                    break
            if self.update % cfg.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        self.save_checkpoint()
        return self.finish()

    def _memory_alone_loss(self) -> float:
        """Validation loss of the clone memory's starting regression alone (inf when it does not apply)."""
        weight, intercept = self.memory_alone
        logits = torch.as_tensor(weight * np.log1p(self.validation_carried) + intercept, dtype=torch.float32)
        targets = {name: t.cpu() for name, t in self._targets(self.val_idx).items()}
        return float(task_loss({self.tasks[0].name: logits}, targets, self.tasks))

    def _keep_memory_alone(self) -> bool:
        """Model selection between the trained model and its clone memory alone, by validation ROC AUC.

        Where the rest of the model has nothing to add to the stored clones (a cohort whose only signal
        is public clones), training fits noise of the fitting repertoires and the held-out ranking gets
        worse than counting clones. The memory alone is kept unless the trained model ranks the
        validation repertoires better (a tie goes to the simpler model; the loss would favour the more
        confident one). Then the output is the memory's regression alone (the output network's
        weights for the label set to 0), while attention still ranks the sequences.
        """
        self.memory_alone_loss = math.inf
        if self.model.memory is None or len(self.tasks) > 1:
            return False
        self.memory_alone_loss = self._memory_alone_loss()
        labels = self.targets[self.tasks[0].name][self.val_idx]
        alone = roc_auc_score(labels, self.validation_carried) if np.ptp(self.validation_carried) else 0.5
        trained = next((row.get("val_auc", math.nan) for row in self.history if row["update"] == self.best["update"]),
                       math.nan)
        if not alone >= trained:  # a NaN (no evaluation) keeps the trained model
            return False
        weight, intercept = self.memory_alone
        with torch.no_grad():
            self.model.head.output.weight[0].zero_()
            self.model.head.output.bias[0] = intercept
            self.model.memory.evidence.fill_(weight)
        self._rank_stored_clones_first()
        log.info("clone memory alone: validation AUC %.3f, at least the trained model's %.3f; its regression on "
                 "the clones carried is the output (attention bonus now %s)", alone, trained,
                 ", ".join(f"{b:.1f}" for b in self.model.memory.bonus.tolist()))
        return True

    def _rank_stored_clones_first(self) -> None:
        """Once the output rests on the memory alone, attention no longer enters a prediction: raise the
        bonus so that a stored clone outscores every other sequence (by the spread of the scores on a
        few validation repertoires, plus 1), so that `attend` and `interpret` show the clones first."""
        reps = [self.cache[int(i)] for i in self.val_idx[:self.config.repertoires_per_update]]
        bags = SequenceBags.from_repertoires(reps).to(self.device)
        with torch.no_grad():
            logits = self.model.attention_logits(bags, chunk_size=self.config.embed_chunk)
            plain = logits - self.model.memory_bias(self.model.clones(bags))
            spread = plain.max(dim=0).values - plain.min(dim=0).values + 1.0
            self.model.memory.bonus.copy_(torch.maximum(self.model.memory.bonus, spread))

    def finish(self) -> Path:
        """Write the best model (by validation loss) with its metrics CSV."""
        self.model.load_state_dict(self.best_state)
        memory_alone = self._keep_memory_alone()
        training = {**asdict(self.config), "store": str(self.store.path), "best_update": self.best["update"],
                    "memory_alone": memory_alone, "memory_alone_val_loss": _finite_or_none(self.memory_alone_loss),
                    "best_val_loss": self.best["loss"], "fit_subjects": [self.store.subject_ids[i] for i in self.fit_idx],
                    "validation_subjects": [self.store.subject_ids[i] for i in self.val_idx],
                    "seeded_kmers": self.seeded, "memory_clones": self._clone_names(self.memory_clones)}
        metrics = _history_csv(self.history)
        save_model(self.out, self.model, self.labels, self.store.v_genes, self.store.j_genes, training,
                   extra_files={"metrics.csv": metrics})
        log.info("wrote %s (best validation loss %.4f at update %d)", self.out, self.best["loss"], self.best["update"])
        return self.out


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _carried_auc(keys: list[np.ndarray], stored: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of the number of distinct `stored` clones among each repertoire's distinct clone `keys`."""
    carried = np.array([len(np.intersect1d(k, stored, assume_unique=True)) for k in keys])
    if np.ptp(carried) == 0 or len(np.unique(labels)) < 2:
        return 0.5
    return float(roc_auc_score(labels, carried))


def _scores(output: torch.Tensor, kind: str) -> np.ndarray:
    """Probabilities (binary, categorical) or values (numeric) from raw outputs."""
    output = output.detach().float().cpu()
    if kind == "binary":
        return torch.sigmoid(output.reshape(-1)).numpy()
    if kind == "categorical":
        return torch.softmax(output, dim=-1).numpy()
    return output.reshape(-1).numpy()


def _history_csv(history: list[dict]) -> str:
    if not history:
        return ""
    columns = list(dict.fromkeys(k for row in history for k in row))
    lines = [",".join(columns)]
    for row in history:
        lines.append(",".join("" if row.get(c) is None else f"{row[c]:.6g}" if isinstance(row.get(c), float)
                              else str(row[c]) for c in columns))
    return "\n".join(lines) + "\n"


def train(store_path: str | Path, out: str | Path, config_path: str | Path | None = None,
          label_columns: list[str] | None = None, split: str | Path | None = None, fold: int | None = None,
          device: str = "auto", resume: bool | str = False, seed: int | None = None, n_updates: int | None = None,
          progress: bool = True) -> Path:
    """Train a model on a store and write it to `out` (a model directory).

    `resume`: False trains from update 0; True continues from the checkpoint `out.checkpoint` (an
    error when there is none); "auto" continues from it only when it is of this very run (store,
    split and fold, labels, model and training config; see :meth:`Trainer.load_checkpoint`) and
    starts from update 0 otherwise, so an interrupted workflow job picks up where it stopped.
    """
    if resume not in (False, True, "auto"):
        raise TrainingError(f"resume must be False, True or 'auto', not {resume!r}")
    model_options, config = read_config(config_path)
    overrides = {k: v for k, v in (("seed", seed), ("n_updates", n_updates)) if v is not None}
    if overrides:
        config = TrainingConfig(**{**asdict(config), **overrides})
    target = resolve_device(device)
    with RepertoireStore(store_path) as store:
        tasks, labels = tasks_from_store(store, label_columns)
        if (split is None) != (fold is None):
            raise TrainingError("--split and --fold go together")
        indices = read_split(split, store, fold) if split is not None else np.arange(len(store))
        trainer = Trainer(store, Path(out), tasks, labels, indices, model_options, config, target)
        if resume and trainer.load_checkpoint(required=resume is True) and trainer.stopped_early:
            return trainer.finish()  # the checkpointed run had stopped early: nothing is left to train
        return trainer.run(progress=progress)
