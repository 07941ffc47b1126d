"""Live payments through Stripe, end to end: `toffeepay serve`, localstripe as Stripe, the real SDK.

Live webhook endpoints must be https on public addresses unless the operator lets them reach
its own network (TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS), so most tests read what a game is sent
from its live events (`WebhookService.ListEvents`), and one installation with that setting
delivers to a real receiver.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_database
from tests.payments_support import PageClient, payments_of, wait_for, wait_settled
from tests.receiver import Receiver
from tests.stripe_support import (
    DECLINED,
    NOTIFICATION_PATH,
    SUCCEEDS,
    LocalStripe,
    LosingProxy,
    dispute,
    event,
    notify,
    sign,
    stripe_env,
)
from tests.support import Api, Game, Server, run_async, sql
from toffeepay_server.domain.payments import Method
from toffeepay_server.services import payments
from toffeepay_server.services.context import ServiceContext
from toffeepay_server.store.database import Database


@pytest.fixture
def live(server: Server, game: Game) -> Api:
    return server.api(game.live_key)


@pytest.fixture(scope="module")
def losing_server(
    db_url: str, server: Server, localstripe: LocalStripe, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A second server on the same database whose Stripe answers to confirmations are lost on the way back.

    Stripe's notifications still reach `server` (the same installation), as behind a load balancer.
    """
    proxy = LosingProxy(localstripe.url)
    srv = Server(db_url, tmp_path_factory.mktemp("losing"), env=stripe_env(proxy.url)).start()
    yield srv
    srv.stop()
    proxy.close()


