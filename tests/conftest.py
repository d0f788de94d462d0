"""Shared fixtures: a clean environment, a moto S3 server, and small synthetic datasets."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DEFECTS_* or AWS_* setting of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("DEFECTS_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server on 127.0.0.1 for the whole session (reset it with ``s3_endpoint``)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def use_moto(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> str:
    """Reset the moto server and point every AWS client (with fake credentials) at it."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    ).close()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return endpoint


@pytest.fixture
def s3_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A freshly reset moto server, with fake credentials, that the tool will use."""
    return use_moto(monkeypatch, moto_endpoint)


@pytest.fixture(scope="session")
def tiny_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small synthetic photos per class, in the Kaggle layout."""
    from defects.dataset.synth import synthesize

    root = tmp_path_factory.mktemp("tiny") / "photos"
    synthesize(root, per_class=6, seed=3, width=160, height=90)
    return root


STANDIN_IMAGE = "defects-tf-training:2.21-cpu-py311-standin"


@pytest.fixture(scope="session")
def training_image() -> str:
    """The training image for container tests; skips (or fails, in CI) when unavailable."""
    import shutil
    import subprocess

    required = os.environ.get("DEFECTS_REQUIRE_CONTAINER_TESTS", "").lower() in {"1", "true"}
    image = os.environ.get("DEFECTS_TEST_TRAINING_IMAGE", STANDIN_IMAGE)

    def unavailable(reason: str) -> None:
        if required:
            pytest.fail(f"container tests are required here but {reason}")
        pytest.skip(reason)

    if not shutil.which("docker"):
        unavailable("no docker command (install Docker; see scripts/start-docker)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        unavailable("no Docker engine answers (start one with scripts/start-docker)")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        unavailable(f"the training image {image} is missing (scripts/build-standin-image)")
    return image


# Runs ``defects ARGS...``; gives the exit status, stdout and stderr.
CLI = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli() -> CLI:
    """Runs ``defects ARGS...`` in this process; returns the exit status, stdout and stderr."""
    from tests.cli import run_cli

    return run_cli


def start_defects(
    *arguments: str, cwd: Path, environment: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``python -m defects ARGUMENTS...`` in its own process group (as a service manager
    starts it: a shell's background job would ignore SIGINT), with none of this machine's
    AWS or DEFECTS settings but ``environment``; its output in one text stream."""
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEFECTS_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "defects", *arguments],
        cwd=cwd,
        env={**clean, **(environment or {})},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_checkpoint(process: subprocess.Popen[str], run_dir: Path, epoch: int) -> None:
    """Wait until the job at ``run_dir`` has saved the checkpoint of ``epoch``."""
    import json
    import time

    state = run_dir / "opt" / "ml" / "checkpoints" / "state.json"
    deadline = time.monotonic() + 300
    while not (state.is_file() and json.loads(state.read_text())["epoch"] >= epoch):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the job never saved epoch {epoch}: " + process.communicate()[0])
        time.sleep(0.05)


def entry_points(run_dir: Path) -> list[int]:
    """Processes running the entry point of the job in ``run_dir``."""
    script = str((run_dir / "code" / "train.py").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and script in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition`` came true within ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
