"""What a training run is told: the `training:` settings, the model options, the tasks and the inner split."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc_hopfield.clone_rules import clone_rules
from deeprc_hopfield.devices import PRECISIONS
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.io import read_yaml
from deeprc_hopfield.model import DEFAULT_CHUNK, ModelConfig, TaskSpec
from deeprc_hopfield.sampling import SAMPLING_MODES
from deeprc_hopfield.store import RepertoireStore

log = logging.getLogger(__name__)

VALIDATION_STREAM = 2**31 - 1  # the random stream of the inner validation split, apart from every update's
#: `training:` settings of how a run goes, not of what it learns (the weights are the same whatever they are): a
#: checkpoint made under other values is continued, and the workflow's train jobs do not re-run when they change
#: (`workflow/rules/common.smk` keeps the same list).
EXECUTION_SETTINGS = ("checkpoint_every", "embed_chunk")


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
    embed_chunk: int = DEFAULT_CHUNK
    precision: str = "auto"  # of the model's passes (devices.PRECISIONS): auto = bfloat16 on CUDA, float32 on the CPU
    seed: int = 0
    # first-layer filters started from gapped k-mers enriched in positive fitting repertoires (training/seeding.py)
    seed_filters: int = 8  # 0 = all filters random
    seed_sample: int = 100_000  # sequences counted per fitting repertoire (a sample of larger ones)
    seed_kmer: int = 4  # residues per k-mer
    seed_span: int = 6  # positions a k-mer may spread over (gaps included)
    seed_strength: float = 2.0  # filter weight per matching residue
    seed_clones: int = 0  # of seed_filters, how many are contiguous k-mers of shared clones (one per clone)
    seed_clone_kmer: int = 7  # residues per clone k-mer (at most the kernel size)
    # public clones (CDR3s) that the public-clone test associates with positives get an attention bonus (model/memory.py)
    clone_memory: bool = True
    # the test's AUC must reach this in inner CV on the fitting and on the validation repertoires; a memory chosen on
    # all training repertoires where these leave it empty need only rank them better than chance
    clone_memory_min_auc: float = 0.7
    # what makes receptors one public clone (clone_rules.py), for the memory: chosen by inner CV among the candidates
    clone_keys: str = "auto"  # V level of a clone key: auto, family, gene or none (the CDR3 alone)
    clone_radius: int | str = "auto"  # auto, 0 (exact) or 1 (one substitution on the CDR3 core)
    clone_pgen: bool = True  # leave out chance-public clones (OLGA pgen above a cutoff) where inner CV says so
    clone_pgen_limit: int = 20_000  # the most candidate clones one fit asks pgen for (public_clones.PGEN_LIMIT)
    clone_refit: bool = True  # the memory alone chosen, or left empty: choose its clones again on all training repertoires
    # a reference of known receptors (`train --reference`) is used when its match counts reach this AUC likewise
    reference_min_auc: float = 0.7
    # binary outputs: fit slope and intercept of the logit on the validation repertoires scored whole (deeprc_hopfield/calibration.py)
    calibrate: bool = True

    def __post_init__(self) -> None:
        self._check_types()
        checks = [
            (self.n_updates >= 1, "n_updates must be >= 1"),
            (self.repertoires_per_update >= 1, "repertoires_per_update must be >= 1"),
            (self.sample_size >= 1, "sample_size must be >= 1"),
            (self.sampling in SAMPLING_MODES, f"sampling must be one of {', '.join(SAMPLING_MODES)}"),
            (0 < self.top_fraction <= 1, "top_fraction must be in (0, 1]"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.patience >= 0, "patience must be >= 0 (0 = never stop early)"),
            (self.embed_chunk >= 1, "embed_chunk must be >= 1"),
            (self.clone_pgen_limit >= 1, "clone_pgen_limit must be >= 1"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (0 < self.validation_fraction < 1, "validation_fraction must be in (0, 1)"),
            (self.evaluate_every >= 1 and self.checkpoint_every >= 1, "evaluate_every and checkpoint_every must be >= 1"),
            (self.seed_filters >= 0, "seed_filters must be >= 0"),
            (self.seed_sample >= 1, "seed_sample must be >= 1"),
            (1 <= self.seed_kmer <= self.seed_span <= 8, "need 1 <= seed_kmer <= seed_span <= 8"),
            (self.seed_strength > 0, "seed_strength must be > 0"),
            (0 <= self.seed_clones and 2 <= self.seed_clone_kmer <= 9, "need seed_clones >= 0 and 2 <= seed_clone_kmer <= 9"),
            (0.5 <= self.clone_memory_min_auc <= 1, "clone_memory_min_auc must be in [0.5, 1]"),
            (0.5 <= self.reference_min_auc <= 1, "reference_min_auc must be in [0.5, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(f"training config: {message}")
        try:
            clone_rules(self.clone_keys, self.clone_radius)
        except DeepRCError as exc:
            raise TrainingError(f"training config: {exc}") from None

    def _check_types(self) -> None:
        """Each value of the type of its default (a whole number may stand for a float, and a float of a whole
        number, as 2000.0, for a whole number, as the workflow's schema takes them; `clone_radius` is either)."""
        for field in fields(self):
            value = getattr(self, field.name)
            kinds = (int, str) if field.name == "clone_radius" else (type(field.default),)
            if int in kinds and isinstance(value, float) and value.is_integer():
                value = int(value)
                setattr(self, field.name, value)
            if isinstance(value, bool) != (bool in kinds) or not any(
                    isinstance(value, float if kind is float else kind) or (kind is float and isinstance(value, int))
                    for kind in kinds):
                raise TrainingError(f"training config: {field.name} must be {' or '.join(_KIND_WORDS[k] for k in kinds)}"
                                    f", got {value!r}{_yaml_hint(value)}")


_KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _yaml_hint(value: object) -> str:
    """Why YAML gave text where a number was meant: it reads `1e-3` as text, `1.0e-3` as a number."""
    if not isinstance(value, str) or "e" not in value.lower():
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (YAML reads a number without a decimal point before the exponent as text: write 1.0e-3 for 1e-3)"


def _dataclass_from(cls: type, values: dict, what: str):  # noqa: ANN202
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainingError(f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


def read_config(path: str | Path | None) -> tuple[dict, TrainingConfig]:
    """Model options and the training config from a YAML file with `model:` and `training:` sections."""
    if path is None:
        return {}, TrainingConfig()
    return config_from_sections(read_yaml(path, TrainingError) or {}, path)


def config_from_sections(data: object, path: str | Path) -> tuple[dict, TrainingConfig]:
    """Model options and the training config from a parsed config (`model:` and `training:` sections), refused in
    one line naming `path` as the model and training would refuse them (the workflow checks its config here
    before any job)."""
    if not isinstance(data, dict):
        raise TrainingError("config must be a mapping with sections 'model' and/or 'training'", path)
    unknown = sorted(map(str, set(data) - {"model", "training"}))
    if unknown:
        raise TrainingError(f"unknown section(s) {', '.join(map(repr, unknown))}; a config has 'model' and/or "
                            "'training'", path)
    for section in ("model", "training"):
        if not isinstance(data.get(section) or {}, dict):
            raise TrainingError(f"section '{section}' must be a mapping of names to values", path)
    model = dict(data.get("model") or {})
    try:
        training = _dataclass_from(TrainingConfig, data.get("training") or {}, "training")
        check_model_options(model, training)
    except TrainingError as exc:
        raise TrainingError(exc.message, path) from None
    except TypeError as exc:
        raise TrainingError(str(exc), path) from None
    return model, training


#: The fields of the model's config that training sets (from the store, the labels and the clone memory), not the
#: config's `model:` section.
SET_BY_TRAINING = frozenset({"tasks", "n_v_genes", "n_j_genes", "clone_memory", "clone_radius", "clone_width",
                             "reference_size", "reference_width"})


def pool_subset_size(model_options: dict, config: TrainingConfig) -> int:
    """The size of the subsets the model pools larger repertoires in: the training sample size unless the options
    say; 0 (off) or at least a sample, since training pools whole samples."""
    size = model_options.get("pool_subset_size")
    size = config.sample_size if size is None else size
    if 0 < size < config.sample_size:
        raise TrainingError(f"model config: pool_subset_size ({size:,}) must be 0 (off) or at least "
                            f"training.sample_size ({config.sample_size:,})")
    return size


def check_model_options(model_options: dict, config: TrainingConfig) -> None:
    """Refuse model options that the model would refuse once training has started (its own checks, on one binary
    task, and the pool subset size against the training sample size)."""
    known = {f.name for f in fields(ModelConfig)} - SET_BY_TRAINING
    unknown = sorted(map(str, set(model_options) - known))
    if unknown:
        ours = [key for key in unknown if key in SET_BY_TRAINING]
        raise TrainingError(f"model: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                            + (f" ({', '.join(ours)}: set by training from the store and the `training:` section)"
                               if ours else ""))
    size = pool_subset_size(model_options, config)
    try:
        ModelConfig(tasks=[TaskSpec("label", "binary")], **{**model_options, "pool_subset_size": size})
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"model config: {exc}") from None


