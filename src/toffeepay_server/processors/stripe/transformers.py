"""Pure mapping between ToffeePay and Stripe: amounts, card fields, metadata, statuses, events.

Nothing here does I/O. A Stripe answer this mapping does not know (a PaymentIntent status, an
event without the fields it needs, an amount that is not the payment's) raises `Unexpected`:
an unknown status is an error, never a silent "pending".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, cast

from ...domain.errors import DomainError, Reason
from ...domain.payments import FailureCode, Method, Outcome, Payment
from ...domain.refunds import Refund, RefundFailureCode, RefundOutcome

if TYPE_CHECKING:
    from stripe.params import PaymentIntentCreateParams, PaymentMethodCreateParams, RefundCreateParams

# Currencies Stripe counts differently from ISO 4217 (Stripe's "special cases"): ISK and UGX
# are zero-decimal but sent with two decimals; three-decimal amounts must end in 0.
_HUNDREDFOLD = frozenset({"ISK", "UGX"})
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# The largest amount Stripe takes, in its own units.
MAX_AMOUNT = 99_999_999
MAX_MESSAGE = 500

# Error codes that mean the card (not Stripe, not us) refused the payment.
_DECLINES = frozenset(
    {
        "card_declined",
        "expired_card",
        "incorrect_cvc",
        "incorrect_number",
        "incorrect_zip",
        "invalid_cvc",
        "invalid_expiry_month",
        "invalid_expiry_year",
        "invalid_number",
        "card_decline_rate_limit_exceeded",
        "authentication_required",
        "payment_intent_authentication_failure",
    }
)
AUTHENTICATION_NEEDED = "The card asks for an authentication step (3-D Secure) this payment page cannot show."

_EXPIRY = re.compile(r"(\d{1,2})\s*/\s*(\d{2}|\d{4})")
_CVC = re.compile(r"\d{3,4}")
_NUMBER = re.compile(r"\d{12,19}")


class Unexpected(Exception):
    """Stripe answered something this mapping does not know."""


# Amounts


def stripe_amount(amount: int, currency: str) -> int:
    """Our minor units (ISO 4217) as Stripe counts them."""
    return amount * 100 if currency.upper() in _HUNDREDFOLD else amount


def from_stripe_amount(amount: int, currency: str) -> int:
    return amount // 100 if currency.upper() in _HUNDREDFOLD else amount


def check_amount(amount: int, currency: str) -> None:
    """Refuse a price Stripe would refuse, before a session exists."""
    if currency.upper() in _THREE_DECIMAL and amount % 10:
        raise DomainError(
            Reason.INVALID_PRICE,
            f"{currency} prices must be a multiple of 10 (Stripe charges {currency} in steps of 0.010)",
        )
    if stripe_amount(amount, currency) > MAX_AMOUNT:
        raise DomainError(Reason.INVALID_PRICE, f"price is above what Stripe can charge in {currency}")


# Card fields from the payment page


@dataclass(frozen=True, slots=True)
class Card:
    number: str
    exp_month: int
    exp_year: int
    cvc: str = ""

    def __repr__(self) -> str:  # a card number is never printed
        return f"Card(last4={self.number[-4:]!r})"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _refuse(message: str) -> DomainError:
    return DomainError(Reason.INVALID_ARGUMENT, message)


def check_method(method: Method) -> None:
    if method is not Method.CARD:
        name = "Apple Pay" if method is Method.APPLE_PAY else "Google Pay"
        raise _refuse(f"{name} is not available for this payment; please pay by card")


def card(fields: Mapping[str, str], today: date) -> Card:
    """The card the player typed, checked as far as can be without asking Stripe."""
    number = re.sub(r"[\s-]", "", fields.get("number", ""))
    if not _NUMBER.fullmatch(number) or not _luhn(number):
        raise _refuse("card number: check the number on your card")
    match = _EXPIRY.fullmatch(fields.get("expiry", "").strip())
    if match is None or not 1 <= int(match.group(1)) <= 12:
        raise _refuse("expiry: use MM/YY, e.g. 12/34")
    month, year = int(match.group(1)), int(match.group(2))
    year += 2000 if year < 100 else 0
    if (year, month) < (today.year, today.month):
        raise _refuse("expiry: the card has expired")
    cvc = fields.get("cvc", "").strip()
    if not _CVC.fullmatch(cvc):
        raise _refuse("CVC: use the 3 or 4 digits on your card")
    return Card(number, month, year, cvc)


# Requests


def idempotency_key(payment_id: str, operation: str) -> str:
    """One key per payment and operation: a retried call is answered, never performed, twice."""
    return f"toffeepay:{payment_id}:{operation}"


def payment_method_params(card_: Card) -> PaymentMethodCreateParams:
    return {
        "type": "card",
        "card": {"number": card_.number, "exp_month": card_.exp_month, "exp_year": card_.exp_year, "cvc": card_.cvc},
    }


def metadata(payment: Payment) -> dict[str, str]:
    """What the PaymentIntent carries back to us in every notification."""
    return {
        "session_id": payment.session_id,
        "payment_id": payment.id,
        "game_id": payment.game_id,
        "user_id": payment.user_id,
    }


def payment_intent_params(payment: Payment, payment_method_id: str | None) -> PaymentIntentCreateParams:
    """The PaymentIntent of a payment; without a payment method, the placeholder the reconciler
    creates under the same idempotency key when Stripe never received the payment."""
    params: dict[str, Any] = {
        "amount": stripe_amount(payment.amount, payment.currency),
        "currency": payment.currency.lower(),
        # Accepted by Stripe's API (and localstripe), though the stripe package's typed
        # parameters no longer list it.
        "payment_method_types": ["card"],
        "metadata": metadata(payment),
    }
    if payment_method_id is not None:
        params["payment_method"] = payment_method_id
    return cast("PaymentIntentCreateParams", params)


def search_query(payment_id: str) -> str:
    """Stripe's search for the PaymentIntent of a payment (its metadata carries our id)."""
    return f"metadata['payment_id']:'{payment_id}'"


