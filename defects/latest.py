"""What ``latest`` names wherever a job is taken: the newest job the user started.

The trials of a tuning job are not jobs the user started one by one, and the newest of them
is no better than the others. Once a search has ended, its trials stand for one job in the
place of its newest trial: its best trial (``best_trial`` in its ``tune.json``). While the
search runs, its trials count as they are (``defects logs --follow latest`` follows the
newest one).
"""

from __future__ import annotations

from pathlib import Path

from defects.console import log
from defects.errors import DataError
from defects.jobs import JOB_NAME, RECORD_FILE, TUNE_FILE, JobInfo, job_info, json_object, list_jobs


def best_trial(tuning_dir: Path) -> Path | None:
    """The folder of the best trial of the tuning job in ``tuning_dir`` once its search has
    ended; None while it runs, when it has none, or when ``tuning_dir`` holds no tuning job."""
    record = json_object(tuning_dir / TUNE_FILE)
    name = record.get("best_trial")
    if record.get("status") == "running" or not isinstance(name, str) or not JOB_NAME.match(name):
        return None
    folder = tuning_dir / name
    return folder if (folder / RECORD_FILE).is_file() else None


def best_of(run_dir: Path, runs_dir: Path) -> str | None:
    """The name of the ended tuning job whose best trial is in ``run_dir``, or None."""
    tuning_dir = run_dir.parent
    if tuning_dir == runs_dir or best_trial(tuning_dir) != run_dir:
        return None
    return tuning_dir.name


def newest_jobs(runs_dir: Path) -> list[JobInfo]:
    """Every job under ``runs_dir``, newest first, as ``latest`` takes them: the trials of an
    ended search are one job, its best trial, in the place of its newest trial."""
    jobs: list[JobInfo] = []
    searches: set[Path] = set()
    for job in list_jobs(runs_dir):
        tuning_dir = job.run_dir.parent
        best = best_trial(tuning_dir) if tuning_dir != runs_dir else None
        if best is None:
            jobs.append(job)
        elif tuning_dir not in searches:
            searches.add(tuning_dir)
            jobs.append(job_info(best, runs_dir))
    return jobs


def newest_job(runs_dir: Path) -> Path:
    """The folder ``latest`` names: the newest job, or the best trial of the newest search."""
    jobs = newest_jobs(runs_dir)
    if not jobs:
        raise DataError(
            f"There are no jobs in {runs_dir}, so none is the latest.",
            hint="Run one with `defects run`, or pass --runs-dir.",
        )
    tuning = best_of(jobs[0].run_dir, runs_dir)
    if tuning is not None:
        log.info("latest: %s, the best trial of tuning job %s.", jobs[0].name, tuning)
    return jobs[0].run_dir
