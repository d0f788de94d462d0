"""The commands that go on with a job that did not finish: ``fetch``, and the body of
``train --resume``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from defects.backends.base import CloudOptions
from defects.cli.options import (
    CLOUD_OPTION_NAMES,
    cloud_values,
    cost_check,
    make_backend,
    print_result,
    result_json_option,
    run_dir_of,
)
from defects.settings import Settings, resolve

# What may change when a job resumes: where and how long it runs, not what it learns.
_CHANGEABLE_ON_RESUME = (*CLOUD_OPTION_NAMES, "price_per_hour", "yes")


def resume_job(
    job_name: str, settings: Settings, given: dict[str, Any], as_json: bool = False
) -> None:
    """``train --resume JOB``: the job's own data and hyperparameters; a SageMaker job's
    options (time limit, volume, spot...) may be given again, and a paid launch is priced
    and confirmed as any other."""
    from defects.pipeline import launch as pipeline
    from defects.pipeline import resume

    ctx = click.get_current_context()
    on_command_line = [
        name for name in given if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]
    clashing = [name for name in on_command_line if name not in _CHANGEABLE_ON_RESUME]
    if clashing:
        flags = ", ".join("--" + name.replace("_", "-") for name in clashing)
        raise click.UsageError(
            f"--resume continues the job with its own data and hyperparameters; drop {flags}."
        )
    overrides = cloud_values(
        {name: given[name] for name in on_command_line if name in CLOUD_OPTION_NAMES}
    )
    # The job's own backend prices it (and asks), not the one of this command's settings.
    backend = make_backend(pipeline.settings_of_job(settings.runs_dir / job_name, settings))
    cost = {name: given.get(name) for name in ("price_per_hour", "yes")}

    def before_launch(dataset: Any, parameters: Any, options: CloudOptions) -> None:
        cost_check(backend, dict(cost), options, False)(dataset, [dict(parameters)], 1)

    result = resume.resume(job_name, settings, backend.confirm, overrides, before_launch)
    print_result(result, as_json, settings.runs_dir)


@click.command()
@click.argument("job")
@click.option("--runs-dir", type=click.Path(path_type=Path))
@result_json_option
def fetch(job: str, runs_dir: Path | None, as_json: bool) -> None:
    """Fetch JOB's results without training again.

    For a job whose upload or fetch failed after training (its model is kept under
    runs/JOB/), or one that ran on its own (--detach): the results land in runs/JOB/."""
    from defects.pipeline import launch as pipeline
    from defects.pipeline import resume

    run_dir = run_dir_of(job, runs_dir)
    settings = pipeline.settings_of_job(run_dir, resolve({"runs_dir": run_dir.parent}))
    result = resume.finish(run_dir.name, make_backend(settings))
    print_result(result, as_json, run_dir.parent)
