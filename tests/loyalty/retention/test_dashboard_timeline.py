from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from loyalty.models import RetentionOutcome, TierChange
from loyalty.retention.timeline import register_timeline_source, unregister_timeline_source
from tests.factories import TEST_PASSWORD, MembershipFactory, TierFactory, UserFactory
from tests.loyalty.retention.population import build

pytestmark = pytest.mark.django_db


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_dashboard_renders_for_a_manager_with_charts(manager):
    pop = build(n_treatment=120, n_control=120, retention_treatment=0.9, retention_control=0.8)
    response = _browser(manager).get(f"/manager/programmes/{pop.programme.pk}/impact/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Does {pop.programme.name} keep customers?" in html
    assert html.count('src="data:image/svg+xml;base64,') == 2
    assert "Kaplan-Meier" in html and "Uplift by tier" in html and "comparisons.csv" in html


def test_dashboard_prefers_the_latest_stored_report(manager, django_capture_on_commit_callbacks):
    from loyalty.retention.services.impact import impact_report_request

    pop = build(n_treatment=60, n_control=60, retention_treatment=0.9, retention_control=0.8)
    with django_capture_on_commit_callbacks(execute=True):
        report = impact_report_request(programme=pop.programme, as_of=None, horizons=[3, 6, 12])
    html = _browser(manager).get(f"/manager/programmes/{pop.programme.pk}/impact/").content.decode()
    assert f"stored report #{report.pk}" in html


@pytest.mark.parametrize("roles", [["concierge_agent"], ["partner_staff"], ["member"], []])
def test_dashboard_refuses_everyone_else(roles):
    pop = build(n_treatment=10, n_control=10, retention_treatment=0.9, retention_control=0.8)
    response = _browser(UserFactory(roles=roles)).get(f"/manager/programmes/{pop.programme.pk}/impact/")
    assert response.status_code == 403


def test_dashboard_sends_anonymous_users_to_login():
    pop = build(n_treatment=10, n_control=10, retention_treatment=0.9, retention_control=0.8)
    response = Client().get(f"/manager/programmes/{pop.programme.pk}/impact/")
    assert response.status_code == 302
    assert response["Location"] == f"/console/login/?next=/manager/programmes/{pop.programme.pk}/impact/"


def test_a_manager_who_logs_in_from_the_dashboard_lands_on_it(manager):
    pop = build(n_treatment=10, n_control=10, retention_treatment=0.9, retention_control=0.8)
    dashboard = f"/manager/programmes/{pop.programme.pk}/impact/"
    client = Client()
    response = client.post("/console/login/", {"login": manager.email, "password": TEST_PASSWORD, "next": dashboard})
    assert response.status_code == 302
    assert response["Location"] == dashboard
    assert client.get(dashboard).status_code == 200


def test_dashboard_unknown_programme_is_404(manager):
    assert _browser(manager).get("/manager/programmes/999999/impact/").status_code == 404


@pytest.fixture
def history():
    member = MembershipFactory(enrolled_at=datetime(2026, 1, 1, tzinfo=UTC))
    gold = TierFactory(programme=member.programme, name="Gold", rank=9)
    TierChange.objects.create(
        membership=member, from_tier=None, to_tier=member.tier, reason="enrolment", at=member.enrolled_at
    )
    TierChange.objects.create(
        membership=member, from_tier=member.tier, to_tier=gold, reason="upgrade", at=datetime(2026, 2, 1, tzinfo=UTC)
    )
    wrong = RetentionOutcome.objects.create(
        membership=member, observed_at=datetime(2026, 3, 1, tzinfo=UTC), outcome="churned", source="ingest"
    )
    RetentionOutcome.objects.create(
        membership=member,
        observed_at=datetime(2026, 3, 1, tzinfo=UTC),
        outcome="retained",
        source="manual",
        supersedes=wrong,
    )
    return member


def test_timeline_shows_tier_changes_outcomes_and_registered_sources(manager_api, history):
    def concierge_source(customer_id):
        return [
            {
                "at": datetime(2026, 4, 1, tzinfo=UTC),
                "kind": "concierge_request",
                "summary": "Table for two",
                "ref": "request:7",
            }
        ]

    register_timeline_source(concierge_source)
    try:
        response = manager_api.get(f"retention/customers/{history.customer_id}/timeline")
    finally:
        unregister_timeline_source(concierge_source)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["kind"] for i in items] == [
        "concierge_request",
        "outcome",
        "outcome",
        "tier_change",
        "tier_change",
        "enrolment",
    ]
    assert items[0] == {
        "at": "2026-04-01T00:00:00Z",
        "kind": "concierge_request",
        "summary": "Table for two",
        "ref": "request:7",
    }
    summaries = " | ".join(i["summary"] for i in items)
    assert "-> Gold (upgrade)" in summaries
    assert "outcome churned (ingest); superseded by outcome" in summaries
    assert "outcome retained (manual), corrects outcome" in summaries


