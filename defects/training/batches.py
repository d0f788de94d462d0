"""A channel's images as the batches of each epoch: decoded once and kept in memory when
they fit the budget, streamed from their files otherwise; the same batches either way.

Epoch ``e`` draws its order and its augmentations from ``(seed, e)`` alone, with stateless
random ops, not from how many epochs this process drew before: a run resumed at epoch 3
(``epochs=range(2, 4)``) trains on the very batches an uninterrupted run trains on.

- **Cached**: every image decoded and resized once, the split kept as one tensor (about
  ``count x height x width x 3`` bytes); each epoch picks its images from it in its order.
- **Streamed**: each epoch reads its images in that same order from the channel's files (a
  tar shard is read at the member's offset, never whole), decodes and resizes them in the
  graph, in parallel, and prefetches. Memory stays a few batches deep whatever the
  split's size; the price is decoding every image once an epoch.

Standard library, NumPy and TensorFlow only: this runs inside the training container.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from defects.training.data import AUTOTUNE, Channel, augment, decode_and_resize, load_image

# Decoded images of one split kept in memory, at most, unless the job says otherwise
# (the cache_mb hyperparameter).
CACHE_BUDGET_MB = 2048


@dataclass(frozen=True)
class Batches:
    """A split's batches, and how they are made."""

    dataset: tf.data.Dataset
    cached: bool
    # The split decoded: what caching it holds in memory.
    decoded_bytes: int

    def record(self) -> dict[str, Any]:
        """For ``metrics.json``."""
        return {"cached": self.cached, "decoded_mb": round(self.decoded_bytes / 1e6, 1)}

    def describe(self, budget_bytes: int) -> str:
        size = f"{self.decoded_bytes / 1e6:.0f} MB decoded"
        if self.cached:
            return f"cached in memory ({size}, within the {budget_bytes / 1e6:.0f} MB budget)"
        return f"streamed from its files ({size}, over the {budget_bytes / 1e6:.0f} MB budget)"


def _order(key: tf.Tensor, count: int, shuffle: bool) -> tf.Tensor:
    """The positions of an epoch's images, in the order it takes them."""
    if not shuffle:
        return tf.range(count, dtype=tf.int64)
    return tf.cast(tf.argsort(tf.random.stateless_uniform([count], key)), tf.int64)


def _key(seed: int, epoch: tf.Tensor) -> tf.Tensor:
    return tf.stack([tf.constant(seed, tf.int64), epoch])


def _drawn(image: tf.Tensor, key: tf.Tensor, index: tf.Tensor, augmented: bool) -> tf.Tensor:
    """The ``index``-th image an epoch takes, augmented by its own draw."""
    if not augmented:
        return image
    return augment(image, tf.random.experimental.stateless_fold_in(key, index))


def batches(
    dataset: tf.data.Dataset,
    count: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    augmented: bool = False,
    epochs: range = range(1),
) -> tf.data.Dataset:
    """Cache, shuffle, augment, batch and prefetch ``count`` ``(image, label)`` pairs of
    uint8 images: the batches of each epoch in ``epochs``, one epoch after the other (``fit``
    then needs ``steps_per_epoch``)."""
    if not (shuffle or augmented):
        return dataset.cache().batch(batch_size).repeat(len(epochs)).prefetch(AUTOTUNE)
    if count < 1:
        raise ValueError("a training channel needs at least one image")
    # The whole channel as one cached element (no second copy): each epoch picks its
    # images from it in its own order.
    whole = dataset.batch(count).cache()

    def one_epoch(epoch: tf.Tensor, channel: tuple[tf.Tensor, tf.Tensor]) -> tf.data.Dataset:
        images, labels = channel
        key = _key(seed, epoch)

        def pick(index: tf.Tensor, position: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            image = _drawn(tf.gather(images, position), key, index, augmented)
            return image, tf.gather(labels, position)

        picks = tf.data.Dataset.from_tensor_slices(_order(key, count, shuffle)).enumerate()
        return picks.map(pick, num_parallel_calls=AUTOTUNE, deterministic=True).batch(batch_size)

    numbers = tf.data.Dataset.range(epochs.start, epochs.stop)
    per_epoch = tf.data.Dataset.zip(numbers, whole.repeat())
    return per_epoch.flat_map(one_epoch).prefetch(AUTOTUNE)


def _reader(channel: Channel) -> Callable[[tf.Tensor], tf.Tensor]:
    """The encoded bytes of the channel's image at a position, as a graph op."""
    if channel.whole_files:
        paths = tf.constant(channel.files)
        return lambda position: tf.io.read_file(tf.gather(paths, position))

    def read(position: tf.Tensor) -> tf.Tensor:
        # A tar member is read at its offset (os.pread releases the GIL while it reads).
        contents = tf.py_function(lambda at: channel.read(int(at)), [position], tf.string)
        contents.set_shape([])
        return contents

    return read


def streamed(
    channel: Channel,
    shape: tuple[int, int],
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    augmented: bool = False,
    epochs: range = range(1),
) -> tf.data.Dataset:
    """The batches :func:`batches` makes of the channel, read from its files each epoch."""
    read = _reader(channel)
    labels = tf.constant(channel.labels)
    count = len(channel)

    def load(index: tf.Tensor, position: tf.Tensor, key: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = decode_and_resize(read(position), shape)
        return _drawn(image, key, index, augmented), tf.gather(labels, position)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        key = _key(seed, epoch)
        picks = tf.data.Dataset.from_tensor_slices(_order(key, count, shuffle)).enumerate()
        return picks.map(
            lambda index, position: load(index, position, key),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        ).batch(batch_size)

    numbers = tf.data.Dataset.range(epochs.start, epochs.stop)
    return numbers.flat_map(one_epoch).prefetch(AUTOTUNE)


def decoded_bytes(count: int, shape: tuple[int, int]) -> int:
    return count * shape[0] * shape[1] * 3


def channel_batches(
    channel: Channel,
    shape: tuple[int, int],
    batch_size: int,
    budget_bytes: int = CACHE_BUDGET_MB * 10**6,
    *,
    shuffle: bool = False,
    seed: int = 0,
    augmented: bool = False,
    epochs: range = range(1),
) -> Batches:
    """The channel's batches, cached when the split decoded fits ``budget_bytes``, else
    streamed: the same batches either way."""
    size = decoded_bytes(len(channel), shape)
    if size > budget_bytes:
        found = streamed(channel, shape, batch_size, shuffle, seed, augmented, epochs)
        return Batches(found, False, size)
    read = _reader(channel)
    labels = tf.constant(channel.labels)
    images = tf.data.Dataset.range(len(channel)).map(
        lambda position: (decode_and_resize(read(position), shape), tf.gather(labels, position)),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    found = batches(images, len(channel), batch_size, shuffle, seed, augmented, epochs)
    return Batches(found, True, size)


def make_dataset(
    paths: list[str],
    labels: np.ndarray,
    shape: tuple[int, int],
    batch_size: int,
    **batching: object,
) -> tf.data.Dataset:
    """Image files decoded once and kept in memory, then batched as :func:`batches` does."""
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels)).map(
        lambda path, label: (load_image(path, shape), label),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return batches(dataset, len(paths), batch_size, **batching)  # type: ignore[arg-type]
