"""Training: one readable loop (sample -> score -> select -> forward -> loss -> step -> log -> checkpoint).

Per update, `repertoires_per_update` training repertoires are drawn and up to `sample_size`
sequences of each sampled; all of them are scored without gradients and only the most-attended
`top_fraction` of each repertoire is back-propagated through, as DeepRC does. The model is selected
on an inner validation split of the training repertoires (never the test fold) by validation loss.
Every random choice is seeded by (seed, update), so a resumed run reaches the same weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from deeprc_hopfield import interrupts
from deeprc_hopfield.devices import autocast, autocast_dtype, resolve_device
from deeprc_hopfield.donors import SKETCH_FILE
from deeprc_hopfield.metrics import task_metrics
from deeprc_hopfield.model import LeftOut, ModelConfig, RepertoireClassifier, SequenceBags, TaskSpec
from deeprc_hopfield.model.heads import balanced_loss, task_losses
from deeprc_hopfield.progress import LoggedProgress
from deeprc_hopfield.public_clones import groups_at
from deeprc_hopfield.sampling import RepertoireCache, sample_indices, update_rng
from deeprc_hopfield.io import check_output
from deeprc_hopfield.saved_model import REFERENCE_FILE, is_model_folder, save_model
from deeprc_hopfield.shared_clones import SharedClones
from deeprc_hopfield.split import Split
from deeprc_hopfield.store import RepertoireStore
from deeprc_hopfield.calibration import describe, fit_calibration
from deeprc_hopfield.clone_rules import AUTO
from deeprc_hopfield.training.checkpoint import (
    check_checkpoint_target, checkpoint_dir, load_checkpoint, require_checkpoint, save_checkpoint)
from deeprc_hopfield.reference import Reference, ReferenceOptions
from deeprc_hopfield.training.clone_memory import MemoryFit, fit_clone_memory, refit_clone_memory
from deeprc_hopfield.training.reference_fit import ReferenceFit, fit_reference
from deeprc_hopfield.training.config import (
    EXECUTION_SETTINGS, TrainingConfig, TrainingError, describe_validation_groups, inner_validation_split,
    pool_subset_size, read_config, tasks_from_store)
from deeprc_hopfield.training.seeding import seed_model
from deeprc_hopfield.training.selection import (
    Progress, describe_choice, keep_memory_alone, memory_alone_loss, trained_model_wins)

log = logging.getLogger(__name__)


class Trainer:
    """Holds what one training run needs; :meth:`run` is the loop."""

    def __init__(self, store: RepertoireStore, out: Path, tasks: list[TaskSpec], labels: dict,
                 train_indices: np.ndarray, model_options: dict, config: TrainingConfig, device: torch.device,
                 force: bool = False, reference: Reference | None = None, shared_clones: SharedClones | None = None,
                 resume_required: bool = False, groups: np.ndarray | None = None):
        self.store, self.out, self.tasks, self.labels, self.config, self.device = (
            store, out, tasks, labels, config, device)
        self.force = force  # replace an earlier model at `out` (never anything else)
        self.shared_clones = shared_clones  # where the clone memory's clones may be read (else collected)
        self.groups = groups  # store order, e.g. donors: whole on one side of every inner split (None: repertoires)
        self.targets = {t.name: store.label(t.name).values for t in tasks}
        first = tasks[0]
        strata = self.targets[first.name] if first.kind != "numeric" else np.zeros(len(store), dtype=int)
        self.fit_idx, self.val_idx = inner_validation_split(  # `groups` (store order): each whole on one side
            train_indices, strata[train_indices], config.validation_fraction, config.seed,
            groups_at(groups, train_indices))
        if len(self.val_idx) == 0 or len(self.fit_idx) == 0:
            whole = "" if groups is None else " (the split's groups are kept whole: each class needs two groups)"
            raise TrainingError(f"too few training repertoires for an inner validation split{whole}", store.path)
        if groups is not None and first.kind != "numeric":
            describe_validation_groups(groups, strata, self.fit_idx, self.val_idx, store.label(first.name).classes)
        self.checkpoint_dir = checkpoint_dir(out)
        if resume_required:  # another run's checkpoint is refused before the clone memory's fit
            require_checkpoint(self.checkpoint_dir, self._data_identity())
        self._weight_tasks()
        if "clone_memory" in model_options:
            raise TrainingError("model: clone_memory is set by training; turn the memory on or off with "
                                "training: clone_memory: true/false")
        for key in ("reference_size", "reference_width"):
            if key in model_options:
                raise TrainingError(f"model: {key} is set by training from --reference (or reference: in the workflow)")
        torch.manual_seed(config.seed)
        self.cache = RepertoireCache(store)
        binary = first.kind == "binary"
        self.memory: MemoryFit | None = None
        self.clone_rule: dict | None = None  # the clone rule chosen and its AUCs (config.json, the report)
        self.refit_idx: np.ndarray | None = None  # the repertoires a refit memory alone was chosen on (finish)
        if not binary and any(t.kind == "binary" for t in tasks):
            log.warning("the first label '%s' is %s: the k-mer seeding and the clone memory, which need a binary "
                        "first label, are off; give a binary label first (--label-column order) to use them",
                        first.name, first.kind)
        if config.clone_memory and binary:
            self.memory, self.clone_rule = fit_clone_memory(
                self.cache, self.targets[first.name], self.fit_idx, self.val_idx, config, store.v_genes,
                self.shared_clones, groups)
        if reference is not None and not binary:
            log.info("reference %s: not used (it needs a binary first label; '%s' is %s)", reference.name,
                     first.name, first.kind)
        self.reference: ReferenceFit | None = fit_reference(
            self.cache, self.targets[first.name], self.fit_idx, self.val_idx, config, reference, store.v_genes,
            groups) \
            if reference is not None and binary else None
        self.model = self._build_model(model_options)
        self.hidden_clones = self._hidden_clones()
        self.seeded = seed_model(self.model, self.cache, self.fit_idx, self.targets[first.name][self.fit_idx],
                                 config) if binary else []
        self.model.to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        # mixed precision (by default on CUDA only): float16 needs loss scaling, bfloat16 does not
        self.amp_dtype = autocast_dtype(device, config.precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.progress = Progress()
        self.best_state = self._state()

    def _build_model(self, model_options: dict) -> RepertoireClassifier:
        """The model of these options, with the clone memory filled and started when there is one."""
        clones = self.memory.clones if self.memory is not None else []
        known = self.reference if self.reference is not None and self.reference.used else None
        receptors = known.receptors() if known is not None else None
        subset_size = pool_subset_size(model_options, self.config)
        options = {"n_v_genes": len(self.store.v_genes), "n_j_genes": len(self.store.j_genes), **model_options,
                   # larger repertoires are pooled in subsets of the size training samples (model/pooling.py)
                   "pool_subset_size": subset_size,
                   "clone_memory": len(clones), "clone_radius": self.memory.rule.radius if self.memory else 0,
                   "clone_width": self.memory.width if self.memory else 0, "reference_size": len(receptors[1]) if receptors else 0,
                   "reference_width": int(receptors[1].max(initial=0)) if receptors else 0}
        try:
            model = RepertoireClassifier(ModelConfig(tasks=self.tasks, **options))
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"model config: {exc}") from None
        if self.memory is not None:
            model.set_memory(*self.memory.tensors(), v_genes=self.store.v_genes, weight=self.memory.weight, intercept=self.memory.intercept,
                             v_level=self.memory.rule.v_level)
        if known is not None:
            model.set_reference(*receptors, v_genes=self.store.v_genes, radius=known.radius, weight=known.weight,
                                intercept=known.intercept)
        return model

    def _hidden_clones(self) -> np.ndarray | None:
        """`MemoryFit.hidden` with its columns in the memory's order (None without hidden clones)."""
        if self.memory is None or self.memory.hidden is None:
            return None
        order = self.model.memory.stored_index(*self.memory.tensors()).numpy()
        hidden = np.zeros_like(self.memory.hidden)
        hidden[:, order] = self.memory.hidden
        return hidden

    def _weight_tasks(self) -> None:
        """From the fitting repertoires only: class weights, so that a rare class counts as much as a common
        one, and each numeric label's mean and standard deviation (1 where it does not vary), so that it is
        learnt in standard deviations (`TaskSpec`); validation and held-out labels are never read here."""
        for task in self.tasks:
            if task.kind == "numeric":
                values = np.asarray(self.targets[task.name][self.fit_idx], dtype=np.float64)
                values = values[~np.isnan(values)]
                if len(values) == 0:
                    raise TrainingError(f"numeric label '{task.name}' has no value on the fitting repertoires",
                                        self.store.path)
                sd = float(values.std())
                task.mean, task.scale = float(values.mean()), sd if sd > 0 else 1.0
                log.info("numeric label '%s' learnt standardised: mean %.4g, sd %.4g (fitting repertoires)",
                         task.name, task.mean, task.scale)
                continue
            k = max(2, task.n_classes)
            counts = np.bincount(self.targets[task.name][self.fit_idx], minlength=k).astype(float)
            task.class_weights = (counts.sum() / (k * np.maximum(counts, 1))).tolist()

    def _state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    # --- one update -----------------------------------------------------------------------
    def _targets(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        out = {}
        for task in self.tasks:
            values = self.targets[task.name][indices]
            dtype = torch.long if task.kind == "categorical" else torch.float32
            out[task.name] = torch.as_tensor(values, dtype=dtype, device=self.device)
        return out

    def _top_attended(self, bags: SequenceBags, hidden: torch.Tensor | None) -> tuple[SequenceBags, LeftOut]:
        """The most-attended `top_fraction` of each bag, and the softmax state of the rest.

        Only the kept sequences are back-propagated through, but the left-out ones still enter the
        forward pass (their scores and values, computed here without gradients), so training sees
        the same pooled vector as inference over the sample would.
        """
        logits, values = self.model.score(bags, chunk_size=self.config.embed_chunk, hidden_clones=hidden)
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
        return bags.select(kept), LeftOut.from_scores(logits[left], values[left], bags.bag_index()[left], bags.n_bags)

    def step(self) -> float:
        """One update; returns its loss."""
        cfg = self.config
        rng = update_rng(cfg.seed, self.progress.update)
        chosen = rng.choice(self.fit_idx, size=min(cfg.repertoires_per_update, len(self.fit_idx)), replace=False)
        reps = [self.cache[int(i)] for i in chosen]
        reps = [r.subset(sample_indices(r, cfg.sample_size, rng, cfg.sampling)) for r in reps]
        bags = SequenceBags.from_repertoires(reps).to(self.device)
        carried = torch.as_tensor(self.memory.carried[chosen], dtype=torch.float32, device=self.device) \
            if self.memory is not None else None
        matched = torch.as_tensor(self.reference.carried[chosen], dtype=torch.float32, device=self.device) \
            if self.model.reference is not None else None
        hidden = torch.as_tensor(self.hidden_clones[chosen], device=self.device) \
            if self.hidden_clones is not None else None
        with autocast(self.device, self.amp_dtype):  # kept and left-out sequences in the same precision
            self.model.eval()
            selected, left_out = self._top_attended(bags, hidden)
            self.model.train()
            output = self.model(selected, chunk_size=cfg.embed_chunk, left_out=left_out, clones_carried=carried,
                                references_carried=matched, hidden_clones=hidden)
            loss = balanced_loss(output.outputs, self._targets(chosen), self.tasks)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.progress.update += 1
        return float(loss.detach())

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, indices: np.ndarray) -> dict[str, float]:
        """Loss and metrics over whole repertoires (no sub-sampling), without gradients."""
        from deeprc_hopfield.infer import predict_outputs, task_scores

        self.model.eval()
        outputs = predict_outputs(self.model, self.cache.rows(indices), self.device,
                                  self.config.embed_chunk)
        targets = self._targets(indices)
        with torch.no_grad():
            result = {"val_loss": float(balanced_loss(outputs, targets, self.tasks))}
            if len(self.tasks) > 1:  # each task's own loss (numeric: in standard deviations, squared)
                result.update({f"val_{name}_loss": float(loss)
                               for name, loss in task_losses(outputs, targets, self.tasks).items()})
        for task in self.tasks:
            scores = task_scores(task.kind, outputs[task.name])
            for name, value in task_metrics(task.kind, scores, self.targets[task.name][indices]).items():
                result[f"val_{task.name}_{name}" if len(self.tasks) > 1 else f"val_{name}"] = value
        return result

    def _refit_memory(self, sample: SequenceBags) -> None:
        """The memory alone kept: its clones chosen again on all training repertoires (`refit_clone_memory`),
        put in the model with the refit's evidence regression as the output."""
        refit = refit_clone_memory(self.cache, self.targets[self.tasks[0].name], self.training_rows, self.config,
                                   self.store.v_genes, self.memory.rule.radius, shared=self.shared_clones,
                                   groups=self.groups)
        if refit is not None:
            self._use_refit(refit, sample)

    def _memory_of_all_training(self, sample: SequenceBags, trained: np.ndarray) -> tuple[bool, dict | None]:
        """Where the fitting repertoires left the memory empty: the memory chosen on all training repertoires
        (`refit_clone_memory`), kept alone unless the trained model (validation scores `trained`) ranks the
        validation repertoires, each counted with the clones chosen without it (inner CV), better by more
        than `selection.TRAINED_MODEL_MARGIN_SE` standard errors. Rare exact clones need every training carrier to pass the test; the fitting repertoires alone
        may hold too few (families of one-substitution variants pool their carriers, so the radius is 0 unless
        the config fixes it: also the cheaper collection, as every cohort without public clones comes here).
        Returns whether the memory alone was kept, and the choice (None when there was no memory)."""
        labels = self.targets[self.tasks[0].name]
        radius = 0 if self.config.clone_radius == AUTO else int(self.config.clone_radius)
        refit = refit_clone_memory(self.cache, labels, self.training_rows, self.config, self.store.v_genes, radius,
                                   above_chance=True, shared=self.shared_clones, groups=self.groups)
        if refit is None:
            return False, None
        choice = trained_model_wins(refit[0].carried[self.val_idx], trained, labels[self.val_idx],
                                    groups_at(self.groups, self.val_idx))
        log.info("clone memory of all training repertoires (each validation repertoire counted with the clones "
                 "found without it): %s", describe_choice(choice))
        if not choice["trained_wins"]:
            self._use_refit(refit, sample)
        return not choice["trained_wins"], choice

    def _validation_scores(self) -> np.ndarray:
        """The model's output (first task; a logit for a binary one) for each validation repertoire, scored
        whole."""
        from deeprc_hopfield.infer import predict_outputs

        self.model.eval()
        outputs = predict_outputs(self.model, self.cache.rows(self.val_idx), self.device,
                                  self.config.embed_chunk)
        return outputs[self.tasks[0].name].reshape(-1).double().cpu().numpy()

    @property
    def training_rows(self) -> np.ndarray:
        """Every training repertoire (fitting and validation), sorted store indices."""
        return np.sort(np.concatenate([self.fit_idx, self.val_idx]))

    def _use_refit(self, refit: tuple[MemoryFit, dict], sample: SequenceBags) -> None:
        """Put a memory chosen on all training repertoires in the model, its evidence regression alone as the
        output."""
        self.memory, summary = refit
        self.clone_rule = {**(self.clone_rule or {}), "refit": summary}
        self.model.replace_memory(*self.memory.tensors(), self.store.v_genes, self.memory.rule.radius,
                                  self.memory.rule.v_level)
        self.model.use_memory_alone(self.memory.weight, self.memory.intercept, sample, self.config.embed_chunk)
        self.refit_idx = self.training_rows

    def calibrate(self) -> dict[str, dict]:
        """Per binary task, the calibration of its logit fitted on the validation repertoires scored whole
        (`calibration.py`); for a refit memory alone, on every training repertoire's clones found without
        it (inner CV), as the validation repertoires helped choose them. Empty when `calibrate` is off."""
        from deeprc_hopfield.infer import predict_outputs

        binary = [task for task in self.tasks if task.kind == "binary"]
        if not self.config.calibrate or not binary:
            return {}
        if self.refit_idx is not None:
            task, rows = binary[0], self.refit_idx
            logits = self.memory.weight * np.log1p(self.memory.carried[rows]) + self.memory.intercept
            fit = fit_calibration(logits, self.targets[task.name][rows].astype(int))
            log.info("%s: %s", task.name, describe(fit, "training repertoires by their clones found without them "
                                                       "(the memory alone, refit)"))
            return {task.name: fit} if fit is not None else {}
        self.model.eval()
        outputs = predict_outputs(self.model, self.cache.rows(self.val_idx), self.device,
                                  self.config.embed_chunk)
        fitted = {}
        for task in binary:
            labels = self.targets[task.name][self.val_idx]
            fit = fit_calibration(outputs[task.name].reshape(-1).numpy(), labels.astype(int))
            log.info("%s: %s", task.name, describe(fit))
            if fit is not None:
                fitted[task.name] = fit
        return fitted

    # --- checkpoints ----------------------------------------------------------------------
    def identity(self) -> dict:
        """What a checkpoint must share with this run to be continued by `resume="auto"`: the store
        (creation time, size, ingest parameters), the fitting and validation repertoires (so the split
        and fold), the labels, the model and the training configuration; as JSON stores it. Not the package
        version: an upgrade mid-run would start it over (the checkpoint keeps it beside, `save_checkpoint`)."""
        identity = {**self._data_identity(), "model": self.model.config.to_dict()}
        if self.reference is not None:
            identity["reference"] = self.reference.reference.provenance()
        return json.loads(json.dumps(identity, default=str))

    def _data_identity(self) -> dict:
        """The part of :meth:`identity` known before any fitting: store, subjects, labels, training config (less
        its `EXECUTION_SETTINGS`)."""
        identity = {
            "store": {"created": self.store.attrs.get("created"), "n_sequences": self.store.n_sequences,
                      "parameters": self.store.parameters},
            "subjects": {"fit": [self.store.subject_ids[i] for i in self.fit_idx],
                         "validation": [self.store.subject_ids[i] for i in self.val_idx]},
            "labels": self.labels,
            "training": {k: v for k, v in asdict(self.config).items() if k not in EXECUTION_SETTINGS},
        }
        if self.groups is not None:  # the inner folds keep them whole: another grouping chooses other clones
            chosen = np.concatenate([self.fit_idx, self.val_idx])
            identity["groups"] = hashlib.sha256("\0".join(map(str, self.groups[chosen])).encode()).hexdigest()
        return json.loads(json.dumps(identity, default=str))

    def save_checkpoint(self) -> None:
        save_checkpoint(self.checkpoint_dir, self.model, self.best_state, self.optimizer, self.progress,
                        self.config, self.identity())
        self._checkpoint_kept()

    def _checkpoint_kept(self) -> None:
        """What an interrupt from here on leaves: the checkpoint, and how to go on from it."""
        interrupts.keep(f"the model was not written; its checkpoint {self.checkpoint_dir} is kept: run the command "
                        "again with --resume-if-possible (or --resume) to go on from it")

    def load_checkpoint(self, required: bool = True) -> bool:
        """Continue from the checkpoint (see `checkpoint.load_checkpoint`); returns whether it did."""
        loaded = load_checkpoint(self.checkpoint_dir, self.model, self.optimizer, self.device, self.identity(),
                                 required)
        if loaded is not None:
            self.best_state, self.progress = loaded
            self._checkpoint_kept()
        return loaded is not None

    # --- the loop -------------------------------------------------------------------------
    def run(self, progress: bool = True) -> Path:
        cfg, state = self.config, self.progress
        log.info("training on %d repertoires, validating on %d (device %s)", len(self.fit_idx),
                 len(self.val_idx), self.device)
        start_time = time.perf_counter()
        bar = tqdm(total=cfg.n_updates, initial=state.update, unit="update", desc="train", disable=not progress)
        losses: list[float] = []
        first = state.update  # after a resume, the ETA counts this run's updates only
        eta = LoggedProgress(log, "train", cfg.n_updates - first, unit="updates")
        while state.update < cfg.n_updates:
            losses.append(self.step())
            bar.update()
            eta.done = state.update - first
            interrupts.raise_if_interrupted()
            if state.update % cfg.evaluate_every == 0 or state.update == cfg.n_updates:
                row = {"update": state.update, "loss": float(np.mean(losses)), **self.evaluate(self.val_idx),
                       "seconds": round(time.perf_counter() - start_time, 2)}
                losses = []
                bar.set_postfix(loss=f"{row['loss']:.3f}", val_loss=f"{row['val_loss']:.3f}")
                log.info("update %d: %s (%s)", state.update, ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                                                                       if k != "update"), eta.line(row["seconds"]))
                if state.record(row, cfg.patience):
                    self.best_state = self._state()
                if state.stopped_early:
                    if state.update < cfg.n_updates:  # at the last update, nothing was left to stop
                        log.info("stopping early: no gain in validation loss for %d evaluations", cfg.patience)
                    break
            if state.update % cfg.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        self.save_checkpoint()
        return self.finish()

    def _subject_files(self) -> dict[str, str]:
        """The sha256 of each fitting and validation repertoire's file: `predict` tells a new patient named like one
        of them, with another file, from a training subject scored again."""
        digests = self.store.provenance()["sha256"].tolist()
        return {self.store.subject_ids[i]: digests[i] for i in np.concatenate([self.fit_idx, self.val_idx])}

    def _subject_groups(self) -> dict[str, str]:
        """The group (e.g. donor) of each fitting and validation repertoire, where the split has groups: `predict
        --group-column` scores another sample of one of these donors as the donor's training subjects are scored."""
        if self.groups is None:
            return {}
        return {self.store.subject_ids[i]: str(self.groups[i]) for i in np.concatenate([self.fit_idx, self.val_idx])}

    def _subject_sequences(self) -> tuple[dict[str, str], bytes]:
        """The :func:`~deeprc_hopfield.store.sequence_digest` of each fitting and validation repertoire (`predict`
        knows one of them re-exported or re-compressed under another name by it) and the file of their clone
        sketches (`predict` knows another sample of one of their donors by it: :mod:`deeprc_hopfield.donors`),
        from one keying of each repertoire, a repertoire at a time."""
        from deeprc_hopfield.donors import clone_sketch, sketches_file
        from deeprc_hopfield.store import sequence_digest, sequence_keys

        digests, sketches = {}, []
        for i in np.concatenate([self.fit_idx, self.val_idx]):
            repertoire = self.cache[int(i)]  # cached if small
            keys = sequence_keys(repertoire.codes, repertoire.lengths)
            digests[self.store.subject_ids[i]] = sequence_digest(repertoire, keys)
            sketches.append(clone_sketch(repertoire, keys))
        return digests, sketches_file(list(digests), sketches)

    def _store_qc(self) -> dict:
        """The QC settings the store was ingested with: `predict` reads new repertoire files with the same."""
        from deeprc_hopfield.qc import QCSettings

        return {f.name: self.store.parameters[f.name] for f in fields(QCSettings) if f.name in self.store.parameters}

    def finish(self) -> Path:
        """Write the best model (by validation loss, then against its clone memory alone) with its metrics CSV."""
        self.model.load_state_dict(self.best_state)
        alone, alone_loss, choice = False, None, None
        task = self.tasks[0]
        if len(self.tasks) == 1 and self.model.reference is None and (
                self.memory is not None or (self.config.clone_memory and self.config.clone_refit
                                            and task.kind == "binary")):
            reps = [self.cache[int(i)] for i in self.val_idx[:self.config.repertoires_per_update]]
            sample = SequenceBags.from_repertoires(reps).to(self.device)
            trained = self._validation_scores()
            if self.memory is None:
                alone, choice = self._memory_of_all_training(sample, trained)
            else:
                alone_loss = memory_alone_loss(self.memory, task, self._targets(self.val_idx)[task.name])
                choice = trained_model_wins(self.memory.validation_carried, trained,
                                            self.targets[task.name][self.val_idx], groups_at(self.groups, self.val_idx))
                alone = keep_memory_alone(self.model, self.memory, choice, sample, self.config.embed_chunk)
                if alone and self.config.clone_refit:
                    self._refit_memory(sample)
        calibration = self.calibrate()
        best = self.progress.best
        subjects = self.store.subject_ids
        sequences, sketches = self._subject_sequences()
        training = {**asdict(self.config), "store": os.path.abspath(self.store.path), "qc": self._store_qc(),
                    "species": self.store.species,
                    "best_update": best["update"],
                    "calibration": calibration,
                    "memory_alone": alone, "memory_alone_val_loss": alone_loss, "memory_choice": choice,
                    "best_val_loss": best["loss"],
                    "fit_subjects": [subjects[i] for i in self.fit_idx],
                    "validation_subjects": [subjects[i] for i in self.val_idx], "seeded_kmers": self.seeded,
                    "subject_sha256": self._subject_files(), "subject_sequences": sequences,
                    "subject_groups": self._subject_groups(), "sketch_file": SKETCH_FILE,
                    "memory_clones": self.memory.names(self.store.v_genes) if self.memory is not None else [],
                    "clone_rule": self.clone_rule,
                    "reference": self.reference.summary() if self.reference is not None else None}
        extra_files = {"metrics.csv": _history_csv(self.progress.history), SKETCH_FILE: sketches}
        if self.reference is not None:  # what interpretation marks attended sequences with
            extra_files[REFERENCE_FILE] = self.reference.reference.table.to_csv(sep="\t", index=False)
        save_model(self.out, self.model, self.labels, self.store.v_genes, self.store.j_genes, training,
                   extra_files=extra_files, force=self.force)
        interrupts.keep(None)  # the model is written: an interrupt from here on loses nothing
        log.info("wrote %s (best validation loss %.4f at update %d)", self.out, best["loss"], best["update"])
        return self.out


