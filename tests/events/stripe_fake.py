"""A fake of Stripe's HTTP transport: the real SDK builds requests and parses these real-shaped answers.
Like Stripe, a repeated Idempotency-Key replays the first answer."""

from __future__ import annotations

import itertools
import json
import time
from urllib.parse import parse_qsl, urlparse

import stripe

_ids = itertools.count(1)


def _form(post_data) -> dict[str, str]:
    if not post_data:
        return {}
    if isinstance(post_data, bytes):
        post_data = post_data.decode()
    return dict(parse_qsl(post_data))


class FakeStripeHTTP(stripe.HTTPClient):
    name = "fake"

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, str, dict, str | None]] = []
        self.intents: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.replies: dict[str, tuple[str, int, dict]] = {}
        self.down = False

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        path = urlparse(url).path
        form = _form(post_data)
        key = (headers or {}).get("Idempotency-Key")
        self.calls.append((method.upper(), path, form, key))
        if self.down:
            raise stripe.APIConnectionError("Stripe is unreachable (fake).", should_retry=False)
        if key and key in self.replies:
            return self.replies[key]
        reply = self._answer(method.upper(), path, form)
        if key and method.upper() == "POST":
            self.replies[key] = reply
        return reply

    def close(self):
        pass

    # -- answers --------------------------------------------------------------------------------------
    def _json(self, body: dict, status: int = 200):
        return json.dumps(body), status, {"request-id": f"req_{next(_ids)}"}

    def _answer(self, method: str, path: str, form: dict):
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "payment_intents"]:
            pi_id = f"pi_fake{next(_ids)}"
            intent = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": int(form["amount"]),
                "amount_received": 0,
                "currency": form["currency"],
                "status": "requires_payment_method",
                "client_secret": f"{pi_id}_secret_fake",
                "created": int(time.time()),
                "livemode": False,
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            self.intents[pi_id] = intent
            return self._json(intent)
        if len(parts) >= 3 and parts[:2] == ["v1", "payment_intents"] and parts[2] in self.intents:
            intent = self.intents[parts[2]]
            if method == "GET" and len(parts) == 3:
                return self._json(intent)
            if method == "POST" and parts[3:] == ["cancel"]:
                if intent["status"] == "succeeded":
                    return self._json(
                        {
                            "error": {
                                "type": "invalid_request_error",
                                "code": "payment_intent_unexpected_state",
                                "message": "This PaymentIntent's status is succeeded.",
                            }
                        },
                        400,
                    )
                intent["status"] = "canceled"
                return self._json(intent)
        if method == "POST" and parts == ["v1", "refunds"]:
            refund_id = f"re_fake{next(_ids)}"
            refund = {
                "id": refund_id,
                "object": "refund",
                "amount": int(form["amount"]),
                "currency": "eur",
                "payment_intent": form["payment_intent"],
                "status": "succeeded",
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            self.refunds[refund_id] = refund
            return self._json(refund)
        return self._json(
            {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method} {path})."}}, 404
        )

    # -- helpers for tests ------------------------------------------------------------------------------
    def calls_to(self, method: str, path: str) -> list[tuple]:
        return [call for call in self.calls if call[0] == method and call[1] == path]


def webhook_body(event_id: str, event_type: str, data_object: dict) -> str:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "type": event_type,
            "data": {"object": data_object},
        }
    )


def intent_object(intent_id: str, *, status: str, amount: int, booking_id: int | None = None) -> dict:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "eur",
        "status": status,
        "metadata": {"booking_id": str(booking_id)} if booking_id else {},
    }


def charge_object(intent_id: str, *, amount: int, amount_refunded: int) -> dict:
    return {
        "id": f"ch_for_{intent_id}",
        "object": "charge",
        "amount": amount,
        "amount_refunded": amount_refunded,
        "refunded": amount_refunded >= amount,
        "currency": "eur",
        "payment_intent": intent_id,
    }
