"""How long to train, and which weights to keep.

With ``--epochs auto`` (the default) the entry point trains until the validation macro-F1
stops improving: it stops after ``PATIENCE`` epochs without a better value and keeps the
weights of the best epoch. The cap on epochs is sized from the dataset
(:func:`defects.training.contract.epoch_cap`, which the host's price estimate uses too): at
least ``MIN_STEPS`` optimizer steps and ``MIN_EPOCHS`` epochs. A fixed epoch count starves
small sets: 60 photos per class of another generator reached 0.36 after 24 epochs (144
steps) and 0.944 after 96 (576 steps). The learning rate decays (cosine) to zero over that cap, the
budget the run may take, and no run stops before half of it (``earliest_stop``), where the
rate has halved: on ELPV's solar cells the validation macro-F1 wanders for tens of epochs
at the initial rate and rises as it decays (test accuracy 0.80 after 30 epochs, 0.84 after
60), so a patience of 10 alone stopped a 60-epoch run after epoch 15. Easy data is not held
back much: the synthetic photos peak by epoch 20 of 60 and stop at 30. Halving the rate on
a validation plateau instead was measured too: on 60 synthetic photos per class it lowered
the rate before the network had learnt (test accuracy 0.72 against 0.97), and on ELPV it
made no difference beyond the noise. With ``--epochs N`` the run takes exactly N epochs,
decays over them and keeps the last weights, as before.

Macro-F1 rather than accuracy or loss: with a rare class (20 ``good`` photos in the public
phone dataset, a third defective cells in ELPV) accuracy can rise while a class is lost.

A tie in macro-F1 goes to the epoch with the lower validation loss. A small validation
split (six photos a class from 40) takes few values, and often reaches its best, even 1.0,
tens of epochs before the network stops improving: the first epoch to reach it was kept,
trained at a high learning rate. Measured at the defaults on five small sets (three of 40
ELPV cells a class, two of 30 synthetic photos a class), scored on 786 cells or 320 photos
none of them had seen: where the tie-break changed the kept epoch (two sets) accuracy rose
from 0.716 to 0.739 and from 0.662 to 0.700; elsewhere nothing changed. A tie does not
restart the patience, so a run is as long as before.

Everything early stopping knows (best value, best epoch, wait count, best weights) goes into
the checkpoint folder after every epoch, so a spot restart resumes where it stopped instead
of starting the patience over or forgetting the best weights.

Standard library, NumPy and Keras only: this runs inside the training container.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

AUTO = "auto"
MONITOR = "val_macro_f1"
PATIENCE = 10

# The best epoch's weights, beside the epoch checkpoint.
BEST_WEIGHTS = "best-weights.npz"


def earliest_stop(cap: int) -> int:
    """The first epoch after which early stopping may end a run: half the cap, where the
    cosine schedule has halved the learning rate."""
    return max(1, cap // 2)


def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """The mean over classes of F1 (0 for a class never predicted nor present)."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    true_positives = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    denominator = predicted + actual
    f1 = np.divide(
        2 * true_positives, denominator, out=np.zeros(num_classes), where=denominator > 0
    )
    return float(f1.mean())


