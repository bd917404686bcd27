"""The `--device` option: a name (auto, cpu, cuda) to the torch device every command runs on."""

from __future__ import annotations

import torch

from deeprc_hopfield.errors import DeviceError

#: Names `--device` accepts.
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """The device named by `--device`: 'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'.

    Raises :class:`DeviceError` for an unknown name, or for 'cuda' when no CUDA GPU is available.
    """
    if name not in DEVICES:
        raise DeviceError(f"unknown device '{name}'; choose {', '.join(DEVICES[:-1])} or {DEVICES[-1]}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda, but no CUDA GPU is available (use --device cpu or auto)")
    return torch.device(name)
