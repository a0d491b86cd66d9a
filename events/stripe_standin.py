"""A local stand-in for Stripe's API, for demos without Stripe credentials. NOT Stripe: nothing is charged.

Used by the gateway only when STRIPE_SECRET_KEY is unset and PREMIER_PRODUCTION is off (never in
production). It is a `stripe.HTTPClient`: the real SDK builds the requests and parses these real-shaped
answers. It keeps no state, so it works the same in every process: a PaymentIntent's id is derived from the
booking (`pi_standin_<booking id>`), which also makes creating one idempotent, as Stripe's idempotency key is.
A demo member completes a payment with POST /api/v1/bookings/{id}/standin-payment, which applies a
`payment_intent.succeeded` event through the same `stripe_event_apply` path as Stripe's webhook."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlparse

import stripe

PREFIX = "pi_standin_"


def intent_id_for(booking_id: int) -> str:
    return f"{PREFIX}{booking_id}"


def is_standin_intent(intent_id: str | None) -> bool:
    return bool(intent_id) and intent_id.startswith(PREFIX)


def intent_object(intent_id: str, *, status: str, amount: int = 0, currency: str = "eur", metadata=None) -> dict:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency.lower(),
        "status": status,
        "client_secret": f"{intent_id}_secret_standin",
        "created": int(time.time()),
        "livemode": False,
        "metadata": metadata or {},
        "description": "Premier local payment stand-in (not Stripe)",
    }


class StripeStandIn(stripe.HTTPClient):
    name = "premier-standin"

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        method, path = method.upper(), urlparse(url).path.strip("/").split("/")
        if isinstance(post_data, bytes):
            post_data = post_data.decode()
        form = dict(parse_qsl(post_data or ""))
        metadata = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
        if method == "POST" and path == ["v1", "payment_intents"] and metadata.get("booking_id", "").isdigit():
            intent_id = intent_id_for(int(metadata["booking_id"]))
            return self._json(
                intent_object(
                    intent_id,
                    status="requires_payment_method",
                    amount=int(form.get("amount", "0")),
                    currency=form.get("currency", "eur"),
                    metadata=metadata,
                )
            )
        if len(path) >= 3 and path[:2] == ["v1", "payment_intents"] and is_standin_intent(path[2]):
            if method == "GET" and len(path) == 3:
                return self._json(intent_object(path[2], status="requires_payment_method"))
            if method == "POST" and path[3:] == ["cancel"]:
                return self._json(intent_object(path[2], status="canceled"))
        if method == "POST" and path == ["v1", "refunds"] and metadata.get("booking_id", "").isdigit():
            return self._json(
                {
                    "id": f"re_standin_{metadata['booking_id']}",
                    "object": "refund",
                    "amount": int(form.get("amount", "0")),
                    "payment_intent": form.get("payment_intent"),
                    "status": "succeeded",
                    "metadata": metadata,
                }
            )
        error = {"type": "invalid_request_error", "message": f"The payment stand-in does not know {method} {url}."}
        return self._json({"error": error}, 404)

    def close(self):
        pass

    @staticmethod
    def _json(body: dict, status: int = 200):
        return json.dumps(body), status, {"request-id": f"req_standin_{time.monotonic_ns()}"}
