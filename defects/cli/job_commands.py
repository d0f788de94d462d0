"""The commands that make and run jobs: run, train, synth, prepare, stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from defects.cli.options import (
    classes_option,
    cloud_options,
    cost_check,
    cost_options,
    data_options,
    hyperparameter_options,
    json_option,
    make_backend,
    out_dir_option,
    pop_cloud,
    pop_hyperparameters,
    pop_settings,
    print_result,
    result_json_option,
    settings_options,
)
from defects.console import err, out


def _run_job(options: dict[str, Any], **arguments: Any) -> None:
    """``run`` and ``train``: settings, hyperparameters and cloud options, then the job."""
    from defects.pipeline import launch as pipeline

    backend = make_backend(pop_settings(options))
    dry_run, cloud = pop_cloud(options)
    as_json = options.pop("as_json")
    hyperparameters = pop_hyperparameters(options)
    check = cost_check(backend, options, cloud, dry_run)

    def before_launch(dataset: Any, parameters: Any, _options: Any) -> None:
        check(dataset, [dict(parameters)], 1)

    if dry_run:
        request = pipeline.dry_run(
            backend=backend,
            hyperparameters=hyperparameters,
            options=cloud,
            before_launch=before_launch,
            **arguments,
        )
        out.print_json(data=request)
        return
    result = pipeline.run(
        backend=backend,
        hyperparameters=hyperparameters,
        options=cloud,
        before_launch=before_launch,
        **arguments,
    )
    print_result(result, as_json, backend.settings.runs_dir)


job_name_option = click.option(
    "--job-name", show_default="defects-<time>-<random>", help="a new, unique job name"
)


@click.command()
@data_options
@job_name_option
@hyperparameter_options
@cloud_options
@cost_options
@settings_options
@result_json_option
def run(
    data: Path | None,
    per_class: int,
    classes: tuple[str, ...] | None,
    job_name: str | None,
    **kwargs: Any,
) -> None:
    """The whole job: prepare, stage, train, fetch and plot."""
    _run_job(kwargs, data=data, job_name=job_name, per_class=per_class, classes=classes)


@click.command()
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--per-class", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--width", type=click.IntRange(min=64), default=640, show_default=True)
@click.option("--height", type=click.IntRange(min=64), default=360, show_default=True)
def synth(out_dir: Path, per_class: int, seed: int, width: int, height: int) -> None:
    """Draw synthetic phone photos into OUT_DIR.

    One folder per class (good, oil, scratch, stain), as in the public dataset."""
    from defects.dataset import steps

    path = steps.synthesize(out_dir, per_class=per_class, seed=seed, width=width, height=height)
    out.print(str(path), highlight=False)


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@out_dir_option("data/prepared/<dataset-id>", "where the split goes")
@classes_option
@click.option("--seed", type=int, default=0, show_default=True)
@json_option("print the dataset's id, folder, classes, counts and skipped files as JSON")
def prepare(
    source: Path, out_dir: Path | None, classes: tuple[str, ...] | None, seed: int, as_json: bool
) -> None:
    """Check the images in SOURCE and split them for training.

    Every image is decoded once; bad files are skipped and listed with their reason in
    manifest.json. The split is train/validation/test, stratified and seeded. SOURCE is
    never modified. Prints the prepared folder."""
    from defects.dataset import steps

    dataset = steps.prepare(source, out_dir, classes=classes, seed=seed)
    if not as_json:
        out.print(str(dataset.root), highlight=False)
        return
    manifest = dataset.manifest
    keys = ("dataset_id", "source", "classes", "seed", "counts", "ignored_folders", "skipped")
    out.print_json(data={"root": str(dataset.root), **{key: manifest[key] for key in keys}})


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@settings_options
def stage(dataset: Path, **kwargs: Any) -> None:
    """Upload a prepared DATASET to S3 (unchanged objects are skipped)."""
    from defects.dataset import steps

    settings = pop_settings(kwargs)
    backend = make_backend(settings)
    prepared = steps.prepare(dataset)
    with backend.open_storage() as store:
        if store.emulated and not settings.s3_endpoint:
            err.print(
                "The embedded S3 server stops with this command; run `defects s3 serve` and "
                "set AWS_ENDPOINT_URL_S3 to keep staged data.",
                style="yellow",
            )
        channels = steps.stage(prepared, store)
    out.print_json(data=channels)


@click.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="class folders or a prepared dataset (required unless --resume)",
)
@job_name_option
@click.option(
    "--resume",
    "resume_job",
    metavar="JOB",
    help="continue an interrupted or failed JOB from its last completed epoch",
)
@hyperparameter_options
@cloud_options
@cost_options
@settings_options
@result_json_option
def train(data: Path | None, job_name: str | None, resume_job: str | None, **kwargs: Any) -> None:
    """Stage DATA if needed, train and fetch the artifacts."""
    if resume_job:
        from defects.cli import lifecycle_commands

        settings = pop_settings(kwargs)
        as_json = kwargs.pop("as_json")
        lifecycle_commands.resume_job(
            resume_job, settings, {"data": data, "job_name": job_name, **kwargs}, as_json=as_json
        )
        return
    if data is None:
        raise click.UsageError("Give --data DIR (or --resume JOB).")
    _run_job(kwargs, data=data, job_name=job_name)
