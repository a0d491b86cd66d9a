"""A demo with a past: a programme that started 14 months ago.

- the population's year before the start (`seed_demo --as-of`), then scoring, the segment and the enrolment with
  its control group as of that date (the services' own `as_of` / `now`);
- 14 months of revenue and channel interactions after it (`demo.history`), programme use recorded through
  `interaction_record`, and churn sent through the ingestion's customer feed month by month, which records the
  churn outcomes and ends the memberships, with a simulated effect: treatment members churn less;
- concierge requests (fulfilled public ones, open ones, breached ones) and events (a past one with check-ins
  and no-shows, upcoming ones with bookings and a waitlist), all through the services with past timestamps.

Everything runs synchronously (no worker needed). A second run leaves an existing demo as it is."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
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
AGENT = "agent@premier.example"
SEGMENT = "Top customers: top 10% by revenue, engaged"
PAST_MONTHS = 14  # the programme started 14 months ago, on the 15th (monthly bills fall mid-month of tenure)
HOLDOUT_PERCENT = Decimal("20")  # a control group large enough to read in a 3,000-customer demo
SEED = 42
TIERS = [
    # rank, name, revenue percentile threshold, first response h, resolution h, allowance, early access h, guests
    (1, "Silver", 90.0, 24, 72, 3, 0, 1),
    (2, "Gold", 95.0, 8, 48, 6, 24, 2),
    (3, "Platinum", 99.0, 2, 24, 12, 72, 3),
]


class Command(BaseCommand):
    help = "Prepare a demo programme that started 14 months ago, with its history (once)."

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
        started = time.monotonic()
        self.now = timezone.now().astimezone(UTC).replace(microsecond=0)
        months = self.now.year * 12 + self.now.month - 1 - PAST_MONTHS
        self.start = datetime(months // 12, months % 12 + 1, 15, 9, tzinfo=UTC)
        call_command("seed_demo", customers=customers, seed=SEED, as_of=self.start.date(), no_progress=True)
        mail_dir = settings.VAR_DIR / "demo-mail"
        # Hundreds of invitations and notifications: written to files instead of flooding the console.
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir)
        ):
            programme = self._programme()
            self._history(programme)
            self._link_demo_member(programme)
            self._concierge(programme)
            self._events(programme)
        self.stdout.write(f"Emails of the demo written to {mail_dir}/.")
        self.stdout.write(self.style.SUCCESS(f"Demo ready in {time.monotonic() - started:.1f}s."))

    def _programme(self):
        from loyalty.programmes.models import Membership
        from loyalty.programmes.services.enrolment import enrolment_run, enrolment_start
        from loyalty.programmes.services.notifications import invitations_send
        from loyalty.programmes.services.programmes import programme_create, tier_create
        from loyalty.segmentation.models import RunStatus
        from loyalty.segmentation.services.scoring import scoring_model_default, scoring_run_create, scoring_run_execute
        from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute

        scoring = scoring_run_create(scoring_model=scoring_model_default(), as_of=self.start, enqueue=False)
        scoring = scoring_run_execute(run_id=scoring.pk)
        if scoring.status != RunStatus.SUCCEEDED:
            raise CommandError(f"The demo scoring run failed: {scoring.error}")
        self.stdout.write(f"Scored {scoring.customers_scored} customers as of {self.start:%Y-%m-%d}.")
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
                holdout_percent=HOLDOUT_PERCENT,
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
            # Run it here, as of the start date, before the queued task can (it then finds it done).
            enrolment_run(enrolment_id=enrolment.pk, now=self.start)
        # The invitations too, here (into demo-mail): a worker that picks up the queued task finds them sent.
        invitations_send(enrolment_id=enrolment.pk, now=self.start)
        counts = {
            group: Membership.objects.filter(programme=programme, group=group).count()
            for group in (Membership.Group.TREATMENT, Membership.Group.CONTROL)
        }
        treatment, control = counts[Membership.Group.TREATMENT], counts[Membership.Group.CONTROL]
        self.stdout.write(
            f"Programme '{programme.name}' enrolled on {self.start:%Y-%m-%d}: {treatment} members, {control} held out."
        )
        return programme

    def _history(self, programme) -> None:
        from demo.history import churn_feed_batches, history_plan, history_write
        from loyalty.customers.models import Customer
        from loyalty.ingestion.services.ingest import ingest_rows
        from loyalty.ingestion.services.interactions import interaction_record
        from loyalty.ingestion.services.validation import rows_validate
        from loyalty.segmentation.services.rollups import rollups_rebuild

        plans = history_plan(programme_id=programme.pk, start=self.start, end=self.now, seed=SEED)
        written = history_write(plans=plans, start=self.start, end=self.now, seed=SEED)
        rollups_rebuild()
        # Programme use (concierge requests and event visits of the past year), as the programme records it.
        customers = Customer.objects.in_bulk([p.customer_id for p in plans if p.uses])
        uses = 0
        for plan in plans:
            for k, at in enumerate(plan.uses):
                channel = "concierge" if k % 3 != 2 else "event"
                interaction_record(
                    customer=customers[plan.customer_id],
                    channel=channel,
                    kind="request_created" if channel == "concierge" else "event_attended",
                    occurred_at=at,
                    external_id=f"demo-{channel}-{plan.external_id}-{k}",
                )
                uses += 1
        # Churn: the CRM's monthly customer feed, through ingestion (outcomes recorded, memberships ended).
        churned_at = {p.customer_id: p.churned_at for p in plans if p.churned_at}
        fields = ("external_id", "name", "email", "phone", "birth_year", "region", "attributes", "joined_at")
        churned = 0
        for sent, ids in churn_feed_batches(plans, end=self.now):
            raw = [
                {
                    **row,
                    "joined_at": row["joined_at"].isoformat(),
                    "status": "churned",
                    "churned_at": churned_at[row.pop("id")].isoformat(),
                }
                for row in Customer.objects.filter(pk__in=ids).order_by("id").values("id", *fields)
            ]
            result = ingest_rows(kind="customers", rows=rows_validate("customers", raw), now=sent)
            churned += len(result.churned_customer_ids)
        self.stdout.write(
            f"History since {self.start:%Y-%m-%d}: {written['revenue_entries']} revenue entries, "
            f"{written['interactions']} interactions, {uses} programme uses, {churned} customers churned."
        )

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

    def _members(self, programme, *, count: int, min_rank: int = 1, exclude=()) -> list:
        """Active treatment members (not churned), highest tier first, in a stable order."""
        from loyalty.programmes.models import Membership

        return list(
            Membership.objects.filter(programme=programme, group="treatment", status="active", tier__rank__gte=min_rank)
            .exclude(pk__in=[m.pk for m in exclude])
            .select_related("customer", "tier")
            .order_by("-tier__rank", "id")[:count]
        )

    def _concierge(self, programme) -> None:
        from concierge.services.assignment import request_assign
        from concierge.services.messages import message_agent_reply
        from concierge.services.requests import request_create, request_rate, request_transition
        from concierge.services.sla import sla_breaches_mark

        agent = User.objects.filter(email=AGENT).first()
        members = self._members(programme, count=8, exclude=[m for m in self._members(programme, count=1)])
        if agent is None or len(members) < 8:
            return
        users = []
        for m in members:  # members with a login of their own (no password: the demo logs in as DEMO_MEMBER)
            user = User.objects.filter(email=m.customer.email.lower()).first() or User.objects.create_user(
                email=m.customer.email
            )
            m.customer.user = user
            m.customer.save(update_fields=["user"])
            users.append(user)
        h = timedelta(hours=1)
        # (member, category, subject, visibility, created hours ago, what happened)
        plan = [
            (0, "dining", "Table for four at Le Jardin on Saturday", "public", 30 * 24, "fulfilled"),
            (1, "tickets", "Two seats for the cup final", "public", 20 * 24, "fulfilled"),
            (2, "travel", "Airport lounge access for Friday's flight", "public", 9 * 24, "fulfilled"),
            (3, "telco_support", "Roaming does not work in Canada", "private", 12 * 24, "fulfilled"),
            (7, "telco_support", "A second SIM card for my tablet", "private", 3 * 24, "breached"),
            (0, "tickets", "Opera tickets for the premiere", "private", 4 * 24, "acknowledged"),
            (6, "travel", "Ski weekend in the Alps for two", "private", 20, "in_progress"),
            (4, "gifts", "Anniversary flowers delivered on the 14th", "private", 2, "new"),
            (5, "dining", "Birthday dinner for six next week", "public", 1, "new"),
        ]
        for who, category, subject, visibility, ago, fate in plan:
            at = self.now - ago * h
            request = request_create(
                user=users[who],
                category=category,
                subject=subject,
                details=f"{subject}. Thank you!",
                visibility=visibility,
                now=at,
            )
            if fate in ("fulfilled", "acknowledged", "in_progress"):
                request_assign(request_id=request.pk, actor=agent, assignee_id=agent.pk, now=at + 0.2 * h)
                request_transition(request_id=request.pk, actor=agent, to_status="acknowledged", now=at + 0.3 * h)
            if fate in ("fulfilled", "in_progress"):
                message_agent_reply(
                    request_id=request.pk, agent=agent, body="We are on it and will confirm shortly.", now=at + 0.5 * h
                )
                request_transition(request_id=request.pk, actor=agent, to_status="in_progress", now=at + 0.6 * h)
            if fate == "fulfilled":
                message_agent_reply(request_id=request.pk, agent=agent, body="Done: confirmation sent.", now=at + 5 * h)
                request_transition(request_id=request.pk, actor=agent, to_status="fulfilled", now=at + 5.1 * h)
                request_rate(request_id=request.pk, user=users[who], rating=5, comment="Perfect.", now=at + 8 * h)
        marked = sla_breaches_mark(now=self.now)
        self.stdout.write(
            f"Concierge: {len(plan)} requests ({sum(1 for p in plan if p[5] == 'fulfilled')} fulfilled, "
            f"SLA breaches marked: {marked})."
        )

    def _events(self, programme) -> None:
        from events.models import Booking, Partner
        from events.services.bookings import booking_create
        from events.services.completion import events_complete
        from events.services.partners import booking_check_in, event_create, event_publish, partner_staff_link

        partner = Partner.objects.create(name="Grand Hotel Riviera", contact_email="events@grandhotel.example")
        staff = User.objects.filter(email="partner@premier.example").first()
        if staff is not None:
            partner_staff_link(user=staff, partner=partner)
        now = self.now

        def create(title, starts, capacity, tier, price, opens):
            event = event_create(
                partner=partner,
                created_by=staff,
                data={
                    "title": title,
                    "description": f"{title}, exclusively for {PROGRAMME} members.",
                    "venue": "Grand Hotel Riviera",
                    "starts_at": starts,
                    "ends_at": starts + timedelta(hours=3),
                    "capacity": capacity,
                    "min_tier_rank": tier,
                    "price": price,
                    "currency": "EUR",
                    "booking_opens_at": opens,
                },
            )
            return event_publish(partner=partner, event_id=event.pk, now=opens - timedelta(days=1))

        members = self._members(programme, count=40)
        # Two past events: bookings when they opened, check-ins at the door, no-shows when they completed.
        attended = 0
        for title, days_ago, capacity in [("Spring garden party", 126, 30), ("Autumn wine tasting", 40, 16)]:
            starts = (now - timedelta(days=days_ago)).replace(hour=19, minute=0, second=0)
            event = create(title, starts, capacity, 1, Decimal("0"), starts - timedelta(days=30))
            bookings = []
            for k, m in enumerate(members[: capacity // 2]):
                at = event.booking_opens_at + timedelta(hours=2 + 7 * k)
                if m.enrolled_at < at:
                    bookings.append(booking_create(membership=m, event_id=event.pk, guests=k % 2, now=at))
            for k, booking in enumerate(bookings):
                if k % 4 != 3:  # one in four does not come
                    booking_check_in(
                        partner=partner, booking_id=booking.pk, by=staff, now=starts + timedelta(minutes=20)
                    )
                    attended += 1
        completed = events_complete(now=now)
        # Upcoming events: one full with a waitlist, one for Platinum only, one paid.
        upcoming = [
            ("Chef's table tasting evening", 21, 12, 1, Decimal("0")),
            ("Private jazz night on the terrace", 35, 40, 2, Decimal("45.00")),
            ("Platinum wine cellar masterclass", 50, 8, 3, Decimal("0")),
        ]
        events = [create(t, now + timedelta(days=d), c, r, p, now - timedelta(days=1)) for t, d, c, r, p in upcoming]
        chef, _, cellar = events
        for k, m in enumerate(members[10:19]):  # six bookings of two fill the twelve seats; three wait
            booking_create(membership=m, event_id=chef.pk, guests=1 if k < 6 else 0, join_waitlist=True, now=now)
        for m in [m for m in members if m.tier.rank >= 3][:2]:
            booking_create(membership=m, event_id=cellar.pk, now=now)
        waitlisted = Booking.objects.filter(event=chef, status=Booking.Status.WAITLISTED).count()
        self.stdout.write(
            f"Partner '{partner.name}': 2 past events ({attended} check-ins, {completed['no_show']} no-shows), "
            f"3 upcoming ({waitlisted} on the waitlist); partner@premier.example is staff."
        )
