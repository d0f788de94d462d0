"""The commands that read a job's results: history, plot, evaluate, predict."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from defects import pipeline
from defects.cli.options import make_backend, run_dir_of
from defects.console import err, out
from defects.jobs import load_json
from defects.settings import resolve
from defects.training import contract


@click.command()
@click.argument("job")
@click.option("--runs-dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print history.json as it is")
def history(job: str, runs_dir: Path | None, as_json: bool) -> None:
    """Print the per-epoch training history of JOB (a name under runs/ or a folder).

    A job that ran on its own (``--detach``) is first fetched from S3 once it has finished."""
    run_dir = run_dir_of(job, runs_dir)
    history_path = run_dir / contract.HISTORY_FILE
    if not history_path.exists() and not Path(job).is_dir():
        settings = pipeline.settings_of_job(run_dir, resolve({"runs_dir": runs_dir}))
        pipeline.collect(run_dir.name, make_backend(settings))
    record = load_json(history_path)
    if as_json:
        out.print_json(data=record)
        return
    from rich.table import Table

    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in record]
    table = Table("epoch", *keys, title=f"history of {job}")
    for index, epoch in enumerate(record.get("epoch", [])):
        table.add_row(str(epoch), *(f"{record[k][index]:.4f}" for k in keys))
    out.print(table)


@click.command()
@click.argument("job")
@click.option("--runs-dir", type=click.Path(path_type=Path))
def plot(job: str, runs_dir: Path | None) -> None:
    """Draw curves.png and confusion.png for JOB."""
    for path in pipeline.plot(run_dir_of(job, runs_dir)):
        out.print(str(path), highlight=False)


@click.command()
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

    location = model if model.exists() else run_dir_of(str(model), runs_dir)
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


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", type=click.Path(path_type=Path), nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--runs-dir", type=click.Path(path_type=Path))
def predict(model: Path, images: tuple[Path, ...], as_json: bool, runs_dir: Path | None) -> None:
    """Classify IMAGES with MODEL; unreadable files get a reason, the rest an answer."""
    from rich.table import Table

    from defects.inference import load_model
    from defects.inference import predict as predict_images

    location = model if model.exists() else run_dir_of(str(model), runs_dir)
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
