"""Checkpoints damaged outside the program (a disk error, a hand edit, an interrupted copy):
the next attempt says which file and how to start afresh, instead of an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from defects.training import checkpoints


def _model() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A checkpoint folder after two completed epochs."""
    model = _model()
    model.fit(np.zeros((2, 4)), np.zeros((2, 2)), verbose=0)  # The optimizer's state too.
    saver = checkpoints.EpochCheckpoint(tmp_path, checkpoints.ResumeState())
    saver.set_model(model)
    saver.on_epoch_end(0, {"loss": 1.0})
    saver.on_epoch_end(1, {"loss": 0.5})
    return tmp_path


def test_an_intact_checkpoint_restores_its_epoch(saved: Path) -> None:
    state = checkpoints.restore(saved, _model())
    assert state.epoch == 2 and state.history == {"loss": [1.0, 0.5]}


@pytest.mark.parametrize(
    "damage",
    ["{not json", json.dumps({"epoch": "two", "model_file": "model-1.keras"}), "[1, 2]"],
)
def test_a_damaged_state_file_is_named(saved: Path, damage: str) -> None:
    (saved / checkpoints.STATE_FILE).write_text(damage)
    with pytest.raises(checkpoints.CheckpointDamaged, match="state.json cannot be read"):
        checkpoints.restore(saved, _model())


def test_a_truncated_model_file_is_named(saved: Path) -> None:
    state = checkpoints.read_state(saved)
    assert state is not None
    model_file = saved / state.model_file
    model_file.write_bytes(model_file.read_bytes()[:1000])
    with pytest.raises(checkpoints.CheckpointDamaged, match=f"{state.model_file} cannot be loaded"):
        checkpoints.restore(saved, _model())
