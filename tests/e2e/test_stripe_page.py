"""The live payment page in a real browser: a card paid through Stripe (localstripe), nothing loaded from elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_checkout import RETURN_URL, WAIT_MS, Tab, browser, expect, returned  # noqa: F401 - `browser` is a fixture
from tests.stripe_support import DECLINED, SUCCEEDS
from tests.support import Game, Server, without_token

pytestmark = pytest.mark.browser


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:  # noqa: F811 - uses the imported fixture
    opened = Tab(browser, server)
    yield opened
    opened.check_clean()
    opened.context.close()


def fill_card(tab: Tab, number: str) -> None:
    tab.page.get_by_label("Card number").fill(number)
    tab.page.get_by_label("Expiry (MM/YY)").fill("12/39")
    tab.page.get_by_label("CVC").fill("123")


def test_a_player_pays_a_live_session_by_card(tab: Tab, server: Server, game: Game) -> None:
    live = server.api(game.live_key)
    session = live.create_session(game.game_id, return_url=RETURN_URL)
    response = tab.page.goto(session["url"])
    assert response is not None and response.status == 200
    expect(tab.page.get_by_text("Sandbox")).to_have_count(0)
    for wallet in ("Pay with Apple Pay", "Pay with Google Pay"):
        expect(tab.button(wallet)).to_be_disabled()
    expect(tab.page.get_by_text("Apple Pay and Google Pay are not available for this payment.")).to_be_visible()
    fill_card(tab, SUCCEEDS)
    with returned(tab) as request:
        tab.button("Pay with card").click()
    assert without_token(request.value.url) == f"{RETURN_URL}?session_id={session['id']}"
    assert live.ok("PaymentService/GetSession", {"id": session["id"]})["status"] == "paid"


def test_a_declined_live_card_shows_the_outcome(tab: Tab, server: Server, game: Game) -> None:
    live = server.api(game.live_key)
    session = live.create_session(game.game_id, return_url=None)
    tab.page.goto(session["url"])
    fill_card(tab, DECLINED)
    tab.button("Pay with card").click()
    expect(tab.page.get_by_role("heading", name="Payment failed")).to_be_visible(timeout=WAIT_MS)
    expect(tab.page.get_by_text("Your card was declined.")).to_be_visible()
