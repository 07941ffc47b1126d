"""The payment page in a real browser: Playwright driving Debian's Chromium at phone size."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.payments_support import CARDS, payments_of, wait_settled
from tests.support import Api, Game, Server, screenshot_path, without_token

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PHONE = {"width": 375, "height": 812}
RETURN_URL = "mygame://payment-complete"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Tab:
    """A phone-sized page that records every request it makes and every console error."""

    def __init__(self, browser: Any, server: Server, **options: Any) -> None:
        self.server = server
        self.context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="en-US", **options)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def button(self, name: str) -> Any:
        return self.page.get_by_role("button", name=name, exact=True)

    def check_clean(self) -> None:
        """Nothing but our own server was asked for anything, and nothing was blocked or broke."""
        foreign = [u for u in self.requests if not u.startswith((self.server.url + "/", "data:", "mygame:"))]
        assert foreign == []
        # Expected: the deep link has no handler here, and pages answered 404/410 on purpose.
        expected = ("scheme does not have a registered handler", "Failed to load resource")
        assert [e for e in self.errors if not e.startswith(expected) and expected[0] not in e] == []


@pytest.fixture(scope="module")
def slow_server(db_url: str, server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second server on the same database whose page payments stay `processing` for 1.5 s."""
    srv = Server(db_url, tmp_path_factory.mktemp("slow"), env={"TOFFEEPAY_SANDBOX_SETTLE_SECONDS": "1.5"}).start()
    yield srv
    srv.stop()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    opened = Tab(browser, server)
    yield opened
    opened.check_clean()
    opened.context.close()


def coin_data_url(size: int = 96) -> str:
    """A gold coin as a real RGBA PNG, so the screenshot shows an item image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = []
    centre = (size - 1) / 2
    for y in range(size):
        row = bytearray(b"\x00")
        for x in range(size):
            d = ((x - centre) ** 2 + (y - centre) ** 2) ** 0.5 / (size / 2)
            light = int(60 * (1 - (x + y) / (2 * size)))
            if d < 0.72:
                row += bytes((min(255, 235 + light // 3), min(255, 180 + light), 40, 255))
            elif d < 0.95:
                row += bytes((200 + light // 2, 140 + light // 2, 20, 255))
            else:
                row += b"\x00\x00\x00\x00"
        rows.append(bytes(row))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


def open_session(tab: Tab, api: Api, game: Game, **overrides: Any) -> dict[str, Any]:
    session = api.create_session(game.game_id, **overrides)
    response = tab.page.goto(session["url"])
    assert response is not None and response.status == 200
    return session


def choose(tab: Tab, method: str, outcome: str) -> None:
    """Make the page's choices for a method and outcome, then press the method's button."""
    if method == "card":
        tab.page.get_by_label("Card number").fill(CARDS[outcome])
        tab.page.get_by_label("Expiry (MM/YY)").fill("12/39")
        tab.page.get_by_label("CVC").fill("123")
        tab.button("Pay with card").click()
    else:
        tab.page.get_by_label("Wallet outcome").select_option(outcome)
        tab.button("Pay with Apple Pay" if method == "apple_pay" else "Pay with Google Pay").click()


def returned(tab: Tab, timeout: int = WAIT_MS) -> Any:
    return tab.page.expect_request(lambda r: r.url.startswith("mygame:"), timeout=timeout)


def tap_until_returned(tab: Tab, link: Any, tries: int = 3) -> Any:
    """Tap a link to the game until the browser tries it; returns that request.

    Chromium may drop an external-protocol launch that closely follows another one (the page's
    own redirect to the game), as a player's phone may ignore a first tap: the player taps again.
    """
    for _ in range(tries - 1):
        try:
            with returned(tab, WAIT_MS // tries) as request:
                link.click()
            return request.value
        except playwright_api.TimeoutError:
            continue
    with returned(tab, WAIT_MS // tries) as request:
        link.click()
    return request.value


@pytest.mark.parametrize("outcome", ["succeeded", "insufficient_funds", "card_declined"])
@pytest.mark.parametrize("method", ["apple_pay", "google_pay", "card"])
def test_pay_then_return_to_the_game(tab: Tab, api: Api, game: Game, method: str, outcome: str) -> None:
    session = open_session(tab, api, game, return_url=RETURN_URL)
    with returned(tab) as request:
        choose(tab, method, outcome)
    assert without_token(request.value.url) == f"{RETURN_URL}?session_id={session['id']}"
    settled = api.ok("PaymentService/GetSession", {"id": session["id"]})
    payment = api.ok("PaymentService/GetPayment", {"id": settled["payment_id"]})
    assert settled["status"] == ("paid" if outcome == "succeeded" else "failed")
    assert payment["method"] == method and payment.get("failure_code", "succeeded") == outcome


def test_the_page_shows_processing_and_updates_itself(browser: Any, slow_server: Server, game: Game) -> None:
    tab = Tab(browser, slow_server)
    try:
        session = open_session(tab, slow_server.api(game.sandbox_key), game, return_url=RETURN_URL)
        with returned(tab) as request:
            choose(tab, "apple_pay", "succeeded")
            expect(tab.page.get_by_role("status")).to_contain_text("Processing your payment")
            assert tab.page.url == session["url"]
        assert without_token(request.value.url) == f"{RETURN_URL}?session_id={session['id']}"
        expect(tab.page.get_by_role("heading", name="Payment complete")).to_be_visible()
        tab.check_clean()
    finally:
        tab.context.close()


def test_without_a_return_url_the_page_shows_the_outcome(tab: Tab, api: Api, game: Game) -> None:
    session = open_session(tab, api, game, return_url=None)
    choose(tab, "card", "insufficient_funds")
    expect(tab.page.get_by_role("heading", name="Payment failed")).to_be_visible(timeout=WAIT_MS)
    expect(tab.page.get_by_text("The card has insufficient funds.")).to_be_visible()
    assert tab.page.url == session["url"]
    second = open_session(tab, api, game, return_url=None)
    choose(tab, "apple_pay", "succeeded")
    expect(tab.page.get_by_role("heading", name="Payment complete")).to_be_visible(timeout=WAIT_MS)
    assert api.ok("PaymentService/GetSession", {"id": second["id"]})["status"] == "paid"


def test_return_url_keeps_its_query(tab: Tab, api: Api, game: Game, server: Server) -> None:
    target = f"{server.url}/healthz?from=game"
    session = open_session(tab, api, game, return_url=target)
    choose(tab, "google_pay", "succeeded")
    tab.page.wait_for_url(re.compile(re.escape(f"{target}&session_id={session['id']}&token=") + ".+"), timeout=WAIT_MS)
    assert '"ok"' in tab.page.content()


def test_cancel_returns_to_the_game_and_the_link_is_gone(tab: Tab, api: Api, game: Game) -> None:
    session = open_session(tab, api, game, return_url=f"{RETURN_URL}?order=7")
    with returned(tab) as request:
        tab.button("Cancel").click()
    assert without_token(request.value.url) == f"{RETURN_URL}?order=7&session_id={session['id']}"
    assert api.ok("PaymentService/GetSession", {"id": session["id"]})["status"] == "cancelled"
    response = tab.page.goto(session["url"])
    assert response is not None and response.status == 410
    expect(tab.page.get_by_role("heading")).to_have_text("This payment link is no longer valid")
    expect(tab.page.get_by_role("button")).to_have_count(0)


def test_cancel_shows_a_cancelled_result_with_a_return_button(tab: Tab, api: Api, game: Game) -> None:
    """Like a paid or failed payment: a browser that cannot open the game's link stays on a result page."""
    session = open_session(tab, api, game, return_url=RETURN_URL)
    with returned(tab) as request:
        tab.button("Cancel").click()
    expect(tab.page.get_by_role("heading", name="Payment cancelled")).to_be_visible()
    expect(tab.page.get_by_text("No payment was taken.")).to_be_visible()
    back = tab.page.get_by_role("link", name="Return to the game")
    expect(back).to_have_attribute("href", request.value.url)
    expect(tab.page).to_have_url(f"{session['url']}/cancelled")  # settles once the game's link was tried
    expect(tab.page.get_by_role("button")).to_have_count(0)  # nothing left to pay or cancel
    assert tap_until_returned(tab, back).url == request.value.url
    tab.check_clean()


