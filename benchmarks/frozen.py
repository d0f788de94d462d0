"""The frozen-feature baseline of the quality benchmark: the pretrained backbone's pooled
features and a classifier trained on them alone (the first phase of the pretrained recipe,
without fine-tuning), in this process. Test answers are the mean over the image's views
(the eight orientations of a square image), as the trained models answer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from defects.dataset.manifest import PreparedDataset
from defects.training import contract


def frozen_figures(
    dataset: PreparedDataset, weights: Path, shape: tuple[int, int]
) -> dict[str, Any]:
    import keras
    import numpy as np

    from defects.training import batches, data, metrics, transfer
    from defects.training import model as models

    keras.utils.set_random_seed(0)
    channels = {split: data.read_channel(dataset.root / split) for split in ("train", "validation")}
    names = channels["train"].class_names
    test = data.read_channel(dataset.root / "test", names)
    validation = data.read_channel(dataset.root / "validation", names)
    started = time.perf_counter()
    network = transfer.make_network((*shape, 3), len(names), weights, "efficientnet_lite0")
    images = {
        name: batches.channel_batches(channel, shape, 32).dataset
        for name, channel in (("train", channels["train"]), ("validation", validation))
    }
    head = transfer.train_head(
        network,
        images["train"],
        channels["train"].labels,
        images["validation"],
        validation.labels,
        float(contract.HYPERPARAMETER_SCHEMA["learning_rate"].default),
        models.class_weights(channels["train"].labels, len(names)),
    )
    fit_seconds = time.perf_counter() - started
    answering = models.with_orientations(network) if shape[0] == shape[1] else network
    probabilities = answering.predict(batches.channel_batches(test, shape, 8).dataset, verbose=0)
    scores = metrics.classification_metrics(test.labels, np.argmax(probabilities, axis=1), names)
    return {
        "model": "frozen features",
        "image_size": contract.image_size_text(shape),
        "test_accuracy": scores["accuracy"],
        "test_macro_f1": scores["macro_f1"],
        "test_recall": {name: s["recall"] for name, s in scores["per_class"].items()},
        "fit_seconds": round(fit_seconds, 1),
        "train_images_per_second": round(len(channels["train"]) / max(fit_seconds, 1e-9), 1),
        "classifier": head,
    }
