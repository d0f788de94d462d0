"""The input pipeline: ``<class>/<image>`` folders to batches of resized images.

Decoding and resizing happen in the TensorFlow graph, in parallel. Large JPEGs are decoded
at a reduced scale (libjpeg's DCT scaling), which averages pixels like an area resize and is
several times faster than decoding 1920x1080 and resizing afterwards; the final resize is
antialiased, so thin scratches and small stains survive the reduction.

Augmentation happens here too, after the cache, on the small uint8 images: flips, a small
rotation (quarter turns for square images), brightness and contrast, drawn with stateless
random ops. Each epoch's order and draws depend only on the seed and the epoch's number, so
a run is reproducible, and a run resumed at epoch 3 sees for it exactly what an
uninterrupted run sees. (As Keras layers inside the model the same augmentation doubled the
time of a training step on 2 CPU cores; in the pipeline it costs about a tenth of it.)
Standard library, NumPy and TensorFlow only: this runs inside the training container.
"""

from __future__ import annotations

import os
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
AUTOTUNE = tf.data.AUTOTUNE
_JPEG_MAGIC = b"\xff\xd8\xff"
_DCT_RATIOS = (8, 4, 2, 1)

# Inspection photos: the phone may lie either way round, a little rotated (up to +-0.03 of a
# turn, about 11 degrees; square images are turned by quarter turns instead, see
# ``augment``), under slightly different light. No zoom or crop: that could cut
# the defect out. Brightness shifts stay small (+-5 levels): the screen is dark, and larger
# shifts clip it to black and wipe out faint oil films.
MAX_ROTATION = 0.03 * 2 * np.pi
MAX_BRIGHTNESS_SHIFT = 5.0
CONTRAST_RANGE = (0.9, 1.1)


SHARD_SUFFIX = ".tar"


@dataclass(frozen=True)
class Channel:
    """The images of one channel, as an index into its files: each image is a file of its
    own (a folder of ``<class>/<image>`` files) or a member of a tar shard (what staging
    uploads), read when it is needed. Only the index is held, never the images: a channel
    of any size costs a few dozen bytes an image."""

    class_names: list[str]
    labels: np.ndarray
    # Per image: the file that holds it, where its bytes start and how many there are
    # (-1: the whole file).
    files: list[str]
    offsets: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.files)

    @property
    def whole_files(self) -> bool:
        """Whether every image is a file of its own (readable by TensorFlow directly)."""
        return bool(np.all(self.sizes < 0))

    def read(self, index: int) -> bytes:
        """The encoded bytes of image ``index``."""
        with open(self.files[index], "rb") as handle:
            if self.sizes[index] < 0:
                return handle.read()
            return os.pread(handle.fileno(), int(self.sizes[index]), int(self.offsets[index]))


def shards_in(directory: Path) -> list[Path]:
    """The tar shards at the top of a channel folder (what ``defects stage`` uploads)."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == SHARD_SUFFIX)


def _shard_members(shards: list[Path]) -> list[tuple[str, str, str, int, int]]:
    """``(class, member name, shard, offset, size)`` of every image in the shards, in name
    order; the shards' headers are read, not their images."""
    members = []
    for shard in shards:
        with tarfile.open(shard, mode="r:") as archive:
            for member in archive:
                name = member.name
                if not member.isfile() or "/" not in name:
                    continue
                if not name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                members.append(
                    (name.split("/", 1)[0], name, str(shard), member.offset_data, member.size)
                )
    return sorted(members, key=lambda member: member[1])


def read_channel(directory: Path, class_names: list[str] | None = None) -> Channel:
    """The index of a channel folder holding ``<class>/<image>`` files or tar shards of
    them. Without ``class_names`` the channel's own classes are used, sorted."""
    shards = shards_in(directory)
    if not shards:
        names = class_names if class_names is not None else class_names_in(directory)
        paths, labels = list_images(directory, names)
        count = len(paths)
        return Channel(
            names, labels, paths, np.zeros(count, np.int64), np.full(count, -1, np.int64)
        )
    members = _shard_members(shards)
    names = class_names if class_names is not None else sorted({c for c, *_ in members})
    index = {name: i for i, name in enumerate(names)}
    kept = [member for member in members if member[0] in index]
    return Channel(
        names,
        np.asarray([index[member[0]] for member in kept], dtype=np.int32),
        [member[2] for member in kept],
        np.asarray([member[3] for member in kept], dtype=np.int64),
        np.asarray([member[4] for member in kept], dtype=np.int64),
    )


def class_names_in(directory: Path) -> list[str]:
    """The class folders of a channel, sorted, as Keras' directory loaders do."""
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir())


