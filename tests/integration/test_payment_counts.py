"""ListPayments' total comes from counts the database keeps: it stays exact through every change.

Each check compares the `total` of ListPayments with a count made here from the rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command

from tests.conftest import ENGINES, make_database
from tests.support import Api, Game, Server, sql
from toffeepay_server.store.migrate import alembic_config, upgrade


def counts_and_rows(db_url: str, game_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """The maintained counts and a count of the rows, in one statement (one snapshot)."""
    rows = sql(
        db_url,
        "SELECT 'counted', status, SUM(n) FROM payment_counts WHERE game_id = :g GROUP BY status "
        "UNION ALL SELECT 'rows', status, COUNT(*) FROM payments WHERE game_id = :g GROUP BY status",
        {"g": game_id},
    )
    found: dict[str, dict[str, int]] = {"counted": {}, "rows": {}}
    for kind, status, n in rows:
        if int(n):
            found[kind][status] = int(n)
    return found["counted"], found["rows"]


def check_total(api: Api, db_url: str, game_id: str) -> int:
    counted, rows = counts_and_rows(db_url, game_id)
    assert counted == rows
    answer = api.ok("PaymentService/ListPayments", {"limit": 2})
    assert answer["total"] == rows.get("succeeded", 0)
    assert answer["has_more"] is (answer["total"] > len(answer["payments"]))
    # A user's and a window's totals are counted from the rows and agree.
    everyone = api.ok("PaymentService/ListPayments", {"from": "2000-01-01T00:00:00Z", "limit": 1})
    assert everyone["total"] == answer["total"]
    return int(answer["total"])


def test_the_total_stays_exact_through_payments_failures_and_refunds(api: Api, game: Game, server: Server) -> None:
    assert check_total(api, server.db_url, game.game_id) == 0
    made = [api.create_session(game.game_id, user_id=f"p{i % 2}")["id"] for i in range(6)]
    paid = [api.ok("SandboxService/PaySession", {"session_id": sid}) for sid in made[:3]]
    api.ok("SandboxService/PaySession", {"session_id": made[3], "outcome": "card_declined"})
    assert check_total(api, server.db_url, game.game_id) == 3

    api.ok("PaymentService/RefundPayment", {"payment_id": paid[0]["id"], "amount": 100})
    api.ok("SandboxService/CreateDispute", {"payment_id": paid[1]["id"]})
    assert check_total(api, server.db_url, game.game_id) == 3
    assert api.ok("PaymentService/ListPayments", {"user_id": "p0"})["total"] == 2


def test_concurrent_payments_of_one_game_keep_the_count_exact(server: Server) -> None:
    game = server.create_game()
    api = server.api(game.sandbox_key)
    made = [api.create_session(game.game_id)["id"] for _ in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda sid: api.ok("SandboxService/PaySession", {"session_id": sid}), made))
    assert check_total(api, server.db_url, game.game_id) == 40


def test_the_unfiltered_total_reads_the_kept_counts_not_the_rows(server: Server) -> None:
    """What makes the total flat at any size: a user's or a window's total counts rows instead."""
    game = server.create_game()
    api = server.api(game.sandbox_key)
    api.ok("SandboxService/PaySession", {"session_id": api.create_session(game.game_id, user_id="p0")["id"]})
    sql(server.db_url, "UPDATE payment_counts SET n = n + 1000 WHERE game_id = :g", {"g": game.game_id})
    assert api.ok("PaymentService/ListPayments", {})["total"] == 1001
    assert api.ok("PaymentService/ListPayments", {"user_id": "p0"})["total"] == 1
    assert api.ok("PaymentService/ListPayments", {"from": "2000-01-01T00:00:00Z"})["total"] == 1


@pytest.fixture(params=ENGINES)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


def test_the_migration_counts_the_payments_already_there(empty_db: str) -> None:
    command.upgrade(alembic_config(empty_db), "key_changes")
    sql(empty_db, "INSERT INTO games (game_id, created_at) VALUES ('old_game', 0), ('other', 0)")
    rows = [("old_game", "sandbox", "succeeded")] * 3 + [("old_game", "sandbox", "failed")] * 2
    rows += [("old_game", "live", "succeeded"), ("other", "sandbox", "processing")]
    for i, (game_id, mode, status) in enumerate(rows):
        sql(
            empty_db,
            "INSERT INTO sessions (id, game_id, mode, user_id, status, title, price, currency, metadata, "
            "event_sequence, expires_at, created_at) VALUES "
            "(:id, :g, :m, 'u', 'paid', 't', 100, 'USD', '{}', 1, 9999999999999999, :i)",
            {"id": f"sess_{i}", "g": game_id, "m": mode, "i": i},
        )
        sql(
            empty_db,
            "INSERT INTO payments (id, session_id, game_id, mode, user_id, status, amount, currency, method, "
            "details, processor, created_at) VALUES "
            "(:id, :sid, :g, :m, 'u', :s, 100, 'USD', 'card', 'Visa 4242', 'sandbox', :i)",
            {"id": f"pay_{i}", "sid": f"sess_{i}", "g": game_id, "m": mode, "s": status, "i": i},
        )
    upgrade(empty_db)
    counted = sql(empty_db, "SELECT game_id, mode, status, SUM(n) FROM payment_counts GROUP BY game_id, mode, status")
    assert {(r[0], r[1], r[2]): int(r[3]) for r in counted} == {
        ("old_game", "sandbox", "succeeded"): 3,
        ("old_game", "sandbox", "failed"): 2,
        ("old_game", "live", "succeeded"): 1,
        ("other", "sandbox", "processing"): 1,
    }
    # And the triggers count what comes after.
    sql(empty_db, "UPDATE payments SET status = 'succeeded' WHERE id = 'pay_6'")
    sql(empty_db, "DELETE FROM payments WHERE id = 'pay_0'")
    counted, rows_now = counts_and_rows(empty_db, "old_game")
    assert counted == rows_now == {"succeeded": 3, "failed": 2}
    assert counts_and_rows(empty_db, "other")[0] == {"succeeded": 1}
