from __future__ import annotations

from datetime import date

import pytest

from loyalty.models import CustomerMetrics, Interaction, ScoringModel, Segment, SegmentMember, SegmentRun
from loyalty.segmentation.models import RunStatus
from loyalty.segmentation.services.rollups import rollups_refresh_interactions
from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute
from tests.factories import CustomerFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for

pytestmark = pytest.mark.django_db


def test_only_programme_managers_reach_scoring_and_segments(agent_api, anon_api):
    for path in ["scoring/models", "scoring/runs", "segments"]:
        assert anon_api.get(path).status_code == 401
        response = agent_api.get(path)
        assert response.status_code == 403
        assert response.json()["code"] == "role_required"
    assert agent_api.post("segments", {"name": "x", "rule": {}}).status_code == 403
    assert agent_api.post("scoring/models", {"name": "x"}).status_code == 403
    assert Segment.objects.count() == 0
    assert ScoringModel.objects.count() == 0


def test_scoring_models_are_versioned_and_locked_once_used(manager_api, django_capture_on_commit_callbacks):
    first = manager_api.post("scoring/models", {"name": "m", "half_life_days": 30})
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["version"], body["half_life_days"], body["recency_weight"]) == (1, 30.0, 0.4)
    assert body["channel_weights"]["social"] == 1.17
    second = manager_api.post("scoring/models", {"name": "m"})
    assert second.json()["version"] == 2
    bad = manager_api.post("scoring/models", {"name": "m", "channel_weights": {"fax": 1}})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_scoring_model"
    assert list(bad.json()["fields"]) == ["channel_weights.fax"]
    assert ScoringModel.objects.count() == 2

    patched = manager_api.patch(f"scoring/models/{body['id']}", {"breadth_weight": 0.5})
    assert patched.status_code == 200 and patched.json()["breadth_weight"] == 0.5

    customer = CustomerFactory()
    Interaction.objects.create(customer=customer, channel="app", occurred_at="2026-06-01T10:00:00Z", external_id="i1")
    rollups_refresh_interactions(customer_ids=[customer.id], date_from=date(2026, 6, 1), date_to=date(2026, 6, 1))
    with django_capture_on_commit_callbacks(execute=True):
        run = manager_api.post("scoring/runs", {"scoring_model_id": body["id"], "as_of": "2026-06-30T00:00:00Z"})
    assert run.status_code == 202, run.content
    run_body = manager_api.get(f"scoring/runs/{run.json()['id']}").json()
    assert (run_body["status"], run_body["progress"], run_body["customers_scored"]) == ("succeeded", 100, 1)
    metrics = manager_api.get(f"scoring/runs/{run_body['id']}/metrics/{customer.id}").json()
    assert (metrics["channels_used"], metrics["active_weeks"], metrics["days_since_last"]) == (1, 1, 29)

    locked = manager_api.patch(f"scoring/models/{body['id']}", {"breadth_weight": 0.1})
    assert locked.status_code == 409
    assert locked.json()["code"] == "scoring_model_locked"
    assert ScoringModel.objects.get(pk=body["id"]).breadth_weight == 0.5