class Validation(keras.callbacks.Callback):
    """Validates after every epoch in one pass: ``val_loss``, ``val_accuracy`` and
    ``val_macro_f1`` go into the epoch's logs, which the callbacks after this one (early
    stopping, the history) read. It replaces ``fit(validation_data=...)``, which cannot
    give macro-F1 without a second pass over the data."""

    def __init__(self, images: Any, labels: np.ndarray, num_classes: int) -> None:
        super().__init__()
        self.images = images
        self.labels = labels
        self.num_classes = num_classes

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        probabilities = np.asarray(self.model.predict(self.images, verbose=0), dtype=np.float64)
        chosen = probabilities[np.arange(len(self.labels)), self.labels]
        logs["val_loss"] = float(-np.mean(np.log(np.clip(chosen, 1e-7, 1.0))))
        predictions = np.argmax(probabilities, axis=1)
        logs["val_accuracy"] = float(np.mean(predictions == self.labels))
        logs[MONITOR] = macro_f1(self.labels, predictions, self.num_classes)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping with best-weights restore, whose state can be saved and
    restored across a restart (Keras' own forgets it in ``on_train_begin``)."""

    stopped_epoch: int

    def __init__(
        self, patience: int = PATIENCE, monitor: str = MONITOR, earliest_stop: int = 0
    ) -> None:
        super().__init__(monitor=monitor, mode="max", patience=patience, restore_best_weights=True)
        # No stop before this many epochs; the best epoch is tracked from the first.
        self.earliest_stop = earliest_stop
        self.best: float | None = None
        self.best_epoch = 0
        # The best epoch's validation loss: of two epochs with the best macro-F1, the one
        # with the lower loss is kept.
        self.best_loss = math.inf
        self._restored: dict[str, Any] | None = None

    def restore(self, state: dict[str, Any], best_weights: list[Any] | None) -> None:
        self._restored = {**state, "best_weights": best_weights}
        self._apply_restored()

    def _apply_restored(self) -> None:
        if self._restored is not None:
            self.best = self._restored["best"]
            self.best_epoch = int(self._restored["best_epoch"])
            best_loss = self._restored.get("best_loss")
            self.best_loss = math.inf if best_loss is None else float(best_loss)
            self.wait = int(self._restored["wait"])
            self.best_weights = self._restored["best_weights"]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self._apply_restored()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        loss = float(logs.get("val_loss", math.inf))
        tie = self.best is not None and logs.get(self.monitor) == self.best
        super().on_epoch_end(epoch, logs)
        if tie and loss < self.best_loss:
            # As good, with a lower loss: keep this epoch; the patience counts on.
            self.best_epoch = epoch
            self.best_weights = self.model.get_weights()
        if self.best_epoch == epoch:
            self.best_loss = loss
        if self.stopped_epoch == epoch > 0 and epoch + 1 < self.earliest_stop:
            # Out of patience too soon: go on (the wait keeps counting, so the run stops at
            # the earliest epoch allowed unless the monitor improves before it).
            self.stopped_epoch = 0
            self.model.stop_training = False

    def state(self) -> dict[str, Any]:
        return {
            "best": None if self.best is None else float(self.best),
            "best_epoch": int(self.best_epoch),
            "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
            "wait": int(self.wait),
            "stopped": bool(self.model is not None and self.model.stop_training),
        }


def early_stopping_saver(
    folder: Path, early_stopping: ResumableEarlyStopping
) -> Callable[[], dict[str, Any]]:
    """What the epoch checkpoint (:mod:`.checkpoints`) keeps of early stopping: its state,
    returned for the checkpoint's state file, and the best epoch's weights, written to their
    own file (atomically) whenever the best epoch changed."""
    written: dict[str, int] = {}

    def save() -> dict[str, Any]:
        weights = early_stopping.best_weights
        if weights is not None and written.get("best_epoch") != early_stopping.best_epoch:
            partial = folder / ("partial-" + BEST_WEIGHTS)
            np.savez(partial, *weights)
            os.replace(partial, folder / BEST_WEIGHTS)
            written["best_epoch"] = early_stopping.best_epoch
        return early_stopping.state()

    return save


def restore_early_stopping(
    folder: Path,
    network: keras.Model,
    early_stopping: ResumableEarlyStopping | None,
    state: dict[str, Any] | None,
) -> dict[str, Any]:
    """Give ``early_stopping`` back the state a checkpoint kept (best value, best epoch,
    wait count, best weights); returns that state (empty without one). The learning rate
    needs no state of its own: it is a function of the optimizer's step, which the
    checkpoint restores with the optimizer."""
    if early_stopping is None or not state:
        return dict(state or {})
    best_weights = None
    if (folder / BEST_WEIGHTS).is_file():
        with np.load(folder / BEST_WEIGHTS) as arrays:
            best_weights = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
    early_stopping.restore(state, best_weights)
    return dict(state)


def stop_reason(
    epochs_run: int, cap: int, early_stopping: ResumableEarlyStopping | None, stopped: bool
) -> str:
    if early_stopping is None:
        return f"ran the {cap} epoch{'' if cap == 1 else 's'} asked for"
    if stopped:
        return (
            f"{MONITOR} did not improve for {early_stopping.patience} epochs "
            f"(stopped after epoch {epochs_run} of at most {cap}; never before epoch "
            f"{early_stopping.earliest_stop})"
        )
    return f"reached the cap of {cap} epochs"


def epochs_text(plan: Any) -> str:
    """How many epochs a run of ``plan`` (fitting.Plan) takes, for its log."""
    if plan.early:
        return (
            f"epochs: until {MONITOR} stops improving for {PATIENCE}, "
            f"at least {plan.earliest_stop} and at most {plan.epochs}"
        )
    return f"epochs {plan.epochs}"
