"""Linking a verified login to the customer it belongs to: one login at a time when an email address is
confirmed (by code or link; called from the allauth adapter), and set-based after an enrolment for logins
verified before their customer was enrolled."""

from __future__ import annotations

from datetime import datetime

from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group
from django.db import connection, transaction

from accounts.models import Role, User
from accounts.services import user_add_role
from loyalty.customers.models import Customer
from loyalty.programmes.models import Membership
from loyalty.programmes.services.tier_sql import table

GROUP_ADD_BATCH = 1000


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


@transaction.atomic
def member_accounts_link_enrolled(*, programme_id: int, segment_run_id: int, now: datetime) -> int:
    """Link the treatment customers that the enrolment of `segment_run_id` into `programme_id` just made active
    members to logins that verified the same email (case-insensitive) before, and give those logins the
    `member` role. Returns how many were linked.

    The rules of `member_account_link`: an active customer with an active treatment membership and no login
    yet, a login linked to no customer, one customer per login; the control group is never linked. When a
    login's verified emails match several of these customers, it gets the lowest customer id (they were all
    enrolled at the same moment, so this is `member_account_link`'s order); when several logins match one
    customer, the lowest user id. One UPDATE ... FROM for the links, then the role in bulk: the query count
    does not grow with the size of the enrolment."""
    qn = connection.ops.quote_name
    c_t, m_t, e_t = table(Customer), table(Membership), table(EmailAddress)
    candidates = (
        f"SELECT c.id AS customer_id, e.user_id AS user_id FROM {m_t} m "
        f"JOIN {c_t} c ON c.id = m.customer_id "
        f"JOIN {e_t} e ON LOWER(e.email) = LOWER(c.email) "
        f"WHERE m.programme_id = %s AND m.source_run_id = %s AND m.{qn('group')} = %s AND m.status = %s "
        f"AND c.user_id IS NULL AND c.status = %s AND c.email <> '' AND e.verified = %s "
        f"AND NOT EXISTS (SELECT 1 FROM {c_t} linked WHERE linked.user_id = e.user_id)"
    )
    params = [
        programme_id,
        segment_run_id,
        Membership.Group.TREATMENT,
        Membership.Status.ACTIVE,
        Customer.Status.ACTIVE,
        True,
    ]
    per_user = f"SELECT user_id, MIN(customer_id) AS customer_id FROM ({candidates}) candidates GROUP BY user_id"
    links = f"SELECT customer_id, MIN(user_id) AS link_user_id FROM ({per_user}) per_user GROUP BY customer_id"
    with connection.cursor() as cursor:
        # `user_id IS NULL` again on the target row: never overwrite a link made meanwhile (PostgreSQL
        # re-checks it on the row version it updates).
        cursor.execute(
            f"UPDATE {c_t} SET user_id = links.link_user_id, updated_at = %s FROM ({links}) links "
            f"WHERE {c_t}.id = links.customer_id AND {c_t}.user_id IS NULL RETURNING user_id",
            [connection.ops.adapt_datetimefield_value(now), *params],
        )
        user_ids = sorted(row[0] for row in cursor.fetchall())
    if user_ids:
        member = Group.objects.get_or_create(name=Role.MEMBER)[0]
        through = User.groups.through
        through.objects.bulk_create(
            [through(user_id=user_id, group_id=member.pk) for user_id in user_ids],
            batch_size=GROUP_ADD_BATCH,
            ignore_conflicts=True,
        )
    return len(user_ids)
