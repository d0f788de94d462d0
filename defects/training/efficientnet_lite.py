"""EfficientNet-Lite as a Keras feature extractor, in parts that can be trained apart.

The network is Google's EfficientNet-Lite (``efficientnet/lite`` in tensorflow/tpu):
EfficientNet without squeeze-and-excitation, with ReLU6, and with a stem and head that do
not grow with the width multiplier. It takes RGB images of 0-255 values, of any size, and
normalises them itself (``(x - 127) / 128``, a layer of the model), so a saved model takes
raw pixels as the rest of the tool's models do. Its output is the head's 1280-channel map,
before pooling: the classifier on top is the recipe's.

The network is a row of parts, :data:`PARTS`: ``stem``, ``stage1`` to ``stage7`` (the
MBConv blocks, ``block1a`` to ``block7a``) and ``head``. Every part ends in an identity
layer ``<part>_output``, and every layer has a stable name (``stem_conv``,
``block3b_project_bn``, ``head_conv``...), so that:

- ``backbone.get_layer("stage4_output").output`` is a stage's feature map (
  :func:`feature_maps` gives them all), and :func:`part_layers` lists a part's layers, to
  freeze the lower stages;
- :func:`build_backbone` with ``start``/``stop`` builds any run of parts as a model of its
  own (the top stages on precomputed feature maps, say), with the same names;
- :func:`split_backbone` cuts a built backbone at a stage into two models that share its
  layers, hence its weights.

Pretrained weights come from a ``.weights.h5`` file the host converts from the PyTorch
checkpoint (``defects.dataset.pretrained``); :func:`load_backbone_weights` loads one, and
refuses a file of another network or a damaged one.

This module runs inside the training container: it imports Keras, NumPy and the standard
library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

DEFAULT_VARIANT = "efficientnet_lite0"
PARTS = ("stem", *(f"stage{number}" for number in range(1, 8)), "head")
# The TF implementation's batch normalisation, which the pretrained statistics assume.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
_BN = {"epsilon": BN_EPSILON, "momentum": BN_MOMENTUM}
STEM_FILTERS = 32
HEAD_FILTERS = 1280
# Filters are rounded to multiples of this when a variant scales the width.
_DIVISOR = 8


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    filters: int


# EfficientNet-Lite0's seven stages (efficientnet_lite_builder.py); wider and deeper variants
# scale the filters and the repeats of the middle stages.
STAGES = (
    Stage(repeats=1, kernel=3, stride=1, expand=1, filters=16),
    Stage(repeats=2, kernel=3, stride=2, expand=6, filters=24),
    Stage(repeats=2, kernel=5, stride=2, expand=6, filters=40),
    Stage(repeats=3, kernel=3, stride=2, expand=6, filters=80),
    Stage(repeats=3, kernel=5, stride=1, expand=6, filters=112),
    Stage(repeats=4, kernel=5, stride=2, expand=6, filters=192),
    Stage(repeats=1, kernel=3, stride=1, expand=6, filters=320),
)


@dataclass(frozen=True)
class Variant:
    name: str
    width: float
    depth: float
    # The image side the network was trained at (any size works).
    resolution: int


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("efficientnet_lite0", width=1.0, depth=1.0, resolution=224),
        Variant("efficientnet_lite1", width=1.0, depth=1.1, resolution=240),
        Variant("efficientnet_lite2", width=1.1, depth=1.2, resolution=260),
    )
}


@dataclass(frozen=True)
class Block:
    """One MBConv block: 1x1 expansion (unless ``expand`` is 1), depthwise convolution,
    1x1 projection, and a residual connection when the shape allows it."""

    # Its layers' prefix: "block" + stage number + a letter per repeat ("block2b").
    name: str
    stage: int
    # Its position in the whole network, from 0 (the checkpoint's ``_blocks.<index>``).
    index: int
    kernel: int
    stride: int
    expand: int
    input_filters: int
    output_filters: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.input_filters == self.output_filters


def variant_spec(variant: str) -> Variant:
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown EfficientNet-Lite variant {variant!r}; choose one of: {', '.join(VARIANTS)}."
        )
    return VARIANTS[variant]


def _round_filters(filters: int, width: float) -> int:
    """The TF implementation's rounding of a scaled filter count."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(_DIVISOR, int(scaled + _DIVISOR / 2) // _DIVISOR * _DIVISOR)
    # Rounding down may not lose more than a tenth of the filters.
    if rounded < 0.9 * scaled:
        rounded += _DIVISOR
    return rounded


