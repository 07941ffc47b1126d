"""The shared verification vectors of sdk/testdata, run against the Python SDK.

The TypeScript and Go SDKs run the same files in their own suites (tests/e2e/test_sdk_languages.py).
"""

from __future__ import annotations

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


@pytest.mark.parametrize("vector", LEGACY["vectors"], ids=lambda v: v["name"])
def test_legacy_callback_vectors(vector: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at(monkeypatch, vector["now"])
    options = {"tolerance": LEGACY["tolerance"]}
    for fields in (vector["fields"], vector["body"]):
        if vector["valid"]:
            assert toffeepay.LegacyCallback.verify(fields, vector["secret"], **options) == vector["fields"]
        else:
            with pytest.raises(toffeepay.SignatureVerificationError) as refused:
                toffeepay.LegacyCallback.verify(fields, vector["secret"], **options)
            assert refused.value.reason == vector["error"]


@pytest.mark.parametrize("vector", TOKENS["vectors"], ids=lambda v: v["name"])
def test_return_token_vectors(vector: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at(monkeypatch, vector["now"])
    verify = toffeepay.ReturnToken.verify
    if vector["valid"]:
        claims = verify(vector["token"], TOKENS["jwks"], game_id=vector["game_id"])
        assert {k: claims[k] for k in vector["claims"]} == vector["claims"]
    else:
        with pytest.raises(toffeepay.SignatureVerificationError) as refused:
            verify(vector["token"], TOKENS["jwks"], game_id=vector["game_id"])
        assert refused.value.reason == vector["error"]
