"""The training entry point: one program under the SageMaker training contract.

It reads the ``train``/``validation`` (and optional ``test``) channels, trains the CNN, and
writes the model to ``SM_MODEL_DIR`` and ``history.json``/``metrics.json`` to
``SM_OUTPUT_DATA_DIR``. Hyperparameters arrive as ``--name value``; unknown arguments (such
as ``--model_dir``) are ignored. On failure it writes a one-paragraph reason to
``<base>/output/failure`` and exits non-zero. It never talks to S3: the backend moved the
data in and will move the results out.

Run it by hand with ``python train.py --epochs 1`` after setting ``SM_CHANNEL_TRAIN`` and
friends, or let a backend do it.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tarfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from defects.training import contract, interruption

if TYPE_CHECKING:
    from defects.training.data import Channel
    from defects.training.fitting import Plan, Restored

_Error = TypeVar("_Error", bound=BaseException)

_USER_ERROR_EXIT = 1
_INTERNAL_ERROR_EXIT = 2


class UserError(Exception):
    """A problem with the inputs or hyperparameters, as opposed to a bug in this program."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"Bad hyperparameter: {message}.")


def _argument_type(spec: contract.Hyperparameter) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            return spec.parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    parse.__name__ = spec.kind  # what argparse names in its message
    return parse


def parse_hyperparameters(argv: list[str]) -> argparse.Namespace:
    """The hyperparameters from ``--name value`` arguments, made from the contract's schema.
    ``image_size`` becomes a ``(height, width)`` shape, unless auto."""
    parser = _Parser(description=__doc__)
    for spec in contract.HYPERPARAMETERS:
        parser.add_argument(
            f"--{spec.name}", type=_argument_type(spec), default=spec.default, help=spec.help
        )
    # SageMaker's framework estimators add arguments of their own (--model_dir): ignore them.
    arguments, _unknown = parser.parse_known_args(argv)
    if arguments.image_size != contract.AUTO:
        arguments.image_size = contract.image_shape(arguments.image_size)
    arguments.argv = list(argv)
    return arguments


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


def _output_dirs() -> tuple[Path, Path, Path]:
    base = contract.base_dir()
    model_dir = Path(os.environ.get(contract.MODEL_DIR_ENV, base / contract.MODEL_PATH))
    output_dir = Path(
        os.environ.get(contract.OUTPUT_DATA_DIR_ENV, base / contract.OUTPUT_DATA_PATH)
    )
    checkpoint_dir = Path(
        os.environ.get(contract.CHECKPOINT_DIR_ENV, base / contract.CHECKPOINTS_PATH)
    )
    return model_dir, output_dir, checkpoint_dir


def _num_gpus() -> int:
    try:
        return int(os.environ.get(contract.NUM_GPUS_ENV, "0"))
    except ValueError:
        return 0


