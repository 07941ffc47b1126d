"""The shared verification vectors of sdk/testdata, run against the Python SDK.

The TypeScript and Go SDKs run the same files in their own suites (tests/e2e/test_sdk_languages.py).
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

import pytest
import toffeepay

VECTORS = Path(__file__).resolve().parents[2] / "sdk" / "testdata"


def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


def at(monkeypatch: pytest.MonkeyPatch, now: int) -> None:
    """Verify as if the clock read `now` (each vector carries its own)."""
    monkeypatch.setattr(time, "time", lambda: float(now))


WEBHOOKS = load("webhooks.json")
LEGACY = load("legacy_callbacks.json")
TOKENS = load("return_tokens.json")


@pytest.mark.parametrize("vector", WEBHOOKS["vectors"], ids=lambda v: v["name"])
def test_webhook_vectors(vector: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at(monkeypatch, vector["now"])
    for body in (vector["body"], vector["body"].encode()):
        if vector["valid"]:
            event = toffeepay.Webhook.construct_event(body, vector["header"], vector["secret"], WEBHOOKS["tolerance"])
            assert event["id"] == json.loads(vector["body"])["id"]
        else:
            with pytest.raises(toffeepay.SignatureVerificationError) as refused:
                toffeepay.Webhook.construct_event(body, vector["header"], vector["secret"], WEBHOOKS["tolerance"])
            assert refused.value.reason == vector["error"]


# Whether this Python SDK's legacy verifier checks the timestamp, unknown fields and raw `&`/`=`
# (the vectors needing that are skipped, and say so, until it does).
LEGACY_STRICT = "tolerance" in inspect.signature(toffeepay.LegacyCallback.verify).parameters
HASH_ONLY = {"valid", "valid cancelled session", "tampered amount", "wrong secret", "missing hash"}


@pytest.mark.parametrize("vector", LEGACY["vectors"], ids=lambda v: v["name"])
def test_legacy_callback_vectors(vector: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    if not LEGACY_STRICT and vector["name"] not in HASH_ONLY:
        pytest.skip("this Python SDK's LegacyCallback.verify checks only the hash")
    at(monkeypatch, vector["now"])
    options = {"tolerance": LEGACY["tolerance"]} if LEGACY_STRICT else {}
    for fields in (vector["fields"], vector["body"]):
        if vector["valid"]:
            assert toffeepay.LegacyCallback.verify(fields, vector["secret"], **options) == vector["fields"]
        else:
            with pytest.raises(toffeepay.SignatureVerificationError) as refused:
                toffeepay.LegacyCallback.verify(fields, vector["secret"], **options)
            assert refused.value.reason == vector["error"]


@pytest.mark.skipif(not hasattr(toffeepay, "ReturnToken"), reason="this Python SDK has no ReturnToken yet")
@pytest.mark.parametrize("vector", TOKENS["vectors"], ids=lambda v: v["name"])
def test_return_token_vectors(vector: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at(monkeypatch, vector["now"])
    verify = toffeepay.ReturnToken.verify  # type: ignore[attr-defined]
    if vector["valid"]:
        claims = verify(vector["token"], TOKENS["jwks"], game_id=vector["game_id"])
        found = claims if isinstance(claims, dict) else vars(claims)
        assert {k: found[k] for k in vector["claims"]} == vector["claims"]
    else:
        with pytest.raises(toffeepay.SignatureVerificationError):
            verify(vector["token"], TOKENS["jwks"], game_id=vector["game_id"])
