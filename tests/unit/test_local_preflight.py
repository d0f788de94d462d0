from pathlib import Path

import pytest

from defects.backends.local import LocalBackend, project_name
from defects.errors import BackendError
from defects.settings import resolve


def test_no_docker_command_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    backend = LocalBackend(resolve({"backend": "local"}))
    with pytest.raises(BackendError) as caught:
        backend.check()
    assert "docker command is not installed" in caught.value.message
    assert "scripts/start-docker" in caught.value.hint


def test_project_name_follows_the_root_folder() -> None:
    assert project_name(Path("/x/sm-Defects-2026_a.b")) == "sm-defects-2026_ab"


def test_official_cpu_image_for_local_cpu() -> None:
    backend = LocalBackend(
        resolve({"backend": "local"}, environ={"DEFECTS_INSTANCE_TYPE": "local_cpu"})
    )
    assert backend.image.endswith("/tensorflow-training:2.21-cpu-py312")


def test_training_image_setting_wins() -> None:
    settings = resolve({"backend": "local"}, environ={"DEFECTS_TRAINING_IMAGE": "mine:1"})
    assert LocalBackend(settings).image == "mine:1"
