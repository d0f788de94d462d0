"""The settings file: ``defects.toml`` or ``[tool.defects]`` in ``pyproject.toml``, between
the environment and the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from defects.errors import ConfigError
from defects.settings import resolve


def test_pyproject_tool_table_sets_a_value_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.defects]\nbucket = "team-bucket"\nruns-dir = "out"\n'
    )
    settings = resolve(environ={}, directory=tmp_path)
    assert (settings.bucket, settings.runs_dir) == ("team-bucket", Path("out"))
    assert settings.sources["bucket"] == "file pyproject.toml [tool.defects]"
    assert settings.sources["prefix"] == "default"


def test_defects_toml_comes_before_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.defects]\nprefix = "from-pyproject"\n')
    (tmp_path / "defects.toml").write_text('prefix = "from-defects-toml"\n')
    settings = resolve(environ={}, directory=tmp_path)
    assert settings.prefix == "from-defects-toml"
    assert settings.sources["prefix"] == "file defects.toml"


def test_environment_comes_before_the_file(tmp_path: Path) -> None:
    (tmp_path / "defects.toml").write_text('backend = "local"\n')
    settings = resolve(environ={"DEFECTS_BACKEND": "process"}, directory=tmp_path)
    assert settings.backend == "process"
    assert settings.sources["backend"] == "env DEFECTS_BACKEND"


def test_a_file_value_is_checked_like_any_other(tmp_path: Path) -> None:
    (tmp_path / "defects.toml").write_text('bucket = "Not_A_Bucket"\n')
    with pytest.raises(ConfigError, match="not a valid S3 bucket name"):
        resolve(environ={}, directory=tmp_path)


def test_an_unknown_key_names_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "defects.toml").write_text('buckets = "x"\n')
    with pytest.raises(ConfigError) as raised:
        resolve(environ={}, directory=tmp_path)
    assert raised.value.message == f"{tmp_path / 'defects.toml'} sets unknown setting(s): buckets."
    assert "bucket, prefix" in raised.value.hint


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "defects.toml").write_text("backend = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        resolve(environ={}, directory=tmp_path)


def test_a_pyproject_without_the_table_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert resolve(environ={}, directory=tmp_path).sources["bucket"] == "default"