def blocks(variant: str = DEFAULT_VARIANT) -> tuple[Block, ...]:
    """The MBConv blocks of a variant, in order."""
    spec = variant_spec(variant)
    found: list[Block] = []
    input_filters = STEM_FILTERS
    for number, stage in enumerate(STAGES, start=1):
        output_filters = _round_filters(stage.filters, spec.width)
        # The Lite family keeps the first and last stages as they are in every variant.
        fixed = number in (1, len(STAGES))
        repeats = stage.repeats if fixed else math.ceil(stage.repeats * spec.depth)
        for repeat in range(repeats):
            found.append(
                Block(
                    name=f"block{number}{chr(ord('a') + repeat)}",
                    stage=number,
                    index=len(found),
                    kernel=stage.kernel,
                    # Only a stage's first block changes the resolution and the width.
                    stride=stage.stride if repeat == 0 else 1,
                    expand=stage.expand,
                    input_filters=input_filters,
                    output_filters=output_filters,
                )
            )
            input_filters = output_filters
    return tuple(found)


def part_channels(part: str, variant: str = DEFAULT_VARIANT) -> int:
    """The channels of a part's output feature map."""
    index = _part_index(part)
    if index == 0:
        return STEM_FILTERS
    if index == len(PARTS) - 1:
        return HEAD_FILTERS
    return next(block.output_filters for block in blocks(variant) if block.stage == index)


def _part_index(part: str) -> int:
    if part not in PARTS:
        raise ValueError(
            f"Unknown part {part!r} of the backbone; choose one of: {', '.join(PARTS)}."
        )
    return PARTS.index(part)


class _LayerMaker:
    """Makes each named layer of the network, or hands back the layer of that name a built
    backbone already has, so that a model made of its parts shares its weights."""

    def __init__(self, existing: Mapping[str, layers.Layer]) -> None:
        self.existing = existing

    def __call__(self, kind: type[layers.Layer], name: str, **config: Any) -> layers.Layer:
        if name in self.existing:
            return self.existing[name]
        return kind(name=name, **config)


def _convolution_bn(
    x: Any, make: _LayerMaker, prefix: str, filters: int, activate: bool = True, **conv: Any
) -> Any:
    x = make(
        layers.Conv2D, f"{prefix}_conv", filters=filters, padding="same", use_bias=False, **conv
    )(x)
    x = make(layers.BatchNormalization, f"{prefix}_bn", **_BN)(x)
    if activate:
        x = make(layers.ReLU, f"{prefix}_activation", max_value=6.0)(x)
    return x


def _mbconv(x: Any, block: Block, make: _LayerMaker) -> Any:
    inputs = x
    expanded = block.input_filters * block.expand
    if block.expand != 1:
        x = _convolution_bn(x, make, f"{block.name}_expand", expanded, kernel_size=1)
    x = make(
        layers.DepthwiseConv2D,
        f"{block.name}_dwconv",
        kernel_size=block.kernel,
        strides=block.stride,
        padding="same",
        use_bias=False,
    )(x)
    x = make(layers.BatchNormalization, f"{block.name}_dwconv_bn", **_BN)(x)
    x = make(layers.ReLU, f"{block.name}_dwconv_activation", max_value=6.0)(x)
    # The projection is linear: no activation after it.
    x = _convolution_bn(
        x, make, f"{block.name}_project", block.output_filters, activate=False, kernel_size=1
    )
    if block.residual:
        x = make(layers.Add, f"{block.name}_add")([x, inputs])
    return x


