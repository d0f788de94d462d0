"""One training job inside the entry point, as named steps: :func:`set_up` reads the
channels and decides the hardware, the input size and the epochs; :func:`build` makes the
network; :func:`restore` takes a resumed run's state; :func:`warm_start` trains a pretrained
network's classifier on frozen features (transfer.py); :func:`fit` trains the epochs; and
:func:`finish` saves the model and writes the records.

Standard library, NumPy, TensorFlow and Keras only: this runs inside the training container.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defects.training import contract, hardware

if TYPE_CHECKING:
    from defects.training.batches import Batches
    from defects.training.data import Channel
    from defects.training.fitting import Plan, Restored


class UserError(Exception):
    """A problem with the inputs or hyperparameters, as opposed to a bug in this program."""


@dataclass
class Setting:
    """What a job trains on and how, decided before any training."""

    arguments: argparse.Namespace
    training: Channel
    validation: Channel
    test_dir: Path | None
    pretrained_dir: Path | None
    shape: tuple[int, int]
    size_note: str
    precision: str
    strategy: Any
    num_gpus: int
    plan: Plan
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path

    @property
    def class_names(self) -> list[str]:
        return self.training.class_names

    @property
    def spill(self) -> Path:
        """Where a split too large for memory is decoded to, on disk, for the run."""
        return contract.base_dir() / contract.DECODED_CACHE_PATH

    @property
    def budget(self) -> int:
        """Decoded images the job may keep in memory, all splits together, in bytes
        (batches.py)."""
        return int(self.arguments.cache_mb) * 10**6

    def left(self, *kept: Batches) -> int:
        """What the splits already ``kept`` leave of the budget: the validation split takes
        its share first, then training, then test, each cached only if it fits the rest."""
        return max(0, self.budget - sum(split.decoded_bytes for split in kept if split.cached))

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def global_batch(self) -> int:
        """The batch of one step: ``batch_size`` images on each replica."""
        return int(self.arguments.batch_size) * self.replicas

    @property
    def learning_rate(self) -> float:
        """``learning_rate``, scaled with the square root of the replicas (for Adam, as the
        global batch grows with them; README, "More than one GPU")."""
        return float(self.arguments.learning_rate) * math.sqrt(self.replicas)

    @property
    def pretrained(self) -> str | None:
        """The weights variant of a pretrained network; None for one from scratch."""
        return contract.PRETRAINED_WEIGHTS.get(self.arguments.model)


def channel_path(name: str, required: bool) -> Path | None:
    value = os.environ.get(contract.channel_env(name))
    if value is None:
        if required:
            raise UserError(
                f"The {name!r} channel is missing: set {contract.channel_env(name)} to a folder "
                "of <class>/<image> files."
            )
        return None
    path = Path(value)
    if not path.is_dir():
        raise UserError(f"The {name!r} channel folder {path} does not exist.")
    return path


def output_dirs() -> tuple[Path, Path, Path]:
    base = contract.base_dir()
    model_dir = Path(os.environ.get(contract.MODEL_DIR_ENV, base / contract.MODEL_PATH))
    output_dir = Path(
        os.environ.get(contract.OUTPUT_DATA_DIR_ENV, base / contract.OUTPUT_DATA_PATH)
    )
    checkpoint_dir = Path(
        os.environ.get(contract.CHECKPOINT_DIR_ENV, base / contract.CHECKPOINTS_PATH)
    )
    return model_dir, output_dir, checkpoint_dir


def read(directory: Path, names: list[str] | None = None) -> Channel:
    from defects.training import data

    try:
        return data.read_channel(directory, names)
    except (tarfile.TarError, OSError) as error:
        raise UserError(f"Could not read the channel {directory}: {error}.") from error


def _read_channels(train_dir: Path, validation_dir: Path) -> tuple[Channel, Channel]:
    """The train and validation channels, each with an image of every class."""
    import numpy as np

    training = read(train_dir)
    class_names = training.class_names
    if len(class_names) < 2:
        raise UserError(f"The train channel {train_dir} needs at least two classes.")
    validation = read(validation_dir, class_names)
    for name, labels in (("train", training.labels), ("validation", validation.labels)):
        missing = [c for i, c in enumerate(class_names) if not np.any(labels == i)]
        if missing:
            raise UserError(f"The {name} channel has no images of: {', '.join(missing)}.")
    return training, validation


def _image_shape(
    arguments: argparse.Namespace, training: Channel, train_dir: Path
) -> tuple[tuple[int, int], str]:
    """The input size, and where it came from when it was chosen here. A concrete size came
    as the hyperparameter: from the user, or from the host, which resolves auto from the
    manifest, says so and records both in job.json. Which of the two it was is not known
    here, so nothing is said of it."""
    from defects.training import data

    if arguments.image_size != contract.AUTO:
        return arguments.image_size, ""
    sizes = data.image_sizes(training)
    if not sizes:
        raise UserError(f"Could not read the size of any image in {train_dir}.")
    budget = contract.pixel_budget(arguments.model)
    return contract.auto_image_shape(sizes, budget), f"auto, from {len(sizes)} train images"


def set_up(arguments: argparse.Namespace) -> Setting:
    """The channels (read as an index), the hardware, the input size and the epochs."""
    # TensorFlow is imported after the inputs are known to exist, so that a bad flag or a
    # missing channel fails in a second instead of after a slow import.
    train_dir = channel_path(contract.TRAIN_CHANNEL, required=True)
    validation_dir = channel_path(contract.VALIDATION_CHANNEL, required=True)
    test_dir = channel_path(contract.TEST_CHANNEL, required=False)
    pretrained_dir = channel_path(contract.PRETRAINED_CHANNEL, required=False)
    assert train_dir is not None and validation_dir is not None
    import keras
    import tensorflow as tf

    from defects.training import fitting

    # Keras rewrites tracebacks on the way out, and that step fails on an exception raised
    # by the SIGTERM handler in the middle of its frames; ours are read as they are.
    keras.config.disable_traceback_filtering()
    keras.utils.set_random_seed(arguments.seed)
    if arguments.deterministic:
        tf.config.experimental.enable_op_determinism()
    training, validation = _read_channels(train_dir, validation_dir)
    precision, strategy, num_gpus = hardware.set_up(arguments.precision)
    shape, size_note = _image_shape(arguments, training, train_dir)
    replicas = int(strategy.num_replicas_in_sync)
    plan = fitting.plan(arguments, len(training), arguments.batch_size * replicas)
    model_dir, output_dir, checkpoint_dir = output_dirs()
    return Setting(
        arguments,
        training,
        validation,
        test_dir,
        pretrained_dir,
        shape,
        size_note,
        precision,
        strategy,
        num_gpus,
        plan,
        model_dir,
        output_dir,
        checkpoint_dir,
    )


def build(setting: Setting) -> Any:
    """The network, compiled as it is trained, under the distribution strategy."""
    from defects.training import model as models
    from defects.training import transfer

    arguments, classes = setting.arguments, len(setting.class_names)
    steps = contract.steps_per_epoch(len(setting.training), setting.global_batch)
    with setting.strategy.scope():
        if setting.pretrained is None:
            return models.build_and_compile(
                setting.shape,
                classes,
                len(setting.training),
                architecture=arguments.model,
                learning_rate=setting.learning_rate,
                epochs=setting.plan.epochs,
                batch_size=setting.global_batch,
            )
        try:
            weights = transfer.weights_file(setting.pretrained_dir, setting.pretrained)
            network = transfer.make_network(
                (*setting.shape, 3), classes, weights, setting.pretrained
            )
        except transfer.WeightsProblem as error:
            raise UserError(str(error)) from error
        transfer.compile_for_fine_tuning(network, setting.learning_rate, setting.plan.epochs, steps)
        return network


def restore(setting: Setting, network: Any) -> Restored:
    """A resumed run's state, loaded into ``network`` (nothing for a first run)."""
    from defects.training import fitting

    try:
        # The optimizer's variables are made here: under the strategy, as the network's.
        with setting.strategy.scope():
            return fitting.restore(
                setting.checkpoint_dir,
                network,
                setting.arguments,
                setting.class_names,
                len(setting.training),
                setting.plan,
            )
    except fitting.MismatchedCheckpoint as error:
        raise UserError(str(error)) from error


