"""What a person reads: logs and progress to stderr, results to stdout (here); the live line
of a training job (:mod:`.live`); TensorFlow's start-up chatter kept out (:mod:`.tfnoise`).

The tool logs through the standard :mod:`logging` module, to the ``defects`` logger, at
INFO by default. Until an application configures logging (the root logger has a handler)
those lines go to stderr as they are, so a notebook shows them; set the level to hear less
or more: ``logging.getLogger("defects").setLevel(logging.WARNING)``.

Imports: the training contract's line formats only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# No console markup or emoji codes: what is printed holds file paths, class names and
# messages with brackets ([ranges], a folder named "dent[1]"), shown as they are; styles
# are given as styles (rich.text.Text).
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)
out = Console(soft_wrap=True, markup=False, emoji=False)
log = logging.getLogger("defects")


class _UntilConfigured(logging.StreamHandler):
    """Prints the tool's lines while nobody has configured logging; after that the
    application's handlers have them (the records propagate as usual)."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


log.setLevel(logging.INFO)
log.addHandler(_UntilConfigured())


def setup_logging(verbose: bool = False) -> None:
    """The command line's logging: rich lines on stderr."""
    from rich.logging import RichHandler

    handler = RichHandler(console=err, show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The SageMaker SDK says at INFO which of its settings it applied (our telemetry opt-out).
    logging.getLogger("sagemaker.config").setLevel(logging.DEBUG if verbose else logging.WARNING)


class Bar:
    """Advances a progress bar (``bar(n)``); ``set_total`` once the total is known."""

    def __init__(self, progress: Progress, task: object) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, steps: int = 1) -> None:
        self._progress.advance(self._task, steps)  # type: ignore[arg-type]

    def set_total(self, total: int) -> None:
        self._progress.update(self._task, total=total)  # type: ignore[arg-type]


@contextmanager
def progress(description: str, total: int | None, disabled: bool = False) -> Iterator[Bar]:
    """A progress bar on stderr (``total`` None until :meth:`Bar.set_total`). Quiet when
    stderr is not a terminal, or when ``disabled``."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=disabled or not err.is_terminal,
    ) as bar:
        yield Bar(bar, bar.add_task(description, total=total))
