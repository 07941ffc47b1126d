"""The SDK's signature debugger (`Webhook.explain`) names each way a webhook fails to verify."""

from __future__ import annotations

import json
import time

import pytest
import toffeepay
from toffeepay import Webhook, WebhookSignature

SECRET = "whsec_" + "c2VjcmV0" * 5 + "AAA="
BODY = json.dumps(
    {"id": "e1", "event": "session.paid", "status": "paid", "data": {"title": "Épée"}},
    separators=(",", ":"),
    ensure_ascii=False,
).encode()


# The cases below are built when the tests are collected, maybe minutes before they run: they
# are judged at this fixed moment, not at the clock's.
NOW = 1_800_000_000


def header(body: bytes = BODY, t: int | None = None, secret: str = SECRET) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1={WebhookSignature.compute(body, t, secret)}"


def test_a_valid_webhook_is_valid() -> None:
    said = Webhook.explain(BODY, header(), SECRET)
    assert said.valid and said.reason is None and abs(said.skew_seconds or 0) <= 2
    assert Webhook.explain(BODY, header(), ["whsec_old", SECRET]).valid  # rotation: either secret


@pytest.mark.parametrize(
    ("body", "sig", "secret", "reason"),
    [
        (BODY, None, SECRET, "malformed_header"),
        (BODY, "v1=abc", SECRET, "malformed_header"),
        (BODY, "t=12,v2=abc", SECRET, "malformed_header"),
        (BODY, header(t=NOW - 1000), SECRET, "stale_timestamp"),
        (BODY, header(t=NOW + 1000), SECRET, "stale_timestamp"),
        (BODY + b"\n", header(t=NOW), SECRET, "body_added_newline"),
        (BODY + b"\r\n", header(t=NOW), SECRET, "body_added_newline"),
        (json.dumps(json.loads(BODY)).encode(), header(t=NOW), SECRET, "body_reencoded"),
        (json.dumps(json.loads(BODY), ensure_ascii=True, indent=1).encode(), header(t=NOW), SECRET, "body_reencoded"),
        (BODY, header(t=NOW, secret="whsec_other"), SECRET, "wrong_secret"),
        (BODY, header(t=NOW), SECRET.removeprefix("whsec_"), "wrong_secret"),
        (BODY[:-1], header(t=NOW), SECRET, "body_changed"),
        (b"not json", header(t=NOW), SECRET, "body_changed"),
    ],
)
def test_each_failure_is_named(body: bytes, sig: str | None, secret: str, reason: str) -> None:
    said = Webhook.explain(body, sig, secret, now=NOW)
    assert not said.valid and said.reason == reason, said
    with pytest.raises(toffeepay.SignatureVerificationError):
        Webhook.construct_event(body, sig, secret)


def test_the_time_is_said_with_its_distance() -> None:
    now = 1_800_000_000
    said = Webhook.explain(BODY, header(t=now - 900), SECRET, now=now)
    assert said.reason == "stale_timestamp" and said.skew_seconds == -900
    assert "900 s in the past, 600 s beyond the tolerance of 300 s" in said.message
    assert Webhook.explain(BODY, header(t=now - 900), SECRET, tolerance=None, now=now).valid
