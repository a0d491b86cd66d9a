from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import ValidationFailed
from loyalty.models import CustomerMetrics, SegmentMember
from loyalty.segmentation.models import RunStatus
from loyalty.segmentation.selectors import segment_member_list
from loyalty.segmentation.services import segments as segments_service
from loyalty.segmentation.services.segment_rules import METRIC_FIELDS, rule_validate
from loyalty.segmentation.services.segments import (
    segment_create,
    segment_preview,
    segment_run_create,
    segment_run_diff,
    segment_run_execute,
    segment_run_explain,
)
from tests.factories import CustomerFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for

TOP_RULE = {"all": [{"field": "engagement_score", "op": "gte", "value": 60}]}


def _errors(**kwargs) -> dict:
    with pytest.raises(ValidationFailed) as info:
        rule_validate(**kwargs)
    assert info.value.code == "invalid_segment_rule"
    return info.value.fields


def test_rule_validation_names_each_problem_by_path():
    fields = _errors(
        rule={
            "all": [
                {"field": "revenu", "op": "gt", "value": 1},
                {"field": "region", "op": "gt", "value": "north"},
                {"field": "engagement_score", "op": "gte", "value": "high"},
                {"any": []},
                {"not": {"field": "age_band", "op": "eq", "value": "30-40"}},
                {"field": "region", "op": "in", "value": []},
                {"field": "age", "op": "eq", "value": True},
                "oops",
            ]
        },
        top_n=10,
        top_by="",
        tie_break="nope",
    )
    assert set(fields) == {
        "rule.all.0.field",
        "rule.all.1.op",
        "rule.all.2.value",
        "rule.all.3.any",
        "rule.all.4.not.value",
        "rule.all.5.value",
        "rule.all.6.value",
        "rule.all.7",
        "top_by",
        "tie_break",
    }
    assert fields["rule.all.0.field"][0].startswith("Unknown field 'revenu'.")
    assert fields["rule.all.3.any"] == ["An empty group; give at least one node."]
    assert fields["rule.all.2.value"] == ["engagement_score compares with a number; got 'high'."]


def test_rule_validation_rejects_malformed_nodes():
    assert set(_errors(rule={"all": [], "any": []})) == {"rule"}
    assert set(_errors(rule={"field": "region", "op": "eq"})) == {"rule"}
    assert set(_errors(rule={"all": "x"})) == {"rule.all"}
    assert set(_errors(rule={}, top_n=None, top_by="engagement_score")) == {"top_n"}
    assert set(_errors(rule={"field": "tenure_days", "op": "in", "value": [1]})) == {"rule.op"}
    assert set(_errors(rule={"field": "region", "op": "eq", "value": "no\x00rth"})) == {"rule.value"}
    rule_validate(rule={"not": {"field": "age_band", "op": "in", "value": ["25-34", "65+"]}})  # valid


@pytest.fixture
def population(db):
    """Six customers with metrics; two tie on revenue."""
    run = ScoringRunFactory()
    rows = [
        # (region, birth_year, revenue_minor, engagement)
        ("north", 1995, 50_000, 80.0),
        ("north", 1990, 90_000, 70.0),
        ("south", 1950, 90_000, 65.0),
        ("south", 1985, 70_000, 40.0),
        ("north", None, 10_000, 90.0),
        ("east", 2000, 30_000, 61.0),
    ]
    customers = []
    for rank, (region, birth_year, revenue, engagement) in enumerate(rows, start=1):
        customer = CustomerFactory(region=region, birth_year=birth_year)
        metrics_for(run, customer, revenue_minor=revenue, engagement_score=engagement, revenue_rank=rank)
        customers.append(customer)
    return run, customers


def _member_ids(run) -> list[int]:
    return list(SegmentMember.objects.filter(run=run).order_by("rank").values_list("customer_id", flat=True))


@pytest.mark.django_db
def test_top_n_by_revenue_with_engagement_floor_and_deterministic_tie_break(population):
    scoring_run, c = population
    segment = segment_create(name="top", rule=TOP_RULE, top_n=3, top_by="revenue_minor")
    run = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=scoring_run, enqueue=False).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    # c1 and c2 tie on revenue: the lower customer id ranks first; c3 has engagement 40: out.
    assert _member_ids(run) == [c[1].id, c[2].id, c[0].id]
    assert (run.candidates_count, run.member_count) == (5, 3)
    first = segment_member_list(run=run).get(rank=1)
    assert first.values == {"revenue_minor": 90_000, "engagement_score": 70.0}

    # A tie-break metric decides before the customer id (highest first).
    CustomerMetrics.objects.filter(scoring_run=scoring_run, customer=c[2]).update(decayed_activity=5.0)
    segment2 = segment_create(name="top2", rule=TOP_RULE, top_n=3, top_by="revenue_minor", tie_break="decayed_activity")
    run2 = segment_run_execute(run_id=segment_run_create(segment=segment2, scoring_run=scoring_run, enqueue=False).pk)
    assert _member_ids(run2) == [c[2].id, c[1].id, c[0].id]
    assert segment_member_list(run=run2).get(rank=1).values == {
        "revenue_minor": 90_000,
        "engagement_score": 65.0,
        "decayed_activity": 5.0,
    }
    again = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=scoring_run, enqueue=False).pk)
    assert _member_ids(again) == _member_ids(run)


