"""The commands that manage jobs: jobs, describe, compare, logs, stop. ``latest`` names the
newest job wherever a JOB is taken."""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from defects.cli.options import (
    json_option,
    make_backend,
    pop_settings,
    run_dir_of,
    runs_dir_option,
    settings_options,
)
from defects.console import err, log, out
from defects.console.live import JobOutput, duration
from defects.errors import DefectsError
from defects.jobs import containers
from defects.jobs.listing import JobInfo, list_jobs
from defects.jobs.records import FINAL_STATES, process_alive, read_record, true_status
from defects.settings import resolve

STATES = ("running", "detached", "orphaned", *FINAL_STATES)


def _runs_dir(runs_dir: Path | None) -> Path:
    return resolve({"runs_dir": runs_dir}).runs_dir


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _when(started: str | None) -> str:
    if not started:
        return "-"
    try:
        return datetime.fromisoformat(started).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return started


_COLOURS = {
    "completed": "green",
    "failed": "red",
    "interrupted": "yellow",
    "stopped": "yellow",
    "orphaned": "red",
}


@click.command()
@click.option("--status", "states", type=click.Choice(STATES), multiple=True, help="only these")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many, the newest")
@json_option("print JSON")
@settings_options
def jobs(states: tuple[str, ...], limit: int | None, as_json: bool, **kwargs: Any) -> None:
    """List the jobs, newest first: status, timings, accuracy and data. On
    DEFECTS_BACKEND=sagemaker the SageMaker training jobs of this tool are listed too."""
    settings = pop_settings(kwargs)
    found = list_jobs(settings.runs_dir)
    backend = make_backend(settings)
    try:
        remote = backend.remote_jobs()
    except DefectsError as error:
        log.warning("%s %s", error.message, error.hint)
        remote = []
    if remote:
        from defects.jobs.listing import with_remote

        found = with_remote(found, remote, backend.name, settings.runs_dir)
    if states:
        found = [job for job in found if job.status in states]
    found = found[:limit] if limit else found
    if as_json:
        out.print_json(data=[job.as_dict() for job in found])
        return
    if not found:
        err.print(f"No jobs in {settings.runs_dir}.", highlight=False)
        return
    print_wide(_jobs_table(found))


def print_wide(table: Any) -> None:
    """A table on stdout at its natural width: a pipe's 80 columns would wrap every row."""
    from rich.measure import Measurement

    if out.is_terminal:
        out.print(table)
        return
    from rich.console import Console

    natural = Measurement.get(out, out.options.update(width=1000), table).maximum
    Console(width=max(out.width, natural), soft_wrap=True, markup=False).print(table)


def _jobs_table(found: list[JobInfo]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        "name", "backend", "status", "started", "duration", "val acc", "test acc",
        "macro-F1", "dataset", "image",
    )  # fmt: skip
    for job in found:
        colour = _COLOURS.get(job.status, "cyan")
        status = Text(job.status, style=colour)
        if job.remote_status:
            status.append(f" ({job.remote_status})")
        table.add_row(
            job.name,
            job.backend,
            status,
            _when(job.started),
            duration(job.seconds) if job.seconds is not None else "-",
            _number(job.validation_accuracy),
            _number(job.test_accuracy),
            _number(job.macro_f1),
            job.dataset_id or "-",
            job.image_size or "-",
        )
    return table


