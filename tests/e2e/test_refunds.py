"""Refunds end to end: `toffeepay serve` on a port, plain JSON and the SDK, a receiver, localstripe as Stripe."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import toffeepay

from tests.payments_support import PageClient, wait_for
from tests.receiver import Receiver
from tests.stripe_support import (
    NOTIFICATION_PATH,
    SUCCEEDS,
    LocalStripe,
    PendingRefundsProxy,
    event,
    notify,
    stripe_env,
)
from tests.support import Api, Game, Server, run_async
from toffeepay_server.domain.payments import Method
from toffeepay_server.services import payments
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store.database import Database


@pytest.fixture(scope="module")
def stripe_proxy(localstripe: LocalStripe) -> Iterator[PendingRefundsProxy]:
    proxy = PendingRefundsProxy(localstripe.url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def srv(
    db_url: str, localstripe: LocalStripe, stripe_proxy: PendingRefundsProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server whose Stripe is localstripe (through a proxy that can hold refunds pending) and whose
    sandbox webhooks may reach the receivers on loopback."""
    env = {**stripe_env(stripe_proxy.url), "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}
    server = Server(db_url, tmp_path_factory.mktemp("refunds"), env=env)
    localstripe.send_webhooks_to("refunds", server.url + NOTIFICATION_PATH)
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def srv2(
    db_url: str, srv: Server, stripe_proxy: PendingRefundsProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A second server process on the same database, as behind a load balancer."""
    env = {**stripe_env(stripe_proxy.url), "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}
    server = Server(db_url, tmp_path_factory.mktemp("refunds-2"), env=env).start()
    yield server
    server.stop()


@pytest.fixture
def game(srv: Server) -> Game:
    return srv.create_game()


@pytest.fixture
def api(srv: Server, game: Game) -> Api:
    return srv.api(game.sandbox_key)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def paid(api: Api, game: Game, price: int = 499, **session: Any) -> tuple[str, str]:
    """A sandbox session paid in full: (session id, payment id)."""
    created = api.create_session(
        game.game_id, item={"title": "50 Gold Coins", "price": price, "currency": "USD"}, **session
    )
    payment = api.ok("SandboxService/PaySession", {"session_id": created["id"], "outcome": "succeeded"})
    assert payment["status"] == "succeeded"
    return created["id"], payment["id"]


def settled(api: Api, refund_id: str) -> dict[str, Any]:
    """The refund once its processor settled it."""
    return wait_for(lambda: (r := api.ok("PaymentService/GetRefund", {"id": refund_id}))["status"] != "pending" and r)


def refund(api: Api, payment_id: str, **body: Any) -> dict[str, Any]:
    return api.ok("PaymentService/RefundPayment", {"payment_id": payment_id, **body})


# Full and partial refunds


def test_a_full_refund_gives_back_the_whole_payment(api: Api, game: Game) -> None:
    session_id, payment_id = paid(api, game)
    created = refund(api, payment_id)
    assert created["id"].startswith("re_") and len(created["id"]) == len("re_") + 26
    assert {k: created[k] for k in ("payment_id", "session_id", "amount", "currency", "reason", "status")} == {
        "payment_id": payment_id,
        "session_id": session_id,
        "amount": 499,
        "currency": "USD",
        "reason": "requested_by_customer",
        "status": "pending",
    }
    assert "succeeded_at" not in created and "failure_code" not in created
    before = api.ok("PaymentService/GetPayment", {"id": payment_id})
    assert before["amount_refunded"] == 0 and "refunded_at" not in before  # pending is not refunded yet

    done = settled(api, created["id"])
    assert done["status"] == "succeeded" and done["succeeded_at"] >= done["created_at"]
    payment = api.ok("PaymentService/GetPayment", {"id": payment_id})
    assert payment["status"] == "succeeded" and payment["amount_refunded"] == 499
    assert payment["refunded_at"] == done["succeeded_at"]
    assert api.ok("PaymentService/GetSession", {"id": session_id})["status"] == "paid"  # the session stays paid

    api.refused("PaymentService/RefundPayment", {"payment_id": payment_id}, "invalid_refund_amount", "invalid_argument")
    api.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "amount": 1},
        "invalid_refund_amount",
        "invalid_argument",
    )


def test_partial_refunds_add_up_to_the_payment_and_not_one_cent_more(api: Api, game: Game) -> None:
    _session_id, payment_id = paid(api, game)
    first = refund(api, payment_id, amount=200, reason="duplicate")
    assert (first["amount"], first["reason"]) == (200, "duplicate")
    # Pending counts as taken: 299 is left while the first is still pending.
    error = api.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "amount": 300},
        "invalid_refund_amount",
        "invalid_argument",
    )
    assert "1..299" in error["message"]
    settled(api, first["id"])
    halfway = api.ok("PaymentService/GetPayment", {"id": payment_id})
    assert halfway["amount_refunded"] == 200 and "refunded_at" not in halfway

    api.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "amount": 300},
        "invalid_refund_amount",
        "invalid_argument",
    )
    rest = refund(api, payment_id, amount=299, reason="other")
    assert settled(api, rest["id"])["status"] == "succeeded"
    payment = api.ok("PaymentService/GetPayment", {"id": payment_id})
    assert payment["amount_refunded"] == 499 and "refunded_at" in payment

    listed = api.ok("PaymentService/ListRefunds", {"payment_id": payment_id})
    assert [r["id"] for r in listed["refunds"]] == [rest["id"], first["id"]]  # newest first
    assert (listed["total"], listed["has_more"]) == (2, False)
    page = api.ok("PaymentService/ListRefunds", {"payment_id": payment_id, "limit": 1})
    assert ([r["id"] for r in page["refunds"]], page["total"], page["has_more"]) == ([rest["id"]], 2, True)


def test_a_refund_the_processor_fails_frees_its_amount(api: Api, game: Game) -> None:
    _session_id, payment_id = paid(api, game)
    failing = api.ok("SandboxService/CreateRefund", {"payment_id": payment_id, "amount": 400, "outcome": "failed"})
    assert failing["status"] == "pending"
    api.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "amount": 100},
        "invalid_refund_amount",
        "invalid_argument",
    )
    failed = settled(api, failing["id"])
    assert (failed["status"], failed["failure_code"]) == ("failed", "declined") and "failed_at" in failed
    assert api.ok("PaymentService/GetPayment", {"id": payment_id})["amount_refunded"] == 0
    assert refund(api, payment_id)["amount"] == 499  # all of it is refundable again


# Refused refunds


def start_processing(server: Server, session_id: str) -> str:
    """A payment the sandbox has not answered yet (as while a player's payment is under way)."""

    async def start() -> str:
        ctx = ServiceContext(db=Database(server.db_url, pool_size=1), public_url=server.url)
        try:
            payment = await payments.start_payment(ctx, session_id, method=Method.CARD, processor="sandbox")
            return payment.id
        finally:
            await ctx.db.dispose()

    return run_async(start)


def test_only_a_succeeded_payment_can_be_refunded(srv: Server, api: Api, game: Game) -> None:
    declined = api.create_session(game.game_id)
    failed = api.ok("SandboxService/PaySession", {"session_id": declined["id"], "outcome": "insufficient_funds"})
    error = api.refused(
        "PaymentService/RefundPayment", {"payment_id": failed["id"]}, "payment_not_refundable", "failed_precondition"
    )
    assert "failed" in error["message"]

    processing = start_processing(srv, api.create_session(game.game_id)["id"])
    error = api.refused(
        "PaymentService/RefundPayment", {"payment_id": processing}, "payment_not_refundable", "failed_precondition"
    )
    assert "processing" in error["message"]
    assert api.ok("PaymentService/ListRefunds", {})["total"] == 0


def test_bad_refund_requests_are_refused_with_their_reason(srv: Server, api: Api, game: Game) -> None:
    _session_id, payment_id = paid(api, game)
    for amount in (0, -1, 500, 2**31 - 1):
        api.refused(
            "PaymentService/RefundPayment",
            {"payment_id": payment_id, "amount": amount},
            "invalid_refund_amount",
            "invalid_argument",
        )
    api.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "amount": 1.5},
        "invalid_argument",
        "invalid_argument",
    )
    api.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "reason": "changed_mind"},
        "invalid_argument",
        "invalid_argument",
    )
    api.refused("PaymentService/RefundPayment", {}, "invalid_argument", "invalid_argument")
    api.refused("PaymentService/RefundPayment", {"payment_id": "pay_nope"}, "not_found", "not_found")
    api.refused("PaymentService/GetRefund", {"id": "re_nope"}, "not_found", "not_found")
    for rpc, body in (
        ("PaymentService/RefundPayment", {"payment_id": "pay_\u0000x"}),
        ("PaymentService/GetRefund", {"id": "re_\u0000x"}),
        ("PaymentService/ListRefunds", {"payment_id": "pay_\u0007"}),
    ):
        error = api.refused(rpc, body, "invalid_argument", "invalid_argument")
        assert "control characters" in error["message"]
    api.refused(
        "SandboxService/CreateRefund",
        {"payment_id": payment_id, "outcome": "maybe"},
        "invalid_argument",
        "invalid_argument",
    )
    # Another game's payment and refunds do not exist for this key; nor does live data for a sandbox key.
    other = srv.api(srv.create_game().sandbox_key)
    created = refund(api, payment_id, amount=1)
    other.refused("PaymentService/RefundPayment", {"payment_id": payment_id}, "not_found", "not_found")
    other.refused("PaymentService/GetRefund", {"id": created["id"]}, "not_found", "not_found")
    assert other.ok("PaymentService/ListRefunds", {})["total"] == 0
    live = srv.api(game.live_key)
    live.refused("PaymentService/GetRefund", {"id": created["id"]}, "not_found", "not_found")
    live.refused("SandboxService/CreateRefund", {"payment_id": payment_id}, "sandbox_only", "permission_denied")
    assert api.ok("PaymentService/ListRefunds", {"payment_id": payment_id})["total"] == 1


