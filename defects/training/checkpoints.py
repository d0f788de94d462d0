"""Checkpoints: what a stopped run leaves so that the next attempt continues as if it had
never stopped.

After every epoch, :class:`EpochCheckpoint` writes the whole model (its weights and the
optimizer's state; the optimizer's iteration count is the learning-rate schedule's
position) to one of two files, ``model-0.keras`` or ``model-1.keras`` (the one the last
state does not name), then replaces ``state.json``, which names that file and holds the
number of completed epochs, the history so far and the state other callbacks keep
(:attr:`ResumeState.extra`). ``state.json`` is replaced atomically and names only a
complete model file, so a run stopped at any moment, even killed in the middle of a save,
leaves the last completed epoch behind. :func:`restore` loads it into a freshly built model.

The folder is ``/opt/ml/checkpoints``: SageMaker syncs it to S3 and restores it when a job
restarts (spot) or points at it (``defects train --resume``); the ``process`` and ``local``
backends keep it between attempts. Keras' ``load_weights`` would drop the optimizer's state,
so the whole saved model is loaded and both are copied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras

from defects.training import contract, interruption

STATE_FILE = contract.CHECKPOINT_STATE_FILE
# Two slots, so that the folder never grows (SageMaker uploads every file in it).
_MODEL_FILES = ("model-0.keras", "model-1.keras")
_PARTIAL_FILE = "partial.keras"


class CheckpointMismatch(Exception):
    """The checkpoint belongs to a different run (other hyperparameters or data)."""


class CheckpointDamaged(Exception):
    """The checkpoint cannot be read: damaged by something other than this program, whose
    saves are atomic (a disk error, a hand edit, an interrupted copy)."""


@dataclass
class ResumeState:
    """Where a run stands after its last completed epoch."""

    # Completed epochs: the next one to train is ``epoch + 1`` (``initial_epoch=epoch``).
    epoch: int = 0
    # The history of those epochs, as Keras' History has it.
    history: dict[str, list[float]] = field(default_factory=dict)
    # What the run was started with; a checkpoint of another run is refused.
    fingerprint: dict[str, Any] = field(default_factory=dict)
    # State of other callbacks by name (early stopping...), JSON values only.
    extra: dict[str, Any] = field(default_factory=dict)
    # The model file of ``epoch``, relative to the checkpoint folder.
    model_file: str = ""


@contextmanager
def _replacing(path: Path, partial: Path) -> Iterator[Path]:
    """``partial``, to be written in the block: it then replaces ``path`` whole; when the
    block fails (a full disk) it goes, and ``path`` stays as it was."""
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _write_atomically(path: Path, text: str) -> None:
    with _replacing(path, path.with_name(path.name + ".partial")) as partial:
        partial.write_text(text)


def read_state(directory: Path) -> ResumeState | None:
    """The state of the last completed epoch in ``directory``, or None without one; a
    state file that cannot be read raises :class:`CheckpointDamaged`."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
        known = {name: values[name] for name in ResumeState.__dataclass_fields__ if name in values}
        state = ResumeState(**known)
        state.epoch = int(state.epoch)
    except (OSError, ValueError, TypeError) as error:
        raise CheckpointDamaged(f"The checkpoint state {path} cannot be read ({error})") from error
    if not state.model_file or not (directory / state.model_file).is_file():
        return None
    return state


def restore(
    directory: Path, model: keras.Model, fingerprint: Mapping[str, Any] | None = None
) -> ResumeState:
    """Load the last completed epoch's weights and optimizer state into ``model`` (built and
    compiled as the run builds it) and return its state; a fresh state when there is no
    checkpoint. A checkpoint whose fingerprint differs from ``fingerprint`` raises
    :class:`CheckpointMismatch`."""
    fingerprint = dict(fingerprint or {})
    state = read_state(directory)
    if state is None:
        return ResumeState(fingerprint=fingerprint)
    if fingerprint and state.fingerprint != fingerprint:
        changed = sorted(
            name
            for name in set(state.fingerprint) | set(fingerprint)
            if state.fingerprint.get(name) != fingerprint.get(name)
        )
        raise CheckpointMismatch(
            f"The checkpoint in {directory} is of a run with other settings "
            f"({', '.join(changed)} differ)"
        )
    try:
        saved = keras.models.load_model(directory / state.model_file)
    except interruption.Interrupted:
        raise
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a damaged file.
        raise CheckpointDamaged(
            f"The checkpoint {directory / state.model_file} cannot be loaded ({error})"
        ) from error
    model.set_weights(saved.get_weights())
    if saved.optimizer is not None and model.optimizer is not None:
        model.optimizer.build(model.trainable_variables)
        pairs = zip(model.optimizer.variables, saved.optimizer.variables, strict=True)
        for variable, value in pairs:
            variable.assign(value)
    return state


class EpochCheckpoint(keras.callbacks.Callback):
    """Records the history and saves a checkpoint after every epoch (see the module).

    ``extra_state`` maps a name to a function that returns that part of
    :attr:`ResumeState.extra` at save time (early stopping keeps its best value there)."""

    def __init__(
        self,
        directory: Path,
        state: ResumeState,
        extra_state: Mapping[str, Callable[[], Any]] | None = None,
    ) -> None:
        super().__init__()
        self.directory = directory
        self.state = state
        self.extra_state = dict(extra_state or {})
        self._saved_epoch = state.epoch

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        with interruption.deferred():
            for key, value in (logs or {}).items():
                self.state.history.setdefault(key, []).append(float(value))
            self.state.epoch = epoch + 1
            self.save_now()

    def save_now(self) -> None:
        """Make sure the last completed epoch is on disk (a no-op when it already is)."""
        if self.state.epoch <= self._saved_epoch:
            return
        with interruption.deferred():
            self.directory.mkdir(parents=True, exist_ok=True)
            # The slot the last saved state does not name.
            model_file = _MODEL_FILES[self.state.model_file == _MODEL_FILES[0]]
            # Keras saves only to a name ending in .keras.
            with _replacing(self.directory / model_file, self.directory / _PARTIAL_FILE) as partial:
                self.model.save(partial)
            for name, provide in self.extra_state.items():
                self.state.extra[name] = provide()
            self.state.model_file = model_file
            _write_atomically(self.directory / STATE_FILE, json.dumps(asdict(self.state)))
            self._saved_epoch = self.state.epoch
