"""A segment run stores per member only the values that its scoring run's metrics do not hold (customer
attributes, influence) and reads the rest back from the metrics: every reader answers the same bytes as for a run
that stored every value (the format of runs written before `compact_values`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loyalty.models import CustomerInfluence, SegmentMember
from loyalty.segmentation.models import RunStatus, SegmentRun
from loyalty.segmentation.selectors import segment_member_list
from loyalty.segmentation.services import segments as segments_service
from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute
from tests.console.conftest import client_for
from tests.factories import CustomerFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for

RULE = {
    "all": [
        {"field": "engagement_score", "op": "gte", "value": 60},
        {
            "any": [
                {"field": "region", "op": "in", "value": ["north", "south"]},
                {"field": "age_band", "op": "eq", "value": "65+"},
            ]
        },
        {"field": "tenure_days", "op": "gte", "value": 30},
        {"field": "influence", "op": "gte", "value": 0},
        {"field": "revenue_percentile", "op": "gt", "value": 1},
    ]
}
METRICS_ONLY = {"all": [{"field": "engagement_score", "op": "gte", "value": 60}]}


@pytest.fixture
def population(db):
    """Eight customers with attributes and metrics whose floats need every digit (thirds, a long decay)."""
    run = ScoringRunFactory()
    customers = []
    for i in range(8):
        customer = CustomerFactory(
            region=["north", "south", "east", "north"][i % 4],
            birth_year=[1950, 1990, None, 1985][i % 4],
            joined_at=datetime(2020 + i % 3, 1 + i, 3, 4, 5, 6, 789000, tzinfo=UTC),
        )
        metrics_for(
            run,
            customer,
            revenue_minor=10_000 * (i % 5) + 7,
            revenue_rank=i + 1,
            revenue_percentile=100 * (i + 1) / 3,
            engagement_score=60 + i / 3,
            engagement_percentile=100 * i / 7,
            channels_used=i % 6,
            active_weeks=i,
            days_since_last=None if i == 3 else i,
            decayed_activity=1.4420318476502458 * (i + 1),
        )
        if i % 2:
            CustomerInfluence.objects.create(
                customer=customer, score=i / 3, referral_credit=0.0, computed_at=datetime(2026, 6, 1, tzinfo=UTC)
            )
        customers.append(customer)
    return run, customers


def _run(segment, scoring_run):
    run = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=scoring_run, enqueue=False).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def _run_storing_every_value(segment, scoring_run, monkeypatch):
    """A run as written before compact values: every value in the column, compact_values false."""
    with monkeypatch.context() as patch:
        patch.setattr(segments_service, "_stored_values_sql", segments_service._values_sql)
        run = _run(segment, scoring_run)
    SegmentRun.objects.filter(pk=run.pk).update(compact_values=False)
    run.refresh_from_db()
    return run


def _tbody(page: str) -> str:
    """The members table of the console's run page."""
    return page[page.index('<table class="members">') : page.index("</table>", page.index('<table class="members">'))]


def _stored(run) -> list[dict]:
    return list(SegmentMember.objects.filter(run=run).order_by("rank").values_list("stored_values", flat=True))


@pytest.mark.django_db
def test_a_run_stores_only_what_its_scoring_run_does_not_hold(population):
    scoring_run, customers = population
    run = _run(segment_create(name="metrics only", rule=METRICS_ONLY, top_n=5, top_by="revenue_minor"), scoring_run)
    assert run.compact_values
    assert _stored(run) == [{}] * 5
    assert [m.values for m in segment_member_list(run=run)][0] == {
        "revenue_minor": 40_007,
        # As the database's JSON writes the double: SQLite with 15 digits, PostgreSQL's jsonb every digit.
        "engagement_score": 61.3333333333333 if connection.vendor == "sqlite" else 61.333333333333336,
    }

    run = _run(segment_create(name="attributes", rule=RULE, top_n=4, top_by="revenue_percentile"), scoring_run)
    by_customer = {c.id: c for c in customers}
    members = list(segment_member_list(run=run))
    assert [set(values) for values in _stored(run)] == [{"region", "birth_year", "joined_at", "influence"}] * 4
    for member, stored in zip(members, _stored(run), strict=True):
        customer = by_customer[member.customer_id]
        assert {k: member.values[k] for k in stored} == stored
        assert (stored["region"], stored["birth_year"]) == (customer.region, customer.birth_year)
        assert set(member.values) == {
            "revenue_minor",
            "engagement_score",
            "region",
            "birth_year",
            "joined_at",
            "influence",
            "revenue_percentile",
        }


