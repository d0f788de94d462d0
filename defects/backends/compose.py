"""The compose file of a local-mode job, made safe to run beside other jobs.

The SageMaker SDK writes ``<root>/docker-compose.yaml`` itself, and two things in it are
wrong for us:

- its network is always named ``sagemaker-local``: two jobs at once create two networks of
  that name, compose fails with "network sagemaker-local is ambiguous", and every later job
  fails until someone removes them by hand;
- it copies the AWS credentials of its session (with a session token, if any) into every
  container's environment, in a file anyone on the machine may read.

While the SDK runs, :func:`isolated_compose_files` rewrites the file it writes: the network
belongs to the job's compose project (compose names it ``<project>_sagemaker-local`` and
removes it with the project), the containers get fixed dummy credentials (the entry point
never talks to S3: the data is downloaded on the host), and only the file's owner may read
it, from the moment it exists. The backend removes the file after every job.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from defects.storage import EMULATOR_CREDENTIALS

NETWORK = "sagemaker-local"
# What a container gets instead of the session's credentials.
CONTAINER_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS["aws_access_key_id"],
    "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["aws_secret_access_key"],
}
_CREDENTIAL_VARIABLES = {*CONTAINER_CREDENTIALS, "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
_PRIVATE = 0o600


def isolate(content: dict[str, Any]) -> dict[str, Any]:
    """The compose ``content`` with a network of the project's own and dummy credentials."""
    isolated = copy.deepcopy(content)
    if NETWORK in isolated.get("networks", {}):
        # Without a fixed name, compose prefixes the network with the project name.
        isolated["networks"] = {**isolated["networks"], NETWORK: {}}
    for service in isolated.get("services", {}).values():
        kept = [
            entry
            for entry in service.get("environment", [])
            if entry.split("=", 1)[0] not in _CREDENTIAL_VARIABLES
        ]
        service["environment"] = kept + [f"{k}={v}" for k, v in CONTAINER_CREDENTIALS.items()]
    return isolated


def private_file(path: Path) -> None:
    """Make ``path`` an empty file only its owner may read: whoever opens it with ``"w"``
    afterwards (the SDK does) truncates it and keeps that mode."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE)
    os.close(descriptor)
    os.chmod(path, _PRIVATE)


def write_private(path: Path, content: dict[str, Any]) -> None:
    import yaml

    temporary = path.with_name(path.name + ".tmp")
    private_file(temporary)
    temporary.write_text(yaml.dump(content, default_flow_style=False))
    os.replace(temporary, path)


@contextmanager
def isolated_compose_files() -> Iterator[None]:
    """While the SDK runs, every compose file it writes goes through :func:`isolate` and
    is readable by its owner only."""
    from sagemaker.train.local.local_container import DOCKER_COMPOSE_FILENAME, _LocalContainer

    generate = _LocalContainer._generate_compose_file

    def generate_isolated(
        container: Any, environment: dict[str, str], volumes: list[str]
    ) -> dict[str, Any]:
        path = Path(container.container_root) / DOCKER_COMPOSE_FILENAME
        private_file(path)
        content = isolate(generate(container, environment, volumes))
        write_private(path, content)
        return content

    with mock.patch.object(_LocalContainer, "_generate_compose_file", generate_isolated):
        yield
