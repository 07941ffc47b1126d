"""The return token's rules: its claims, which keys are published and which one signs."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.test_domain import NOW, session
from toffeepay_server.domain.return_tokens import LIFETIME, SigningKey, claims, is_published, signing_key
from toffeepay_server.domain.sessions import SessionStatus
from toffeepay_server.domain.urls import with_session_id


def key(generation: int, retired_at=None) -> SigningKey:
    return SigningKey(kid=f"k{generation}", generation=generation, public_x="x", created_at=NOW, retired_at=retired_at)


def test_claims_say_who_and_what_for_ten_minutes() -> None:
    said = claims(session(status=SessionStatus.PAID), NOW)
    assert said == {
        "session_id": "sess_x",
        "game_id": "g",
        "user_id": "u",
        "status": "paid",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 600,
    }


def test_a_retired_key_stays_published_until_its_tokens_expired() -> None:
    retired = key(1, retired_at=NOW)
    assert is_published(key(2), NOW + timedelta(days=365))
    assert is_published(retired, NOW + LIFETIME)
    assert not is_published(retired, NOW + LIFETIME + timedelta(minutes=1))


def test_the_newest_active_key_signs() -> None:
    assert signing_key([key(1, retired_at=NOW), key(2), key(3)]) == key(3)
    assert signing_key([key(1, retired_at=NOW)]) is None


def test_the_token_goes_last_and_replaces_any_given() -> None:
    assert (
        with_session_id("mygame://done?token=x&a=1", "sess_1", "t.o.k")
        == "mygame://done?a=1&session_id=sess_1&token=t.o.k"
    )
    assert with_session_id("mygame://done?token=x", "sess_1") == "mygame://done?token=x&session_id=sess_1"