@pytest.mark.django_db
def test_every_reader_answers_the_same_bytes_as_for_a_run_that_stored_every_value(
    population, manager, manager_api, monkeypatch
):
    scoring_run, customers = population
    segment = segment_create(
        name="attributes", rule=RULE, top_n=3, top_by="revenue_percentile", tie_break="decayed_activity"
    )
    compact = _run(segment, scoring_run)
    stored = _run_storing_every_value(segment, scoring_run, monkeypatch)
    assert (compact.compact_values, stored.compact_values) == (True, False)
    assert stored.member_count == compact.member_count == 3
    assert all(len(values) == 8 for values in _stored(stored))  # every value in the column

    def answers(run) -> dict:
        api = f"segments/runs/{run.pk}"
        csv = manager_api.get(f"{api}/members.csv")
        console_csv = client_for(manager).get(f"/console/manager/runs/{run.pk}/members.csv")
        result = {
            "members": manager_api.get(f"{api}/members", {"limit": 2}).content,
            "members_page_2": manager_api.get(f"{api}/members", {"limit": 2, "offset": 2}).content,
            "csv": b"".join(csv.streaming_content),
            "console_csv": b"".join(console_csv.streaming_content),
            "console_members": _tbody(
                client_for(manager).get(f"/console/manager/runs/{run.pk}/").content.decode()
            ).replace(f"/runs/{run.pk}/", "/runs/RUN/"),
        }
        for customer in customers:
            explain = manager_api.get(f"{api}/explain", {"customer": customer.id})
            assert explain.status_code == 200
            result[f"explain {customer.id}"] = explain.content.replace(f'"run_id": {run.pk}'.encode(), b"")
        return result

    before, after = answers(stored), answers(compact)
    assert after == before
    assert b"ranks below the top 3" in b"".join(v for k, v in before.items() if k.startswith("explain"))


@pytest.mark.django_db
def test_attribute_values_stay_those_of_the_run_when_the_customer_changes(population):
    scoring_run, customers = population
    run = _run(segment_create(name="attributes", rule=RULE, top_n=3, top_by="revenue_percentile"), scoring_run)
    first = segment_member_list(run=run).first()
    region, birth_year = first.values["region"], first.values["birth_year"]
    CustomerInfluence.objects.filter(customer_id=first.customer_id).delete()
    type(first.customer).objects.filter(pk=first.customer_id).update(region="west", birth_year=2001)
    again = segment_member_list(run=run).first()
    assert (again.values["region"], again.values["birth_year"]) == (region, birth_year)
    assert again.values == first.values


@pytest.mark.django_db
def test_candidates_are_counted_only_when_the_top_n_is_full(population):
    scoring_run, _ = population

    def run_counting(top_n):
        segment = segment_create(name=f"top {top_n}", rule=METRICS_ONLY, top_n=top_n, top_by="revenue_minor")
        with CaptureQueriesContext(connection) as queries:
            run = _run(segment, scoring_run)
        counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*) FROM")]
        return run, counts

    run, counts = run_counting(20)  # 8 candidates: all are members
    assert (run.candidates_count, run.member_count, counts) == (8, 8, [])
    run, counts = run_counting(8)  # the top N is full: there may be more candidates
    assert (run.candidates_count, run.member_count, len(counts)) == (8, 8, 1)
    run, counts = run_counting(3)
    assert (run.candidates_count, run.member_count, len(counts)) == (8, 3, 1)
