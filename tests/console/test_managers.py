"""Programme managers' pages: segments with a preview before saving, runs with progress, programmes."""

from __future__ import annotations

import json

import pytest

from loyalty.segmentation.models import Segment, SegmentRun
from tests.console.conftest import client_for
from tests.factories import CustomerFactory, ProgrammeFactory, UserFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for

pytestmark = pytest.mark.django_db

RULE = {"all": [{"field": "engagement_score", "op": "gte", "value": 60}]}


@pytest.fixture
def scored():
    run = ScoringRunFactory()
    for name, score in (("Ada High", 90.0), ("Bob Mid", 65.0), ("Cy Low", 10.0)):
        metrics_for(run, CustomerFactory(name=name), engagement_score=score)
    return run


def _form(**kw):
    return {
        "name": "Engaged",
        "description": "",
        "rule": json.dumps(RULE),
        "top_n": "",
        "top_by": "",
        "tie_break": "",
        **kw,
    }


def test_preview_shows_count_and_sample_and_saves_nothing(manager, scored):
    response = client_for(manager).post("/console/manager/segments/new/", {**_form(), "preview": "1"})
    assert response.status_code == 200
    preview = response.context["preview"]
    assert (preview["member_count"], preview["candidates_count"]) == (2, 2)
    assert sorted(c["name"] for c in preview["sample"]) == ["Ada High", "Bob Mid"]
    assert not Segment.objects.exists()


def test_save_then_run_shows_the_finished_run(manager, scored, django_capture_on_commit_callbacks):
    client = client_for(manager)
    response = client.post("/console/manager/segments/new/", {**_form(), "save": "1"})
    segment = Segment.objects.get(name="Engaged")
    assert response["Location"] == f"/console/manager/segments/{segment.pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/console/manager/segments/{segment.pk}/run/")
    run = SegmentRun.objects.get(segment=segment)
    run.refresh_from_db()
    page = client.get(f"/console/manager/segments/{segment.pk}/")
    assert page.status_code == 200
    assert [(r.status, r.progress, r.member_count) for r in page.context["page"]] == [("succeeded", 100, 2)]
    assert page.context["busy"] is False


def test_rule_errors_are_shown_beside_the_rule(manager, scored):
    bad = _form(rule=json.dumps({"all": [{"field": "revenu", "op": "gt", "value": 1}]}))
    response = client_for(manager).post("/console/manager/segments/new/", {**bad, "preview": "1"})
    assert response.status_code == 422
    assert response.context["form"].errors["rule"][0].startswith("Unknown field 'revenu'.")
    bad_json = client_for(manager).post("/console/manager/segments/new/", {**_form(rule="{oops"), "save": "1"})
    assert bad_json.status_code == 400
    assert bad_json.context["form"].errors["rule"][0].startswith("Not valid JSON")
    assert not Segment.objects.exists()


def test_lists_are_bounded_in_queries(manager, django_assert_max_num_queries):
    from tests.factories import TierFactory

    for i in range(30):
        Segment.objects.create(name=f"S{i:02d}", rule=RULE)
        TierFactory(programme=ProgrammeFactory(name=f"P{i:02d}"), rank=1, name="Silver")
    client = client_for(manager)
    with django_assert_max_num_queries(6):
        assert len(client.get("/console/manager/segments/").context["page"]) == 25
    with django_assert_max_num_queries(6):
        page = client.get("/console/manager/programmes/")
    assert len(page.context["page"]) == 25
    assert b"/manager/programmes/" in page.content and b"Impact dashboard" in page.content
    assert page.content.decode().count("<li>1: Silver,") == 25


@pytest.mark.parametrize("role", ["concierge_agent", "partner_staff", "member"])
def test_others_are_refused_manager_pages_and_nothing_changes(role):
    segment = Segment.objects.create(name="S", rule=RULE)
    client = client_for(UserFactory(roles=[role]))
    for url in ("segments/", "segments/new/", f"segments/{segment.pk}/", "programmes/"):
        assert client.get(f"/console/manager/{url}").status_code == 403
    assert client.post(f"/console/manager/segments/{segment.pk}/run/").status_code == 403
    assert client.post("/console/manager/segments/new/", {**_form(name="X"), "save": "1"}).status_code == 403
    assert list(Segment.objects.values_list("name", flat=True)) == ["S"]
    assert not SegmentRun.objects.exists()


def test_run_page_members_diff_and_csv(manager, scored, django_assert_max_num_queries):
    from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute

    segment = segment_create(name="Engaged", rule=RULE)
    first = segment_run_create(segment=segment, enqueue=False)
    segment_run_execute(run_id=first.pk)
    segment.rule = {"all": [{"field": "engagement_score", "op": "gte", "value": 80}]}
    segment.save(update_fields=["rule"])
    second = segment_run_create(segment=segment, enqueue=False)
    segment_run_execute(run_id=second.pk)
    client = client_for(manager)
    with django_assert_max_num_queries(12):  # fixed: session, user, roles, run, count, page, previous, diff, names
        page = client.get(f"/console/manager/runs/{second.pk}/")
    assert [m.customer.name for m in page.context["page"]] == ["Ada High"]
    diff = page.context["diff"]
    assert (diff["entered_count"], diff["left_count"], diff["stayed_count"]) == (0, 1, 1)
    assert diff["left_names"] == ["Bob Mid"]
    csv = client.get(f"/console/manager/runs/{first.pk}/members.csv")
    assert csv["Content-Type"] == "text/csv"
    lines = b"".join(csv.streaming_content).decode().splitlines()
    assert lines[0] == "rank,customer_external_id,customer_name,values"
    assert [line.split(",")[2] for line in lines[1:]] == ["Ada High", "Bob Mid"]
    other = client_for(UserFactory(roles=["concierge_agent"]))
    assert other.get(f"/console/manager/runs/{first.pk}/").status_code == 403
    assert other.get(f"/console/manager/runs/{first.pk}/members.csv").status_code == 403
