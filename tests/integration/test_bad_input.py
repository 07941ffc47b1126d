"""Property: whatever a client sends, the answer is a 2xx or a reasoned 4xx, never a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Api, Game
from toffeepay_server.domain.errors import Reason

REASONS = {r.value for r in Reason}
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=40)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from(
    [
        "game_id",
        "user_id",
        "item",
        "return_url",
        "metadata",
        "expires_at",
        "limit",
        "offset",
        "status",
        "from",
        "to",
        "id",
        "session_id",
        "title",
        "price",
        "currency",
        "image",
    ]
)
bodies = st.dictionaries(fields, values, max_size=6) | values
item = st.fixed_dictionaries(
    {},
    optional={
        "title": scalars,
        "price": scalars,
        "currency": st.sampled_from(["USD", "JPY", "KWD", "usd", "", "XYZ"]) | scalars,
        "image": scalars,
    },
)
create_bodies = st.fixed_dictionaries(
    {"item": item | values},
    optional={"user_id": scalars, "return_url": scalars, "metadata": values, "expires_at": scalars},
)
RPCS = [
    "CreateSession",
    "GetSession",
    "GetSessionStatus",
    "CancelSession",
    "GetPayment",
    "ListSessions",
    "ListPayments",
    "ListDisputes",
]


def check(api: Api, rpc: str, raw: bytes, content_type: str = "application/json") -> None:
    response = api.post(f"PaymentService/{rpc}", content=raw, headers={"Content-Type": content_type})
    assert response.status_code < 500, (rpc, raw[:300], response.status_code, response.text)
    if response.status_code != 200:
        reason = response.json()["message"].split(":", 1)[0]
        assert reason in REASONS, (rpc, raw[:300], response.text)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(rpc=st.sampled_from(RPCS), body=bodies)
def test_any_json_body(api: Api, rpc: str, body: object) -> None:
    check(api, rpc, json.dumps(body).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=create_bodies)
def test_any_create_session(api: Api, game: Game, body: dict) -> None:
    check(api, "CreateSession", json.dumps({"game_id": game.game_id, **body}).encode())


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rpc=st.sampled_from(RPCS),
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(["application/json", "application/proto"]),
)
def test_any_bytes(api: Api, rpc: str, raw: bytes, content_type: str) -> None:
    check(api, rpc, raw, content_type)
