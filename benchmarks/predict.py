"""Images per second out of ``defects predict`` (the model loaded once, photos decoded in a
tf.data pipeline and classified in batches) vs. a loop that calls the model once per photo.

Both classify the same full-size 1920x1080 JPEGs with the same model (the default network
at the default size, untrained: the answers do not matter, the work does) and the same
decode-and-resize graph. The loop is what ``defects predict`` used to do: read a file,
decode and resize it, ``model.predict`` on a batch of one. The files are read once
beforehand so that both sides find them in the page cache; each side's first call (graph
tracing) is untimed.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks import datasets
from benchmarks.context import Context
from benchmarks.report import Result, times
from defects.inference.loading import LoadedModel
from defects.training import contract

KEYS = {"predict": "predict: batched tf.data vs one model call per image"}
TARGETS = {"predict": ">= 2x the per-image loop"}
TARGET_RATIO = 2.0


def _loaded_model(shape: tuple[int, int]) -> LoadedModel:
    from defects.training.model import make_model

    names = ["good", "oil", "scratch", "stain"]
    return LoadedModel(make_model((*shape, 3), len(names)), names, shape, Path("benchmark"))


def _batched_seconds(loaded: LoadedModel, paths: list[Path]) -> float:
    from defects.inference.prediction import predict

    started = time.perf_counter()
    answers = predict(loaded, paths)
    seconds = time.perf_counter() - started
    if len(answers) != len(paths) or any(answer.error for answer in answers):
        raise RuntimeError("predict did not answer every photo")
    return seconds


def _loop_seconds(loaded: LoadedModel, paths: list[Path]) -> float:
    import tensorflow as tf

    from defects.training.data import decode_and_resize

    model, shape = loaded.model, loaded.image_shape
    started = time.perf_counter()
    for path in paths:
        pixels = decode_and_resize(tf.constant(path.read_bytes()), shape)
        model.predict(pixels[tf.newaxis], verbose=0)
    return time.perf_counter() - started


def run(context: Context) -> list[Result]:
    sizes = context.sizes
    # What image_size=auto picks for 1920x1080 photos.
    size = contract.image_size_text(contract.auto_image_shape([(1920, 1080)]))
    shape = contract.image_shape(size)
    count = sizes.input_images
    context.say(f"predict: drawing or reusing {count} 1920x1080 JPEGs")
    paths = datasets.full_size_jpegs(context.data_dir, count)
    for path in paths:
        path.read_bytes()  # Into the page cache.
    loaded = _loaded_model(shape)
    # Untimed warm-up of both sides at the timed shapes: graph tracing, thread pools.
    _batched_seconds(loaded, paths)
    _loop_seconds(loaded, paths[:1])
    context.say(f"predict: timing batched and per-image prediction on {len(paths)} images")
    batched = min(_batched_seconds(loaded, paths) for _ in range(sizes.input_repeats))
    loop = min(_loop_seconds(loaded, paths) for _ in range(sizes.input_repeats))
    batched_rate, loop_rate = len(paths) / batched, len(paths) / loop
    ratio = batched_rate / loop_rate
    return [
        Result(
            key="predict",
            benchmark="predict",
            title=KEYS["predict"],
            measured=f"{batched_rate:.0f} img/s (defects.predict, batches of 32)",
            baseline=f"{loop_rate:.0f} img/s (model.predict once per image)",
            ratio=ratio,
            ratio_text=times(ratio),
            target=TARGETS["predict"],
            met=ratio >= TARGET_RATIO,
            figures={
                "images": len(paths),
                "source_width": 1920,
                "source_height": 1080,
                "image_size": size,
                "repeats_best_of": sizes.input_repeats,
                "batched_seconds": round(batched, 3),
                "batched_images_per_second": round(batched_rate, 1),
                "loop_seconds": round(loop, 3),
                "loop_images_per_second": round(loop_rate, 1),
            },
            note=(
                f"{len(paths)} JPEGs 1920x1080 classified at {size} by the default network; "
                "the model is loaded once on both sides."
            ),
        )
    ]
