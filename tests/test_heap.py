"""Giving freed heap memory back between passes."""

from __future__ import annotations

import ctypes.util
import sys

import numpy as np
import pytest

from deeprc_hopfield import heap


def _rss_mb() -> float:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._libc() is None,
                    reason="malloc_trim is glibc's (Linux); elsewhere there is nothing to give back this way")
def test_freed_blocks_pinned_by_live_ones_are_given_back():
    """64 kB arrays (below glibc's mmap threshold, so in its heap), every other one freed: the freed half stays
    resident, pinned by the live ones between, until trimmed."""
    arrays = [np.ones(1 << 13) for _ in range(4000)]  # ~256 MB
    del arrays[::2]
    before = _rss_mb()
    assert heap.give_back_freed_memory()
    assert _rss_mb() < before - 60  # ~128 MB freed
    assert len(arrays) == 2000 and all(float(a.sum()) == 1 << 13 for a in arrays[::97])  # what is held is untouched


def test_without_malloc_trim_nothing_is_done(monkeypatch):
    heap._libc.cache_clear()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    try:
        assert heap.give_back_freed_memory() is False
    finally:
        heap._libc.cache_clear()
