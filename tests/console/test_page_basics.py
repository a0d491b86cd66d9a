"""Every console page, as the role it is for: a phone viewport, a language, and a label for every form control
(a `<label for>`, or an `aria-label`)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client

from events.models import PartnerStaff
from loyalty.programmes.models import Enrolment
from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute
from tests.concierge.factories import make_member, make_request
from tests.console.conftest import client_for
from tests.events.factories import EventFactory, PartnerFactory, partner_staff
from tests.factories import CustomerFactory, MembershipFactory, TierFactory, UserFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for

pytestmark = pytest.mark.django_db

UNLABELLED_TYPES = {"hidden", "submit", "button", "reset", "image"}


class Controls(HTMLParser):
    def __init__(self):
        super().__init__()
        self.controls: list[dict] = []
        self.label_for: set[str] = set()
        self.viewport = False
        self.lang = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang = attrs.get("lang")
        elif tag == "meta" and attrs.get("name") == "viewport":
            self.viewport = "width=device-width" in (attrs.get("content") or "")
        elif tag == "label" and attrs.get("for"):
            self.label_for.add(attrs["for"])
        elif tag in {"input", "select", "textarea"} and attrs.get("type") not in UNLABELLED_TYPES:
            self.controls.append(attrs | {"tag": tag})

    def unlabelled(self) -> list[dict]:
        return [c for c in self.controls if c.get("id") not in self.label_for and not c.get("aria-label")]


def _pages() -> list[tuple[Client, str]]:
    tier = TierFactory(rank=1, name="Silver")
    user, membership = make_member(tier=tier)
    request = make_request(user)
    agent = UserFactory(roles=["concierge_agent"])
    staff = partner_staff(PartnerFactory())
    event = EventFactory(partner=PartnerStaff.objects.get(user=staff).partner)
    manager = UserFactory(roles=["programme_manager"])
    scoring = ScoringRunFactory()
    customer = CustomerFactory()
    metrics_for(scoring, customer, engagement_score=90.0)
    segment = segment_create(name="Engaged", rule={"all": [{"field": "engagement_score", "op": "gte", "value": 60}]})
    run = segment_run_execute(run_id=segment_run_create(segment=segment, enqueue=False).pk)
    programme = tier.programme
    enrolment = Enrolment.objects.create(programme=programme, segment_run=run)
    other = MembershipFactory(programme=programme, tier=tier)
    p = f"/console/manager/programmes/{programme.pk}"
    pages = [(Client(), "/console/login/")]
    pages += [
        (client_for(agent), url)
        for url in ("/console/", "/console/agent/queue/", f"/console/agent/requests/{request.pk}/")
    ]
    pages += [
        (client_for(staff), url)
        for url in (
            "/console/partner/events/",
            "/console/partner/events/new/",
            f"/console/partner/events/{event.pk}/",
            f"/console/partner/events/{event.pk}/edit/",
            f"/console/partner/events/{event.pk}/cancel/",
        )
    ]
    pages += [
        (client_for(manager), url)
        for url in (
            "/console/manager/segments/",
            "/console/manager/segments/new/",
            f"/console/manager/segments/{segment.pk}/",
            f"/console/manager/runs/{run.pk}/",
            f"/console/manager/runs/{run.pk}/explain/?customer={customer.pk}",
            "/console/manager/programmes/",
            "/console/manager/programmes/new/",
            "/console/manager/impact/",
            f"{p}/",
            f"{p}/edit/",
            f"{p}/tiers/new/",
            f"{p}/tiers/{tier.pk}/edit/",
            f"{p}/enrol/",
            f"{p}/enrolments/{enrolment.pk}/",
            f"{p}/memberships/",
            f"{p}/memberships/{membership.pk}/",
            f"{p}/memberships/{other.pk}/",
        )
    ]
    return pages


def test_every_page_has_a_phone_viewport_a_language_and_labelled_controls():
    checked = 0
    for client, url in _pages():
        response = client.get(url)
        assert response.status_code == 200, url
        page = Controls()
        page.feed(response.content.decode())
        assert page.viewport, url
        assert page.lang == "en", url
        assert page.unlabelled() == [], url
        checked += len(page.controls)
    assert checked > 60  # the pages do have forms: the check looked at something
