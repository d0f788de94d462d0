"""A network that starts from ImageNet: the pretrained EfficientNet-Lite backbone
(:mod:`.efficientnet_lite`, its weights from the ``pretrained`` channel), global average
pooling and a softmax classifier, fine-tuned in two phases (Keras' transfer-learning
guide, as measured on every benchmark dataset; README, "The default model"):

1. **The head on frozen features**: the backbone's pooled features of the training images
   are computed once (one forward pass each, no augmentation), and the classifier is
   trained on them alone (behind dropout), early-stopped on the validation macro-F1: a few
   seconds, and the whole network then starts from a classifier that already fits.
2. **The whole network**: fine-tuned end to end at a tenth of the learning rate, with the
   training images augmented, for a few epochs (``epochs``); the epochs are checkpointed,
   early-stopped and resumed as the from-scratch network's are.

BatchNorm stays in inference mode throughout: its layers are not trainable, which in Keras 3
is what keeps their statistics (``training=False`` on the backbone's call is overridden by
``fit``). Every backend, CPU or GPU, runs the same recipe; a GPU (mixed float16) runs more
epochs in the same time.

Standard library, NumPy, TensorFlow and Keras only: this runs inside the training container.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from defects.training import budget, contract
from defects.training import efficientnet_lite as lite
from defects.training.model import SmoothedCrossentropy

# The first phase's classifier training, on the frozen features.
HEAD_BATCH = 64
HEAD_PATIENCE = 10
HEAD_EPOCHS = 100
# The whole network trains at this part of the learning rate the head was trained at.
FINE_TUNING_RATE = 0.1
DROPOUT = 0.2


class WeightsProblem(ValueError):
    """The pretrained weights are missing, damaged or of another network: the message says
    which file and what to do."""


def weights_file(channel: Path | None, variant: str) -> Path:
    """The variant's weights in the pretrained channel, checked against their sha256."""
    name = contract.weights_name(variant)
    if channel is None:
        raise WeightsProblem(
            f"The {variant} network starts from ImageNet weights, and there is no "
            f"{contract.PRETRAINED_CHANNEL!r} channel to take them from: set "
            f"{contract.channel_env(contract.PRETRAINED_CHANNEL)} to a folder holding {name} "
            f"(defects stages it for every job whose model is {variant})."
        )
    weights = channel / name
    digest_file = channel / (name + contract.DIGEST_SUFFIX)
    if not weights.is_file() or not digest_file.is_file():
        raise WeightsProblem(
            f"The pretrained channel {channel} lacks {name} or {digest_file.name}: stage the "
            "job again (defects converts and uploads them)."
        )
    expected = (digest_file.read_text().split() or [""])[0]
    with weights.open("rb") as stream:
        actual = hashlib.file_digest(stream, "sha256").hexdigest()
    if actual != expected:
        raise WeightsProblem(
            f"The pretrained weights {weights} are damaged or were changed: their sha256 is "
            f"{actual}, and {digest_file.name} says {expected}. Remove data/pretrained/ on "
            "the host and run the job again: the weights are converted afresh from their "
            "package."
        )
    return weights


def make_network(
    input_shape: tuple[int, int, int], num_classes: int, weights: Path, variant: str
) -> keras.Model:
    """The pretrained network: raw 0-255 RGB images in (the backbone normalises them), class
    probabilities out; BatchNorm frozen."""
    backbone = lite.build_backbone(input_shape, variant)
    try:
        lite.load_backbone_weights(backbone, weights, variant)
    except ValueError as error:
        raise WeightsProblem(
            f"{error} The pretrained channel must hold the {variant} weights that defects "
            "converts: run the job again from defects."
        ) from error
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    inputs = keras.Input(shape=input_shape, name="image")
    x = backbone(inputs)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(num_classes, name="classifier")(x)
    # The softmax stays in float32 under mixed precision, for a stable loss.
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"defects_{variant}")


def _head(network: keras.Model) -> keras.Model:
    """The network's classifier alone, on pooled features: its own layers, shared, behind
    dropout. (Only here: the whole network has none, so that a resumed run draws nothing an
    unbroken one would have drawn differently; its augmentation is stateless.)"""
    features = keras.Input(shape=network.get_layer("pool").output.shape[1:], name="features")
    x = layers.Dropout(DROPOUT, name="head_dropout")(features)
    x = network.get_layer("classifier")(x)
    return keras.Model(features, network.get_layer("probabilities")(x), name="head")


def pooled_features(network: keras.Model, *images: Any) -> list[np.ndarray]:
    """The backbone's pooled features of each of ``images`` (datasets of batches), by one
    model, so that its forward pass is traced once for all of them."""
    pooled = keras.Model(network.input, network.get_layer("pool").output)
    return [np.asarray(pooled.predict(each, verbose=0), dtype=np.float32) for each in images]


def train_head(
    network: keras.Model,
    train_images: Any,
    train_labels: np.ndarray,
    validation_images: Any,
    validation_labels: np.ndarray,
    learning_rate: float,
    class_weight: dict[int, float] | None,
) -> dict[str, Any]:
    """Phase 1: the classifier on the frozen backbone's features, early-stopped on the
    validation macro-F1; its best weights stay in ``network``. What it did, for the record."""
    train_features, validation_features = pooled_features(network, train_images, validation_images)
    head = _head(network)
    head.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=SmoothedCrossentropy())
    num_classes = int(network.output.shape[-1])
    stopping = budget.ResumableEarlyStopping(patience=HEAD_PATIENCE)
    history = head.fit(
        train_features,
        train_labels,
        batch_size=HEAD_BATCH,
        epochs=HEAD_EPOCHS,
        class_weight=class_weight,
        callbacks=[
            budget.Validation(validation_features, validation_labels, num_classes),
            stopping,
        ],
        verbose=0,
    )
    return {
        "epochs": len(history.history["loss"]),
        "kept_epoch": stopping.best_epoch + 1,
        "val_macro_f1": round(float(stopping.best or 0.0), 4),
    }


def compile_for_fine_tuning(
    network: keras.Model, learning_rate: float, epochs: int, steps_per_epoch: int
) -> None:
    """Phase 2: the whole network (BatchNorm still frozen) at a tenth of the rate, cosine
    decay to zero over its epochs."""
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate * FINE_TUNING_RATE, decay_steps=max(1, epochs * steps_per_epoch)
    )
    network.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss=SmoothedCrossentropy(),
        metrics=["accuracy"],
    )
