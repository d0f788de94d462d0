"""A channel's images as the batches of each epoch: decoded once and kept in memory when
they fit the budget, streamed from their files otherwise; the same batches either way.

Epoch ``e`` draws its order and its augmentations from ``(seed, e)`` alone, with stateless
random ops, not from how many epochs this process drew before: a run resumed at epoch 3
(``epochs=range(2, 4)``) trains on the very batches an uninterrupted run trains on.

- **Cached**: every image decoded and resized once, the split kept as one tensor (about
  ``count x height x width x 3`` bytes); each epoch picks its images from it in its order.
- **Streamed**: the split is decoded once into files on disk (raw pixels, a file of
  ``height x width x 3`` bytes an image), and each epoch reads its images from them in that
  same order, in parallel, and prefetches: memory stays a few batches deep whatever
  the split's size (the operating system's page cache, not the process, holds the files).
  Without room on the disk for the copy, each epoch reads the channel's files (a tar shard
  at the member's offset, never whole) and decodes them again: slower, as small.

Standard library, NumPy and TensorFlow only: this runs inside the training container.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from defects.training.contract import CACHE_BUDGET_MB
from defects.training.data import AUTOTUNE, Channel, augment, decode_and_resize, load_image

# Free disk a decoded copy leaves to everything else (checkpoints, the model).
_DISK_MARGIN = 256 * 10**6
# In a decoded copy's folder once every image is in it.
_COMPLETE = ".complete"


@dataclass(frozen=True)
class Batches:
    """A split's batches, and how they are made."""

    dataset: tf.data.Dataset
    cached: bool
    # The split decoded: what caching it holds in memory.
    decoded_bytes: int
    # Streamed from a decoded copy on disk (else decoded from its files every epoch).
    from_copy: bool
    # What was left of the job's budget for this split, in bytes.
    allowed: int

    def record(self) -> dict[str, Any]:
        """For ``metrics.json``."""
        way = "cached" if self.cached else "decoded copy" if self.from_copy else "decoded"
        return {
            "kept": way,
            "decoded_mb": round(self.decoded_bytes / 1e6, 1),
            "allowed_mb": round(self.allowed / 1e6, 1),
        }

    def describe(self, budget_bytes: int) -> str:
        """How the split is kept, against what was left of the job's ``budget_bytes``."""
        size = f"{self.decoded_bytes / 1e6:.0f} MB decoded"
        budget = f"the {budget_bytes / 1e6:.0f} MB budget"
        if self.allowed < budget_bytes:
            budget = f"the {self.allowed / 1e6:.0f} MB left of {budget}"
        if self.cached:
            return f"cached in memory ({size}, within {budget})"
        if self.from_copy:
            return f"streamed from a decoded copy on disk ({size}, over {budget})"
        return (
            f"streamed from its files and decoded every epoch ({size}, over {budget}; no "
            "room on the disk for a decoded copy)"
        )


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


def decoded_copy(channel: Channel, shape: tuple[int, int], folder: Path) -> Path | None:
    """The channel's images decoded and resized once into a folder of raw uint8 pixels, a
    file an image (``<position>.u8``, ``height x width x 3`` bytes), kept in ``folder`` for
    the run and its resumption; None when the disk there has no room for it. A file an
    image, because TensorFlow reads a whole file natively and in parallel, while reading
    at an offset of one file would take Python, and its lock, for every image."""
    size = decoded_bytes(len(channel), shape)
    identity = hashlib.sha256(
        repr((shape, channel.files, channel.offsets.tolist(), channel.sizes.tolist())).encode()
    ).hexdigest()[:16]
    path = folder / f"decoded-{identity}"
    if (path / _COMPLETE).is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(folder).free < size * 1.1 + _DISK_MARGIN:
        return None
    read = _reader(channel)
    images = tf.data.Dataset.range(len(channel)).map(
        lambda position: decode_and_resize(read(position), shape),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for position, image in enumerate(images.prefetch(AUTOTUNE)):
        (partial / f"{position}.u8").write_bytes(image.numpy().tobytes())
    (partial / _COMPLETE).touch()
    shutil.rmtree(path, ignore_errors=True)
    os.replace(partial, path)
    return path


def _copy_reader(path: Path, shape: tuple[int, int]) -> Callable[[tf.Tensor], tf.Tensor]:
    """The decoded image at a position of a :func:`decoded_copy`, as a graph op: its file
    read whole (from the page cache, which is not this process's memory)."""
    folder = tf.constant(str(path) + os.sep)

    def read(position: tf.Tensor) -> tf.Tensor:
        raw = tf.io.read_file(folder + tf.strings.as_string(position) + ".u8")
        return tf.reshape(tf.io.decode_raw(raw, tf.uint8), (*shape, 3))

    return read


def streamed(
    channel: Channel,
    shape: tuple[int, int],
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    augmented: bool = False,
    epochs: range = range(1),
    copy: Path | None = None,
) -> tf.data.Dataset:
    """The batches :func:`batches` makes of the channel, read each epoch: from a decoded
    ``copy`` on disk, or from the channel's files, decoded again."""
    labels = tf.constant(channel.labels)
    count = len(channel)
    if copy is not None:
        decoded = _copy_reader(copy, shape)
    else:
        read = _reader(channel)

        def decoded(position: tf.Tensor) -> tf.Tensor:
            return decode_and_resize(read(position), shape)

    def load(index: tf.Tensor, position: tf.Tensor, key: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return _drawn(decoded(position), key, index, augmented), tf.gather(labels, position)

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
    spill: Path | None = None,
) -> Batches:
    """The channel's batches, cached when the split decoded fits ``budget_bytes`` (what the
    splits cached before it left of the job's budget: :meth:`Setting.left`), else
    streamed (from a decoded copy in ``spill`` when the disk has room): the same batches
    whichever way."""
    size = decoded_bytes(len(channel), shape)
    if size > budget_bytes:
        copy = decoded_copy(channel, shape, spill) if spill is not None else None
        found = streamed(channel, shape, batch_size, shuffle, seed, augmented, epochs, copy)
        return Batches(found, False, size, copy is not None, budget_bytes)
    read = _reader(channel)
    labels = tf.constant(channel.labels)
    images = tf.data.Dataset.range(len(channel)).map(
        lambda position: (decode_and_resize(read(position), shape), tf.gather(labels, position)),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    found = batches(images, len(channel), batch_size, shuffle, seed, augmented, epochs)
    return Batches(found, True, size, False, budget_bytes)


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
