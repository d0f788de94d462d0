"""Settings: one frozen object, resolved once at the CLI boundary.

Each value comes from the first of: a CLI flag, an environment variable, the settings file,
a default. The source is remembered so that ``defects config`` can say where every value came
from.

The settings file is ``defects.toml`` in the working folder (settings at its top level), or
else the ``[tool.defects]`` table of the working folder's ``pyproject.toml``; its keys are
the setting names below (``runs_dir`` or ``runs-dir``)::

    [tool.defects]
    backend = "local"
    bucket = "team-bucket"

| setting | environment | default |
|---|---|---|
| backend | ``DEFECTS_BACKEND`` | ``process`` |
| bucket | ``DEFECTS_BUCKET`` | ``defects`` (embedded S3); the SageMaker default bucket (cloud) |
| prefix | ``DEFECTS_PREFIX`` | ``defects`` |
| region | ``AWS_REGION``, ``AWS_DEFAULT_REGION`` | ``us-east-1`` |
| runs_dir | ``DEFECTS_RUNS_DIR`` | ``runs`` |
| s3_endpoint | ``AWS_ENDPOINT_URL_S3`` | embedded (``process``, ``local``); AWS (``sagemaker``) |
| training_image | ``DEFECTS_TRAINING_IMAGE`` | the official TensorFlow training image |
| instance_type | ``DEFECTS_INSTANCE_TYPE`` | ``local_cpu``/``local_gpu``; ``ml.g4dn.xlarge`` |
| role_arn | ``DEFECTS_ROLE_ARN`` | none |
| confirm_above_usd | ``DEFECTS_CONFIRM_ABOVE_USD`` | 10 (a dearer paid launch asks first) |
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from defects.errors import ConfigError

DEFAULT_BACKEND = "process"
DEFAULT_REGION = "us-east-1"
EMBEDDED_BUCKET = "defects"

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(text: str, name: str) -> bool:
    """Parse a boolean the way people write it; ``"false"`` is false."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(
        f"{name} is {text!r}, which is not a boolean.",
        hint="Use one of 1/0, true/false, yes/no, on/off.",
    )


def _backend(value: str) -> str:
    # Checked against the registry where the backend is made (defects.backends.create).
    return value.strip().lower()


def _bucket(value: str) -> str:
    if not _BUCKET_NAME.match(value) or ".." in value:
        raise ConfigError(
            f"{value!r} is not a valid S3 bucket name.",
            hint="Bucket names are 3-63 characters: lower-case letters, digits, dots and "
            "hyphens, starting and ending with a letter or digit.",
        )
    return value


def _prefix(value: str) -> str:
    cleaned = value.strip("/")
    if not cleaned or "//" in cleaned:
        raise ConfigError(
            f"{value!r} is not a usable S3 key prefix.",
            hint="Use a non-empty path such as 'defects' or 'team/defects'.",
        )
    return cleaned


def _role_arn(value: str) -> str:
    if not _ROLE_ARN.match(value):
        raise ConfigError(
            f"{value!r} is not an IAM role ARN.",
            hint="DEFECTS_ROLE_ARN looks like arn:aws:iam::123456789012:role/SageMakerExecution.",
        )
    return value


def _text(value: str) -> str:
    return value.strip()


def _usd(value: str) -> float:
    try:
        amount = float(value)
    except ValueError:
        amount = -1.0
    if not amount >= 0:
        raise ConfigError(
            f"{value!r} is not an amount of US dollars.",
            hint="DEFECTS_CONFIRM_ABOVE_USD takes a number such as 10 or 2.5 (0 asks always).",
        )
    return amount


@dataclass(frozen=True)
class _Spec:
    environment: tuple[str, ...]
    parse: Callable[[str], Any]
    default: Any = None


