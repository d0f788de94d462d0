"""Training progress as plain log lines, which any host can turn into a live line.

The entry point knows nothing of the host. While it trains it prints, every few seconds and
at the end of each epoch, one line ``defects-progress {json}`` (epoch n of N, step within
the epoch, elapsed and estimated seconds left, the last validation accuracy), and after each
epoch one readable line in the form Keras prints with ``verbose=2``
(``Epoch 3/20 - 2s - loss: 0.5123 - accuracy: 0.8125 - val_loss: ... - val_accuracy: ...``),
which is what a person reads in a plain log and what metric definitions match. Every
backend streams the entry point's output to the host; the host draws the progress lines
(``defects.console.live``) and keeps them in the job log.

Standard library, Keras and the contract only: this module runs inside the training
container.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import keras

from defects.training.contract import PROGRESS_PREFIX

# Seconds between two progress lines within an epoch.
DEFAULT_INTERVAL = 2.0


def seconds_left(done: float, elapsed: float) -> float | None:
    """Time left when ``done`` (0..1) of the work took ``elapsed`` seconds."""
    if done <= 0 or done > 1:
        return None
    return elapsed * (1 - done) / done


def epoch_line(
    epoch: int, epochs: int, automatic: bool, seconds: float, logs: dict[str, float]
) -> str:
    """One epoch, the way Keras prints it with ``verbose=2``."""
    total = f"{epochs} at most" if automatic else str(epochs)
    values = " - ".join(f"{name}: {value:.4f}" for name, value in logs.items())
    return f"Epoch {epoch}/{total} - {seconds:.0f}s" + (f" - {values}" if values else "")


class ProgressLines(keras.callbacks.Callback):
    """Prints ``defects-progress`` lines while ``fit`` runs.

    ``epochs`` is the number of epochs asked for; with ``automatic`` it is the most the
    job may run (training stops when validation stops improving), and no time left is
    estimated."""

    def __init__(
        self,
        epochs: int,
        automatic: bool = False,
        interval: float = DEFAULT_INTERVAL,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.epochs = epochs
        self.automatic = automatic
        self.interval = interval
        self.stream = stream
        self._started = 0.0
        self._epoch_started = 0.0
        self._last = 0.0
        self._first_epoch: int | None = None
        self._epoch = 0
        self._step = 0
        self._steps: int | None = None
        self._val_accuracy: float | None = None

    def _emit(self, event: str, metrics: dict[str, float] | None = None) -> None:
        now = time.monotonic()
        self._last = now
        elapsed = now - self._started
        first = self._first_epoch or 0
        left = None
        if not self.automatic and self.epochs > first:
            # A finished epoch counts whole in the estimate.
            within = 1.0 if event == "epoch" else self._epoch_fraction()
            done = (self._epoch - first + within) / (self.epochs - first)
            left = seconds_left(done, elapsed)
        record: dict[str, Any] = {
            "event": event,
            "epoch": self._epoch + 1,
            "epochs": self.epochs,
            "automatic": self.automatic,
            "step": self._step,
            "steps": self._steps,
            "elapsed": round(elapsed, 1),
            "left": None if left is None else round(left, 1),
            "val_accuracy": self._val_accuracy,
        }
        if metrics is not None:
            record["metrics"] = metrics
        print(PROGRESS_PREFIX + json.dumps(record), file=self.stream or sys.stdout, flush=True)

    def _epoch_fraction(self) -> float:
        return self._step / self._steps if self._steps else 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()
        self._steps = self.params.get("steps") if self.params else None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._epoch = epoch
        self._step = 0
        self._epoch_started = time.monotonic()
        self._emit("step")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._step = batch + 1
        if time.monotonic() - self._last >= self.interval:
            self._emit("step")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {name: float(value) for name, value in (logs or {}).items()}
        if self._steps is None:
            self._steps = self._step  # Now known: the dataset did not say.
        self._val_accuracy = metrics.get("val_accuracy", self._val_accuracy)
        self._step = self._steps or self._step
        self._emit("epoch", metrics)
        seconds = time.monotonic() - self._epoch_started
        print(
            epoch_line(epoch + 1, self.epochs, self.automatic, seconds, metrics),
            file=self.stream or sys.stdout,
            flush=True,
        )
