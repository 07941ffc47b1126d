"""Legacy form callbacks at a real receiver: one way to split the hashed string, and a timestamp."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest
import toffeepay

from tests.receiver import Receiver
from tests.support import Api, Game, Server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _message(fields: dict[str, str]) -> str:
    """The hashed string, as the Callback Validation guide builds it."""
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "hash")


def test_forged_paid_callback_from_a_failed_ones_hash_is_refused(
    server: Server, api: Api, game: Game, receiver: Receiver
) -> None:
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/legacy"), "format": "legacy_form"})
    secret = created["secret"]
    receiver.expect("/legacy", None)  # taken as sent; verified below
    target = api.create_session(game.game_id)  # the session the forger wants marked PAID
    # A player-supplied note smuggles the fields of a PAID callback for `target` into metadata.
    injected = (
        f"v&game_id={game.game_id}&paid_amount=499&site_id=toffeepay&status=PAID"
        f"&transaction_id={target['id']}&transaction_token={target['id']}&user_id=u"
    )
    failing = api.create_session(game.game_id, user_id="a&b=c", metadata={"note": injected})
    api.ok("SandboxService/PaySession", {"session_id": failing["id"], "outcome": "card_declined"})

    (got,) = receiver.wait_for("/legacy", 1)
    assert got.headers["content-type"].startswith("application/x-www-form-urlencoded")
    genuine = dict(parse_qsl(got.body.decode(), strict_parsing=True))
    # The real delivery verifies, and no value carries a raw separator.
    assert toffeepay.LegacyCallback.verify(got.body, secret) == genuine
    assert genuine["status"] == "FAILED" and genuine["transaction_token"] == failing["id"]
    assert not any("&" in v or "=" in v for v in genuine.values())
    assert "\\u0026" in genuine["custom_parameters"] and "\\u003d" in genuine["custom_parameters"]
    assert json.loads(genuine["custom_parameters"]) == {"note": injected}
    assert genuine["user_id"] == "a%26b%3Dc"
    assert abs(int(genuine["timestamp"]) - time.time()) < 60

    # The forgery: the genuine hash over a different split of the same string.
    tail = "&".join(f"{k}={genuine[k]}" for k in sorted(genuine) if k > "custom_parameters" and k != "hash")
    forged = {
        "amount": genuine["amount"],
        "currency": genuine["currency"],
        "custom_parameters": '{"note":"v',
        "game_id": game.game_id,
        "paid_amount": "499",
        "site_id": "toffeepay",
        "status": "PAID",
        "transaction_id": target["id"],
        "transaction_token": target["id"],
        "user_id": 'u"}&' + tail,
        "hash": genuine["hash"],
    }
    with pytest.raises(toffeepay.SignatureVerificationError) as caught:
        toffeepay.LegacyCallback.verify(forged, secret)
    assert caught.value.reason == "malformed_value"
    # And the escaping alone already makes the split string differ from the hashed one.
    assert _message(forged) != _message(genuine)
    assert toffeepay.LegacyCallback.compute_hash(forged, secret) != genuine["hash"]


def test_replayed_legacy_callback_is_refused(
    server: Server, api: Api, game: Game, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url("/legacy"), "format": "legacy_form"})
    receiver.expect("/legacy", created["secret"])  # the receiver verifies with the SDK as it arrives
    session = api.create_session(game.game_id, metadata={"order": "A-1"})
    api.ok("SandboxService/PaySession", {"session_id": session["id"], "outcome": "succeeded"})
    (got,) = receiver.wait_for("/legacy", 1)
    assert got.error is None and got.fields["status"] == "PAID", receiver.summary()
    assert got.fields["custom_parameters"] == '{"order":"A-1"}'  # the Callback Validation guide's field, as before
    guide = {"hash", "transaction_id", "status", "paid_amount", "site_id", "game_id", "user_id", "transaction_token"}
    assert guide <= set(got.fields) and got.fields["paid_amount"] == got.fields["amount"] == "499"
    sent_at = int(got.fields["timestamp"])

    # The same captured request, replayed six minutes later.
    monkeypatch.setattr(toffeepay.webhook.time, "time", lambda: sent_at + 360.0)
    with pytest.raises(toffeepay.SignatureVerificationError) as caught:
        toffeepay.LegacyCallback.verify(got.body, created["secret"])
    assert caught.value.reason == "stale_timestamp"
    assert toffeepay.LegacyCallback.verify(got.body, created["secret"], tolerance=600) == got.fields
