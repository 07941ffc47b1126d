"""Payments through the API: every transition, its events, and the reads that show it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.payments_support import CARDS, PageClient, payments_of, session_events, wait_for, wait_settled
from tests.support import Api, Game, Server, lapse

OUTCOMES = {
    "succeeded": ("paid", None),
    "insufficient_funds": ("failed", "insufficient_funds"),
    "card_declined": ("failed", "card_declined"),
    "partial": ("failed", "partial_payment"),
}


@pytest.fixture(scope="module")
def slow_server(db_url: str, server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second server on the same database whose page payments stay `processing` for a minute."""
    srv = Server(db_url, tmp_path_factory.mktemp("slow"), env={"TOFFEEPAY_SANDBOX_SETTLE_SECONDS": "60"}).start()
    yield srv
    srv.stop()


def pay(api: Api, session_id: str, method: str = "card", outcome: str = "succeeded") -> dict:
    return api.ok("SandboxService/PaySession", {"session_id": session_id, "method": method, "outcome": outcome})


@pytest.mark.parametrize("method", ["apple_pay", "google_pay", "card"])
@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_pay_session_settles_payment_and_session_together(api: Api, game: Game, method: str, outcome: str) -> None:
    session = api.create_session(game.game_id)
    payment = pay(api, session["id"], method, outcome)
    status, code = OUTCOMES[outcome]
    assert payment["id"].startswith("pay_") and len(payment["id"]) == 30
    assert payment["session_id"] == session["id"]
    assert payment["status"] == ("succeeded" if status == "paid" else "failed")
    assert (payment["amount"], payment["currency"], payment["method"]) == (499, "USD", method)
    assert (payment["details"], payment["game_id"], payment["user_id"]) == ("50 Gold Coins", game.game_id, "player_42")
    assert payment["created_at"].endswith("Z")
    assert payment.get("failure_code") == code
    if code:
        assert payment["failure_message"] and payment["failed_at"] and "succeeded_at" not in payment
    else:
        assert payment["succeeded_at"] and "failed_at" not in payment and "failure_message" not in payment
    assert payment.get("amount_received") == (249 if outcome == "partial" else None)

    got = api.ok("PaymentService/GetSession", {"id": session["id"]})
    assert got["status"] == status and got["payment_id"] == payment["id"]
    assert got[f"{status}_at"] == payment.get("succeeded_at", payment.get("failed_at"))
    assert api.ok("PaymentService/GetPayment", {"id": payment["id"]}) == payment
    assert api.ok("PaymentService/GetPayment", {"payment_id": payment["id"]}) == payment


def test_payment_events_carry_the_session_sequence(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id, metadata={"order_id": "1001"})
    payment = pay(api, session["id"], "apple_pay")
    rows = session_events(server, session["id"])
    assert [(r["type"], r["sequence"]) for r in rows] == [
        ("session.created", 1),
        ("payment.created", 2),
        ("payment.succeeded", 3),
        ("session.paid", 4),
    ]
    for row in rows:
        assert row["body"]["data"]["sequence"] == row["sequence"]
        assert row["body"]["mode"] == "sandbox"
    created, succeeded, paid = (r["body"]["data"] for r in rows[1:])
    assert created["status"] == "processing" and "previous_status" not in created
    assert created["payment_id"] == payment["id"] and created["metadata"] == {"order_id": "1001"}
    assert (succeeded["status"], succeeded["previous_status"]) == ("succeeded", "processing")
    assert succeeded["succeeded_at"] == payment["succeeded_at"]
    assert {k: succeeded[k] for k in ("amount", "currency", "method", "game_id", "user_id")} == {
        "amount": 499,
        "currency": "USD",
        "method": "apple_pay",
        "game_id": game.game_id,
        "user_id": "player_42",
    }
    assert (paid["status"], paid["previous_status"], paid["payment_id"]) == ("paid", "pending", payment["id"])


