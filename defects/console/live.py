"""The training job's output as a user reads it, the same on every backend.

Each backend hands every line of the entry point's output (the process backend's pipe, the
container log the SageMaker SDK prints in local mode, the CloudWatch events of a SageMaker
job) to one :class:`JobOutput`, after writing it to the job log as it came. Here:

- ``defects-progress {json}`` lines become one live line on a terminal: epoch n of N (or
  "until validation stops improving"), the step within the epoch, elapsed and estimated
  time left, the last validation accuracy. Without a terminal they are not shown: the entry
  point's own line per epoch is.
- TensorFlow's start-up chatter (:mod:`defects.console.tfnoise`) and the metric lines that tuning
  reads (:mod:`defects.training.metric_log`; the epoch line says the same) stay in the job
  log only.
- The container's start-up (docker compose's lines, the SageMaker drivers' shell trace,
  config files and environment) stays in the job log only, in local mode and on SageMaker.
- Every other line is printed as it is, without the compose prefix of local mode.
"""

from __future__ import annotations

import json
import re
import time
from contextvars import ContextVar
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

from defects.console import err, log
from defects.console.tfnoise import is_noise
from defects.training.contract import PROGRESS_PREFIX
from defects.training.metric_log import PREFIX as METRIC_PREFIX

_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_COLOR = rf"(?:{_ESCAPE.pattern})*"
# What docker compose puts before each line of a container: "algo-1-1  | " (compose v2) or
# "algo-1_1  | " in colour (docker-compose 1.x); the SDK names the services algo-N.
_COMPOSE_PREFIX = re.compile(rf"^{_COLOR}(?:[\w.-]*[-_])?algo-\d+(?:[-_]\w+)?\s*\|{_COLOR} ?")


# What the training container and docker compose say around the entry point's own lines:
# compose's containers and network coming and going, and the SageMaker drivers' start (a
# shell trace, the config files and the whole environment, secrets masked). The same on
# SageMaker, where the drivers run too. Kept in the job log only.
_CONTAINER_CHATTER = re.compile(
    r"(?:Creating network \S+ with the default driver"
    r"|(?:Creating|Starting|Stopping|Removing) \S+ \.\.\.(?: done)?"
    r"|(?:Network|Container|Volume) \S+\s+(?:Creating|Created|Starting|Started|Stopping"
    r"|Stopped|Removing|Removed|Recreate|Recreated)"
    r"|Attaching to [\w.,\s-]+"
    r"|[\w.-]+ exited with code 0"
    r"|Aborting on container exit\.\.\."
    r"|\+\+ .*"
    r"|Python \d+\.\d+\.\d+"
    r"|/opt/ml/input/config/[\w.]+:"
    # (a config file has no newline at its end: the next trace line may follow on its line)
    r"|\{\s*\"(?:current_host|train|validation|test|code)\".*"
    r"|Starting training script|Setting up environment variables|Environment Variables:"
    r"|No (?:GPUs|Neurons) detected \(normal if no \w+ installed\)"
    r"|Running Basic Script driver|Executing command: .*"
    r"|Training Container Execution Completed)"
)
# A line of the environment the drivers print after "Environment Variables:".
_ENVIRONMENT_LINE = re.compile(r"[A-Z_][A-Z0-9_]*=.*")


def plain(line: str) -> str:
    """``line`` without its trailing newline and without a container's compose prefix."""
    return _COMPOSE_PREFIX.sub("", line.rstrip("\r\n"), count=1)


def parse_progress(line: str) -> dict[str, Any] | None:
    """The event of a ``defects-progress`` line (after :func:`plain`), else None."""
    text = line.strip()
    if not text.startswith(PROGRESS_PREFIX.strip()):
        return None
    try:
        event = json.loads(text[len(PROGRESS_PREFIX.strip()) :])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def duration(seconds: float) -> str:
    minutes, whole = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{whole:02d}s" if minutes else f"{whole}s"


