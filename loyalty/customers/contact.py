"""The one address Premier writes to about a member. Every member email (concierge, events, loyalty
notifications and invitations) goes through `contact_email` / `contact_emails`.

The rule, in order:
1. The customer has a linked, active login: that login's verified address (the primary one if several are
   verified). It is the address the member signs in with and proved they read.
2. Otherwise the email on file from the CRM (`Customer.email`).
3. Otherwise nothing: the member has no address and is not written to ("").

A linked login without any verified address falls back to the CRM email (2)."""

from __future__ import annotations

from collections.abc import Iterable

from allauth.account.models import EmailAddress

from loyalty.customers.models import Customer


def contact_emails(customer_ids: Iterable[int]) -> dict[int, str]:
    """The contact address of each customer by the rule above (`""` when there is none). Two queries, whatever
    the number of customers."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    rows = list(Customer.objects.filter(pk__in=ids).values_list("pk", "email", "user_id", "user__is_active"))
    user_ids = [user_id for _, _, user_id, active in rows if user_id and active]
    verified: dict[int, str] = {}
    for user_id, email in (
        EmailAddress.objects.filter(user_id__in=user_ids, verified=True)
        .order_by("user_id", "-primary", "id")
        .values_list("user_id", "email")
    ):
        verified.setdefault(user_id, email)
    result = {pk: "" for pk in ids}
    for pk, crm_email, user_id, active in rows:
        result[pk] = (verified.get(user_id, "") if user_id and active else "") or crm_email or ""
    return result


def contact_email(customer: Customer | int) -> str:
    """The contact address of one customer (a Customer or its id) by the rule above; `""` when there is none."""
    customer_id = customer if isinstance(customer, int) else customer.pk
    return contact_emails([customer_id]).get(customer_id, "")
