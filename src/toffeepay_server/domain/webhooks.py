"""Webhook endpoints: URL and address rules, event filters, formats and signing secrets."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from . import events
from .errors import DomainError, Reason
from .text import check_text
from .urls import NON_ASCII_DIGITS, has_non_ascii_digits, is_local_host

JSON = "json"
LEGACY_FORM = "legacy_form"
FORMATS = (JSON, LEGACY_FORM)
# What a legacy callback can report: the outcomes of a payment session, and money given back.
LEGACY_EVENT_TYPES = frozenset(
    {
        events.PAYMENT_SUCCEEDED,
        events.PAYMENT_FAILED,
        events.SESSION_CANCELLED,
        events.SESSION_EXPIRED,
        events.REFUND_SUCCEEDED,
    }
)
SECRET_PREFIX = "whsec_"
MAX_URL = 2048
MAX_DESCRIPTION = 500
MAX_ENDPOINTS = 16
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)
# Events stay listable and resendable this long.
EVENT_RETENTION = timedelta(days=30)
# Cloud metadata and platform services outside the link-local range (Alibaba, AWS IPv6 IMDS
# and DNS, Oracle, Azure's wire server): never reachable, whatever the operator allows.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("100.100.100.200", "fd00:ec2::254", "fd00:ec2::23", "192.0.0.192", "168.63.129.16")
)
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Where the operator lets webhooks go (TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS).
PRIVATE_NONE = "none"
PRIVATE_SANDBOX = "sandbox"
PRIVATE_ALL = "all"
PRIVATE_TARGETS = (PRIVATE_NONE, PRIVATE_SANDBOX, PRIVATE_ALL)
LISTEN_HINT = (
    "to receive sandbox webhooks on a local or private address, run `toffeepay listen --forward-to <url>`, "
    "or have the operator set TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS=sandbox"
)


def private_allowed(setting: str, mode: str) -> bool:
    """Whether endpoints of this mode may use http and private or loopback addresses."""
    return setting == PRIVATE_ALL or (setting == PRIVATE_SANDBOX and mode == "sandbox")


class EndpointState(StrEnum):
    """Whether an endpoint receives deliveries."""

    ENABLED = "enabled"
    """Receives the events it subscribes to."""
    DISABLED = "disabled"
    """Receives nothing; its pending deliveries wait until it is enabled again."""


class DisabledReason(StrEnum):
    """Why an endpoint is disabled."""

    FAILING = "failing"
    """It failed every attempt for the disable period, so the dispatcher disabled it."""
    MANUAL = "manual"
    """It was disabled by request (UpdateEndpoint, the dashboard)."""


ENDPOINT_TRANSITIONS: dict[EndpointState, frozenset[EndpointState]] = {
    # Enabling an enabled endpoint starts its run of failures afresh (enabled -> enabled).
    EndpointState.ENABLED: frozenset({EndpointState.ENABLED, EndpointState.DISABLED}),
    # Disabling a disabled endpoint keeps the reason it was first disabled for (disabled -> disabled).
    EndpointState.DISABLED: frozenset({EndpointState.ENABLED, EndpointState.DISABLED}),
}
MAX_CHAOS_DELAY = 300


@dataclass(frozen=True, slots=True)
class Chaos:
    """Sandbox chaos: deliveries sent twice, late (and so out of order), or wrongly signed."""

    duplicate_percent: int = 0
    delay_max_seconds: int = 0
    bad_signature_percent: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "duplicate_percent": self.duplicate_percent,
            "delay_max_seconds": self.delay_max_seconds,
            "bad_signature_percent": self.bad_signature_percent,
        }


def check_chaos(chaos: Chaos | None, mode: str) -> Chaos | None:
    """Valid chaos settings for a sandbox endpoint; all zero means none."""
    if chaos is None:
        return None
    for name, value, top in (
        ("duplicate_percent", chaos.duplicate_percent, 100),
        ("delay_max_seconds", chaos.delay_max_seconds, MAX_CHAOS_DELAY),
        ("bad_signature_percent", chaos.bad_signature_percent, 100),
    ):
        if not 0 <= value <= top:
            raise DomainError(Reason.INVALID_ARGUMENT, f"chaos.{name} must be 0..{top}, got {value}")
    if chaos == Chaos():
        return None
    if mode != "sandbox":
        raise DomainError(Reason.INVALID_ARGUMENT, "chaos is for sandbox endpoints only; live endpoints refuse it")
    return chaos


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt as ListDeliveryAttempts shows it."""

    id: str
    event_id: str
    endpoint_id: str
    attempt_number: int
    succeeded: bool
    http_status: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None
    trigger: str
    created_at: datetime
    next_attempt_at: datetime | None

    @property
    def status(self) -> str:
        return "succeeded" if self.succeeded else "failed"


