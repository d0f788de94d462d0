"""The local backend: SageMaker local mode in the training container (needs Docker)."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from defects.errors import TrainingFailed
from defects.jobs.records import JobResult
from defects.pipeline import launch as pipeline
from defects.settings import resolve
from defects.storage import s3
from defects.training import contract
from tests.cli import run_cli
from tests.conftest import start_defects, use_moto

pytestmark = pytest.mark.container
# Not square, as the default is not: width 40, height 24.
TINY: dict[str, str | int] = {"epochs": 1, "image_size": "40x24", "batch_size": 8}


def _containers(job_name: str) -> set[str]:
    """Containers of one local job (its compose project), running or not."""
    listing = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project=sm-{job_name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listing.stdout.split())


def _job(
    backend: str,
    root: Path,
    photos: Path,
    endpoint: str,
    image: str | None,
    name: str,
    **hyperparameters: Any,
) -> JobResult:
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, endpoint)
        overrides = {"backend": backend, "runs_dir": root / "runs"}
        if image:
            monkeypatch.setenv("DEFECTS_TRAINING_IMAGE", image)
        return pipeline.run(
            data=photos,
            settings=resolve(overrides),
            hyperparameters={**TINY, **hyperparameters},
            job_name=name,
            data_dir=root / "data",
        )


def _layout(run_dir: Path) -> dict[str, Any]:
    def keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: keys(v) for k, v in sorted(value.items())}
        return type(value).__name__

    layout: dict[str, Any] = {}
    for archive in ("model.tar.gz", "output.tar.gz"):
        with tarfile.open(run_dir / archive) as tar:
            layout[archive] = sorted(tar.getnames())
    for name in ("history.json", "metrics.json"):
        layout[name] = keys(json.loads((run_dir / name).read_text()))
    layout["files"] = sorted(
        p.name for p in run_dir.iterdir() if p.is_file() and p.suffix != ".log"
    )
    return layout


@pytest.fixture(scope="module")
def jobs(
    tiny_photos: Path,
    moto_endpoint: str,
    training_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, JobResult]:
    """The same tiny job through every backend that can run here."""
    root = tmp_path_factory.mktemp("contract")
    finished = {
        backend: _job(
            backend,
            root,
            tiny_photos,
            moto_endpoint,
            training_image if backend == "local" else None,
            f"contract-{backend}",
        )
        for backend in ("process", "local")
    }
    assert _containers("contract-local") == set(), "the local job left containers behind"
    return finished


def test_every_backend_produces_the_same_artifact_layout(
    jobs: dict[str, JobResult],
) -> None:
    reference = _layout(jobs["process"].run_dir)
    assert _layout(jobs["local"].run_dir) == reference


def _arguments(run_dir: Path) -> list[str]:
    """What the entry point says it was started with (its first line of its own)."""
    lines = [
        line.split("Hyperparameters: ", 1)[1]
        for line in (run_dir / "job.log").read_text().splitlines()
        if "Hyperparameters: " in line
    ]
    assert len(lines) == 1, lines
    return lines


def test_process_and_local_pass_byte_identical_hyperparameter_arguments(
    jobs: dict[str, JobResult],
) -> None:
    process = _arguments(jobs["process"].run_dir)
    assert "--augment true" in process[0] and "--image_size 40x24" in process[0]
    assert _arguments(jobs["local"].run_dir) == process


def test_the_pretrained_weights_reach_the_entry_point_on_process_and_local(
    jobs: dict[str, JobResult],
) -> None:
    # The default model starts from ImageNet: the weights travel as the 'pretrained' channel,
    # and the entry point fails without them (tests/integration/test_pretrained_job.py).
    for backend, job in jobs.items():
        metrics = json.loads((job.run_dir / "metrics.json").read_text())
        assert metrics["model"] == contract.hyperparameter_defaults()["model"], backend
        assert metrics["classifier_on_frozen_features"]["epochs"] >= 1, backend
        record = json.loads((job.run_dir / "job.json").read_text())
        assert contract.PRETRAINED_CHANNEL in record["channels"], backend
        assert "frozen backbone's features" in (job.run_dir / "job.log").read_text(), backend


def test_local_model_loads_and_predicts_like_the_process_model(
    jobs: dict[str, JobResult],
) -> None:
    import keras

    # The model's own loss and layers are registered when their module is imported.
    import defects.training.model  # noqa: F401

    images = np.zeros((3, 24, 40, 3), dtype="uint8")
    shapes = {}
    for backend, job in jobs.items():
        model = keras.models.load_model(job.run_dir / "model" / "model.keras")
        assert model.input_shape == (None, 24, 40, 3)
        probabilities = model.predict(images, verbose=0)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
        shapes[backend] = probabilities.shape
        names = json.loads((job.run_dir / "model" / "class_names.json").read_text())
        assert names == ["good", "oil", "scratch", "stain"]
    assert shapes["local"] == shapes["process"] == (3, 4)


def test_local_job_leaves_no_containers_or_network(jobs: dict[str, JobResult]) -> None:
    project = f"sm-{jobs['local'].job_name}"
    listing = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.strip() == ""
    networks = subprocess.run(
        ["docker", "network", "ls", "--format", "{{.Name}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "sagemaker-local" not in networks


def test_local_failure_reports_the_entry_points_reason(
    tiny_photos: Path, moto_endpoint: str, training_image: str, tmp_path: Path
) -> None:
    # The host accepts the job; the entry point in the container finds a broken shard.
    from defects import backends
    from defects.dataset import steps
    from defects.storage import S3Uri

    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        monkeypatch.setenv("DEFECTS_TRAINING_IMAGE", training_image)
        backend = backends.create(resolve({"backend": "local", "runs_dir": tmp_path / "runs"}))
        dataset = steps.prepare(tiny_photos, data_dir=tmp_path / "data")
        with backend.open_storage() as store:
            channels = steps.stage(dataset, store)
            train = S3Uri.parse(channels["train"])
            key = next(k for k in s3.list_etags(store.s3, train) if k.endswith(".tar"))
            store.s3.put_object(Bucket=train.bucket, Key=key, Body=b"not a tar archive")
            with pytest.raises(TrainingFailed) as caught:
                pipeline.train(
                    channels, store, backend, contract.complete_hyperparameters(TINY), "failing-job"
                )
    assert "Could not read the channel" in caught.value.message
    assert _containers("failing-job") == set()


def test_stale_files_never_reach_a_new_model_archive(
    jobs: dict[str, JobResult],
    tiny_photos: Path,
    moto_endpoint: str,
    training_image: str,
    tmp_path: Path,
) -> None:
    # A leftover in a job's container root (as the SDK leaves model/ behind) must not leak.
    first = _job("local", tmp_path, tiny_photos, moto_endpoint, training_image, "stale-a")
    leftover = first.run_dir / f"sm-{first.job_name}" / "model"
    leftover.mkdir(parents=True, exist_ok=True)
    (leftover / "stale.txt").write_text("old")
    second = _job("local", tmp_path, tiny_photos, moto_endpoint, training_image, "stale-b")
    with tarfile.open(second.run_dir / "model.tar.gz") as tar:
        assert "stale.txt" not in tar.getnames()


def test_missing_image_names_the_build_command(training_image: str, tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DEFECTS_BACKEND", "local")
        monkeypatch.setenv("DEFECTS_TRAINING_IMAGE", "defects-no-such-image:0")
        code, _, err = run_cli(
            "run", "--epochs", "1", "--per-class", "3", "--runs-dir", str(tmp_path)
        )
    assert code == 1
    assert "scripts/build-standin-image" in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_ctrl_c_stops_the_job_and_removes_its_containers(
    tiny_photos: Path, moto_endpoint: str, training_image: str, tmp_path: Path
) -> None:
    import os
    import signal
    import time

    # Like a terminal's Ctrl-C: SIGINT to the whole process group (defects and compose).
    process = start_defects(
        "run",
        "--data",
        str(tiny_photos),
        "--epochs",
        "200",
        "--image-size",
        "32",
        "--job-name",
        "interrupted",
        "--runs-dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
        environment={"DEFECTS_BACKEND": "local", "DEFECTS_TRAINING_IMAGE": training_image},
    )
    log = tmp_path / "runs" / "interrupted" / "job.log"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if log.is_file() and "Epoch 2/" in log.read_text():
            break
        if process.poll() is not None:
            pytest.fail(f"the job ended early: {process.stdout.read() if process.stdout else ''}")
        time.sleep(1)
    else:
        process.kill()
        pytest.fail("the job never reached its second epoch")
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 130, output[-2000:]
    assert "Traceback" not in output
    assert _containers("interrupted") == set()
    record = json.loads((tmp_path / "runs" / "interrupted" / "job.json").read_text())
    assert record["status"] == "interrupted"