def tasks_from_store(store: RepertoireStore, label_columns: list[str] | None) -> tuple[list[TaskSpec], dict]:
    """One task per label column (default: every label of the store) and the label descriptions."""
    names = label_columns or store.label_names
    if not names:
        raise TrainingError("the store has no label to train on (ingest with --label-column)", store.path)
    repeated = next((name for k, name in enumerate(names) if name in names[:k]), None)
    if repeated is not None:  # one task per label: the model's task names must differ
        raise TrainingError(f"--label-column '{repeated}' given twice; name each label once")
    tasks, labels = [], {}
    for name in names:
        label = store.label(name)
        if label.kind != "numeric" and len(label.classes) < 2:
            raise TrainingError(f"label '{name}' has one class only ({', '.join(map(str, label.classes)) or 'none'}): "
                                "a classifier needs repertoires of at least two classes", store.path)
        n_classes = len(label.classes) if label.kind == "categorical" else 1
        tasks.append(TaskSpec(name=name, kind=label.kind, n_classes=n_classes))
        labels[name] = {"kind": label.kind, "classes": label.classes}
    return tasks, labels


def inner_validation_split(indices: np.ndarray, strata: np.ndarray, fraction: float,
                           seed: int, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of the training repertoires into (fit, validation); with `groups` (each
    repertoire's, e.g. its donor's) every group whole on one side, so a donor's other sample never validates it."""
    if groups is not None:
        return _grouped_validation_split(indices, strata, fraction, seed, np.asarray(groups).astype(str))
    rng = np.random.default_rng([seed, VALIDATION_STREAM])
    fit, validation = [], []
    for value in np.unique(strata):
        members = rng.permutation(indices[strata == value])
        n_val = max(1, int(round(fraction * len(members)))) if len(members) > 1 else 0
        validation.extend(members[:n_val])
        fit.extend(members[n_val:])
    return np.sort(np.array(fit)), np.sort(np.array(validation))


#: Fewest groups of a class in a grouped inner validation split below which training warns: early stopping,
#: calibration and the choice of the clone memory alone then rest on one or two donors.
MIN_VALIDATION_GROUPS = 3


def describe_validation_groups(groups: np.ndarray, strata: np.ndarray, fit: np.ndarray, validation: np.ndarray,
                               classes: list[str]) -> None:
    """Log how many groups (store-wide `groups`, e.g. donors) each side of a grouped inner split holds, and warn
    where a class (store-wide `strata`, codes of `classes`) has fewer than :data:`MIN_VALIDATION_GROUPS` of them in
    validation."""
    groups = np.asarray(groups).astype(str)
    log.info("inner split by group: fitting on %d repertoires of %d groups, validating on %d of %d", len(fit),
             len(set(groups[fit])), len(validation), len(set(groups[validation])))
    per_class = pd.Series(groups[validation]).groupby(strata[validation]).nunique()
    per_class = per_class.reindex(np.unique(strata[np.concatenate([fit, validation])]), fill_value=0)
    if len(per_class) > 1 and per_class.min() < MIN_VALIDATION_GROUPS:
        log.warning("the inner validation split holds %s group(s) of each class (%s): early stopping, calibration and "
                    "the choice of the clone memory alone rest on that few donors; a larger validation_fraction or "
                    "cohort, or fewer folds, steadies them", "/".join(map(str, per_class.tolist())),
                    ", ".join(f"{classes[k]}: {v}" for k, v in per_class.items()))


def _grouped_validation_split(indices: np.ndarray, strata: np.ndarray, fraction: float, seed: int,
                              groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`inner_validation_split` by whole groups: per stratum (a group's is its first repertoire's), groups in
    a seeded order go to validation until it holds `fraction` of the stratum's repertoires; one group at least
    stays to fit on."""
    rng = np.random.default_rng([seed, VALIDATION_STREAM])
    stratum_of = dict(zip(groups[::-1], strata[::-1]))  # each group's first repertoire's stratum
    size = pd.Series(groups).value_counts()
    chosen: set[str] = set()
    for value in np.unique(strata):
        names = rng.permutation(sorted(g for g, s in stratum_of.items() if s == value))
        target = max(1, int(round(fraction * size[names].sum()))) if len(names) > 1 else 0
        taken = 0
        for name in names[:-1]:  # a group goes in where it brings validation nearer its share (one at least)
            if abs(taken + size[name] - target) < abs(taken - target) or not taken and target:
                chosen.add(name)
                taken += int(size[name])
    validation = np.isin(groups, list(chosen))
    return np.sort(indices[~validation]), np.sort(indices[validation])
