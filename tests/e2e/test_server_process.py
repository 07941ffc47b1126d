"""`toffeepay serve` as a process: workers that die, a main process killed, a port in use,
slow bodies, per-address limits (shared through Redis), https, the database going away."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_database
from tests.receiver import Receiver
from tests.stripe_support import stripe_env
from tests.support import Api, Game, Server
from toffeepay_server.serving import port_in_use

REDIS = ("127.0.0.1", 6379)


def wait_for(what: str, condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has already stopped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def session_request(game: Game) -> dict[str, object]:
    return {
        "game_id": game.game_id,
        "user_id": "player_42",
        "item": {"title": "50 Gold Coins", "price": 499, "currency": "USD"},
    }


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'toffeepay.db'}"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start dedicated servers (stopped after the test)."""
    started: list[Server] = []

    def start_server(db_url: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Server:
        workdir = tmp_path / f"srv{len(started)}"
        workdir.mkdir()
        server = Server(db_url, workdir, env=env, args=args)
        started.append(server)
        return server.start()

    yield start_server
    for server in started:
        server.stop(kill=True)


# Workers and the main process


class Load:
    """Requests one after another from a thread; records each outcome."""

    def __init__(self, api: Api, game: Game) -> None:
        self.api = api
        self.game = game
        self.outcomes: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(
                        f"{self.api.base_url}/pay.v1.PaymentService/CreateSession",
                        json=session_request(self.game),
                        headers={"Authorization": f"Bearer {self.api.key}"},
                    )
                    self.outcomes.append(response.status_code)
                except httpx.HTTPError as exc:
                    self.outcomes.append(type(exc).__name__)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_a_worker_killed_under_load_is_replaced_and_the_server_keeps_answering(
    start: Callable[..., Server], sqlite_url: str
) -> None:
    server = start(sqlite_url, args=("--workers", "2"))
    assert server.proc is not None
    main = server.proc.pid
    wait_for("two workers", lambda: len(children(main)) == 2)
    game = server.create_game()
    api = server.api(game.sandbox_key)
    with Load(api, game) as load:
        wait_for("load", lambda: load.outcomes.count(200) >= 20)
        victim = children(main)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = len(load.outcomes)
        wait_for("a new worker", lambda: len(children(main)) == 2 and victim not in children(main))
        wait_for("answers after the kill", lambda: load.outcomes[killed_at:].count(200) >= 50)
    after = load.outcomes[killed_at:]
    # A request the dying worker held may be lost; every other one is answered.
    assert sum(1 for outcome in after if outcome != 200) <= 2, after
    assert api.create_session(game.game_id)["id"].startswith("sess_")
    assert "Unexpected exit from worker" in server.log.read_text()


def _background_runners(server: Server) -> list[int]:
    """The workers that said they took over the background loops, in order."""
    found = []
    for line in server.log.read_text().splitlines():
        if "runs the background loops" in line:
            found.append(int(json.loads(line)["pid"]))
    return found


def test_one_worker_runs_the_background_loops_and_another_takes_over_when_it_dies(
    start: Callable[..., Server], sqlite_url: str
) -> None:
    receiver = Receiver()
    try:
        server = start(sqlite_url, env={"TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}, args=("--workers", "2"))
        assert server.proc is not None
        main = server.proc.pid
        wait_for("two workers", lambda: len(children(main)) == 2)
        wait_for("a background runner", lambda: _background_runners(server))
        time.sleep(3)  # the other worker tried too (it polls for the lease every 2 s)
        runners = _background_runners(server)
        assert len(runners) == 1 and runners[0] in children(main)
        game = server.create_game()
        api = server.api(game.sandbox_key)
        created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/hooks")})
        receiver.expect("/hooks", created["secret"])
        api.create_session(game.game_id)
        receiver.wait_for("/hooks", 1)
        os.kill(runners[0], signal.SIGKILL)
        wait_for("another runner", lambda: len(_background_runners(server)) == 2, timeout=30)
        assert _background_runners(server)[1] != runners[0]
        api.create_session(game.game_id)
        receiver.wait_for("/hooks", 2)
    finally:
        receiver.close()


def test_killing_the_main_process_leaves_no_worker_holding_the_port(
    start: Callable[..., Server], sqlite_url: str
) -> None:
    server = start(sqlite_url)
    assert server.proc is not None
    main = server.proc.pid
    wait_for("a worker", lambda: len(children(main)) == 1)
    worker = children(main)[0]
    os.kill(main, signal.SIGKILL)
    wait_for("the orphaned worker to stop", lambda: not alive(worker))
    wait_for("the port to be free", lambda: port_in_use("127.0.0.1", server.port) is None)


def test_a_second_server_on_a_port_in_use_refuses_to_start(start: Callable[..., Server], sqlite_url: str) -> None:
    server = start(sqlite_url)
    second = subprocess.Popen(
        [sys.executable, "-m", "toffeepay_server", "serve", "--port", str(server.port)],
        env=server.env,
        cwd=server.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = second.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(second.pid, signal.SIGKILL)
    assert second.returncode != 0
    assert f"cannot listen on 127.0.0.1:{server.port}" in output
    assert "Address already in use" in output
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_new_sqlite_database_is_readable_by_its_owner_only(start: Callable[..., Server], sqlite_url: str) -> None:
    start(sqlite_url)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600


# Slow bodies


def drip(server: Server, head: bytes, every: float = 0.3, limit: float = 20.0) -> bytes:
    """Send the head, then one byte of body at a time, until the server answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=limit) as sock:
        sock.sendall(head)
        sock.settimeout(every)
        answer = b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                sock.sendall(b" ")
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                break
    return answer


def test_a_body_dripped_slower_than_the_deadline_gets_408_and_changes_nothing(
    start: Callable[..., Server], sqlite_url: str
) -> None:
    server = start(sqlite_url, env={"TOFFEEPAY_REQUEST_BODY_TIMEOUT": "1"})
    game = server.create_game()
    api = server.api(game.sandbox_key)
    head = (
        b"POST /pay.v1.PaymentService/CreateSession HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {game.sandbox_key}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
        + b'{"game_id": "'
        + game.game_id.encode()
        + b'", "user_id": "p", "item": {"title": "t", "price": 1, "currency": "USD"}'
    )
    answer = drip(server, head)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"request_timeout: " in answer
    assert api.ok("PaymentService/ListSessions", {"game_id": game.game_id})["total"] == 0
    # The payment page's forms have the same deadline.
    page = drip(
        server,
        b"POST /sess_01h0000000000000000000000/pay HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\nmethod=card",
    )
    assert page.startswith(b"HTTP/1.1 408"), page
    assert httpx.get(f"{server.url}/healthz").status_code == 200


# Rate limits for requests without a valid key


def test_unauthenticated_requests_are_limited_per_client_address(start: Callable[..., Server], sqlite_url: str) -> None:
    server = start(
        sqlite_url, env={"TOFFEEPAY_PUBLIC_RATE_LIMIT": "5/minute", "TOFFEEPAY_TRUSTED_PROXIES": "127.0.0.1/32"}
    )
    game = server.create_game()
    player = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(5):
            assert client.get("/sess_01h0000000000000000000000", headers=player).status_code == 404
        refused = client.get("/sess_01h0000000000000000000000", headers=player)
        assert refused.status_code == 429
        assert refused.json()["message"].startswith("rate_limited: ")
        assert int(refused.headers["retry-after"]) >= 1
        # The same address with an unknown key shares the count; another address has its own.
        unknown = client.post(
            "/pay.v1.PaymentService/GetSession",
            json={"id": "sess_x"},
            headers={**player, "Authorization": "Bearer sk_test_unknown"},
        )
        assert unknown.status_code == 429 and unknown.json()["message"].startswith("rate_limited: ")
        other = {"X-Forwarded-For": "198.51.100.9"}
        assert client.get("/sess_01h0000000000000000000000", headers=other).status_code == 404
        assert (
            client.post(
                "/pay.v1.PaymentService/GetSession",
                json={"id": "sess_x"},
                headers={**other, "Authorization": "Bearer sk_test_unknown"},
            ).status_code
            == 401
        )
        # A valid key is counted by its own limit, never by the address's.
        valid = client.post(
            "/pay.v1.PaymentService/CreateSession",
            json=session_request(game),
            headers={**player, "Authorization": f"Bearer {game.sandbox_key}"},
        )
        assert valid.status_code == 200, valid.text
        assert client.get("/healthz", headers=player).status_code == 200


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=2):
            return True
    except OSError:
        return False


def test_two_server_processes_share_one_counter_in_redis(start: Callable[..., Server], tmp_path: Path) -> None:
    if not redis_reachable():
        if os.environ.get("TOFFEEPAY_TEST_ALLOW_NO_REDIS") == "1":
            pytest.skip("Redis unavailable")
        raise AssertionError("Redis is not running on 127.0.0.1:6379")
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {
        "TOFFEEPAY_RATE_LIMIT_STORAGE": f"redis://{REDIS[0]}:{REDIS[1]}",
        "TOFFEEPAY_PUBLIC_RATE_LIMIT": "6/minute",
        "TOFFEEPAY_TRUSTED_PROXIES": "127.0.0.1",
    }
    first, second = start(db_url, env=env), start(db_url, env=env)
    # An address of its own, so no other run's counter is in the way.
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    headers = {"X-Forwarded-For": address, "Authorization": f"Bearer sk_test_{uuid.uuid4().hex}"}

    def call(server: Server) -> httpx.Response:
        return httpx.post(f"{server.url}/pay.v1.PaymentService/GetSession", json={"id": "sess_x"}, headers=headers)

    assert [call(s).status_code for s in (first, second, first, second, first, second)] == [401] * 6
    refused = call(first)
    assert refused.status_code == 429 and refused.json()["message"].startswith("rate_limited: ")
    assert call(second).status_code == 429


# Transport


def test_under_an_https_public_url_every_answer_sends_hsts(start: Callable[..., Server], sqlite_url: str) -> None:
    server = start(sqlite_url, env={"TOFFEEPAY_PUBLIC_URL": "https://pay.example.test"})
    game = server.create_game()
    session = server.api(game.sandbox_key).create_session(game.game_id)
    page = httpx.get(f"{server.url}/{session['id']}")
    assert page.status_code == 200
    for response in (
        page,
        httpx.get(f"{server.url}/healthz"),
        httpx.post(f"{server.url}/pay.v1.PaymentService/GetSession", json={}),
    ):
        assert response.headers["strict-transport-security"].startswith("max-age="), response.headers


def test_a_live_card_form_is_not_served_over_plain_http_to_a_public_host(
    start: Callable[..., Server], sqlite_url: str
) -> None:
    # A live processor configured (never reached: no payment is made here).
    env = {"TOFFEEPAY_PUBLIC_URL": "http://pay.example.test", **stripe_env("http://127.0.0.1:9")}
    server = start(sqlite_url, env=env)
    game = server.create_game()
    assert "strict-transport-security" not in httpx.get(f"{server.url}/healthz").headers
    live = server.api(game.live_key).create_session(game.game_id, return_url="https://game.example/done")
    page = httpx.get(f"{server.url}/{live['id']}")
    assert page.status_code == 503
    assert "must be served over https" in page.text
    assert 'name="number"' not in page.text
    # A sandbox page takes no real cards and is still served.
    sandbox = server.api(game.sandbox_key).create_session(game.game_id)
    assert httpx.get(f"{server.url}/{sandbox['id']}").status_code == 200


# The database going away


class TcpProxy:
    """Forwards a local port to another; `cut()` closes everything, as a restarting database does."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_the_database_down_during_authentication_is_a_connect_unavailable(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    databases = make_database("postgresql", tmp_path)
    url = next(databases)
    try:
        proxy = TcpProxy(("127.0.0.1", 5432))
        proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        server = start(proxied)
        game = server.create_game()
        api = server.api(game.sandbox_key)
        assert api.ok("PaymentService/ListSessions", {})["total"] == 0
        proxy.cut()
        response = api.post("PaymentService/ListSessions", {})
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == "unavailable"
        assert response.json()["message"].startswith("unavailable: ")
        assert "x-request-id" in response.headers
    finally:
        with contextlib.suppress(StopIteration):
            next(databases)