def _history_csv(history: list[dict]) -> str:
    if not history:
        return ""
    columns = list(dict.fromkeys(k for row in history for k in row))
    lines = [",".join(columns)]
    for row in history:
        lines.append(",".join("" if row.get(c) is None else f"{row[c]:.6g}" if isinstance(row.get(c), float)
                              else str(row[c]) for c in columns))
    return "\n".join(lines) + "\n"


def check_reference_chain(known: Reference, store: RepertoireStore) -> None:
    """Refuse, before any work, a reference none of whose receptors is of the store's chain (by the store's V genes;
    receptors of unknown chain count as of any): they could never match a clone, and training would only say the
    reference was not used."""
    chains = sorted({g.strip().upper()[:3] for g in store.v_genes if isinstance(g, str) and len(g.strip()) >= 4})
    loci = known.table["locus"].dropna().astype(str).str.upper()
    if not chains or len(loci) < len(known.table) or loci.isin(chains).any():
        return  # no V genes (the chain is not known), receptors of unknown chain, or some of the store's
    held = ", ".join(f"{locus} {n}" for locus, n in loci.value_counts().items())
    raise TrainingError(f"reference {known.name}: none of its receptors is of the store's chain{'s' * (len(chains) > 1)} "
                        f"{', '.join(chains)} (by the store's V genes; the reference holds {held}): give a reference "
                        "of that chain")


