"""Model files: a directory with `config.json` and `weights.safetensors`, never a pickle.

`config.json` holds everything needed to rebuild and use the model: the model configuration,
the tasks (label names, kinds and classes), the V/J gene tables the gene embeddings index, the
training parameters, the package and file-format versions, and the sha256 of the weights file.
Loading checks all of it and refuses a truncated, tampered or wrong-version model in one line. A model of
another package version (the same file format) loads, with one warning that names both versions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deeprc_hopfield import __version__
from deeprc_hopfield.errors import DeepRCError
from deeprc_hopfield.io import atomic_folder, sha256_file
from deeprc_hopfield.species import DEFAULT_SPECIES

MODEL_FORMAT = "deeprc-hopfield model"
MODEL_SCHEMA_VERSION = 1
#: The version of a model of another species than human (`training.species`): the versions before species were
#: recorded read every model's new files as human, and refuse a version they do not know.
SPECIES_MODEL_SCHEMA_VERSION = 2
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
#: `MODEL.checkpoint` beside a model folder holds its training checkpoint (`training.checkpoint`).
CHECKPOINT_SUFFIX = ".checkpoint"
REFERENCE_FILE = "reference.tsv"  # the known receptors training was given (`train --reference`), if any
#: The first version whose models record `package_version` in their config.json (every version that wrote models).
VERSION_RECORDED_SINCE = "0.1.0"

log = logging.getLogger(__name__)
#: The saved versions (None: not recorded) a loaded model was warned of in this process: an ensemble's folds or a
#: model loaded again warn once.
_versions_noted: set[str | None] = set()


class ModelFileError(DeepRCError):
    """A model directory that is missing, incomplete, tampered with or of another version."""


@dataclass
class SavedModel:
    """A loaded model and what it was trained on."""

    model: torch.nn.Module
    labels: dict[str, dict]  # task name -> {"kind": ..., "classes": [...]}
    v_genes: list[str]
    j_genes: list[str]
    training: dict = field(default_factory=dict)
    path: Path | None = None


def is_model_folder(directory: Path) -> bool:
    """Whether `directory` is a model folder by its own files (a `config.json` of this format), for folders
    written before output markers (see :func:`deeprc_hopfield.io.check_output`)."""
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("format") == MODEL_FORMAT


def model_members(folder: Path) -> list[Path]:
    """The model folders in a folder of models (a cross-validation's fold models), sorted. A subfolder without a
    config.json (a half-finished copy) is refused rather than left out: the ensemble would be one model short."""
    members, incomplete = [], []
    for path in sorted(folder.iterdir()):
        if path.is_dir() and not path.name.startswith(".") and not path.name.endswith(CHECKPOINT_SUFFIX):
            (members if (path / CONFIG_FILE).is_file() else incomplete).append(path)
    if members and incomplete:
        raise ModelFileError(f"{incomplete[0].name} holds no {CONFIG_FILE} beside the models "
                             f"{', '.join(p.name for p in members)}: not a whole model (a half-finished copy?); "
                             "complete it or move it out of the folder", folder)
    return members


def save_model(directory: str | Path, model: torch.nn.Module, labels: dict[str, dict], v_genes: list[str],
               j_genes: list[str], training: dict | None = None,
               extra_files: dict[str, str | bytes] | None = None, force: bool = False) -> Path:
    """Write `model` to `directory` atomically (a temporary folder beside it, renamed at the end).

    `model` must have a `config` attribute with `to_dict()` (a :class:`ModelConfig`); `extra_files`
    (name -> text or bytes, e.g. the training metrics) are written beside the weights. An existing `directory`
    is replaced only when it is an earlier model and `force` (:func:`deeprc_hopfield.io.check_output`).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    with atomic_folder(directory, "train", force, recognise=is_model_folder) as tmp:
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": MODEL_FORMAT})
        config = {
            "format": MODEL_FORMAT,
            "schema_version": _schema_version((training or {}).get("species", DEFAULT_SPECIES)),
            "package_version": __version__,
            "model": model.config.to_dict(),
            "labels": labels,
            "genes": {"v": list(v_genes), "j": list(j_genes)},
            "training": training or {},
            "weights_sha256": sha256_file(tmp / WEIGHTS_FILE),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for name, content in (extra_files or {}).items():
            if isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                (tmp / name).write_text(content)
    return directory


def _schema_version(species: str) -> int:
    """The schema version a model of `species` is written with."""
    return MODEL_SCHEMA_VERSION if species == DEFAULT_SPECIES else SPECIES_MODEL_SCHEMA_VERSION


def read_model_config(directory: str | Path) -> dict:
    """The checked `config.json` of a model directory (weights not loaded)."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if directory.is_file():
        raise ModelFileError(_not_a_folder(directory), directory)
    if not directory.is_dir():
        raise ModelFileError("model directory not found", directory)
    if not config_path.is_file():
        raise ModelFileError(f"not a model directory: no {CONFIG_FILE}", directory)
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{CONFIG_FILE} is not valid JSON ({exc})", config_path) from None
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise ModelFileError("not a deeprc-hopfield model", config_path)
    if config.get("schema_version") not in (MODEL_SCHEMA_VERSION, SPECIES_MODEL_SCHEMA_VERSION):
        raise ModelFileError(
            f"model file version {config.get('schema_version')}, but this deeprc-hopfield ({__version__}) reads "
            f"versions {MODEL_SCHEMA_VERSION} and {SPECIES_MODEL_SCHEMA_VERSION}; retrain or use the matching "
            "deeprc-hopfield version", config_path)
    return config


def _not_a_folder(path: Path) -> str:
    """What a file given where a model folder goes is, and what to give instead."""
    from deeprc_hopfield.store import is_store_file

    if path.name == CONFIG_FILE:
        return f"a model's {CONFIG_FILE}, not its folder: give the folder, {path.parent}"
    if is_store_file(path):
        return "a repertoire store (ingest's output), not a model folder: give it with --store, and the model " \
               "folder (`train --out`) with --model"
    return f"a file, not a model folder (the folder `train --out` wrote, with {CONFIG_FILE} and {WEIGHTS_FILE})"


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> SavedModel:
    """Load a model directory written by :func:`save_model`, checking format, version and checksum."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from deeprc_hopfield.model import ModelConfig, RepertoireClassifier

    directory = Path(directory)
    config = read_model_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"{WEIGHTS_FILE} is missing", directory)
    if sha256_file(weights) != config.get("weights_sha256"):
        raise ModelFileError(f"{WEIGHTS_FILE} does not match the checksum in {CONFIG_FILE} "
                             "(truncated or modified)", weights)
    try:
        model = RepertoireClassifier(ModelConfig.from_dict(config["model"]))
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (SafetensorError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"cannot load the model: {str(exc).splitlines()[0]}", directory) from None
    model.to(device).eval()
    _note_version(config, directory)
    order = [task.name for task in model.config.tasks if task.name in config["labels"]]  # config.json sorts its keys
    labels = {name: config["labels"][name] for name in [*order, *sorted(set(config["labels"]) - set(order))]}
    return SavedModel(model=model, labels=labels, v_genes=config["genes"]["v"],
                      j_genes=config["genes"]["j"], training=config.get("training", {}), path=directory)


def saved_version(config: dict) -> str | None:
    """The deeprc-hopfield version that saved the model of `config` (its config.json), or None where none is
    recorded (a config.json written otherwise or edited)."""
    version = config.get("package_version")
    return str(version) if version else None


def _note_version(config: dict, directory: Path) -> None:
    """Warn, once a process for each saved version, that a model was saved by another version than this one: its
    file format is the same (:func:`read_model_config` refuses another), but the code that turns its weights into
    scores may have changed since. Never an error: a model trained months ago must still load."""
    saved = saved_version(config)
    if saved == __version__ or saved in _versions_noted:
        return
    _versions_noted.add(saved)
    if saved is None:
        log.warning("%s: its config.json names no deeprc-hopfield version (saved by a version before %s recorded "
                    "it, or edited); loaded by %s as it is", directory, VERSION_RECORDED_SINCE, __version__)
    else:
        log.warning("%s was saved by deeprc-hopfield %s and is loaded by %s: its scores may differ from those %s "
                    "gave (said once for the models of %s)", directory, saved, __version__, saved, saved)
