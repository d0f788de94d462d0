"""The training pipeline's augmentation: seeded, varied, and never the label or the size."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from defects.training import batches as batching  # noqa: E402
from defects.training import data  # noqa: E402


def _photo(size: int = 48) -> np.ndarray:
    # A bright asymmetric mark on a dark screen, so that every flip and rotation shows.
    image = np.full((size, size, 3), 20, np.uint8)
    image[5:12, 8:30] = 230
    image[30:40, 36:40] = 120
    return image


def _dataset(seed: int, augmented: bool = True, first: int = 0) -> list[np.ndarray]:
    images = np.stack([_photo()] * 8)
    labels = np.arange(8, dtype=np.int32)
    pairs = tf.data.Dataset.from_tensor_slices((images, labels))
    batches = batching.batches(
        pairs, 8, batch_size=8, seed=seed, augmented=augmented, epochs=range(first, 2)
    )
    epochs = []
    for batch, batch_labels in batches:
        assert batch.dtype == tf.uint8 and tuple(batch.shape) == (8, 48, 48, 3)
        assert batch_labels.numpy().tolist() == list(range(8))
        epochs.append(batch.numpy())
    return epochs


def test_the_same_seed_gives_the_same_images_epoch_after_epoch() -> None:
    first, second = _dataset(seed=3), _dataset(seed=3)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_later_start_draws_the_same_epochs_as_a_full_run() -> None:
    # What a resumed run relies on: epoch 2 does not depend on epoch 1 having been drawn.
    (second_epoch,) = _dataset(seed=3, first=1)
    np.testing.assert_array_equal(second_epoch, _dataset(seed=3)[1])


def test_shuffled_epochs_differ_and_resume_at_the_same_order() -> None:
    pairs = tf.data.Dataset.from_tensor_slices((np.zeros((8, 2, 2, 3), np.uint8), np.arange(8)))
    full = [
        labels.numpy().tolist()
        for _, labels in batching.batches(
            pairs, 8, batch_size=8, shuffle=True, seed=5, epochs=range(3)
        )
    ]
    resumed = [
        labels.numpy().tolist()
        for _, labels in batching.batches(
            pairs, 8, batch_size=8, shuffle=True, seed=5, epochs=range(2, 3)
        )
    ]
    assert len({tuple(order) for order in full}) == 3
    assert resumed == full[2:]


def test_images_vary_between_draws_epochs_and_seeds() -> None:
    epoch_one, epoch_two = _dataset(seed=3)
    other_seed, _ = _dataset(seed=4)
    assert len({image.tobytes() for image in epoch_one}) > 4
    assert not np.array_equal(epoch_one, epoch_two)
    assert not np.array_equal(epoch_one, other_seed)
    # Small changes: a variant keeps the photo's overall light.
    assert abs(float(epoch_one.mean()) - float(_photo().mean())) < 10


def test_without_augmentation_the_images_pass_unchanged() -> None:
    for batch in _dataset(seed=3, augmented=False):
        for image in batch:
            np.testing.assert_array_equal(image, _photo())


def test_rotation_turns_the_image_about_its_centre() -> None:
    image = tf.constant(_photo().astype(np.float32))
    quarter = data._rotate(image, tf.constant(np.pi / 2, tf.float32)).numpy()
    np.testing.assert_allclose(quarter, np.rot90(_photo(), k=1).astype(np.float32), atol=1e-3)
    unchanged = data._rotate(image, tf.constant(0.0)).numpy()
    np.testing.assert_allclose(unchanged, _photo().astype(np.float32), atol=1e-3)


def _variants(image: np.ndarray, draws: int = 64) -> list[np.ndarray]:
    return [
        data.augment(tf.constant(image), tf.constant([7, draw], tf.int64)).numpy()
        for draw in range(draws)
    ]


def _bright_box(image: np.ndarray) -> tuple[int, int]:
    """Height and width of the box around the bright mark (the 230 one of ``_photo``)."""
    rows, columns = np.nonzero(image[..., 0] > 180)
    return int(np.ptp(rows)) + 1, int(np.ptp(columns)) + 1


def test_square_images_take_quarter_turns_without_interpolation() -> None:
    variants = _variants(_photo())
    boxes = {_bright_box(variant) for variant in variants}
    # The mark is 7 rows by 22 columns: turned a quarter it stands 22 high.
    assert boxes == {(7, 22), (22, 7)}
    for variant in variants:
        assert variant.shape == (48, 48, 3)
        # Turns and flips move pixels whole: the three grey levels stay three (contrast and
        # brightness shift them), where a rotation would interpolate new ones.
        assert len(np.unique(variant)) <= 3


def test_other_shapes_keep_their_orientation_and_rotate_a_little() -> None:
    wide = np.concatenate([_photo(), _photo()[:, :32]], axis=1)
    variants = _variants(wide)
    for variant in variants:
        assert variant.shape == (48, 80, 3)
        height, width = _bright_box(variant)
        assert height < width
    assert any(len(np.unique(variant)) > 3 for variant in variants)