def test_segment_api_validates_runs_and_reports(manager_api, django_capture_on_commit_callbacks):
    bad = manager_api.post("segments", {"name": "s", "rule": {"all": [{"field": "nope", "op": "eq", "value": 1}]}})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_segment_rule"
    assert list(bad.json()["fields"]) == ["rule.all.0.field"]
    assert Segment.objects.count() == 0

    scoring_run = ScoringRunFactory()
    customers = [CustomerFactory() for _ in range(3)]
    for i, customer in enumerate(customers):
        metrics_for(scoring_run, customer, revenue_minor=1000 * (i + 1), engagement_score=50.0 + 10 * i)
    payload = {
        "name": "top",
        "rule": {"field": "engagement_score", "op": "gte", "value": 60},
        "top_n": 1,
        "top_by": "revenue_minor",
    }
    created = manager_api.post("segments", payload, headers={"Idempotency-Key": "k1"})
    assert created.status_code == 201
    again = manager_api.post("segments", payload, headers={"Idempotency-Key": "k1"})
    assert again.json() == created.json()
    segment_id = created.json()["id"]

    preview = manager_api.post("segments/preview", {**payload, "top_n": None, "top_by": ""}).json()
    assert (preview["candidates_count"], preview["member_count"]) == (2, 2)
    assert [s["customer_id"] for s in preview["sample"]] == [customers[2].id, customers[1].id]
    assert SegmentRun.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        run = manager_api.post(f"segments/{segment_id}/runs", {"scoring_run_id": scoring_run.pk})
    assert run.status_code == 202
    run_id = run.json()["id"]
    body = manager_api.get(f"segments/runs/{run_id}").json()
    assert (body["status"], body["candidates_count"], body["member_count"]) == ("succeeded", 2, 1)
    members = manager_api.get(f"segments/runs/{run_id}/members").json()
    assert members == {
        "items": [
            {
                "customer_id": customers[2].id,
                "external_id": customers[2].external_id,
                "rank": 1,
                "values": {"revenue_minor": 3000, "engagement_score": 70.0},
            }
        ],
        "count": 1,
    }
    csv = manager_api.get(f"segments/runs/{run_id}/members.csv")
    assert csv["Content-Type"] == "text/csv"
    lines = b"".join(csv.streaming_content).decode().split("\r\n")
    assert lines[0] == "rank,customer_id,external_id,engagement_score,revenue_minor"
    row = lines[1].split(",")
    assert row[:3] == ["1", str(customers[2].id), customers[2].external_id]
    assert (float(row[3]), int(row[4])) == (70.0, 3000)  # PostgreSQL's jsonb writes 70.0 as 70
    assert lines[2:] == [""]
    explain = manager_api.get(f"segments/runs/{run_id}/explain", {"customer": customers[1].id}).json()
    assert (explain["in_segment"], explain["matches_rule"]) == (False, True)
    diff = manager_api.get(f"segments/runs/{run_id}/diff", {"against": run_id}).json()
    assert (diff["entered_count"], diff["left_count"], diff["stayed_count"]) == (0, 0, 1)
    assert manager_api.get("segments/runs/999999/explain", {"customer": 1}).status_code == 404


def test_a_segment_run_needs_a_finished_scoring_run(manager_api):
    segment = segment_create(name="s", rule={})
    response = manager_api.post(f"segments/{segment.pk}/runs", {})
    assert response.status_code == 400
    assert response.json()["code"] == "no_scoring_run"
    failed = ScoringRunFactory(status=RunStatus.FAILED)
    response = manager_api.post(f"segments/{segment.pk}/runs", {"scoring_run_id": failed.pk})
    assert response.json()["code"] == "scoring_run_not_succeeded"
    assert SegmentRun.objects.count() == 0


def test_list_endpoints_use_a_fixed_number_of_queries(manager_api, django_assert_num_queries):
    scoring_run = ScoringRunFactory()
    for i in range(5):
        metrics_for(scoring_run, revenue_minor=i, revenue_rank=5 - i)
    segments = [segment_create(name=f"s{i}", rule={}) for i in range(3)]
    runs = [
        segment_run_execute(run_id=segment_run_create(segment=segments[0], scoring_run=scoring_run, enqueue=False).pk)
        for _ in range(2)
    ]
    assert SegmentMember.objects.filter(run=runs[0]).count() == 5
    assert CustomerMetrics.objects.count() == 5
    ScoringRunFactory.create_batch(2)
    # Each: session + user lookups by the token auth, the role check, then COUNT and one page query.
    for path, extra in [
        ("scoring/models", 0),
        ("scoring/runs", 0),
        (f"scoring/runs/{scoring_run.pk}/metrics", 1),
        ("segments", 0),
        (f"segments/{segments[0].pk}/runs", 1),
        (f"segments/runs/{runs[0].pk}/members", 1),
    ]:
        manager_api.get(path)  # warm caches
        with django_assert_num_queries(_BASE + extra):
            response = manager_api.get(path)
        assert response.status_code == 200
        assert response.json()["count"] >= 2


_BASE = 4  # 3 for the token auth and the role check, then the page query (short: no COUNT)
