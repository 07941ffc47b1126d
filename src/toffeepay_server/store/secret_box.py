"""Secrets at rest: AES-GCM (from `cryptography`) under the installation key.

The installation key is derived (HKDF-SHA256) from TOFFEEPAY_SECRET_KEY when it is set;
otherwise it is 32 random bytes kept in a key file of mode 0600 (TOFFEEPAY_KEY_FILE,
default `toffeepay.key` in the working directory), created on first use. Every process
of an installation must hold the same key: without it the stored webhook secrets cannot
be read, by design.

A sealed value is `PREFIX` + base64url(nonce + ciphertext + tag); its column name is the
associated data, so a value moved to another column does not open.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "aesgcm1:"
BYTES_PREFIX = PREFIX.encode()
DEFAULT_KEY_FILE = "toffeepay.key"
_NONCE = 12
_HKDF_INFO = b"toffeepay secrets at rest v1"


class KeyMismatch(Exception):
    """A sealed value does not open with this installation key (another key, or tampered)."""


def derive_key(material: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(material.encode())


def load_key_file(path: Path) -> bytes:
    """The key in `path`, created (mode 0600, atomically: the first process wins) if absent."""
    with contextlib.suppress(FileNotFoundError):
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # never replaces a key another process wrote first
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    text = path.read_text().strip()
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise KeyMismatch(f"{path} does not hold a ToffeePay key (base64 of 32 bytes)")
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal_bytes(self, plain: bytes, purpose: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return BYTES_PREFIX + base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plain, purpose.encode()))

    def open_bytes(self, sealed: bytes, purpose: str) -> bytes:
        if not sealed.startswith(BYTES_PREFIX):
            raise KeyMismatch(f"{purpose}: value is not sealed")
        raw = base64.urlsafe_b64decode(sealed[len(BYTES_PREFIX) :])
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], purpose.encode())
        except InvalidTag:
            raise KeyMismatch(
                f"{purpose}: a stored secret does not open with this installation key "
                "(TOFFEEPAY_SECRET_KEY or the key file): see docs/secrets.md"
            ) from None

    def seal(self, plain: str, purpose: str) -> str:
        return self.seal_bytes(plain.encode(), purpose).decode()

    def open(self, sealed: str, purpose: str) -> str:
        return self.open_bytes(sealed.encode(), purpose).decode()


class Keyring:
    """Where an installation's key comes from; read on first use, then kept."""

    def __init__(self, secret_key: str | None = None, key_file: str | os.PathLike[str] | None = None) -> None:
        self._secret_key = secret_key
        self.key_file = Path(key_file or DEFAULT_KEY_FILE)
        self._box: SecretBox | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> Keyring:
        return cls(os.environ.get("TOFFEEPAY_SECRET_KEY") or None, os.environ.get("TOFFEEPAY_KEY_FILE") or None)

    @property
    def source(self) -> str:
        return "TOFFEEPAY_SECRET_KEY" if self._secret_key else f"key file {self.key_file.resolve()}"

    def box(self) -> SecretBox:
        if self._box is None:
            with self._lock:
                if self._box is None:
                    key = derive_key(self._secret_key) if self._secret_key else load_key_file(self.key_file)
                    self._box = SecretBox(key)
        return self._box

    def __repr__(self) -> str:
        return f"Keyring({self.source})"
