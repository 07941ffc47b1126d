"""Signing (server) and verification (SDK) of webhooks and legacy callbacks, without I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl

import pytest
import standardwebhooks
import toffeepay

from toffeepay_server.domain.webhooks import new_secret
from toffeepay_server.events import legacy, signing

BODY = b'{"id":"550e8400-e29b-41d4-a716-446655440000","event":"payment.succeeded","data":{"payment_id":"pay_xyz789"}}'


def sign(secrets: list[str], body: bytes = BODY, t: int | None = None) -> dict[str, str]:
    return signing.json_headers(
        "550e8400-e29b-41d4-a716-446655440000", "payment.succeeded", body, int(time.time()) if t is None else t, secrets
    )


def test_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert new_secret() != secret


def test_header_follows_the_getting_started_recipe() -> None:
    secret = new_secret()
    t = 1717000000
    header = signing.toffeepay_signature(BODY, t, [secret])
    expected = hmac.new(secret.encode(), str(t).encode() + b"." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={t},v1={expected}"


def test_sdk_accepts_a_genuine_event_and_any_of_several_signatures() -> None:
    old, new = new_secret(), new_secret()
    headers = sign([new, old])
    for secret in (old, new, [new, "whsec_other"]):
        event = toffeepay.Webhook.construct_event(BODY, headers["X-ToffeePay-Signature"], secret)
        assert event["data"] == {"payment_id": "pay_xyz789"}
    assert (
        toffeepay.Webhook.construct_event(BODY.decode(), headers["X-ToffeePay-Signature"], old)["event"]
        == "payment.succeeded"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s, h, b: (s, h, b.replace(b"pay_xyz789", b"pay_xyz780")), "bad_signature"),
        (lambda s, h, b: (new_secret(), h, b), "bad_signature"),
        (lambda s, h, b: (s, h.replace("v1=", "v0="), b), "malformed_header"),
        (lambda s, h, b: (s, "", b), "malformed_header"),
        (lambda s, h, b: (s, None, b), "malformed_header"),
        (lambda s, h, b: (s, h.split(",")[1], b), "malformed_header"),
        (lambda s, h, b: (s, "t=abc," + h.split(",")[1], b), "malformed_header"),
        (lambda s, h, b: (s, h + ",v1=é", b), None),  # junk next to a valid signature is ignored
    ],
)
def test_sdk_refuses_forged_or_malformed(change, reason) -> None:  # type: ignore[no-untyped-def]
    secret = new_secret()
    secret, header, body = change(secret, sign([secret])["X-ToffeePay-Signature"], BODY)
    if reason is None:
        toffeepay.Webhook.construct_event(body, header, secret)
        return
    with pytest.raises(toffeepay.SignatureVerificationError) as caught:
        toffeepay.Webhook.construct_event(body, header, secret)
    assert caught.value.reason == reason


def test_sdk_refuses_stale_timestamps_within_a_tolerance() -> None:
    secret = new_secret()
    for skew in (-301, 301):
        header = sign([secret], t=int(time.time()) + skew)["X-ToffeePay-Signature"]
        with pytest.raises(toffeepay.SignatureVerificationError) as caught:
            toffeepay.Webhook.construct_event(BODY, header, secret)
        assert caught.value.reason == "stale_timestamp"
        toffeepay.Webhook.construct_event(BODY, header, secret, tolerance=600)
        toffeepay.Webhook.construct_event(BODY, header, secret, tolerance=None)


def test_standard_webhooks_library_verifies_every_valid_secret() -> None:
    old, new = new_secret(), new_secret()
    headers = sign([new, old])
    assert headers["webhook-id"] == headers["X-ToffeePay-Event-Id"]
    for secret in (old, new):
        assert standardwebhooks.Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(BODY, headers)


def _event(event_type: str, **data: object) -> dict[str, object]:
    base = {
        "session_id": "sess_1",
        "game_id": "space_shooter",
        "user_id": "player_42",
        "metadata": {"b": "2", "a": "é"},
    }
    return {"event": event_type, "data": {**base, **data}}


PAYMENT = {"payment_id": "pay_1", "amount": 499, "currency": "USD"}
SESSION = {"item": {"title": "Coins", "price": 499, "currency": "USD"}}


@pytest.mark.parametrize(
    ("event", "status", "transaction_id", "paid"),
    [
        (_event("payment.succeeded", **PAYMENT), "PAID", "pay_1", "499"),
        (
            _event("payment.failed", **PAYMENT, failure_code="partial_payment", amount_received=200),
            "PARTIAL",
            "pay_1",
            "200",
        ),
        (_event("payment.failed", **PAYMENT, failure_code="card_declined"), "FAILED", "pay_1", "0"),
        (_event("session.cancelled", **SESSION), "CANCELLED", "sess_1", "0"),
        (_event("session.expired", **SESSION), "EXPIRED", "sess_1", "0"),
    ],
)
def test_legacy_form_for_each_outcome(event, status, transaction_id, paid) -> None:  # type: ignore[no-untyped-def]
    secret = new_secret()
    now = int(time.time())
    body = legacy.form_body(event, "site_7", secret, now)
    fields = dict(parse_qsl(body.decode(), strict_parsing=True))
    assert fields["timestamp"] == str(now)
    assert {
        k: fields[k]
        for k in (
            "transaction_id",
            "status",
            "amount",
            "paid_amount",
            "currency",
            "site_id",
            "game_id",
            "user_id",
            "transaction_token",
        )
    } == {
        "transaction_id": transaction_id,
        "status": status,
        "amount": "499",
        "paid_amount": paid,
        "currency": "USD",
        "site_id": "site_7",
        "game_id": "space_shooter",
        "user_id": "player_42",
        "transaction_token": "sess_1",
    }
    assert json.loads(fields["custom_parameters"]) == {"a": "é", "b": "2"}
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "hash")  # values not URL-encoded
    assert fields["hash"] == hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert toffeepay.LegacyCallback.verify(body, secret) == fields
    assert toffeepay.LegacyCallback.verify(fields, [new_secret(), secret]) == fields


def test_legacy_verification_refuses_tampering() -> None:
    secret = new_secret()
    body = legacy.form_body(_event("payment.succeeded", **PAYMENT), "s", secret, int(time.time()))
    fields = dict(parse_qsl(body.decode()))
    cases = [
        ({**fields, "paid_amount": "999"}, "bad_signature"),
        ({**fields, "timestamp": str(int(fields["timestamp"]) + 1)}, "bad_signature"),
        ({k: v for k, v in fields.items() if k != "hash"}, "malformed_header"),
        ({k: v for k, v in fields.items() if k != "timestamp"}, "malformed_header"),
        ({**fields, "extra": "1"}, "unknown_field"),
    ]
    for tampered, reason in cases:
        with pytest.raises(toffeepay.SignatureVerificationError) as caught:
            toffeepay.LegacyCallback.verify(tampered, secret)
        assert caught.value.reason == reason
    with pytest.raises(toffeepay.SignatureVerificationError):
        toffeepay.LegacyCallback.verify("status=PAID&status=PAID&hash=00", secret)
    with pytest.raises(toffeepay.SignatureVerificationError):
        toffeepay.LegacyCallback.verify(fields, new_secret())


def test_legacy_has_no_callback_for_other_events() -> None:
    with pytest.raises(ValueError):
        legacy.form_fields(_event("session.created", **SESSION), "s", 0)


def _hashed(fields: dict[str, str], secret: str) -> dict[str, str]:
    return {**fields, "hash": signing.legacy_hash(fields, secret)}


def test_legacy_values_never_hold_a_raw_ampersand_or_equals() -> None:
    metadata = {"note": "a&b=c", "k=&": "x"}
    event = _event("payment.failed", **PAYMENT, failure_code="card_declined", user_id="p&q=r", metadata=metadata)
    secret = new_secret()
    fields = dict(parse_qsl(legacy.form_body(event, "s&t", secret, int(time.time())).decode(), strict_parsing=True))
    assert not any("&" in v or "=" in v for v in fields.values())
    assert fields["custom_parameters"] == '{"k\\u003d\\u0026":"x","note":"a\\u0026b\\u003dc"}'
    assert json.loads(fields["custom_parameters"]) == metadata  # the same JSON value
    assert fields["user_id"] == "p%26q%3Dr" and fields["site_id"] == "s%26t"
    assert toffeepay.LegacyCallback.verify(fields, secret) == fields


def test_forged_split_of_a_genuine_hash_is_refused() -> None:
    """With raw separators in a value, one hash would cover two field sets: a FAILED callback's
    hash would verify a PAID one. The SDK refuses any value holding them."""
    secret = new_secret()
    now = str(int(time.time()))
    tail = "&game_id=g&paid_amount=499&site_id=s&status=PAID&timestamp=" + now + "&transaction_id=pay_1&user_id=u"
    genuine = {
        "amount": "499",
        "currency": "USD",
        "custom_parameters": '{"k":"v' + tail + '"}',
        "game_id": "g",
        "paid_amount": "0",
        "site_id": "s",
        "status": "FAILED",
        "timestamp": now,
        "transaction_id": "pay_1",
        "user_id": "u",
    }
    genuine_hash = signing.legacy_hash(genuine, secret)  # as an unescaped server would have signed it
    forged = {
        "amount": "499",
        "currency": "USD",
        "custom_parameters": '{"k":"v',
        "game_id": "g",
        "paid_amount": "499",
        "site_id": "s",
        "status": "PAID",
        "timestamp": now,
        "transaction_id": "pay_1",
        "user_id": 'u"}&game_id=g&paid_amount=0&site_id=s&status=FAILED&timestamp='
        + now
        + "&transaction_id=pay_1&user_id=u",
        "hash": genuine_hash,
    }
    assert toffeepay.LegacyCallback.compute_hash(forged, secret) == genuine_hash  # the old ambiguity
    with pytest.raises(toffeepay.SignatureVerificationError) as caught:
        toffeepay.LegacyCallback.verify(forged, secret)
    assert caught.value.reason == "malformed_value"


def test_legacy_timestamp_tolerance() -> None:
    secret = new_secret()
    event = _event("payment.succeeded", **PAYMENT)
    old = dict(parse_qsl(legacy.form_body(event, "s", secret, int(time.time()) - 301).decode()))
    with pytest.raises(toffeepay.SignatureVerificationError) as caught:
        toffeepay.LegacyCallback.verify(old, secret)
    assert caught.value.reason == "stale_timestamp"
    assert toffeepay.LegacyCallback.verify(old, secret, tolerance=600) == old
    assert toffeepay.LegacyCallback.verify(old, secret, tolerance=None) == old
    future = dict(parse_qsl(legacy.form_body(event, "s", secret, int(time.time()) + 400).decode()))
    with pytest.raises(toffeepay.SignatureVerificationError):
        toffeepay.LegacyCallback.verify(future, secret)
    # A stale callback with a wrong hash says bad_signature: the hash is checked first.
    with pytest.raises(toffeepay.SignatureVerificationError) as caught:
        toffeepay.LegacyCallback.verify(_hashed(old, new_secret()), secret)
    assert caught.value.reason == "bad_signature"


def test_sdk_module_uses_the_standard_library_only() -> None:
    import ast
    import sys
    from pathlib import Path

    source = Path(toffeepay.webhook.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
