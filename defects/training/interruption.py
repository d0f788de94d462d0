"""SIGTERM in the entry point: what a spot reclaim, ``docker stop`` or the host tool sends.

:func:`install` turns SIGTERM (and SIGINT) into :class:`Interrupted`, raised in the main
thread wherever training is. Inside :func:`deferred` (while a checkpoint is written) the
signal waits until the block ends, so a checkpoint is never cut in half by it.

:func:`watch_parent` stops the entry point the same way when the process that started it
dies, however it dies (``kill -9``, the OOM killer, a CI timeout): on Linux the kernel sends
SIGTERM at the parent's death, and a thread that sees the entry point handed to another
parent sends it too, where the kernel cannot. Standard library only: this runs inside the
training container.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# The status a process killed by SIGTERM reports to a shell (128 + 15).
EXIT_STATUS = 128 + signal.SIGTERM


class Interrupted(Exception):
    """Training was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_deferring = 0
_pending: int | None = None


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or while handling: Keras and TensorFlow
    wrap what went wrong beneath them (a signal, a full disk) in errors of their own."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _deferring:
        _pending = signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Raise :class:`Interrupted` on SIGTERM and SIGINT from now on (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a signal that arrives inside the block until the block has finished."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


# prctl(2): ask for a signal when the parent dies.
_PR_SET_PDEATHSIG = 1
# The process that starts the entry point on the host names itself here, so that a parent
# gone before the watch began is noticed too (in a container it is not set).
PARENT_PID_ENV = "DEFECTS_PARENT_PID"


def watch_parent(interval: float = 0.5) -> None:
    """SIGTERM to this process when its parent dies (see the module's docstring)."""
    given = os.environ.get(PARENT_PID_ENV, "")
    parent = int(given) if given.isdigit() else os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # The thread below covers it.

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