def _apply_parts(x: Any, variant: str, first: int, last: int, make: _LayerMaker) -> Any:
    """Parts ``first`` to ``last`` (indices in :data:`PARTS`) applied to ``x``."""
    all_blocks = blocks(variant)
    for index in range(first, last + 1):
        if index == 0:
            # The pretrained network expects (x - 127) / 128 of 0-255 RGB values.
            x = make(layers.Rescaling, "normalise", scale=1 / 128, offset=-127 / 128)(x)
            x = _convolution_bn(x, make, "stem", STEM_FILTERS, kernel_size=3, strides=2)
        elif index == len(PARTS) - 1:
            x = _convolution_bn(x, make, "head", HEAD_FILTERS, kernel_size=1)
        else:
            for block in all_blocks:
                if block.stage == index:
                    x = _mbconv(x, block, make)
        x = make(layers.Identity, f"{PARTS[index]}_output")(x)
    return x


def _input_for(input_shape: tuple[int | None, ...], variant: str, first: int) -> keras.KerasTensor:
    channels = 3 if first == 0 else part_channels(PARTS[first - 1], variant)
    if len(input_shape) != 3 or input_shape[-1] != channels:
        what = "RGB images" if first == 0 else f"the {PARTS[first - 1]} part's feature maps"
        raise ValueError(
            f"The {variant} backbone from its {PARTS[first]} part takes {what}, of shape "
            f"(height, width, {channels}); got {tuple(input_shape)}."
        )
    name = "image" if first == 0 else f"{PARTS[first - 1]}_features"
    return keras.Input(shape=input_shape, name=name)


def _model_name(variant: str, first: int, last: int) -> str:
    if (first, last) == (0, len(PARTS) - 1):
        return variant
    if first == last:
        return f"{variant}_{PARTS[first]}"
    return f"{variant}_{PARTS[first]}_to_{PARTS[last]}"


def build_backbone(
    input_shape: tuple[int | None, ...],
    variant: str = DEFAULT_VARIANT,
    *,
    start: str = "stem",
    stop: str = "head",
) -> keras.Model:
    """The backbone's parts ``start`` to ``stop`` (both included) as a model, with fresh
    weights. From ``stem`` it takes RGB images of 0-255 values, ``(height, width, 3)``;
    from a later part, the feature maps the part before it makes. Its output is the last
    part's feature map: the head's 1280 channels for the whole network."""
    first, last = _part_index(start), _part_index(stop)
    if first > last:
        raise ValueError(f"The part {start!r} comes after {stop!r}: nothing to build.")
    inputs = _input_for(input_shape, variant, first)
    outputs = _apply_parts(inputs, variant, first, last, _LayerMaker({}))
    return keras.Model(inputs, outputs, name=_model_name(variant, first, last))


def split_backbone(
    backbone: keras.Model, at: str, variant: str = DEFAULT_VARIANT
) -> tuple[keras.Model, keras.Model]:
    """A whole backbone cut before the part ``at``: the lower model (images to the feature
    maps of the part before ``at``) and the upper one (those maps to the head's). Both use
    the backbone's own layers, so they share its weights, its names and its ``trainable``
    flags."""
    first = _part_index(at)
    if first == 0:
        raise ValueError("A backbone cannot be split before its stem: nothing would be below.")
    below = backbone.get_layer(f"{PARTS[first - 1]}_output").output
    lower = keras.Model(backbone.input, below, name=_model_name(variant, 0, first - 1))
    inputs = _input_for(tuple(below.shape[1:]), variant, first)
    existing = {layer.name: layer for layer in backbone.layers}
    outputs = _apply_parts(inputs, variant, first, len(PARTS) - 1, _LayerMaker(existing))
    upper = keras.Model(inputs, outputs, name=_model_name(variant, first, len(PARTS) - 1))
    # With another variant's names the halves would miss layers or make new ones.
    halves = {id(layer) for layer in lower.layers + upper.layers[1:]}
    if halves != {id(layer) for layer in backbone.layers}:
        raise ValueError(f"{backbone.name} is not a whole {variant} backbone.")
    return lower, upper


