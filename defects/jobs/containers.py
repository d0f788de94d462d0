"""What a job's command started that can outlive it, and whether it still runs: the entry
point's process (``process``) or the containers of its compose project (``local``).

The command notes them in ``runs/<job>/children.json`` while they run. When the command is
gone and they are not, the job is ``orphaned`` (not ``interrupted``); ``defects stop`` stops
them, ``train --resume`` waits for them, and containers and networks left stopped behind
are removed by the next command that meets the job.

Standard library only: the local backend's watchdog (:mod:`defects.backends.watchdog`)
runs this after the command has died.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

CHILDREN_FILE = "children.json"
# docker compose labels what it makes with the project's name.
PROJECT_LABEL = "com.docker.compose.project"
# What the entry point gets to stop on its own (SIGTERM) before its container is killed.
STOP_SECONDS = 10


def _stat(pid: int) -> list[str] | None:
    """Process ``pid``'s fields in /proc from the third on (its state); None where there
    is no /proc or no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot): with the pid, who it is, since
    a pid is reused once its process has gone. None where /proc cannot tell."""
    fields = _stat(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def process(pid: int) -> dict[str, Any]:
    """A process as a record names it: pid, host and start."""
    return {"pid": pid, "host": socket.gethostname(), "ticks": start_ticks(pid)}


def alive(record: dict[str, Any]) -> bool | None:
    """Whether the process a record names runs; None when this machine cannot tell (another
    host, or a record without a pid)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or record.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat(pid)
    if fields is not None and fields[0] in ("Z", "X"):
        return False  # It has ended; nobody has collected its exit status yet.
    ticks = record.get("ticks")
    return not isinstance(ticks, int) or start_ticks(pid) in (ticks, None)


def note(run_dir: Path, **children: Any) -> None:
    """Add to what the job's command has started (written whole, never half)."""
    path = run_dir / CHILDREN_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps({**noted(run_dir), **children}, indent=2))
    partial.replace(path)


def noted(run_dir: Path) -> dict[str, Any]:
    try:
        found = json.loads((run_dir / CHILDREN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def forget(run_dir: Path) -> None:
    """The command has stopped what it started."""
    (run_dir / CHILDREN_FILE).unlink(missing_ok=True)


def _docker(*arguments: str, timeout: float = 60) -> list[str]:
    """The ids a docker command prints (nothing when it fails or docker is missing)."""
    try:
        finished = subprocess.run(
            ["docker", *arguments], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return finished.stdout.split() if finished.returncode == 0 else []


def project_containers(project: str, running_only: bool = False) -> list[str]:
    """The containers of a compose project (the running ones, or all)."""
    listing = ["ps", "-q"] if running_only else ["ps", "-aq"]
    return _docker(*listing, "--filter", f"label={PROJECT_LABEL}={project}")


def project_networks(project: str) -> list[str]:
    return _docker("network", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project}")


def remove_project(project: str) -> None:
    """Stop the project's containers (SIGTERM, SIGKILL after :data:`STOP_SECONDS`), and
    remove them and its networks."""
    containers = project_containers(project)
    if containers:
        _docker("stop", "--time", str(STOP_SECONDS), *containers, timeout=STOP_SECONDS + 60)
        _docker("rm", "-f", *containers)
    networks = project_networks(project)
    if networks:
        _docker("network", "rm", *networks)


def still_running(run_dir: Path) -> str | None:
    """What of the job in ``run_dir`` still runs without its command, said for a person."""
    children = noted(run_dir)
    entry_point = children.get("entry_point")
    if isinstance(entry_point, dict) and alive(entry_point):
        return f"its entry point still runs (pid {entry_point['pid']})"
    project = children.get("compose_project")
    if isinstance(project, str) and project_containers(project, running_only=True):
        return f"its container still runs (compose project {project})"
    return None


def stop(run_dir: Path) -> bool:
    """Stop what still runs of the job (SIGTERM to its entry point, or its containers
    stopped and removed); whether there was anything."""
    children = noted(run_dir)
    stopped = False
    entry_point = children.get("entry_point")
    if isinstance(entry_point, dict) and alive(entry_point):
        try:
            os.kill(int(entry_point["pid"]), signal.SIGTERM)
            stopped = True
        except ProcessLookupError:
            pass
    project = children.get("compose_project")
    if isinstance(project, str) and project_containers(project):
        remove_project(project)
        stopped = True
    return stopped


def clear_leftovers(run_dir: Path) -> None:
    """Remove what a killed command left stopped: the containers and network of its compose
    project, once none of them runs. A running one is the job's still (``orphaned``)."""
    children = noted(run_dir)
    project = children.get("compose_project")
    if isinstance(project, str):
        if project_containers(project, running_only=True):
            return
        if project_containers(project) or project_networks(project):
            remove_project(project)
    entry_point = children.get("entry_point")
    if not (isinstance(entry_point, dict) and alive(entry_point)):
        forget(run_dir)
