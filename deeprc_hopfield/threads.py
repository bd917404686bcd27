"""Work handed to threads, its results taken in order: numpy's sorts, searches and array arithmetic release the GIL,
so threads that each work on one item (a repertoire, a chunk of sequences) run at once while their caller takes the
results one by one, in the items' order, as one thread would give them."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(work: Callable[[Item], Result], items: Iterable[Item], workers: int = 1) -> Iterator[Result]:
    """`work(item)` of each of `items`, in their order; with `workers` > 1 computed by that many threads at most
    `workers` + 1 items ahead of the caller, so that what the results hold stays bounded."""
    if int(workers) <= 1:
        for item in items:
            yield work(item)
        return
    with ThreadPoolExecutor(max_workers=int(workers)) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def each_locked(locks: Sequence[threading.Lock], parts: Iterable[int], work: Callable[[int], None]) -> None:
    """`work(part)` for each of `parts`, each under `locks[part]`: the parts free now first, then each of the others
    in turn, waiting for it, so that threads working on the same parts at once seldom wait on each other."""
    busy = []
    for part in parts:
        if locks[part].acquire(blocking=False):
            try:
                work(part)
            finally:
                locks[part].release()
        else:
            busy.append(part)
    for part in busy:
        with locks[part]:
            work(part)
