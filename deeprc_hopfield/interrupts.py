"""Ctrl-C and SIGTERM become KeyboardInterrupt, and are remembered: long loops call
:func:`raise_if_interrupted` so that an interrupt swallowed by a third-party library still stops
the work (and its temporary files are removed) at the next step."""

from __future__ import annotations

import signal
import sys

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
