"""The baseline for training throughput: ``model.fit`` on images already decoded into NumPy.

Run as ``python -m benchmarks.fit_in_memory --train DIR --validation DIR --result FILE
--name value ...`` in a fresh process, like the entry point. It builds and compiles the
same model with the same hyperparameters, learning-rate schedule, seed and determinism
setting as the entry point, decodes every image up front (untimed) with the entry point's
own decoder, then fits on the arrays (shuffled and augmented in memory the way the entry
point does it after its cache) and writes the length of every epoch to ``--result`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def _decoded(paths: list[str], labels: Any, shape: tuple[int, int], batch_size: int) -> Any:
    import numpy as np

    from defects.training import batches

    batches = list(batches.make_dataset(paths, labels, shape, batch_size).as_numpy_iterator())
    return np.concatenate([images for images, _ in batches])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    own, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)

    import keras
    import tensorflow as tf

    from defects.training import batches, contract, data
    from defects.training import model as models
    from defects.training.train import parse_hyperparameters

    arguments = parse_hyperparameters(rest)
    keras.utils.set_random_seed(arguments.seed)
    if arguments.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision = "float32" if arguments.precision == "auto" else arguments.precision
    keras.mixed_precision.set_global_policy(precision)

    class_names = data.class_names_in(own.train)
    train_paths, train_labels = data.list_images(own.train, class_names)
    validation_paths, validation_labels = data.list_images(own.validation, class_names)
    shape = arguments.image_size
    started = time.perf_counter()
    train_images = _decoded(train_paths, train_labels, shape, arguments.batch_size)
    validation_images = _decoded(validation_paths, validation_labels, shape, arguments.batch_size)
    decode_seconds = time.perf_counter() - started

    class_weight = (
        models.class_weights(train_labels, len(class_names)) if arguments.class_weights else None
    )
    network = models.build_and_compile(
        shape,
        len(class_names),
        len(train_paths),
        architecture=arguments.model,
        learning_rate=arguments.learning_rate,
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
    )

    epoch_seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            epoch_seconds.append(time.perf_counter() - self.began)

    started = time.perf_counter()
    in_memory = batches.batches(
        tf.data.Dataset.from_tensor_slices((train_images, train_labels)),
        len(train_labels),
        arguments.batch_size,
        shuffle=True,
        seed=arguments.seed,
        augmented=arguments.augment,
        epochs=range(arguments.epochs),  # Each epoch its own draws, as the entry point's.
    )
    history = network.fit(
        in_memory,
        epochs=arguments.epochs,
        steps_per_epoch=contract.steps_per_epoch(len(train_labels), arguments.batch_size),
        validation_data=batches.batches(
            tf.data.Dataset.from_tensor_slices((validation_images, validation_labels)),
            len(validation_labels),
            arguments.batch_size,
        ),
        class_weight=class_weight,
        shuffle=False,
        callbacks=[EpochTimer()],
        verbose=2,
    )
    fit_seconds = time.perf_counter() - started
    own.result.write_text(
        json.dumps(
            {
                "train_images": len(train_paths),
                "validation_images": len(validation_paths),
                "decode_seconds": round(decode_seconds, 3),
                "fit_seconds": round(fit_seconds, 3),
                "epoch_seconds": [round(s, 4) for s in epoch_seconds],
                "val_accuracy": [float(v) for v in history.history.get("val_accuracy", [])],
                "precision": precision,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