# Concurrency and idempotency


def test_twenty_concurrent_refunds_never_add_up_to_more_than_was_paid(api: Api, game: Game, srv2: Server) -> None:
    _session_id, payment_id = paid(api, game)
    start = threading.Barrier(20)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def ask(base_url: str) -> None:
        with httpx.Client(timeout=60) as client:
            start.wait()
            answer = client.post(
                f"{base_url}/pay.v1.PaymentService/RefundPayment",
                json={"payment_id": payment_id, "amount": 30},
                headers={"Authorization": f"Bearer {api.key}"},
            )
        with lock:
            answers.append(answer)

    # Half to each of two server processes on the one database.
    threads = [threading.Thread(target=ask, args=((api.base_url, srv2.url)[i % 2],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    accepted = [a.json() for a in answers if a.status_code == 200]
    refused = [a.json() for a in answers if a.status_code != 200]
    assert len(accepted) == 499 // 30  # 16 of them fit in 499
    assert all(e["message"].startswith("invalid_refund_amount: ") for e in refused) and len(refused) == 4
    assert len({r["id"] for r in accepted}) == 16
    for r in accepted:
        settled(api, r["id"])
    assert api.ok("PaymentService/GetPayment", {"id": payment_id})["amount_refunded"] == 480
    assert api.ok("PaymentService/ListRefunds", {"payment_id": payment_id})["total"] == 16


def test_twenty_concurrent_full_refunds_take_the_money_back_once(api: Api, game: Game) -> None:
    _session_id, payment_id = paid(api, game)

    async def race() -> list[Any]:
        client = toffeepay.AsyncToffeePay(api.key or "", base_url=api.base_url, max_retries=0)
        return await asyncio.gather(*(client.refunds.create(payment_id) for _ in range(20)), return_exceptions=True)

    results = run_async(race)
    refunds = [r for r in results if isinstance(r, toffeepay.types.Refund)]
    errors = [r for r in results if not isinstance(r, toffeepay.types.Refund)]
    assert len(refunds) == 1 and refunds[0].amount == 499
    assert len(errors) == 19 and all(
        isinstance(e, toffeepay.InvalidRequestError) and e.reason == "invalid_refund_amount" for e in errors
    )


def test_an_idempotency_key_replays_the_refund_instead_of_refunding_twice(api: Api, game: Game) -> None:
    _session_id, payment_id = paid(api, game)
    key = {"Idempotency-Key": f"refund-{uuid.uuid4()}"}
    body = {"payment_id": payment_id, "amount": 100}
    first = api.post("PaymentService/RefundPayment", body, headers=key)
    again = api.post("PaymentService/RefundPayment", body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers.get("idempotent-replayed") == "true"
    assert api.ok("PaymentService/ListRefunds", {"payment_id": payment_id})["total"] == 1
    api.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "amount": 101},
        "idempotency_key_reused",
        "invalid_argument",
        headers=key,
    )
    # A refused refund is not stored: the client may fix it and retry with the same key.
    fixed = {"Idempotency-Key": f"refund-{uuid.uuid4()}"}
    api.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "amount": 1000},
        "invalid_refund_amount",
        "invalid_argument",
        headers=fixed,
    )
    assert (
        api.post("PaymentService/RefundPayment", {"payment_id": payment_id, "amount": 399}, headers=fixed).status_code
        == 200
    )