def train(store_path: str | Path, out: str | Path, config_path: str | Path | None = None,
          label_columns: list[str] | None = None, split: str | Path | None = None, fold: int | None = None,
          device: str = "auto", resume: bool | str = False, seed: int | None = None, n_updates: int | None = None,
          progress: bool = True, force: bool = False, reference: ReferenceOptions | None = None,
          clones: str | Path | None = None, checkpoint_every: int | None = None,
          embed_chunk: int | None = None) -> Path:
    """Train a model on a store and write it to `out` (a model directory).

    `split` and `fold` (together) train on the repertoires outside that fold. `resume`: False
    trains from update 0; True continues from the checkpoint `out.checkpoint` (an error when there
    is none); "auto" continues from it only when it is of this very run (store, split and fold,
    labels, model and training config less its `EXECUTION_SETTINGS`; see `checkpoint.load_checkpoint`) and starts from update 0
    otherwise, so an interrupted workflow job picks up where it stopped. An existing `out` is replaced
    only when it is an earlier model and `force` (or `resume`: continuing the run whose checkpoint lies
    beside it); an existing `out.checkpoint` that is not a checkpoint is never touched (both refused
    before any work: :func:`deeprc_hopfield.io.check_output`). `reference`: a table of known receptors
    (:mod:`deeprc_hopfield.training.reference_fit` decides whether the model uses it). `clones`: a clones file
    of this store (`deeprc-hopfield clones`) from which the clone memory's clones are read instead of collected
    (the same model). `seed`, `n_updates`, `checkpoint_every` and `embed_chunk` override the config's.
    """
    if resume not in (False, True, "auto"):
        raise TrainingError(f"resume must be False, True or 'auto', not {resume!r}")
    force = force or bool(resume)  # a resumed run replaces its own earlier model, never anything else
    check_output(out, "train", force, recognise=is_model_folder)
    check_checkpoint_target(checkpoint_dir(Path(out)))
    if resume is True:
        require_checkpoint(checkpoint_dir(Path(out)))
    model_options, config = read_config(config_path)
    overrides = {k: v for k, v in (("seed", seed), ("n_updates", n_updates), ("checkpoint_every", checkpoint_every),
                                   ("embed_chunk", embed_chunk)) if v is not None}
    if overrides:
        config = replace(config, **overrides)
    target = resolve_device(device)
    folds = Split.from_options(split, fold)
    if clones is not None and folds is None:
        raise TrainingError("--clones goes with --split and --fold: the clones file holds the clones of a split's folds")
    with RepertoireStore(store_path) as store:
        known = reference.read(store.species) if reference is not None else None
        if known is not None:
            log.info("%s", known.describe())
            check_reference_chain(known, store)
        tasks, labels = tasks_from_store(store, label_columns)
        indices = folds.training(store.subject_ids, fold) if folds is not None else np.arange(len(store))
        with contextlib.ExitStack() as stack:
            shared = (stack.enter_context(SharedClones.open(clones, store, tasks[0].name, config.seed, folds))
                      if clones is not None and config.clone_memory and tasks[0].kind == "binary" else None)
            trainer = Trainer(store, Path(out), tasks, labels, indices, model_options, config, target, force=force,
                              reference=known, shared_clones=shared, resume_required=resume is True,
                              groups=folds.groups_of(store.subject_ids) if folds is not None else None)
            if resume and trainer.load_checkpoint(required=resume is True) and trainer.progress.stopped_early:
                return trainer.finish()  # the checkpointed run had stopped early: nothing is left to train
            return trainer.run(progress=progress)
