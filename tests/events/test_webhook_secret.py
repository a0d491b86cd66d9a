"""The Stripe webhook without a signing secret is disabled (503), so a signature made with a public
placeholder value is never accepted. (Production refuses to start without one: tests/core/test_settings.py.)"""

import pytest
from django.test import Client

from events.models import StripeEvent
from tests.events.conftest import sign
from tests.events.stripe_fake import intent_object, webhook_body
from tests.events.test_payments import book_paid

pytestmark = pytest.mark.django_db


def test_without_a_signing_secret_the_webhook_answers_503_and_changes_nothing(settings, fake_stripe):
    _, _, _, booking, _ = book_paid(fake_stripe, price="40.00")
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = webhook_body(
        "evt_forged",
        "payment_intent.succeeded",
        intent_object(booking.payment_intent_id, status="succeeded", amount=4000),
    )
    for secret in ("whsec_placeholder", ""):
        response = Client().post(
            "/api/v1/stripe/webhook",
            data=body,
            content_type="application/json",
            headers={"Stripe-Signature": sign(body, secret)},
        )
        assert response.status_code == 503
        assert response.json() == {
            "detail": "The Stripe webhook is disabled: no signing secret is configured (STRIPE_WEBHOOK_SECRET).",
            "code": "webhook_not_configured",
            "fields": {},
        }
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("held", "pending")
    assert StripeEvent.objects.count() == 0
