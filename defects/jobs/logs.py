"""A job's log as ``defects logs`` shows it: ``job.log`` so far, or followed until the
job's status is final."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from defects.jobs.records import FINAL_STATES, LOG_FILE, read_record, true_status

# Seconds between two looks at a growing job.log.
POLL_SECONDS = 0.5


def finished(run_dir: Path) -> bool:
    return true_status(read_record(run_dir), run_dir) in FINAL_STATES


def read_job_log(
    run_dir: Path,
    on_line: Callable[[str], None],
    follow: bool = False,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Pass every line of ``run_dir/job.log`` to ``on_line``; with ``follow``, keep reading
    what is appended until the job's status is final (or the process that ran it is gone)."""
    path = run_dir / LOG_FILE
    pending = ""
    position = 0
    while True:
        done = not follow or finished(run_dir)  # Read once more after the job has ended.
        if path.is_file():
            with path.open(errors="replace", newline="") as log_file:
                log_file.seek(position)
                pending += log_file.read()
                position = log_file.tell()
            *lines, pending = pending.split("\n")
            for line in lines:
                on_line(line)
        if done:
            break
        time.sleep(poll_seconds)
    if pending:
        on_line(pending)