# What the game receives


def test_refund_events_arrive_in_the_sessions_sequence_and_as_legacy_callbacks(
    api: Api, game: Game, receiver: Receiver
) -> None:
    hooks = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/hooks")})
    receiver.expect("/hooks", hooks["secret"])
    legacy = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/legacy"), "format": "legacy_form"})
    receiver.expect("/legacy", legacy["secret"])
    session_id, payment_id = paid(api, game, metadata={"order": "A&B=1"}, user_id="player_9")
    succeeded = refund(api, payment_id, amount=150, reason="duplicate")
    settled(api, succeeded["id"])
    failing = api.ok("SandboxService/CreateRefund", {"payment_id": payment_id, "amount": 50, "outcome": "failed"})
    settled(api, failing["id"])

    got = receiver.wait_for("/hooks", 8)
    assert all(r.error is None for r in got), receiver.summary()
    by_sequence = sorted((r.event for r in got if r.event), key=lambda e: e["data"]["sequence"])
    assert [(e["event"], e["data"]["sequence"]) for e in by_sequence] == [
        ("session.created", 1),
        ("payment.created", 2),
        ("payment.succeeded", 3),
        ("session.paid", 4),
        ("refund.created", 5),
        ("refund.succeeded", 6),
        ("refund.created", 7),
        ("refund.failed", 8),
    ]
    created, done, _other, failed = by_sequence[4:]
    assert created["data"]["refund_id"] == done["data"]["refund_id"] == succeeded["id"]
    assert {k: done["data"][k] for k in ("id", "payment_id", "session_id", "game_id", "user_id")} == {
        "id": succeeded["id"],
        "payment_id": payment_id,
        "session_id": session_id,
        "game_id": game.game_id,
        "user_id": "player_9",
    }
    assert (done["data"]["amount"], done["data"]["currency"], done["data"]["reason"]) == (150, "USD", "duplicate")
    assert (done["data"]["status"], done["data"]["previous_status"]) == ("succeeded", "pending")
    assert "succeeded_at" in done["data"] and "created_at" in done["data"]
    assert created["data"]["status"] == "pending" and "previous_status" not in created["data"]
    assert (failed["data"]["status"], failed["data"]["failure_code"]) == ("failed", "declined")
    assert "failed_at" in failed["data"]

    # The legacy endpoint: PAID, then REFUNDED for the succeeded refund only, verified by the SDK.
    callbacks = receiver.wait_for("/legacy", 2)
    assert all(r.error is None and r.fields for r in callbacks), receiver.summary()
    fields = {r.fields["status"]: r.fields for r in callbacks if r.fields}
    refunded = fields["REFUNDED"]
    assert toffeepay.LegacyCallback.verify(refunded, legacy["secret"]) == refunded
    assert (refunded["transaction_id"], refunded["transaction_token"]) == (succeeded["id"], session_id)
    assert (refunded["amount"], refunded["paid_amount"], refunded["currency"]) == ("499", "150", "USD")
    assert (refunded["game_id"], refunded["user_id"]) == (game.game_id, "player_9")
    assert json.loads(refunded["custom_parameters"]) == {"order": "A&B=1"}
    # Every event has been delivered by now; the failed refund made no callback.
    receiver.wait(lambda: len(receiver.at("/hooks")) >= 8)
    assert sorted(r.fields["status"] for r in receiver.at("/legacy") if r.fields) == ["PAID", "REFUNDED"]


