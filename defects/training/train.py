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
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from defects.training import contract, interruption
from defects.training.session import UserError, output_dirs

_Error = TypeVar("_Error", bound=BaseException)

_USER_ERROR_EXIT = 1
_INTERNAL_ERROR_EXIT = 2


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


def train(arguments: argparse.Namespace) -> dict[str, Any]:
    """The job, step by step (session.py): the channels, the hardware, the network, a
    resumed run's state, a pretrained network's classifier, the fit, and what it leaves in
    the model and output folders."""
    from defects.training import batches, session

    setting = session.set_up(arguments)
    validation = batches.channel_batches(
        setting.validation, setting.shape, setting.global_batch, setting.budget, spill=setting.spill
    )
    network = session.build(setting)
    restored = session.restore(setting, network)
    if restored.initial_epoch:
        print(f"Resuming from the checkpoint of epoch {restored.initial_epoch}.", flush=True)
    print(f"Hyperparameters: {' '.join(arguments.argv)}", flush=True)
    warm = session.warm_start(setting, network, restored, validation)
    fitted = session.fit(setting, network, restored, validation)
    return session.finish(setting, network, restored, fitted, warm)


def _write_failure(reason: str) -> None:
    failure = contract.base_dir() / contract.FAILURE_PATH
    try:
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(reason.strip() + "\n")
    except OSError as error:
        print(f"Could not write the failure file {failure}: {error}", file=sys.stderr)


def _interrupted_reason(error: interruption.Interrupted) -> str:
    from defects.training import checkpoints

    _, _, checkpoint_dir = output_dirs()
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
