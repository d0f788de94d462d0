"""Two local jobs at once, on a shared S3 server, with real-looking credentials planted in
the environment: both succeed, each on a network of its own, no container or compose file
ever holds the planted credentials, and nothing of either job is left behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from defects.testing.concurrent_runs import finish, start_runs

pytestmark = pytest.mark.container

JOBS = ("twin-a", "twin-b")
PLANTED = {
    "AWS_ACCESS_KEY_ID": "AKIAPLANTED000000001",
    "AWS_SECRET_ACCESS_KEY": "PLANTEDsecretPLANTEDsecretPLANTED",
    "AWS_SESSION_TOKEN": "PLANTEDsessionTOKEN",
}
# The network from scratch: these tests are of jobs side by side, not of a network.
TINY = ["--epochs", "1", "--image-size", "40x24", "--batch-size", "8", "--model", "scratch"]


def _docker(*arguments: str) -> str:
    return subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _project_filter(job: str) -> str:
    return f"label=com.docker.compose.project=sm-{job}"


@dataclass
class Seen:
    """What the jobs showed while they ran, and how they ended."""

    folder: Path
    outcomes: dict[str, tuple[int, str]] = field(default_factory=dict)
    # Container id -> its environment, as `docker inspect` shows it.
    environments: dict[str, list[str]] = field(default_factory=dict)
    # Job -> (mode, text) of its compose file, each time it was read.
    compose_files: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    networks: dict[str, list[str]] = field(default_factory=dict)


def _look(seen: Seen) -> None:
    for job in JOBS:
        for container in _docker("ps", "-aq", "--filter", _project_filter(job)).split():
            if container in seen.environments:
                continue
            try:
                details = json.loads(_docker("inspect", container))
            except subprocess.CalledProcessError:
                continue  # Removed between the listing and the look.
            seen.environments[container] = details[0]["Config"]["Env"]
            seen.networks.setdefault(job, []).extend(details[0]["NetworkSettings"]["Networks"])
        compose_file = seen.folder / "runs" / job / f"sm-{job}" / "docker-compose.yaml"
        try:
            mode = stat.S_IMODE(compose_file.stat().st_mode)
            seen.compose_files.setdefault(job, []).append((mode, compose_file.read_text()))
        except FileNotFoundError:
            pass


@pytest.fixture(scope="module")
def seen(
    tiny_photos: Path,
    moto_endpoint: str,
    training_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Seen:
    folder = tmp_path_factory.mktemp("twins")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **PLANTED,
        # A shared S3 server, as `defects s3 serve` gives one.
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "DEFECTS_BACKEND": "local",
        "DEFECTS_TRAINING_IMAGE": training_image,
    }
    arguments = ["--data", str(tiny_photos), *TINY]
    started = start_runs(folder, JOBS, arguments, environment)
    result = Seen(folder)
    deadline = time.monotonic() + 600
    while any(p.poll() is None for p in started.values()) and time.monotonic() < deadline:
        _look(result)
        time.sleep(0.3)
    result.outcomes = finish(folder, started, timeout=60)
    return result


def test_two_local_jobs_at_once_both_succeed(seen: Seen) -> None:
    for job, (returncode, output) in seen.outcomes.items():
        assert returncode == 0, output[-3000:]
        record = json.loads((seen.folder / "runs" / job / "job.json").read_text())
        assert record["status"] == "completed"


def test_each_job_ran_on_a_network_of_its_own(seen: Seen) -> None:
    assert seen.networks == {job: [f"sm-{job}_sagemaker-local"] for job in JOBS}


def test_no_container_got_the_planted_credentials(seen: Seen) -> None:
    assert len(seen.environments) == len(JOBS)
    for environment in seen.environments.values():
        credentials = sorted(e for e in environment if e.split("=", 1)[0] in PLANTED)
        assert credentials == ["AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing"]
        assert not any("PLANTED" in entry for entry in environment)


def test_compose_files_were_private_and_held_no_planted_credentials(seen: Seen) -> None:
    assert sorted(seen.compose_files) == sorted(JOBS)
    for readings in seen.compose_files.values():
        for mode, text in readings:
            assert mode == 0o600
            assert "PLANTED" not in text


def test_no_compose_file_and_no_planted_credential_is_left_in_runs(seen: Seen) -> None:
    runs = seen.folder / "runs"
    assert list(runs.rglob("docker-compose.yaml")) == []
    holding = [
        path for path in runs.rglob("*") if path.is_file() and b"PLANTED" in path.read_bytes()
    ]
    assert holding == []


def test_no_container_or_network_of_either_job_is_left(seen: Seen) -> None:
    for job in JOBS:
        assert _docker("ps", "-aq", "--filter", _project_filter(job)).split() == []
        assert _docker("network", "ls", "-q", "--filter", _project_filter(job)).split() == []
    assert "sagemaker-local" not in _docker("network", "ls", "--format", "{{.Name}}").split()


def test_four_more_rounds_of_two_local_jobs_leave_nothing_behind(
    seen: Seen, tiny_photos: Path, moto_endpoint: str, training_image: str, tmp_path: Path
) -> None:
    # With the round above, five rounds of two local jobs at once.
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "DEFECTS_BACKEND": "local",
        "DEFECTS_TRAINING_IMAGE": training_image,
    }
    arguments = ["--data", str(tiny_photos), *TINY]
    for round_number in range(2, 6):
        folder = tmp_path / f"round-{round_number}"
        folder.mkdir()
        finished = finish(folder, start_runs(folder, JOBS, arguments, environment), timeout=900)
        for job, (returncode, output) in finished.items():
            assert returncode == 0, (round_number, job, output[-3000:])
            assert _docker("ps", "-aq", "--filter", _project_filter(job)).split() == []
        networks = _docker("network", "ls", "--format", "{{.Name}}").split()
        assert not [name for name in networks if "sagemaker-local" in name], networks
