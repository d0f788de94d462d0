"""The entry point as SageMaker starts it, for tests: a bare ``python train.py ARGUMENTS`` in
the layout ``base`` holds (``base/input``, ``base/model``, ``base/output``), with SM_*
variables for ``channels`` and nothing of this machine's environment but PATH.

A test names its network: a mechanism (budget, resume, failure files) is tested on the
network from scratch, which needs no weights; the pretrained one has tests of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from defects.backends.launcher import ENTRY_SCRIPT, source_dir
from defects.training import contract


def _command(base: Path, channels: dict[str, Path], arguments: tuple[str, ...]) -> list[str]:
    code = source_dir(base.parent / "code")
    return [sys.executable, str(code / ENTRY_SCRIPT), *arguments]


def _environment(
    base: Path, channels: dict[str, Path], extra: dict[str, str] | None
) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **(extra or {}),
        **contract.job_environment(base, channels, {}),
    }


def run(
    base: Path, channels: dict[str, Path], *arguments: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the entry point to its end; its output captured."""
    return subprocess.run(
        _command(base, channels, arguments),
        env=_environment(base, channels, None),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(
    base: Path,
    channels: dict[str, Path],
    *arguments: str,
    environment: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start the entry point in a session of its own; its output in one text stream."""
    return subprocess.Popen(
        _command(base, channels, arguments),
        env=_environment(base, channels, environment),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 600) -> str:
    """Wait for a started entry point; it must succeed. Its output."""
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def history(base: Path) -> dict[str, Any]:
    """The run's ``history.json``."""
    return dict(json.loads((base / "output" / "data" / "history.json").read_text()))
