"""allauth account adapter: a confirmed email address may link the account to an enrolled customer."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter


class PremierAccountAdapter(DefaultAccountAdapter):
    def confirm_email(self, request, email_address) -> bool:
        confirmed = super().confirm_email(request, email_address)
        if confirmed:
            from loyalty.programmes.services.member_accounts import member_account_link

            member_account_link(user=email_address.user, email=email_address.email)
        return confirmed
