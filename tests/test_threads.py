"""`threads.ordered_map`: threads' results in the items' order, a bounded number of items ahead of the caller."""

from __future__ import annotations

import time

import numpy as np
import pytest

from deeprc_hopfield.threads import ordered_map


@pytest.mark.parametrize("workers", [1, 3])
def test_results_come_in_the_items_order_whatever_thread_ends_first(workers):
    """Items that end out of order (random sleeps) still give their results in the items' order."""
    delays = np.random.default_rng(0).random(30) / 200

    def work(i: int) -> int:
        time.sleep(delays[i])  # later items often end first
        return i * i

    assert list(ordered_map(work, range(30), workers)) == [i * i for i in range(30)]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_items_are_taken_at_most_workers_plus_one_ahead_of_the_caller(workers):
    """The caller's n-th result comes with at most n + 1 + workers items taken: what waits in memory is bounded."""
    taken = []

    def items():
        for i in range(50):
            taken.append(i)
            yield i

    for i, result in enumerate(ordered_map(lambda item: item, items(), workers)):
        assert result == i and len(taken) <= i + 1 + (workers if workers > 1 else 0)
