"""The ``defects`` command line.

Every command resolves the settings once (flag > ``DEFECTS_*`` environment > default),
validates the backend against the registry, and turns it into a backend object here, at the
boundary. Errors the user can fix print a headline, a message and a hint and exit 1 (2 for
usage and configuration errors); anything else is an internal error with its traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

# TensorFlow's C++ start-up chatter is not for users; set before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from defects import pipeline
from defects.console import err, out, setup_logging
from defects.errors import DefectsError
from defects.prepare import DEFAULT_CLASSES
from defects.settings import Settings, resolve
from defects.training import contract

F = TypeVar("F", bound=Callable[..., Any])


def _settings_options(function: F) -> F:
    options = [
        click.option("--backend", help="process, local or sagemaker [env DEFECTS_BACKEND]"),
        click.option("--bucket", help="S3 bucket [env DEFECTS_BUCKET]"),
        click.option("--prefix", help="S3 key prefix [env DEFECTS_PREFIX]"),
        click.option(
            "--runs-dir",
            type=click.Path(path_type=Path),
            help="where job folders go [env DEFECTS_RUNS_DIR; default runs]",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _pop_settings(kwargs: dict[str, Any]) -> Settings:
    names = ("backend", "bucket", "prefix", "runs_dir")
    return resolve({name: kwargs.pop(name) for name in names})


class _ImageSize(click.ParamType):
    """``384x216`` (width x height) or ``288`` (a square), kept as the entry point takes it."""

    name = "WIDTHxHEIGHT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return contract.image_size_text(contract.image_shape(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _hyperparameter_options(function: F) -> F:
    defaults = contract.HYPERPARAMETER_DEFAULTS
    options = [
        click.option(
            "--epochs",
            type=click.IntRange(min=1),
            help=f"training epochs [default {defaults['epochs']}]",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            help=f"images per batch [default {defaults['batch_size']}]",
        ),
        click.option(
            "--learning-rate",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            help=f"Adam learning rate [default {defaults['learning_rate']}]",
        ),
        click.option(
            "--image-size",
            type=_ImageSize(),
            help="size the photos are resized to: WIDTHxHEIGHT, or one side for a square "
            f"[default {defaults['image_size']}]",
        ),
        click.option("--seed", type=int, help="seed for data split and training [default 0]"),
        click.option(
            "--model",
            type=click.Choice(["default", "article"]),
            help="network: ours or the tutorial's [default default]",
        ),
        click.option(
            "--augment/--no-augment",
            default=None,
            help="flips, small rotations, brightness/contrast [default on]",
        ),
        click.option(
            "--precision",
            type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
            help="auto: mixed_float16 on GPUs, float32 on CPUs [default auto]",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _pop_hyperparameters(kwargs: dict[str, Any]) -> dict[str, Any]:
    names = (
        "epochs",
        "batch_size",
        "learning_rate",
        "image_size",
        "seed",
        "model",
        "augment",
        "precision",
    )
    return {name: kwargs.pop(name) for name in names}


def _cloud_options(function: F) -> F:
    options = [
        click.option(
            "--dry-run", is_flag=True, help="print the training request as JSON and send nothing"
        ),
        click.option(
            "--detach",
            is_flag=True,
            help="sagemaker: start the job and return; fetch later with `defects history JOB`",
        ),
        click.option("--spot", is_flag=True, help="sagemaker: managed spot training"),
        click.option(
            "--max-runtime",
            type=click.IntRange(min=60),
            help="sagemaker: stop the job after this many seconds",
        ),
        click.option(
            "--max-wait",
            type=click.IntRange(min=60),
            help="sagemaker with --spot: give up waiting for capacity after this "
            "many seconds (counts the runtime too)",
        ),
        click.option(
            "--volume-size",
            type=click.IntRange(min=1),
            help="sagemaker: training volume in GB [default 30]",
        ),
        click.option("--kms-key", help="sagemaker: KMS key for the output artifacts"),
        click.option("--subnet", "subnets", multiple=True, help="sagemaker: VPC subnet id"),
        click.option(
            "--security-group",
            "security_groups",
            multiple=True,
            help="sagemaker: VPC security group id",
        ),
        click.option(
            "--tag",
            "tags",
            multiple=True,
            metavar="KEY=VALUE",
            help="sagemaker: a tag for the training job",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _pop_cloud(kwargs: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    dry_run = bool(kwargs.pop("dry_run"))
    tags: dict[str, str] = {}
    for text in kwargs.pop("tags"):
        key, separator, value = text.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--tag")
        tags[key] = value
    extras = {
        "detach": bool(kwargs.pop("detach")),
        "spot": bool(kwargs.pop("spot")),
        "max_runtime": kwargs.pop("max_runtime"),
        "max_wait": kwargs.pop("max_wait"),
        "volume_size": kwargs.pop("volume_size"),
        "kms_key": kwargs.pop("kms_key"),
        "subnets": list(kwargs.pop("subnets")),
        "security_groups": list(kwargs.pop("security_groups")),
        "tags": tags,
    }
    return dry_run, {name: value for name, value in extras.items() if value not in (None, [], {})}


def _run_job(options: dict[str, Any], **arguments: Any) -> None:
    """``run`` and ``train``: settings, hyperparameters and cloud options, then the job."""
    settings = _pop_settings(options)
    dry_run, extras = _pop_cloud(options)
    result = pipeline.run(
        settings=settings,
        hyperparameters=_pop_hyperparameters(options),
        extras=extras,
        dry_run=dry_run,
        **arguments,
    )
    _report_job(result)


def _report_job(result: Any) -> None:
    if isinstance(result, pipeline.JobSummary | pipeline.DetachedJob):
        out.print(result.line(), highlight=False)
    else:
        out.print_json(data=result)


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise click.BadParameter("give at least two distinct, comma-separated class names")
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="more log output")
def cli(verbose: bool) -> None:
    """Train a phone-surface defect classifier: the same job on this machine, in the SageMaker
    container (DEFECTS_BACKEND=local) or on SageMaker (DEFECTS_BACKEND=sagemaker)."""
    setup_logging(verbose)


@cli.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="class folders or a prepared dataset [default: draw synthetic photos]",
)
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=280,
    show_default=True,
    help="synthetic photos per class when --data is not given",
)
@click.option("--classes", type=_classes, default=",".join(DEFAULT_CLASSES), show_default=True)
@click.option("--job-name", help="unique job name [default defects-<time>-<random>]")
@_hyperparameter_options
@_cloud_options
@_settings_options
def run(
    data: Path | None, per_class: int, classes: tuple[str, ...], job_name: str | None, **kwargs: Any
) -> None:
    """The main job: prepare, stage, train, fetch and plot, in one command."""
    _run_job(kwargs, data=data, job_name=job_name, per_class=per_class, classes=classes)


@cli.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--per-class", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--width", type=click.IntRange(min=64), default=640, show_default=True)
@click.option("--height", type=click.IntRange(min=64), default=360, show_default=True)
def synth(out_dir: Path, per_class: int, seed: int, width: int, height: int) -> None:
    """Draw synthetic phone photos (good, oil, scratch, stain) into OUT_DIR."""
    path = pipeline.synthesize(out_dir, per_class=per_class, seed=seed, width=width, height=height)
    out.print(str(path), highlight=False)


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="where the split goes [default data/prepared/<dataset-id>]",
)
@click.option("--classes", type=_classes, default=",".join(DEFAULT_CLASSES), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def prepare(source: Path, out_dir: Path | None, classes: tuple[str, ...], seed: int) -> None:
    """Check every image in SOURCE and split it into train/validation/test (SOURCE is never
    modified; bad files are skipped and listed in manifest.json)."""
    dataset = pipeline.prepare(source, out_dir, classes=classes, seed=seed)
    out.print(str(dataset.root), highlight=False)


@cli.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@_settings_options
def stage(dataset: Path, **kwargs: Any) -> None:
    """Upload a prepared DATASET to S3 (unchanged objects are skipped)."""
    settings = _pop_settings(kwargs)
    backend = _backend(settings)
    prepared = pipeline.prepare(dataset)
    with pipeline.open_storage(settings, backend) as store:
        if store.endpoint and not settings.s3_endpoint:
            err.print(
                "[yellow]The embedded S3 server stops with this command; run `defects s3 "
                "serve` and set AWS_ENDPOINT_URL_S3 to keep staged data.[/]"
            )
        channels = pipeline.stage(prepared, store)
    out.print_json(data=channels)


@cli.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="class folders or a prepared dataset",
)
@click.option("--job-name", help="unique job name [default defects-<time>-<random>]")
@_hyperparameter_options
@_cloud_options
@_settings_options
def train(data: Path, job_name: str | None, **kwargs: Any) -> None:
    """Stage DATA if needed, train on the chosen backend and fetch the artifacts."""
    _run_job(kwargs, data=data, job_name=job_name)


def _run_dir(job: str, runs_dir: Path | None) -> Path:
    path = Path(job)
    if path.is_dir():
        return path
    return (runs_dir or resolve().runs_dir) / job


@cli.command()
@click.argument("job")
@click.option("--runs-dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print history.json as it is")
def history(job: str, runs_dir: Path | None, as_json: bool) -> None:
    """Print the per-epoch training history of JOB (a name under runs/ or a folder).

    A job that ran on its own (``--detach``) is first fetched from S3 once it has finished."""
    history_path = _run_dir(job, runs_dir) / contract.HISTORY_FILE
    if not history_path.exists() and not Path(job).is_dir():
        pipeline.collect(job, resolve({"runs_dir": runs_dir}))
    record = pipeline.load_json(history_path)
    if as_json:
        out.print_json(data=record)
        return
    from rich.table import Table

    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in record]
    table = Table("epoch", *keys, title=f"history of {job}")
    for index, epoch in enumerate(record.get("epoch", [])):
        table.add_row(str(epoch), *(f"{record[k][index]:.4f}" for k in keys))
    out.print(table)


@cli.command()
@click.argument("job")
@click.option("--runs-dir", type=click.Path(path_type=Path))
def plot(job: str, runs_dir: Path | None) -> None:
    """Draw curves.png and confusion.png for JOB."""
    for path in pipeline.plot(_run_dir(job, runs_dir)):
        out.print(str(path), highlight=False)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--data", type=click.Path(path_type=Path), help="prepared dataset [default: the job's own]"
)
@click.option(
    "--split", type=click.Choice(["train", "validation", "test"]), default="test", show_default=True
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="where metrics.json and confusion.png go [default <job>/evaluation-<split>]",
)
@click.option("--runs-dir", type=click.Path(path_type=Path))
def evaluate(
    model: Path, data: Path | None, split: str, out_dir: Path | None, runs_dir: Path | None
) -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of MODEL (a job
    name or folder, a model.tar.gz, or a .keras file) on a prepared split."""
    from rich.table import Table

    from defects.inference import evaluate as evaluate_model

    location = model if model.exists() else _run_dir(str(model), runs_dir)
    metrics, written = evaluate_model(location, data, split, out_dir)
    table = Table(
        "class",
        "precision",
        "recall",
        "F1",
        "support",
        title=f"{split}: accuracy {metrics['accuracy']:.4f}, "
        f"macro-F1 {metrics['macro_f1']:.4f} ({metrics['count']} images)",
    )
    for name, scores in metrics["per_class"].items():
        table.add_row(
            name,
            f"{scores['precision']:.3f}",
            f"{scores['recall']:.3f}",
            f"{scores['f1']:.3f}",
            str(scores["support"]),
        )
    out.print(table)
    matrix = Table("true \\ predicted", *metrics["class_names"], title="confusion matrix")
    for name, row in zip(metrics["class_names"], metrics["confusion_matrix"], strict=True):
        matrix.add_row(name, *(str(v) for v in row))
    out.print(matrix)
    out.print(f"written to {written}", highlight=False)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", type=click.Path(path_type=Path), nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--runs-dir", type=click.Path(path_type=Path))
