"""A demo that shows every part: customers, a scoring run, a segment, a programme with a control group,
the demo member linked to a treatment customer, a partner with events, and a concierge request."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import User
from config.celery import tasks_in_process

PROGRAMME = "Premier Circle"
DEMO_MEMBER = "member@premier.example"
SEGMENT = "Top customers: top 10% by revenue, engaged"
TIERS = [
    # rank, name, revenue percentile threshold, first response h, resolution h, allowance, early access h, guests
    (1, "Silver", 90.0, 24, 72, 3, 0, 1),
    (2, "Gold", 95.0, 8, 48, 6, 24, 2),
    (3, "Platinum", 99.0, 2, 24, 12, 72, 3),
]


class Command(BaseCommand):
    help = "Prepare a demo: periodic tasks, demo customers, scoring, a segment, a programme, events (once)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000)

    # `make run` builds the demo before its worker starts: the demo's tasks (enrolment invitations, written to
    # files below) run here, in this process, instead of waiting in the broker.
    @tasks_in_process()
    def handle(self, *args, customers: int, **options):
        call_command("sync_beat")
        from loyalty.customers.models import Customer

        if Customer.objects.exists():
            self.stdout.write("Demo data already present; leaving it as it is.")
            return
        call_command("seed_demo", customers=customers, seed=42)
        mail_dir = settings.VAR_DIR / "demo-mail"
        # Hundreds of enrolment invitations: written to files instead of flooding the console.
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir)
        ):
            self._programme()
        self.stdout.write(f"Enrolment invitations written to {mail_dir}/.")
        self._events()
        self.stdout.write(self.style.SUCCESS("Demo ready."))

    def _programme(self) -> None:
        from loyalty.programmes.models import Membership
        from loyalty.programmes.services.enrolment import enrolment_run, enrolment_start
        from loyalty.programmes.services.programmes import programme_create, tier_create
        from loyalty.segmentation.models import RunStatus
        from loyalty.segmentation.services.scoring import scoring_model_default, scoring_run_create, scoring_run_execute
        from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute

        scoring = scoring_run_create(scoring_model=scoring_model_default(), enqueue=False)
        scoring = scoring_run_execute(run_id=scoring.pk)
        if scoring.status != RunStatus.SUCCEEDED:
            raise CommandError(f"The demo scoring run failed: {scoring.error}")
        self.stdout.write(f"Scored {scoring.customers_scored} customers (scoring run {scoring.pk}).")
        segment = segment_create(
            name=SEGMENT,
            rule={
                "all": [
                    {"field": "status", "op": "eq", "value": "active"},
                    {"field": "revenue_percentile", "op": "gte", "value": 90},
                ]
            },
            description="Active customers in the top 10% by 12-month revenue.",
        )
        run = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=scoring, enqueue=False).pk)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"The demo segment run failed: {run.error}")
        self.stdout.write(f"Segment '{segment.name}': {run.member_count} customers.")
        with transaction.atomic():
            programme = programme_create(
                name=PROGRAMME,
                description="Concierge and exclusive events for our most valuable customers.",
                holdout_percent=Decimal("10"),
                qualifying_metric="revenue_percentile",
                seed="premier-demo",  # the same demo population splits the same way every time
            )
            for rank, name, threshold, first, resolution, allowance, early, guests in TIERS:
                tier_create(
                    programme=programme,
                    rank=rank,
                    name=name,
                    threshold=threshold,
                    first_response_sla_hours=first,
                    resolution_sla_hours=resolution,
                    monthly_request_allowance=allowance,
                    early_access_hours=early,
                    guests_per_booking=guests,
                )
            enrolment, _ = enrolment_start(programme=programme, segment_run=run)
        enrolment_run(enrolment_id=enrolment.pk)
        enrolment.refresh_from_db()
        counts = {
            group: Membership.objects.filter(programme=programme, group=group).count()
            for group in (Membership.Group.TREATMENT, Membership.Group.CONTROL)
        }
        treatment, control = counts[Membership.Group.TREATMENT], counts[Membership.Group.CONTROL]
        self.stdout.write(f"Programme '{programme.name}': {treatment} members, {control} held out.")
        self._link_demo_member(programme)

    def _link_demo_member(self, programme) -> None:
        from loyalty.programmes.models import Membership

        user = User.objects.filter(email=DEMO_MEMBER).first()
        membership = (
            Membership.objects.filter(programme=programme, group="treatment", status="active", customer__user=None)
            .select_related("customer", "tier")
            .order_by("-tier__rank", "id")
            .first()
        )
        if user is None or membership is None:
            return
        membership.customer.user = user
        membership.customer.save(update_fields=["user"])
        self.stdout.write(f"{DEMO_MEMBER} is customer {membership.customer.external_id} ({membership.tier.name}).")

    def _events(self) -> None:
        from events.models import Partner
        from events.services.partners import event_create, event_publish, partner_staff_link

        partner = Partner.objects.create(name="Grand Hotel Riviera", contact_email="events@grandhotel.example")
        staff = User.objects.filter(email="partner@premier.example").first()
        if staff is not None:
            partner_staff_link(user=staff, partner=partner)
        now = timezone.now()
        for title, days, capacity, tier, price in [
            ("Chef's table tasting evening", 21, 12, 1, Decimal("0")),
            ("Private jazz night on the terrace", 35, 40, 2, Decimal("45.00")),
            ("Platinum wine cellar masterclass", 50, 8, 3, Decimal("0")),
        ]:
            event = event_create(
                partner=partner,
                created_by=staff,
                data={
                    "title": title,
                    "description": f"{title}, exclusively for Premier Circle members.",
                    "venue": "Grand Hotel Riviera",
                    "starts_at": now + timedelta(days=days),
                    "ends_at": now + timedelta(days=days, hours=3),
                    "capacity": capacity,
                    "min_tier_rank": tier,
                    "price": price,
                    "currency": "EUR",
                    "booking_opens_at": now - timedelta(days=1),
                },
            )
            event_publish(partner=partner, event_id=event.pk)
        self.stdout.write(f"Partner '{partner.name}' with 3 published events (partner@premier.example is staff).")
