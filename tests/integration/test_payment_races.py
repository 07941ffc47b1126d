"""No double payment, ever: concurrent clicks, tabs, cancels and expiries end in exactly one outcome."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx

from tests.payments_support import PageClient, payments_of, session_events, wait_settled
from tests.support import Api, Game, Server, without_token

REFUSALS = {"payment_in_progress", "session_not_pending", "session_expired"}


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment, each in its own thread."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(run, c) for c in calls]]


def rpc(server: Server, key: str, name: str, body: dict[str, Any]) -> Callable[[], httpx.Response]:
    return lambda: Api(server.url, key).post(name, body)


def reason(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "ok"
    assert response.status_code == 400 and response.json()["code"] == "failed_precondition", response.text
    return response.json()["message"].split(":")[0]


def event_types(server: Server, session_id: str) -> list[str]:
    rows = session_events(server, session_id)
    assert [r["sequence"] for r in rows] == list(range(1, len(rows) + 1)), rows
    return [r["type"] for r in rows]


def test_concurrent_pay_session_calls_make_one_payment(server: Server, api: Api, game: Game) -> None:
    for _ in range(3):
        session = api.create_session(game.game_id)
        body = {"session_id": session["id"]}
        answers = together(
            *(
                rpc(server, game.sandbox_key, "SandboxService/PaySession", {**body, "method": m})
                for m in ["card", "apple_pay", "google_pay"] * 2
            )
        )
        reasons = [reason(a) for a in answers]
        assert reasons.count("ok") == 1 and set(reasons) - {"ok"} <= REFUSALS, reasons
        winner = next(a.json() for a in answers if a.status_code == 200)
        assert [p["id"] for p in payments_of(server, session["id"])] == [winner["id"]]
        assert event_types(server, session["id"]) == [
            "session.created",
            "payment.created",
            "payment.succeeded",
            "session.paid",
        ]


def test_double_clicks_and_two_tabs_make_one_payment(server: Server, api: Api, game: Game) -> None:
    for _ in range(3):
        session = api.create_session(game.game_id)
        tab_a, tab_b = PageClient(session["url"]), PageClient(session["url"])
        tab_a.open()
        tab_b.open()
        answers = together(
            partial(tab_a.pay, "card"),
            partial(tab_a.pay, "card"),
            partial(tab_b.pay, "apple_pay"),
            partial(tab_b.pay, "google_pay"),
        )
        assert [(a.status_code, a.headers["location"]) for a in answers] == [(303, session["url"])] * 4
        assert wait_settled(api, session["id"])["status"] == "paid"
        assert len(payments_of(server, session["id"])) == 1
        assert event_types(server, session["id"]) == [
            "session.created",
            "payment.created",
            "payment.succeeded",
            "session.paid",
        ]


def test_cancel_racing_payment_has_one_outcome(server: Server, api: Api, game: Game) -> None:
    winners = set()
    for _ in range(6):
        session = api.create_session(game.game_id)
        page = PageClient(session["url"])
        page.open()
        paid, cancelled, page_paid = together(
            rpc(server, game.sandbox_key, "SandboxService/PaySession", {"session_id": session["id"]}),
            rpc(server, game.sandbox_key, "PaymentService/CancelSession", {"id": session["id"]}),
            partial(page.pay, "apple_pay"),
        )
        assert page_paid.status_code == 303
        payments = payments_of(server, session["id"])
        final = api.ok("PaymentService/GetSession", {"id": session["id"]})
        if reason(cancelled) == "ok":
            winners.add("cancel")
            assert reason(paid) == "session_not_pending"
            assert payments == [] and final["status"] == "cancelled" and "payment_id" not in final
            assert event_types(server, session["id"]) == ["session.created", "session.cancelled"]
        else:
            winners.add("payment")
            assert reason(cancelled) in {"payment_in_progress", "session_not_pending"}
            assert len(payments) == 1 and final["payment_id"] == payments[0]["id"]
            assert wait_settled(api, session["id"])["status"] == "paid"
            assert "session.cancelled" not in event_types(server, session["id"])
    assert winners  # every round ended in exactly one of the two


def test_cancel_on_one_tab_racing_payment_on_another(server: Server, api: Api, game: Game) -> None:
    for _ in range(4):
        session = api.create_session(game.game_id)
        paying, cancelling = PageClient(session["url"]), PageClient(session["url"])
        paying.open()
        cancelling.open()
        paid, cancelled = together(partial(paying.pay, "card"), cancelling.cancel)
        assert paid.status_code == cancelled.status_code == 303
        types = event_types(server, session["id"])
        if "session.cancelled" in types:
            # The player sees the cancelled result, which sends them back to the game; no payment exists.
            assert cancelled.headers["location"] == f"{session['url']}/cancelled"
            result = cancelling.client.get(cancelled.headers["location"])
            (target,) = re.findall(r'data-redirect="([^"]+)"', result.text)
            assert without_token(html.unescape(target)) == f"mygame://payment-complete?session_id={session['id']}"
            assert payments_of(server, session["id"]) == [] and types == ["session.created", "session.cancelled"]
        else:
            assert cancelled.headers["location"] == session["url"]
            assert len(payments_of(server, session["id"])) == 1
            assert wait_settled(api, session["id"])["status"] == "paid"


def test_payment_racing_expiry_has_one_outcome(server: Server, api: Api, game: Game) -> None:
    for _ in range(6):
        session = api.create_session(game.game_id)
        paid, expired = together(
            rpc(
                server,
                game.sandbox_key,
                "SandboxService/PaySession",
                {"session_id": session["id"], "outcome": "card_declined"},
            ),
            rpc(server, game.sandbox_key, "SandboxService/ExpireSession", {"session_id": session["id"]}),
        )
        payments = payments_of(server, session["id"])
        final = api.ok("PaymentService/GetSession", {"id": session["id"]})
        if reason(expired) == "ok":
            assert reason(paid) == "session_expired"
            assert payments == [] and final["status"] == "expired"
            assert event_types(server, session["id"]) == ["session.created", "session.expired"]
        else:
            assert reason(expired) in {"payment_in_progress", "session_not_pending"}
            assert len(payments) == 1 and final["status"] == "failed"
            assert "session.expired" not in event_types(server, session["id"])
