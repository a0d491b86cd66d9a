import pytest
import stripe

from events import gateway
from tests.events.stripe_fake import FakeStripeHTTP

WEBHOOK_SECRET = "whsec_test_events_secret"


@pytest.fixture(autouse=True)
def fake_stripe(settings):
    """Every events test talks to the fake Stripe transport; nothing leaves the machine."""
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    fake = FakeStripeHTTP()
    gateway.set_http_client(fake)
    yield fake
    gateway.set_http_client(None)


def sign(body: str, secret: str = WEBHOOK_SECRET) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret)
