"""Idempotency-Key (docs/api.md, Idempotency), including under concurrency."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from tests.support import Api, Game, Server, outbox, sql

CREATE = "PaymentService/CreateSession"


def create_body(game: Game, user_id: str = "idem") -> dict:
    return {"game_id": game.game_id, "user_id": user_id, "item": {"title": "Gems", "price": 100, "currency": "USD"}}


def test_replay_is_byte_for_byte_and_does_nothing_again(api: Api, game: Game, server: Server) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post(CREATE, create_body(game), headers=key)
    second = api.post(CREATE, create_body(game), headers=key)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert api.ok("PaymentService/ListSessions", {"user_id": "idem"})["total"] == 1
    assert len(outbox(server.db_url, first.json()["id"])) == 1


def test_fifty_parallel_identical_creates_make_one_session(api: Api, game: Game) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: api.post(CREATE, create_body(game, "racer"), headers=key), range(50)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    assert len({r.content for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert api.ok("PaymentService/ListSessions", {"user_id": "racer"})["total"] == 1


def test_different_body_is_refused(api: Api, game: Game) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    api.ok(CREATE, create_body(game), headers=key)
    api.refused(CREATE, create_body(game, "other"), "idempotency_key_reused", "invalid_argument", headers=key)
    # Same key on a different RPC is a different request too.
    api.refused(
        "PaymentService/CancelSession", {"id": "sess_x"}, "idempotency_key_reused", "invalid_argument", headers=key
    )


def test_keys_are_scoped_to_the_api_key(server: Server, game: Game) -> None:
    other = server.create_game()
    key = {"Idempotency-Key": "shared-key"}
    mine = server.api(game.sandbox_key).ok(CREATE, create_body(game), headers=key)
    theirs = server.api(other.sandbox_key).ok(CREATE, create_body(other), headers=key)
    assert mine["id"] != theirs["id"]


def test_validation_errors_are_not_stored(api: Api, game: Game) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    bad = create_body(game) | {"item": {"title": "Gems", "price": 100, "currency": "XXX"}}
    api.refused(CREATE, bad, "invalid_currency", "invalid_argument", headers=key)
    # The client fixes the request and retries with the same key.
    api.ok(CREATE, create_body(game), headers=key)


def test_cancel_replay(api: Api, game: Game, server: Server) -> None:
    created = api.create_session(game.game_id)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post("PaymentService/CancelSession", {"id": created["id"]}, headers=key)
    again = api.post("PaymentService/CancelSession", {"id": created["id"]}, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert [e["event"] for e in outbox(server.db_url, created["id"])] == ["session.created", "session.cancelled"]


def test_read_only_rpcs_ignore_the_header(api: Api, game: Game) -> None:
    created = api.create_session(game.game_id)
    key = {"Idempotency-Key": "read"}
    api.ok("PaymentService/GetSession", {"id": created["id"]}, headers=key)
    api.ok("PaymentService/GetSessionStatus", {"id": created["id"]}, headers=key)


def test_invalid_idempotency_key(api: Api, game: Game) -> None:
    api.refused(
        CREATE, create_body(game), "invalid_idempotency_key", "invalid_argument", headers={"Idempotency-Key": "k" * 256}
    )
    api.refused(
        CREATE, create_body(game), "invalid_idempotency_key", "invalid_argument", headers={"Idempotency-Key": ""}
    )
    api.refused(
        CREATE,
        create_body(game),
        "invalid_idempotency_key",
        "invalid_argument",
        headers={"Idempotency-Key": "caf\u00e9".encode("latin-1")},
    )
    api.ok(CREATE, create_body(game), headers={"Idempotency-Key": "k" * 255})


def test_key_still_in_use_by_another_process(server: Server, game: Game, tmp_path) -> None:
    """A request still running elsewhere: the repeat waits briefly, then says so."""
    from toffeepay_server.api.gateway import request_fingerprint
    from toffeepay_server.store.types import Instant

    impatient = Server(
        server.db_url, tmp_path, env={"TOFFEEPAY_IDEMPOTENCY_WAIT": "0.3", "TOFFEEPAY_BACKGROUND": "0"}
    ).start()
    try:
        api = impatient.api(game.sandbox_key)
        body = json.dumps(create_body(game)).encode()
        key_id = sql(
            server.db_url, "SELECT id FROM api_keys WHERE game_id = :g AND mode = 'sandbox'", {"g": game.game_id}
        )[0][0]
        now = datetime.now(UTC)
        sql(
            server.db_url,
            "INSERT INTO idempotency_keys (api_key_id, key, request_hash, state, locked_until, created_at) "
            "VALUES (:a, 'busy', :h, 'running', :until, :now)",
            {
                "a": key_id,
                "h": request_fingerprint("/pay.v1.PaymentService/CreateSession", "application/json", body),
                "until": Instant().process_bind_param(now + timedelta(seconds=60), None),
                "now": Instant().process_bind_param(now, None),
            },
        )
        error = api.refused(
            CREATE, None, "idempotency_key_in_use", "aborted", content=body, headers={"Idempotency-Key": "busy"}
        )
        assert error["code"] == "aborted"
        # A run whose process died is taken over once its lease is over.
        sql(
            server.db_url,
            "UPDATE idempotency_keys SET locked_until = :t WHERE key = 'busy'",
            {"t": Instant().process_bind_param(now - timedelta(seconds=1), None)},
        )
        assert api.post(CREATE, content=body, headers={"Idempotency-Key": "busy"}).status_code == 200
    finally:
        impatient.stop()


def test_gzip_retries_are_the_same_request(api: Api, game: Game) -> None:
    """gzip stamps the time into its header, so two compressions of one body differ."""
    import gzip

    body = json.dumps(create_body(game, "gzipped")).encode()
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Encoding": "gzip"}
    first = api.post(CREATE, content=gzip.compress(body, mtime=1), headers=headers)
    again = api.post(CREATE, content=gzip.compress(body, mtime=2), headers=headers)
    assert first.status_code == again.status_code == 200, again.text
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    api.refused(CREATE, None, "invalid_argument", "invalid_argument", content=b"not gzip", headers=headers)
