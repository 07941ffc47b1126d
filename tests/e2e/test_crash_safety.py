"""A server killed with SIGKILL under load: every Idempotency-Key retried afterwards makes one object."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ENGINES, make_database
from tests.support import Server, sql

CREATE = "PaymentService/CreateSession"


@pytest.fixture(params=ENGINES)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def _body(game_id: str, n: int) -> dict[str, object]:
    return {"game_id": game_id, "user_id": f"crash-{n}", "item": {"title": "Gems", "price": 100, "currency": "USD"}}


def test_sigkill_under_load_never_creates_a_session_twice(fresh_db: str, tmp_path: Path) -> None:
    # A short lease, so the retries after the crash may take over the dead run's keys quickly.
    srv = Server(fresh_db, tmp_path, env={"TOFFEEPAY_IDEMPOTENCY_LEASE": "2", "TOFFEEPAY_BACKGROUND": "0"})
    srv.start()
    try:
        game = srv.create_game()
        api = srv.api(game.sandbox_key)
        total = 240
        keys = [f"crash-{n}-{uuid.uuid4().hex[:8]}" for n in range(total)]
        first: dict[int, bytes] = {}
        lock = threading.Lock()

        def send(n: int) -> None:
            try:
                answer = api.post(CREATE, _body(game.game_id, n), headers={"Idempotency-Key": keys[n]})
            except httpx.HTTPError:
                return  # the server died under it
            if answer.status_code == 200:
                with lock:
                    first[n] = answer.content

        with ThreadPoolExecutor(16) as pool:
            for n in range(total):
                pool.submit(send, n)
            deadline = time.monotonic() + 60
            while len(first) < total // 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            srv.stop(kill=True)  # SIGKILL mid-stream, requests in every stage of their work
        assert total // 3 <= len(first) < total, len(first)

        srv.start()
        retry = srv.api(game.sandbox_key)
        final: dict[int, httpx.Response] = {}
        deadline = time.monotonic() + 120
        while len(final) < total and time.monotonic() < deadline:
            for n in range(total):
                if n in final:
                    continue
                answer = retry.post(CREATE, _body(game.game_id, n), headers={"Idempotency-Key": keys[n]})
                if answer.status_code == 200:
                    final[n] = answer
                else:  # the dead run's claim, until its lease is over
                    assert answer.json()["message"].startswith("idempotency_key_in_use: "), answer.text
        assert len(final) == total
        for n, content in first.items():  # what was answered before the crash is what a retry gets
            assert final[n].content == content and final[n].headers["idempotent-replayed"] == "true"
        ids = {final[n].json()["id"] for n in range(total)}
        assert len(ids) == total
        rows = sql(srv.db_url, "SELECT user_id, id FROM sessions WHERE game_id = :g", {"g": game.game_id})
        made: dict[str, list[str]] = {}
        for user_id, session_id in rows:
            made.setdefault(user_id, []).append(session_id)
        twice = {u: s for u, s in made.items() if len(s) > 1}
        assert not twice, f"{len(twice)} keys created more than one session: {list(twice.items())[:3]}"
        assert {s for found in made.values() for s in found} == ids
        # Every session has its one session.created event, committed with it.
        events = sql(
            srv.db_url,
            "SELECT count(*) FROM events WHERE game_id = :g AND type = 'session.created'",
            {"g": game.game_id},
        )
        assert events[0][0] == total
    finally:
        srv.stop()