def train(arguments: argparse.Namespace) -> dict[str, Any]:
    """The job, step by step: the channels, the hardware, the network, a resumed run's
    state, the fit, and what it leaves in the model and output folders."""
    # TensorFlow is imported after the inputs are known to exist, so that a bad flag or a
    # missing channel fails in a second instead of after a slow import.
    train_dir = channel_path(contract.TRAIN_CHANNEL, required=True)
    validation_dir = channel_path(contract.VALIDATION_CHANNEL, required=True)
    test_dir = channel_path(contract.TEST_CHANNEL, required=False)
    assert train_dir is not None and validation_dir is not None

    from defects.training import batches, fitting, outputs
    from defects.training import model as models

    model_dir, output_dir, checkpoint_dir = _output_dirs()
    _seed(arguments)
    training, validation = _read_channels(train_dir, validation_dir)
    class_names = training.class_names
    precision, strategy, num_gpus = _hardware(arguments.precision)
    shape, size_note = _image_shape(arguments, training, train_dir)
    budget = arguments.cache_mb * 10**6
    validation_batches = batches.channel_batches(validation, shape, arguments.batch_size, budget)
    validation_data = validation_batches.dataset
    run = fitting.plan(arguments, len(training))
    with strategy.scope():
        network = _network(arguments, shape, len(class_names), len(training), run.epochs)
    restored = _restore(checkpoint_dir, network, arguments, class_names, len(training), run)
    initial_epoch = restored.initial_epoch
    # Epoch e's shuffle and augmentation depend on (seed, e) only: a resumed run skips the
    # completed epochs and draws what an uninterrupted run would have drawn.
    train_batches = batches.channel_batches(
        training,
        shape,
        arguments.batch_size,
        budget,
        shuffle=True,
        seed=arguments.seed,
        augmented=arguments.augment,
        epochs=range(initial_epoch, run.epochs),
    )
    train_data = train_batches.dataset
    epoch_callbacks = fitting.callbacks(
        validation, validation_data, len(class_names), arguments, run, restored
    )
    weights = models.class_weights(training.labels, len(class_names))
    if initial_epoch:
        print(f"Resuming from the checkpoint of epoch {initial_epoch}.", flush=True)
    print(f"Hyperparameters: {' '.join(arguments.argv)}", flush=True)
    size_text = contract.image_size_text(shape) + (f" ({size_note})" if size_note else "")
    print(
        f"Training {arguments.model} on {len(training)} images, validating on "
        f"{len(validation)}; classes {class_names}; image size {size_text}; "
        f"{_epochs_text(run)}; precision {precision}; GPUs {num_gpus}. Train images "
        f"{train_batches.describe(budget)}; validation images "
        f"{validation_batches.describe(budget)}.",
        flush=True,
    )
    fit_seconds = fitting.fit(
        network,
        training,
        train_data,
        arguments,
        run,
        restored,
        weights if arguments.class_weights else None,
        epoch_callbacks,
    )
    record = fitting.training_record(arguments, run, restored)
    epochs_run = record["epochs_run"]
    print(
        f"Kept the weights of epoch {record['kept_epoch']} of {epochs_run}: "
        f"{record['stop_reason']}.",
        flush=True,
    )

    # A square input trained in its eight orientations answers with its mean over them:
    # the saved, exported and evaluated model is that one (same weights).
    orientations = arguments.augment and shape[0] == shape[1]
    network = models.with_orientations(network) if orientations else network
    outputs.save_model(network, model_dir, class_names)
    results = _summary(arguments, class_names, shape, size_note, precision, record)
    results["orientations"] = 8 if orientations else 1
    results["fit_seconds"] = round(fit_seconds, 3)
    results["train_images"] = len(training)
    # Of the epochs trained by this process; none when a resumed run had stopped already.
    trained = len(training) * (epochs_run - initial_epoch)
    results["train_images_per_second"] = (
        round(trained / max(fit_seconds, 1e-9), 1) if trained else None
    )
    results["input"] = {
        "cache_budget_mb": arguments.cache_mb,
        "train": train_batches.record(),
        "validation": validation_batches.record(),
    }
    results.update(_scores(network, validation, validation_data, test_dir, shape, arguments))
    history = restored.resume.history
    outputs.write_records(output_dir, history, record, results)
    outputs.report(results, history, fit_seconds)
    return results


def _network(
    arguments: argparse.Namespace,
    shape: tuple[int, int],
    class_count: int,
    train_count: int,
    epochs: int,
) -> Any:
    """The network, compiled as it is trained."""
    from defects.training import model as models

    return models.build_and_compile(
        shape,
        class_count,
        train_count,
        architecture=arguments.model,
        learning_rate=arguments.learning_rate,
        epochs=epochs,
        batch_size=arguments.batch_size,
    )


def _scores(
    network: Any,
    validation: Channel,
    validation_data: Any,
    test_dir: Path | None,
    shape: tuple[int, int],
    arguments: argparse.Namespace,
) -> dict[str, Any]:
    """The final scores: on validation (its batches are cached and in file order: no
    second decode) and, when there is a test channel, on test."""
    from defects.training import batches, outputs

    names = validation.class_names
    found = {"validation": outputs.scores(network, validation_data, validation.labels, names)}
    test = _read(test_dir, names) if test_dir is not None else None
    if test is not None and len(test):
        budget = arguments.cache_mb * 10**6
        test_data = batches.channel_batches(test, shape, arguments.batch_size, budget).dataset
        found["test"] = outputs.scores(network, test_data, test.labels, names)
    return found


def _summary(
    arguments: argparse.Namespace,
    class_names: list[str],
    shape: tuple[int, int],
    size_note: str,
    precision: str,
    record: dict[str, Any],
) -> dict[str, Any]:
    """The head of ``metrics.json``: what was trained, and how."""
    return {
        "class_names": class_names,
        "image_size": contract.image_size_text(shape),
        "image_size_from": size_note,
        "model": arguments.model,
        "precision": precision,
        "epochs": record["epochs_run"],
        "training": record,
    }


def _restore(
    checkpoint_dir: Path,
    network: Any,
    arguments: argparse.Namespace,
    class_names: list[str],
    train_count: int,
    run: Plan,
) -> Restored:
    from defects.training import fitting

    try:
        return fitting.restore(checkpoint_dir, network, arguments, class_names, train_count, run)
    except fitting.MismatchedCheckpoint as error:
        raise UserError(str(error)) from error


def _seed(arguments: argparse.Namespace) -> None:
    import keras
    import tensorflow as tf

    # Keras rewrites tracebacks on the way out, and that step fails on an exception raised
    # by the SIGTERM handler in the middle of its frames; ours are read as they are.
    keras.config.disable_traceback_filtering()
    keras.utils.set_random_seed(arguments.seed)
    if arguments.deterministic:
        tf.config.experimental.enable_op_determinism()


