"""``defects tune``: a hyperparameter search, on this machine or as a SageMaker tuning job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from defects.cli.options import (
    cloud_options,
    cost_check,
    cost_options,
    data_options,
    hyperparameter_options,
    make_backend,
    pop_cloud,
    pop_hyperparameters,
    pop_settings,
    settings_options,
)
from defects.console import out
from defects.errors import ConfigError

if TYPE_CHECKING:
    from defects.tuning.record import TuningRecord

# The choices, listed here so that --help needs none of the tuning code.
OBJECTIVES = ("macro-f1", "accuracy", "loss")
STRATEGIES = ("bayesian", "random", "grid")


def _given_on_the_command_line(names: tuple[str, ...]) -> list[str]:
    context = click.get_current_context()
    return [
        name for name in names if context.get_parameter_source(name) == ParameterSource.COMMANDLINE
    ]


def _report(tuning: TuningRecord, as_json: bool, tuning_dir: Path) -> None:
    from rich.table import Table

    from defects.tuning import record

    if as_json:
        out.print_json(data=tuning.to_dict())
        return
    if tuning.status == "detached":
        out.print(
            f"started: tuning job {tuning.name} on {tuning.backend}, detached; "
            f"`defects tune --resume {tuning.name}` follows it and fetches its best job",
            highlight=False,
        )
        return
    table = Table(title=f"{tuning.name}: {tuning.spec.objective_metric}, best first")
    for column in ("#", "trial", "state", tuning.spec.objective, *tuning.spec.searched):
        table.add_column(column)
    for row in record.table_rows(tuning):
        table.add_row(*row)
    if tuning.trials:
        out.print(table)
    for warning in tuning.warnings():
        out.print(f"warning: {warning}", style="yellow", highlight=False)
    best = tuning.best()
    if best is not None:
        shown = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(best.params.items()))
        out.print(
            f"best: trial {best.name}, {tuning.spec.objective_metric} {best.objective:.4f}, "
            f"with {shown}; artifacts in {tuning_dir / best.name}",
            highlight=False,
        )
    elif tuning.details.get("best_training_job"):
        out.print(
            f"best: training job {tuning.details['best_training_job']}, "
            f"{tuning.spec.objective_metric} {tuning.details.get('best_objective')}, with "
            f"{tuning.details.get('best_hyperparameters')}; artifacts in "
            f"{tuning_dir / record.BEST_DIR}",
            highlight=False,
        )
    out.print(
        f"{tuning.status}: tuning job {tuning.name} on {tuning.backend}, "
        f"{len(tuning.trials)} trial(s); tune.json and tune.png in {tuning_dir}",
        highlight=False,
    )


# The options of the search itself (the spec file's keys), given to make_spec as they are.
_SPEC_OPTIONS = ("objective", "strategy", "max_jobs", "max_parallel_jobs", "early_stopping")


@click.command()
@click.option(
    "--range",
    "ranges",
    multiple=True,
    metavar="NAME=LOW:HIGH[:log]|NAME=A,B,C",
    help="a hyperparameter to search: between two ends (integers for an integer one; "
    ":log for a log scale) or among listed values; repeat for more",
)
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="a TOML file with the search (ranges, objective, limits); options given here win",
)
@click.option(
    "--objective",
    type=click.Choice(list(OBJECTIVES)),
    show_default="macro-f1",
    help="the validation metric to optimise (loss is minimised)",
)
@click.option(
    "--strategy",
    type=click.Choice(list(STRATEGIES)),
    show_default="bayesian",
    help="how trials are chosen",
)
@click.option("--max-jobs", type=click.IntRange(min=1), show_default="10", help="trials in all")
@click.option(
    "--max-parallel-jobs", type=click.IntRange(min=1), show_default="1", help="trials at once"
)
@click.option(
    "--early-stopping/--no-early-stopping",
    default=None,
    show_default="off",
    help="stop trials whose objective falls below the median of earlier ones at the same epoch",
)
@click.option(
    "--resume",
    "resume_name",
    metavar="TUNING_JOB",
    help="continue an interrupted tuning job, keeping its finished trials",
)
@click.option("--json", "as_json", is_flag=True, help="print tune.json instead of the table")
@data_options
@click.option(
    "--job-name",
    show_default="tune-<time>-<random>",
    help="a new tuning job name, up to 32 characters",
)
@hyperparameter_options
@cloud_options
@cost_options
@settings_options
def tune(
    ranges: tuple[str, ...],
    spec_file: Path | None,
    resume_name: str | None,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Search hyperparameters, here or as a SageMaker tuning job.

    Each trial is a job under runs/<tuning-job>/, run here (at most --max-parallel-jobs at
    once) or, with DEFECTS_BACKEND=sagemaker, by SageMaker's tuner with the same ranges,
    objective and metric definitions.

    The data options and every training option of `defects run` apply; a searched
    hyperparameter takes its values from its range. --seed also seeds the search."""
    from defects.pipeline.request import JobRequest
    from defects.tuning import driver
    from defects.tuning.spec import make_spec

    settings = pop_settings(kwargs)
    if resume_name:
        tuning = driver.resume(resume_name, settings)
        _report(tuning, as_json, settings.runs_dir / resume_name)
        return
    backend = make_backend(settings)
    dry_run, cloud = pop_cloud(kwargs)
    hyperparameters = pop_hyperparameters(kwargs)
    spec = make_spec(
        list(ranges),
        spec_file=spec_file,
        default_seed=int(hyperparameters["seed"]),
        **{name: kwargs.pop(name) for name in _SPEC_OPTIONS},
    )
    both = _given_on_the_command_line(spec.searched)
    if both:
        raise ConfigError(
            f"{', '.join(both)} is both fixed (--{both[0].replace('_', '-')}) and searched.",
            hint="Drop the fixed value or the range.",
        )
    request = JobRequest(
        backend=backend,
        hyperparameters=hyperparameters,
        options=cloud,
        **{name: kwargs.pop(name) for name in ("data", "per_class", "classes", "job_name")},
    )
    before_launch = cost_check(backend, kwargs, cloud, dry_run)
    if dry_run:
        out.print_json(data=driver.dry_run(spec, request, before_launch))
        return
    tuning = driver.tune(spec, request, before_launch)
    _report(tuning, as_json, backend.settings.runs_dir / tuning.name)
