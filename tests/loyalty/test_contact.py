"""One contact address per member, by one documented rule (loyalty.customers.contact), used by concierge, events
and loyalty notifications alike: the linked login's verified address, else the CRM email."""

from datetime import UTC, datetime

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from concierge.services.messages import message_agent_reply
from events.services.bookings import booking_create
from events.tasks import booking_notify
from loyalty.customers.contact import contact_email, contact_emails
from loyalty.models import MemberNotification
from loyalty.programmes.services.notifications import notifications_send
from tests.concierge.factories import make_request
from tests.events.factories import EventFactory
from tests.factories import CustomerFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_rule_verified_login_else_crm_email_else_nothing(django_assert_num_queries):
    login = UserFactory(email="login@example.test")
    linked = CustomerFactory(email="crm@example.test", user=login)
    EmailAddress.objects.create(user=login, email="newer@example.test", verified=True, primary=False)
    unlinked = CustomerFactory(email="only-crm@example.test")
    unverified_login = UserFactory(email="unverified@example.test")
    EmailAddress.objects.filter(user=unverified_login).update(verified=False)
    unverified = CustomerFactory(email="crm2@example.test", user=unverified_login)
    inactive_login = UserFactory(email="left@example.test", is_active=False)
    inactive = CustomerFactory(email="crm3@example.test", user=inactive_login)
    nobody = CustomerFactory(email="")
    ids = [linked.pk, unlinked.pk, unverified.pk, inactive.pk, nobody.pk]
    with django_assert_num_queries(2):
        found = contact_emails(ids)
    assert found == {
        linked.pk: "login@example.test",  # the primary of the verified addresses
        unlinked.pk: "only-crm@example.test",
        unverified.pk: "crm2@example.test",
        inactive.pk: "crm3@example.test",
        nobody.pk: "",
    }
    assert contact_email(linked) == contact_email(linked.pk) == "login@example.test"
    assert contact_emails([]) == {}


def test_concierge_events_and_loyalty_emails_all_go_to_the_one_contact_address(
    agent, django_capture_on_commit_callbacks
):
    login = UserFactory(roles=["member"], email="ada.login@example.test")
    membership = MembershipFactory(customer__email="ada.crm@example.test", customer__user=login)
    crm_only = MembershipFactory(programme=membership.programme, customer__email="bo.crm@example.test")
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

    with django_capture_on_commit_callbacks(execute=True):
        request = make_request(login, now=now)
        message_agent_reply(request_id=request.pk, agent=agent, body="On it", now=now)
    booking = booking_create(membership=membership, event_id=EventFactory().pk)
    assert booking_notify(booking.pk, "waitlist_confirmed") is True
    for m in (membership, crm_only):
        MemberNotification.objects.create(membership=m, kind="downgrade_warning", dedupe_key="t", created_at=now)
    assert notifications_send() == 2

    assert [(m.to, m.subject.split(":")[0].split(" ")[0]) for m in mail.outbox] == [
        (["ada.login@example.test"], "New"),  # concierge reply
        (["ada.login@example.test"], "You're"),  # event booking
        (["ada.login@example.test"], "Keep"),  # loyalty notification
        (["bo.crm@example.test"], "Keep"),  # no login: the CRM email
    ]
