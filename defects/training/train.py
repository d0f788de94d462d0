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
import json
import os
import sys
import tarfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from defects.training import contract, interruption, metric_log

if TYPE_CHECKING:
    from defects.training.checkpoints import ResumeState

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
    # TensorFlow is imported after the inputs are known to exist, so that a bad flag or a
    # missing channel fails in a second instead of after a slow import.
    train_dir = channel_path(contract.TRAIN_CHANNEL, required=True)
    validation_dir = channel_path(contract.VALIDATION_CHANNEL, required=True)
    test_dir = channel_path(contract.TEST_CHANNEL, required=False)
    assert train_dir is not None and validation_dir is not None

    import keras
    import numpy as np
    import tensorflow as tf

    from defects.training import budget, checkpoints, data, metrics
    from defects.training import model as models
    from defects.training.progress import ProgressLines

    model_dir, output_dir, checkpoint_dir = _output_dirs()

    # Keras rewrites tracebacks on the way out, and that step fails on an exception raised
    # by the SIGTERM handler in the middle of its frames; ours are read as they are.
    keras.config.disable_traceback_filtering()
    keras.utils.set_random_seed(arguments.seed)
    if arguments.deterministic:
        tf.config.experimental.enable_op_determinism()

    def read(directory: Path, names: list[str] | None = None) -> data.Channel:
        try:
            return data.read_channel(directory, names)
        except (tarfile.TarError, OSError) as error:
            raise UserError(f"Could not read the channel {directory}: {error}.") from error

    training = read(train_dir)
    class_names = training.class_names
    if len(class_names) < 2:
        raise UserError(f"The train channel {train_dir} needs at least two classes.")
    validation = read(validation_dir, class_names)
    for name, labels in (("train", training.labels), ("validation", validation.labels)):
        missing = [c for i, c in enumerate(class_names) if not np.any(labels == i)]
        if missing:
            raise UserError(f"The {name} channel has no images of: {', '.join(missing)}.")

    num_gpus = _num_gpus()
    precision = arguments.precision
    if precision == "auto":
        precision = "mixed_float16" if num_gpus > 0 else "float32"
    keras.mixed_precision.set_global_policy(precision)
    strategy = tf.distribute.MirroredStrategy() if num_gpus > 1 else tf.distribute.get_strategy()

    # A concrete size came as the hyperparameter: from the user, or from the host, which
    # resolves auto from the manifest, says so and records both in job.json. Which of the
    # two it was is not known here, so nothing is said of it.
    shape, size_note = arguments.image_size, ""
    if shape == contract.AUTO:
        sizes = data.image_sizes(training)
        if not sizes:
            raise UserError(f"Could not read the size of any image in {train_dir}.")
        shape = contract.auto_image_shape(sizes)
        size_note = f"auto, from {len(sizes)} train images"
    validation_data = data.channel_dataset(validation, shape, arguments.batch_size)

    class_weight = (
        models.class_weights(training.labels, len(class_names)) if arguments.class_weights else None
    )

    early = arguments.epochs == contract.AUTO
    epochs = contract.epoch_cap(len(training), arguments.batch_size) if early else arguments.epochs
    with strategy.scope():
        network = models.build_and_compile(
            shape,
            len(class_names),
            len(training),
            architecture=arguments.model,
            learning_rate=arguments.learning_rate,
            epochs=epochs,
            batch_size=arguments.batch_size,
        )

    # Resume: a checkpoint of the last completed epoch (a restarted spot job, or
    # `defects train --resume`) restores the model, its optimizer (and so the learning-rate
    # schedule's position), the history so far and the early-stopping state.
    earliest_stop = budget.earliest_stop(epochs) if early else None
    early_stopping = (
        budget.ResumableEarlyStopping(earliest_stop=earliest_stop)
        if earliest_stop is not None
        else None
    )
    resume = _restore(checkpoint_dir, network, arguments, class_names, len(training))
    initial_epoch = resume.epoch
    history = resume.history
    stopping_state = budget.restore_early_stopping(
        checkpoint_dir, network, early_stopping, resume.extra.get("early_stopping")
    )
    stopped = bool(stopping_state.get("stopped"))
    checkpoint = checkpoints.EpochCheckpoint(
        checkpoint_dir,
        resume,
        extra_state=(
            {"early_stopping": budget.early_stopping_saver(checkpoint_dir, early_stopping)}
            if early_stopping is not None
            else None
        ),
    )
    if initial_epoch:
        print(f"Resuming from the checkpoint of epoch {initial_epoch}.", flush=True)
    # Epoch e's shuffle and augmentation depend on (seed, e) only: a resumed run skips the
    # completed epochs and draws what an uninterrupted run would have drawn.
    train_data = data.channel_dataset(
        training,
        shape,
        arguments.batch_size,
        shuffle=True,
        seed=arguments.seed,
        augmented=arguments.augment,
        epochs=range(initial_epoch, epochs),
    )

    # Tuning reads these lines (defects.training.metric_log): keep their form.
    class MetricLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            keys = ["val_accuracy", "val_loss"]
            if arguments.epoch_metrics:
                keys.append(budget.MONITOR)
            found = {key: (logs or {}).get(key) for key in keys}
            print(metric_log.line(f"epoch={epoch + 1}", found), flush=True)

    # Validation first (its scores go into the epoch's logs), then early stopping, then the
    # checkpoint (so it saves this epoch's early-stopping state), and an epoch's lines last,
    # once the epoch is saved.
    callbacks: list[keras.callbacks.Callback] = [
        budget.Validation(validation_data, validation.labels, len(class_names))
    ]
    if early_stopping is not None:
        callbacks.append(early_stopping)
    callbacks += [checkpoint, MetricLines(), ProgressLines(epochs, automatic=early)]

    print(f"Hyperparameters: {' '.join(arguments.argv)}", flush=True)
    print(
        f"Training {arguments.model} on {len(training)} images, validating on "
        f"{len(validation)}; classes {class_names}; image size "
        f"{contract.image_size_text(shape)}{f' ({size_note})' if size_note else ''}; "
        + (
            f"epochs: until {budget.MONITOR} stops improving for {budget.PATIENCE}, "
            f"at least {earliest_stop} and at most {epochs}; "
            if early
            else f"epochs {epochs}; "
        )
        + f"precision {precision}; GPUs {num_gpus}.",
        flush=True,
    )
    started = time.perf_counter()
    if initial_epoch < epochs and not stopped:
        network.fit(
            train_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=contract.steps_per_epoch(len(training), arguments.batch_size),
            class_weight=class_weight,
            shuffle=False,  # The dataset shuffles itself, reproducibly.
            callbacks=callbacks,
            # The progress lines replace Keras's own bar and epoch lines.
            verbose=0,
        )
    elif early_stopping is not None and early_stopping.best_weights is not None:
        # The restart came after the last epoch: keep the best weights, as fit would have.
        network.set_weights(early_stopping.best_weights)
    fit_seconds = time.perf_counter() - started
    epochs_run = len(history.get("loss", []))
    if early_stopping is not None:
        stopped = stopped or early_stopping.stopped_epoch > 0
        kept_epoch = early_stopping.best_epoch + 1
    else:
        kept_epoch = epochs_run
    training_record = {
        "epochs": arguments.epochs if early else epochs,
        "epoch_cap": epochs,
        "epochs_run": epochs_run,
        "kept_epoch": kept_epoch,
        "monitor": budget.MONITOR if early else None,
        "patience": budget.PATIENCE if early else None,
        "earliest_stop": earliest_stop,
        "stopped_early": stopped,
        "stop_reason": budget.stop_reason(epochs_run, epochs, early_stopping, stopped),
        "kept": (
            f"the best epoch's weights (by {budget.MONITOR}; of equals, the lower val_loss)"
            if early
            else "the last epoch's weights"
        ),
        "resumed_after_epoch": initial_epoch or None,
    }
    print(
        f"Kept the weights of epoch {kept_epoch} of {epochs_run}: "
        f"{training_record['stop_reason']}.",
        flush=True,
    )

    # A square input trained in its eight orientations answers with its mean over them:
    # the saved, exported and evaluated model is that one (same weights).
    orientations = arguments.augment and shape[0] == shape[1]
    if orientations:
        network = models.with_orientations(network)

    model_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    network.save(model_dir / contract.KERAS_MODEL_FILE)
    (model_dir / contract.CLASS_NAMES_FILE).write_text(json.dumps(class_names))
    network.export(str(model_dir / contract.SAVED_MODEL_DIR / "1"), verbose=False)

    def evaluate(images: tf.data.Dataset, labels: np.ndarray) -> dict[str, Any]:
        probabilities = network.predict(images, verbose=0)
        return metrics.classification_metrics(labels, np.argmax(probabilities, axis=1), class_names)

    results: dict[str, Any] = {
        "class_names": class_names,
        "image_size": contract.image_size_text(shape),
        "image_size_from": size_note,
        "model": arguments.model,
        "orientations": 8 if orientations else 1,
        "precision": precision,
        "epochs": epochs_run,
        "training": training_record,
        "fit_seconds": round(fit_seconds, 3),
        "train_images": len(training),
        # Of the epochs trained by this process; none when a resumed run had stopped already.
        "train_images_per_second": (
            round(len(training) * (epochs_run - initial_epoch) / max(fit_seconds, 1e-9), 1)
            if epochs_run > initial_epoch
            else None
        ),
        # The validation batches are cached and in file order: no second decode.
        "validation": evaluate(validation_data, validation.labels),
    }
    if test_dir is not None:
        test = read(test_dir, class_names)
        if len(test):
            test_data = data.channel_dataset(test, shape, arguments.batch_size)
            results["test"] = evaluate(test_data, test.labels)

    history_record = {
        "epoch": list(range(1, epochs_run + 1)),
        **history,
        "kept_epoch": kept_epoch,
        "stop_reason": training_record["stop_reason"],
        # The training loss is of smoothed labels; the validation loss of the labels as given.
        "label_smoothing": models.LABEL_SMOOTHING,
    }
    (output_dir / contract.HISTORY_FILE).write_text(json.dumps(history_record, indent=2))
    (output_dir / contract.METRICS_FILE).write_text(json.dumps(results, indent=2))
    line = (
        f"Validation accuracy {results['validation']['accuracy']:.4f}, "
        f"macro-F1 {results['validation']['macro_f1']:.4f}"
    )
    if "test" in results:
        line += (
            f"; test accuracy {results['test']['accuracy']:.4f}, "
            f"macro-F1 {results['test']['macro_f1']:.4f}"
        )
    print(f"{line}; fit took {fit_seconds:.1f} s.", flush=True)
    val_losses = history.get("val_loss") or []
    final: dict[str, float | None] = {
        "val_accuracy": results["validation"]["accuracy"],
        "val_macro_f1": results["validation"]["macro_f1"],
        "val_loss": val_losses[kept_epoch - 1] if 0 < kept_epoch <= len(val_losses) else None,
    }
    print(metric_log.line("final", final), flush=True)
    return results


def _write_failure(reason: str) -> None:
    failure = contract.base_dir() / contract.FAILURE_PATH
    try:
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(reason.strip() + "\n")
    except OSError as error:
        print(f"Could not write the failure file {failure}: {error}", file=sys.stderr)


def _restore(
    checkpoint_dir: Path,
    network: Any,
    arguments: argparse.Namespace,
    class_names: list[str],
    train_count: int,
) -> ResumeState:
    """The state of the last completed epoch, loaded into ``network``; a checkpoint of a run
    with other hyperparameters or data is refused."""
    from defects.training import checkpoints

    fingerprint = {
        **{spec.name: str(getattr(arguments, spec.name)) for spec in contract.HYPERPARAMETERS},
        "class_names": class_names,
        "train_images": train_count,
    }
    try:
        return checkpoints.restore(checkpoint_dir, network, fingerprint)
    except checkpoints.CheckpointMismatch as error:
        raise UserError(
            f"{error}: remove the folder to start afresh, or resume with the same settings."
        ) from error
    except checkpoints.CheckpointDamaged as error:
        raise UserError(f"{error}: remove the folder to start afresh.") from error


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
