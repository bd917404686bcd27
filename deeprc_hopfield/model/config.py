"""Hyper-parameters of a repertoire classifier: one dataclass, saved with the model, that builds it.

`ModelConfig.to_dict()` gives plain JSON types; `ModelConfig.from_dict()` validates every field and
raises `ValueError` naming the field and the bad value, so a hand-edited or damaged config is refused
with one clear message instead of failing deep inside torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

TASK_KINDS = ("binary", "categorical", "numeric")


@dataclass
class TaskSpec:
    """One prediction target.

    name: label name (a key of the model's outputs); kind: 'binary', 'categorical' or 'numeric';
    n_classes: number of output units' classes (1 for binary and numeric, >= 2 for categorical);
    class_weights: optional loss weight per class (binary: [negative, positive]; categorical: one per
    class; not allowed for numeric).
    mean, scale: numeric tasks only, both or neither: the label's mean and standard deviation on the
    fitting repertoires, in the label's units. With them the output network's unit predicts the
    standardised value (label - mean) / scale and the model outputs unit * scale + mean, so outputs
    are in the label's units while the loss is in standard deviations (`heads.task_losses`). None (a
    model saved before them): the unit is the value itself.
    """

    name: str
    kind: str
    n_classes: int = 1
    class_weights: list[float] | None = None
    mean: float | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"task name must be a non-empty string, got {self.name!r}")
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task '{self.name}': kind must be one of {', '.join(TASK_KINDS)}, got {self.kind!r}")
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int):
            raise ValueError(f"task '{self.name}': n_classes must be an integer, got {self.n_classes!r}")
        if self.kind in ("binary", "numeric") and self.n_classes != 1:
            raise ValueError(f"task '{self.name}': n_classes must be 1 for a {self.kind} task, got {self.n_classes}")
        if self.kind == "categorical" and self.n_classes < 2:
            raise ValueError(f"task '{self.name}': a categorical task needs n_classes >= 2, got {self.n_classes}")
        if self.class_weights is not None:
            if self.kind == "numeric":
                raise ValueError(f"task '{self.name}': class_weights make no sense for a numeric task")
            weights = list(self.class_weights)
            expected = 2 if self.kind == "binary" else self.n_classes
            if len(weights) != expected:
                raise ValueError(f"task '{self.name}': class_weights needs {expected} values, got {len(weights)}")
            for w in weights:
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
                    raise ValueError(f"task '{self.name}': class weights must be finite and > 0, got {w!r}")
            self.class_weights = [float(w) for w in weights]
        if (self.mean is None) != (self.scale is None):
            raise ValueError(f"task '{self.name}': mean and scale go together, got mean={self.mean!r}, "
                             f"scale={self.scale!r}")
        if self.mean is not None:
            if self.kind != "numeric":
                raise ValueError(f"task '{self.name}': mean and scale are for numeric tasks only")
            for key, value in (("mean", self.mean), ("scale", self.scale)):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"task '{self.name}': {key} must be a finite number, got {value!r}")
            if self.scale <= 0:
                raise ValueError(f"task '{self.name}': scale must be > 0, got {self.scale!r}")
            self.mean, self.scale = float(self.mean), float(self.scale)

    @property
    def n_outputs(self) -> int:
        """Output units of this task: 1 logit (binary), n_classes logits, or 1 value (numeric)."""
        return self.n_classes if self.kind == "categorical" else 1


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"ModelConfig.{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class ModelConfig:
    """Architecture of `RepertoireClassifier` (defaults follow DeepRC's CMV model).

    Embedder: 1D CNN with `n_conv_layers` layers of `n_filters` filters of width `kernel_size` over
    one-hot amino acids plus `position_features` (0 or 3) position channels; optional V/J gene
    embeddings of `gene_embedding_dim` (0 = off; tables of `n_v_genes`/`n_j_genes` rows plus one
    'unknown' row) and, with `use_counts`, log1p(count) plus an 'unknown count' flag.
    Pooling: Hopfield pooling with `attention_heads` learned query patterns, `attention_dim` per head,
    inverse temperature `beta` (None = 1/sqrt(attention_dim)), optionally learned, iterated
    `update_steps` times; with `energy_feature` the output network also sees each head's
    log-mean-exp of attention logits (the bag's Hopfield energy, see `pooling`); a bag larger than
    `pool_subset_size` is pooled as the mean over subsets of about that size, as training saw it
    (None: training fills in its sample size, and a model saved without it pools whole bags; 0 = off). Head: `head_layers` SELU layers of `head_hidden` units, one output per task.
    Memory: `clone_memory` stored public clones (0 = none) whose copies (exact, or within one
    substitution at `clone_radius` 1, junctions up to `clone_width` residues) get a learned attention
    bonus (see `memory`); training fills it. Reference: `reference_size` known receptors of junctions
    up to `reference_width` residues (0 = none; see `reference`), filled by training from `--reference`.
    """

    tasks: list[TaskSpec] = field(default_factory=list)
    kernel_size: int = 9
    n_filters: int = 32
    n_conv_layers: int = 1
    position_features: int = 3
    n_v_genes: int = 0
    n_j_genes: int = 0
    gene_embedding_dim: int = 0
    use_counts: bool = False
    attention_heads: int = 4
    attention_dim: int = 32
    beta: float | None = None
    learn_beta: bool = False
    update_steps: int = 1
    energy_feature: bool = True
    pool_subset_size: int | None = None
    head_hidden: int = 32
    head_layers: int = 1
    clone_memory: int = 0
    clone_radius: int = 0
    clone_width: int = 0
    reference_size: int = 0
    reference_width: int = 0

    def __post_init__(self) -> None:
        tasks = []
        for task in self.tasks:
            if isinstance(task, dict):
                task = TaskSpec(**task)
            if not isinstance(task, TaskSpec):
                raise ValueError(f"ModelConfig.tasks must hold TaskSpec objects, got {task!r}")
            tasks.append(task)
        self.tasks = tasks
        if not self.tasks:
            raise ValueError("ModelConfig.tasks must name at least one task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"ModelConfig.tasks: task names must be unique, got {names}")
        _check_int("kernel_size", self.kernel_size, 1)
        _check_int("n_filters", self.n_filters, 1)
        _check_int("n_conv_layers", self.n_conv_layers, 1)
        _check_int("position_features", self.position_features, 0)
        if self.position_features not in (0, 3):
            raise ValueError(f"ModelConfig.position_features must be 0 or 3, got {self.position_features!r}")
        _check_int("n_v_genes", self.n_v_genes, 0)
        _check_int("n_j_genes", self.n_j_genes, 0)
        _check_int("gene_embedding_dim", self.gene_embedding_dim, 0)
        if not isinstance(self.use_counts, bool):
            raise ValueError(f"ModelConfig.use_counts must be true or false, got {self.use_counts!r}")
        _check_int("attention_heads", self.attention_heads, 1)
        _check_int("attention_dim", self.attention_dim, 1)
        if self.beta is not None:
            if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) \
                    or not math.isfinite(self.beta) or self.beta <= 0:
                raise ValueError(f"ModelConfig.beta must be a finite number > 0 or null, got {self.beta!r}")
            self.beta = float(self.beta)
        if not isinstance(self.learn_beta, bool):
            raise ValueError(f"ModelConfig.learn_beta must be true or false, got {self.learn_beta!r}")
        _check_int("update_steps", self.update_steps, 1)
        if not isinstance(self.energy_feature, bool):
            raise ValueError(f"ModelConfig.energy_feature must be true or false, got {self.energy_feature!r}")
        if self.pool_subset_size is not None:
            _check_int("pool_subset_size", self.pool_subset_size, 0)
        _check_int("head_hidden", self.head_hidden, 1)
        _check_int("head_layers", self.head_layers, 0)
        _check_int("clone_memory", self.clone_memory, 0)
        _check_int("clone_width", self.clone_width, 0)
        if self.clone_radius not in (0, 1) or isinstance(self.clone_radius, bool):
            raise ValueError(f"ModelConfig.clone_radius must be 0 or 1, got {self.clone_radius!r}")
        _check_int("reference_size", self.reference_size, 0)
        _check_int("reference_width", self.reference_width, 0)

    @property
    def beta_value(self) -> float:
        """The initial inverse temperature: `beta`, or 1/sqrt(attention_dim) when it is None."""
        return self.beta if self.beta is not None else 1.0 / math.sqrt(self.attention_dim)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe dictionary (tasks as a list of dictionaries)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build and validate a config; unknown keys are refused (`ValueError`)."""
        if not isinstance(data, dict):
            raise ValueError(f"a model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config key(s): {', '.join(unknown)}")
        data = dict(data)
        tasks = data.get("tasks", [])
        if not isinstance(tasks, list):
            raise ValueError("ModelConfig.tasks must be a list")
        task_keys = {f.name for f in fields(TaskSpec)}
        parsed = []
        for task in tasks:
            if not isinstance(task, dict):
                raise ValueError(f"each task must be a mapping, got {task!r}")
            extra = sorted(set(task) - task_keys)
            if extra:
                raise ValueError(f"unknown task key(s): {', '.join(extra)}")
            try:
                parsed.append(TaskSpec(**task))
            except TypeError as exc:  # a missing name/kind
                raise ValueError(f"bad task {task!r}: {exc}") from None
        data["tasks"] = parsed
        return cls(**data)
