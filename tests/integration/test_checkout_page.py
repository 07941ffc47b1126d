"""The payment page over plain HTTP: states, status codes, headers, CSRF, escaping, formatting."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from tests.payments_support import CARDS, PageClient, payments_of, wait_settled
from tests.support import Api, Game, Server, png_data_url, without_token

UNKNOWN = "sess_01kw1w89abcdefghijklmnopqr"


def csp(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in (p.strip() for p in policy.split(";"))}


def test_page_shows_the_item_and_its_choices(api: Api, game: Game) -> None:
    session = api.create_session(
        game.game_id, item={"title": "50 Gold Coins", "price": 499, "currency": "USD", "image": png_data_url()}
    )
    page = PageClient(session["url"])
    response = page.open()
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "<h1>50 Gold Coins</h1>" in html and "$4.99" in html
    assert f'src="{png_data_url()}"' in html
    for name in ("Pay with Apple Pay", "Pay with Google Pay", "Pay with card", "Cancel"):
        assert f">{name}</button>" in html
    assert "Sandbox" in html and "4242 4242 4242 4242" in html
    assert len(set(re.findall(r'name="csrf_token" value="([0-9a-f]{64})"', html))) == 1


def test_security_headers(api: Api, game: Game) -> None:
    session = api.create_session(
        game.game_id, item={"title": "Gems", "price": 100, "currency": "EUR", "image": png_data_url()}
    )
    response = PageClient(session["url"]).open()
    policy = csp(response)
    assert policy == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "data:",
        "connect-src": "'self'",
        "form-action": "'self' mygame:",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
    }
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_an_https_image_is_allowed_exactly(api: Api, game: Game) -> None:
    image = 'https://cdn.yourgame.com/images/gold coins.png?v=1&x="><script>alert(1)</script>'
    session = api.create_session(
        game.game_id,
        item={"title": "Gold", "price": 499, "currency": "USD", "image": image},
        return_url="https://yourgame.com/done?order=7",
    )
    response = PageClient(session["url"]).open()
    policy = csp(response)
    assert policy["img-src"] == "https://cdn.yourgame.com/images/gold%20coins.png"
    assert policy["form-action"] == "'self' https://yourgame.com"
    assert "<script>alert(1)" not in response.text
    assert (
        'src="https://cdn.yourgame.com/images/gold coins.png?v=1&amp;x=&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"'
        in response.text
    )
    assert 'referrerpolicy="no-referrer"' in response.text


def test_no_image_no_image_source(api: Api, game: Game) -> None:
    response = PageClient(api.create_session(game.game_id)["url"]).open()
    assert csp(response)["img-src"] == "'none'" and "<img" not in response.text


def test_everything_the_studio_sent_is_escaped(api: Api, game: Game) -> None:
    title = '<script>alert("x")</script> & <b>Gold</b>'
    session = api.create_session(game.game_id, item={"title": title, "price": 499, "currency": "USD"})
    html = PageClient(session["url"]).open().text
    assert "<script>alert" not in html and "<b>Gold</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;Gold&lt;/b&gt;" in html
    # No markup anywhere loads anything from elsewhere.
    urls = re.findall(r'(?:src|href|action)="([^"]+)"', html)
    assert urls and all(u.startswith(session["url"].rsplit("/", 1)[0] + "/") for u in urls), urls


@pytest.mark.parametrize(
    ("price", "currency", "language", "shown"),
    [
        (499, "USD", "en-US,en;q=0.9", "$4.99"),
        (499, "USD", "de-DE,de;q=0.9", "4,99\xa0$"),
        (500, "JPY", "en-US", "¥500"),
        (500, "JPY", "ja-JP", "￥500"),
        (1500, "KWD", "en-US", "KWD1.500"),
        (1500, "KWD", "fr-FR", "1,500\xa0KWD"),
        (12345678, "EUR", "fr-FR", "123\u202f456,78\xa0€"),
        (499, "USD", "", "$4.99"),
        (499, "USD", "xx-invalid, *;q=0.1", "$4.99"),
    ],
)
def test_price_is_formatted_for_its_currency_and_the_players_language(
    api: Api, game: Game, price: int, currency: str, language: str, shown: str
) -> None:
    session = api.create_session(game.game_id, item={"title": "Gems", "price": price, "currency": currency})
    html = PageClient(session["url"]).open(**{"Accept-Language": language}).text
    assert f'<p class="price">{shown}</p>' in html


def test_unknown_and_malformed_ids_are_404(server: Server) -> None:
    for path in (UNKNOWN, "sess_x", "sess_%3Cscript%3E"):
        response = httpx.get(f"{server.url}/{path}")
        assert response.status_code == 404 and "Payment not found" in response.text
        assert "<script>" not in response.text
    assert httpx.get(f"{server.url}/{UNKNOWN}/status").status_code == 404
    assert httpx.post(f"{server.url}/{UNKNOWN}/cancel").status_code in (400, 403, 404)


def test_cancelled_and_expired_links_are_gone(api: Api, game: Game) -> None:
    cancelled = api.create_session(game.game_id)
    page = PageClient(cancelled["url"])
    page.open()
    api.ok("PaymentService/CancelSession", {"id": cancelled["id"]})
    response = page.open()
    assert response.status_code == 410 and "no longer valid" in response.text and "cancelled" in response.text
    assert "Pay with card" not in response.text
    late = page.pay("card")
    assert (late.status_code, late.headers["location"]) == (303, cancelled["url"])
    assert page.state() == "cancelled"
    expired = api.create_session(game.game_id)
    api.ok("SandboxService/ExpireSession", {"session_id": expired["id"]})
    response = PageClient(expired["url"]).open()
    assert response.status_code == 410 and "no longer valid" in response.text and "expired" in response.text
    assert "payment_id" not in api.ok("PaymentService/GetSession", {"id": cancelled["id"]})


def test_forms_refuse_missing_or_foreign_csrf_tokens(server: Server, api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    other = api.create_session(game.game_id)
    page = PageClient(session["url"])
    page.open()
    other_page = PageClient(other["url"], client=page.client)
    other_page.open()
    card = {"method": "card", "number": CARDS["succeeded"], "expiry": "12/39", "cvc": "123"}
    attempts = [
        httpx.post(f"{session['url']}/pay", data={**card, "csrf_token": page.token}),  # no cookie
        page.client.post(f"{session['url']}/pay", data=card),  # no token
        page.client.post(f"{session['url']}/pay", data={**card, "csrf_token": "0" * 64}),
        page.client.post(f"{session['url']}/pay", data={**card, "csrf_token": other_page.token}),  # another session's
        page.client.post(
            f"{session['url']}/pay", data={**card, "csrf_token": page.token}, headers={"Sec-Fetch-Site": "cross-site"}
        ),
        httpx.post(f"{session['url']}/cancel", data={"csrf_token": page.token}),
    ]
    for response in attempts:
        assert response.status_code == 403 and "This form has expired" in response.text
    assert api.ok("PaymentService/GetSession", {"id": session["id"]})["status"] == "pending"
    assert payments_of(server, session["id"]) == []


def test_malformed_forms_are_refused_without_a_5xx(api: Api, game: Game) -> None:
    session = api.create_session(game.game_id)
    page = PageClient(session["url"])
    page.open()
    url = f"{session['url']}/pay"
    assert page.client.post(url, json={"method": "card"}).status_code == 400
    assert page.client.post(url, data={"csrf_token": page.token, "junk": "x" * 10_000}).status_code == 400
    assert (
        page.client.post(
            url, content=b"\xff\xfe=\xff", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ).status_code
        == 400
    )
    refused = page.client.post(url, data={"csrf_token": page.token, "method": "bitcoin"})
    assert refused.status_code == 400 and "Method must be one of" in refused.text
    assert page.client.put(url).status_code == 405


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"number": "4111 1111 1111 1111"}, "Card number: use a sandbox test card"),
        ({"number": "<script>"}, "Card number: use a sandbox test card"),
        ({"expiry": "13/30"}, "Expiry: use MM/YY"),
        ({"expiry": "01/20"}, "Expiry: the card has expired"),
        ({"cvc": "12"}, "CVC: use 3 or 4 digits"),
    ],
)
def test_card_form_errors_are_shown_and_take_no_payment(
    server: Server, api: Api, game: Game, fields: dict, message: str
) -> None:
    session = api.create_session(game.game_id)
    page = PageClient(session["url"])
    page.open()
    response = page.pay("card", **fields)
    assert response.status_code == 400 and f'role="alert">{message}' in response.text
    assert "Pay with card" in response.text and "<script>" not in response.text
    assert payments_of(server, session["id"]) == []
    assert page.pay("card").status_code == 303  # fixed and resubmitted, it goes through


def test_page_follows_the_payment_and_then_the_outcome(api: Api, game: Game) -> None:
    session = api.create_session(game.game_id, return_url="mygame://payment-complete?order=7")
    page = PageClient(session["url"])
    page.open()
    page.pay("apple_pay", outcome="insufficient_funds")
    processing = page.open()
    if page.state() == "processing":
        assert "Processing your payment" in processing.text and 'data-poll="' in processing.text
    wait_settled(api, session["id"])
    outcome = page.open()
    target = f"mygame://payment-complete?order=7&amp;session_id={session['id']}"
    assert outcome.status_code == 200 and "Payment failed" in outcome.text and "insufficient funds" in outcome.text
    assert f'data-redirect="{target}&amp;token=' in outcome.text and f'href="{target}&amp;token=' in outcome.text
    assert page.state() == "failed"


def test_without_a_return_url_the_page_shows_the_outcome(api: Api, game: Game) -> None:
    session = api.create_session(game.game_id, return_url=None)
    api.ok("SandboxService/PaySession", {"session_id": session["id"]})
    outcome = PageClient(session["url"]).open()
    assert "Payment complete" in outcome.text and "data-redirect" not in outcome.text
    assert PageClient(session["url"]).state() == "paid"


def test_cancel_on_the_page(api: Api, game: Game) -> None:
    session = api.create_session(game.game_id, return_url="mygame://payment-complete?x=1")
    page = PageClient(session["url"])
    page.open()
    response = page.cancel()
    assert response.status_code == 303 and response.headers["location"] == f"{session['url']}/cancelled"
    assert api.ok("PaymentService/GetSession", {"id": session["id"]})["status"] == "cancelled"
    # The result page sends the browser on to the game, and offers a button for when it cannot.
    result = page.client.get(response.headers["location"])
    assert result.status_code == 200 and "Payment cancelled" in result.text and "No payment was taken" in result.text
    (target,) = re.findall(r'data-redirect="([^"]+)"', result.text)
    back = html.unescape(target)
    assert without_token(back) == f"mygame://payment-complete?x=1&session_id={session['id']}"
    assert f'href="{target}"' in result.text and "Return to the game" in result.text
    assert page.cancel().headers["location"] == session["url"]  # a second click just shows the page
    assert page.open().status_code == 410  # the link itself is no longer valid
    plain = api.create_session(game.game_id, return_url=None)
    page = PageClient(plain["url"])
    page.open()
    location = page.cancel().headers["location"]
    shown = page.client.get(location)
    assert shown.status_code == 200 and "Payment cancelled" in shown.text and "data-redirect" not in shown.text
    assert "close this page" in shown.text and page.open().status_code == 410
    pending = api.create_session(game.game_id)
    assert PageClient(pending["url"]).client.get(f"{pending['url']}/cancelled").headers["location"] == pending["url"]


def test_static_assets(server: Server, api: Api, game: Game) -> None:
    html = PageClient(api.create_session(game.game_id)["url"]).open().text
    for name, media in (("checkout.css", "text/css"), ("checkout.js", "text/javascript")):
        url = re.search(rf'"({re.escape(server.url)}/static/checkout/{name}\?v=[0-9a-f]+)"', html).group(1)
        response = httpx.get(url)
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in response.headers["cache-control"]
        assert httpx.get(url, headers={"If-None-Match": response.headers["etag"]}).status_code == 304
    assert httpx.get(f"{server.url}/static/checkout/missing.js").status_code == 404
