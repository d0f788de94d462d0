"""Where a job's data lives: an open S3 connection and this tool's layout inside it.

A backend opens the storage it needs (:meth:`defects.backends.base.Backend.open_storage`)
and is handed the open :class:`Storage` in ``train``:

- ``process`` and ``local``: an embedded moto server on 127.0.0.1 for the length of one
  command (:func:`open_embedded`), or the emulator named by ``AWS_ENDPOINT_URL_S3`` (e.g.
  from ``defects s3 serve``);
- ``sagemaker``: real S3 (:func:`open_aws`).

Everything of this tool sits under ``s3://<bucket>/<prefix>/`` (:class:`Layout`). The
endpoint is held here and passed to clients explicitly; it reaches an environment only
through :meth:`Storage.sdk_environment`, for the SageMaker SDK in local mode. Transfers
are in :mod:`.s3`; the one safe extractor of archives in :mod:`.archives`.

Imports: errors and console only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from defects.errors import StorageError
from defects.storage.s3 import S3Uri, client

# What an emulator is given: any non-empty credentials will do, and no real ones leak to it.
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class Layout:
    """Where this tool keeps things: all under ``s3://<bucket>/<prefix>/``.

    ``datasets/<id>/{train,validation,test}/`` hold staged datasets, ``pretrained/<name>/``
    pretrained weights; ``jobs/<job>/`` holds one job: ``output/{model,output}.tar.gz``
    (where SageMaker writes them), ``input/`` (the code) and ``checkpoints/``.
    """

    bucket: str
    prefix: str

    def root(self) -> S3Uri:
        return S3Uri(self.bucket, self.prefix)

    def dataset(self, dataset_id: str) -> S3Uri:
        return self.root().join("datasets", dataset_id)

    def channels(self, dataset_id: str, splits: tuple[str, ...]) -> dict[str, str]:
        return {split: str(self.dataset(dataset_id).join(split)) for split in splits}

    def jobs(self) -> S3Uri:
        """SageMaker's ``S3OutputPath`` and the code's key prefix: it adds ``<job>/...``."""
        return self.root().join("jobs")

    def job_output(self, job_name: str) -> S3Uri:
        return self.jobs().join(job_name, "output")

    def checkpoints(self, job_name: str) -> S3Uri:
        return self.jobs().join(job_name, "checkpoints")

    def pretrained(self, name: str) -> S3Uri:
        """Pretrained weights, content-addressed: ``name`` carries their digest."""
        return self.root().join("pretrained", name)


@dataclass(frozen=True)
class Storage:
    """An open S3 connection (a boto3 session and its S3 client) and the layout in it."""

    layout: Layout
    region: str
    session: Any = field(repr=False)
    s3: Any = field(repr=False)
    # None for AWS itself; else the emulator's URL.
    endpoint: str | None = None

    @property
    def emulated(self) -> bool:
        return self.endpoint is not None

    def sdk_environment(self) -> dict[str, str]:
        """The variables the SageMaker SDK reads to reach this storage. It makes its own
        clients and takes no endpoint argument, so in local mode the endpoint has to go
        through the environment; this is the only place it does."""
        if self.endpoint is None:
            return {}
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ENDPOINT_URL_S3": self.endpoint}


def _emulator_session(region: str) -> Any:
    import boto3

    # An emulator accepts any credentials; the developer's real ones are never sent to it.
    return boto3.Session(region_name=region, **EMULATOR_CREDENTIALS)


def quiet_server_log() -> None:
    """The embedded server's request log (werkzeug, one line per request) stays off unless
    someone set its level: ``logging.getLogger("werkzeug").setLevel(logging.INFO)``."""
    import logging

    werkzeug = logging.getLogger("werkzeug")
    if werkzeug.level == logging.NOTSET:
        werkzeug.setLevel(logging.ERROR)


def start_emulator(port: int = 0) -> tuple[Any, str]:
    """A moto S3 server on 127.0.0.1 (``port`` 0: any free one) and its URL; stop it with
    its ``stop()``. A port in use is a :class:`StorageError` (moto would wait forever)."""
    import socket

    from moto.server import ThreadedMotoServer

    if port:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                raise StorageError(
                    f"Port {port} on 127.0.0.1 is in use ({error.strerror}): the S3 server "
                    "cannot listen there.",
                    hint="Pass another --port (0 picks a free one), or stop the program "
                    "holding it; if it is an S3 server you started, use it: export "
                    f"AWS_ENDPOINT_URL_S3=http://127.0.0.1:{port}",
                ) from error
    quiet_server_log()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


@contextmanager
def open_embedded(layout: Layout, region: str, endpoint: str | None = None) -> Iterator[Storage]:
    """S3 in an emulator: the one at ``endpoint``, or a moto server started on 127.0.0.1
    for the duration (in memory: everything a user keeps is also written under runs/)."""
    session = _emulator_session(region)
    if endpoint:
        yield Storage(layout, region, session, client(session, endpoint), endpoint)
        return
    from defects.console import log

    server, url = start_emulator()
    try:
        log.info("Embedded S3 server at %s (in memory, for this command).", url)
        yield Storage(layout, region, session, client(session, url), url)
    finally:
        server.stop()


@contextmanager
def open_aws(layout: Layout, region: str, session: Any) -> Iterator[Storage]:
    """Real S3, through the boto3 ``session`` of the backend's credentials."""
    yield Storage(layout, region, session, client(session), None)


__all__ = ["Layout", "S3Uri", "Storage", "open_aws", "open_embedded", "start_emulator"]