_SPECS: dict[str, _Spec] = {
    "backend": _Spec(("DEFECTS_BACKEND",), _backend, DEFAULT_BACKEND),
    "bucket": _Spec(("DEFECTS_BUCKET",), _bucket),
    "prefix": _Spec(("DEFECTS_PREFIX",), _prefix, "defects"),
    "region": _Spec(("AWS_REGION", "AWS_DEFAULT_REGION"), _text, DEFAULT_REGION),
    "runs_dir": _Spec(("DEFECTS_RUNS_DIR",), Path, Path("runs")),
    "s3_endpoint": _Spec(("AWS_ENDPOINT_URL_S3",), _text),
    "training_image": _Spec(("DEFECTS_TRAINING_IMAGE",), _text),
    "instance_type": _Spec(("DEFECTS_INSTANCE_TYPE",), _text),
    "role_arn": _Spec(("DEFECTS_ROLE_ARN",), _role_arn),
    "confirm_above_usd": _Spec(("DEFECTS_CONFIRM_ABOVE_USD",), _usd, 10.0),
}


@dataclass(frozen=True)
class Settings:
    """Where the job runs and where its data lives. Build it with :func:`resolve`."""

    backend: str = DEFAULT_BACKEND
    bucket: str | None = None
    prefix: str = "defects"
    region: str = DEFAULT_REGION
    runs_dir: Path = Path("runs")
    s3_endpoint: str | None = None
    training_image: str | None = None
    instance_type: str | None = None
    role_arn: str | None = None
    confirm_above_usd: float = 10.0
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def described(self) -> list[tuple[str, str, str]]:
        """Rows of (setting, value, source) for ``defects config``."""
        rows = []
        for spec_field in fields(self):
            if spec_field.name == "sources":
                continue
            value = getattr(self, spec_field.name)
            shown = "(unset)" if value is None else str(value)
            rows.append((spec_field.name, shown, self.sources.get(spec_field.name, "default")))
        return rows


SETTINGS_FILE = "defects.toml"
PROJECT_FILE = "pyproject.toml"


def read_settings_file(directory: Path | None = None) -> tuple[dict[str, str], str]:
    """The settings of ``defects.toml``, else of ``[tool.defects]`` in ``pyproject.toml``,
    in ``directory`` (the working folder), with the source to show; empty when neither has
    any."""
    directory = Path.cwd() if directory is None else directory
    for name, table in ((SETTINGS_FILE, ()), (PROJECT_FILE, ("tool", "defects"))):
        path = directory / name
        if not path.is_file():
            continue
        try:
            document: Any = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(
                f"The settings file {path} is not valid TOML: {error}.",
                hint="Fix the file (see https://toml.io), or move it away.",
            ) from None
        for key in table:
            document = document.get(key, {}) if isinstance(document, dict) else {}
        if not isinstance(document, dict) or not document:
            continue
        label = f"file {name}" + (" [tool.defects]" if table else "")
        values = {str(key).replace("-", "_"): value for key, value in document.items()}
        unknown = sorted(set(values) - set(_SPECS))
        if unknown:
            raise ConfigError(
                f"{path} sets unknown setting(s): {', '.join(unknown)}.",
                hint=f"Known settings: {', '.join(_SPECS)}.",
            )
        return {key: str(value) for key, value in values.items()}, label
    return {}, ""


def resolve(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Settings:
    """Resolve every setting: CLI flag > environment > settings file (in ``directory``, the
    working folder by default) > default."""
    overrides = overrides or {}
    environ = os.environ if environ is None else environ
    unknown = set(overrides) - set(_SPECS)
    if unknown:
        raise ConfigError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
    from_file, file_label = read_settings_file(directory)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, spec in _SPECS.items():
        flag_value = overrides.get(name)
        if flag_value is not None:
            values[name] = spec.parse(str(flag_value))
            sources[name] = "flag"
            continue
        for variable in spec.environment:
            text = environ.get(variable)
            if text is not None and text.strip():
                values[name] = spec.parse(text)
                sources[name] = f"env {variable}"
                break
        else:
            if name in from_file:
                values[name] = spec.parse(from_file[name])
                sources[name] = file_label
            else:
                values[name] = spec.default
                sources[name] = "default"
    return Settings(**values, sources=sources)
