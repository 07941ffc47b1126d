"""A game server's webhook receiver on a real port: it verifies with the SDK and records everything.

Each path can be given the secrets to verify with and a script of answers (status, headers,
body, or holding the request until released), so tests can make a receiver fail, redirect,
time out or hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import toffeepay


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    hold: threading.Event | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float
    event: dict[str, Any] | None = None
    fields: dict[str, str] | None = None
    error: str | None = None
    status: int = 0

    @property
    def event_id(self) -> str:
        return self.headers["x-toffeepay-event-id"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many dispatcher connections may open at once


class Receiver:
    def __init__(self, tolerance: int | None = 300) -> None:
        self.tolerance = tolerance
        self.received: list[Received] = []
        # Paths of requests as they arrive, before they are answered (held ones included).
        self.arrivals: list[str] = []
        self.secrets: dict[str, list[str] | None] = {}
        self.scripts: dict[str, list[Answer]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.arrivals.append(self.path)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                receiver.verify(got)
                answer = Answer(400, body=got.error.encode()) if got.error else receiver.next_answer(self.path)
                if answer.hold is not None:
                    answer.hold.wait(30)
                if answer.delay:
                    time.sleep(answer.delay)
                got.status = answer.status
                with receiver.lock:
                    receiver.received.append(got)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def expect(self, path: str, secret: str | list[str] | None, *answers: Answer) -> str:
        """Verify requests to `path` with `secret` (None: take them unverified); answer with
        `answers` in turn, then 200."""
        self.secrets[path] = [secret] if isinstance(secret, str) else secret
        self.scripts[path] = list(answers)
        return self.url(path)

    def next_answer(self, path: str) -> Answer:
        with self.lock:
            script = self.scripts.get(path)
            return script.pop(0) if script else Answer()

    def verify(self, got: Received) -> None:
        if got.path not in self.secrets:
            got.error = "nothing expected at this path"
            return
        secrets = self.secrets[got.path]
        if secrets is None:
            return
        try:
            if got.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                got.fields = toffeepay.LegacyCallback.verify(got.body, secrets)
            else:
                got.event = toffeepay.Webhook.construct_event(
                    got.body, got.headers.get("x-toffeepay-signature"), secrets, tolerance=self.tolerance
                )
        except toffeepay.SignatureVerificationError as exc:
            got.error = f"{exc.reason}: {exc}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver did not get what was expected; got {self.summary()}")
            time.sleep(0.02)

    def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        self.wait(lambda: len(self.at(path)) >= count, timeout)
        return self.at(path)

    def summary(self) -> list[tuple[str, int, str | None, str | None]]:
        with self.lock:
            return [(r.path, r.status, r.headers.get("x-toffeepay-event"), r.error) for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
