"""Programme managers' pages: why a customer is in a run, programmes and tiers (service errors beside the
fields), enrolment with the power figures before confirming and its progress, memberships with filters,
overrides and CSV, the impact page; every other role refused and nothing changed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from loyalty.programmes.models import Enrolment, Membership, Programme, Tier, TierChange
from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute
from tests.console.conftest import client_for
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory, TierFactory, UserFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for

pytestmark = pytest.mark.django_db

RULE = {"all": [{"field": "engagement_score", "op": "gte", "value": 60}]}
PROGRAMME_FORM = {
    "name": "Gold Circle",
    "description": "Top customers",
    "holdout_percent": "10",
    "qualifying_metric": "revenue_percentile",
    "evaluation_cadence_days": "30",
    "grace_period_days": "60",
    "expected_retention": "0.89",
    "primary_metric": "retention",
    "primary_horizon_months": "12",
}
TIER_FORM = {
    "rank": "1",
    "name": "Silver",
    "threshold": "0",
    "first_response_sla_hours": "24",
    "resolution_sla_hours": "72",
    "monthly_request_allowance": "5",
    "early_access_hours": "0",
    "guests_per_booking": "1",
}


def _run(customers: list[tuple[str, float]], rule=RULE):
    scoring = ScoringRunFactory()
    made = [
        metrics_for(scoring, CustomerFactory(name=name), engagement_score=score).customer for name, score in customers
    ]
    segment = segment_create(name="Engaged", rule=rule)
    run = segment_run_create(segment=segment, enqueue=False)
    return segment_run_execute(run_id=run.pk), made


# Why is this customer in


def test_explain_says_why_a_member_is_in_and_why_another_is_out(manager):
    run, (ada, cy) = _run([("Ada High", 90.0), ("Cy Low", 10.0)])
    client = client_for(manager)
    run_page = client.get(f"/console/manager/runs/{run.pk}/")
    assert f'href="/console/manager/runs/{run.pk}/explain/?customer={ada.pk}">Ada High</a>' in run_page.content.decode()

    inside = client.get(f"/console/manager/runs/{run.pk}/explain/?customer={ada.pk}")
    assert inside.status_code == 200
    explain = inside.context["explain"]
    assert (explain["in_segment"], explain["rank"], explain["reason"]) == (True, 1, "Matches the rule.")
    assert [(c["field"], c["actual"], c["passed"]) for c in explain["conditions"]] == [("engagement_score", 90.0, True)]
    assert "In the segment, rank 1" in inside.content.decode()

    outside = client.get(f"/console/manager/runs/{run.pk}/explain/", {"external_id": cy.external_id})
    assert outside.context["customer"] == cy
    assert outside.context["explain"]["reason"] == "Does not match the rule; failed conditions: rule.all.0."
    assert "<td>10.0</td>" in outside.content.decode()


def test_explain_by_an_unknown_external_id_says_so_beside_the_field(manager):
    run, _ = _run([("Ada High", 90.0)])
    response = client_for(manager).get(f"/console/manager/runs/{run.pk}/explain/", {"external_id": "NOPE"})
    assert response.status_code == 404
    assert response.context["lookup"].errors == {"external_id": ["No customer has this external id."]}
    assert response.context["explain"] is None


def test_explain_of_an_unfinished_run_shows_the_services_message(manager):
    ScoringRunFactory()
    segment = segment_create(name="Engaged", rule=RULE)
    run = segment_run_create(segment=segment, enqueue=False)
    customer = CustomerFactory()
    response = client_for(manager).get(f"/console/manager/runs/{run.pk}/explain/?customer={customer.pk}")
    assert response.status_code == 400
    assert response.context["error"] == "The segment run has not finished successfully."


# Programmes and tiers


def test_create_a_programme_then_edit_it(manager):
    client = client_for(manager)
    response = client.post("/console/manager/programmes/new/", PROGRAMME_FORM)
    programme = Programme.objects.get(name="Gold Circle")
    assert response["Location"] == f"/console/manager/programmes/{programme.pk}/"
    assert (programme.holdout_percent, programme.created_by, programme.primary_horizon_months) == (10, manager, 12)
    edit = client.post(
        f"/console/manager/programmes/{programme.pk}/edit/",
        {**PROGRAMME_FORM, "status": "active", "holdout_percent": "15", "primary_horizon_months": "24"},
    )
    assert edit.status_code == 302
    programme.refresh_from_db()
    assert (programme.holdout_percent, programme.primary_horizon_months) == (15, 24)
    page = client.get(f"/console/manager/programmes/{programme.pk}/")
    assert "15.00% of enrolled customers kept as control" in page.content.decode()


def test_programme_errors_from_the_service_sit_beside_their_fields(manager):
    client = client_for(manager)
    bad = {**PROGRAMME_FORM, "holdout_percent": "60", "expected_retention": "1.5", "primary_horizon_months": "90"}
    response = client.post("/console/manager/programmes/new/", bad)
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert errors["holdout_percent"] == ["Between 0 and 50."]
    assert errors["expected_retention"] == ["Strictly between 0 and 1."]
    assert errors["primary_horizon_months"] == ["Between 1 and 60 months."]
    assert errors["__all__"] == ["The programme is not valid."]
    ProgrammeFactory(name="Taken")
    taken = client.post("/console/manager/programmes/new/", {**PROGRAMME_FORM, "name": "Taken"})
    assert taken.status_code == 409
    assert taken.context["form"].errors["name"] == ["A programme has this name."]
    assert list(Programme.objects.values_list("name", flat=True)) == ["Taken"]


def test_frozen_fields_after_enrolment_are_refused_beside_the_field_and_nothing_changes(manager):
    membership = MembershipFactory(programme__name="Gold Circle")
    programme = membership.programme
    client = client_for(manager)
    data = {**PROGRAMME_FORM, "status": "active", "holdout_percent": "20"}
    response = client.post(f"/console/manager/programmes/{programme.pk}/edit/", data)
    assert response.status_code == 409
    assert response.context["form"].errors["holdout_percent"] == ["Frozen once customers are enrolled."]
    programme.refresh_from_db()
    assert programme.holdout_percent == 10
    # Changing only the name (the holdout as shown, "10.00") is fine.
    renamed = client.post(
        f"/console/manager/programmes/{programme.pk}/edit/",
        {**PROGRAMME_FORM, "status": "active", "name": "Gold", "holdout_percent": "10.00"},
    )
    assert renamed.status_code == 302
    programme.refresh_from_db()
    assert programme.name == "Gold"


def test_add_and_edit_tiers_with_the_ladder_checked(manager):
    programme = ProgrammeFactory()
    client = client_for(manager)
    assert client.post(f"/console/manager/programmes/{programme.pk}/tiers/new/", TIER_FORM).status_code == 302
    gold = {**TIER_FORM, "rank": "2", "name": "Gold", "threshold": "-1"}
    refused = client.post(f"/console/manager/programmes/{programme.pk}/tiers/new/", gold)
    assert refused.status_code == 422
    assert refused.context["form"].errors["threshold"] == [
        "Thresholds must increase with rank: rank 2 (-1.0) must be above rank 1 (0.0)."
    ]
    added = client.post(f"/console/manager/programmes/{programme.pk}/tiers/new/", {**gold, "threshold": "80"})
    assert added["Location"] == f"/console/manager/programmes/{programme.pk}/"
    silver = Tier.objects.get(programme=programme, name="Silver")
    sla = client.post(
        f"/console/manager/programmes/{programme.pk}/tiers/{silver.pk}/edit/",
        {**TIER_FORM, "resolution_sla_hours": "2", "first_response_sla_hours": "4"},
    )
    assert sla.context["form"].errors["resolution_sla_hours"] == ["Must be at least the first-response SLA."]
    assert (
        client.post(
            f"/console/manager/programmes/{programme.pk}/tiers/{silver.pk}/edit/", {**TIER_FORM, "name": "Bronze"}
        ).status_code
        == 302
    )
    assert list(Tier.objects.filter(programme=programme).values_list("rank", "name", "threshold")) == [
        (1, "Bronze", 0.0),
        (2, "Gold", 80.0),
    ]
    other = TierFactory()
    assert client.get(f"/console/manager/programmes/{programme.pk}/tiers/{other.pk}/edit/").status_code == 404


def test_programme_page_lists_tiers_and_enrolments_in_bounded_queries(manager, django_assert_max_num_queries):
    programme = ProgrammeFactory()
    TierFactory(programme=programme, rank=1, name="Silver")
    ScoringRunFactory()
    segment = segment_create(name="Engaged", rule=RULE)
    for _ in range(30):
        run = segment_run_create(segment=segment, enqueue=False)
        Enrolment.objects.create(programme=programme, segment_run=run, status="succeeded", progress=100)
    client = client_for(manager)
    with django_assert_max_num_queries(9):
        page = client.get(f"/console/manager/programmes/{programme.pk}/")
    assert len(page.context["page"]) == 25
    assert page.context["groups"] == {"treatment": 0, "control": 0}
    assert page.content.decode().count("Engaged, run #") == 25


# Enrolment


@pytest.fixture
def enrolable():
    run, customers = _run([(f"Customer {i:02d}", 70.0) for i in range(20)])
    programme = ProgrammeFactory(name="Gold Circle", holdout_percent=10)
    TierFactory(programme=programme, rank=1, name="Silver", threshold=0.0)
    return programme, run


def test_enrol_preview_shows_the_power_figures_and_writes_nothing(manager, enrolable):
    programme, run = enrolable
    response = client_for(manager).post(
        f"/console/manager/programmes/{programme.pk}/enrol/", {"segment_run": run.pk, "preview": "1"}
    )
    assert response.status_code == 200
    preview = response.context["preview"]
    assert (preview["new"], preview["expected_treatment"], preview["expected_control"]) == (20, 18, 2)
    assert (preview["this_enrolment_mde_points"], preview["programme_mde_points_after"]) == (65.34, 65.34)
    assert [(r["holdout_percent"], r["min_detectable_retention_effect_points"]) for r in preview["power"]["rows"]] == [
        (5.0, 89.94),
        (10.0, 65.34),
        (15.0, 54.89),
        (20.0, 49.0),
        (30.0, 42.77),
        (50.0, 39.2),
    ]
    content = response.content.decode()
    assert 'id="mde-enrolment">65.3 percentage points' in content
    assert 'name="confirm"' in content and "Enrol 20 customers" in content
    assert not Enrolment.objects.exists() and not Membership.objects.exists()


def test_enrol_confirm_starts_it_and_its_page_shows_the_result(manager, enrolable, django_capture_on_commit_callbacks):
    programme, run = enrolable
    client = client_for(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/console/manager/programmes/{programme.pk}/enrol/", {"segment_run": run.pk, "confirm": "1"}
        )
    enrolment = Enrolment.objects.get()
    assert response["Location"] == f"/console/manager/programmes/{programme.pk}/enrolments/{enrolment.pk}/"
    page = client.get(response["Location"])
    assert page.context["enrolment"].status == "succeeded"
    assert page.context["busy"] is False
    assert page.context["enrolment"].enrolled_count == 20
    totals = page.context["result"]["totals"]
    assert totals["treatment"] + totals["control"] == 20 == Membership.objects.filter(programme=programme).count()
    assert 'id="enrolled-count">20</strong>' in page.content.decode()
    again = client.post(f"/console/manager/programmes/{programme.pk}/enrol/", {"segment_run": run.pk, "confirm": "1"})
    assert again["Location"] == response["Location"]
    assert Enrolment.objects.count() == 1


def test_enrolling_into_a_programme_without_tiers_says_so_before_anything(manager):
    run, _ = _run([("Ada", 90.0)])
    programme = ProgrammeFactory()
    response = client_for(manager).post(
        f"/console/manager/programmes/{programme.pk}/enrol/", {"segment_run": run.pk, "preview": "1"}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["__all__"] == ["The programme has no tiers yet."]
    assert response.context["preview"] is None


def test_a_running_enrolment_page_refreshes_itself(manager, enrolable):
    programme, run = enrolable
    enrolment = Enrolment.objects.create(programme=programme, segment_run=run, status="running", progress=60)
    page = client_for(manager).get(f"/console/manager/programmes/{programme.pk}/enrolments/{enrolment.pk}/")
    content = page.content.decode()
    assert '<meta http-equiv="refresh" content="3">' in content
    assert '<progress max="100" value="60"' in content
    other = ProgrammeFactory()
    assert (
        client_for(manager).get(f"/console/manager/programmes/{other.pk}/enrolments/{enrolment.pk}/").status_code == 404
    )


def test_a_failed_enrolment_can_be_retried_from_its_page(manager, enrolable, django_capture_on_commit_callbacks):
    programme, run = enrolable
    enrolment = Enrolment.objects.create(
        programme=programme, segment_run=run, status="failed", progress=60, error="OperationalError: gone"
    )
    client = client_for(manager)
    url = f"/console/manager/programmes/{programme.pk}/enrolments/{enrolment.pk}/"
    page = client.get(url).content.decode()
    assert "The enrolment failed: OperationalError: gone" in page and 'id="retry"' in page
    with django_capture_on_commit_callbacks(execute=True):
        retried = client.post(url + "retry/", follow=True)
    assert retried.redirect_chain == [(url, 302)]
    assert [str(m) for m in retried.context["messages"]] == [
        f"Enrolment #{enrolment.pk} is queued again; this page follows it."
    ]
    enrolment.refresh_from_db()
    assert (enrolment.status, enrolment.enrolled_count) == ("succeeded", 20)
    again = client.post(url + "retry/", follow=True)
    assert [str(m) for m in again.context["messages"]] == ["Only a failed run can be retried; this one is succeeded."]
    assert client_for(UserFactory(roles=["concierge_agent"])).post(url + "retry/").status_code == 403


# Memberships


def test_memberships_are_filtered_paginated_and_bounded(manager, django_assert_max_num_queries):
    programme = ProgrammeFactory()
    silver = TierFactory(programme=programme, rank=1, name="Silver")
    gold = TierFactory(programme=programme, rank=2, name="Gold", threshold=50)
    for _ in range(27):
        MembershipFactory(programme=programme, tier=silver)
    for _ in range(3):
        MembershipFactory(programme=programme, control=True, shadow_tier=gold)
    MembershipFactory()  # another programme's
    client = client_for(manager)
    with django_assert_max_num_queries(8):
        page = client.get(f"/console/manager/programmes/{programme.pk}/memberships/")
    assert (page.context["page"].paginator.count, len(page.context["page"])) == (30, 25)
    control = client.get(f"/console/manager/programmes/{programme.pk}/memberships/?group=control")
    assert [m.shadow_tier.name for m in control.context["page"]] == ["Gold"] * 3
    gold_tier = client.get(f"/console/manager/programmes/{programme.pk}/memberships/?tier_id={gold.pk}")
    assert gold_tier.context["page"].paginator.count == 3
    one = Membership.objects.filter(programme=programme).first()
    by_id = client.get(
        f"/console/manager/programmes/{programme.pk}/memberships/?customer_external_id={one.customer.external_id}"
    )
    assert [m.pk for m in by_id.context["page"]] == [one.pk]
    assert f"memberships.csv?customer_external_id={one.customer.external_id}" in by_id.content.decode()


def test_memberships_csv_follows_the_filters(manager):
    programme = ProgrammeFactory()
    silver = TierFactory(programme=programme, rank=1, name="Silver")
    kept = MembershipFactory(programme=programme, tier=silver, customer__name="Ada Kept")
    MembershipFactory(programme=programme, control=True, customer__name="Cy Control")
    response = client_for(manager).get(f"/console/manager/programmes/{programme.pk}/memberships.csv?group=treatment")
    assert response["Content-Type"] == "text/csv"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("membership_id,customer_external_id,customer_name,group,status,tier,")
    assert lines[1:] == [
        f"{kept.pk},{kept.customer.external_id},Ada Kept,treatment,active,Silver,,,,2026-01-01T00:00:00+00:00,"
    ]


def test_set_and_clear_a_tier_override(manager):
    programme = ProgrammeFactory()
    silver = TierFactory(programme=programme, rank=1, name="Silver")
    gold = TierFactory(programme=programme, rank=2, name="Gold", threshold=50)
    membership = MembershipFactory(programme=programme, tier=silver)
    client = client_for(manager)
    url = f"/console/manager/programmes/{programme.pk}/memberships/{membership.pk}/"
    until = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(url + "override/", {"tier_id": gold.pk, "expires_at": until, "reason": "VIP complaint"})
    assert response["Location"] == url
    membership.refresh_from_db()
    assert (membership.override_tier, membership.override_reason) == (gold, "VIP complaint")
    page = client.get(url)
    assert page.context["effective"] == gold
    assert [(c.reason, c.to_tier.name, c.actor) for c in page.context["changes"]] == [("override", "Gold", manager)]
    client.post(url + "override/", {"clear": "1"})
    membership.refresh_from_db()
    assert membership.override_tier is None
    assert list(TierChange.objects.values_list("reason", flat=True).order_by("id")) == ["override", "override_expired"]


def test_override_errors_sit_beside_their_fields_and_change_nothing(manager):
    programme = ProgrammeFactory()
    silver = TierFactory(programme=programme, rank=1, name="Silver")
    membership = MembershipFactory(programme=programme, tier=silver)
    url = f"/console/manager/programmes/{programme.pk}/memberships/{membership.pk}/override/"
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client_for(manager).post(url, {"tier_id": silver.pk, "expires_at": past, "reason": "  "})
    assert response.status_code == 400  # the reason is blank: the form says so before the service is asked
    assert response.context["form"].errors["reason"] == ["This field is required."]
    response = client_for(manager).post(url, {"tier_id": silver.pk, "expires_at": past, "reason": "x"})
    assert response.status_code == 422
    assert response.context["form"].errors["expires_at"] == ["Must be in the future."]
    control = MembershipFactory(programme=programme, control=True, shadow_tier=silver)
    future = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    refused = client_for(manager).post(
        f"/console/manager/programmes/{programme.pk}/memberships/{control.pk}/override/",
        {"tier_id": silver.pk, "expires_at": future, "reason": "x"},
    )
    assert refused.status_code == 400
    assert refused.context["form"].errors["__all__"] == [
        "Only an active treatment membership can have a tier override."
    ]
    assert not TierChange.objects.exists()
    assert not Membership.objects.filter(override_tier__isnull=False).exists()


def test_a_membership_of_another_programme_is_not_found(manager):
    membership = MembershipFactory()
    other = ProgrammeFactory()
    assert (
        client_for(manager).get(f"/console/manager/programmes/{other.pk}/memberships/{membership.pk}/").status_code
        == 404
    )
    assert client_for(manager).get("/console/manager/programmes/999999/").status_code == 404


# Impact


def test_impact_page_links_each_dashboard_and_its_csv_tables(manager, django_assert_max_num_queries):
    for i in range(30):
        ProgrammeFactory(name=f"P{i:02d}")
    client = client_for(manager)
    with django_assert_max_num_queries(6):
        page = client.get("/console/manager/impact/")
    assert len(page.context["page"]) == 25
    first = page.context["page"][0]
    content = page.content.decode()
    assert f'href="/manager/programmes/{first.pk}/impact/">Impact dashboard of P00</a>' in content
    assert f'href="/api/v1/retention/programmes/{first.pk}/impact/export.csv?table=comparisons"' in content
    assert 'href="/console/manager/impact/">Impact</a>' in content  # in the navigation
    export = client.get(f"/api/v1/retention/programmes/{first.pk}/impact/export.csv?table=srm")
    assert (export.status_code, export["Content-Type"]) == (200, "text/csv")


# Access


@pytest.mark.parametrize("role", ["concierge_agent", "partner_staff", "member"])
def test_others_are_refused_every_programme_page_and_nothing_changes(role, enrolable):
    programme, run = enrolable
    tier = Tier.objects.get(programme=programme)
    membership = MembershipFactory(programme=programme, tier=tier)
    base = f"/console/manager/programmes/{programme.pk}"
    client = client_for(UserFactory(roles=[role]))
    for url in (
        f"/console/manager/runs/{run.pk}/explain/?customer={membership.customer_id}",
        "/console/manager/programmes/new/",
        "/console/manager/impact/",
        f"{base}/",
        f"{base}/edit/",
        f"{base}/tiers/new/",
        f"{base}/tiers/{tier.pk}/edit/",
        f"{base}/enrol/",
        f"{base}/memberships/",
        f"{base}/memberships.csv",
        f"{base}/memberships/{membership.pk}/",
    ):
        assert client.get(url).status_code == 403, url
    future = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    posts = {
        "/console/manager/programmes/new/": PROGRAMME_FORM,
        f"{base}/edit/": {**PROGRAMME_FORM, "status": "closed"},
        f"{base}/tiers/new/": {**TIER_FORM, "rank": "2", "threshold": "9"},
        f"{base}/enrol/": {"segment_run": run.pk, "confirm": "1"},
        f"{base}/memberships/{membership.pk}/override/": {"tier_id": tier.pk, "expires_at": future, "reason": "x"},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    assert list(Programme.objects.values_list("name", "status")) == [("Gold Circle", "active")]
    assert Tier.objects.count() == 1
    assert not Enrolment.objects.exists()
    assert not TierChange.objects.exists()


def test_anonymous_people_go_to_the_login_page():
    programme = ProgrammeFactory()
    for url in (f"/console/manager/programmes/{programme.pk}/", "/console/manager/impact/"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/console/login/?next=")


def test_segments_programmes_and_impact_lists_filter_by_name_across_pages(manager):
    from loyalty.segmentation.models import Segment

    for i in range(30):
        ProgrammeFactory(name=f"Gold {i:02d}")
        Segment.objects.create(name=f"Gold {i:02d}", rule=RULE)
    ProgrammeFactory(name="Silver club")
    Segment.objects.create(name="Silver fans", rule=RULE)
    client = client_for(manager)
    for url in ("/console/manager/programmes/", "/console/manager/impact/", "/console/manager/segments/"):
        assert [p.name for p in client.get(url, {"q": "silver"}).context["page"]] == [
            "Silver fans" if "segments" in url else "Silver club"
        ]
        gold = client.get(url, {"q": "gold", "page": "2"})
        assert [p.name for p in gold.context["page"]] == [f"Gold {i}" for i in range(25, 30)]
        assert 'href="?q=gold&amp;page=1" rel="prev"' in gold.content.decode()