def class_weight(setting: Setting) -> dict[int, float] | None:
    from defects.training import model as models

    if not setting.arguments.class_weights:
        return None
    return models.class_weights(setting.training.labels, len(setting.class_names))


def warm_start(setting: Setting, network: Any, restored: Restored, validation: Batches) -> Any:
    """A pretrained network's first phase: its classifier trained on the frozen backbone's
    features (transfer.py), unless a resumed run is past it. What it did, for the record."""
    from defects.training import batches, transfer

    if setting.pretrained is None or restored.initial_epoch or restored.stopped:
        return None
    images = batches.channel_batches(
        setting.training,
        setting.shape,
        setting.global_batch,
        setting.left(validation),
        spill=setting.spill,
    ).dataset
    with setting.strategy.scope():
        found = transfer.train_head(
            network,
            images,
            setting.training.labels,
            validation.dataset,
            setting.validation.labels,
            setting.learning_rate,
            class_weight(setting),
        )
    print(
        f"Trained the classifier on the frozen backbone's features: kept epoch "
        f"{found['kept_epoch']} of {found['epochs']}, validation macro-F1 "
        f"{found['val_macro_f1']:.4f}; now the whole network.",
        flush=True,
    )
    return found


@dataclass(frozen=True)
class Fitted:
    """How the fit went: its seconds, its record, and the batches it read."""

    seconds: float
    record: dict[str, Any]
    train: Batches
    validation: Batches


