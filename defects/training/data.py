"""The input pipeline: ``<class>/<image>`` folders to batches of resized images.

Decoding and resizing happen in the TensorFlow graph, in parallel. Large JPEGs are decoded
at a reduced scale (libjpeg's DCT scaling), which averages pixels like an area resize and is
several times faster than decoding 1920x1080 and resizing afterwards; the final resize is
antialiased, so thin scratches and small stains survive the reduction. Standard library,
NumPy and TensorFlow only: this runs inside the training container.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
AUTOTUNE = tf.data.AUTOTUNE
_JPEG_MAGIC = b"\xff\xd8\xff"
_DCT_RATIOS = (8, 4, 2, 1)


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


def _decode_jpeg_scaled(contents: tf.Tensor, image_size: int) -> tf.Tensor:
    # Pick the largest DCT scale that still leaves the short side at least image_size.
    shape = tf.io.extract_jpeg_shape(contents)
    short_side = tf.minimum(shape[0], shape[1])
    branches = []
    for ratio in _DCT_RATIOS:
        branches.append(
            (
                short_side >= image_size * ratio,
                lambda ratio=ratio: tf.io.decode_jpeg(
                    contents, channels=3, ratio=ratio, dct_method="INTEGER_ACCURATE"
                ),
            )
        )
    return tf.case(branches[:-1], default=branches[-1][1], exclusive=False)


def decode_and_resize(contents: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded image bytes to a ``(size, size, 3)`` uint8 tensor, antialiased."""
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), _JPEG_MAGIC)
    image = tf.cond(
        is_jpeg,
        lambda: _decode_jpeg_scaled(contents, image_size),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    resized = tf.image.resize(image, [image_size, image_size], method="area", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def load_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    return decode_and_resize(tf.io.read_file(path), image_size)


def make_dataset(
    paths: list[str],
    labels: np.ndarray,
    image_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """Decode once, cache the small images in memory, then shuffle, batch and prefetch."""
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(
        lambda path, label: (load_image(path, image_size), label),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def load_images(paths: list[str], image_size: int, batch_size: int = 32) -> tf.data.Dataset:
    """Images without labels, for prediction."""
    dataset = tf.data.Dataset.from_tensor_slices(paths)
    dataset = dataset.map(
        lambda path: load_image(path, image_size), num_parallel_calls=AUTOTUNE, deterministic=True
    )
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