TRIGGERS = ("scheduled", "manual", "replay", "test")
ATTEMPT_STATUSES = ("succeeded", "failed")


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (Standard Webhooks style)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    game_id: str
    mode: str
    url: str
    format: str
    events: tuple[str, ...]
    enabled: bool
    description: str | None
    # Never in a repr, so never in a log line or a traceback.
    secret: str = field(repr=False)
    previous_secret: str | None = field(repr=False)
    previous_secret_expires_at: datetime | None
    created_at: datetime
    deleted_at: datetime | None = None
    disabled_reason: DisabledReason | None = None
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    failing_reported_at: datetime | None = None
    chaos: Chaos | None = None

    @property
    def state(self) -> EndpointState:
        return EndpointState.ENABLED if self.enabled else EndpointState.DISABLED

    def _moving_to(self, target: EndpointState) -> None:
        """The only guard of an endpoint's state: as the table says, and never once deleted."""
        if self.deleted_at is not None or target not in ENDPOINT_TRANSITIONS[self.state]:
            now = "deleted" if self.deleted_at is not None else self.state.value
            raise DomainError(Reason.INTERNAL, f"an endpoint that is {now} is not {target.value}")

    def enable(self) -> Endpoint:
        """Enabled, with its run of failures forgotten (pending deliveries go out again)."""
        self._moving_to(EndpointState.ENABLED)
        return replace(self, enabled=True, disabled_reason=None, failing_since=None, failing_reported_at=None)

    def disable(self, reason: DisabledReason) -> Endpoint:
        """Disabled for `reason`; one already disabled keeps the reason it was first disabled for."""
        self._moving_to(EndpointState.DISABLED)
        if self.state is EndpointState.DISABLED:
            return self
        return replace(self, enabled=False, disabled_reason=reason)

    def carries(self, event_type: str) -> bool:
        """Whether this endpoint's format can express the event at all."""
        return self.format == JSON or event_type in LEGACY_EVENT_TYPES

    def wants(self, event_type: str) -> bool:
        """Whether the event passes the endpoint's filter and format."""
        return self.carries(event_type) and (not self.events or event_type in self.events)

    def signing_secrets(self, now: datetime) -> list[str]:
        """Every secret a receiver may hold now: the current one, then the previous until its overlap ends."""
        valid = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            valid.append(self.previous_secret)
        return valid

    def rotated(self, secret: str, now: datetime, overlap: timedelta) -> Endpoint:
        if not overlap:
            return replace(self, secret=secret, previous_secret=None, previous_secret_expires_at=None)
        return replace(self, secret=secret, previous_secret=self.secret, previous_secret_expires_at=now + overlap)


def check_format(value: str) -> str:
    value = value or JSON
    if value not in FORMATS:
        raise DomainError(Reason.INVALID_FORMAT, f"format must be json or legacy_form, got {value[:40]!r}")
    return value


def check_event_types(types: Iterable[str]) -> tuple[str, ...]:
    """Known event types, each once, in the order given; empty means all."""
    found: list[str] = []
    for event_type in types:
        if event_type not in events.EVENT_TYPES:
            known = ", ".join(events.EVENT_TYPES)
            raise DomainError(Reason.INVALID_EVENT_TYPE, f"unknown event type {event_type[:60]!r} (known: {known})")
        if event_type not in found:
            found.append(event_type)
    return tuple(found)


def check_description(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_DESCRIPTION:
        raise DomainError(Reason.INVALID_ARGUMENT, f"description is longer than {MAX_DESCRIPTION} characters")
    return value if value is None else check_text(value, "description")


def check_overlap(seconds: int | None) -> timedelta:
    if seconds is None:
        return DEFAULT_OVERLAP
    overlap = timedelta(seconds=seconds)
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise DomainError(Reason.INVALID_ARGUMENT, "overlap_seconds must be 0..604800 (7 days)")
    return overlap


def _embedded(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 spelling carries (mapped, 6to4, Teredo server, NAT64), else itself."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[0]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_allowed(address: str, *, private: bool) -> bool:
    """Whether a webhook may connect to this IP address.

    Never to link-local, multicast, unspecified, reserved or cloud metadata addresses, in any
    spelling; without `private` only to globally routable ones (no loopback, private, shared
    or unique-local space).
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    for candidate in {ip, _embedded(ip)}:
        if candidate in _METADATA or candidate.is_link_local or candidate.is_multicast:
            return False
        if candidate.is_unspecified or candidate.is_reserved:
            return False
        if not (candidate.is_global or private):
            return False
    return True


def literal_address(host: str) -> str | None:
    """The host as an IP address string when it is one."""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None


def check_url(url: str, *, private: bool) -> str:
    """An http(s) URL with a host; without `private`, https to a public host only."""
    if not url:
        raise DomainError(Reason.INVALID_URL, "url is required")
    if len(url) > MAX_URL:
        raise DomainError(Reason.INVALID_URL, f"url is longer than {MAX_URL} characters")
    if any(ord(ch) < 0x21 or ch.isspace() or ord(ch) == 0x7F for ch in url):
        raise DomainError(Reason.INVALID_URL, "url contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise DomainError(Reason.INVALID_URL, "url is not a valid URL") from None
    if has_non_ascii_digits(parts.netloc):
        raise DomainError(Reason.INVALID_URL, NON_ASCII_DIGITS.format(name="url"))
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise DomainError(
            Reason.INVALID_URL, "url must be an http(s) URL with a host, e.g. https://game.example/webhooks"
        )
    if parts.username is not None or parts.password is not None:
        raise DomainError(Reason.INVALID_URL, "url must not carry credentials")
    host = parts.hostname
    address = literal_address(host)
    if address is not None and not address_allowed(address, private=private):
        if not private and address_allowed(address, private=True):
            raise DomainError(
                Reason.INVALID_URL,
                f"{address} is a private or loopback address, where this installation sends no webhooks; {LISTEN_HINT}",
            )
        raise DomainError(
            Reason.INVALID_URL,
            f"webhooks never go to link-local, multicast, reserved or metadata addresses ({address})",
        )
    if not private:
        if is_local_host(host):
            raise DomainError(
                Reason.INVALID_URL, f"{host} is a local host, where this installation sends no webhooks; {LISTEN_HINT}"
            )
        if scheme != "https":
            raise DomainError(Reason.INVALID_URL, f"webhook URLs must use https on this installation; {LISTEN_HINT}")
    return url