def fit(setting: Setting, network: Any, restored: Restored, validation: Batches) -> Fitted:
    """The epochs not done yet, checkpointed and early-stopped (fitting.py)."""
    from defects.training import batches, budget, fitting

    arguments, plan = setting.arguments, setting.plan
    # Epoch e's shuffle and augmentation depend on (seed, e) only: a resumed run skips the
    # completed epochs and draws what an uninterrupted run would have drawn.
    train = batches.channel_batches(
        setting.training,
        setting.shape,
        setting.global_batch,
        setting.left(validation),
        shuffle=True,
        seed=arguments.seed,
        augmented=arguments.augment,
        epochs=range(restored.initial_epoch, plan.epochs),
        spill=setting.spill,
    )
    callbacks = fitting.callbacks(
        setting.validation,
        validation.dataset,
        len(setting.class_names),
        arguments,
        plan,
        restored,
    )
    size = contract.image_size_text(setting.shape)
    size += f" ({setting.size_note})" if setting.size_note else ""
    print(
        f"Training {arguments.model} on {len(setting.training)} images, validating on "
        f"{len(setting.validation)}; classes {setting.class_names}; image size {size}; "
        f"{budget.epochs_text(plan)}; precision {setting.precision}; GPUs {setting.num_gpus}"
        f"{f', {setting.replicas} replicas' if setting.replicas > 1 else ''}. Train images "
        f"{train.describe(setting.budget)}; validation images "
        f"{validation.describe(setting.budget)}.",
        flush=True,
    )
    seconds = fitting.fit(
        network,
        len(setting.training),
        setting.global_batch,
        train.dataset,
        plan,
        restored,
        class_weight(setting),
        callbacks,
    )
    record = fitting.training_record(arguments, plan, restored)
    print(
        f"Kept the weights of epoch {record['kept_epoch']} of {record['epochs_run']}: "
        f"{record['stop_reason']}.",
        flush=True,
    )
    return Fitted(seconds, record, train, validation)


def finish(
    setting: Setting, network: Any, restored: Restored, fitted: Fitted, warm: Any
) -> dict[str, Any]:
    """Save the model and write ``history.json`` and ``metrics.json``; the metrics."""
    from defects.training import batches, outputs
    from defects.training import model as models

    arguments, shape = setting.arguments, setting.shape
    # A square input trained in its eight orientations answers with its mean over them:
    # the saved, exported and evaluated model is that one (same weights).
    orientations = arguments.augment and shape[0] == shape[1]
    network = models.with_orientations(network) if orientations else network
    outputs.save_model(network, setting.model_dir, setting.class_names)
    record = fitted.record
    trained = len(setting.training) * (record["epochs_run"] - restored.initial_epoch)
    names = setting.class_names
    results: dict[str, Any] = {
        "class_names": names,
        "image_size": contract.image_size_text(shape),
        "image_size_from": setting.size_note,
        "model": arguments.model,
        "orientations": 8 if orientations else 1,
        "precision": setting.precision,
        "replicas": setting.replicas,
        "epochs": record["epochs_run"],
        "training": record,
        "classifier_on_frozen_features": warm,
        "fit_seconds": round(fitted.seconds, 3),
        "train_images": len(setting.training),
        # Of the epochs trained by this process; none when a resumed run had stopped already.
        "train_images_per_second": (
            round(trained / max(fitted.seconds, 1e-9), 1) if trained else None
        ),
        "input": {
            "cache_budget_mb": arguments.cache_mb,
            "train": fitted.train.record(),
            "validation": fitted.validation.record(),
        },
        # The validation batches are in file order: scored as they come.
        "validation": outputs.scores(
            network, fitted.validation.dataset, setting.validation.labels, names
        ),
    }
    test = read(setting.test_dir, names) if setting.test_dir is not None else None
    if test is not None and len(test):
        test_data = batches.channel_batches(
            test,
            shape,
            setting.global_batch,
            setting.left(fitted.validation, fitted.train),
            spill=setting.spill,
        )
        results["test"] = outputs.scores(network, test_data.dataset, test.labels, names)
    history = restored.resume.history
    outputs.write_records(setting.output_dir, history, record, results)
    outputs.report(results, history, fitted.seconds)
    # The decoded copies were for this run and its resumption: the run is over.
    shutil.rmtree(setting.spill, ignore_errors=True)
    return results
