"""The one place that talks to Stripe. Every call carries an idempotency key derived from the booking, so a
retried task, a double click or a replayed request never creates a second PaymentIntent or refund.

Tests replace Stripe's HTTP transport (`set_http_client`) with a fake that answers real-shaped JSON; the
SDK itself still builds the requests and parses the answers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import stripe
from django.conf import settings

from core.errors import ServiceUnavailable

# Currencies without a minor unit (amounts are sent as-is).
ZERO_DECIMAL_CURRENCIES = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV"}

_http_client: stripe.HTTPClient | None = None


def set_http_client(client: stripe.HTTPClient | None) -> None:
    """Swap the HTTP transport (tests); None restores the SDK's default."""
    global _http_client
    _http_client = client


def _client() -> stripe.StripeClient:
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, http_client=_http_client, max_network_retries=2)


def to_minor_units(amount: Decimal, currency: str) -> int:
    if currency.upper() in ZERO_DECIMAL_CURRENCIES:
        return int(amount.quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    return int((amount * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def from_minor_units(amount: int, currency: str) -> Decimal:
    if currency.upper() in ZERO_DECIMAL_CURRENCIES:
        return Decimal(amount)
    return (Decimal(amount) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class PaymentIntentInfo:
    id: str
    client_secret: str
    status: str


def _unavailable(exc: stripe.StripeError) -> ServiceUnavailable:
    return ServiceUnavailable(
        "The payment provider could not be reached. Retry shortly.",
        code="payment_provider_unavailable",
        fields={"provider_error": [str(getattr(exc, "user_message", None) or exc.__class__.__name__)]},
    )


def payment_intent_create(
    *, booking_id: int, event_id: int, amount: Decimal, currency: str, description: str
) -> PaymentIntentInfo:
    try:
        intent = _client().v1.payment_intents.create(
            params={
                "amount": to_minor_units(amount, currency),
                "currency": currency.lower(),
                "description": description[:200],
                "automatic_payment_methods": {"enabled": True},
                "metadata": {"booking_id": str(booking_id), "event_id": str(event_id)},
            },
            options={"idempotency_key": f"premier-booking-{booking_id}-payment-intent"},
        )
    except stripe.StripeError as exc:
        raise _unavailable(exc) from exc
    return PaymentIntentInfo(id=intent.id, client_secret=intent.client_secret or "", status=intent.status)


def payment_intent_retrieve(*, payment_intent_id: str) -> PaymentIntentInfo:
    try:
        intent = _client().v1.payment_intents.retrieve(payment_intent_id)
    except stripe.StripeError as exc:
        raise _unavailable(exc) from exc
    return PaymentIntentInfo(id=intent.id, client_secret=intent.client_secret or "", status=intent.status)


def payment_intent_cancel(*, booking_id: int, payment_intent_id: str) -> str:
    """Cancel an unpaid PaymentIntent. Returns its status; a PaymentIntent that can no longer be cancelled
    (it succeeded meanwhile) is left alone: its webhook settles the booking."""
    try:
        intent = _client().v1.payment_intents.cancel(
            payment_intent_id, options={"idempotency_key": f"premier-booking-{booking_id}-pi-cancel"}
        )
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) == "payment_intent_unexpected_state":
            return "not_cancellable"
        raise
    return intent.status


def refund_create(*, booking_id: int, payment_intent_id: str, amount: Decimal, currency: str) -> tuple[str, str]:
    """Refund `amount` of the booking's payment (one refund per booking). Returns (refund id, status)."""
    refund = _client().v1.refunds.create(
        params={
            "payment_intent": payment_intent_id,
            "amount": to_minor_units(amount, currency),
            "metadata": {"booking_id": str(booking_id)},
        },
        options={"idempotency_key": f"premier-booking-{booking_id}-refund"},
    )
    return refund.id, refund.status or "pending"
