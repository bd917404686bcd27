"""Ctrl-C and SIGTERM become KeyboardInterrupt, and are remembered: long loops call
:func:`raise_if_interrupted` so that an interrupt swallowed by a third-party library still stops
the work (and its temporary files are removed) at the next step."""

from __future__ import annotations

import signal

_received: int | None = None


def _handle(signum: int, frame: object) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt(f"signal {signum}")


def install() -> None:
    """Route SIGINT and SIGTERM through the handler (call once, from the CLI's main)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handle)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a signal arrived earlier, even if its first raise was swallowed."""
    if _received is not None:
        raise KeyboardInterrupt(f"signal {_received}")
