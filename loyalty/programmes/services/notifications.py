"""Member emails from the notification outbox (written set-based by enrolment and re-evaluation). They go to the
member's one contact address (`loyalty.customers.contact`)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.mail import get_connection, send_mail
from django.db import transaction
from django.utils import timezone

from loyalty.customers.contact import contact_emails
from loyalty.programmes.models import Enrolment, MemberNotification, Membership
from loyalty.programmes.services.tier_policy import programme_next_evaluation

BATCH = 200


def _render(notification: MemberNotification) -> tuple[str, str]:
    membership = notification.membership
    programme, customer = membership.programme, membership.customer
    change = notification.tier_change
    greeting = f"Dear {customer.name},\n\n"
    kind = notification.kind
    if kind == MemberNotification.Kind.ENROLMENT:
        return _invitation(membership)
    if kind == MemberNotification.Kind.UPGRADE:
        return (
            f"You are now {change.to_tier.name}",
            greeting + f"Congratulations: your {programme.name} tier rose from {change.from_tier.name} to "
            f"{change.to_tier.name}. Your new benefits apply now.\n",
        )
    if kind == MemberNotification.Kind.DOWNGRADE:
        return (
            f"Your {programme.name} tier changed",
            greeting + f"Your tier changed from {change.from_tier.name} to {change.to_tier.name}.\n",
        )
    deadline = ""
    if membership.below_threshold_since:
        from datetime import timedelta

        day = membership.below_threshold_since + timedelta(days=programme.grace_period_days)
        deadline = f" If nothing changes, your tier may be lowered at the first evaluation from {day:%d %B %Y}."
    return (
        f"Keep your {programme.name} tier",
        greeting + f"Your activity is currently below what your {membership.tier.name if membership.tier else ''} "
        f"tier needs.{deadline} Next evaluation: {programme_next_evaluation(programme):%d %B %Y}.\n",
    )


def _invitation(membership: Membership) -> tuple[str, str]:
    programme, customer = membership.programme, membership.customer
    tier = membership.tier.name if membership.tier else ""
    # A login verified before the enrolment was linked by it: that member signs in, there is nothing to create.
    account = (
        "Sign in to your account"
        if customer.user_id
        else f"Create your account with this email address ({customer.email})"
    )
    return (
        f"Welcome to {programme.name}",
        f"Dear {customer.name},\n\nYou are now a {tier} member of {programme.name}. {account} to see your "
        "benefits, use the concierge and book exclusive events.\n",
    )


def invitations_send(*, enrolment_id: int, now: datetime | None = None) -> int:
    """Invite the treatment members of an enrolment by email, in batches claimed under a row lock and stamped
    `invited_at` in the same transaction: a second run (or a second worker) sends nothing twice. The control
    group is never written to. `now`: the `invited_at` stamp (default now)."""
    enrolment = Enrolment.objects.filter(pk=enrolment_id).first()
    if enrolment is None:
        return 0
    sent = 0
    while True:
        with transaction.atomic():
            batch = list(
                Membership.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(
                    programme_id=enrolment.programme_id,
                    source_run_id=enrolment.segment_run_id,
                    group=Membership.Group.TREATMENT,
                    status=Membership.Status.ACTIVE,
                    invited_at__isnull=True,
                )
                .select_related("programme", "customer", "tier")
                .order_by("id")[:BATCH]
            )
            if not batch:
                return sent
            connection = get_connection()
            addresses = contact_emails(m.customer_id for m in batch)
            for membership in batch:
                if addresses[membership.customer_id]:
                    subject, body = _invitation(membership)
                    send_mail(
                        subject,
                        body,
                        settings.DEFAULT_FROM_EMAIL,
                        [addresses[membership.customer_id]],
                        connection=connection,
                    )
            Membership.objects.filter(pk__in=[m.pk for m in batch]).update(invited_at=now or timezone.now())
            sent += len(batch)


def notifications_send(*, limit: int = 10_000) -> int:
    """Send unsent notifications in batches; each batch is claimed under a row lock (skip locked), so two
    workers never send the same email, and stamped `sent_at` in the same transaction."""
    sent = 0
    while sent < limit:
        with transaction.atomic():
            batch = list(
                MemberNotification.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(sent_at__isnull=True)
                .select_related(
                    "membership__programme",
                    "membership__customer",
                    "membership__tier",
                    "tier_change__from_tier",
                    "tier_change__to_tier",
                )
                .order_by("id")[:BATCH]
            )
            if not batch:
                break
            connection = get_connection()
            addresses = contact_emails(n.membership.customer_id for n in batch)
            for notification in batch:
                email = addresses[notification.membership.customer_id]
                if email:
                    subject, body = _render(notification)
                    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email], connection=connection)
            MemberNotification.objects.filter(pk__in=[n.pk for n in batch]).update(sent_at=timezone.now())
            sent += len(batch)
    return sent