def never_confirmed(intent: Mapping[str, Any]) -> bool:
    """An intent nobody confirmed (or whose attempts left no error): nothing was charged."""
    status = intent.get("status")
    return status == "requires_confirmation" or (
        status == "requires_payment_method" and not intent.get("last_payment_error")
    )


def refund_params(payment: Payment, refund: Refund) -> RefundCreateParams:
    """A Stripe Refund of the payment's PaymentIntent; our ids (and the reason) ride in its metadata."""
    if not payment.processor_ref:
        raise ValueError(f"payment {payment.id} has no PaymentIntent to refund")
    return {
        "payment_intent": payment.processor_ref,
        "amount": stripe_amount(refund.amount, refund.currency),
        "metadata": {
            "refund_id": refund.id,
            "payment_id": refund.payment_id,
            "session_id": refund.session_id,
            "game_id": refund.game_id,
            "user_id": refund.user_id,
            "reason": refund.reason.value,
        },
    }


# Answers

INTERRUPTED = "The payment was interrupted before Stripe took it; nothing was charged."


def failure(error: Mapping[str, Any] | None) -> Outcome:
    """A Stripe error object (`last_payment_error`, or a declined call's error) as a failed outcome."""
    error = error or {}
    code = error.get("code") or ""
    message = str(error.get("message") or "")[:MAX_MESSAGE] or None
    if error.get("decline_code") == "insufficient_funds" or code == "insufficient_funds":
        return Outcome(FailureCode.INSUFFICIENT_FUNDS, message)
    if code in _DECLINES:
        return Outcome(FailureCode.CARD_DECLINED, message)
    return Outcome(FailureCode.PROCESSOR_ERROR, message)


def intent_outcome(intent: Mapping[str, Any]) -> Outcome | None:
    """What a PaymentIntent says of its payment; None while Stripe is still processing it."""
    status = intent.get("status")
    if status == "succeeded":
        received = intent.get("amount_received")
        amount = intent.get("amount")
        if isinstance(received, int) and isinstance(amount, int) and 0 <= received < amount:
            currency = str(intent.get("currency", ""))
            return Outcome(FailureCode.PARTIAL_PAYMENT, amount_received=from_stripe_amount(received, currency))
        return Outcome()
    if status == "processing":
        return None
    if status == "requires_action":
        return Outcome(FailureCode.CARD_DECLINED, AUTHENTICATION_NEEDED)
    if status in ("requires_payment_method", "canceled"):
        error = intent.get("last_payment_error")
        return failure(error) if error else Outcome(FailureCode.PROCESSOR_ERROR, "Stripe cancelled the payment.")
    raise Unexpected(f"PaymentIntent status {status!r}")


def check_intent(intent: Mapping[str, Any], payment: Payment) -> None:
    """A PaymentIntent must be for exactly the payment's amount and currency."""
    expected = (stripe_amount(payment.amount, payment.currency), payment.currency.lower())
    if (intent.get("amount"), str(intent.get("currency", "")).lower()) != expected:
        raise Unexpected(f"PaymentIntent {intent.get('id')} is not for {payment.amount} {payment.currency}")


_REFUND_DECLINES = frozenset({"declined", "expired_or_canceled_card", "lost_or_stolen_card"})


