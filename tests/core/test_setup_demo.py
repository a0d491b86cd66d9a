import pytest
from django.core.management import call_command

from accounts.management.commands.seed_users import DEMO_PASSWORD
from events.models import Event
from loyalty.models import Customer, Membership
from tests.conftest import ApiClient, login_token

pytestmark = pytest.mark.django_db


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
