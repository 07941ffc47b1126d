"""The return token in a real browser: the redirect's `token`, verified by the SDK against the
JWKS the server publishes, and refused when altered, for another game, or expired."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import toffeepay

from tests.e2e.test_checkout import RETURN_URL, Tab, browser, choose, open_session, returned, slow_server
from tests.support import Api, Game, Server, sql

pytestmark = pytest.mark.browser
__all__ = ["browser", "slow_server"]  # fixtures shared with the checkout tests


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    opened = Tab(browser, server)
    yield opened
    opened.check_clean()
    opened.context.close()


def jwks(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/.well-known/jwks.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    return response.json()


def redirect_token(url: str, session_id: str) -> str:
    query = parse_qs(urlsplit(url).query)
    assert query["session_id"] == [session_id]
    [token] = query["token"]
    return token


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def refused(token: str, keys: Any, game_id: str) -> str:
    with pytest.raises(toffeepay.SignatureVerificationError) as raised:
        toffeepay.ReturnToken.verify(token, keys, game_id=game_id)
    return raised.value.reason


def pay_in_browser(browser: Any, server: Server, game: Game, outcome: str = "succeeded") -> tuple[dict[str, Any], str]:
    """Pay a new session on its page in a fresh tab; the session and the token it returned with."""
    tab = Tab(browser, server)
    try:
        session = open_session(tab, server.api(game.sandbox_key), game, return_url=RETURN_URL)
        with returned(tab) as request:
            choose(tab, "card", outcome)
        tab.check_clean()
    finally:
        tab.context.close()
    return session, redirect_token(request.value.url, session["id"])


def test_the_redirect_token_verifies_against_the_published_keys(
    browser: Any, game: Game, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, token = pay_in_browser(browser, server, game)
    keys = jwks(server)
    claims = toffeepay.ReturnToken.verify(token, keys, game_id=game.game_id)
    assert claims["session_id"] == session["id"] and claims["status"] == "paid"
    assert claims["game_id"] == game.game_id and claims["user_id"] == "player_42"
    assert claims["exp"] - claims["iat"] == 600 and abs(claims["iat"] - time.time()) < 60

    header = header_of(token)
    assert header["alg"] == "EdDSA" and header["kid"] in {k["kid"] for k in keys["keys"]}
    for key in keys["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        assert "d" not in key

    # Altered: another player's claims under the same signature; a byte of the signature flipped.
    head, payload, signature = token.split(".")
    forged = dict(claims, user_id="player_43")
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert refused(f"{head}.{forged_payload}.{signature}", keys, game.game_id) == "bad_signature"
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert refused(f"{head}.{payload}.{flipped}", keys, game.game_id) == "bad_signature"
    # Another game's client holding this token refuses it.
    assert refused(token, keys, "another_game") == "wrong_game"
    # After it expires (the clock moved past exp), refused too.
    monkeypatch.setattr(time, "time", lambda: float(claims["exp"]))
    assert refused(token, keys, game.game_id) == "expired"


def test_failed_and_cancelled_sessions_return_with_a_token(
    browser: Any, tab: Tab, api: Api, game: Game, server: Server
) -> None:
    _session, token = pay_in_browser(browser, server, game, "card_declined")
    assert toffeepay.ReturnToken.verify(token, jwks(server), game_id=game.game_id)["status"] == "failed"

    cancelled = open_session(tab, api, game, return_url=f"{RETURN_URL}?order=7")
    with returned(tab) as request:
        tab.button("Cancel").click()
    assert request.value.url.startswith(f"{RETURN_URL}?order=7&session_id={cancelled['id']}&token=")
    token = redirect_token(request.value.url, cancelled["id"])
    claims = toffeepay.ReturnToken.verify(token, json.dumps(jwks(server)), game_id=game.game_id)
    assert claims["status"] == "cancelled" and claims["session_id"] == cancelled["id"]


def test_rotation_keeps_the_old_key_for_its_tokens(browser: Any, game: Game, server: Server) -> None:
    _session, before = pay_in_browser(browser, server, game)
    old_keys = jwks(server)
    rotated = json.loads(server.cli("tokens", "rotate", "--json").stdout)
    new_keys = jwks(server)
    assert new_keys["keys"][0]["kid"] == rotated["kid"] != header_of(before)["kid"]
    assert header_of(before)["kid"] in {k["kid"] for k in new_keys["keys"]}
    # A token signed before the rotation still verifies with the keys published after it.
    assert toffeepay.ReturnToken.verify(before, new_keys, game_id=game.game_id)["status"] == "paid"

    _session, after = pay_in_browser(browser, server, game)
    assert header_of(after)["kid"] == rotated["kid"]
    assert toffeepay.ReturnToken.verify(after, new_keys, game_id=game.game_id)["status"] == "paid"
    # A client holding the keys from before the rotation is told to fetch them again.
    assert refused(after, old_keys, game.game_id) == "unknown_key"
    listed = json.loads(server.cli("tokens", "keys", "--json").stdout)
    assert listed == new_keys


def test_every_process_of_an_installation_signs_with_the_same_keys(
    browser: Any, game: Game, server: Server, slow_server: Server
) -> None:
    """A second server on the same database publishes the same keys, and its tokens verify with either's."""
    assert jwks(slow_server) == jwks(server)
    _session, token = pay_in_browser(browser, slow_server, game)
    assert toffeepay.ReturnToken.verify(token, jwks(server), game_id=game.game_id)["status"] == "paid"


def test_signing_keys_are_stored_encrypted(browser: Any, game: Game, server: Server) -> None:
    pay_in_browser(browser, server, game)
    rows = sql(server.db_url, "SELECT kid, public_x, private_key FROM signing_keys")
    published = {k["kid"]: k["x"] for k in jwks(server)["keys"]}
    assert rows and {kid for kid, _x, _p in rows} >= set(published)
    for kid, public_x, private_key in rows:
        assert private_key.startswith("aesgcm1:"), "the private key is sealed with the installation key"
        assert public_x not in private_key and '"d"' not in private_key and "OKP" not in private_key
        assert published.get(kid, public_x) == public_x