# The SDK and the command line


def test_the_sdk_creates_gets_and_lists_refunds(api: Api, game: Game) -> None:
    _session_id, payment_id = paid(api, game)
    client = toffeepay.ToffeePay(api.key or "", base_url=api.base_url)
    made = client.refunds.create(payment_id, amount=100, reason="fraudulent")
    assert (made.amount, made.reason, made.status, made.payment_id) == (100, "fraudulent", "pending", payment_id)
    assert client.refunds.get(made.id).id == made.id
    with pytest.raises(toffeepay.InvalidRequestError) as refused:
        client.refunds.create(payment_id, amount=400)
    assert refused.value.reason == "invalid_refund_amount"

    async def rest() -> tuple[Any, Any, Any]:
        aclient = toffeepay.AsyncToffeePay(api.key or "", base_url=api.base_url)
        second = await aclient.refunds.create(payment_id)
        return second, await aclient.refunds.get(second.id), await aclient.refunds.list(payment_id=payment_id)

    second, fetched, listed = run_async(rest)
    assert second.amount == 399 and fetched.id == second.id
    assert [r.id for r in listed] == [second.id, made.id] and listed.total == 2
    assert [r.id for r in client.refunds.list(payment_id=payment_id, limit=1).auto_paging_iter()] == [
        second.id,
        made.id,
    ]
    with pytest.raises(toffeepay.FailedPreconditionError) as not_refundable:
        failed = api.create_session(game.game_id)["id"]
        client.refunds.create(client.sandbox.pay_session(failed, outcome="card_declined").id)
    assert not_refundable.value.reason == "payment_not_refundable"


