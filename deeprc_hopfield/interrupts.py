"""Ctrl-C and SIGTERM become KeyboardInterrupt, and are remembered: long loops call
:func:`raise_if_interrupted` so that an interrupt swallowed by a third-party library still stops
the work (and its temporary files are removed) at the next step. Worker processes come from
:func:`worker_pool`, whose workers stop with the command that started them."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

_received: int | None = None
_kept: str | None = None


def _handle(signum: int, frame: object) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt(f"signal {signum}")


def _quiet_unraisable(unraisable: "sys.UnraisableHookArgs") -> None:
    """An interrupt raised where Python cannot propagate it (a weakref callback, a `__del__`) is
    remembered anyway; do not print a traceback for it, the next :func:`raise_if_interrupted` stops."""
    if unraisable.exc_type is not KeyboardInterrupt:
        sys.__unraisablehook__(unraisable)


def install() -> None:
    """Route SIGINT and SIGTERM through the handler (call once, from the CLI's main)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handle)
    sys.unraisablehook = _quiet_unraisable


def received() -> int | None:
    """The signal number received, if any."""
    return _received


def keep(what: str | None) -> None:
    """Say what an interrupt leaves in place on purpose (a training checkpoint), for the command's last line."""
    global _kept
    _kept = what


def kept() -> str | None:
    """What :func:`keep` said last, if anything."""
    return _kept


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a signal arrived earlier, even if its first raise was swallowed."""
    if _received is not None:
        raise KeyboardInterrupt(f"signal {_received}")


@contextmanager
def worker_pool(workers: int, context: multiprocessing.context.BaseContext | None = None
                ) -> Iterator[ProcessPoolExecutor]:
    """A process pool of `workers` processes whose workers end with the command.

    A plain ``with ProcessPoolExecutor()`` waits, on an interrupt, for the tasks its workers hold (a part of
    pgen is seconds, of IGH a minute), and its workers outlive a parent killed outright (SIGKILL, the
    out-of-memory killer), asleep for good. Here an exception leaving the block (KeyboardInterrupt, an error,
    a generator closed early) kills the workers instead of waiting for them; workers ignore Ctrl-C (the
    command handles it) and die with their parent.

    Parameters
    ----------
    workers
        Processes (>= 1).
    context
        multiprocessing context (default: fork where the platform has it, as Python before 3.14 did on Linux; a
        worker of another context whose parent is not this process, as a forkserver's, would exit at once).
    """
    if context is None:  # fork where there is one: a forkserver's workers are the server's children, not ours
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        _kill_workers(pool)
        raise
    pool.shutdown(wait=True)


def _worker_start(parent: int) -> None:
    """Set up a worker of :func:`worker_pool`: Ctrl-C to the terminal's process group is its parent's to handle,
    SIGTERM kills it (not the parent's handler, which a forked worker inherits), and it dies with its parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:  # no parent-death signal: look for the parent every second
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers and drop its pending tasks, without waiting for the tasks they hold."""
    processes = list((pool._processes or {}).values())  # ProcessPoolExecutor.kill_workers from Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join()
