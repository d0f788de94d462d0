"""FLOPs of a Keras model, counted from its layer shapes.

Only the layers that do the arithmetic are counted: a Conv2D costs two FLOPs (a multiply
and an add) per kernel weight per output position, a Dense layer two per weight. Pooling,
normalisation, activations and biases are a few percent and are left out; a training step
costs about three forward passes (the forward pass, and the gradients with respect to the
inputs and to the weights).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

TRAINING_TO_FORWARD = 3


def _layers(model: Any) -> Iterator[Any]:
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _layers(layer)
        else:
            yield layer


def forward_flops_per_image(model: Any) -> int:
    from keras import layers

    total = 0
    for layer in _layers(model):
        if isinstance(layer, layers.Conv2D):
            # Kernel (kh, kw, in/groups, out) applied at every output position.
            _, height, width, _ = layer.output.shape
            total += 2 * height * width * math.prod(layer.kernel.shape)
        elif isinstance(layer, layers.Dense):
            total += 2 * math.prod(layer.kernel.shape)
    return int(total)


def training_flops_per_image(model: Any) -> int:
    return TRAINING_TO_FORWARD * forward_flops_per_image(model)