def test_failed_payment_events(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    pay(api, session["id"], "google_pay", "partial")
    rows = session_events(server, session["id"])
    assert [(r["type"], r["sequence"]) for r in rows] == [
        ("session.created", 1),
        ("payment.created", 2),
        ("payment.failed", 3),
        ("session.failed", 4),
    ]
    failed, session_failed = rows[2]["body"]["data"], rows[3]["body"]["data"]
    assert (failed["failure_code"], failed["amount_received"], failed["previous_status"]) == (
        "partial_payment",
        249,
        "processing",
    )
    assert (session_failed["status"], session_failed["previous_status"]) == ("failed", "pending")


def test_list_payments_shows_succeeded_payments_only(api: Api, game: Game) -> None:
    paid = [pay(api, api.create_session(game.game_id, user_id="player_7")["id"]) for _ in range(2)]
    pay(api, api.create_session(game.game_id, user_id="player_7")["id"], outcome="card_declined")
    other = pay(api, api.create_session(game.game_id, user_id="player_8")["id"], method="apple_pay")
    listed = api.ok("PaymentService/ListPayments", {"game_id": game.game_id, "user_id": "player_7"})
    assert (listed["total"], listed["has_more"]) == (2, False)
    assert [p["id"] for p in listed["payments"]] == [p["id"] for p in reversed(paid)]
    everything = api.ok("PaymentService/ListPayments", {"limit": 2})
    assert (everything["total"], everything["has_more"]) == (3, True)
    assert everything["payments"][0] == other


def test_a_settled_session_takes_no_second_payment(api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    first = pay(api, session["id"], outcome="insufficient_funds")
    api.refused(
        "SandboxService/PaySession", {"session_id": session["id"]}, "session_not_pending", "failed_precondition"
    )
    api.refused("PaymentService/CancelSession", {"id": session["id"]}, "session_not_pending", "failed_precondition")
    api.refused(
        "SandboxService/ExpireSession", {"session_id": session["id"]}, "session_not_pending", "failed_precondition"
    )
    assert api.ok("PaymentService/GetSession", {"id": session["id"]})["payment_id"] == first["id"]


def test_cancelled_and_expired_sessions_take_no_payment(api: Api, game: Game) -> None:
    cancelled = api.create_session(game.game_id)
    api.ok("PaymentService/CancelSession", {"id": cancelled["id"]})
    api.refused(
        "SandboxService/PaySession", {"session_id": cancelled["id"]}, "session_not_pending", "failed_precondition"
    )
    expired = api.create_session(game.game_id)
    api.ok("SandboxService/ExpireSession", {"session_id": expired["id"]})
    api.refused("SandboxService/PaySession", {"session_id": expired["id"]}, "session_expired", "failed_precondition")
    assert "payment_id" not in api.ok("PaymentService/GetSession", {"id": cancelled["id"]})
    assert "payment_id" not in api.ok("PaymentService/GetSession", {"id": expired["id"]})


def test_expire_session(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    expired = api.ok("SandboxService/ExpireSession", {"session_id": session["id"]})
    assert expired["id"] == session["id"] and expired["status"] == "expired"
    assert expired["expired_at"] == expired["expires_at"] and expired["url"] == session["url"]
    assert api.ok("SandboxService/ExpireSession", {"session_id": session["id"]}) == expired  # already expired
    assert api.ok("PaymentService/GetSessionStatus", {"id": session["id"]})["status"] == "expired"
    assert [r["type"] for r in session_events(server, session["id"])] == ["session.created", "session.expired"]
    api.refused("PaymentService/CancelSession", {"id": session["id"]}, "session_expired", "failed_precondition")


def test_sandbox_service_refuses_live_keys_and_bad_requests(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    live = server.api(game.live_key)
    for rpc, body in [
        ("SandboxService/PaySession", {"session_id": session["id"]}),
        ("SandboxService/ExpireSession", {"session_id": session["id"]}),
        ("SandboxService/CreateDispute", {"payment_id": "pay_01kw1w89abcdefghijklmnopqr"}),
    ]:
        live.refused(rpc, body, "sandbox_only", "permission_denied")
    api.refused("SandboxService/PaySession", {}, "invalid_argument", "invalid_argument")
    api.refused(
        "SandboxService/PaySession",
        {"session_id": session["id"], "method": "paypal"},
        "invalid_argument",
        "invalid_argument",
    )
    api.refused(
        "SandboxService/PaySession",
        {"session_id": session["id"], "outcome": "lucky"},
        "invalid_argument",
        "invalid_argument",
    )
    api.refused(
        "SandboxService/PaySession", {"session_id": "sess_01kw1w89abcdefghijklmnopqr"}, "not_found", "not_found"
    )
    api.refused(
        "SandboxService/ExpireSession", {"session_id": "sess_01kw1w89abcdefghijklmnopqr"}, "not_found", "not_found"
    )
    # Another game's session does not exist for this key.
    other = server.create_game()
    foreign = server.api(other.sandbox_key).create_session(other.game_id)
    api.refused("SandboxService/PaySession", {"session_id": foreign["id"]}, "not_found", "not_found")
    assert api.ok("PaymentService/GetSession", {"id": session["id"]})["status"] == "pending"
    assert payments_of(server, session["id"]) == []


def test_live_sessions_have_no_sandbox_payments(server: Server, game: Game) -> None:
    live = server.api(game.live_key)
    session = live.create_session(game.game_id)
    sandbox = server.api(game.sandbox_key)
    sandbox.refused("SandboxService/PaySession", {"session_id": session["id"]}, "not_found", "not_found")
    page = PageClient(session["url"])
    assert page.open().status_code == 200
    refused = page.pay("apple_pay")  # the live processor (Stripe) takes cards only
    assert refused.status_code == 400 and "Apple Pay is not available" in refused.text
    assert payments_of(server, session["id"]) == []


def test_payments_of_other_games_and_modes_do_not_exist(server: Server, api: Api, game: Game) -> None:
    payment = pay(api, api.create_session(game.game_id)["id"])
    server.api(game.live_key).refused("PaymentService/GetPayment", {"id": payment["id"]}, "not_found", "not_found")
    other = server.create_game()
    server.api(other.sandbox_key).refused("PaymentService/GetPayment", {"id": payment["id"]}, "not_found", "not_found")
    assert server.api(other.sandbox_key).ok("PaymentService/ListPayments", {})["total"] == 0


def test_page_payment_is_processing_until_the_processor_notifies(
    slow_server: Server, server: Server, game: Game
) -> None:
    """While processing: the session stays pending, cannot be cancelled or expired, and takes no other payment."""
    api = slow_server.api(game.sandbox_key)
    session = api.create_session(game.game_id)
    page = PageClient(session["url"])
    page.open()
    answer = page.pay("card")
    assert (answer.status_code, answer.headers["location"]) == (303, session["url"])
    assert page.state() == "processing"
    got = api.ok("PaymentService/GetSession", {"id": session["id"]})
    assert got["status"] == "pending" and got["payment_id"].startswith("pay_")
    payment = api.ok("PaymentService/GetPayment", {"id": got["payment_id"]})
    assert payment["status"] == "processing" and "succeeded_at" not in payment and "failed_at" not in payment
    assert api.ok("PaymentService/ListPayments", {})["total"] == 0
    api.refused("PaymentService/CancelSession", {"id": session["id"]}, "payment_in_progress", "failed_precondition")
    api.refused(
        "SandboxService/ExpireSession", {"session_id": session["id"]}, "payment_in_progress", "failed_precondition"
    )
    api.refused(
        "SandboxService/PaySession", {"session_id": session["id"]}, "payment_in_progress", "failed_precondition"
    )
    assert page.pay("apple_pay").status_code == 303  # a second submission just shows the payment under way
    assert page.cancel().status_code == 303
    assert page.open().status_code == 200 and "Processing your payment" in page.open().text
    assert [p["id"] for p in payments_of(server, session["id"])] == [payment["id"]]
    assert [r["type"] for r in session_events(server, session["id"])] == ["session.created", "payment.created"]


def test_page_payment_settles_asynchronously(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    page = PageClient(session["url"])
    page.open()
    assert page.pay("card", number=CARDS["insufficient_funds"]).status_code == 303
    settled = wait_settled(api, session["id"])
    assert settled["status"] == "failed"
    payment = api.ok("PaymentService/GetPayment", {"id": settled["payment_id"]})
    assert (payment["status"], payment["failure_code"], payment["method"]) == ("failed", "insufficient_funds", "card")
    assert page.state() == "failed"
    assert [(r["type"], r["sequence"]) for r in session_events(server, session["id"])] == [
        ("session.created", 1),
        ("payment.created", 2),
        ("payment.failed", 3),
        ("session.failed", 4),
    ]


def test_processor_error_fails_the_payment_at_once(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    page = PageClient(session["url"])
    page.open()
    page.pay("card", number="4000 0000 0000 0119")
    assert page.state() == "failed"
    payment = api.ok(
        "PaymentService/GetPayment", {"id": api.ok("PaymentService/GetSession", {"id": session["id"]})["payment_id"]}
    )
    assert payment["failure_code"] == "processor_error"
    via_api = pay(api, api.create_session(game.game_id)["id"], "apple_pay", "processor_error")
    assert via_api["failure_code"] == "processor_error"


def test_create_dispute(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id, user_id="player_9")
    payment = pay(api, session["id"])
    dispute = api.ok("SandboxService/CreateDispute", {"payment_id": payment["id"], "reason": "fraudulent"})
    assert dispute["id"].startswith("dp_") and len(dispute["id"]) == 29
    assert {
        k: dispute[k] for k in ("payment_id", "reason", "amount", "currency", "game_id", "session_id", "user_id")
    } == {
        "payment_id": payment["id"],
        "reason": "fraudulent",
        "amount": 499,
        "currency": "USD",
        "game_id": game.game_id,
        "session_id": session["id"],
        "user_id": "player_9",
    }
    partial = api.ok(
        "SandboxService/CreateDispute", {"payment_id": payment["id"], "reason": "product_not_received", "amount": 100}
    )
    assert partial["amount"] == 100 and partial["id"] != dispute["id"]
    listed = api.ok("PaymentService/ListDisputes", {"payment_id": payment["id"]})
    assert [d["id"] for d in listed["disputes"]] == [partial["id"], dispute["id"]]
    rows = session_events(server, session["id"])
    assert [(r["type"], r["sequence"]) for r in rows[-2:]] == [("dispute.created", 5), ("dispute.created", 6)]
    data = rows[-2]["body"]["data"]
    assert (data["dispute_id"], data["payment_id"], data["user_id"], data["amount"]) == (
        dispute["id"],
        payment["id"],
        "player_9",
        499,
    )
    # The session itself is unchanged.
    assert api.ok("PaymentService/GetSession", {"id": session["id"]})["status"] == "paid"


def test_create_dispute_refusals(server: Server, api: Api, game: Game) -> None:
    failed = pay(api, api.create_session(game.game_id)["id"], outcome="card_declined")
    api.refused("SandboxService/CreateDispute", {"payment_id": failed["id"]}, "invalid_argument", "invalid_argument")
    paid = pay(api, api.create_session(game.game_id)["id"])
    for amount in (0, 500, -1):
        api.refused(
            "SandboxService/CreateDispute",
            {"payment_id": paid["id"], "amount": amount},
            "invalid_argument",
            "invalid_argument",
        )
    api.refused(
        "SandboxService/CreateDispute",
        {"payment_id": paid["id"], "reason": "x" * 501},
        "invalid_argument",
        "invalid_argument",
    )
    api.refused("SandboxService/CreateDispute", {}, "invalid_argument", "invalid_argument")
    api.refused(
        "SandboxService/CreateDispute", {"payment_id": "pay_01kw1w89abcdefghijklmnopqr"}, "not_found", "not_found"
    )
    defaulted = api.ok("SandboxService/CreateDispute", {"payment_id": paid["id"]})
    assert (defaulted["reason"], defaulted["amount"]) == ("fraudulent", 499)
    assert api.ok("PaymentService/ListDisputes", {})["total"] == 1


def test_pay_session_is_idempotent_with_a_key(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    body = {"session_id": session["id"], "method": "card"}
    first = api.post("SandboxService/PaySession", body, headers={"Idempotency-Key": "pay-1"})
    again = api.post("SandboxService/PaySession", body, headers={"Idempotency-Key": "pay-1"})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert len(payments_of(server, session["id"])) == 1


def test_sandbox_outcome_defaults(api: Api, game: Game) -> None:
    payment = api.ok("SandboxService/PaySession", {"session_id": api.create_session(game.game_id)["id"]})
    assert (payment["method"], payment["status"]) == ("card", "succeeded")
    assert wait_for(lambda: api.ok("PaymentService/ListPayments", {})["total"] == 1)


def test_a_lapsed_session_takes_no_payment(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    page = PageClient(session["url"])
    page.open()
    lapse(server.db_url, session["id"])
    api.refused("SandboxService/PaySession", {"session_id": session["id"]}, "session_expired", "failed_precondition")
    late = page.pay("card")
    assert (late.status_code, late.headers["location"]) == (303, session["url"])
    assert page.open().status_code == 410
    assert payments_of(server, session["id"]) == []
    assert wait_for(lambda: [r["type"] for r in session_events(server, session["id"])][-1] == "session.expired")


def test_a_processing_payment_outlives_expires_at(slow_server: Server, server: Server, game: Game) -> None:
    api = slow_server.api(game.sandbox_key)
    session = api.create_session(game.game_id)
    page = PageClient(session["url"])
    page.open()
    page.pay("google_pay")
    lapse(server.db_url, session["id"])
    api.refused(
        "SandboxService/ExpireSession", {"session_id": session["id"]}, "payment_in_progress", "failed_precondition"
    )
    # A sweep passes it by: a witness lapsed after it expires, so a sweep ran since both lapsed.
    witness = api.create_session(game.game_id)["id"]
    lapse(server.db_url, witness)
    assert wait_for(lambda: [r["type"] for r in session_events(server, witness)][-1] == "session.expired")
    got = api.ok("PaymentService/GetSession", {"id": session["id"]})
    assert got["status"] == "pending" and "payment_id" in got and page.state() == "processing"
    assert [r["type"] for r in session_events(server, session["id"])] == ["session.created", "payment.created"]
