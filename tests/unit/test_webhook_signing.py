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


def test_header_follows_seed_002_recipe() -> None:
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
    body = legacy.form_body(event, "site_7", secret)
    fields = dict(parse_qsl(body.decode(), strict_parsing=True))
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
    fields = dict(parse_qsl(legacy.form_body(_event("payment.succeeded", **PAYMENT), "s", secret).decode()))
    cases = [
        ({**fields, "paid_amount": "999"}, "bad_signature"),
        ({k: v for k, v in fields.items() if k != "hash"}, "malformed_header"),
        ({**fields, "extra": "1"}, "bad_signature"),
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
        legacy.form_fields(_event("session.created", **SESSION), "s")


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
