"""Pay on your phone: the page's QR code on a wide screen and at `<page>/qr.svg`, rendered by
Chromium and decoded back (zxing-cpp) to the page's URL."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e.test_checkout import PHONE, Tab, browser
from tests.support import Api, Game, Server

pytestmark = pytest.mark.browser
zxingcpp = pytest.importorskip("zxingcpp")
__all__ = ["browser"]  # the Chromium fixture, shared with the checkout tests

DESKTOP = {"width": 1280, "height": 900}


def decoded(png: bytes) -> list[str]:
    """The text of every QR code in a screenshot."""
    image = Image.open(io.BytesIO(png)).convert("L")
    return [code.text for code in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


@pytest.fixture
def desktop(browser: Any, server: Server) -> Iterator[Tab]:
    opened = Tab(browser, server)
    opened.page.set_viewport_size(DESKTOP)
    yield opened
    opened.check_clean()
    opened.context.close()


def test_the_qr_svg_decodes_to_the_page_url(desktop: Tab, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    response = desktop.page.goto(f"{session['url']}/qr.svg")
    assert response is not None and response.status == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert decoded(desktop.page.screenshot()) == [session["url"]]


def test_a_wide_screen_shows_the_code_and_a_phone_does_not(
    desktop: Tab, browser: Any, server: Server, api: Api, game: Game
) -> None:
    session = api.create_session(game.game_id)
    desktop.page.goto(session["url"])
    desktop.page.get_by_role("heading", name="Pay on your phone").wait_for()
    code = desktop.page.get_by_role("img", name="QR code of this payment page")
    assert code.is_visible()
    assert decoded(code.screenshot()) == [session["url"]]

    phone = Tab(browser, server)
    try:
        phone.page.set_viewport_size(PHONE)
        phone.page.goto(session["url"])
        assert phone.page.get_by_role("button", name="Pay with card", exact=True).is_visible()
        assert not phone.page.get_by_role("heading", name="Pay on your phone").is_visible()
        assert not phone.page.get_by_role("img", name="QR code of this payment page").is_visible()
        assert decoded(phone.page.screenshot(full_page=True)) == []
        phone.check_clean()
    finally:
        phone.context.close()


def test_the_qr_svg_follows_the_page_404_and_410(api: Api, game: Game, server: Server) -> None:
    unknown = httpx.get(f"{server.url}/sess_01kw1w89abcdefghijklmnopqr/qr.svg")
    assert unknown.status_code == 404 and "Payment not found" in unknown.text
    cancelled = api.create_session(game.game_id)
    assert httpx.get(f"{cancelled['url']}/qr.svg").status_code == 200
    api.ok("PaymentService/CancelSession", {"id": cancelled["id"]})
    gone = httpx.get(f"{cancelled['url']}/qr.svg")
    assert gone.status_code == 410 and "no longer valid" in gone.text
    expired = api.create_session(game.game_id)
    api.ok("SandboxService/ExpireSession", {"session_id": expired["id"]})
    assert httpx.get(f"{expired['url']}/qr.svg").status_code == 410
    paid = api.create_session(game.game_id)
    api.ok("SandboxService/PaySession", {"session_id": paid["id"]})
    assert httpx.get(f"{paid['url']}/qr.svg").status_code == 200