def predict(model: Path, images: tuple[Path, ...], as_json: bool, runs_dir: Path | None) -> None:
    """Classify IMAGES with MODEL; unreadable files get a reason, the rest an answer."""
    from rich.table import Table

    from defects.inference import load_model
    from defects.inference import predict as predict_images

    location = model if model.exists() else _run_dir(str(model), runs_dir)
    loaded = load_model(location)
    results = predict_images(loaded, list(images))
    if as_json:
        out.print_json(data=[result.as_dict() for result in results])
    else:
        table = Table("image", "class", *loaded.class_names)
        for result in results:
            if result.error:
                table.add_row(
                    str(result.path),
                    "[red]unreadable[/]",
                    result.error,
                    *[""] * (len(loaded.class_names) - 1),
                )
            else:
                table.add_row(
                    str(result.path),
                    result.label or "",
                    *(f"{result.probabilities[n]:.3f}" for n in loaded.class_names),
                )
        out.print(table)
    failed = [result for result in results if result.error]
    for result in failed:
        err.print(f"[yellow]skipped[/] {result.path}: {result.error}", highlight=False)
    if failed:
        sys.exit(1)


@cli.command()
@_settings_options
def config(**kwargs: Any) -> None:
    """Print every resolved setting and where it came from."""
    settings = _pop_settings(kwargs)
    from rich.table import Table

    table = Table("setting", "value", "source")
    for row in settings.described():
        table.add_row(*row)
    out.print(table)


