"""Progress of long stages in the log (done / total, rate, ETA), for runs whose stderr is a log file.

A terminal gets tqdm bars; a Snakemake or SLURM job writes its log to a file, where a bar is one
unreadable line. `LoggedProgress` logs a line at most every `every` seconds and at the end.
"""

from __future__ import annotations

import logging
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

#: Seconds between two progress lines of one stage (a user tailing a log wants a pulse, not a flood).
LOG_EVERY_S = 30.0


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


class LoggedProgress:
    """Counts items done of `total` (None when unknown) and logs '`what`: i/total (p%), elapsed, ETA'.

    `last_line`: whether the end is always logged; when False, only a stage that already logged a
    line (it took `every` seconds or more) logs its end, so short stages add nothing to the log.
    """

    def __init__(self, log: logging.Logger, what: str, total: int | None, unit: str = "repertoires",
                 every: float = LOG_EVERY_S, last_line: bool = True) -> None:
        self.log, self.what, self.total, self.unit, self.every = log, what, total, unit, every
        self.done, self.logged, self.last_line = 0, False, last_line
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        """`n` more items done; logs when `every` seconds passed since the last line, or at the end."""
        self.done += n
        now = time.perf_counter()
        end = self.total is not None and self.done >= self.total and (self.last_line or self.logged)
        if now - self.last >= self.every or end:
            self.last, self.logged = now, True
            self.log.info("%s: %s", self.what, self.line(now - self.start))

    def line(self, elapsed: float) -> str:
        """'12/157 repertoires (8%), 1.2 min, ETA 13.5 min' (without a total: '12 repertoires, 1.2 min')."""
        if not self.total:
            return f"{self.done:,} {self.unit}, {_minutes(elapsed)}"
        share = self.done / self.total
        eta = elapsed * (1 - share) / share if share else float("nan")
        left = "done" if self.done >= self.total else f"ETA {_minutes(eta)}"
        return f"{self.done:,}/{self.total:,} {self.unit} ({share:.0%}), {_minutes(elapsed)}, {left}"


def logged(items: Iterable[T], log: logging.Logger, what: str, total: int | None = None,
           unit: str = "repertoires", every: float = LOG_EVERY_S) -> Iterator[T]:
    """`items` one by one, counted by a :class:`LoggedProgress` (`total`: their number, else ``len(items)`` where
    it has one) that logs only where the pass is long."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    progress = LoggedProgress(log, what, total, unit=unit, every=every, last_line=False)
    for item in items:
        yield item
        progress.update()
