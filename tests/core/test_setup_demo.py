import pytest
from django.core.management import call_command

from accounts.management.commands.seed_users import DEMO_PASSWORD
from events.models import Event
from loyalty.models import Customer, Membership
from tests.conftest import ApiClient, login_token

pytestmark = pytest.mark.django_db
CUSTOMERS = 2000  # about 200 members, 40 of them held out: enough churn at 3 months


def test_demo_shows_every_part_and_is_not_repeated(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_users")
    call_command("setup_demo", customers=400)

    assert Customer.objects.count() == 400
    memberships = Membership.objects.filter(programme__name="Premier Circle")
    treatment = memberships.filter(group="treatment").count()
    control = memberships.filter(group="control").count()
    assert treatment > 0 and control > 0
    assert treatment + control == memberships.count()
    assert Event.objects.filter(status="published").count() == 3

    from accounts.models import User

    user = User.objects.get(email="member@premier.example")
    member = ApiClient({"X-Session-Token": login_token(user, password=DEMO_PASSWORD)})
    membership = member.get("me/membership")
    assert membership.status_code == 200
    assert membership.json()["programme"]["name"] == "Premier Circle"
    assert member.get("events").json()["count"] >= 1

    call_command("setup_demo", customers=400)  # a second run leaves the demo as it is
    assert Customer.objects.count() == 400
    assert Membership.objects.count() == treatment + control


def test_demo_has_a_past_and_its_impact_report_reads_at_every_horizon(settings, tmp_path):
    """setup_demo builds a programme that started 14 months ago: the impact report has members of both
    groups at every horizon, two-ended intervals, survival curves with follow-up, take-up and CUPED."""
    from datetime import timedelta

    from django.utils import timezone

    from concierge.models import ConciergeRequest
    from events.models import Booking
    from loyalty.models import Programme, RetentionOutcome
    from loyalty.retention.services.impact import impact_report_compute

    settings.VAR_DIR = tmp_path
    call_command("seed_users")
    started = timezone.now()
    call_command("setup_demo", customers=CUSTOMERS)
    finished = timezone.now()
    programme = Programme.objects.get(name="Premier Circle")
    memberships = Membership.objects.filter(programme=programme)
    enrolled = {m.enrolled_at for m in memberships}
    assert len(enrolled) == 1 and started - min(enrolled) > timedelta(days=395)  # 14 months ago, on the 15th
    # Invitations were sent then, into the demo's mail folder, not left to a worker.
    assert set(memberships.filter(group="treatment").values_list("invited_at", flat=True)) == enrolled
    assert len(list((tmp_path / "demo-mail").iterdir())) >= 1

    report = impact_report_compute(programme=programme)
    for c in report["retention"]:
        assert c["treatment"]["n"] > 0 and c["control"]["n"] > 0
        assert c["available"] is True, c["reason"]
        assert c["ci_low"] is not None and c["ci_high"] is not None and c["ci_low"] < c["uplift"] < c["ci_high"]
    survival = report["survival"]
    assert survival["chart"]["available"] is True and survival["chart"]["longest_followup_days"] > 365
    assert survival["logrank"]["available"] is True and survival["rmst"]["available"] is True
    assert all(r["available"] for r in report["revenue"]["cuped"])
    assert 0 < report["take_up"]["rate"] < 1 and report["take_up"]["control_with_programme_use"] == 0

    # Churn came through the ingestion feed: derived outcomes observed (and recorded) in the past.
    outcomes = RetentionOutcome.objects.filter(membership__programme=programme)
    assert outcomes.exists() and set(outcomes.values_list("source", flat=True)) == {"derived"}
    # Each was recorded when its month's feed ran (the current month's feed runs at the demo's now, which is
    # `started` cut to the second, or the next second): the first ones more than ten months ago.
    assert all(o.observed_at <= o.recorded_at <= finished for o in outcomes)
    assert min(o.recorded_at for o in outcomes) < started - timedelta(days=300)
    assert memberships.filter(status="ended").count() == outcomes.count()

    # The agent queue has open and breached requests; the public feed fulfilled ones.
    requests = ConciergeRequest.objects.all()
    assert requests.filter(status="new").count() >= 2
    assert requests.filter(first_response_breached=True).exists()
    assert requests.filter(visibility="public", status="fulfilled").count() >= 3
    # Past events with check-ins and no-shows, upcoming ones with bookings and a waitlist.
    assert Event.objects.filter(status="completed").count() == 2
    assert Booking.objects.filter(status="attended").exists() and Booking.objects.filter(status="no_show").exists()
    assert Booking.objects.filter(status="waitlisted").count() == 3
    assert Booking.objects.filter(status="confirmed", event__starts_at__gt=started).exists()
