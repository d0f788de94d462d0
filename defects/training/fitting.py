"""The fit itself: how many epochs, what a resumed run restores, the callbacks in their
order, and the record of how training went.

Standard library, NumPy, TensorFlow and Keras only: this runs inside the training container.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from defects.training import budget, checkpoints, contract, metric_log
from defects.training.checkpoints import ResumeState
from defects.training.progress import ProgressLines


class MismatchedCheckpoint(Exception):
    """The checkpoint folder holds a run of other settings or data, or is damaged: the
    message says what to do."""


@dataclass(frozen=True)
class Plan:
    """How long the run is: ``epochs`` (the count, or the cap when it stops early),
    whether it stops early and the first epoch after which it may."""

    epochs: int
    early: bool
    earliest_stop: int | None


def plan(arguments: argparse.Namespace, train_count: int, batch: int) -> Plan:
    """The epochs of a run over ``train_count`` images in steps of ``batch``."""
    early = arguments.epochs == contract.AUTO
    if not early:
        return Plan(arguments.epochs, False, None)
    epochs = contract.auto_epochs(arguments.model, train_count, batch)
    return Plan(epochs, True, budget.earliest_stop(epochs))


@dataclass
class Restored:
    """What a resumed run starts from (a first run starts from nothing): the last completed
    epoch's state, early stopping's state and the checkpoint callback that goes on saving."""

    resume: ResumeState
    early_stopping: budget.ResumableEarlyStopping | None
    stopped: bool
    checkpoint: checkpoints.EpochCheckpoint
    # The last completed epoch it starts after (the checkpoint moves ``resume`` on).
    initial_epoch: int


def restore(
    checkpoint_dir: Path,
    network: keras.Model,
    arguments: argparse.Namespace,
    class_names: list[str],
    train_count: int,
    run: Plan,
) -> Restored:
    """A checkpoint of the last completed epoch (a restarted spot job, or ``defects train
    --resume``) restores the model, its optimizer (and so the learning-rate schedule's
    position), the history so far and the early-stopping state; one of a run with other
    hyperparameters or data is refused."""
    early_stopping = (
        budget.ResumableEarlyStopping(earliest_stop=run.earliest_stop)
        if run.earliest_stop is not None
        else None
    )
    fingerprint = {
        **{spec.name: str(getattr(arguments, spec.name)) for spec in contract.HYPERPARAMETERS},
        "class_names": class_names,
        "train_images": train_count,
    }
    try:
        resume = checkpoints.restore(checkpoint_dir, network, fingerprint)
    except checkpoints.CheckpointMismatch as error:
        raise MismatchedCheckpoint(
            f"{error}: remove the folder to start afresh, or resume with the same settings."
        ) from error
    except checkpoints.CheckpointDamaged as error:
        raise MismatchedCheckpoint(f"{error}: remove the folder to start afresh.") from error
    stopping_state = budget.restore_early_stopping(
        checkpoint_dir, network, early_stopping, resume.extra.get("early_stopping")
    )
    checkpoint = checkpoints.EpochCheckpoint(
        checkpoint_dir,
        resume,
        extra_state=(
            {"early_stopping": budget.early_stopping_saver(checkpoint_dir, early_stopping)}
            if early_stopping is not None
            else None
        ),
    )
    stopped = bool(stopping_state.get("stopped"))
    return Restored(resume, early_stopping, stopped, checkpoint, resume.epoch)


class MetricLines(keras.callbacks.Callback):
    """The ``metric: epoch=N ...`` line tuning reads (:mod:`defects.training.metric_log`):
    keep its form."""

    def __init__(self, epoch_metrics: bool) -> None:
        super().__init__()
        self.keys = ["val_accuracy", "val_loss"] + ([budget.MONITOR] if epoch_metrics else [])

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        found = {key: (logs or {}).get(key) for key in self.keys}
        print(metric_log.line(f"epoch={epoch + 1}", found), flush=True)


def callbacks(
    validation: Any,
    validation_data: Any,
    class_count: int,
    arguments: argparse.Namespace,
    run: Plan,
    restored: Restored,
) -> list[keras.callbacks.Callback]:
    """Validation first (its scores go into the epoch's logs), then early stopping, then the
    checkpoint (so it saves this epoch's early-stopping state), and an epoch's lines last,
    once the epoch is saved."""
    found: list[keras.callbacks.Callback] = [
        budget.Validation(validation_data, validation.labels, class_count)
    ]
    if restored.early_stopping is not None:
        found.append(restored.early_stopping)
    return [
        *found,
        restored.checkpoint,
        MetricLines(arguments.epoch_metrics),
        ProgressLines(run.epochs, automatic=run.early),
    ]


def fit(
    network: keras.Model,
    train_count: int,
    batch: int,
    train_data: Any,
    run: Plan,
    restored: Restored,
    class_weight: dict[int, float] | None,
    epoch_callbacks: list[keras.callbacks.Callback],
) -> float:
    """Train the epochs not done yet; the seconds it took."""
    started = time.perf_counter()
    initial_epoch = restored.initial_epoch
    early_stopping = restored.early_stopping
    if initial_epoch < run.epochs and not restored.stopped:
        network.fit(
            train_data,
            epochs=run.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=contract.steps_per_epoch(train_count, batch),
            class_weight=class_weight,
            shuffle=False,  # The dataset shuffles itself, reproducibly.
            callbacks=epoch_callbacks,
            # The progress lines replace Keras's own bar and epoch lines.
            verbose=0,
        )
    elif early_stopping is not None and early_stopping.best_weights is not None:
        # The restart came after the last epoch: keep the best weights, as fit would have.
        network.set_weights(early_stopping.best_weights)
    return time.perf_counter() - started


def training_record(arguments: argparse.Namespace, run: Plan, restored: Restored) -> dict[str, Any]:
    """How training went: epochs run, the kept epoch and why it stopped."""
    history = restored.resume.history
    early_stopping = restored.early_stopping
    epochs_run = len(history.get("loss", []))
    stopped = restored.stopped
    if early_stopping is not None:
        stopped = stopped or early_stopping.stopped_epoch > 0
        kept_epoch = early_stopping.best_epoch + 1
    else:
        kept_epoch = epochs_run
    return {
        "epochs": arguments.epochs if run.early else run.epochs,
        "epoch_cap": run.epochs,
        "epochs_run": epochs_run,
        "kept_epoch": kept_epoch,
        "monitor": budget.MONITOR if run.early else None,
        "patience": budget.PATIENCE if run.early else None,
        "earliest_stop": run.earliest_stop,
        "stopped_early": stopped,
        "stop_reason": budget.stop_reason(epochs_run, run.epochs, early_stopping, stopped),
        "kept": (
            f"the best epoch's weights (by {budget.MONITOR}; of equals, the lower val_loss)"
            if run.early
            else "the last epoch's weights"
        ),
        "resumed_after_epoch": restored.initial_epoch or None,
    }
