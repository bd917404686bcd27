"""`--device`: names to torch devices, an absent or unknown device refused in one line."""

from __future__ import annotations

import pytest
import torch

from deeprc_hopfield.devices import resolve_device
from deeprc_hopfield.errors import DeepRCError, DeviceError


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_unknown_and_absent_devices_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'; choose auto, cpu or cuda"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeepRCError, match="no CUDA GPU is available"):
        resolve_device("cuda")
