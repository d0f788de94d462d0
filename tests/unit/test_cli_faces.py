"""What a user meets first: help, version, warnings, exit statuses and --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI


def test_a_plain_dry_run_prints_no_warning(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("run", "--dry-run", "--per-class", "3", "--image-size", "40x24")
    assert code == 0
    assert json.loads(out)["backend"] == "process"
    assert "WARNING" not in err


def test_version(cli: CLI) -> None:
    from defects import __version__

    assert cli("--version") == (0, f"defects, version {__version__}\n", "")


def test_no_command_summary_is_cut_short(cli: CLI) -> None:
    code, out, _ = cli("--help")
    from defects.cli import cli as group

    commands = out.split("Commands:\n", 1)[1].splitlines()
    assert code == 0
    assert len(commands) == len(group.commands)
    assert [line for line in commands if line.endswith("...")] == []


def test_classes_has_a_placeholder_and_help(cli: CLI) -> None:
    _, out, _ = cli("run", "--help")
    assert "--classes NAMES" in out
    assert "_CLASSES" not in out
    assert "comma-separated" in out


def test_help_shows_no_restructured_text(cli: CLI) -> None:
    _, out, _ = cli("history", "--help")
    assert "``" not in out


def test_settings_options_show_their_variable_and_default_as_click_does(
    cli: CLI,
) -> None:
    _, out, _ = cli("config", "--help")
    flat = " ".join(out.split())
    assert "[env var: DEFECTS_RUNS_DIR; default: (runs)]" in flat
    assert "[default " not in flat


def test_config_json_says_where_each_value_came_from(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.defects]\nbucket = "team-bucket"\n')
    monkeypatch.setenv("DEFECTS_PREFIX", "exp")
    code, out, _ = cli("config", "--json", "--runs-dir", "elsewhere")
    values = json.loads(out)
    assert code == 0
    assert values["bucket"] == {
        "value": "team-bucket",
        "source": "file pyproject.toml [tool.defects]",
    }
    assert values["prefix"] == {"value": "exp", "source": "env DEFECTS_PREFIX"}
    assert values["runs_dir"] == {"value": "elsewhere", "source": "flag"}
    assert values["backend"] == {"value": "process", "source": "default"}


def test_config_lists_every_hyperparameter_of_the_schema(cli: CLI) -> None:
    from defects.training import contract

    code, out, _ = cli("config", "--json")
    described = json.loads(out)["hyperparameters"]
    assert code == 0
    assert list(described) == [spec.name for spec in contract.HYPERPARAMETERS]
    assert described["model"]["allowed"] == "one of efficientnet_lite0, scratch, article"
    assert described["batch_size"]["default"] == 32


def test_doctor_exits_0_when_the_chosen_backend_is_ready(
    cli: CLI,
) -> None:
    code, out, _ = cli("doctor", "--json")
    assert code == 0
    assert list(json.loads(out)) == ["process"]


def test_doctor_exits_1_when_a_check_of_the_chosen_backend_fails(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defects.backends import local

    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    code, out, _ = cli("doctor", "--backend", "local")
    assert code == 1
    assert "FAIL docker: the docker command is not installed" in out


def test_doctor_all_fails_when_any_backend_fails(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    from defects.backends import local

    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    code, out, _ = cli("doctor", "--all", "--json")
    report = json.loads(out)
    assert code == 1
    assert list(report) == ["process", "local", "sagemaker"]
    assert report["local"][0]["ok"] is False


def test_a_missing_sdk_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from defects.backends import create
    from defects.settings import resolve

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name.startswith("sagemaker") else real(name, *rest),
    )
    for name in ("local", "sagemaker"):
        [check] = create(resolve({"backend": name}, environ={})).checks()
        assert (check.name, check.ok) == ("SageMaker SDK", False)
        assert "pip install -e '.[sagemaker]'" in check.hint


def test_an_unknown_model_is_no_such_job(cli: CLI, tmp_path: Path) -> None:
    code, _, err = cli("evaluate", "nope", "--runs-dir", str(tmp_path))
    assert code == 1
    assert err.startswith("error: no such job\n")


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    heavy = ("sklearn", "tensorflow", "keras", "boto3", "moto", "PIL", "numpy", "pandas")
    code = f"import sys, defects.cli\nprint([name for name in {heavy!r} if name in sys.modules])"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_preparing_shows_the_number_of_files_as_the_bar_total(
    tiny_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import contextmanager

    from defects.dataset import steps

    totals: list[int | None] = []

    class Recorder:
        def __call__(self, steps: int = 1) -> None:
            pass

        def set_total(self, total: int) -> None:
            totals.append(total)

    @contextmanager
    def progress(description: str, total: int | None):  # type: ignore[no-untyped-def]
        totals.append(total)
        yield Recorder()

    monkeypatch.setattr(steps, "progress", progress)
    steps.prepare(tiny_photos, tmp_path / "prepared")
    assert totals == [None, 24]


def test_brackets_in_a_message_or_hint_are_printed_as_they_are(cli: CLI) -> None:
    code, _, err = cli("tune", "--dry-run")
    assert code != 0
    assert "or give --spec FILE with [ranges]." in " ".join(err.split())
