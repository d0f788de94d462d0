"""The SageMaker training contract: every name the entry point and the backends share.

This module is imported by the host (``defects.training.contract``) and by the entry point
inside the container (as the sibling module ``contract``), so it uses the standard library
only. The names follow ``sagemaker_training/params.py`` and ``environment.py``.

Inside a container the tree is rooted at ``/opt/ml``; the ``process`` backend emulates it
under ``runs/<job>/opt/ml`` and points ``SAGEMAKER_BASE_DIR`` (and every ``SM_*`` path)
there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"

MODEL_DIR_ENV = "SM_MODEL_DIR"
OUTPUT_DATA_DIR_ENV = "SM_OUTPUT_DATA_DIR"
OUTPUT_DIR_ENV = "SM_OUTPUT_DIR"
INPUT_DIR_ENV = "SM_INPUT_DIR"
CHANNELS_ENV = "SM_CHANNELS"
CHANNEL_ENV_PREFIX = "SM_CHANNEL_"
HYPERPARAMETERS_ENV = "SM_HPS"
HYPERPARAMETER_ENV_PREFIX = "SM_HP_"
NUM_GPUS_ENV = "SM_NUM_GPUS"
NUM_CPUS_ENV = "SM_NUM_CPUS"
HOSTS_ENV = "SM_HOSTS"
CURRENT_HOST_ENV = "SM_CURRENT_HOST"
CHECKPOINT_DIR_ENV = "SM_CHECKPOINT_DIR"

# Paths below the base dir, as in the container.
MODEL_PATH = "model"
OUTPUT_PATH = "output"
OUTPUT_DATA_PATH = "output/data"
FAILURE_PATH = "output/failure"
INPUT_DATA_PATH = "input/data"
INPUT_CONFIG_PATH = "input/config"
CHECKPOINTS_PATH = "checkpoints"

TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
TEST_CHANNEL = "test"
CHANNELS = (TRAIN_CHANNEL, VALIDATION_CHANNEL, TEST_CHANNEL)
REQUIRED_CHANNELS = (TRAIN_CHANNEL, VALIDATION_CHANNEL)

# Artifacts the backends pack and upload, the same names SageMaker uses.
MODEL_ARCHIVE = "model.tar.gz"
OUTPUT_ARCHIVE = "output.tar.gz"

# Files the entry point writes.
KERAS_MODEL_FILE = "model.keras"
CLASS_NAMES_FILE = "class_names.json"
SAVED_MODEL_DIR = "saved_model"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"


def base_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(BASE_DIR_ENV, DEFAULT_BASE_DIR))


def channel_env(channel: str) -> str:
    return CHANNEL_ENV_PREFIX + channel.upper()


def hyperparameter_arguments(hyperparameters: Mapping[str, object]) -> list[str]:
    """Hyperparameters as the toolkit passes them: sorted ``--name value`` pairs."""
    arguments: list[str] = []
    for name in sorted(hyperparameters):
        arguments += [f"--{name}", str(hyperparameters[name])]
    return arguments


def job_environment(
    base: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, object],
    num_gpus: int = 0,
    num_cpus: int | None = None,
    host: str = "algo-1",
) -> dict[str, str]:
    """The ``SM_*`` variables a training container gets, for an ``opt/ml`` tree at ``base``."""
    environment = {
        BASE_DIR_ENV: str(base),
        MODEL_DIR_ENV: str(base / MODEL_PATH),
        OUTPUT_DIR_ENV: str(base / OUTPUT_PATH),
        OUTPUT_DATA_DIR_ENV: str(base / OUTPUT_DATA_PATH),
        INPUT_DIR_ENV: str(base / "input"),
        CHECKPOINT_DIR_ENV: str(base / CHECKPOINTS_PATH),
        CHANNELS_ENV: json.dumps(sorted(channels)),
        HYPERPARAMETERS_ENV: json.dumps({k: hyperparameters[k] for k in sorted(hyperparameters)}),
        NUM_GPUS_ENV: str(num_gpus),
        NUM_CPUS_ENV: str(num_cpus if num_cpus is not None else os.cpu_count() or 1),
        HOSTS_ENV: json.dumps([host]),
        CURRENT_HOST_ENV: host,
    }
    for channel, path in channels.items():
        environment[channel_env(channel)] = str(path)
    for name, value in hyperparameters.items():
        environment[HYPERPARAMETER_ENV_PREFIX + name.replace("-", "_").upper()] = str(value)
    return environment


# The hyperparameters every job passes explicitly, so that all backends run the same job.
HYPERPARAMETER_DEFAULTS: dict[str, str | int | float | bool] = {
    "epochs": 24,
    "batch_size": 32,
    "learning_rate": 0.001,
    "image_size": "384x216",
    "seed": 0,
    "model": "default",
    "augment": True,
    "class_weights": True,
    "precision": "auto",
}


IMAGE_SIDE_RANGE = (16, 1024)


def image_shape(size: object) -> tuple[int, int]:
    """``(height, width)`` of an image size: one side for a square (``288``), or width x height
    the way photo sizes are written (``384x216``). Each side must lie in ``IMAGE_SIDE_RANGE``.
    """
    text = str(size).strip().lower()
    width, separator, height = text.partition("x")
    try:
        shape = (int(height), int(width)) if separator else (int(text), int(text))
    except ValueError:
        raise ValueError(
            f"{size!r} is not an image size: give one side such as 288 (a square) or "
            "width x height such as 384x216."
        ) from None
    low, high = IMAGE_SIDE_RANGE
    if not all(low <= side <= high for side in shape):
        raise ValueError(f"image size {size!r}: each side must be between {low} and {high}.")
    return shape


def image_size_text(shape: tuple[int, int]) -> str:
    """The inverse of ``image_shape``: ``"288"`` for a square, else ``"384x216"``."""
    height, width = shape
    return str(width) if height == width else f"{width}x{height}"