def refund_outcome(obj: Mapping[str, Any]) -> RefundOutcome | None:
    """What a Stripe Refund says of its refund; None while Stripe is still on it."""
    status = obj.get("status")
    if status == "succeeded":
        return RefundOutcome()
    if status in ("pending", "requires_action"):
        return None
    if status == "failed":
        reason = obj.get("failure_reason")
        if reason in _REFUND_DECLINES:
            return RefundOutcome(RefundFailureCode.DECLINED)
        if reason == "insufficient_funds":
            return RefundOutcome(RefundFailureCode.INSUFFICIENT_FUNDS)
        return RefundOutcome(RefundFailureCode.PROCESSOR_ERROR)
    if status == "canceled":
        return RefundOutcome(RefundFailureCode.PROCESSOR_ERROR)
    raise Unexpected(f"Refund status {status!r}")


def check_refund(obj: Mapping[str, Any], refund: Refund) -> None:
    """A Stripe Refund must be for exactly the refund's amount and currency."""
    expected = (stripe_amount(refund.amount, refund.currency), refund.currency.lower())
    if (obj.get("amount"), str(obj.get("currency", "")).lower()) != expected:
        raise Unexpected(f"Refund {obj.get('id')} is not for {refund.amount} {refund.currency}")


# Notifications

# The events ToffeePay acts on; Stripe's other events are acknowledged and ignored.
INTENT_EVENTS = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled"})
DISPUTE_CREATED = "charge.dispute.created"
# Events whose object is a Refund, and the one whose Charge lists its refunds.
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
CHARGE_REFUNDED = "charge.refunded"
EVENTS = (*sorted(INTENT_EVENTS), DISPUTE_CREATED, CHARGE_REFUNDED, *sorted(REFUND_EVENTS))


@dataclass(frozen=True, slots=True)
class IntentChanged:
    intent: Mapping[str, Any]
    intent_id: str
    payment_id: str | None


@dataclass(frozen=True, slots=True)
class DisputeOpened:
    dispute_id: str
    intent_id: str | None
    reason: str
    amount: int
    currency: str
    # From the dispute's metadata, used when the PaymentIntent matches no payment.
    payment_id: str | None
    game_id: str | None
    session_id: str | None
    user_id: str | None


@dataclass(frozen=True, slots=True)
class RefundsChanged:
    """Stripe Refunds whose status may have moved (one, or those a refunded Charge lists)."""

    refunds: tuple[Mapping[str, Any], ...]


# The longest ids and hints the tables keep (Stripe's own ids are far shorter).
MAX_ID = 255
_HINT_LIMITS = {"game_id": 64, "session_id": 40, "user_id": 255, "payment_id": 40}


def _text(value: Any, max_len: int = MAX_ID) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= max_len else None


def _object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping) or not _text(obj.get("id")):
        raise Unexpected(f"event {event.get('id')} carries no object")
    return obj


def _hints(obj: Mapping[str, Any]) -> dict[str, str | None]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return {name: _text(meta.get(name), limit) for name, limit in _HINT_LIMITS.items()}


def notification(event: Mapping[str, Any]) -> IntentChanged | DisputeOpened | RefundsChanged | None:
    """What a verified Stripe event asks of us; None for events ToffeePay does not act on."""
    kind = event.get("type")
    if kind in REFUND_EVENTS:
        return RefundsChanged((_object(event),))
    if kind == CHARGE_REFUNDED:
        # The Charge lists its refunds only when Stripe's API version still expands them;
        # otherwise each refund's own `refund.updated` settles it.
        listed = _object(event).get("refunds")
        data = listed.get("data") if isinstance(listed, Mapping) else None
        found = [r for r in data if isinstance(r, Mapping) and _text(r.get("id"))] if isinstance(data, list) else []
        return RefundsChanged(tuple(found))
    if kind in INTENT_EVENTS:
        intent = _object(event)
        return IntentChanged(intent, intent["id"], _hints(intent)["payment_id"])
    if kind == DISPUTE_CREATED:
        return _dispute(_object(event))
    return None


def _dispute(obj: Mapping[str, Any]) -> DisputeOpened:
    amount, currency = obj.get("amount"), _text(obj.get("currency"))
    if not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT or currency is None or len(currency) != 3:
        raise Unexpected(f"dispute {obj['id']} has no amount and currency")
    intent = obj.get("payment_intent")
    return DisputeOpened(
        dispute_id=obj["id"],
        intent_id=_text(intent.get("id") if isinstance(intent, Mapping) else intent),
        reason=str(obj.get("reason") or "unknown")[:MAX_MESSAGE],
        amount=from_stripe_amount(amount, currency),
        currency=currency.upper(),
        **_hints(obj),
    )


def refund_hint(obj: Mapping[str, Any]) -> str | None:
    """Our refund id, from a Stripe Refund's metadata."""
    meta = obj.get("metadata")
    return _text(meta.get("refund_id"), 40) if isinstance(meta, Mapping) else None
