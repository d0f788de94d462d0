"""Classifying photos at scale: files, folders and globs, the model loaded once, the photos
decoded and classified in batches.

Photos go through the training pipeline's decode-and-resize graph in a ``tf.data`` pipeline
(in parallel, large JPEGs decoded at a reduced scale). A cheap look at each file's header
sends the unusual ones (BMP, WebP, TIFF, HEIC, 16-bit, transparent, palette) through the same
conversion as ``defects prepare``; a file that cannot be used gets its reason instead of a
class, in the order the photos were given, and never stops the others.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defects.dataset.images import IMAGE_SUFFIXES, check_image
from defects.inference.loading import LoadedModel, load_model

BATCH_SIZE = 32
_GLOB_CHARACTERS = frozenset("*?[")

Images = str | Path | Sequence[str | Path]


@dataclass(frozen=True)
class Prediction:
    """The class of one photo and the probability of every class, or why there is none."""

    path: Path
    label: str | None
    probabilities: dict[str, float]
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        if self.error:
            return {"path": str(self.path), "error": self.error}
        return {"path": str(self.path), "class": self.label, "probabilities": self.probabilities}


def find_images(inputs: Images) -> tuple[list[Path], list[Prediction]]:
    """The photos named by ``inputs``: files as given, folders searched (recursively) and
    globs expanded to the images they hold, each path once; and an error for every input
    that names none."""
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    found: dict[Path, None] = {}
    errors: list[Prediction] = []
    for given in inputs:
        path = Path(given)
        if path.is_file():
            found[path] = None
            continue
        if path.is_dir():
            matches = [p for p in sorted(path.rglob("*")) if _is_image(p)]
            missing = f"no images ({' '.join(IMAGE_SUFFIXES)}) in this folder"
        elif _GLOB_CHARACTERS & set(str(given)):
            matches = [Path(p) for p in sorted(glob.glob(str(given), recursive=True))]
            matches = [p for p in matches if _is_image(p)]
            missing = "the pattern matches no image"
        else:
            matches, missing = [], "no such file or folder"
        if not matches:
            errors.append(Prediction(path, None, {}, error=missing))
        found.update(dict.fromkeys(matches))
    return list(found), errors


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def _screen(path: Path) -> tuple[str, bytes]:
    """A look at the header: ``("", b"")`` for a photo TensorFlow decodes as it is; else the
    converted bytes, or the reason the file cannot be used."""
    from PIL import Image

    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as image:
                plain = image.format in {"JPEG", "PNG"} and image.mode == "RGB"
                if plain and min(image.size) >= 16:
                    return "", b""
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            pass  # check_image below says what is wrong.
    checked = check_image(path)
    if checked.reason:
        return checked.reason, b""
    return "", checked.converted if checked.converted is not None else path.read_bytes()


# Photos screened (and converted where needed) at a time, in batches: a folder of thousands
# of photos that need converting (BMP, TIFF, 16-bit PNG...) is never held in memory whole.
BATCHES_PER_CHUNK = 8


def iter_predictions(
    model: str | Path | LoadedModel,
    images: Images,
    batch_size: int = BATCH_SIZE,
    on_total: Callable[[int], None] = lambda count: None,
) -> Iterator[Prediction]:
    """One :class:`Prediction` per photo, in the order found, as the batches finish;
    ``on_total`` learns how many there will be once the photos are found."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    paths, errors = find_images(images)
    on_total(len(paths) + len(errors))
    yield from errors
    if not paths:
        return

    import numpy as np
    import tensorflow as tf

    from defects.training.data import AUTOTUNE, decode_and_resize

    # Why each photo that is not decoded was refused, filled in as the photos are screened
    # (always ahead of the answers, which come in order).
    reasons: dict[int, str] = {}

    def usable() -> Iterator[tuple[list[int], list[str], list[bytes]]]:
        """The photos that passed screening, a chunk at a time; the next chunk is screened
        while this one is decoded and classified."""
        chunk = BATCHES_PER_CHUNK * batch_size
        with ThreadPoolExecutor(max_workers=4) as pool:
            ahead = [pool.submit(_screen, path) for path in paths[:chunk]]
            for start in range(0, len(paths), chunk):
                current = ahead
                ahead = [pool.submit(_screen, p) for p in paths[start + chunk : start + 2 * chunk]]
                kept: tuple[list[int], list[str], list[bytes]] = ([], [], [])
                for index, screening in enumerate(current, start):
                    reason, contents = screening.result()
                    if reason:
                        reasons[index] = reason
                        continue
                    kept[0].append(index)
                    kept[1].append(str(paths[index]))
                    kept[2].append(contents)
                if kept[0]:
                    yield kept

    shape = loaded.image_shape

    def load(index: tf.Tensor, path: tf.Tensor, contents: tf.Tensor) -> Any:
        encoded = tf.cond(
            tf.strings.length(contents) > 0, lambda: contents, lambda: tf.io.read_file(path)
        )
        return index, decode_and_resize(encoded, shape)

    strings = tf.TensorSpec((None,), tf.string)
    dataset = (
        # Chunks, not photos, come through Python: one call per photo costs about a tenth
        # of the throughput.
        tf.data.Dataset.from_generator(
            usable, output_signature=(tf.TensorSpec((None,), tf.int64), strings, strings)
        )
        .unbatch()
        .map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
        # A file TensorFlow cannot decode is dropped here; its index goes missing below.
        .ignore_errors()
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )
    names = loaded.class_names
    following = 0
    for indices, pixels in dataset:
        probabilities = np.asarray(loaded.model.predict_on_batch(pixels))
        for index, row in zip(indices.numpy().tolist(), probabilities, strict=True):
            yield from _failures(paths, reasons, following, index)
            following = index + 1
            yield Prediction(
                paths[index],
                names[int(np.argmax(row))],
                {name: round(float(p), 6) for name, p in zip(names, row, strict=True)},
            )
    yield from _failures(paths, reasons, following, len(paths))


def _failures(
    paths: list[Path], reasons: dict[int, str], start: int, stop: int
) -> Iterator[Prediction]:
    """The photos between two answers: each failed its screening or its decoding."""
    for index in range(start, stop):
        reason = reasons.get(index) or check_image(paths[index]).reason
        yield Prediction(paths[index], None, {}, error=reason or "TensorFlow cannot decode it")


def predict(
    model: str | Path | LoadedModel, images: Images, batch_size: int = BATCH_SIZE
) -> list[Prediction]:
    """Classify photos with ``model`` (a job folder, a ``model.tar.gz``, a model folder or
    a ``.keras`` file, loaded once): ``images`` are files, folders or globs. An unusable
    file gets its reason (``Prediction.error``) instead of a class."""
    return list(iter_predictions(model, images, batch_size))
