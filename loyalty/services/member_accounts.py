"""Linking a verified login to the customer it belongs to. Called from the allauth adapter when an email
address is confirmed (by code or link)."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Role, User
from accounts.services import user_add_role
from loyalty.models import Customer, Membership


@transaction.atomic
def member_account_link(*, user: User, email: str) -> Customer | None:
    """Link `user` to the customer whose email on file is `email` and who has an active treatment membership,
    and give the `member` role. Anything else (no such customer, held out, ended, already linked to someone
    else) links nothing and says nothing: the caller's answer does not depend on it."""
    if not email or Customer.objects.filter(user=user).exists():
        return None
    customer = (
        Customer.objects.select_for_update()
        .filter(
            email__iexact=email.strip(),
            user__isnull=True,
            status=Customer.Status.ACTIVE,
            memberships__group=Membership.Group.TREATMENT,
            memberships__status=Membership.Status.ACTIVE,
        )
        .order_by("-memberships__enrolled_at", "id")
        .first()
    )
    if customer is None:
        return None
    customer.user = user
    customer.save(update_fields=["user", "updated_at"])
    user_add_role(user=user, role=Role.MEMBER)
    return customer
