"""The Python API as a notebook meets it: names that tab-complete, logging it can set, no
request log from the embedded S3 server."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import defects


def test_the_api_names_are_listed_and_each_resolves() -> None:
    listed = dir(defects)
    for name in ("run", "evaluate", "predict", "JobResult", "Evaluation", "Prediction"):
        assert name in listed
        assert name in defects.__all__
    assert sorted(defects.__all__) == sorted(defects._API)
    assert all(getattr(defects, name) is not None for name in defects.__all__)


def test_progress_lines_reach_stderr_until_logging_is_configured() -> None:
    code = (
        "import logging, defects.console as c\n"
        "c.log.info('first')\n"
        "logging.basicConfig(format='root: %(message)s')\n"
        "c.log.info('second')\n"
        "logging.getLogger('defects').setLevel(logging.WARNING)\n"
        "c.log.info('third')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stderr.splitlines() == ["first", "root: second"]


@pytest.fixture
def werkzeug_level() -> object:
    logger = logging.getLogger("werkzeug")
    saved = logger.level
    yield logger
    logger.setLevel(saved)


def test_the_s3_server_request_log_is_off_unless_asked_for(werkzeug_level: object) -> None:
    from defects.storage import Layout, open_embedded

    logger = logging.getLogger("werkzeug")
    logger.setLevel(logging.NOTSET)
    with open_embedded(Layout("defects", "defects"), "us-east-1") as store:
        store.s3.list_buckets()
    assert logger.level == logging.ERROR


def test_a_level_someone_set_for_the_request_log_is_kept(werkzeug_level: object) -> None:
    from defects.storage import quiet_server_log

    logger = logging.getLogger("werkzeug")
    logger.setLevel(logging.INFO)
    quiet_server_log()
    assert logger.level == logging.INFO