def describe(event: dict[str, Any], since: float = 0.0) -> dict[str, str]:
    """The texts of the live line for one progress event, ``since`` seconds after it came."""
    epoch, epochs = event.get("epoch"), event.get("epochs")
    if event.get("automatic"):
        epoch_text = f"epoch {epoch} (until validation stops improving, at most {epochs})"
    else:
        epoch_text = f"epoch {epoch}/{epochs}"
    if event.get("event") == "epoch" and epoch == epochs:
        epoch_text = f"{epoch_text} done: saving and evaluating"
    step, steps = event.get("step"), event.get("steps")
    step_text = f"step {step}/{steps}" if steps else f"step {step}"
    times = f"{duration(float(event.get('elapsed') or 0) + since)} elapsed"
    if event.get("left") is not None:
        times += f", about {duration(max(0.0, float(event['left']) - since))} left"
    accuracy = event.get("val_accuracy")
    accuracy_text = f"val_accuracy {accuracy:.3f}" if isinstance(accuracy, float | int) else ""
    return {"epoch": epoch_text, "step": step_text, "times": times, "accuracy": accuracy_text}


def fraction_done(event: dict[str, Any]) -> float:
    """How much of the job (or, with automatic epochs, of the epoch) is done."""
    steps = event.get("steps") or 0
    within = min(1.0, float(event.get("step") or 0) / steps) if steps else 0.0
    if event.get("automatic") or not event.get("epochs"):
        return within
    return min(1.0, (float(event["epoch"]) - 1 + within) / float(event["epochs"]))


class _LiveTexts(ProgressColumn):
    """The live line's texts, with the times moving on between two progress events."""

    def render(self, task: Task) -> Text:
        event = task.fields.get("event") or {}
        received = task.fields.get("received")
        since = time.monotonic() - float(received) if received is not None else 0.0
        texts = describe(event, since)
        return Text("  ".join(texts[key] for key in ("step", "times", "accuracy") if texts[key]))


# Where several jobs print at once (parallel tuning trials), the name each one's lines carry;
# a JobOutput takes the one of the thread that makes it.
OUTPUT_LABEL: ContextVar[str | None] = ContextVar("output_label", default=None)


class JobOutput:
    """Renders a training job's output lines; a context manager around the live line.

    ``live`` defaults to whether the console is a terminal."""

    def __init__(self, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or err
        self.live = self.console.is_terminal if live is None else live
        label = OUTPUT_LABEL.get()
        self.prefix = f"[{label}] " if label else ""
        self.last: dict[str, Any] | None = None
        self._in_environment = False
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> JobOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def feed(self, line: str) -> None:
        """Take one line of the job's output, as it came (newline and prefix included)."""
        text = plain(line)
        event = parse_progress(text)
        if event is not None:
            self.last = event
            if self.live:
                self._show(event)
            return
        if is_noise(text):
            log.debug("tensorflow: %s", text)
            return
        if text.startswith(METRIC_PREFIX):
            log.debug("%s", text)
            return
        if self._chatter(text):
            log.debug("container: %s", text)
            return
        text = self.prefix + text
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self.console.out(text, highlight=False)

    def _chatter(self, text: str) -> bool:
        """Whether ``text`` is the container's or compose's chatter (or an empty line)."""
        stripped = _ESCAPE.sub("", text).strip()
        if stripped == "Environment Variables:":
            self._in_environment = True
        elif self._in_environment and not _ENVIRONMENT_LINE.fullmatch(stripped):
            self._in_environment = False
        if self._in_environment or not stripped:
            return True
        return _CONTAINER_CHATTER.fullmatch(stripped) is not None

    def _show(self, event: dict[str, Any]) -> None:
        texts = describe(event)
        texts["epoch"] = self.prefix + texts["epoch"]
        if self._progress is None:
            # Nothing is redirected: in local mode sys.stdout is the backend's tee into the
            # job log, which rich would otherwise print past the filter and then restore
            # after the backend had put its own stdout back.
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                _LiveTexts(),
                console=self.console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            # The first frame is drawn at start: it shows this event, not an empty one.
            self._task = self._progress.add_task(
                texts["epoch"], total=1.0, event=event, received=time.monotonic()
            )
            self._progress.start()
        assert self._task is not None
        self._progress.update(
            self._task,
            completed=fraction_done(event),
            description=texts["epoch"],
            event=event,
            received=time.monotonic(),
        )


class LineBuffer:
    """Turns written text into whole lines for a :class:`JobOutput` (the SDK writes the
    container's log in pieces)."""

    def __init__(self, output: JobOutput) -> None:
        self._output = output
        self._pending = ""

    def write(self, text: str) -> None:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._output.feed(line)

    def flush(self) -> None:
        if self._pending:
            self._output.feed(self._pending)
            self._pending = ""
