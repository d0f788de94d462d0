"""A loopback S3 proxy that fails some of the requests it relays: for tests and the
reliability benchmark.

It listens on 127.0.0.1 and forwards every request to an S3 server (the embedded moto one);
a seeded share of them instead gets a fault, picked in turn from :data:`KINDS`:

- ``500``: ``InternalError``, without forwarding the request;
- ``503``: ``SlowDown``, without forwarding the request;
- ``cut``: forwarded, but the response is cut: half its body, then the connection closes (a
  response without a body, as to a PUT or HEAD, is dropped altogether: the request was
  carried out and the client cannot know).

No request fails more than ``max_in_a_row`` times running, so a client that retries (boto3
does, five attempts) always gets through. Its loops are bounded: it serves at most
``max_requests`` requests and stops after ``lifetime`` seconds, whichever comes first::

    with FaultyS3(upstream="http://127.0.0.1:5000", rate=0.3) as proxy:
        ... clients with endpoint_url=proxy.url ...
    proxy.injected  # Counter({"500": 12, "503": 11, "cut": 11})
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

KINDS = ("500", "503", "cut")
_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
}
# Hop-by-hop headers, and the expectation this proxy has already answered.
_NOT_FORWARDED = {"connection", "keep-alive", "expect", "transfer-encoding", "proxy-connection"}


class FaultyS3:
    def __init__(
        self,
        upstream: str,
        rate: float = 0.3,
        seed: int = 0,
        kinds: tuple[str, ...] = KINDS,
        max_in_a_row: int = 2,
        max_requests: int = 50_000,
        lifetime: float = 900.0,
    ) -> None:
        if not 0.0 <= rate <= 1.0 or not set(kinds) <= set(KINDS) or not kinds:
            raise ValueError(f"rate must be in [0, 1] and kinds among {KINDS}.")
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate = rate
        self.kinds = kinds
        self.max_in_a_row = max_in_a_row
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.requests = 0
        self.injected: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._turn = 0
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = 0.0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.timeout = 0.2
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultyS3:
        self._deadline = time.monotonic() + self.lifetime
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._server.server_close()

    def __enter__(self) -> FaultyS3:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            if self.requests >= self.max_requests:
                break
            self._server.handle_request()

    def admit(self) -> bool:
        """Count one request; False once the budget of requests or time is spent."""
        with self._lock:
            self.requests += 1
            return self.requests <= self.max_requests and time.monotonic() < self._deadline

    def fault_for(self, request: str) -> str | None:
        """The fault for this request (None: relay it faithfully)."""
        with self._lock:
            if self._running[request] >= self.max_in_a_row or self._random.random() >= self.rate:
                self._running.pop(request, None)
                return None
            self._running[request] += 1
            kind = self.kinds[self._turn % len(self.kinds)]
            self._turn += 1
            self.injected[kind] += 1
            return kind


def _handler(proxy: FaultyS3) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # An idle client connection ends after this many seconds.
        timeout = 30

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a test's output is not the place for an access log."""

        def do_GET(self) -> None:
            self._relay()

        do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not proxy.admit():
                self._error(503, "SlowDown", "The fault-injecting proxy is over its budget.")
                self.close_connection = True
                return
            fault = proxy.fault_for(f"{self.command} {self.path}")
            if fault in _ERRORS:
                self._error(*_ERRORS[fault])
                return
            status, reason, headers, payload = self._forward(body)
            if fault == "cut":
                self.close_connection = True
                if not payload:
                    return
                # The headers still announce the whole body.
                if not any(name.lower() == "content-length" for name, _ in headers):
                    headers.append(("Content-Length", str(len(payload))))
                payload = payload[: len(payload) // 2]
            self.send_response(status, reason)
            for name, value in headers:
                if name.lower() not in _NOT_FORWARDED | {"server", "date"}:
                    self.send_header(name, value)
            if not any(name.lower() == "content-length" for name, _ in headers):
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
            connection = http.client.HTTPConnection(*proxy.upstream, timeout=120)
            try:
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in _NOT_FORWARDED
                }
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                return response.status, response.reason, response.getheaders(), payload
            finally:
                connection.close()

        def _error(self, status: int, code: str, message: str) -> None:
            text = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                "<RequestId>faulty-s3</RequestId></Error>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(text)

    return Handler
