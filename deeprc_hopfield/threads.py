"""Work handed to threads, its results taken in order: numpy's sorts, searches and array arithmetic release the GIL,
so threads that each work on one item (a repertoire, a chunk of sequences) run at once while their caller takes the
results one by one, in the items' order, as one thread would give them."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

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