@pytest.fixture(scope="module")
def unconfigured(db_url: str, server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on the same database with no live processor configured."""
    srv = Server(db_url, tmp_path_factory.mktemp("no-stripe")).start()
    yield srv
    srv.stop()


def processor_ref(server: Server, payment_id: str) -> str:
    return sql(server.db_url, "SELECT processor_ref FROM payments WHERE id = :id", {"id": payment_id})[0][0]


def handled(server: Server, event_id: str) -> bool:
    rows = sql(
        server.db_url,
        "SELECT 1 FROM processor_notifications WHERE processor = 'stripe' AND notification_id = :id",
        {"id": event_id},
    )
    return bool(rows)


def stripe_event_about(localstripe: LocalStripe, type_: str, object_id: str) -> str:
    """The id of the event localstripe emitted about an object."""
    found = localstripe.get(f"/v1/events?type={type_}")["data"]
    return next(e["id"] for e in found if e["data"]["object"]["id"] == object_id)


def live_events(live: Api, session_id: str) -> list[dict[str, Any]]:
    """What the game's live endpoints are sent about one session, in the session's order."""
    listed = live.ok("WebhookService/ListEvents", {"limit": 250})["events"]
    return sorted((e for e in listed if e["data"].get("session_id") == session_id), key=lambda e: e["data"]["sequence"])


def pay_live(live: Api, game: Game, number: str, **session: Any) -> tuple[dict[str, Any], PageClient]:
    """A live session paid by card on its payment page."""
    created = live.create_session(game.game_id, **session)
    page = PageClient(created["url"])
    assert page.open().status_code == 200
    answer = page.pay("card", number=number)
    assert answer.status_code == 303 and answer.headers["location"] == created["url"], answer.text
    return created, page


def start_processing(server: Server, live: Api, game: Game, intent_id: str | None) -> tuple[str, str]:
    """A live session whose Stripe payment awaits Stripe's answer: (session id, payment id)."""
    session_id = live.create_session(game.game_id)["id"]

    async def start() -> str:
        ctx = ServiceContext(db=Database(server.db_url, pool_size=1), public_url=server.url)
        try:
            payment = await payments.start_payment(ctx, session_id, method=Method.CARD, processor="stripe")
            if intent_id:
                await payments.record_processor_ref(ctx, payment.id, intent_id)
            return payment.id
        finally:
            await ctx.db.dispose()

    return session_id, run_async(start)


def intent(
    intent_id: str, payment_id: str, status: str, *, amount: int = 499, error: dict[str, str] | None = None
) -> dict[str, Any]:
    """A PaymentIntent as Stripe's notifications carry it."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "usd",
        "status": status,
        "metadata": {"payment_id": payment_id},
        "last_payment_error": error,
        "payment_method_types": ["card"],
        "livemode": False,
    }


def new_intent_id() -> str:
    return f"pi_{uuid.uuid4().hex[:24]}"


# Paying


def test_a_live_card_payment_succeeds_end_to_end(
    server: Server, localstripe: LocalStripe, live: Api, game: Game
) -> None:
    page = PageClient(live.create_session(game.game_id, user_id="player_7", metadata={"order": "A-1"})["url"])
    shown = page.open()
    assert shown.status_code == 200 and "Sandbox" not in shown.text and "Test cards" not in shown.text
    assert 'name="number"' in shown.text and "Please pay by card" in shown.text
    session_id = page.url.rsplit("/", 1)[1]
    assert page.pay("card", number=SUCCEEDS).status_code == 303

    session = live.ok("PaymentService/GetSession", {"id": session_id})
    payment = live.ok("PaymentService/GetPayment", {"id": session["payment_id"]})
    assert session["status"] == "paid" and payment["status"] == "succeeded"
    assert (payment["amount"], payment["currency"], payment["method"], payment["user_id"]) == (
        499,
        "USD",
        "card",
        "player_7",
    )

    ref = processor_ref(server, payment["id"])
    stripe_intent = localstripe.get(f"/v1/payment_intents/{ref}")
    assert (stripe_intent["status"], stripe_intent["amount"], stripe_intent["currency"]) == ("succeeded", 499, "usd")
    assert stripe_intent["metadata"] == {
        "session_id": session_id,
        "payment_id": payment["id"],
        "game_id": game.game_id,
        "user_id": "player_7",
    }
    # Stripe's own notification arrives a moment later and finds the payment already settled.
    notification = stripe_event_about(localstripe, "payment_intent.succeeded", ref)
    wait_for(lambda: handled(server, notification))

    sent = live_events(live, session_id)
    assert [(e["event"], e["data"]["sequence"]) for e in sent] == [
        ("session.created", 1),
        ("payment.created", 2),
        ("payment.succeeded", 3),
        ("session.paid", 4),
    ]
    succeeded = sent[2]
    assert succeeded["mode"] == "live" and succeeded["data"]["payment_id"] == payment["id"]
    assert succeeded["data"]["metadata"] == {"order": "A-1"} and succeeded["data"]["previous_status"] == "processing"
    assert "mygame://payment-complete?session_id=" in page.open().text  # the page sends the player back


def test_a_declined_live_card_fails_end_to_end(server: Server, localstripe: LocalStripe, live: Api, game: Game) -> None:
    created, _page = pay_live(live, game, DECLINED)
    session = live.ok("PaymentService/GetSession", {"id": created["id"]})
    payment = live.ok("PaymentService/GetPayment", {"id": session["payment_id"]})
    assert session["status"] == "failed" and payment["status"] == "failed"
    assert (payment["failure_code"], payment["failure_message"]) == ("card_declined", "Your card was declined.")
    ref = processor_ref(server, payment["id"])
    wait_for(lambda: handled(server, stripe_event_about(localstripe, "payment_intent.payment_failed", ref)))
    sent = live_events(live, created["id"])
    assert [e["event"] for e in sent] == ["session.created", "payment.created", "payment.failed", "session.failed"]
    assert sent[2]["data"]["failure_code"] == "card_declined"


def test_the_live_page_takes_cards_only_and_checks_them_first(server: Server, live: Api, game: Game) -> None:
    created = live.create_session(game.game_id)
    page = PageClient(created["url"])
    page.open()
    for method in ("apple_pay", "google_pay"):
        refused = page.pay(method)
        assert refused.status_code == 400 and "not available for this payment" in refused.text
    for fields, hint in (
        ({"number": "4242 4242 4242 4241"}, "card number"),
        ({"expiry": "01/20"}, "expired"),
        ({"cvc": "1"}, "cvc"),
    ):
        refused = page.pay("card", **fields)
        assert refused.status_code == 400 and hint in refused.text.lower()
    assert payments_of(server, created["id"]) == []
    assert page.pay("card", number=SUCCEEDS).status_code == 303
    assert live.ok("PaymentService/GetSession", {"id": created["id"]})["status"] == "paid"


def test_a_lost_answer_is_settled_by_stripes_notification(
    losing_server: Server, server: Server, localstripe: LocalStripe, game: Game
) -> None:
    live = losing_server.api(game.live_key)
    created, page = pay_live(live, game, SUCCEEDS)
    # Stripe charged the card but its answer never came back: the payment waits (`processing`)
    # for Stripe's notification, which settles it.
    assert page.state() in ("processing", "paid")
    assert wait_settled(live, created["id"])["status"] == "paid"
    ref = processor_ref(server, live.ok("PaymentService/GetSession", {"id": created["id"]})["payment_id"])
    wait_for(lambda: handled(server, stripe_event_about(localstripe, "payment_intent.succeeded", ref)))
    assert [e["event"] for e in live_events(live, created["id"])][2:] == ["payment.succeeded", "session.paid"]


def test_live_sessions_need_a_live_processor_at_creation(unconfigured: Server, game: Game) -> None:
    body = {"game_id": game.game_id, "user_id": "p", "item": {"title": "Gold", "price": 499, "currency": "USD"}}
    error = unconfigured.api(game.live_key).refused(
        "PaymentService/CreateSession", body, "processor_unavailable", "failed_precondition"
    )
    assert "live" in error["message"]
    assert unconfigured.api(game.sandbox_key).ok("PaymentService/CreateSession", body)["id"].startswith("sess_")
    assert httpx.post(f"{unconfigured.url}{NOTIFICATION_PATH}", content=b"{}").status_code == 404


def test_live_prices_stripe_cannot_charge_are_refused_at_creation(
    server: Server, localstripe: LocalStripe, live: Api, game: Game
) -> None:
    body = {"game_id": game.game_id, "user_id": "p", "item": {"title": "Gold", "price": 1234, "currency": "KWD"}}
    live.refused("PaymentService/CreateSession", body, "invalid_price", "invalid_argument")
    server.api(game.sandbox_key).ok("PaymentService/CreateSession", body)
    # ISK has no minor unit, but Stripe counts it in hundredths.
    created, _ = pay_live(live, game, SUCCEEDS, item={"title": "Gold", "price": 500, "currency": "ISK"})
    payment_id = live.ok("PaymentService/GetSession", {"id": created["id"]})["payment_id"]
    assert localstripe.get(f"/v1/payment_intents/{processor_ref(server, payment_id)}")["amount"] == 50_000


# Stripe's notifications, signed here as Stripe signs them


def test_notifications_settle_a_payment_once(server: Server, live: Api, game: Game) -> None:
    ref = new_intent_id()
    session_id, payment_id = start_processing(server, live, game, ref)
    declined = {
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
    }
    failed = event("payment_intent.payment_failed", intent(ref, payment_id, "requires_payment_method", error=declined))
    answer = notify(server.url, failed)
    assert answer.status_code == 200 and answer.json() == {"received": True}
    payment = live.ok("PaymentService/GetPayment", {"id": payment_id})
    assert (payment["status"], payment["failure_code"], payment["failure_message"]) == (
        "failed",
        "insufficient_funds",
        "Your card has insufficient funds.",
    )
    before = live_events(live, session_id)
    assert [e["event"] for e in before] == ["session.created", "payment.created", "payment.failed", "session.failed"]
    # The same event again, and a late contradicting one: acknowledged, nothing changes.
    assert notify(server.url, failed).json() == {"received": True, "duplicate": True}
    assert (
        notify(server.url, event("payment_intent.succeeded", intent(ref, payment_id, "succeeded"))).status_code == 200
    )
    assert live.ok("PaymentService/GetPayment", {"id": payment_id}) == payment
    assert live_events(live, session_id) == before


def test_a_notification_finds_its_payment_by_metadata_before_the_intent_id_is_recorded(
    server: Server, live: Api, game: Game
) -> None:
    session_id, payment_id = start_processing(server, live, game, None)
    ref = new_intent_id()
    assert (
        notify(server.url, event("payment_intent.succeeded", intent(ref, payment_id, "succeeded"))).status_code == 200
    )
    assert live.ok("PaymentService/GetSession", {"id": session_id})["status"] == "paid"
    assert processor_ref(server, payment_id) == ref


def test_notifications_about_unknown_objects_are_acknowledged(server: Server, live: Api, game: Game) -> None:
    ref = new_intent_id()
    _session_id, payment_id = start_processing(server, live, game, ref)
    unknown = event("payment_intent.succeeded", intent(new_intent_id(), "pay_01kw1w89abcdefghijklmnopqr", "succeeded"))
    wrong_amount = event("payment_intent.succeeded", intent(ref, payment_id, "succeeded", amount=1))
    for sent in (
        unknown,
        wrong_amount,
        event("charge.succeeded", {"id": "ch_1", "object": "charge"}),
        {"id": f"evt_{uuid.uuid4().hex}", "type": "payment_intent.succeeded", "data": {}},
        event("charge.dispute.created", dispute(f"dp_{uuid.uuid4().hex}", new_intent_id(), 499)),
    ):
        answer = notify(server.url, sent)
        assert answer.status_code == 200, answer.text
        assert handled(server, sent["id"])
    assert live.ok("PaymentService/GetPayment", {"id": payment_id})["status"] == "processing"
    orphan = sent["data"]["object"]["id"]
    rows = sql(
        server.db_url, "SELECT game_id, payment_id FROM disputes WHERE processor_dispute_id = :id", {"id": orphan}
    )
    assert rows == [(None, None)]  # kept, but it concerns no game


def test_notifications_that_do_not_verify_are_refused(server: Server, live: Api, game: Game) -> None:
    ref = new_intent_id()
    _session_id, payment_id = start_processing(server, live, game, ref)
    sent = event("payment_intent.succeeded", intent(ref, payment_id, "succeeded"))
    body = json.dumps(sent).encode()
    for header in (sign(body, "whsec_someone_else"), sign(body, timestamp=1_700_000_000), "t=1,v1=00", "garbage", ""):
        assert notify(server.url, body, header=header).status_code == 400
    assert notify(server.url, body + b" ", header=sign(body)).status_code == 400  # tampered after signing
    for signed in (b"not json", b"[]", b"null", b'{"id": 5}'):  # signed, but not an event
        assert notify(server.url, signed).status_code == 400
    unsigned = httpx.post(
        f"{server.url}{NOTIFICATION_PATH}", content=body, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 400
    assert notify(server.url, b"x" * (1024 * 1024 + 1)).status_code == 413
    assert httpx.get(f"{server.url}{NOTIFICATION_PATH}").status_code == 405
    assert not handled(server, sent["id"])
    assert live.ok("PaymentService/GetPayment", {"id": payment_id})["status"] == "processing"


# Disputes from Stripe


def test_a_stripe_dispute_is_recorded_once_and_announced(server: Server, live: Api, game: Game) -> None:
    created, _ = pay_live(live, game, SUCCEEDS, user_id="player_9")
    payment_id = live.ok("PaymentService/GetSession", {"id": created["id"]})["payment_id"]
    stripe_dispute = dispute(
        f"dp_{uuid.uuid4().hex[:24]}", processor_ref(server, payment_id), 499, reason="product_not_received"
    )
    opened = event("charge.dispute.created", stripe_dispute)
    assert notify(server.url, opened).json() == {"received": True}
    assert notify(server.url, opened).json() == {"received": True, "duplicate": True}
    assert (
        notify(server.url, event("charge.dispute.created", stripe_dispute)).status_code == 200
    )  # redelivered as a new event

    listed = live.ok("PaymentService/ListDisputes", {})
    assert listed["total"] == 1 and listed["has_more"] is False
    (found,) = listed["disputes"]
    assert {
        k: found[k] for k in ("payment_id", "reason", "amount", "currency", "game_id", "session_id", "user_id")
    } == {
        "payment_id": payment_id,
        "reason": "product_not_received",
        "amount": 499,
        "currency": "USD",
        "game_id": game.game_id,
        "session_id": created["id"],
        "user_id": "player_9",
    }
    assert found["id"].startswith("dp_") and found["id"] != stripe_dispute["id"]
    announced = [e for e in live_events(live, created["id"]) if e["event"] == "dispute.created"]
    assert len(announced) == 1
    data = announced[0]["data"]
    assert (
        data["dispute_id"],
        data["payment_id"],
        data["session_id"],
        data["user_id"],
        data["game_id"],
        data["sequence"],
    ) == (
        found["id"],
        payment_id,
        created["id"],
        "player_9",
        game.game_id,
        5,
    )
    assert live.ok("PaymentService/ListDisputes", {"payment_id": payment_id})["disputes"] == [found]


def test_a_stripe_dispute_matching_no_payment_uses_its_metadata(server: Server, live: Api, game: Game) -> None:
    session = live.create_session(game.game_id, user_id="player_3")
    hinted = dispute(
        f"dp_{uuid.uuid4().hex[:24]}",
        new_intent_id(),
        250,
        currency="eur",
        metadata={"game_id": game.game_id, "session_id": session["id"], "user_id": "player_3"},
    )
    assert notify(server.url, event("charge.dispute.created", hinted)).status_code == 200
    by_game = dispute(
        f"dp_{uuid.uuid4().hex[:24]}", None, 100, metadata={"game_id": game.game_id, "user_id": "player_4"}
    )
    assert notify(server.url, event("charge.dispute.created", by_game)).status_code == 200

    listed = live.ok("PaymentService/ListDisputes", {})["disputes"]
    assert [(d.get("payment_id"), d.get("session_id"), d["user_id"], d["amount"], d["currency"]) for d in listed] == [
        (None, None, "player_4", 100, "USD"),
        (None, session["id"], "player_3", 250, "EUR"),
    ]
    (announced,) = [e for e in live_events(live, session["id"]) if e["event"] == "dispute.created"]
    assert announced["data"]["user_id"] == "player_3" and "payment_id" not in announced["data"]
    other = server.create_game()
    assert server.api(other.live_key).ok("PaymentService/ListDisputes", {})["total"] == 0


# What the game receives


@pytest.fixture(scope="module")
def private_network_server(
    db_url: str, localstripe: LocalStripe, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """An installation (own database) whose operator lets live webhooks reach its own network."""
    engine = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    database = make_database(engine, tmp_path_factory.mktemp("private-db"))
    env = {**stripe_env(localstripe.url), "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "all"}
    srv = Server(next(database), tmp_path_factory.mktemp("private"), env=env).start()
    yield srv
    srv.stop()
    next(database, None)


def test_the_game_receives_signed_webhooks_for_live_payments(private_network_server: Server) -> None:
    srv = private_network_server
    game = srv.create_game()
    live = srv.api(game.live_key)
    receiver = Receiver()
    try:
        endpoint = live.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/toffeepay")})
        receiver.expect("/toffeepay", endpoint["secret"])
        paid, _ = pay_live(live, game, SUCCEEDS)
        declined, _ = pay_live(live, game, DECLINED)
        got = receiver.wait_for("/toffeepay", count=8, timeout=30)
    finally:
        receiver.close()
    assert all(r.error is None and r.event is not None for r in got), [r.error for r in got]
    by_session: dict[str, list[dict[str, Any]]] = {}
    for r in got:
        assert r.event is not None
        by_session.setdefault(r.event["data"]["session_id"], []).append(r.event)
    for session_id, outcome in (
        (paid["id"], ("payment.succeeded", "session.paid")),
        (declined["id"], ("payment.failed", "session.failed")),
    ):
        events = sorted(by_session[session_id], key=lambda e: e["data"]["sequence"])
        assert [e["event"] for e in events] == ["session.created", "payment.created", *outcome]
        assert all(e["mode"] == "live" for e in events)
        payment = events[2]["data"]
        assert payment["amount"] == 499 and payment["currency"] == "USD" and payment["method"] == "card"
        assert payment["previous_status"] == "processing"
    # Delivery order is not guaranteed: find the declined session's payment.failed by its name, not its arrival.
    (failed,) = [e for e in by_session[declined["id"]] if e["event"] == "payment.failed"]
    assert failed["data"]["failure_code"] == "card_declined"


def test_live_endpoints_stay_public_without_the_operator_setting(server: Server, live: Api) -> None:
    live.refused(
        "WebhookService/CreateEndpoint", {"url": "http://127.0.0.1:3000/toffeepay"}, "invalid_url", "invalid_argument"
    )
