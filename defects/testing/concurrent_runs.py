"""``defects run`` commands started at once in one folder, as several users (or one user's
several terminals) would: for the concurrency tests and the reliability benchmark."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def start_runs(
    folder: Path, names: Sequence[str], arguments: Sequence[str], environment: Mapping[str, str]
) -> dict[str, subprocess.Popen[bytes]]:
    """``defects run ARGUMENTS --job-name NAME`` for every name, all started at once in
    ``folder``; each one's output goes to ``folder/NAME.out`` (a file, not a pipe, so that
    a job never waits on a reader that waits on another job)."""
    started = {}
    for name in names:
        with (folder / f"{name}.out").open("wb") as output:
            started[name] = subprocess.Popen(
                [sys.executable, "-m", "defects", "run", *arguments, "--job-name", name],
                cwd=folder,
                env=dict(environment),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
    return started


def finish(
    folder: Path, started: Mapping[str, subprocess.Popen[bytes]], timeout: float = 1200
) -> dict[str, tuple[int, str]]:
    """Each job's exit status and output, once all have ended."""
    return {
        name: (process.wait(timeout=timeout), (folder / f"{name}.out").read_text())
        for name, process in started.items()
    }