def _print_mapping(title: str, values: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in values.items():
        if value in (None, {}, []):
            continue
        shown = value if isinstance(value, str) else json_text(value)
        table.add_row(key, shown)
    if table.row_count:
        print_wide(table)


def json_text(value: object) -> str:
    """``value`` as JSON, with every float (a recall inside a mapping too) at 4 decimals, as
    scores are shown everywhere else."""
    import json

    if isinstance(value, float):
        # A small value (a learning rate of 1e-05) keeps its digits rather than 0.0000.
        return f"{value:.4f}" if value == 0 or abs(value) >= 0.01 else f"{value:.4g}"
    if isinstance(value, dict):
        items = (
            f"{json.dumps(str(k), ensure_ascii=False)}: {json_text(v)}" for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@click.command()
@click.argument("job")
@json_option("print JSON")
@runs_dir_option
def describe(job: str, as_json: bool, runs_dir: Path | None) -> None:
    """Everything about one JOB.

    Hyperparameters, data, image, timings, metrics, where its files are (here and in S3)
    and why it failed."""
    from defects.jobs.reports import describe_job

    described = describe_job(run_dir_of(job, runs_dir), _runs_dir(runs_dir))
    if as_json:
        out.print_json(data=described)
        return
    header = {key: described[key] for key in ("name", "status", "backend", "started")}
    header["failure"] = described["failure"]
    header.update(image=described["image"], instance_type=described["instance_type"])
    _print_mapping(f"job {described['name']}", header)
    _print_mapping("hyperparameters", described["hyperparameters"])
    _print_mapping("dataset", described["dataset"])
    _print_mapping("timings (seconds)", described["timings"])
    for split, scores in described["metrics"].items():
        _print_mapping(f"{split} metrics", scores)
    _print_mapping("files", described["artifacts"])
    _print_mapping("S3", described["s3"])


@click.command()
@click.argument("job_names", metavar="JOB JOB...", nargs=-1, required=True)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    show_default="<runs>/compare.png",
    help="where the figure goes",
)
@json_option("print JSON")
@runs_dir_option
def compare(
    job_names: tuple[str, ...], out_path: Path | None, as_json: bool, runs_dir: Path | None
) -> None:
    """Compare JOBs: their metrics side by side.

    The hyperparameters that differ are shown too; compare.png shows every job's validation
    curves on one figure."""
    from rich.table import Table

    from defects.jobs.plots import figure_path, plot_comparison
    from defects.jobs.reports import compare_jobs

    if len(job_names) < 2:
        raise click.UsageError("Name at least two jobs to compare.")
    root = _runs_dir(runs_dir)
    path = figure_path(out_path or root, "compare.png")
    compared = compare_jobs([run_dir_of(name, runs_dir) for name in job_names], root)
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(compared["histories"], path)
    err.print(f"Validation curves of every job: {path}", highlight=False)
    if as_json:
        data = {key: value for key, value in compared.items() if key != "histories"}
        out.print_json(data={**data, "figure": str(path)})
        return
    names = compared["jobs"]
    table = Table("", *names, title="metrics")
    for key in next(iter(compared["metrics"].values())):
        cells = [compared["metrics"][name][key] for name in names]
        table.add_row(key, *("-" if c is None else json_text(c).strip('"') for c in cells))
    print_wide(table)
    if compared["differing_hyperparameters"]:
        differing = Table("", *names, title="hyperparameters that differ")
        for key, values in compared["differing_hyperparameters"].items():
            differing.add_row(key, *(json_text(values[name]).strip('"') for name in names))
        print_wide(differing)
    else:
        out.print("The jobs share every hyperparameter.", highlight=False)


@click.command()
@click.argument("job")
@click.option("-f", "--follow", is_flag=True, help="keep printing until the job has ended")
@click.option("--raw", is_flag=True, help="every line as written, progress lines included")
@runs_dir_option
def logs(job: str, follow: bool, raw: bool, runs_dir: Path | None) -> None:
    """Print JOB's log (job.log).

    With --follow, until the job has ended. A detached SageMaker job's log is read from
    CloudWatch."""
    from defects.jobs.logs import read_job_log
    from defects.pipeline import launch as pipeline

    run_dir = run_dir_of(job, runs_dir)
    record = read_record(run_dir)
    if not record and not (run_dir / "job.log").is_file():
        raise DefectsError(
            f"There is no job {job!r} ({run_dir} holds no job.json).",
            hint="See `defects jobs` for the jobs there are.",
        )
    with JobOutput(console=out, live=None if follow and not raw else False) as output:
        on_line = (lambda line: out.out(line, highlight=False)) if raw else output.feed
        if record.get("status") == "detached":
            settings = pipeline.settings_of_job(run_dir, resolve({"runs_dir": runs_dir}))
            if make_backend(settings).read_log(run_dir.name, on_line, follow):
                return
        read_job_log(run_dir, on_line, follow=follow)


@click.command()
@click.argument("job")
@runs_dir_option
def stop(job: str, runs_dir: Path | None) -> None:
    """Stop a running JOB.

    A SageMaker job through SageMaker; a job of this machine by sending its command SIGTERM
    (as Ctrl-C in its terminal does); an orphaned one (its command killed, its entry point
    or container still running) by stopping what runs."""
    from defects.pipeline import launch as pipeline

    run_dir = run_dir_of(job, runs_dir)
    record = read_record(run_dir)
    if not record:
        raise DefectsError(
            f"There is no job {job!r} ({run_dir} holds no job.json).",
            hint="See `defects jobs` for the jobs there are.",
        )
    name = run_dir.name
    status = true_status(record, run_dir)
    if status in FINAL_STATES:
        out.print(f"Job {name} is not running: it is {status}.", highlight=False)
        return
    if status == "orphaned":
        # Its command is gone; what it started runs on: stop that.
        what = containers.still_running(run_dir)
        containers.stop(run_dir)
        out.print(f"Job {name} had lost its command and {what}: stopped it.", highlight=False)
        return
    settings = pipeline.settings_of_job(run_dir, resolve({"runs_dir": runs_dir}))
    if make_backend(settings).stop(name):
        out.print(f"Asked {settings.backend} to stop job {name}.", highlight=False)
        return
    if process_alive(record):
        os.kill(int(record["pid"]), signal.SIGTERM)
        out.print(
            f"Sent SIGTERM to process {record['pid']}, the command running job {name}.",
            highlight=False,
        )
        return
    raise DefectsError(
        f"Job {name} runs in the command that started it, on {record.get('host', 'another')} "
        f"machine (process {record.get('pid', 'unknown')}), which this one cannot signal.",
        hint="Stop it with Ctrl-C in its terminal.",
        headline="cannot stop the job from here",
    )