def test_the_command_line_refunds_and_triggers_refund_events(srv: Server, api: Api, game: Game) -> None:
    _session_id, payment_id = paid(api, game)
    env = ["--game", game.game_id, "--api-url", srv.url]
    made = json.loads(srv.cli("refunds", "create", payment_id, "--amount", "150", *env, "--json").stdout)
    assert (made["amount"], made["status"], made["payment_id"]) == (150, "pending", payment_id)
    whole = json.loads(srv.cli("refunds", "create", payment_id, *env, "--json").stdout)
    assert whole["amount"] == 349
    too_much = srv.cli("refunds", "create", payment_id, "--amount", "1", *env, check=False)
    assert too_much.returncode == 1 and "invalid_refund_amount" in too_much.stderr
    listed = json.loads(srv.cli("refunds", "list", "--payment", payment_id, *env, "--json").stdout)
    assert [r["id"] for r in listed["refunds"]] == [whole["id"], made["id"]]
    shown = srv.cli("refunds", "get", made["id"], *env).stdout
    assert made["id"] in shown and "1.50 USD" in shown

    triggered = json.loads(srv.cli("trigger", "refund.succeeded", *env, "--json").stdout)
    assert triggered["refund_id"].startswith("re_") and len(triggered["events"]) == 1
    assert api.ok("PaymentService/GetRefund", {"id": triggered["refund_id"]})["status"] == "succeeded"
    failed = json.loads(srv.cli("trigger", "refund.failed", *env, "--json").stdout)
    assert api.ok("PaymentService/GetRefund", {"id": failed["refund_id"]})["status"] == "failed"
    assert len(failed["events"]) == 1


# Stripe


def pay_live(live: Api, game: Game) -> tuple[str, str]:
    """A live session paid by card through Stripe on its payment page: (session id, payment id)."""
    created = live.create_session(game.game_id, user_id="player_7")
    page = PageClient(created["url"])
    assert page.open().status_code == 200
    assert page.pay("card", number=SUCCEEDS).status_code == 303
    session = live.ok("PaymentService/GetSession", {"id": created["id"]})
    assert session["status"] == "paid"
    return created["id"], session["payment_id"]


def live_events(live: Api, session_id: str) -> list[dict[str, Any]]:
    listed = live.ok("WebhookService/ListEvents", {"limit": 250})["events"]
    return sorted((e for e in listed if e["data"].get("session_id") == session_id), key=lambda e: e["data"]["sequence"])


