from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Role, User
from accounts.services import user_add_role

DEMO_PASSWORD = "premier-demo-2026"
DEMO_USERS = [
    ("manager@premier.example", Role.PROGRAMME_MANAGER, True),
    ("agent@premier.example", Role.CONCIERGE_AGENT, False),
    ("partner@premier.example", Role.PARTNER_STAFF, False),
    ("member@premier.example", Role.MEMBER, False),
]


class Command(BaseCommand):
    help = "Create one demo user per role (idempotent) and print their credentials. For local demos only."

    @transaction.atomic
    def handle(self, *args, **options):
        for email, role, staff in DEMO_USERS:
            user, created = User.objects.get_or_create(email=email, defaults={"is_staff": staff})
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
            user_add_role(user=user, role=role)
            if staff and not user.is_superuser:
                user.is_superuser = True
                user.save(update_fields=["is_superuser"])
        self.stdout.write(f"Demo users (password for all: {DEMO_PASSWORD}):")
        for email, role, _ in DEMO_USERS:
            self.stdout.write(f"  {role:<18} {email}")