@pytest.mark.django_db
def test_customers_without_a_value_rank_last_whichever_the_direction(population):
    scoring_run, c = population
    for customer, days in zip(c, [5, None, 2, 9, None, 2], strict=True):
        CustomerMetrics.objects.filter(scoring_run=scoring_run, customer=customer).update(days_since_last=days)
    segment = segment_create(name="recent", rule={}, top_n=6, top_by="days_since_last", tie_break="revenue_minor")
    run = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=scoring_run, enqueue=False).pk)
    # Lowest first, ties by revenue (highest first), then the customers without interactions, by revenue too.
    assert _member_ids(run) == [c[2].id, c[5].id, c[0].id, c[3].id, c[1].id, c[4].id]
    for nullable in ("days_since_last", "revenue_minor"):
        order = segments_service._order_by({"top_by": nullable})
        assert ("IS NULL" in order) == (nullable in segments_service.NULLABLE)
    nullable = {f.name for f in CustomerMetrics._meta.concrete_fields if f.null and f.name in METRIC_FIELDS}
    assert nullable == segments_service.NULLABLE  # a metric that can be NULL keeps its NULL key


@pytest.mark.django_db
def test_attribute_rules_compile_to_sql(population):
    scoring_run, c = population  # as of 2026-06-30
    cases = [
        ({"field": "region", "op": "in", "value": ["south", "east"]}, {2, 3, 5}),
        ({"field": "age_band", "op": "eq", "value": "25-34"}, {0, 5}),  # aged 31 and 26; 36 is out
        ({"field": "age", "op": "gte", "value": 65}, {2}),
        ({"not": {"field": "age_band", "op": "eq", "value": "65+"}}, {0, 1, 3, 5}),  # unknown age: not in, not out
        (
            {
                "any": [
                    {"field": "revenue", "op": "gte", "value": 700},
                    {"field": "region", "op": "eq", "value": "east"},
                ]
            },
            {1, 2, 3, 5},
        ),
        ({"field": "tenure_days", "op": "gte", "value": 2372}, {0, 1, 2, 3, 4, 5}),  # joined 2020-01-01
        ({"field": "tenure_days", "op": "gt", "value": 2372}, set()),
    ]
    for rule, expected in cases:
        preview = segment_preview(rule=rule, top_n=None, top_by="", tie_break="", scoring_run=scoring_run)
        assert {s["customer_id"] for s in preview["sample"]} == {c[i].id for i in expected}, rule
        assert preview["candidates_count"] == len(expected)
    assert (datetime(2026, 6, 30, tzinfo=UTC) - datetime(2020, 1, 1, tzinfo=UTC)).days == 2372


@pytest.mark.django_db
def test_a_failing_run_records_the_failure_and_leaves_no_members(population, monkeypatch):
    scoring_run, _ = population
    segment = segment_create(name="top", rule=TOP_RULE, top_n=3, top_by="revenue_minor")
    run = segment_run_create(segment=segment, scoring_run=scoring_run, enqueue=False)
    inserted = []
    original = segments_service._members_insert

    def insert_then_fail(cursor, run, compiled):
        inserted.append(original(cursor, run, compiled))
        raise RuntimeError("disk full")

    monkeypatch.setattr(segments_service, "_members_insert", insert_then_fail)
    run = segment_run_execute(run_id=run.pk)
    assert inserted == [3]
    assert run.status == RunStatus.FAILED
    assert run.error == "RuntimeError: disk full"
    assert run.finished_at is not None
    assert SegmentMember.objects.filter(run=run).count() == 0
    assert run.member_count == 0


@pytest.mark.django_db
def test_diff_and_explain(population):
    scoring_run, c = population
    old = segment_create(name="old", rule={"field": "region", "op": "eq", "value": "north"})
    new = segment_create(name="new", rule=TOP_RULE, top_n=2, top_by="revenue_minor")
    run_old = segment_run_execute(run_id=segment_run_create(segment=old, scoring_run=scoring_run, enqueue=False).pk)
    run_new = segment_run_execute(run_id=segment_run_create(segment=new, scoring_run=scoring_run, enqueue=False).pk)
    diff = segment_run_diff(run=run_new, against=run_old)
    assert diff == {
        "run_id": run_new.pk,
        "against_run_id": run_old.pk,
        "entered_count": 1,
        "left_count": 2,
        "stayed_count": 1,
        "entered": [c[2].id],
        "left": [c[0].id, c[4].id],
    }

    inside = segment_run_explain(run=run_new, customer_id=c[1].id)
    assert (inside["in_segment"], inside["rank"], inside["matches_rule"]) == (True, 1, True)
    assert inside["conditions"] == [
        {"path": "rule.all.0", "field": "engagement_score", "op": "gte", "value": 60, "actual": 70.0, "passed": True}
    ]
    below = segment_run_explain(run=run_new, customer_id=c[0].id)
    assert (below["in_segment"], below["matches_rule"]) == (False, True)
    assert below["reason"] == (
        "Matches the rule but ranks below the top 2 by revenue_minor (value 50000; the last member has 90000)."
    )
    failing = segment_run_explain(run=run_new, customer_id=c[3].id)
    assert (failing["in_segment"], failing["matches_rule"]) == (False, False)
    assert failing["conditions"][0]["passed"] is False
    assert failing["reason"] == "Does not match the rule; failed conditions: rule.all.0."
    unscored = segment_run_explain(run=run_new, customer_id=CustomerFactory().id)
    assert (unscored["scored"], unscored["in_segment"]) == (False, False)
