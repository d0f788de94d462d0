"""The commands that read a job's results: history, plot, evaluate, predict."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from defects.cli.options import (
    json_option,
    make_backend,
    out_dir_option,
    run_dir_of,
    runs_dir_option,
)
from defects.console import err, log, out, progress
from defects.training import contract


@click.command()
@click.argument("job")
@runs_dir_option
@json_option("print history.json as it is")
def history(job: str, runs_dir: Path | None, as_json: bool) -> None:
    """Print the per-epoch training history of JOB.

    JOB is a job's name under the runs folder, or a job folder. A SageMaker job started with
    --detach is first fetched from S3, once it has finished."""
    from defects.errors import JobNotFound
    from defects.jobs.records import history_so_far, load_history, read_record, true_status
    from defects.pipeline import launch as pipeline
    from defects.settings import resolve

    try:
        run_dir = run_dir_of(job, runs_dir)
    except JobNotFound:
        # A job of a backend that keeps its own records (SageMaker) is fetched by its name,
        # even without a folder here (started on another machine, or its folder removed).
        settings = resolve({"runs_dir": runs_dir})
        if pipeline.collect(job, make_backend(settings)) is None:
            raise
        run_dir = settings.runs_dir / job
    history_path = run_dir / contract.HISTORY_FILE
    if not history_path.exists() and not Path(job).is_dir():
        settings = pipeline.settings_of_job(run_dir, resolve({"runs_dir": runs_dir}))
        pipeline.collect(run_dir.name, make_backend(settings))
    # A job training, or stopped, on this machine has no history.json yet: its last epoch
    # checkpoint has the epochs so far.
    so_far = history_so_far(run_dir)
    if so_far is not None:
        status = true_status(read_record(run_dir), run_dir)
        so_far["status"] = status
        record = so_far
    else:
        record = load_history(history_path)
    if as_json:
        out.print_json(data=record)
        return
    from rich.table import Table

    names = ("loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1")
    keys = [k for k in names if k in record]
    title = f"history of {job}" + (f" so far ({record['status']})" if so_far else "")
    table = Table("epoch", *keys, title=title)
    kept = record.get("kept_epoch")
    best = record.get("best_epoch")
    for index, epoch in enumerate(record.get("epoch", [])):
        mark = " (kept)" if epoch == kept else " (best)" if epoch == best else ""
        table.add_row(f"{epoch}{mark}", *(f"{record[k][index]:.4f}" for k in keys))
    out.print(table)
    if record.get("stop_reason"):
        out.print(f"Kept epoch {kept}: {record['stop_reason']}.")
    if so_far:
        out.print(
            f"{len(so_far['epoch'])} epoch(s) completed, from the job's last checkpoint"
            + (
                f"; `defects train --resume {run_dir.name}` continues it."
                if status in ("interrupted", "failed")
                else "."
            )
        )


@click.command()
@click.argument("job")
@runs_dir_option
def plot(job: str, runs_dir: Path | None) -> None:
    """Draw curves.png and confusion.png for JOB."""
    from defects.pipeline import launch as pipeline

    for path in pipeline.plot(run_dir_of(job, runs_dir)):
        out.print(str(path), highlight=False)


@click.command()
@click.argument("model")
@click.option(
    "--data",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    show_default="the job's own",
    help="a prepared dataset, or a folder of <class>/<image> files (all of them are scored)",
)
@click.option(
    "--split", type=click.Choice(["train", "validation", "test"]), default="test", show_default=True
)
@out_dir_option(
    "<job>/evaluation-<split>, or a folder named after --data",
    "where metrics.json and confusion.png go",
)
@runs_dir_option
@json_option("print the metrics as JSON")
def evaluate(
    model: str,
    data: Path | None,
    split: str,
    out_dir: Path | None,
    runs_dir: Path | None,
    as_json: bool,
) -> None:
    """Score MODEL on a prepared split or a folder of class folders.

    Accuracy, macro-F1, per-class precision, recall and F1, and the confusion matrix, printed
    and written with confusion.png to the --out folder. MODEL is a job's name or folder, a
    model.tar.gz, or a .keras file. A file that cannot be used is skipped, named on stderr
    and listed in metrics.json."""
    from defects.inference.evaluation import evaluate as evaluate_model
    from defects.inference.loading import load_model, locate_model

    # Loaded before the bar starts: TensorFlow's start holds stderr back for a moment.
    loaded = load_model(locate_model(model, runs_dir))
    with progress("Scoring photos", None) as advance:
        evaluation = evaluate_model(loaded, data, split, out_dir, advance.set_total, advance)
    for skipped in evaluation.metrics["skipped"]:
        _report_skipped(skipped["path"], skipped["error"])
    log.info("Wrote metrics.json and confusion.png to %s.", evaluation.out_dir)
    if as_json:
        out.print_json(data=evaluation.metrics)
        return
    from rich.table import Table

    metrics = evaluation.metrics
    seen = sum(metrics.get("seen_in_training", {}).values())
    out.print(_scores_table(metrics, metrics["split"], seen))
    matrix = Table("true \\ predicted", *metrics["class_names"], title="confusion matrix")
    for name, row in zip(metrics["class_names"], metrics["confusion_matrix"], strict=True):
        matrix.add_row(name, *(str(v) for v in row))
    out.print(matrix)
    if metrics.get("unseen"):
        out.print(_scores_table(metrics["unseen"], "never seen in training"))


def _scores_table(metrics: dict[str, Any], title: str, seen: int = 0) -> Any:
    """Per-class precision, recall and F1, under a title with the accuracy and macro-F1."""
    from rich.table import Table

    counted = f"{metrics['count']} images"
    if metrics.get("skipped"):
        counted += f", {len(metrics['skipped'])} skipped"
    if seen:
        counted += f", {seen} seen in training"
    table = Table(
        "class",
        "precision",
        "recall",
        "F1",
        "support",
        title=f"{title}: accuracy {metrics['accuracy']:.4f}, "
        f"macro-F1 {metrics['macro_f1']:.4f} ({counted})",
    )
    for name, scores in metrics["per_class"].items():
        table.add_row(
            name,
            f"{scores['precision']:.3f}",
            f"{scores['recall']:.3f}",
            f"{scores['f1']:.3f}",
            str(scores["support"]),
        )
    return table


OUTPUTS = ("table", "csv", "jsonl")


@click.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option(
    "--output",
    type=click.Choice(OUTPUTS),
    show_default="table on a terminal, else csv",
    help="how the answers are printed",
)
@json_option("the same as --output jsonl")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@runs_dir_option
def predict(
    model: str,
    images: tuple[str, ...],
    output: str | None,
    as_json: bool,
    batch_size: int,
    runs_dir: Path | None,
) -> None:
    """Classify photos: IMAGES are files, folders or globs.

    MODEL is a job's name or folder, a model.tar.gz, or a .keras file. Each photo gets its
    class and the probability of every class on stdout; a file that cannot be used gets its
    reason on stderr, and the exit status 1."""
    from defects.inference.loading import load_model, locate_model
    from defects.inference.prediction import iter_predictions

    if as_json:
        output = "jsonl"
    output = output or ("table" if sys.stdout.isatty() else "csv")
    loaded = load_model(locate_model(model, runs_dir))
    names = loaded.class_names
    rows: list[list[str]] = []
    writer = csv.writer(sys.stdout, lineterminator="\n")
    if output == "csv":
        writer.writerow(["path", "class", *names])
    failed = 0
    # A bar on stderr while the answers go to a file or a pipe, or wait for the table; answers
    # printed to the terminal one by one show the progress themselves.
    shown = "Classifying photos" if output == "table" or not sys.stdout.isatty() else None
    with progress(shown or "", None, disabled=shown is None) as advance:
        for prediction in iter_predictions(loaded, images, batch_size, advance.set_total):
            advance(1)
            if prediction.error:
                failed += 1
                _report_skipped(prediction.path, prediction.error)
                continue
            if output == "jsonl":
                click.echo(json.dumps(prediction.as_dict()))
                continue
            digits = 6 if output == "csv" else 3
            row = [str(prediction.path), prediction.label or ""]
            row += [f"{prediction.probabilities[name]:.{digits}f}" for name in names]
            if output == "csv":
                writer.writerow(row)
            else:
                rows.append(row)
    if output == "table" and rows:
        _print_table(["image", "class", *names], rows)
    if failed:
        sys.exit(1)


def _report_skipped(path: object, reason: str) -> None:
    """One line on stderr for a photo that could not be used, and why."""
    from rich.text import Text

    err.print(Text.assemble(("skipped", "yellow"), f" {path}: {reason}"))


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(*header)
    # Paths are never cut short: a long one folds onto the next line.
    table.columns[0].overflow = "fold"
    for row in rows:
        table.add_row(*row)
    out.print(table)
