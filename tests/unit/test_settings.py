from pathlib import Path

import pytest

from defects.errors import ConfigError
from defects.settings import parse_bool, resolve


def test_defaults_when_nothing_is_set() -> None:
    settings = resolve(environ={})
    assert settings.backend == "process"
    assert settings.region == "us-east-1"
    assert settings.runs_dir == Path("runs")
    assert settings.sources["backend"] == "default"


def test_environment_overrides_default() -> None:
    settings = resolve(environ={"DEFECTS_BACKEND": "local", "DEFECTS_PREFIX": "team/x/"})
    assert settings.backend == "local"
    assert settings.prefix == "team/x"
    assert settings.sources["backend"] == "env DEFECTS_BACKEND"


def test_flag_overrides_environment() -> None:
    settings = resolve({"backend": "process"}, environ={"DEFECTS_BACKEND": "local"})
    assert settings.backend == "process"
    assert settings.sources["backend"] == "flag"


def test_region_from_standard_aws_variables() -> None:
    assert resolve(environ={"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    both = {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert resolve(environ=both).region == "eu-central-1"


def test_unknown_backend_names_the_allowed_ones() -> None:
    from defects.backends import create

    with pytest.raises(ConfigError) as caught:
        create(resolve(environ={"DEFECTS_BACKEND": "kubernetes"}))
    assert "process, local, sagemaker" in caught.value.hint
    assert caught.value.exit_code == 2


def test_backend_name_is_case_insensitive() -> None:
    assert resolve(environ={"DEFECTS_BACKEND": "SageMaker"}).backend == "sagemaker"


@pytest.mark.parametrize("name", ["UPPER", "ab", "a_b_c", "-start", "x" * 64])
def test_invalid_bucket_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        resolve(environ={"DEFECTS_BUCKET": name})


def test_malformed_role_arn_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"DEFECTS_ROLE_ARN": "my-role"})
    assert "arn:aws:iam::" in caught.value.hint


def test_role_arn_accepted() -> None:
    arn = "arn:aws:iam::123456789012:role/service-role/SageMaker-Exec"
    assert resolve(environ={"DEFECTS_ROLE_ARN": arn}).role_arn == arn


@pytest.mark.parametrize(
    ("text", "value"),
    [("false", False), ("0", False), ("no", False), ("TRUE", True), ("1", True), ("on", True)],
)
def test_booleans_are_parsed_not_truth_tested(text: str, value: bool) -> None:
    assert parse_bool(text, "X") is value


def test_bad_boolean_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_bool("maybe", "DEFECTS_SPOT")


def test_described_lists_every_setting_with_its_source() -> None:
    rows = resolve({"bucket": "my-bucket"}, environ={}).described()
    table = {name: (value, source) for name, value, source in rows}
    assert table["bucket"] == ("my-bucket", "flag")
    assert table["role_arn"] == ("(unset)", "default")