def _read(directory: Path, names: list[str] | None = None) -> Channel:
    from defects.training import data

    try:
        return data.read_channel(directory, names)
    except (tarfile.TarError, OSError) as error:
        raise UserError(f"Could not read the channel {directory}: {error}.") from error


def _read_channels(train_dir: Path, validation_dir: Path) -> tuple[Channel, Channel]:
    """The train and validation channels, each with an image of every class."""
    import numpy as np

    training = _read(train_dir)
    class_names = training.class_names
    if len(class_names) < 2:
        raise UserError(f"The train channel {train_dir} needs at least two classes.")
    validation = _read(validation_dir, class_names)
    for name, labels in (("train", training.labels), ("validation", validation.labels)):
        missing = [c for i, c in enumerate(class_names) if not np.any(labels == i)]
        if missing:
            raise UserError(f"The {name} channel has no images of: {', '.join(missing)}.")
    return training, validation


def _hardware(precision: str) -> tuple[str, Any, int]:
    """The precision (``auto``: mixed float16 on a GPU), the distribution strategy (one
    replica per GPU) and the number of GPUs."""
    import keras
    import tensorflow as tf

    num_gpus = _num_gpus()
    if precision == "auto":
        precision = "mixed_float16" if num_gpus > 0 else "float32"
    keras.mixed_precision.set_global_policy(precision)
    strategy = tf.distribute.MirroredStrategy() if num_gpus > 1 else tf.distribute.get_strategy()
    return precision, strategy, num_gpus


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
    return contract.auto_image_shape(sizes), f"auto, from {len(sizes)} train images"


def _epochs_text(run: Plan) -> str:
    from defects.training import budget

    if run.early:
        return (
            f"epochs: until {budget.MONITOR} stops improving for {budget.PATIENCE}, "
            f"at least {run.earliest_stop} and at most {run.epochs}"
        )
    return f"epochs {run.epochs}"


def _write_failure(reason: str) -> None:
    failure = contract.base_dir() / contract.FAILURE_PATH
    try:
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(reason.strip() + "\n")
    except OSError as error:
        print(f"Could not write the failure file {failure}: {error}", file=sys.stderr)


def _interrupted_reason(error: interruption.Interrupted) -> str:
    from defects.training import checkpoints

    _, _, checkpoint_dir = _output_dirs()
    try:
        state = checkpoints.read_state(checkpoint_dir)
    except checkpoints.CheckpointDamaged:
        state = None
    done = (
        f"after epoch {state.epoch}; its checkpoint in {checkpoint_dir} lets the next attempt "
        f"continue with epoch {state.epoch + 1}"
        if state
        else "before its first epoch completed"
    )
    return f"{contract.INTERRUPTED_REASON} by {error} {done}."


def main(argv: list[str] | None = None) -> int:
    interruption.install()
    interruption.watch_parent()
    try:
        arguments = parse_hyperparameters(sys.argv[1:] if argv is None else argv)
        train(arguments)
    except interruption.Interrupted as error:
        reason = _interrupted_reason(error)
        _write_failure(reason)
        print(reason, file=sys.stderr, flush=True)
        return interruption.EXIT_STATUS
    except UserError as error:
        _write_failure(str(error))
        print(f"error: {error}", file=sys.stderr, flush=True)
        return _USER_ERROR_EXIT
    except Exception as error:  # noqa: BLE001 - anything else is a bug; keep the traceback.
        # A signal raised deep inside TensorFlow can surface as another error around it.
        interrupted = _cause_in(error, interruption.Interrupted)
        if interrupted is not None:
            reason = _interrupted_reason(interrupted)
            _write_failure(reason)
            print(reason, file=sys.stderr, flush=True)
            return interruption.EXIT_STATUS
        if _disk_full(error):
            # Not a bug: the machine's disk. The last completed epoch's checkpoint is kept.
            reason = (
                f"{contract.DISK_FULL_REASON}: the checkpoints, the model and the outputs "
                "need space on the disk of the job's folder."
            )
            _write_failure(reason)
            print(f"error: {reason}", file=sys.stderr, flush=True)
            return _USER_ERROR_EXIT
        traceback.print_exc()
        _write_failure(f"Internal error in the training entry point: {error!r}")
        return _INTERNAL_ERROR_EXIT
    return 0


def _cause_in(error: BaseException, kind: type[_Error]) -> _Error | None:
    """The first error of ``kind`` in ``error``'s chain."""
    return next((cause for cause in interruption.causes(error) if isinstance(cause, kind)), None)


def _disk_full(error: BaseException) -> bool:
    """Whether ``error`` comes of a full disk: Python's ``OSError``, or TensorFlow's error
    of a failed write (its C++ code gives the system's message)."""
    return any(
        (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT))
        or any(text in str(cause) for text in ("No space left on device", "Disk quota exceeded"))
        for cause in interruption.causes(error)
    )


if __name__ == "__main__":
    sys.exit(main())