def list_images(directory: Path, class_names: list[str]) -> tuple[list[str], np.ndarray]:
    """Every image below ``directory/<class>/`` with its label index, in a stable order."""
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        class_dir = directory / name
        if not class_dir.is_dir():
            continue
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(path))
                labels.append(index)
    return paths, np.asarray(labels, dtype=np.int32)


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_size(contents: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from an image's header (PNG, BMP or JPEG), or None if unknown."""
    if contents.startswith(_PNG_MAGIC) and len(contents) >= 24:
        width, height = struct.unpack(">II", contents[16:24])
        return int(width), int(height)
    if contents.startswith(b"BM") and len(contents) >= 26:
        width, height = struct.unpack("<ii", contents[18:26])
        return int(width), abs(int(height))
    if contents.startswith(_JPEG_MAGIC):
        height, width = tf.io.extract_jpeg_shape(contents).numpy()[:2]
        return int(width), int(height)
    return None


def image_sizes(channel: Channel, limit: int = 256) -> list[tuple[int, int]]:
    """The ``(width, height)`` of up to ``limit`` of a channel's images, spread over it."""
    step = max(1, len(channel) // limit)
    sizes = []
    for index in range(0, len(channel), step):
        size = image_size(channel.read(index))
        if size is not None:
            sizes.append(size)
    return sizes


def _decode_jpeg_scaled(contents: tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    # Pick the largest DCT scale that still leaves both sides at least as large as the target.
    source = tf.io.extract_jpeg_shape(contents)
    height, width = shape
    branches = []
    for ratio in _DCT_RATIOS:
        branches.append(
            (
                tf.logical_and(source[0] >= height * ratio, source[1] >= width * ratio),
                lambda ratio=ratio: tf.io.decode_jpeg(
                    contents, channels=3, ratio=ratio, dct_method="INTEGER_ACCURATE"
                ),
            )
        )
    return tf.case(branches[:-1], default=branches[-1][1], exclusive=False)


def decode_and_resize(contents: tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes to a ``(height, width, 3)`` uint8 tensor, antialiased."""
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), _JPEG_MAGIC)
    image = tf.cond(
        is_jpeg,
        lambda: _decode_jpeg_scaled(contents, shape),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    resized = tf.image.resize(image, list(shape), method="area", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def load_image(path: tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    return decode_and_resize(tf.io.read_file(path), shape)


def _rotate(image: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """Rotate a float ``(h, w, c)`` image about its centre, bilinear, reflecting at the edges."""
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # Maps each output pixel back to the input pixel it samples.
    transform = tf.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0]
    )
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform[None],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    return rotated[0]


def is_square(image: tf.Tensor) -> bool:
    """Whether an image's static shape is square (its augmentation then turns it)."""
    height, width = image.shape[0], image.shape[1]
    return height is not None and height == width


def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """One random variant of a uint8 image; ``seed`` is a ``[2]`` int64 stateless seed.

    A square image (a solar cell, a tile, a patch cut to its object) takes one of its eight
    exact orientations, quarter turns included, and no small rotation: the turns vary it
    more than +-11 degrees would, and they move whole pixels, where a rotation interpolates
    (blurring one-pixel cracks) and fills its corners with reflections of the object's edges.
    A photo of another shape cannot be turned a quarter and fit the input: it takes the
    flips and a small rotation, as a hand-held camera varies it.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    image = tf.image.stateless_random_flip_up_down(image, seeds[1])
    if is_square(image):
        # With both flips, a transpose half of the time gives each of the eight orientations.
        # It draws from a stream of its own, so the other draws stay those of other shapes.
        turn_seed = tf.random.experimental.stateless_fold_in(seed, 5)
        transpose = tf.random.stateless_uniform([], turn_seed) < 0.5
        image = tf.cond(transpose, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
        pixels = tf.cast(image, tf.float32)
    else:
        pixels = tf.cast(image, tf.float32)
        angle = tf.random.stateless_uniform([], seeds[2], -MAX_ROTATION, MAX_ROTATION)
        pixels = _rotate(pixels, angle)
    pixels = tf.image.stateless_random_contrast(pixels, *CONTRAST_RANGE, seed=seeds[3])
    shift = tf.random.stateless_uniform([], seeds[4], -MAX_BRIGHTNESS_SHIFT, MAX_BRIGHTNESS_SHIFT)
    return tf.cast(tf.clip_by_value(tf.round(pixels + shift), 0.0, 255.0), tf.uint8)


def load_images(paths: list[str], shape: tuple[int, int], batch_size: int = 32) -> tf.data.Dataset:
    """Images without labels, for prediction."""
    dataset = tf.data.Dataset.from_tensor_slices(paths)
    dataset = dataset.map(
        lambda path: load_image(path, shape), num_parallel_calls=AUTOTUNE, deterministic=True
    )
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
