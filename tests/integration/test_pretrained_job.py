"""The pretrained network on the process backend: its ImageNet weights reach the entry point
as the pretrained channel; it trains, resumes as an unbroken run does, predicts and
evaluates; a damaged or missing weights file is named with the fix."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from defects.training import contract
from defects.training.interruption import EXIT_STATUS
from tests import entrypoint

pytestmark = pytest.mark.slow
MODEL = ["--model", "efficientnet_lite0", "--image_size", "64x48", "--batch_size", "8"]


@pytest.fixture(scope="module")
def channels(tiny_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny photos prepared, and the pretrained channel as the host stages it."""
    from defects.dataset.prepare import prepare
    from defects.dataset.steps import weights_files

    data_dir = tmp_path_factory.mktemp("data")
    dataset = prepare(tiny_photos, data_dir=data_dir)
    pretrained = tmp_path_factory.mktemp("pretrained")
    for name, path in weights_files(["efficientnet_lite0"], data_dir).items():
        shutil.copyfile(path, pretrained / name)
    return {
        **{split: dataset.root / split for split in ("train", "validation", "test")},
        contract.PRETRAINED_CHANNEL: pretrained,
    }


def _start(base: Path, channels: dict[str, Path], *arguments: str) -> subprocess.Popen[str]:
    return entrypoint.start(base, channels, *MODEL, *arguments)


def test_a_pretrained_run_resumed_after_sigterm_ends_like_an_unbroken_one(
    channels: dict[str, Path], tmp_path: Path
) -> None:
    interrupted = tmp_path / "interrupted" / "ml"
    process = _start(interrupted, channels, "--epochs", "3")
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Epoch 2/3"):
            break
    else:
        pytest.fail("the entry point ended before its second epoch: " + "".join(seen)[-3000:])
    process.send_signal(signal.SIGTERM)
    output = "".join(seen) + process.communicate(timeout=120)[0]
    assert process.returncode == EXIT_STATUS, output[-3000:]
    assert "Trained the classifier on the frozen backbone's features" in output

    resumed = entrypoint.finish(_start(interrupted, channels, "--epochs", "3"))
    # Past the first phase: the resumed run goes on with the whole network.
    assert "Trained the classifier" not in resumed
    unbroken = tmp_path / "unbroken" / "ml"
    entrypoint.finish(_start(unbroken, channels, "--epochs", "3"))
    got, expected = entrypoint.history(interrupted), entrypoint.history(unbroken)
    assert got["epoch"] == expected["epoch"] == [1, 2, 3]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert got[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-5), key
    metrics = json.loads((unbroken / "output" / "data" / "metrics.json").read_text())
    assert metrics["model"] == "efficientnet_lite0"
    assert metrics["classifier_on_frozen_features"]["epochs"] >= 1


def test_damaged_weights_are_named_with_the_fix(channels: dict[str, Path], tmp_path: Path) -> None:
    damaged = tmp_path / "pretrained"
    shutil.copytree(channels[contract.PRETRAINED_CHANNEL], damaged)
    weights = damaged / contract.weights_name("efficientnet_lite0")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    base = tmp_path / "ml"
    process = _start(base, {**channels, contract.PRETRAINED_CHANNEL: damaged}, "--epochs", "1")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output[-3000:]
    failure = (base / contract.FAILURE_PATH).read_text()
    assert "are damaged or were changed" in failure and "data/pretrained/" in failure
    assert "Traceback" not in output


def test_without_the_pretrained_channel_the_entry_point_says_where_the_weights_go(
    channels: dict[str, Path], tmp_path: Path
) -> None:
    without = {k: v for k, v in channels.items() if k != contract.PRETRAINED_CHANNEL}
    base = tmp_path / "ml"
    process = _start(base, without, "--epochs", "1")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output[-3000:]
    assert "SM_CHANNEL_PRETRAINED" in (base / contract.FAILURE_PATH).read_text()


def test_a_pretrained_job_trains_predicts_and_evaluates(
    tiny_photos: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    from defects.inference.evaluation import evaluate
    from defects.inference.prediction import predict
    from defects.pipeline import launch as pipeline
    from defects.settings import resolve

    result = pipeline.run(
        data=tiny_photos,
        settings=resolve({"runs_dir": tmp_path / "runs"}),
        hyperparameters={"model": "efficientnet_lite0", "epochs": 1, "image_size": "64x48"},
        job_name="pretrained",
        data_dir=tmp_path / "data",
    )
    record = json.loads((result.run_dir / "job.json").read_text())
    assert record["channels"]["pretrained"].startswith("s3://defects/defects/pretrained/")
    photo = sorted((tiny_photos / "oil").iterdir())[0]
    (answer,) = list(predict(result.run_dir, [photo]))
    assert answer.label in {"good", "oil", "scratch", "stain"} and not answer.error
    scored = evaluate(result.run_dir)
    assert 0.0 <= scored.accuracy <= 1.0
    assert scored.metrics["count"] == 4
