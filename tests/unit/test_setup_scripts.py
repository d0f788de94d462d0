"""scripts/bootstrap, scripts/defects and scripts/build-standin-image decide what to
download from what is already there: run on copies of the scripts, with a stand-in .venv,
docker and pip that record what they are asked (nothing is installed, built or fetched)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A Python that records its arguments and does what pip would say for an install.
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../calls"
case "$*" in
  *"pip install --progress-bar off -e"*)
    for n in $(seq 100); do echo "Collecting package$n"; done
    echo "Successfully installed alpha-1.0 beta-2.0 gamma-3.0"
    ;;
esac
"""


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the scripts and pyproject.toml beside a .venv whose python records its
    calls and whose defects command says it ran."""
    for name in ("scripts/bootstrap", "scripts/defects", "pyproject.toml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    _executable(tmp_path / ".venv" / "bin" / "python", FAKE_PYTHON)
    _executable(tmp_path / ".venv" / "bin" / "defects", '#!/bin/sh\necho "defects ran: $*"\n')
    return tmp_path


def _stamp(project: Path, *extras: str) -> None:
    digest = hashlib.sha256((project / "pyproject.toml").read_bytes()).hexdigest()
    (project / ".venv" / ".installed").write_text(
        "".join(f"{line}\n" for line in (digest, *extras))
    )


def _run(project: Path, *command: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable, **environment},
        check=True,
    )


def _calls(project: Path) -> list[str]:
    calls = project / ".venv" / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_the_sagemaker_backends_reuse_a_venv_set_up_for_the_tests(project: Path) -> None:
    _stamp(project, "test")  # What `scripts/bootstrap test` leaves; test includes sagemaker.
    finished = _run(project, "scripts/defects", "jobs", DEFECTS_BACKEND="local")
    assert finished.stdout == "defects ran: jobs\n"
    assert _calls(project) == []
    assert finished.stderr == ""


def test_a_missing_extra_is_installed_with_a_summary_instead_of_pips_lines(project: Path) -> None:
    _stamp(project)
    finished = _run(project, "scripts/bootstrap", "sagemaker")
    assert "-m pip install --progress-bar off -e .[sagemaker]" in _calls(project)
    assert "Collecting" not in finished.stderr
    lines = finished.stderr.splitlines()
    assert len(lines) == 3, finished.stderr
    assert "3 package(s) installed or updated" in lines[-1]
    assert (project / ".venv" / ".installed").read_text().splitlines()[1:] == ["sagemaker"]
    assert "Collecting package100" in (project / ".venv" / "pip.log").read_text()


# A docker that records its arguments, has the base image, and keeps the label of what it
# "built" in a file.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$FAKES/docker.calls"
name=$(eval echo \\${$#})
case "$1 $2" in
  "info "*) exit 0 ;;
  "image inspect")
    format=""
    [ "$3" = "--format" ] && format=$4
    if [ "$name" = "defects-base:bookworm" ]; then echo sha256:base; exit 0; fi
    [ -f "$FAKES/label" ] || exit 1
    case "$format" in
      *Labels*) cat "$FAKES/label" ;;
      *RepoTags*) echo 1 ;;
      *Size*) echo 2000000000 ;;
      *) echo sha256:image ;;
    esac ;;
  "build "*)
    for argument in "$@"; do
      case "$argument" in
        defects.inputs=*) echo "${argument#defects.inputs=}" > "$FAKES/label" ;;
      esac
    done ;;
  "run "*) echo 2.21.0 ;;
esac
exit 0
"""

# A Python 3.11 whose pip "downloads" one wheel and records that it did.
FAKE_WHEEL_PYTHON = """#!/bin/sh
echo "$*" >> "$FAKES/python.calls"
case "$*" in
  "-c "*) echo 3.11 ;;
  "-V") echo "Python 3.11.0" ;;
  *"pip wheel"*)
    while [ $# -gt 0 ]; do
      [ "$1" = "--wheel-dir" ] && touch "$2/fake-1.0-py3-none-any.whl"
      shift
    done ;;
esac
exit 0
"""


def test_an_up_to_date_standin_image_is_known_before_the_wheelhouse_is_downloaded(
    tmp_path: Path,
) -> None:
    repository = tmp_path / "repository"
    for name in ("scripts/build-standin-image", "containers/standin/Dockerfile"):
        (repository / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repository / name)
    fakes = tmp_path / "fakes"
    _executable(fakes / "bin" / "docker", FAKE_DOCKER)
    wheel_python = _executable(fakes / "python3.11", FAKE_WHEEL_PYTHON)
    environment = {
        **os.environ,
        "PATH": f"{fakes / 'bin'}:{os.environ['PATH']}",
        # Were the real docker reached all the same, it would find no engine.
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "FAKES": str(fakes),
        "WHEEL_PYTHON": str(wheel_python),
        "DEFECTS_STANDIN_CACHE": str(tmp_path / "cache"),
    }
    script = [str(repository / "scripts" / "build-standin-image"), "fake-standin:test"]

    built = subprocess.run(script, capture_output=True, text=True, env=environment)
    assert built.returncode == 0, built.stderr
    assert "pip wheel" in (fakes / "python.calls").read_text()
    assert (fakes / "label").is_file()

    # The wheelhouse is gone (a cleaned cache); the image is what the inputs make.
    shutil.rmtree(tmp_path / "cache" / "wheelhouse")
    (fakes / "python.calls").unlink()
    again = subprocess.run(script, capture_output=True, text=True, env=environment)
    assert again.returncode == 0, again.stderr
    assert "up to date: fake-standin:test" in again.stderr
    assert again.stdout == "fake-standin:test\n"
    assert not (fakes / "python.calls").exists()
    assert not (tmp_path / "cache" / "wheelhouse").exists()
