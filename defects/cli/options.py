"""The options the commands share, and turning them into objects once, at the boundary.

Hyperparameter options are made from the contract's schema; settings options go through
:func:`defects.settings.resolve` (flag > environment > default); the cloud options become one
:class:`~defects.backends.base.CloudOptions`; the backend is made here, with the prompt the
SageMaker backend asks through when Ctrl-C leaves a paid job running.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, TypeVar

import click

from defects.backends import BACKENDS
from defects.backends.base import (
    Backend,
    CloudOptions,
    Confirm,
)
from defects.console import err, out
from defects.dataset import DEFAULT_CLASSES
from defects.errors import JobNotFound
from defects.settings import DEFAULT_BACKEND, Settings, resolve
from defects.training import contract

F = TypeVar("F", bound=Callable[..., Any])

SETTINGS = ("backend", "bucket", "prefix", "runs_dir")


def _apply(function: F, options: list[Callable[[F], F]]) -> F:
    for option in reversed(options):
        function = option(function)
    return function


def settings_options(function: F) -> F:
    """The settings a command may take as flags. Click shows their variables and defaults;
    the values themselves are resolved by :func:`defects.settings.resolve`, which also reads
    the settings file (flag > environment > file > default)."""
    return _apply(
        function,
        [
            click.option(
                "--backend",
                type=click.Choice(list(BACKENDS), case_sensitive=False),
                envvar="DEFECTS_BACKEND",
                show_envvar=True,
                show_default=DEFAULT_BACKEND,
                help="where training runs",
            ),
            click.option(
                "--bucket",
                envvar="DEFECTS_BUCKET",
                show_envvar=True,
                show_default="defects, or the SageMaker default bucket",
                help="S3 bucket",
            ),
            click.option(
                "--prefix",
                envvar="DEFECTS_PREFIX",
                show_envvar=True,
                show_default="defects",
                help="S3 key prefix",
            ),
            runs_dir_option,
        ],
    )


def runs_dir_option(function: F) -> F:
    return click.option(
        "--runs-dir",
        type=click.Path(path_type=Path),
        envvar="DEFECTS_RUNS_DIR",
        show_envvar=True,
        show_default="runs",
        help="where job folders go",
    )(function)


def pop_settings(kwargs: dict[str, Any]) -> Settings:
    """The settings, from the flags given on the command line (values click took from the
    environment are left to :func:`resolve`, so that their source says so)."""
    context = click.get_current_context(silent=True)
    given = {}
    for name in SETTINGS:
        value = kwargs.pop(name, None)
        source = context.get_parameter_source(name) if context else None
        if source is not click.core.ParameterSource.ENVIRONMENT:
            given[name] = value
    return resolve(given)


class _SchemaValue(click.ParamType):
    """A hyperparameter's value, checked by the schema (the message names what is allowed)."""

    def __init__(self, spec: contract.Hyperparameter) -> None:
        self.spec = spec
        self.name = spec.metavar or spec.kind.upper()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.spec.parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _hyperparameter_option(spec: contract.Hyperparameter) -> Callable[[F], F]:
    if spec.kind == "bool":
        dashed = spec.name.replace("_", "-")
        return click.option(
            f"--{dashed}/--no-{dashed}",
            spec.name,
            default=spec.default,
            show_default=True,
            help=spec.help,
        )
    param_type: click.ParamType = (
        click.Choice(spec.choices) if spec.kind == "choice" else _SchemaValue(spec)
    )
    bounds = spec.bounds_text() if spec.kind in {"int", "float"} else ""
    return click.option(
        spec.flag,
        spec.name,
        type=param_type,
        default=spec.default,
        show_default=True,
        help=spec.help + (f" ({bounds})" if bounds else ""),
    )


def hyperparameter_options(function: F) -> F:
    """One option per hyperparameter of the schema, with its type, bounds and default."""
    return _apply(function, [_hyperparameter_option(spec) for spec in contract.HYPERPARAMETERS])