def test_a_stripe_refund_goes_through_stripes_refunds_api(
    srv: Server, localstripe: LocalStripe, stripe_proxy: PendingRefundsProxy, game: Game
) -> None:
    live = srv.api(game.live_key)
    session_id, payment_id = pay_live(live, game)
    made = refund(live, payment_id, amount=199)
    # localstripe refunds at once, so Stripe's answer settles it.
    assert made["status"] == "succeeded" and made["amount"] == 199
    intent_id = live_processor_ref(srv, "payments", payment_id)
    stripe_refund_id = live_processor_ref(srv, "refunds", made["id"])
    at_stripe = localstripe.get(f"/v1/refunds/{stripe_refund_id}")
    assert (at_stripe["amount"], at_stripe["payment_intent"], at_stripe["status"]) == (199, intent_id, "succeeded")
    assert at_stripe["metadata"]["refund_id"] == made["id"] and at_stripe["metadata"]["payment_id"] == payment_id
    # One idempotency key per refund: a retried call is answered by Stripe, never paid out twice.
    assert stripe_proxy.refund_keys[stripe_refund_id] == f"toffeepay:{made['id']}:refund"
    assert live.ok("PaymentService/GetPayment", {"id": payment_id})["amount_refunded"] == 199
    assert [e["event"] for e in live_events(live, session_id)][-2:] == ["refund.created", "refund.succeeded"]
    live.refused(
        "PaymentService/RefundPayment",
        {"payment_id": payment_id, "amount": 301},
        "invalid_refund_amount",
        "invalid_argument",
    )


def live_processor_ref(server: Server, table: str, row_id: str) -> str:
    from tests.support import sql

    return sql(server.db_url, f"SELECT processor_ref FROM {table} WHERE id = :id", {"id": row_id})[0][0]


def test_a_pending_stripe_refund_is_settled_by_stripes_signed_notification(
    srv: Server, localstripe: LocalStripe, stripe_proxy: PendingRefundsProxy, game: Game
) -> None:
    live = srv.api(game.live_key)
    session_id, payment_id = pay_live(live, game)
    stripe_proxy.pending = True
    try:
        held = refund(live, payment_id, amount=300, reason="requested_by_customer")
        declined = refund(live, payment_id, amount=199)
    finally:
        stripe_proxy.pending = False
    assert held["status"] == declined["status"] == "pending"
    stripe_refund = localstripe.get(f"/v1/refunds/{live_processor_ref(srv, 'refunds', held['id'])}")

    # A notification that does not verify changes nothing.
    forged = notify(srv.url, event("refund.updated", stripe_refund), secret="whsec_not_stripes")
    assert forged.status_code == 400
    assert live.ok("PaymentService/GetRefund", {"id": held["id"]})["status"] == "pending"

    assert notify(srv.url, event("refund.updated", stripe_refund)).status_code == 200
    done = live.ok("PaymentService/GetRefund", {"id": held["id"]})
    assert done["status"] == "succeeded"
    # Stripe says the other one failed: its amount is free again.
    other = localstripe.get(f"/v1/refunds/{live_processor_ref(srv, 'refunds', declined['id'])}")
    failed_notice = {**other, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    assert notify(srv.url, event("refund.failed", failed_notice)).status_code == 200
    failed = live.ok("PaymentService/GetRefund", {"id": declined["id"]})
    assert (failed["status"], failed["failure_code"]) == ("failed", "declined")
    # A repeated notification (another event id) settles nothing twice.
    assert notify(srv.url, event("refund.updated", stripe_refund)).status_code == 200

    payment = live.ok("PaymentService/GetPayment", {"id": payment_id})
    assert payment["amount_refunded"] == 300 and "refunded_at" not in payment
    sent = [(e["event"], e["data"].get("refund_id")) for e in live_events(live, session_id)][-4:]
    assert sent == [
        ("refund.created", held["id"]),
        ("refund.created", declined["id"]),
        ("refund.succeeded", held["id"]),
        ("refund.failed", declined["id"]),
    ]


def test_a_stripe_payment_is_refunded_only_where_stripe_is_configured(
    db_url: str, srv: Server, game: Game, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _session_id, payment_id = pay_live(srv.api(game.live_key), game)
    unconfigured = Server(db_url, tmp_path_factory.mktemp("no-stripe")).start()
    try:
        unconfigured.api(game.live_key).refused(
            "PaymentService/RefundPayment", {"payment_id": payment_id}, "processor_unavailable", "failed_precondition"
        )
    finally:
        unconfigured.stop()
    assert srv.api(game.live_key).ok("PaymentService/ListRefunds", {})["total"] == 0
