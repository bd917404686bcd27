"""Checkpoints: what lets an interrupted training run continue to the weights of an uninterrupted one.

A checkpoint is a folder `MODEL_DIR.checkpoint` beside the model: the model's and the best
update's weights and the optimizer's state (safetensors, no unpickling), and the run's progress,
identity and package version (JSON). It is replaced atomically: the new one is written beside, the old one renamed
aside, the new one renamed in, the old one removed, so a crash at any point leaves one whole checkpoint.
"""

from __future__ import annotations

import glob
import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from deeprc_hopfield import __version__
from deeprc_hopfield.io import OutputExistsError, atomic_folder, restore_folder
from deeprc_hopfield.saved_model import CHECKPOINT_SUFFIX
from deeprc_hopfield.training.config import EXECUTION_SETTINGS, TrainingConfig, TrainingError
from deeprc_hopfield.training.selection import Progress

log = logging.getLogger(__name__)
STATE_FILE, PROGRESS_FILE = "state.safetensors", "progress.json"


def checkpoint_dir(out: Path) -> Path:
    """The checkpoint folder of the model folder `out`."""
    return out.with_name(out.name + CHECKPOINT_SUFFIX)


def check_checkpoint_target(directory: Path) -> None:
    """Refuse, before any work, a `MODEL_DIR.checkpoint` that exists and is not a checkpoint (nor an empty
    folder): training replaces its checkpoint as it goes, so it must never be someone else's folder."""
    try:
        own = directory.is_dir() and (not any(directory.iterdir()) or (directory / PROGRESS_FILE).is_file()
                                      or (directory / STATE_FILE).is_file())
    except OSError:
        own = False
    if (directory.exists() or directory.is_symlink()) and not own:
        raise OutputExistsError("exists and is not a training checkpoint, where training keeps its checkpoint; "
                                "it was left as it is and nothing was written (choose another --out)", directory)


def require_checkpoint(directory: Path, identity: dict | None = None) -> None:
    """`--resume` without a readable checkpoint (nor one an interrupted replacement left aside), or one of another
    run by the parts of `identity` known before the clone memory's fitting (store, subjects, labels), is refused
    before that work (minutes on a large cohort). The model's part is judged later (`load_checkpoint`): it needs
    the run's seeded model."""
    from safetensors import SafetensorError, safe_open

    aside = directory.parent.glob(f".{glob.escape(directory.name)}.*.old")  # left by an interrupted replacement
    if not (directory / STATE_FILE).is_file():
        if not any(aside):
            raise TrainingError(f"--resume, but there is no checkpoint {directory}", directory)
        return
    try:
        meta = json.loads((directory / PROGRESS_FILE).read_text())
        with safe_open(str(directory / STATE_FILE), framework="pt") as state:
            state.keys()
    except (OSError, ValueError, SafetensorError) as exc:
        raise TrainingError(f"--resume, but the checkpoint {directory} is unreadable ({exc})", directory) from None
    differ = _differing(meta, identity or {})
    if differ and differ != ["training"]:
        raise TrainingError(f"--resume, but {_another_run(directory, differ)}", directory)


def _differing(meta: dict, identity: dict) -> list[str]:
    """The parts of `identity` in which the checkpoint (its progress file's `meta`) is of another run (its training
    config compared without `EXECUTION_SETTINGS`, which checkpoints written before they were left out hold)."""
    stored = dict((meta.get("identity") if isinstance(meta, dict) else None) or {})
    if isinstance(stored.get("training"), dict):
        stored["training"] = {k: v for k, v in stored["training"].items() if k not in EXECUTION_SETTINGS}
    return [key for key, value in identity.items() if stored.get(key) != value]


def _another_run(directory: Path, differ: list[str]) -> str:
    return f"the checkpoint {directory} is of another run (its {', '.join(differ)} differ)"


def save_checkpoint(directory: Path, model: torch.nn.Module, best_state: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, progress: Progress, config: TrainingConfig,
                    identity: dict) -> None:
    """Model, optimizer, best weights, progress and identity, written atomically (safetensors + JSON).

    The package version is kept beside the identity, not in it: the identity says whether a checkpoint is of this
    run, and an upgrade of the package between an interruption and its resume (a bug fix, say) changes neither the
    data nor the settings; in it, the upgrade would throw away the training done (`--resume-if-possible` would start
    from update 0, `--resume` refuse). The model saved at the end records the version that finished it.
    """
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    optimizer_state = optimizer.state_dict()
    for pid, state in optimizer_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta = {**asdict(progress), "param_groups": optimizer_state["param_groups"], "config": asdict(config),
            "identity": identity, "package_version": __version__}
    with atomic_folder(directory) as tmp:
        save_file(tensors, str(tmp / STATE_FILE))
        (tmp / PROGRESS_FILE).write_text(json.dumps(meta))


def load_checkpoint(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, identity: dict, required: bool) -> tuple[dict, Progress] | None:
    """Load the checkpoint into `model` and `optimizer`; returns the best weights and the progress, or
    None to train from update 0.

    `required` (``--resume``): a missing or unreadable checkpoint, or one of another store, split,
    fold, labels or model (its `identity` differs), is an error; a different training config (more
    updates) is only logged. Otherwise (``--resume-if-possible``) the checkpoint is used only when
    all of `identity` matches, and training starts from update 0 when it does not, saying why.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    def fresh(reason: str) -> None:
        if required:
            raise TrainingError(f"--resume, but {reason}", directory)
        log.info("not resuming: %s; training from update 0", reason)

    if restore_folder(directory):
        log.warning("the last checkpoint replacement of %s was interrupted; continuing from the one before", directory)
    state_file = directory / STATE_FILE
    if not state_file.is_file():
        return fresh(f"there is no checkpoint {directory}")
    try:
        meta = json.loads((directory / PROGRESS_FILE).read_text())
        tensors = load_file(str(state_file), device=str(device))
    except (OSError, ValueError, SafetensorError) as exc:
        return fresh(f"the checkpoint {directory} is unreadable ({exc})")
    differ = _differing(meta, identity)
    if differ and (not required or differ != ["training"]):
        return fresh(_another_run(directory, differ))
    if differ:
        log.warning("resuming although the training config differs from the checkpoint's")
    if meta.get("package_version", __version__) != __version__:  # checkpoints before it was recorded: said nothing
        log.info("the checkpoint was written by deeprc-hopfield %s; continuing it with %s", meta["package_version"],
                 __version__)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    optim_state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            optim_state.setdefault(int(pid), {})[name] = value if name != "step" else value.cpu()
    optimizer.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
    progress = Progress(meta["update"], meta["best"], meta["history"], meta["evaluations_without_gain"],
                        meta.get("stopped_early", False))
    log.info("resumed from %s at update %d", directory, progress.update)
    return best_state, progress
