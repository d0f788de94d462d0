"""What the backends say about options that only the cloud can honour."""

from __future__ import annotations

import logging

import pytest

from defects.backends import create
from defects.backends.base import CloudOptions
from defects.settings import resolve


@pytest.mark.parametrize("name", ["process", "local"])
def test_cloud_options_are_named_as_ignored_off_the_cloud(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = create(resolve({"backend": name}, environ={}))
    with caplog.at_level(logging.WARNING, logger="defects"):
        backend.check_options(CloudOptions(spot=True, tags=(("team", "qa"),)))
    message = caplog.text
    assert "--spot, --tag only apply to DEFECTS_BACKEND=sagemaker" in message
    assert f"the {name} backend ignores them" in message


def test_no_cloud_options_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    backend = create(resolve({"backend": "process"}, environ={}))
    with caplog.at_level(logging.WARNING, logger="defects"):
        backend.check_options(CloudOptions())
    assert caplog.text == ""
