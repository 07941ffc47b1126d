"""The installation key and AES-GCM sealing of stored secrets, without a database."""

from __future__ import annotations

import base64
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from toffeepay_server.store.secret_box import PREFIX, KeyMismatch, Keyring, SecretBox, derive_key, load_key_file


def test_seal_and_open() -> None:
    box = SecretBox(derive_key("material"))
    sealed = box.seal("whsec_abc", "webhook_endpoints.secret")
    assert sealed.startswith(PREFIX) and "whsec_" not in sealed
    assert box.seal("whsec_abc", "webhook_endpoints.secret") != sealed  # a fresh nonce each time
    assert box.open(sealed, "webhook_endpoints.secret") == "whsec_abc"
    assert box.open_bytes(box.seal_bytes(b"\x00body", "p"), "p") == b"\x00body"


def test_wrong_key_purpose_or_tampering_never_opens() -> None:
    box = SecretBox(derive_key("material"))
    sealed = box.seal("whsec_abc", "webhook_endpoints.secret")
    with pytest.raises(KeyMismatch, match="installation key"):
        SecretBox(derive_key("other")).open(sealed, "webhook_endpoints.secret")
    with pytest.raises(KeyMismatch):
        box.open(sealed, "webhook_endpoints.previous_secret")  # moved to another column
    raw = bytearray(base64.urlsafe_b64decode(sealed[len(PREFIX) :]))
    raw[20] ^= 1  # one bit of the ciphertext
    with pytest.raises(KeyMismatch):
        box.open(PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode(), "webhook_endpoints.secret")
    with pytest.raises(KeyMismatch, match="not sealed"):
        box.open("whsec_in_clear", "webhook_endpoints.secret")


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "toffeepay.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_key_file(path), range(16)))
    assert len(keys) == 1 and len(next(iter(keys))) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_file(path) in keys
    assert [p.name for p in path.parent.iterdir()] == ["toffeepay.key"]  # no temporary files left


def test_secret_key_setting_wins_over_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "toffeepay.key"
    from_setting = Keyring("operator-secret", path)
    sealed = from_setting.box().seal("s", "p")
    assert not path.exists()
    assert Keyring("operator-secret", tmp_path / "elsewhere.key").box().open(sealed, "p") == "s"
    with pytest.raises(KeyMismatch):
        Keyring(None, path).box().open(sealed, "p")
    assert path.exists()
    assert "operator-secret" not in repr(from_setting)


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "toffeepay.key"
    path.write_text("not a key\n")
    with pytest.raises(KeyMismatch, match="does not hold"):
        load_key_file(path)


def test_an_endpoint_never_prints_its_secrets() -> None:
    from datetime import UTC, datetime

    from toffeepay_server.domain.webhooks import Endpoint, new_secret

    secret, previous = new_secret(), new_secret()
    endpoint = Endpoint(
        "we_1", "g", "sandbox", "https://x", "json", (), True, None, secret, previous, None, datetime.now(UTC)
    )
    assert secret not in repr(endpoint) and previous not in repr(endpoint) and "whsec_" not in str(endpoint)
