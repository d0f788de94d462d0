"""SIGTERM on the host: handled like Ctrl-C, so that every clean-up that Ctrl-C runs (the
entry point stopped, containers and networks removed, ``job.json`` saying "interrupted")
also runs when a scheduler, ``kill`` or a closing session stops ``defects``.

:func:`sigterm_as_interrupt` raises :class:`Terminated`, a ``KeyboardInterrupt``, on
SIGTERM; :func:`exit_status` gives 143 for it and 130 for Ctrl-C, as shells report them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

CTRL_C_EXIT = 128 + signal.SIGINT
SIGTERM_EXIT = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C's KeyboardInterrupt."""


def interruption(signum: int) -> KeyboardInterrupt:
    """The exception that stands for ``signum`` (SIGTERM or SIGINT)."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Raise :class:`Terminated` on SIGTERM inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_status(error: BaseException) -> int:
    """143 when ``error`` (or what caused it) is SIGTERM's, else 130 (Ctrl-C)."""
    while error is not None:
        if isinstance(error, Terminated):
            return SIGTERM_EXIT
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return CTRL_C_EXIT
