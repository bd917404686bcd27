"""The `--device` option: a name (auto, cpu, cuda) to the torch device every command runs on, and the
numeric precision its model passes run in."""

from __future__ import annotations

import contextlib

import torch

from deeprc_hopfield.errors import DeviceError

#: Names `--device` accepts.
DEVICES = ("auto", "cpu", "cuda")
#: Precisions of the model's passes: auto = bfloat16 (float16 where the GPU lacks it) on CUDA, float32 on the CPU.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


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


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype of mixed precision (`torch.autocast`) for `precision` on `device`; None = float32 throughout."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision '{precision}'; choose {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None if precision == "float32" else getattr(torch, precision)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision of `dtype` on `device` (matrix products in it, sums kept in float32), or nothing for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