def _backend(settings: Settings) -> Any:
    from defects.backends import get_backend

    return get_backend(settings)


@cli.command()
def doctor() -> None:
    """Check what every backend needs on this machine."""
    from defects.backends import BACKENDS, backend_class

    failures = 0
    for name in BACKENDS:
        try:
            backend = backend_class(name)(resolve({"backend": name}))
            checks = backend.checks()
        except DefectsError as error:
            out.print(f"[bold]{name}[/]: [red]unavailable[/] - {error}")
            failures += 1
            continue
        out.print(f"[bold]{name}[/]")
        for item in checks:
            mark = "[green]ok[/]" if item.ok else "[red]FAIL[/]"
            out.print(f"  {mark} {item.name}: {item.detail}")
            if not item.ok and item.hint:
                out.print(f"       fix: {item.hint}")
    sys.exit(0 if failures == 0 else 1)


@cli.group()
def s3() -> None:
    """The embedded S3 server."""


@s3.command()
@click.option("--port", type=click.IntRange(0, 65535), default=5555, show_default=True)
def serve(port: int) -> None:
    """Run an S3 server on 127.0.0.1 in the foreground, for multi-command sessions."""
    import time

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    out.print(f"export AWS_ENDPOINT_URL_S3=http://{host}:{bound}", highlight=False)
    err.print("S3 server running (in memory; Ctrl-C stops it and forgets everything).")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


def _report(error: DefectsError) -> None:
    err.print(f"[bold red]error:[/] [bold]{error.headline}[/]", highlight=False)
    err.print(error.message, highlight=False)
    if error.hint:
        err.print(f"[bold]hint:[/] {error.hint}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="defects", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("interrupted")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except DefectsError as error:
        _report(error)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception:  # noqa: BLE001 - the last resort: say it is ours, keep the traceback.
        err.print("[bold red]internal error[/] (a bug in defects; please report it):")
        traceback.print_exc()
        sys.exit(1)
