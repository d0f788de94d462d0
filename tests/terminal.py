"""Running a command the way a person does: in a terminal (a pseudo-terminal here)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# What the live line says of the time a job has run: "12s elapsed", "1m05s", "2h03m".
_ELAPSED = re.compile(r"(?:(\d+)h(\d+)m|(?:(\d+)m)?(\d+)s) elapsed")


def in_a_terminal(
    argv: list[str], cwd: Path, environment: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its stdin, stdout and stderr; give its exit
    status and what it showed, without the terminal's escape sequences."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        argv,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env={**(environment or os.environ), "COLUMNS": "160", "TERM": "xterm"},
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # The terminal closed: the program has ended.
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    shown = _ESCAPES.sub("", b"".join(chunks).decode(errors="replace"))
    return process.wait(timeout=timeout), shown


def elapsed_seconds(shown: str) -> list[int]:
    """Every elapsed time the live line showed, in seconds."""
    times = []
    for hours, minutes, short_minutes, seconds in _ELAPSED.findall(shown):
        if hours:
            times.append(int(hours) * 3600 + int(minutes) * 60)
        else:
            times.append(int(short_minutes or 0) * 60 + int(seconds))
    return times
