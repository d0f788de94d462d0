"""A guard that outlives the command: when the ``defects`` process dies, however it dies
(``kill -9``, the OOM killer, a CI runner's timeout), it stops the compose project of the
local-mode job it was watching and removes its containers, its network and its compose file
(:func:`defects.jobs.containers.remove_project`).

The command starts the guard in a session of its own (a signal to the command's process
group does not reach it) with the read end of a pipe as its standard input, and keeps the
write end. The kernel closes that end when the command dies: the guard reads end-of-file
and cleans up. A job that ends normally says ``done`` first, and the guard leaves.

Standard library only (and the standard-library module above), so that nothing it imports can
fail it at the moment it is needed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from defects.jobs.containers import remove_project

DONE = b"done"


class Watchdog:
    """Around the part of a command that a container runs: ``with Watchdog(project, [file])``."""

    def __init__(self, project: str, remove: list[Path]) -> None:
        self.project = project
        self.remove = remove
        self._write: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Watchdog:
        read, self._write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, self.project, *map(str, self.remove)],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._write is None:
            return
        try:
            os.write(self._write, DONE)
        finally:
            os.close(self._write)
            self._write = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("project")
    parser.add_argument("remove", nargs="*", type=Path)
    arguments = parser.parse_args(argv)
    said = sys.stdin.buffer.read()  # Until the command says "done" or dies.
    if said.startswith(DONE):
        return 0
    remove_project(arguments.project)
    for path in arguments.remove:
        path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
