"""The network's own layers: the orientation mean of square inputs and the smoothed loss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from defects.training import model as models


def _orientations(images: np.ndarray) -> list[np.ndarray]:
    turned = images.transpose(0, 2, 1, 3)
    return [
        view
        for image in (images, turned)
        for view in (image, image[:, ::-1], image[:, :, ::-1], image[:, ::-1, ::-1])
    ]


@pytest.fixture(scope="module")
def network() -> keras.Model:
    keras.utils.set_random_seed(0)
    return models.make_model((16, 16, 3), 3)


def test_the_orientation_model_answers_the_mean_over_the_eight_orientations(
    network: keras.Model,
) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3)).astype("float32")
    answered = models.with_orientations(network).predict(images, verbose=0)
    expected = np.mean([network.predict(view, verbose=0) for view in _orientations(images)], 0)
    np.testing.assert_allclose(answered, expected, atol=1e-6)
    # Each of the eight views is an image the plain network answers differently.
    single = network.predict(images, verbose=0)
    assert not np.allclose(answered, single, atol=1e-6)
    # An image and its turned copy get the same answer.
    turned = np.rot90(images, 1, axes=(1, 2)).copy()
    np.testing.assert_allclose(
        models.with_orientations(network).predict(turned, verbose=0), answered, atol=1e-5
    )


def test_the_orientation_model_loads_in_a_fresh_process(
    network: keras.Model, tmp_path: Path
) -> None:
    path = tmp_path / "model.keras"
    wrapped = models.with_orientations(network)
    wrapped.save(path)
    images = np.full((2, 16, 16, 3), 100, dtype="float32")
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np\n"
        "from defects.inference.loading import load_model\n"
        "loaded = load_model(sys.argv[1])\n"
        "print(loaded.model.predict(np.load(sys.argv[2]), verbose=0).tolist())\n"
    )
    folder = tmp_path / "job" / "model"
    folder.mkdir(parents=True)
    path.rename(folder / "model.keras")
    (folder / "class_names.json").write_text('["a", "b", "c"]')
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(tmp_path / "images.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answered = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(answered, wrapped.predict(images, verbose=0), atol=1e-6)


def test_the_smoothed_loss_spreads_part_of_each_label() -> None:
    loss = models.SmoothedCrossentropy(smoothing=0.1)
    probabilities = np.array([[0.7, 0.2, 0.1]], dtype="float32")
    # Targets 0.1/3 each plus 0.9 on the label.
    targets = np.array([0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3])
    expected = -np.sum(targets * np.log(probabilities[0]))
    assert float(loss(np.array([0]), probabilities)) == pytest.approx(expected, rel=1e-5)
    restored = models.SmoothedCrossentropy.from_config(loss.get_config())
    assert restored.smoothing == 0.1


def test_class_weights_make_a_rare_class_count_as_much_as_a_common_one() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    weights = models.class_weights(labels, 2)
    # Each class's total weight is the same: 90 * w0 == 10 * w1.
    assert 90 * weights[0] == pytest.approx(10 * weights[1])
    # The mean weight over the images stays 1, so the loss keeps its scale.
    assert (90 * weights[0] + 10 * weights[1]) / 100 == pytest.approx(1.0)


def test_class_weights_of_balanced_data_are_one() -> None:
    weights = models.class_weights(np.array([0, 1, 2, 3] * 5), 4)
    assert weights == pytest.approx({0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
