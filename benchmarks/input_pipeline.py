"""Images per second out of the entry point's tf.data pipeline vs. a per-file PIL loop.

Both read the same full-size 1920x1080 JPEGs and deliver ``(size, size, 3)`` uint8 images
at the default training size. The pipeline's figure is its first pass (every image decoded,
nothing from its cache), the dataset iterated to the end. The baseline is what the tutorials
do before ``model.fit``: open each file with PIL, convert to RGB, resize (Pillow's default
filter), ``np.asarray``, and stack. The files are read once beforehand so that both sides
find them in the page cache.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks import datasets
from benchmarks.context import Context
from benchmarks.report import Result, times
from defects.training import contract

KEYS = {"input_pipeline": "Input pipeline: tf.data vs PIL loop"}
TARGETS = {"input_pipeline": ">= 3x the PIL loop"}
TARGET_RATIO = 3.0


def _pipeline_seconds(paths: list[Path], shape: tuple[int, int], batch_size: int) -> float:
    from defects.training import batches

    labels = np.zeros(len(paths), np.int32)
    started = time.perf_counter()
    # A fresh dataset each time: nothing comes from an earlier pass's cache.
    dataset = batches.make_dataset([str(p) for p in paths], labels, shape, batch_size)
    delivered = sum(int(images.shape[0]) for images, _ in dataset)
    seconds = time.perf_counter() - started
    if delivered != len(paths):
        raise RuntimeError(f"the pipeline delivered {delivered} of {len(paths)} images")
    return seconds


def _pil_seconds(paths: list[Path], shape: tuple[int, int]) -> float:
    from PIL import Image

    height, width = shape
    started = time.perf_counter()
    arrays = []
    for path in paths:
        with Image.open(path) as image:
            arrays.append(np.asarray(image.convert("RGB").resize((width, height))))
    stacked = np.stack(arrays)
    seconds = time.perf_counter() - started
    if stacked.shape != (len(paths), height, width, 3):
        raise RuntimeError(f"the PIL loop produced {stacked.shape}")
    return seconds


def run(context: Context) -> list[Result]:
    sizes = context.sizes
    # What image_size=auto picks for 1920x1080 photos.
    size = contract.image_size_text(contract.auto_image_shape([(1920, 1080)]))
    shape = contract.image_shape(size)
    batch_size = int(contract.hyperparameter_defaults()["batch_size"])
    context.say(f"input pipeline: drawing or reusing {sizes.input_images} 1920x1080 JPEGs")
    paths = datasets.full_size_jpegs(context.data_dir, sizes.input_images)
    megabytes = sum(len(p.read_bytes()) for p in paths) / 1e6  # Also warms the page cache.
    # Warm TensorFlow up (thread pools, kernels) on two files, untimed.
    _pipeline_seconds(paths[:2], shape, batch_size)
    context.say(f"input pipeline: timing tf.data and PIL on {len(paths)} images")
    pipeline_seconds = min(
        _pipeline_seconds(paths, shape, batch_size) for _ in range(sizes.input_repeats)
    )
    pil_seconds = min(_pil_seconds(paths, shape) for _ in range(sizes.input_repeats))
    pipeline_rate = len(paths) / pipeline_seconds
    pil_rate = len(paths) / pil_seconds
    ratio = pipeline_rate / pil_rate
    return [
        Result(
            key="input_pipeline",
            benchmark="input",
            title=KEYS["input_pipeline"],
            measured=f"{pipeline_rate:.0f} img/s (data.make_dataset, first pass)",
            baseline=f"{pil_rate:.0f} img/s (PIL open/convert/resize/asarray loop)",
            ratio=ratio,
            ratio_text=times(ratio),
            target=TARGETS["input_pipeline"],
            met=ratio >= TARGET_RATIO,
            figures={
                "images": len(paths),
                "source_width": 1920,
                "source_height": 1080,
                "source_megabytes": round(megabytes, 1),
                "image_size": size,
                "batch_size": batch_size,
                "repeats_best_of": sizes.input_repeats,
                "pipeline_seconds": round(pipeline_seconds, 3),
                "pipeline_images_per_second": round(pipeline_rate, 1),
                "pil_seconds": round(pil_seconds, 3),
                "pil_images_per_second": round(pil_rate, 1),
                "pil_resample": "Pillow default (bicubic)",
            },
            note=(
                f"{len(paths)} JPEGs 1920x1080 to {size} px; the pipeline decodes at a reduced "
                "DCT scale, in parallel, in the TensorFlow graph."
            ),
        )
    ]
