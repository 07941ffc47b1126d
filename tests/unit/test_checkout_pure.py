"""The payment page's pure parts: Content-Security-Policy sources, locales, CSRF tokens."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from toffeepay_server.checkout.csrf import Csrf, derive_key
from toffeepay_server.checkout.headers import image_source, page_headers, redirect_source
from toffeepay_server.checkout.locales import preferred_locale


def test_image_sources() -> None:
    assert image_source(None) == "'none'"
    assert image_source("data:image/png;base64,AAAA") == "data:"
    assert image_source("https://cdn.example.com/a/b.png?x=1#y") == "https://cdn.example.com/a/b.png"
    assert (
        image_source("https://user:pw@CDN.example.com:8443/a;b,c.png") == "https://cdn.example.com:8443/a%3Bb%2Cc.png"
    )
    assert image_source("https://bücher.example/x.png") == "https://xn--bcher-kva.example/x.png"
    assert image_source('https://bad"host/x.png') == "'none'"


def test_redirect_sources() -> None:
    assert redirect_source(None) == ""
    assert redirect_source("mygame://payment-complete?x=1") == "mygame:"
    assert redirect_source("com.example.game:/done") == "com.example.game:"
    assert redirect_source("https://game.example.com/done?x=1") == "https://game.example.com"
    assert redirect_source("http://localhost:3000/cb") == "http://localhost:3000"


@given(st.text(max_size=300))
def test_a_policy_is_always_well_formed(url: str) -> None:
    policy = page_headers(image="https://" + url, return_url=url)["Content-Security-Policy"]
    directives = [d.strip() for d in policy.split(";")]
    assert [d.split()[0] for d in directives] == [
        "default-src",
        "script-src",
        "style-src",
        "img-src",
        "connect-src",
        "form-action",
        "frame-ancestors",
        "base-uri",
    ]
    assert "," not in policy and all(ch.isprintable() and ord(ch) < 128 for ch in policy)


def test_locales() -> None:
    assert preferred_locale(None) == "en_US"
    assert preferred_locale("de-DE,de;q=0.9,en;q=0.8") == "de_DE"
    assert preferred_locale("xx, fr-CH;q=0.5, en;q=0.7") == "en"
    assert preferred_locale("en;q=0, ja") == "ja"
    assert preferred_locale("*") == "en_US"


@given(st.text(max_size=2000))
def test_any_accept_language_gives_a_locale(header: str) -> None:
    assert preferred_locale(header)


def test_csrf_tokens() -> None:
    csrf = Csrf(derive_key("secret"), secure=True)
    nonce, new = csrf.nonce(None)
    assert new and csrf.nonce(nonce) == (nonce, False)
    assert csrf.nonce("not a nonce")[1]
    token = csrf.token(nonce, "sess_a")
    assert csrf.valid(nonce, token, "sess_a", "same-origin")
    assert csrf.valid(nonce, token, "sess_a", None)
    assert not csrf.valid(nonce, token, "sess_b", None)
    assert not csrf.valid(nonce, token, "sess_a", "cross-site")
    assert not csrf.valid(csrf.nonce(None)[0], token, "sess_a", None)
    assert not csrf.valid(None, token, "sess_a", None)
    assert not Csrf(derive_key("other"), secure=True).valid(nonce, token, "sess_a", None)
    assert csrf.cookie_args(nonce) == {
        "key": "__Host-toffeepay_csrf",
        "value": nonce,
        "max_age": 86400,
        "path": "/",
        "secure": True,
        "httponly": True,
        "samesite": "strict",
    }
    assert Csrf(derive_key("secret"), secure=False).cookie_args(nonce)["key"] == "toffeepay_csrf"
