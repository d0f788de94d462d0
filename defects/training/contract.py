"""The SageMaker training contract: every name the entry point and the backends share.

This module is imported by the host and by the entry point inside the container, so it uses
the standard library only. The names follow ``sagemaker_training/params.py`` and
``environment.py``.

It also holds the one hyperparameter schema (:data:`HYPERPARAMETERS`): name, type, default,
allowed values or bounds, help. The CLI options, the entry point's parser, the serialiser
every backend uses (:func:`serialise`), ``defects config`` and tuning ranges are all made
from it; adding a hyperparameter is one entry here plus its use in the training code.

Inside a container the tree is rooted at ``/opt/ml``; the ``process`` backend emulates it
under ``runs/<job>/opt/ml`` and points ``SAGEMAKER_BASE_DIR`` (and every ``SM_*`` path)
there.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path

from defects.training.schema import AUTO, Hyperparameter, HyperparameterValue

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
# How the failure reason of an entry point stopped by a signal begins: such a job resumes.
INTERRUPTED_REASON = "Training was interrupted"
# How the failure reason of a run stopped by a full disk begins (it can be resumed).
DISK_FULL_REASON = "No space left on the device"
INPUT_DATA_PATH = "input/data"
INPUT_CONFIG_PATH = "input/config"
CHECKPOINTS_PATH = "checkpoints"
# A split too large for memory is decoded once into files here (training/batches.py).
DECODED_CACHE_PATH = "cache"
# Decoded images a job keeps in memory, at most, all splits together, unless it says
# otherwise (the cache_mb hyperparameter). About 2,000 photos at 384x216, 3,400 at 296x168:
# the memory of a job on 20,000 photos stays within 1.3x of one on 1,000 (README).
CACHE_BUDGET_MB = 512
# In the checkpoint folder: the last completed epoch, its history and state (checkpoints.py).
CHECKPOINT_STATE_FILE = "state.json"

TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
TEST_CHANNEL = "test"
# ImageNet weights for a pretrained network, given like data (as JumpStart gives its model):
# the channel holds ``<variant>.weights.h5`` and its ``.sha256``, and the network of each
# pretrained model takes the weights of its variant.
PRETRAINED_CHANNEL = "pretrained"
PRETRAINED_WEIGHTS = {"efficientnet_lite0": "efficientnet_lite0"}
# The networks: pretrained ones, then the from-scratch ones (training/model.py).
MODELS = ("efficientnet_lite0", "scratch", "article")
WEIGHTS_SUFFIX = ".weights.h5"
DIGEST_SUFFIX = ".sha256"


def weights_name(variant: str) -> str:
    """The weights file of ``variant`` in the pretrained channel."""
    return f"{variant}{WEIGHTS_SUFFIX}"


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

# The entry point reports training progress as lines "defects-progress {json}" in its log
# (see training/progress.py); hosts draw them.
PROGRESS_PREFIX = "defects-progress "


def base_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(BASE_DIR_ENV, DEFAULT_BASE_DIR))


def channel_env(channel: str) -> str:
    return CHANNEL_ENV_PREFIX + channel.upper()


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


# The cap of an ``--epochs auto`` run, sized from the dataset (why these figures:
# defects.training.budget).
MIN_EPOCHS = 60
MIN_STEPS = 1000
MAX_EPOCHS = 200


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Optimizer steps in one pass over ``count`` images (the last batch may be short)."""
    return max(1, -(-count // batch_size))


def epoch_cap(
    train_count: int,
    batch_size: int,
    min_steps: int = MIN_STEPS,
    min_epochs: int = MIN_EPOCHS,
    max_epochs: int = MAX_EPOCHS,
) -> int:
    """The most epochs an early-stopped run may take: enough for ``min_steps`` optimizer
    steps and ``min_epochs`` passes over the data, at most ``max_epochs``."""
    needed = math.ceil(min_steps / steps_per_epoch(train_count, batch_size))
    return max(1, min(max_epochs, max(min_epochs, needed)))


# A pretrained network fine-tunes in few epochs: at least this many optimizer steps, and
# between these many epochs (its auto epochs; transfer.py).
FINE_TUNING_STEPS = 60
FINE_TUNING_EPOCHS = (3, 30)


def auto_epochs(model: str, train_count: int, batch_size: int) -> int:
    """The most epochs ``--epochs auto`` may take for ``model``: the from-scratch networks'
    cap (:func:`epoch_cap`), or a pretrained network's few fine-tuning epochs."""
    if model not in PRETRAINED_WEIGHTS:
        return epoch_cap(train_count, batch_size)
    low, high = FINE_TUNING_EPOCHS
    needed = math.ceil(FINE_TUNING_STEPS / steps_per_epoch(train_count, batch_size))
    return max(low, min(high, needed))


IMAGE_SIDE_RANGE = (16, 1024)


# About 83,000 pixels: 384x216 for 16:9 photos, 288x288 for square ones. The network from
# scratch fits 784 such photos an epoch in about 3 s on 2 cores with AVX-512.
PIXEL_BUDGET = 384 * 216
# A pretrained network's: the 224x224 of its ImageNet training (296x168 for 16:9 photos).
# Measured on ELPV's 300x300 cells, 224 was as good as 288 and 1.6x faster.
PRETRAINED_PIXEL_BUDGET = 224 * 224


def pixel_budget(model: str) -> int:
    """The pixels ``--image-size auto`` scales a photo down to, for ``model``."""
    return PRETRAINED_PIXEL_BUDGET if model in PRETRAINED_WEIGHTS else PIXEL_BUDGET


# Sides of a scaled-down image are rounded down to a multiple of this.
SIDE_MULTIPLE = 8


def auto_image_shape(
    sizes: Iterable[tuple[int, int]], pixel_budget: int = PIXEL_BUDGET
) -> tuple[int, int]:
    """``(height, width)`` to train on, from the ``(width, height)`` of a dataset's images.

    The median image keeps its aspect ratio and is scaled down to at most ``pixel_budget``
    pixels, never up: small images train at their native size. Scaled sides are rounded down
    to a multiple of ``SIDE_MULTIPLE``; every side stays within ``IMAGE_SIDE_RANGE``.
    """
    pairs = list(sizes)
    if not pairs:
        raise ValueError("no image sizes to choose an input size from")
    width = float(statistics.median_low(w for w, _ in pairs))
    height = float(statistics.median_low(h for _, h in pairs))
    scale = min(1.0, math.sqrt(pixel_budget / (width * height)))
    low, high = IMAGE_SIDE_RANGE

    def side(native: float) -> int:
        if scale < 1.0:
            # The square root's rounding must not cost a whole multiple: 300 x sqrt(224² /
            # 300²) is 223.99999999999997, and 224 it is.
            scaled = int(native * scale + 1e-6)
            native = max(scaled - scaled % SIDE_MULTIPLE, min(scaled, SIDE_MULTIPLE))
        return int(min(high, max(low, native)))

    return side(height), side(width)


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


# The hyperparameter schema ---------------------------------------------------------------


def _normalise_image_size(text: str) -> str:
    if text.strip().lower() == AUTO:
        return AUTO
    return image_size_text(image_shape(text))


HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    Hyperparameter(
        "epochs",
        "int",
        AUTO,
        "training epochs; auto: until the validation macro-F1 stops improving, keeping the "
        "best epoch",
        low=1,
        high=100_000,
        metavar="auto|N",
        auto=True,
    ),
    Hyperparameter("batch_size", "int", 32, "images per batch", low=1, high=4096),
    Hyperparameter(
        "learning_rate",
        "float",
        0.001,
        "Adam's initial learning rate (cosine decay to zero over the epochs, or their cap)",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
    ),
    Hyperparameter(
        "image_size",
        "text",
        AUTO,
        "size the photos are resized to: WIDTHxHEIGHT, one side for a square, or auto: the "
        "images' own shape, scaled down to about 83,000 pixels",
        normalise=_normalise_image_size,
        metavar="auto|WIDTHxHEIGHT",
    ),
    Hyperparameter("seed", "int", 0, "seed for the data split and training", low=0),
    Hyperparameter(
        "model",
        "choice",
        "efficientnet_lite0",
        "network: efficientnet_lite0 (ImageNet-pretrained, fine-tuned), scratch (ours, from "
        "scratch) or article (the tutorial's, a baseline)",
        choices=MODELS,
        aliases=(("default", "scratch"),),
    ),
    Hyperparameter(
        "augment",
        "bool",
        True,
        "flips, small rotations (quarter turns for square images), brightness and contrast",
    ),
    Hyperparameter("class_weights", "bool", True, "weigh classes so that rare ones count as much"),
    Hyperparameter(
        "precision",
        "choice",
        "auto",
        "auto: mixed_float16 on GPUs, float32 on CPUs",
        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    ),
    Hyperparameter(
        "deterministic", "bool", True, "reproducible TensorFlow ops (same seed, same history)"
    ),
    Hyperparameter(
        "cache_mb",
        "int",
        CACHE_BUDGET_MB,
        "the decoded images kept in memory, all splits together, in MB (validation first, "
        "then training, then test); a split that does not fit streams from a decoded copy on "
        "disk (the same batches, a little slower)",
        low=0,
        high=10**7,
    ),
    Hyperparameter(
        "epoch_metrics",
        "bool",
        False,
        "put validation macro-F1 in every epoch's metric line too (what tuning's early "
        "stopping reads)",
    ),
)
HYPERPARAMETER_SCHEMA: dict[str, Hyperparameter] = {hp.name: hp for hp in HYPERPARAMETERS}


def hyperparameter_defaults() -> dict[str, HyperparameterValue]:
    return {hp.name: hp.default for hp in HYPERPARAMETERS}


def complete_hyperparameters(
    given: Mapping[str, object] | None = None,
) -> dict[str, HyperparameterValue]:
    """Every hyperparameter, checked: the given ones (None means "the default") over the
    defaults. An unknown name or a bad value is a ``ValueError`` naming what is allowed."""
    values = hyperparameter_defaults()
    for name, value in (given or {}).items():
        if value is None:
            continue
        if name not in HYPERPARAMETER_SCHEMA:
            raise ValueError(
                f"unknown hyperparameter {name!r}; known: {', '.join(HYPERPARAMETER_SCHEMA)}"
            )
        values[name] = HYPERPARAMETER_SCHEMA[name].parse(value)
    return values


def serialise(hyperparameters: Mapping[str, object]) -> dict[str, str]:
    """Hyperparameters as the text every backend sends, sorted by name: the process
    backend's arguments and the SageMaker request's ``HyperParameters`` are both this."""
    return {
        name: HYPERPARAMETER_SCHEMA[name].serialise(hyperparameters[name])  # type: ignore[arg-type]
        if name in HYPERPARAMETER_SCHEMA
        else str(hyperparameters[name])
        for name in sorted(hyperparameters)
    }


def hyperparameter_arguments(hyperparameters: Mapping[str, object]) -> list[str]:
    """Hyperparameters as the toolkit passes them: sorted ``--name value`` pairs."""
    return [
        part for name, text in serialise(hyperparameters).items() for part in (f"--{name}", text)
    ]
