"""The classifiers: small CNNs of the tutorial's family (Conv2D/MaxPooling2D, Flatten, Dense).

``article`` is the tutorial's network as published. ``default`` keeps its shape but adds
depth and batch normalisation so that small defects in large photos stay visible: four
conv blocks, max pooling (a bright stain a few pixels wide survives a max, not an average),
then Flatten, Dropout and Dense. Images enter as 0-255 values; rescaling and augmentation
are layers of the model, so a saved model takes raw pixels and augmentation is inactive at
inference.
"""

from __future__ import annotations

import keras
from keras import layers

ARCHITECTURES = ("default", "article")


def make_augmentation(seed: int) -> keras.Sequential:
    # Inspection photos: the phone may lie either way round, a little rotated, under
    # slightly different light. No zoom or crop: that could cut the defect out.
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical", seed=seed),
            layers.RandomRotation(0.03, fill_mode="reflect", seed=seed + 1),
            layers.RandomBrightness(0.1, value_range=(0.0, 255.0), seed=seed + 2),
            layers.RandomContrast(0.1, value_range=(0.0, 255.0), seed=seed + 3),
        ],
        name="augmentation",
    )


def make_model(
    input_shape: tuple[int, int, int],
    num_classes: int,
    architecture: str = "default",
    augment: bool = True,
    seed: int = 0,
) -> keras.Model:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown model {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}."
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = make_augmentation(seed)(inputs) if augment else inputs
    x = layers.Rescaling(1.0 / 255)(x)

    if architecture == "article":
        x = layers.Conv2D(32, 3, activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Conv2D(64, 3, activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(64, activation="relu")(x)
    else:
        for filters in (32, 64, 96, 128):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.Activation("relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(0.3)(x)
        x = layers.Dense(64, activation="relu")(x)

    x = layers.Dense(num_classes)(x)
    # The softmax stays in float32 under mixed precision, for a stable loss.
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"defects_{architecture}")
