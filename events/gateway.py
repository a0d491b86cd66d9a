"""The one place that talks to Stripe. Every call carries an idempotency key derived from the booking, so a
retried task, a double click or a replayed request never creates a second PaymentIntent or refund.

Every call has a time budget well under the web worker's timeout: connect and read timeouts
(STRIPE_CONNECT_TIMEOUT_SECONDS, STRIPE_REQUEST_TIMEOUT_SECONDS). Calls made inside a request
(`payment_intent_create`, `payment_intent_retrieve`) never retry: one attempt, then 503
`payment_provider_unavailable` with `Retry-After`, and the provider's own error text (hosts, ports) goes to
the log, never to the client. Calls made by tasks (cancel, refund) retry (STRIPE_TASK_MAX_NETWORK_RETRIES).

Tests replace Stripe's HTTP transport (`set_http_client`) with a fake that answers real-shaped JSON; the
SDK itself still builds the requests and parses the answers. STRIPE_API_BASE points the SDK elsewhere.
Without STRIPE_SECRET_KEY (demos; never in production) a local stand-in answers instead of Stripe
(events.stripe_standin); in production a missing key is a 503 `payment_provider_not_configured`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import stripe
from django.conf import settings

from core.errors import ServiceUnavailable
from events.stripe_standin import StripeStandIn

logger = logging.getLogger("premier.events.stripe")

# Currencies without a minor unit (amounts are sent as-is).
ZERO_DECIMAL_CURRENCIES = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV"}

_http_client: stripe.HTTPClient | None = None


def set_http_client(client: stripe.HTTPClient | None) -> None:
    """Swap the HTTP transport (tests); None restores the SDK's default."""
    global _http_client
    _http_client = client


_requests_clients: dict[tuple[float, float], stripe.HTTPClient] = {}


_standin = StripeStandIn()
STANDIN_API_KEY = "sk_test_premier_local_standin"


def standin_active() -> bool:
    """The local payment stand-in (events.stripe_standin) replaces Stripe when no STRIPE_SECRET_KEY is set,
    outside production only."""
    return not settings.STRIPE_SECRET_KEY and not settings.PRODUCTION


def _transport() -> stripe.HTTPClient:
    if _http_client is not None:
        return _http_client
    if not settings.STRIPE_SECRET_KEY:
        if settings.PRODUCTION:  # never the stand-in in production
            raise ServiceUnavailable(
                "Payments are not configured.",
                code="payment_provider_not_configured",
                retry_after=settings.STRIPE_RETRY_AFTER_SECONDS,
            )
        return _standin
    timeouts = (settings.STRIPE_CONNECT_TIMEOUT_SECONDS, settings.STRIPE_REQUEST_TIMEOUT_SECONDS)
    if timeouts not in _requests_clients:  # one per timeout pair; its sessions are per thread
        _requests_clients[timeouts] = stripe.RequestsClient(timeout=timeouts)
    return _requests_clients[timeouts]


def _client(*, retries: int = 0) -> stripe.StripeClient:
    """A client with the time budget. `retries` stays 0 inside a request: retries belong in tasks."""
    transport = _transport()
    extra = {"base_addresses": {"api": settings.STRIPE_API_BASE}} if settings.STRIPE_API_BASE else {}
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY or STANDIN_API_KEY, http_client=transport, max_network_retries=retries, **extra
    )


def _task_client() -> stripe.StripeClient:
    return _client(retries=settings.STRIPE_TASK_MAX_NETWORK_RETRIES)


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


def _unavailable(exc: stripe.StripeError, operation: str) -> ServiceUnavailable:
    # The provider's text names hosts, ports and request ids: it goes to the log, not to the member.
    logger.warning("Stripe %s failed: %s: %s", operation, exc.__class__.__name__, exc)
    return ServiceUnavailable(
        "The payment provider did not answer in time. Retry shortly.",
        code="payment_provider_unavailable",
        retry_after=settings.STRIPE_RETRY_AFTER_SECONDS,
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
        raise _unavailable(exc, "PaymentIntent create") from exc
    return PaymentIntentInfo(id=intent.id, client_secret=intent.client_secret or "", status=intent.status)


def payment_intent_retrieve(*, payment_intent_id: str) -> PaymentIntentInfo:
    try:
        intent = _client().v1.payment_intents.retrieve(payment_intent_id)
    except stripe.StripeError as exc:
        raise _unavailable(exc, "PaymentIntent retrieve") from exc
    return PaymentIntentInfo(id=intent.id, client_secret=intent.client_secret or "", status=intent.status)


def payment_intent_cancel(*, booking_id: int, payment_intent_id: str) -> str:
    """Cancel an unpaid PaymentIntent. Returns its status; a PaymentIntent that can no longer be cancelled
    (it succeeded meanwhile) is left alone: its webhook settles the booking."""
    try:
        intent = _task_client().v1.payment_intents.cancel(
            payment_intent_id, options={"idempotency_key": f"premier-booking-{booking_id}-pi-cancel"}
        )
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) == "payment_intent_unexpected_state":
            return "not_cancellable"
        raise
    return intent.status


def refund_create(*, booking_id: int, payment_intent_id: str, amount: Decimal, currency: str) -> tuple[str, str]:
    """Refund `amount` of the booking's payment (one refund per booking). Returns (refund id, status)."""
    refund = _task_client().v1.refunds.create(
        params={
            "payment_intent": payment_intent_id,
            "amount": to_minor_units(amount, currency),
            "metadata": {"booking_id": str(booking_id)},
        },
        options={"idempotency_key": f"premier-booking-{booking_id}-refund"},
    )
    return refund.id, refund.status or "pending"