def feature_maps(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """The output of each part ``model`` has, by part name (a model made of the backbone's
    layers: whole, or a part of it)."""
    names = {layer.name for layer in model.layers}
    return {
        part: model.get_layer(f"{part}_output").output
        for part in PARTS
        if f"{part}_output" in names
    }


def part_layers(model: keras.Model, part: str) -> list[layers.Layer]:
    """The layers of ``model`` that belong to ``part`` (to freeze it, say)."""
    index = _part_index(part)
    names = {"stem": ("normalise", "stem_"), "head": ("head_",)}
    prefixes = names.get(part, (f"block{index}",))
    return [
        layer
        for layer in model.layers
        if layer.name.startswith(prefixes) or layer.name == f"{part}_output"
    ]


def _file_arrays(path: Path) -> list[tuple[int, ...]]:
    """The shapes of the arrays a Keras weights file holds."""
    # The editor reports what it opened on the console: the entry point's stdout is for
    # results, so that report is dropped.
    with contextlib.redirect_stdout(io.StringIO()):
        editor = keras.saving.KerasFileEditor(str(path))
    shapes: list[tuple[int, ...]] = []
    pending: list[Any] = [editor.weights_dict]
    while pending:
        for value in pending.pop().values():
            if isinstance(value, Mapping):
                pending.append(value)
            else:
                shapes.append(tuple(np.shape(value)))
    return shapes


def _describe(shapes: list[tuple[int, ...]]) -> str:
    values = sum(math.prod(shape) for shape in shapes)
    return f"{len(shapes)} arrays of {values:,} values"


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _loaded_reference(path: Path, variant: str) -> keras.Model:
    """A whole backbone of ``variant`` with the weights of ``path``, every one of them
    checked to come from the file."""
    # The weights do not depend on the image size: the smallest whole map will do.
    reference = build_backbone((32, 32, 3), variant)
    expected = [tuple(weight.shape) for weight in reference.weights]
    try:
        found = _file_arrays(path)
    except Exception as error:
        raise ValueError(
            f"{path} is not a readable Keras weights file (damaged, or of another format): {error}"
        ) from error
    if sorted(found) != sorted(expected):
        raise ValueError(
            f"{path} does not hold the weights of the {variant} backbone: expected "
            f"{_describe(expected)}, found {_describe(found)}."
        )
    # A weight the file would leave out keeps this mark, and is then refused below.
    for weight in reference.weights:
        weight.assign(np.full(weight.shape, np.nan, dtype=weight.dtype))
    try:
        with warnings.catch_warnings():
            # Before it fails on a file of another network, Keras warns of the parts it
            # skips; the error says what matters.
            warnings.simplefilter("ignore")
            reference.load_weights(path)
    except Exception as error:
        raise ValueError(
            f"{path} does not hold the weights of the {variant} backbone, or is damaged: {error}"
        ) from error
    missing = [weight.path for weight in reference.weights if np.isnan(weight.numpy()).any()]
    if missing:
        raise ValueError(
            f"{path} leaves {len(missing)} weights of the {variant} backbone unset (or holds "
            f"NaN), such as {missing[0]}."
        )
    return reference


def load_backbone_weights(
    model: keras.Model,
    path: Path,
    variant: str = DEFAULT_VARIANT,
    sha256: str | None = None,
) -> None:
    """Loads the converted pretrained weights at ``path`` (a ``.weights.h5`` file) into
    ``model``: a whole backbone or a part of one (:func:`build_backbone`,
    :func:`split_backbone`), matched by layer name.

    Raises ``ValueError``, naming what was expected and what was found, when the file is
    not a Keras weights file, holds the weights of another network, is damaged, or (when
    ``sha256`` is given) is not the file of that digest; or when ``model`` has a layer
    with weights that the backbone does not have."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"There is no weights file {path}.")
    if sha256 is not None:
        actual = _sha256(path)
        if actual != sha256:
            raise ValueError(
                f"{path} is damaged or not the expected file: its sha256 is {actual}, "
                f"expected {sha256}."
            )
    reference = _loaded_reference(path, variant)
    known = {layer.name: layer for layer in reference.layers}
    for layer in model.layers:
        if not layer.weights:
            continue
        source = known.get(layer.name)
        if source is None:
            raise ValueError(
                f"{model.name} has a layer {layer.name!r} with weights that the {variant} "
                "backbone does not have."
            )
        expected = [tuple(weight.shape) for weight in source.weights]
        found = [tuple(weight.shape) for weight in layer.weights]
        if expected != found:
            raise ValueError(
                f"The layer {layer.name!r} of {model.name} has weights of shapes {found}; "
                f"the {variant} backbone's are {expected}."
            )
        layer.set_weights(source.get_weights())
