"""List totals come from counts the database keeps: they stay exact through every change.

Each check compares the `total` of ListSessions, for every filter, with a count made here
from the rows themselves (status as readers see it: a lapsed pending session is expired).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from tests.conftest import ENGINES, make_database
from tests.support import Api, Game, Server, both_modes_processors, lapse, run_async, sql
from toffeepay_server.domain.clock import ManualClock
from toffeepay_server.domain.listing import Page
from toffeepay_server.domain.sessions import new_session
from toffeepay_server.services import games, sessions
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store.database import Database
from toffeepay_server.store.migrate import alembic_config, upgrade
from toffeepay_server.store.types import Instant

STATUSES = [None, "pending", "paid", "failed", "cancelled", "expired"]


def seen_status(row: Any, now: int) -> str:
    status, payment_id, expires_at = row[1], row[2], row[3]
    if status == "pending" and payment_id is None and expires_at <= now:
        return "expired"
    return status


def brute_force(db_url: str, game_id: str, user_id: str | None, status: str | None) -> int:
    now = Instant().process_bind_param(datetime.now(UTC), None)
    rows = sql(
        db_url,
        "SELECT user_id, status, payment_id, expires_at FROM sessions WHERE game_id = :g AND mode = 'sandbox'",
        {"g": game_id},
    )
    assert now is not None
    return sum(
        1 for r in rows if (user_id is None or r[0] == user_id) and (status is None or seen_status(r, now) == status)
    )


def stored_counts(db_url: str, game_id: str) -> dict[str, int]:
    rows = sql(
        db_url,
        "SELECT status, SUM(n) FROM session_counts WHERE game_id = :g GROUP BY status",
        {"g": game_id},
    )
    return {r[0]: int(r[1]) for r in rows if int(r[1])}


def counts_and_rows(db_url: str, game_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """The maintained counts and a count of the rows, in one statement (one snapshot)."""
    rows = sql(
        db_url,
        "SELECT 'counted', status, SUM(n) FROM session_counts WHERE game_id = :g GROUP BY status "
        "UNION ALL SELECT 'rows', status, COUNT(*) FROM sessions WHERE game_id = :g GROUP BY status",
        {"g": game_id},
    )
    found: dict[str, dict[str, int]] = {"counted": {}, "rows": {}}
    for kind, status, n in rows:
        if int(n):
            found[kind][status] = int(n)
    return found["counted"], found["rows"]


def check_totals(api: Api, db_url: str, game_id: str, users: list[str]) -> None:
    counted, rows = counts_and_rows(db_url, game_id)
    assert counted == rows
    for user_id in [None, *users]:
        for status in STATUSES:
            body: dict[str, Any] = {"limit": 2}
            if user_id:
                body["user_id"] = user_id
            if status:
                body["status"] = status
            answer = api.ok("PaymentService/ListSessions", body)
            expected = brute_force(db_url, game_id, user_id, status)
            assert answer["total"] == expected, (user_id, status, answer["total"], expected)
            assert answer["has_more"] is (expected > len(answer["sessions"]))
            assert all(s["status"] == status for s in answer["sessions"] if status), (status, answer)


def test_totals_stay_exact_through_every_transition(api: Api, game: Game, server: Server) -> None:
    users = ["alice", "bob"]
    check_totals(api, server.db_url, game.game_id, users)
    made = {name: api.create_session(game.game_id, user_id=users[i % 2])["id"] for i, name in enumerate("abcdefgh")}
    check_totals(api, server.db_url, game.game_id, users)

    paid = api.ok("SandboxService/PaySession", {"session_id": made["a"]})
    api.ok("SandboxService/PaySession", {"session_id": made["b"], "outcome": "card_declined"})
    check_totals(api, server.db_url, game.game_id, users)
    api.ok("PaymentService/CancelSession", {"id": made["c"]})
    api.ok("SandboxService/ExpireSession", {"session_id": made["d"]})
    check_totals(api, server.db_url, game.game_id, users)

    # Lapsed: expired for readers at once, then recorded by the sweeper; the totals agree throughout.
    lapse(server.db_url, made["e"])
    check_totals(api, server.db_url, game.game_id, users)
    for _ in range(100):
        if sql(server.db_url, "SELECT status FROM sessions WHERE id = :id", {"id": made["e"]})[0][0] == "expired":
            break
        time.sleep(0.1)
    check_totals(api, server.db_url, game.game_id, users)

    # Fulfilment, refunds and disputes leave the session's status as it is.
    api.ok("PaymentService/FulfillSession", {"id": made["a"]})
    api.ok("SandboxService/CreateDispute", {"payment_id": paid["id"]})
    api.ok("PaymentService/RefundPayment", {"payment_id": paid["id"], "amount": 100})
    check_totals(api, server.db_url, game.game_id, users)
    assert api.ok("PaymentService/ListSessions", {"status": "paid"})["total"] == 1


def test_concurrent_creates_of_one_game_keep_the_count_exact(server: Server) -> None:
    game = server.create_game()
    api = server.api(game.sandbox_key)

    def create(i: int) -> str:
        return str(api.create_session(game.game_id, user_id=f"p{i % 3}")["id"])

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(create, range(120)))
    assert len(set(made)) == 120
    assert api.ok("PaymentService/ListSessions", {})["total"] == 120
    assert api.ok("PaymentService/ListSessions", {"status": "pending"})["total"] == 120
    assert stored_counts(server.db_url, game.game_id) == {"pending": 120}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda sid: api.ok("PaymentService/CancelSession", {"id": sid}), made[:60]))
    assert stored_counts(server.db_url, game.game_id) == {"pending": 60, "cancelled": 60}
    check_totals(api, server.db_url, game.game_id, ["p0", "p1"])


@pytest.fixture(params=ENGINES)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def test_the_migration_counts_the_sessions_already_there(empty_db: str) -> None:
    command.upgrade(alembic_config(empty_db), "dashboard_reveal")
    sql(empty_db, "INSERT INTO games (game_id, created_at) VALUES ('old_game', 0), ('other', 0)")
    rows = [("old_game", "sandbox", "paid")] * 3 + [("old_game", "sandbox", "pending")] * 2
    rows += [("old_game", "live", "paid"), ("other", "sandbox", "expired")]
    for i, (game_id, mode, status) in enumerate(rows):
        sql(
            empty_db,
            "INSERT INTO sessions (id, game_id, mode, user_id, status, title, price, currency, metadata, "
            "event_sequence, expires_at, created_at) VALUES "
            "(:id, :g, :m, 'u', :s, 't', 100, 'USD', '{}', 1, 9999999999999999, :i)",
            {"id": f"sess_{i}", "g": game_id, "m": mode, "s": status, "i": i},
        )
    upgrade(empty_db)
    counted = sql(empty_db, "SELECT game_id, mode, status, SUM(n) FROM session_counts GROUP BY game_id, mode, status")
    assert {(r[0], r[1], r[2]): int(r[3]) for r in counted} == {
        ("old_game", "sandbox", "paid"): 3,
        ("old_game", "sandbox", "pending"): 2,
        ("old_game", "live", "paid"): 1,
        ("other", "sandbox", "expired"): 1,
    }
    # And the triggers count what comes after.
    sql(empty_db, "UPDATE sessions SET status = 'cancelled' WHERE id = 'sess_3'")
    sql(empty_db, "DELETE FROM sessions WHERE id = 'sess_0'")
    assert stored_counts(empty_db, "old_game") == {"paid": 3, "pending": 1, "cancelled": 1}


def test_lapsed_sessions_not_swept_move_from_pending_to_expired(empty_db: str) -> None:
    """No sweeper here: the reader's clock alone makes sessions lapse."""
    upgrade(empty_db)
    clock = ManualClock()

    async def run() -> None:
        ctx = ServiceContext(db=Database(empty_db), public_url="http://pay.test", clock=clock)
        try:
            created = await games.create_game(ctx, f"game_{uuid.uuid4().hex[:10]}")
            principal = await games.authenticate(ctx, created.sandbox_api_key)
            assert principal is not None
            for minutes, user in [(5, "u1"), (10, "u1"), (60, "u2")]:
                new = new_session(
                    game_id=principal.game_id,
                    user_id=user,
                    title="Gems",
                    price=100,
                    currency="USD",
                    image=None,
                    return_url=None,
                    metadata={},
                    expires_at=clock() + timedelta(minutes=minutes),
                    live=False,
                    now=clock(),
                )
                await sessions.create_session(ctx, principal, new, processors=both_modes_processors())

            async def totals(user_id: str | None = None, window: bool = False) -> dict[str, int]:
                page = Page(1, 0, clock() - timedelta(days=1) if window else None, None)
                found = {}
                for status in ("pending", "expired"):
                    listed, total = await sessions.list_sessions(
                        ctx, principal, game_id=None, user_id=user_id, status=status, page=page
                    )
                    assert all(s.status.value == status for s in listed)
                    found[status] = total
                return found

            assert await totals() == {"pending": 3, "expired": 0}
            clock.advance(minutes=7)
            assert await totals() == {"pending": 2, "expired": 1}
            assert await totals("u1") == {"pending": 1, "expired": 1}
            assert await totals(window=True) == {"pending": 2, "expired": 1}
            clock.advance(minutes=5)
            assert await totals() == {"pending": 1, "expired": 2}
            listed, _ = await sessions.list_sessions(
                ctx, principal, game_id=None, user_id=None, status="expired", page=Page(5, 1, None, None)
            )
            assert len(listed) == 1
            assert await sessions.sweep_expired(ctx) == 2
            assert await totals() == {"pending": 1, "expired": 2}
            assert await totals("u2") == {"pending": 1, "expired": 0}
        finally:
            await ctx.db.dispose()

    run_async(run)