def pop_hyperparameters(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {spec.name: kwargs.pop(spec.name) for spec in contract.HYPERPARAMETERS}


def _cloud_option(item: Field[Any]) -> Callable[[F], F]:
    """The click option of one :class:`CloudOptions` field, from its metadata."""
    meta = item.metadata
    name = meta["flag"]
    arguments: dict[str, Any] = {"help": meta["help"]}
    if isinstance(item.default, bool):
        arguments["is_flag"] = True
    elif isinstance(item.default, tuple):
        arguments["multiple"] = True
    elif meta["minimum"] is not None:
        arguments["type"] = click.IntRange(min=meta["minimum"])
    elif meta["choices"]:
        arguments["type"] = click.Choice(meta["choices"])
    if item.default is not None and not isinstance(item.default, bool | tuple):
        arguments.update(default=item.default, show_default=True)
    if meta["show_default"]:
        arguments["show_default"] = meta["show_default"]
    if meta["metavar"]:
        arguments["metavar"] = meta["metavar"]
    # The parameter is named as the field when the flag's own name would differ (--subnet).
    declared = [name] if name[2:].replace("-", "_") == item.name else [name, item.name]
    option: Callable[[F], F] = click.option(*declared, **arguments)
    return option


def cloud_options(function: F) -> F:
    """``--dry-run``, and one option per :class:`CloudOptions` field but the resumed job's."""
    dry_run = click.option(
        "--dry-run", is_flag=True, help="print the training request as JSON and send nothing"
    )
    generated = [
        _cloud_option(item) for item in fields(CloudOptions) if item.name != "checkpoints_of"
    ]
    return _apply(function, [dry_run, *generated])


def class_names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise click.BadParameter("give at least two distinct, comma-separated class names")
    return names


classes_option = click.option(
    "--classes",
    type=class_names,
    metavar="NAMES",
    show_default=f"the data's folders; {','.join(DEFAULT_CLASSES)} when it has them all",
    help="the class folders to use, comma-separated",
)


def data_options(function: F) -> F:
    """Where a job's photos come from: a folder, or synthetic ones."""
    return _apply(
        function,
        [
            click.option(
                "--data",
                type=click.Path(path_type=Path),
                show_default="draw synthetic photos",
                help="class folders or a prepared dataset",
            ),
            click.option(
                "--per-class",
                type=click.IntRange(min=1),
                default=280,
                show_default=True,
                help="synthetic photos per class when --data is not given",
            ),
            classes_option,
        ],
    )


def cost_options(function: F) -> F:
    """The estimate shown before a paid launch, and its confirmation."""
    return _apply(
        function,
        [
            click.option(
                "--price-per-hour",
                type=click.FloatRange(min=0),
                show_default="the shipped price table",
                help="sagemaker: the instance's price in USD per hour, for the estimate",
            ),
            click.option(
                "--yes",
                is_flag=True,
                help="sagemaker: launch without asking, even above DEFECTS_CONFIRM_ABOVE_USD",
            ),
        ],
    )


def cost_check(
    backend: Backend, kwargs: dict[str, Any], options: CloudOptions, dry_run: bool
) -> Callable[[Any, list[dict[str, Any]], int], None]:
    """What runs once the data is prepared: the estimate on stderr (on every dry run, and
    before every paid launch), and the confirmation a paid launch above the threshold needs."""
    from defects.pipeline import pricing

    price_per_hour = kwargs.pop("price_per_hour")
    yes = bool(kwargs.pop("yes"))

    def check(dataset: Any, settings: list[dict[str, Any]], jobs: int) -> None:
        found = pricing.estimate(backend, dataset, settings, options, jobs, price_per_hour)
        if dry_run or found.instance_type is not None:
            pricing.show(found)
        if not dry_run:
            pricing.approve(found, backend.settings.confirm_above_usd, backend.confirm, yes)

    return check


def pop_cloud(kwargs: dict[str, Any]) -> tuple[bool, CloudOptions]:
    """``--dry-run`` and the cloud options, as one checked :class:`CloudOptions`."""
    dry_run = bool(kwargs.pop("dry_run"))
    given = cloud_values({name: kwargs.pop(name) for name in CLOUD_OPTION_NAMES})
    return dry_run, CloudOptions(**{k: v for k, v in given.items() if v is not None})


# The cloud options' parameters, named as the fields of CloudOptions they set (all but the
# job a resumed one continues, which --resume names).
CLOUD_OPTION_NAMES = tuple(
    option.name for option in fields(CloudOptions) if option.name != "checkpoints_of"
)


def cloud_values(given: dict[str, Any]) -> dict[str, Any]:
    """The values of the cloud options ``given`` as :class:`CloudOptions` takes them."""
    values = dict(given)
    for name in ("detach", "spot"):
        if name in values:
            values[name] = bool(values[name])
    for name in ("subnets", "security_groups"):
        if name in values:
            values[name] = tuple(values[name])
    if "tags" in values:
        tags: list[tuple[str, str]] = []
        for text in values["tags"]:
            key, separator, value = text.partition("=")
            if not separator or not key:
                raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--tag")
            tags.append((key, value))
        values["tags"] = tuple(tags)
    return values


def _confirm(question: str) -> bool:
    try:
        return click.confirm(question, default=True, err=True)
    except click.Abort:
        return True


def make_backend(settings: Settings) -> Backend:
    """The backend of these settings, made once; it may ask the user only on a terminal."""
    from defects import backends

    confirm: Confirm | None = _confirm if sys.stdin.isatty() else None
    return backends.create(settings, confirm=confirm)


def out_dir_option(shown_default: str, help_text: str) -> Callable[[F], F]:
    """``--out FOLDER`` (never a file) where a command writes what it makes."""
    option: Callable[[F], F] = click.option(
        "--out",
        "out_dir",
        type=click.Path(path_type=Path, file_okay=False),
        show_default=shown_default,
        help=help_text,
    )
    return option


def json_option(help_text: str) -> Callable[[F], F]:
    """``--json``: the command's result as JSON on stdout, for programs."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


result_json_option = json_option(
    "print the job's record (what `describe --json` prints) instead of its closing line"
)


def print_result(result: Any, as_json: bool, runs_dir: Path) -> None:
    """A job's closing line on stdout; with ``--json`` its record there instead, and the
    line on stderr for the person watching."""
    if not as_json:
        out.print(result.line(), highlight=False)
        return
    from defects.jobs.reports import describe_job

    err.print(result.line(), highlight=False)
    out.print_json(data=describe_job(result.run_dir, runs_dir))


def run_dir_of(job: str, runs_dir: Path | None) -> Path:
    """A job's folder: the newest job's for ``latest``, ``job`` itself when it is a folder,
    else ``<runs>/<job>`` (see :func:`defects.jobs.listing.find_job`)."""
    from defects.jobs.listing import find_job

    runs = runs_dir or resolve().runs_dir
    found = find_job(runs, job)
    if not found.is_dir():
        raise JobNotFound(
            f"No job {job!r}: {found} is not a folder.",
            hint=f"Give the name of a job under {runs}/ or a job folder (`defects jobs` "
            "lists them; --runs-dir or DEFECTS_RUNS_DIR for another runs folder).",
        )
    return found