def test_an_expired_link_takes_no_payment(tab: Tab, api: Api, game: Game, server: Server) -> None:
    session = open_session(tab, api, game)
    api.ok("SandboxService/ExpireSession", {"session_id": session["id"]})
    choose(tab, "card", "succeeded")  # the page was open before it expired
    expect(tab.page.get_by_role("heading")).to_have_text("This payment link is no longer valid")
    expect(tab.page.get_by_text("The payment session has expired.", exact=False)).to_be_visible()
    assert payments_of(server, session["id"]) == []


def test_an_unknown_link_is_404(tab: Tab, server: Server) -> None:
    response = tab.page.goto(f"{server.url}/sess_01kw1w89abcdefghijklmnopqr")
    assert response is not None and response.status == 404
    expect(tab.page.get_by_role("heading")).to_have_text("Payment not found.")


@pytest.mark.parametrize("javascript", [True, False])
def test_a_double_click_pays_once(browser: Any, server: Server, api: Api, game: Game, javascript: bool) -> None:
    tab = Tab(browser, server, java_script_enabled=javascript)
    try:
        session = open_session(tab, api, game, return_url=RETURN_URL)
        tab.page.get_by_label("Card number").fill(CARDS["succeeded"])
        tab.page.get_by_label("Expiry (MM/YY)").fill("12/39")
        tab.page.get_by_label("CVC").fill("123")
        with returned(tab):  # without JavaScript the page still updates itself (meta refresh)
            tab.button("Pay with card").dblclick()
        assert wait_settled(api, session["id"])["status"] == "paid"
        assert len(payments_of(server, session["id"])) == 1
        tab.check_clean()
    finally:
        tab.context.close()


def test_phone_layout_and_screenshot(tab: Tab, api: Api, game: Game) -> None:
    open_session(
        tab,
        api,
        game,
        item={"title": "50 Gold Coins", "price": 499, "currency": "USD", "image": coin_data_url()},
    )
    assert tab.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for name in ("Pay with Apple Pay", "Pay with Google Pay", "Pay with card", "Cancel"):
        box = tab.button(name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert box["height"] >= 44  # a comfortable touch target
    image = tab.page.locator(".item img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 96  # loaded, CSP allowing it
    expect(tab.page.get_by_role("heading", name="50 Gold Coins")).to_be_visible()
    expect(tab.page.get_by_text("$4.99")).to_be_visible()
    tab.page.screenshot(path=str(screenshot_path("checkout.png")), full_page=True)
