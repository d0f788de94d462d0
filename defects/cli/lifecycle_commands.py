"""The commands that go on with a job that did not finish: ``fetch``, and the body of
``train --resume``."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from defects.cli.options import make_backend, print_result, result_json_option, run_dir_of
from defects.settings import Settings, resolve


def resume_job(job_name: str, settings: Settings, given: list[str], as_json: bool = False) -> None:
    """``train --resume JOB``: the job's own data, hyperparameters and options, nothing else."""
    from defects import resume

    ctx = click.get_current_context()
    clashing = [
        name for name in given if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]
    if clashing:
        flags = ", ".join("--" + name.replace("_", "-") for name in clashing)
        raise click.UsageError(
            f"--resume continues the job with its own data and settings; drop {flags}."
        )
    result = resume.resume(job_name, settings, make_backend(settings).confirm)
    print_result(result, as_json, settings.runs_dir)


@click.command()
@click.argument("job")
@click.option("--runs-dir", type=click.Path(path_type=Path))
@result_json_option
def fetch(job: str, runs_dir: Path | None, as_json: bool) -> None:
    """Fetch JOB's results without training again.

    For a job whose upload or fetch failed after training (its model is kept under
    runs/JOB/), or one that ran on its own (--detach): the results land in runs/JOB/."""
    from defects import pipeline, resume

    run_dir = run_dir_of(job, runs_dir)
    settings = pipeline.settings_of_job(run_dir, resolve({"runs_dir": run_dir.parent}))
    result = resume.finish(run_dir.name, make_backend(settings))
    print_result(result, as_json, run_dir.parent)