def test_timeline_query_count_does_not_grow_with_history(manager_api, history, django_assert_num_queries):
    url = f"retention/customers/{history.customer_id}/timeline"
    # session, user, roles, customer, memberships, churn date, tier changes, outcomes,
    # concierge requests, event bookings, community nominations, attribution and ideas
    with django_assert_num_queries(13):
        manager_api.get(url)
    for day in range(5):
        TierChange.objects.create(
            membership=history,
            from_tier=history.tier,
            to_tier=history.tier,
            reason="override",
            at=datetime(2026, 5, 1, tzinfo=UTC) + timedelta(days=day),
        )
        RetentionOutcome.objects.create(
            membership=history,
            observed_at=datetime(2026, 5, 1, tzinfo=UTC) + timedelta(days=day),
            outcome="retained",
            source="ingest",
        )
    with django_assert_num_queries(13):
        assert manager_api.get(url).json()["count"] == 15


def test_timeline_for_managers_only(agent_api, history):
    assert agent_api.get(f"retention/customers/{history.customer_id}/timeline").status_code == 403


def test_a_day_zero_churn_without_follow_up_claims_nothing(manager, manager_api):
    """Everyone enrolled two hours ago, one control member churned an hour later: no horizon, no log-rank,
    no RMST, no survival chart; the report, the API and the page say what is missing and when it comes."""
    from django.utils import timezone

    from loyalty.retention.services.outcomes import outcome_record_manual

    enrolled = timezone.now() - timedelta(hours=2)
    pop = build(
        n_treatment=90,
        n_control=10,
        retention_treatment=1.0,
        retention_control=1.0,
        holdout_percent=10,
        enrolled_at=enrolled,
    )
    outcome_record_manual(membership_id=pop.control[0].pk, observed_at=enrolled + timedelta(hours=1), outcome="churned")
    report = manager_api.get(f"retention/programmes/{pop.programme.pk}/impact").json()
    ready_3 = (enrolled + timedelta(days=91)).date().isoformat()
    first = report["retention"][0]
    assert (first["months"], first["available"], first["uplift"], first["ci_low"], first["ci_high"]) == (
        3,
        False,
        None,
        None,
        None,
    )
    assert first["p_value"] is None and first["significant"] is False and first["ready_on"] == ready_3
    assert first["reason"] == (
        "All members, 3 months: no uplift shown yet; it needs at least 10 members per group followed 3 months "
        "(treatment 0, control 0) and 5 churned members in the two groups together (now 0) and 5 retained "
        f"members in the two groups together (now 0). Enough members will have been followed 3 months on {ready_3}."
    )
    assert [c["available"] for c in report["retention"]] == [False, False, False]
    survival = report["survival"]
    assert survival["logrank"] == {
        "available": False,
        "reason": survival["logrank"]["reason"],
        "chi2": None,
        "p_value": None,
        "significant": False,
        "explanation": survival["logrank"]["reason"],
        "p_adjusted": None,
        "role": "exploratory",
        "srm_warning": False,
    }
    ready_30 = (enrolled + timedelta(days=30)).date().isoformat()
    assert survival["logrank"]["reason"] == (
        "No log-rank test yet: it needs at least 10 members per group followed 30 days or more (treatment 0, "
        f"control 0) and 10 churn events (now 1). Enough members will have been followed 30 days on {ready_30}."
    )
    assert survival["rmst"]["available"] is False and survival["rmst"]["difference_days"] is None
    assert survival["chart"] == {
        "available": False,
        "reason": "No survival curve yet: the longest follow-up is 0 days and a curve needs 30. Enough members "
        f"will have been followed 30 days on {ready_30}.",
        "longest_followup_days": 0,
    }
    assert all(not r["available"] for r in report["revenue"]["cuped"])
    assert not any(h["available"] for h in report["take_up"]["by_horizon"])
    assert "significant at" not in str(report) and "days of tenure" not in str(report)

    html = _browser(manager).get(f"/manager/programmes/{pop.programme.pk}/impact/").content.decode()
    assert "significant at" not in html and "days of tenure" not in html
    assert " to </td>" not in html and "<td> to" not in html  # no empty interval
    assert 'src="data:image/svg+xml' not in html  # no chart drawn on a degenerate axis
    assert survival["chart"]["reason"] in html and survival["logrank"]["reason"] in html
    assert f"Enough members will have been followed 3 months on {ready_3}." in html


def test_dashboard_reads_in_points_with_intervals_and_p_values_below_one_in_a_thousand(manager):
    import re

    pop = build(
        n_treatment=600, n_control=600, retention_treatment=0.95, retention_control=0.75, take_up=(0.5, 0.5), seed=6
    )
    html = _browser(manager).get(f"/manager/programmes/{pop.programme.pk}/impact/").content.decode()
    assert "Final for the primary question (12-month retention)" in html
    row = re.search(r"<td>12 months</td>.*?</tr>", html, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert re.fullmatch(r"\+\d+\.\d", cells[3]) and re.fullmatch(r"[+-]\d+\.\d to [+-]\d+\.\d", cells[4])
    assert cells[5].strip() == "p &lt; 0.001" and cells[6].strip() == "primary"
    assert "p = 0.000" not in html and ">0.000<" not in html
    # The complier effect with its interval, in points.
    assert "<th>Effect on those who took it up (points)</th><th>95% CI</th>" in html
    complier = re.search(r"<tr><td>12 months</td><td>[\d.]+%</td><td>(\+\d+\.\d)</td><td>(.*?)</td></tr>", html)
    assert complier and re.fullmatch(r"\+\d+\.\d to \+\d+\.\d", complier.group(2))
