"""The impact report on synthetic populations with a known truth."""

from __future__ import annotations

import csv
import io
import math
import statistics
from datetime import timedelta
from decimal import Decimal

import pytest

from loyalty.models import (
    Customer,
    CustomerMetrics,
    ImpactReport,
    Membership,
    RetentionOutcome,
    ScoringModel,
    ScoringRun,
)
from loyalty.retention.services.impact import Minimums, Z, impact_report_compute
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory, TierFactory
from tests.loyalty.retention.population import AS_OF, ENROLLED, add_revenue, build, refresh_revenue_rollup

pytestmark = pytest.mark.django_db

TRUTH = 0.86 - 0.80


def _at(report: dict, months: int) -> dict:
    return next(c for c in report["retention"] if c["months"] == months)


def test_known_effect_is_inside_the_confidence_interval():
    pop = build(n_treatment=1500, n_control=1500, retention_treatment=0.86, retention_control=0.80, seed=11)
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    c12 = _at(report, 12)
    churned_t = RetentionOutcome.objects.filter(membership__group="treatment", membership__programme=pop.programme)
    churned_c = RetentionOutcome.objects.filter(membership__group="control", membership__programme=pop.programme)
    retained_t = 1500 - churned_t.count()
    assert c12["treatment"] == {"n": 1500, "retained": retained_t, "rate": pytest.approx(retained_t / 1500, abs=1e-6)}
    assert c12["control"]["retained"] == 1500 - churned_c.count()
    assert c12["uplift"] == pytest.approx(c12["treatment"]["rate"] - c12["control"]["rate"], abs=2e-6)
    assert c12["ci_low"] < TRUTH < c12["ci_high"]
    assert c12["ci_low"] > 0 and c12["significant"] is True and c12["p_value"] < 0.05
    churn_t, churn_c = 1 - c12["treatment"]["rate"], 1 - c12["control"]["rate"]
    assert c12["relative_churn_reduction"] == pytest.approx((churn_c - churn_t) / churn_c, abs=1e-5)
    assert "significant at the 5% level" in c12["explanation"] and "1500 treatment members" in c12["explanation"]
    # Survival: curves, log-rank and the RMST gain agree on the direction.
    assert report["survival"]["logrank"]["significant"] is True
    rmst = report["survival"]["rmst"]
    assert rmst["difference_days"] > 0 and rmst["ci_low"] < rmst["difference_days"] < rmst["ci_high"]
    assert report["srm"]["overall"]["mismatch"] is False


def test_no_effect_interval_covers_zero():
    pop = build(n_treatment=1500, n_control=1500, retention_treatment=0.80, retention_control=0.80, seed=5)
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    for comparison in report["retention"]:
        assert comparison["ci_low"] <= 0 <= comparison["ci_high"]
        assert comparison["significant"] is False


def test_kaplan_meier_matches_a_hand_computed_example():
    programme = ProgrammeFactory(holdout_percent=50)
    tier = TierFactory(programme=programme)
    start = AS_OF - timedelta(days=100)

    def member(group="treatment", enrolled=start, churn_day=None):
        m = (
            MembershipFactory(programme=programme, tier=tier, enrolled_at=enrolled)
            if group == "treatment"
            else (MembershipFactory(programme=programme, control=True, shadow_tier=tier, enrolled_at=enrolled))
        )
        if churn_day is not None:
            RetentionOutcome.objects.create(
                membership=m, observed_at=enrolled + timedelta(days=churn_day), outcome="churned", source="ingest"
            )

    # Treatment: churn at 10, 20, 20; censored at 15 (enrolled 15 days ago, still active) and at 100 (twice).
    member(churn_day=10)
    member(churn_day=20)
    member(churn_day=20)
    member(enrolled=AS_OF - timedelta(days=15))
    member()
    member()
    # Control: one churn at day 50 among four.
    member("control", churn_day=50)
    for _ in range(3):
        member("control")
    survival = impact_report_compute(programme=programme, as_of=AS_OF)["survival"]
    treatment = next(c for c in survival["curves"] if c["group"] == "treatment")
    steps = {p["day"]: (p["at_risk"], p["events"], p["censored"], p["survival"]) for p in treatment["points"]}
    # S(10) = 5/6; S(20) = 5/6 * (1 - 2/4); at risk at 20 is 4 (one churned, one censored at 15 before).
    assert steps[10] == (6, 1, 0, pytest.approx(5 / 6, abs=1e-6))
    assert steps[15] == (5, 0, 1, pytest.approx(5 / 6, abs=1e-6))
    assert steps[20] == (4, 2, 0, pytest.approx(5 / 12, abs=1e-6))
    assert steps[100] == (2, 0, 2, pytest.approx(5 / 12, abs=1e-6))
    control = next(c for c in survival["curves"] if c["group"] == "control")
    assert {p["day"]: p["survival"] for p in control["points"]}[50] == pytest.approx(0.75)
    # Six and four members followed 100 days at most: too few for RMST, which says why and when.
    assert survival["rmst"]["available"] is False and survival["rmst"]["treatment"] is None
    assert survival["rmst"]["reason"] == (
        "No restricted mean survival time yet: it needs at least 10 churn events (now 4) and 10 members per group "
        "followed the whole 365 days (treatment 0, control 0). Not before more members are enrolled in both groups."
    )
    # Without minimums: RMST to 365 days, curve carried flat after the last observation: 10*1 + 10*5/6 + 345*5/12.
    none = Minimums(members_per_group=0, churned=0, retained=0, survival_events=0, followup_days=0)
    survival = impact_report_compute(programme=programme, as_of=AS_OF, minimums=none)["survival"]
    assert survival["rmst"]["treatment"] == pytest.approx(10 + 10 * 5 / 6 + 345 * 5 / 12, abs=0.01)
    assert survival["rmst"]["control"] == pytest.approx(50 + 315 * 0.75, abs=0.01)
    assert {r["day"]: (r["treatment"], r["control"]) for r in survival["at_risk"]}[30] == (2, 4)


def test_self_selected_take_up_itt_stays_true_while_naive_comparison_is_far_off():
    # Those who would stay anyway use the programme far more (60%) than those who would leave (5%).
    pop = build(
        n_treatment=1500, n_control=1500, retention_treatment=0.86, retention_control=0.80, take_up=(0.6, 0.05), seed=3
    )
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    itt = _at(report, 12)
    take_up = next(h for h in report["take_up"]["by_horizon"] if h["months"] == 12)
    # Intention to treat: near the truth, the interval covers it.
    assert itt["ci_low"] < TRUTH < itt["ci_high"]
    assert abs(itt["uplift"] - TRUTH) < 0.03
    # The naive users-versus-non-users difference is several times the true effect.
    assert take_up["naive_difference"] > 0.2
    assert take_up["naive_difference"] > 3 * TRUTH
    naive_users = take_up["naive_users_rate"]
    assert naive_users > 0.97 and take_up["naive_non_users_rate"] < 0.78
    # CACE = ITT / take-up.
    assert take_up["cace"] == pytest.approx(itt["uplift"] / take_up["take_up"], abs=1e-5)
    assert report["take_up"]["took_up"] == pytest.approx(0.55 * 1500, rel=0.1)
    assert report["take_up"]["control_with_programme_use"] == 0
    assert "overstates the effect" in take_up["explanation"]


def test_superseded_outcomes_are_not_double_counted():
    programme = ProgrammeFactory(holdout_percent=50)
    tier = TierFactory(programme=programme)
    m1 = MembershipFactory(programme=programme, tier=tier, enrolled_at=ENROLLED)
    m2 = MembershipFactory(programme=programme, tier=tier, enrolled_at=ENROLLED)
    MembershipFactory(programme=programme, control=True, shadow_tier=tier, enrolled_at=ENROLLED)
    # m1: a churn recorded by mistake, corrected to retained (and that correction corrected once more).
    wrong = RetentionOutcome.objects.create(
        membership=m1, observed_at=ENROLLED + timedelta(days=60), outcome="churned", source="ingest"
    )
    fix = RetentionOutcome.objects.create(
        membership=m1,
        observed_at=ENROLLED + timedelta(days=60),
        outcome="downgraded_plan",
        source="manual",
        supersedes=wrong,
    )
    RetentionOutcome.objects.create(
        membership=m1, observed_at=ENROLLED + timedelta(days=60), outcome="retained", source="manual", supersedes=fix
    )
    # m2: retained at 3 months, churned at 8 months: two facts, one member.
    RetentionOutcome.objects.create(
        membership=m2, observed_at=ENROLLED + timedelta(days=91), outcome="retained", source="ingest"
    )
    RetentionOutcome.objects.create(
        membership=m2, observed_at=ENROLLED + timedelta(days=240), outcome="churned", source="ingest"
    )
    report = impact_report_compute(programme=programme, as_of=AS_OF)
    assert report["groups"]["treatment"] == 2
    by_months = {c["months"]: c["treatment"] for c in report["retention"]}
    assert by_months[3] == {"n": 2, "retained": 2, "rate": 1.0}
    assert by_months[6] == {"n": 2, "retained": 2, "rate": 1.0}
    assert by_months[12] == {"n": 2, "retained": 1, "rate": 0.5}
    treatment_curve = next(c for c in report["survival"]["curves"] if c["group"] == "treatment")
    assert treatment_curve["n"] == 2 and treatment_curve["events"] == 1


def test_members_enrolled_less_than_the_horizon_ago_are_excluded_from_it():
    programme = ProgrammeFactory(holdout_percent=50)
    tier = TierFactory(programme=programme)
    old, recent = AS_OF - timedelta(days=400), AS_OF - timedelta(days=100)
    for enrolled, n in ((old, 3), (recent, 4)):
        for _ in range(n):
            MembershipFactory(programme=programme, tier=tier, enrolled_at=enrolled)
            MembershipFactory(programme=programme, control=True, shadow_tier=tier, enrolled_at=enrolled)
    # A recent member who churned early must not count at 6 months either (it would bias the rate down).
    early = MembershipFactory(programme=programme, tier=tier, enrolled_at=recent)
    RetentionOutcome.objects.create(
        membership=early, observed_at=recent + timedelta(days=20), outcome="churned", source="ingest"
    )
    # Enrolled after the report date: not in the report at all.
    MembershipFactory(programme=programme, tier=tier, enrolled_at=AS_OF + timedelta(days=1))
    report = impact_report_compute(programme=programme, as_of=AS_OF)
    assert report["groups"]["treatment"] == 8 and report["groups"]["control"] == 7
    n = {c["months"]: (c["treatment"]["n"], c["control"]["n"], c["not_evaluable"]) for c in report["retention"]}
    assert n == {3: (8, 7, 0), 6: (3, 3, 9), 12: (3, 3, 9)}
    assert _at(report, 3)["treatment"]["retained"] == 7
    cohorts = {k["cohort"]: k["horizons"][2]["treatment"]["n"] for k in report["by_cohort"]}
    assert cohorts == {old.strftime("%Y-%m"): 3, recent.strftime("%Y-%m"): 0}


def test_sample_ratio_mismatch_is_flagged():
    pop = build(n_treatment=500, n_control=500, retention_treatment=0.9, retention_control=0.9, holdout_percent=10)
    srm = impact_report_compute(programme=pop.programme, as_of=AS_OF)["srm"]
    assert srm["overall"]["expected_control"] == 100.0
    assert srm["overall"]["mismatch"] is True and srm["overall"]["p_value"] < 0.001
    assert [(s["tier_name"], s["treatment"], s["control"], s["mismatch"]) for s in srm["by_tier"]] == [
        ("Silver", 250, 250, True),
        ("Gold", 250, 250, True),
    ]


def test_per_tier_uses_the_shadow_tier_for_control():
    pop = build(n_treatment=400, n_control=400, retention_treatment=0.86, retention_control=0.80, seed=2)
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    assert [t["tier_name"] for t in report["by_tier"]] == ["Silver", "Gold"]
    for tier in report["by_tier"]:
        assert tier["horizons"][2]["treatment"]["n"] == 200 and tier["horizons"][2]["control"]["n"] == 200
    total = sum(t["horizons"][2]["treatment"]["retained"] for t in report["by_tier"])
    assert total == _at(report, 12)["treatment"]["retained"]


def test_cuped_adjustment_narrows_the_revenue_interval_around_the_truth():
    import random

    pop = build(n_treatment=300, n_control=300, retention_treatment=1.0, retention_control=1.0, seed=9)
    rng = random.Random(1)
    pre = {m.customer_id: Decimal(rng.randint(20, 400)) for m in pop.treatment + pop.control}
    add_revenue(pop, pre=pre, post_uplift=Decimal(5), months_after=6)
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    cuped = next(c for c in report["revenue"]["cuped"] if c["months"] == 6)
    truth = 6 * 5
    raw, adjusted = cuped["raw"], cuped["adjusted"]
    assert adjusted["ci_low"] < truth < adjusted["ci_high"]
    assert adjusted["ci_high"] - adjusted["ci_low"] < (raw["ci_high"] - raw["ci_low"]) / 5
    assert cuped["variance_reduction"] > 0.95
    assert cuped["treatment_n"] == cuped["control_n"] == 300
    month1 = report["revenue"]["over_time"][0]
    expected = statistics.mean(float(pre[m.customer_id]) for m in pop.treatment) + 5
    assert month1["month"] == 1 and month1["treatment_per_customer"] == pytest.approx(expected, abs=0.01)
    assert month1["treatment_n"] == 300


def _metrics(run, customer_id, score):
    return CustomerMetrics(
        scoring_run=run,
        customer_id=customer_id,
        revenue_minor=0,
        revenue_rank=1,
        revenue_percentile=50,
        engagement_score=score,
        engagement_percentile=50,
        channels_used=1,
        active_weeks=1,
    )


def test_engagement_bands_come_from_the_scoring_run_the_enrolment_used_never_a_later_one():
    from loyalty.models import Segment, SegmentRun

    pop = build(n_treatment=200, n_control=200, retention_treatment=0.9, retention_control=0.8, seed=4)
    model = ScoringModel.objects.create(name="default")
    at_enrolment = ScoringRun.objects.create(
        scoring_model=model, as_of=ENROLLED - timedelta(days=5), status="succeeded"
    )
    segment_run_source = ScoringRun.objects.create(
        scoring_model=model, as_of=ENROLLED - timedelta(days=40), status="succeeded"
    )
    later = ScoringRun.objects.create(scoring_model=model, as_of=AS_OF - timedelta(days=1), status="succeeded")
    members = pop.treatment + pop.control
    rows = []
    for i, m in enumerate(members):
        # At enrolment: alternately 10 and 90; after it everybody scores 50 (post-treatment, must not be used).
        rows += [_metrics(at_enrolment, m.customer_id, 10.0 if i % 2 else 90.0), _metrics(later, m.customer_id, 50.0)]
        rows.append(_metrics(segment_run_source, m.customer_id, 30.0))
    CustomerMetrics.objects.bulk_create(rows)
    # The first 20 treatment members were enrolled from a segment run that used an older scoring run.
    run = SegmentRun.objects.create(segment=Segment.objects.create(name="top"), scoring_run=segment_run_source)
    Membership.objects.filter(pk__in=[m.pk for m in pop.treatment[:20]]).update(source_run=run)
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    engagement = report["engagement"]
    assert engagement["scoring_run_ids"] == sorted([at_enrolment.pk, segment_run_source.pk])
    bands = {b["band"]: b for b in engagement["bands"]}
    assert set(bands) == {"0-20", "20-40", "80-100"}
    assert {k: (b["srm"]["treatment"], b["srm"]["control"]) for k, b in bands.items()} == {
        "0-20": (90, 100),
        "20-40": (20, 0),
        "80-100": (90, 100),
    }
    assert "never a later one" in engagement["explanation"]
    # A band of treatment members only fails its own split check: shown as untrustworthy, not as an effect.
    only_treatment = bands["20-40"]
    assert only_treatment["srm"]["mismatch"] is True
    for c in only_treatment["horizons"]:
        assert c["role"] == "untrustworthy" and c["uplift"] is None and c["significant"] is False
        assert "fails its sample-ratio check" in c["explanation"]


def test_report_api_for_managers_only(manager_api, agent_api):
    pop = build(n_treatment=100, n_control=100, retention_treatment=0.9, retention_control=0.8)
    response = manager_api.get(
        f"retention/programmes/{pop.programme.pk}/impact?as_of=2025-03-01T00:00:00Z&horizons=3&horizons=12"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["horizons"] == [3, 12] and body["groups"]["treatment"] == 100
    assert [c["months"] for c in body["retention"]] == [3, 12]
    assert agent_api.get(f"retention/programmes/{pop.programme.pk}/impact").status_code == 403
    assert manager_api.get("retention/programmes/999999/impact").status_code == 404
    bad = manager_api.get(f"retention/programmes/{pop.programme.pk}/impact?horizons=0")
    assert bad.status_code == 422 and bad.json()["fields"] == {"horizons": ["1 to 60 months."]}


def test_stored_report_runs_in_celery_and_is_idempotent(manager_api, django_capture_on_commit_callbacks):
    pop = build(n_treatment=200, n_control=200, retention_treatment=0.9, retention_control=0.8)
    payload = {"as_of": "2025-03-01T00:00:00Z", "horizons": [6, 12]}
    with django_capture_on_commit_callbacks(execute=True):
        first = manager_api.post(
            f"retention/programmes/{pop.programme.pk}/impact-reports", payload, headers={"Idempotency-Key": "r1"}
        )
    assert first.status_code == 202, first.content
    retry = manager_api.post(
        f"retention/programmes/{pop.programme.pk}/impact-reports", payload, headers={"Idempotency-Key": "r1"}
    )
    assert retry.json()["id"] == first.json()["id"] and ImpactReport.objects.count() == 1
    stored = manager_api.get(f"retention/impact-reports/{first.json()['id']}").json()
    assert stored["status"] == "succeeded" and stored["progress"] == 100
    assert stored["result"]["horizons"] == [6, 12] and stored["result"]["groups"]["control"] == 200
    # Running the task again changes nothing.
    from loyalty.retention.tasks import impact_report_run

    impact_report_run(first.json()["id"])
    assert ImpactReport.objects.get().status == "succeeded"
    csv_response = manager_api.get(
        f"retention/programmes/{pop.programme.pk}/impact/export.csv?table=srm&report_id={stored['id']}"
    )
    assert csv_response.status_code == 200
    assert list(csv.reader(io.StringIO(csv_response.content.decode())))[1][:3] == ["All members", "200", "200"]


def test_pending_report_cannot_be_exported(manager_api):
    programme = ProgrammeFactory()
    report = ImpactReport.objects.create(programme=programme, as_of=AS_OF, horizons=[12])
    response = manager_api.get(f"retention/programmes/{programme.pk}/impact/export.csv?report_id={report.pk}")
    assert response.status_code == 409 and response.json()["code"] == "report_not_ready"
    other = ProgrammeFactory()
    assert (
        manager_api.get(f"retention/programmes/{other.pk}/impact/export.csv?report_id={report.pk}").status_code == 404
    )


def test_charts_are_svg_and_csv_tables_export(manager_api, agent_api):
    pop = build(n_treatment=150, n_control=150, retention_treatment=0.9, retention_control=0.8)
    base = f"retention/programmes/{pop.programme.pk}/impact"
    for chart in ("survival", "uplift-by-tier"):
        response = manager_api.get(f"{base}/charts/{chart}.svg?as_of=2025-03-01T00:00:00Z")
        assert response.status_code == 200
        assert response["Content-Type"] == "image/svg+xml"
        assert b"<svg" in response.content
    assert manager_api.get(f"{base}/charts/uplift-by-tier.svg?months=6").status_code == 200
    assert agent_api.get(f"{base}/charts/survival.svg").status_code == 403
    exported = manager_api.get(f"{base}/export.csv?table=comparisons&as_of=2025-03-01T00:00:00Z")
    assert exported.status_code == 200 and exported["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0][:4] == ["scope", "key", "months", "treatment_n"]
    assert [r[:3] for r in rows[1:4]] == [["overall", "all", "3"], ["overall", "all", "6"], ["overall", "all", "12"]]
    assert {r[0] for r in rows[1:]} == {"overall", "tier", "cohort", "engagement_band", "age_band", "region"}


def test_formula_like_names_are_neutralised_in_csv(manager_api):
    programme = ProgrammeFactory(holdout_percent=50)
    tier = TierFactory(programme=programme, name="=HYPERLINK(1)")
    MembershipFactory(programme=programme, tier=tier, enrolled_at=ENROLLED)
    MembershipFactory(programme=programme, control=True, shadow_tier=tier, enrolled_at=ENROLLED)
    exported = manager_api.get(f"retention/programmes/{programme.pk}/impact/export.csv?table=comparisons")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert {r[1] for r in rows if r[0] == "tier"} == {"'=HYPERLINK(1)"}


def test_customer_churn_without_outcome_counts_as_churn():
    programme = ProgrammeFactory(holdout_percent=50)
    tier = TierFactory(programme=programme)
    customer = CustomerFactory()
    MembershipFactory(programme=programme, tier=tier, customer=customer, enrolled_at=ENROLLED)
    Customer.objects.filter(pk=customer.pk).update(status="churned", churned_at=ENROLLED + timedelta(days=30))
    report = impact_report_compute(programme=programme, as_of=AS_OF)
    assert _at(report, 3)["treatment"] == {"n": 1, "retained": 0, "rate": 0.0}


@pytest.mark.parametrize("as_of", ["0001-01-02T00:00:00Z", "2025-03-01T00:00:00", "9999-12-30T00:00:00Z"])
def test_report_and_charts_survive_empty_or_extreme_dates(manager_api, as_of):
    pop = build(n_treatment=20, n_control=0, retention_treatment=0.5, retention_control=0.5, holdout_percent=0)
    base = f"retention/programmes/{pop.programme.pk}/impact"
    from urllib.parse import quote

    q = quote(as_of)
    report = manager_api.get(f"{base}?as_of={q}&horizons=60")
    assert report.status_code == 200, report.content
    for chart in ("survival", "uplift-by-tier"):
        assert manager_api.get(f"{base}/charts/{chart}.svg?as_of={q}").status_code == 200
    for table in ("comparisons", "srm", "take_up", "survival", "revenue", "cuped"):
        assert manager_api.get(f"{base}/export.csv?table={table}&as_of={q}").status_code == 200


# --- statistics that cannot mislead (issue 19) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10 (hybrid score).
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
        ((10, 10, 0, 20), (0.6791, 1.0000)),
    ],
)
def test_newcombe_hybrid_score_interval_matches_the_published_worked_examples(counts, expected):
    from loyalty.retention.services.impact import newcombe_interval

    x_t, n_t, x_c, n_c = counts
    low, high = newcombe_interval(n_t=n_t, x_t=x_t, n_c=n_c, x_c=x_c)
    assert (round(low, 4), round(high, 4)) == expected


def test_p_value_and_interval_never_disagree_and_full_retention_is_not_a_zero_width_interval():
    from loyalty.retention.services.impact import proportion_difference

    for x_t, x_c in [(1020, 1000), (1025, 1000), (1030, 1000), (1040, 1000), (1000, 1000), (1100, 1000)]:
        r = proportion_difference(n_t=1200, x_t=x_t, n_c=1200, x_c=x_c)
        assert (r["p_value"] < 0.05) == (r["ci_low"] > 0 or r["ci_high"] < 0), (x_t, r)
    # The example: +1.1 points with an interval touching 0 must not be significant.
    r = proportion_difference(n_t=10, x_t=10, n_c=10, x_c=10)
    assert r["difference"] == 0 and r["p_value"] == 1.0
    assert (round(r["ci_low"], 4), round(r["ci_high"], 4)) == (-0.2775, 0.2775)


def test_p_values_read_as_less_than_one_in_a_thousand_and_relative_churn_says_higher_or_lower():
    from loyalty.retention.services.impact import compare_retention, p_format

    assert [p_format(p) for p in (0.0, 1e-9, 0.00099, 0.0386, 0.04996, 0.0502, 0.2)] == [
        "p < 0.001",
        "p < 0.001",
        "p < 0.001",
        "p = 0.039",
        "p = 0.04996",
        "p = 0.0502",
        "p = 0.20",
    ]
    worse = compare_retention(months=12, n_t=1000, churned_t=220, n_c=1000, churned_c=200, label="All members")
    assert "Treatment churned 10% higher than control, relative to control's churn." in worse["explanation"]
    assert "-10%" not in worse["explanation"] and "p = 0" not in worse["explanation"].replace("p = 0.", "")


def test_lost_control_churners_fail_the_split_and_no_line_claims_significance():
    pop = build(n_treatment=900, n_control=900, retention_treatment=0.80, retention_control=0.80, seed=21)
    # The feed lost every control customer who churned: only the stayers remain in control.
    churned = RetentionOutcome.objects.filter(membership__in=pop.control, outcome="churned")
    lost = list(churned.values_list("membership_id", flat=True))
    churned.delete()
    Membership.objects.filter(pk__in=lost).delete()
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    assert report["srm"]["overall"]["mismatch"] is True
    assert report["decision"]["srm_failed"] is True
    c12 = _at(report, 12)
    assert c12["uplift"] < -0.1  # the naive figure looks like a large harm...
    assert c12["significant"] is False and c12["srm_warning"] is True  # ...but it claims nothing
    effects = [
        *report["retention"],
        *[c for s in report["by_tier"] + report["by_cohort"] + report["engagement"]["bands"] for c in s["horizons"]],
        report["survival"]["logrank"],
        report["survival"]["rmst"],
        *report["take_up"]["by_horizon"],
    ]
    for e in effects:
        assert e["explanation"].startswith("Warning: sample-ratio mismatch"), e["explanation"]
        assert e.get("significant", False) is False
        assert ", significant" not in e["explanation"]
    assert report["decision"]["explanation"].startswith("Not trustworthy")


def test_one_primary_question_the_rest_exploratory_and_adjusted():
    pop = build(n_treatment=1500, n_control=1500, retention_treatment=0.86, retention_control=0.80, seed=11)
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    decision = report["decision"]
    assert (decision["primary_metric"], decision["primary_months"], decision["interim"]) == ("retention", 12, False)
    primary = _at(report, 12)
    assert primary["role"] == "primary" and primary["significant"] is True
    assert "the programme's primary question: 12-month retention, confirmatory" in primary["explanation"]
    exploratory = [c for c in report["retention"] if c["months"] != 12]
    exploratory += [c for t in report["by_tier"] for c in t["horizons"]]
    assert {c["role"] for c in exploratory} == {"exploratory"}
    for c in exploratory:
        assert c["p_adjusted"] >= c["p_value"]
        assert c["significant"] == (c["p_adjusted"] < 0.05)
        assert "Benjamini-Hochberg" in c["explanation"]
    breakdowns = report["by_cohort"] + report["by_age"] + report["by_region"] + report["engagement"]["bands"]
    others = [c for b in breakdowns for c in b["horizons"]]
    others += [report["survival"]["logrank"], report["survival"]["rmst"]]
    others += [r["adjusted"] for r in report["revenue"]["cuped"] if r.get("adjusted")]
    assert decision["exploratory_comparisons"] == len(exploratory) + sum(1 for c in others if c["p_value"] is not None)


def test_a_different_primary_horizon_is_answered_and_labelled():
    programme = ProgrammeFactory(holdout_percent=50, primary_horizon_months=9)
    pop = build(
        n_treatment=600, n_control=600, retention_treatment=0.86, retention_control=0.80, seed=8, programme=programme
    )
    report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    assert report["horizons"] == [3, 6, 9, 12]
    assert [c["role"] for c in report["retention"]] == ["exploratory", "exploratory", "primary", "exploratory"]


def test_before_the_primary_horizon_the_report_is_interim_and_claims_nothing():
    pop = build(n_treatment=1500, n_control=1500, retention_treatment=0.70, retention_control=0.50, seed=12)
    as_of = ENROLLED + timedelta(days=200)  # the 3- and 6-month horizons have data, 12 months is not reached
    report = impact_report_compute(programme=pop.programme, as_of=as_of)
    decision = report["decision"]
    assert decision["interim"] is True and decision["looks"] == "interim_not_a_decision"
    assert decision["decision_day"] == (ENROLLED + timedelta(days=365)).date().isoformat()
    assert decision["explanation"].startswith("Interim look: not every member has reached the primary horizon")
    c6 = _at(report, 6)
    assert c6["available"] is True and c6["p_value"] < 0.001 and c6["significant"] is False
    assert "interim look, not a decision: nothing is called significant before" in c6["explanation"]
    assert report["survival"]["logrank"]["significant"] is False


def test_cuped_covariate_leaves_out_the_enrolment_months_bill():
    import random

    pop = build(n_treatment=300, n_control=300, retention_treatment=1.0, retention_control=1.0, seed=9)
    rng = random.Random(1)
    pre = {m.customer_id: Decimal(rng.randint(20, 400)) for m in pop.treatment + pop.control}
    add_revenue(pop, pre=pre, post_uplift=Decimal(5), months_after=6)
    # The enrolment month's bill, dated the 1st (before the enrolment on the 10th), covers days after enrolment.
    from loyalty.models import RevenueEntry

    bills = RevenueEntry.objects.bulk_create(
        RevenueEntry(
            customer_id=m.customer_id,
            period=ENROLLED.date().replace(day=1),
            amount=pre[m.customer_id] + (5 if m.group == "treatment" else 0),
            external_id=f"r-{m.pk}-enrolment-month",
        )
        for m in pop.treatment + pop.control
    )
    refresh_revenue_rollup(bills)
    cuped = next(
        c for c in impact_report_compute(programme=pop.programme, as_of=AS_OF)["revenue"]["cuped"] if c["months"] == 6
    )
    adjusted = cuped["adjusted"]
    assert adjusted["ci_low"] < 6 * 5 < adjusted["ci_high"]
    assert abs(adjusted["difference"] - 30) < 0.5


def test_complier_effect_interval_carries_the_take_up_uncertainty():
    from loyalty.retention.services.impact import complier_effect

    r = complier_effect(itt=0.04, itt_ci=(0.02, 0.06), took_up=200, eligible=500)
    assert r["estimate"] == pytest.approx(0.1)
    # Scaled ITT interval would be [0.05, 0.15]; the take-up's own variance widens it.
    assert r["ci_low"] < 0.05 and r["ci_high"] > 0.15
    se = math.sqrt((0.02 / Z) ** 2 / 0.4**2 + 0.04**2 * (0.4 * 0.6 / 500) / 0.4**4)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(0.1 - Z * se, abs=1e-6), pytest.approx(0.1 + Z * se, abs=1e-6))


def test_a_programme_simulated_through_ingestion_and_enrolment_reads_true():
    from tests.loyalty.retention.simulate import headline, simulate_programme

    sim = simulate_programme(customers=400, effect=0.15, seed=3, take_up=0.6)
    report = impact_report_compute(programme=sim.programme, as_of=sim.end)
    assert report["groups"]["treatment"] + report["groups"]["control"] == 400
    assert report["srm"]["overall"]["mismatch"] is False and report["decision"]["interim"] is False
    figures = headline(report, sim)
    assert set(figures) == {
        *(f"ITT uplift {m} months" for m in (3, 6, 12)),
        *(f"Complier effect {m} months" for m in (3, 6, 12)),
    }
    for estimate, low, high, truth in figures.values():
        assert low < truth < high and low < estimate < high
    # Baseline bands come from the scoring run the enrolment used, whatever ran later.
    assert len(report["engagement"]["scoring_run_ids"]) == 1
    assert all(b["srm"]["mismatch"] is False for b in report["engagement"]["bands"])
    # CUPED's covariate is the twelve bills before the enrolment month: the adjustment removes nearly all variance.
    assert all(r["variance_reduction"] > 0.5 for r in report["revenue"]["cuped"] if r["available"])
    take_up = next(h for h in report["take_up"]["by_horizon"] if h["months"] == 12)
    assert take_up["cace_ci_low"] < take_up["cace"] < take_up["cace_ci_high"]


@pytest.mark.parametrize(("seed", "effect"), [(21, 0.0), (22, 0.15)])
def test_the_database_free_replica_of_the_simulation_gives_the_pipelines_primary_counts(seed, effect):
    """bench/impact_truth.py --replica measures the primary test's false-positive rate over many seeds with this
    replica; it is only worth that if it equals what ingestion, enrolment, the churn feed and the report give."""
    from tests.loyalty.retention.simulate import primary_counts_replica, simulate_programme

    sim = simulate_programme(customers=80, effect=effect, seed=seed)
    report = impact_report_compute(programme=sim.programme, as_of=sim.end)
    primary = next(c for c in report["retention"] if c.get("role") == "primary")
    reported = [primary[g][k] for g in ("treatment", "control") for k in ("n", "retained")]
    ids = list(Membership.objects.filter(programme=sim.programme).values_list("customer_id", flat=True))
    assert primary_counts_replica(seed=seed, customer_ids=ids, effect=effect) == reported
    assert reported[0] + reported[2] == 80


def test_region_and_age_breakdowns_use_the_snapshot_taken_at_enrolment():
    from tests.loyalty.retention.simulate import simulate_programme

    sim = simulate_programme(customers=80, effect=0.0, seed=21)
    memberships = list(Membership.objects.filter(programme=sim.programme).select_related("customer"))
    at_enrolment = {m.pk: (m.customer.region, sim.start.year - m.customer.birth_year) for m in memberships}
    assert {(m.region_at_enrolment, m.age_at_enrolment) for m in memberships} == set(at_enrolment.values())
    assert all((m.region_at_enrolment, m.age_at_enrolment) == at_enrolment[m.pk] for m in memberships)
    expected = {}
    for m in memberships:
        t, c = expected.get(m.region_at_enrolment, (0, 0))
        expected[m.region_at_enrolment] = (t + (m.group == "treatment"), c + (m.group == "control"))
    assert set(expected) == {"north", "south"}
    # After enrolment every northern customer moves west and every birth year is corrected by 30 years.
    moved = Customer.objects.filter(memberships__programme=sim.programme, region="north")
    moved_ids = set(moved.values_list("pk", flat=True))
    moved.update(region="west")
    Customer.objects.filter(memberships__programme=sim.programme).update(birth_year=1940)
    report = impact_report_compute(programme=sim.programme, as_of=sim.end)
    by_region = {r["region"]: (r["srm"]["treatment"], r["srm"]["control"]) for r in report["by_region"]}
    assert by_region == expected
    mover = next(m for m in memberships if m.customer_id in moved_ids)
    assert Membership.objects.get(pk=mover.pk).region_at_enrolment == "north"
    ages = {a["age_band"]: a["srm"]["treatment"] + a["srm"]["control"] for a in report["by_age"]}
    assert "65 and over" not in ages or ages["65 and over"] == sum(1 for _, age in at_enrolment.values() if age >= 65)
    assert sum(ages.values()) == 80
    assert "the age and the region recorded on the membership when it was enrolled" in report["method"]
    rows = {(c["label"], c["months"]) for r in report["by_region"] for c in r["horizons"]}
    assert rows == {(f"Region {r} at enrolment", m) for r in ("north", "south") for m in (3, 6, 12)}
    assert all(c["role"] == "exploratory" for r in report["by_region"] for c in r["horizons"] if c["available"])


def test_the_per_member_data_is_read_once_table_by_table():
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from loyalty.models import CustomerMetrics, ScoringModel, ScoringRun

    pop = build(
        n_treatment=60, n_control=60, retention_treatment=0.9, retention_control=0.8, seed=8, take_up=(0.5, 0.2)
    )
    add_revenue(pop, pre={m.customer_id: Decimal(40) for m in pop.treatment + pop.control}, post_uplift=Decimal(2))
    run = ScoringRun.objects.create(
        scoring_model=ScoringModel.objects.create(name="q"), as_of=ENROLLED - timedelta(days=1), status="succeeded"
    )
    CustomerMetrics.objects.bulk_create(
        CustomerMetrics(
            scoring_run=run,
            customer_id=m.customer_id,
            revenue_minor=0,
            revenue_rank=1,
            revenue_percentile=50,
            engagement_score=55,
            channels_used=1,
            active_weeks=1,
            engagement_percentile=50,
        )
        for m in pop.treatment[::2]
    )
    with CaptureQueriesContext(connection) as queries:
        report = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    sql = [q["sql"] for q in queries.captured_queries]

    def reading(table: str) -> list[str]:
        return [s for s in sql if re.search(rf"\b{table}\b", s)]

    pg = connection.vendor == "postgresql"
    tables = ("retentionoutcome", "interaction", "customer", "customermetrics", "tierchange", "revenuedayrollup")
    for table in tables:
        # Once each, by itself (no join: the rows are joined in numpy); the members' ids are dense here, so a range
        # of ids (not a semi-join with the memberships) limits each read to the programme's members.
        (read,) = reading(f"loyalty_{table}")
        assert "loyalty_membership" not in read and " BETWEEN " in read, table
        assert not [other for other in tables if other != table and re.search(rf"\bloyalty_{other}\b", read)]
        if pg:
            assert read.startswith("COPY (") and "FORMAT binary" in read
    assert reading("loyalty_revenueentry") == []  # the rollup, never the raw lines
    # The memberships once, and on PostgreSQL the names of the regions seen (one membership each: the binary rows
    # carry a hash).
    assert len(reading("loyalty_membership")) == 1 + pg
    assert len(reading("loyalty_scoringrun")) == 1 and reading("loyalty_segmentrun") == []  # no source segment runs
    engagement = next(b for b in report["engagement"]["bands"] if b["band"] == "40-60")
    assert engagement["srm"]["treatment"] == 30 and report["engagement"]["scoring_run_ids"] == [run.pk]
    # On PostgreSQL first the ingestion batches still pending for the rollups (none here), in a savepoint of its
    # own. Then: savepoint, the reads, release, the region names (PostgreSQL), the tiers; on PostgreSQL also the
    # transaction's settings.
    pending = [s for s in sql if "loyalty_rollupbatch" in s]
    assert len(pending) == pg
    reads = [s for s in sql if not s.upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "SET LOCAL"))]
    assert len(reads) == 9 + 2 * pg, reads
    assert len(sql) == 11 + 8 * pg  # the pending check: savepoint, its three settings, the SELECT, release
    assert report["revenue"]["cuped"][0]["available"] is True and report["take_up"]["took_up"] > 0


def _exact_rate(*, n_t: int, n_c: int, p_t: float, p_c: float, covers: bool) -> float:
    """By enumeration of every outcome (x_t, x_c) with its binomial probability: the probability that the report's
    95% interval of the uplift covers p_t - p_c (covers=True) or excludes 0 (covers=False: called significant;
    its p-value is that interval inverted, test_p_value_and_interval_never_disagree...)."""
    import numpy as np
    from scipy import stats

    from loyalty.retention.services.impact import newcombe_interval

    pt, pc = stats.binom.pmf(np.arange(n_t + 1), n_t, p_t), stats.binom.pmf(np.arange(n_c + 1), n_c, p_c)
    total = 0.0
    for x_t in np.flatnonzero(pt > 1e-10):
        for x_c in np.flatnonzero(pc > 1e-10):
            low, high = newcombe_interval(n_t=n_t, x_t=int(x_t), n_c=n_c, x_c=int(x_c))
            hit = low <= p_t - p_c <= high if covers else (low > 0 or high < 0)
            total += pt[x_t] * pc[x_c] if hit else 0.0
    return total


def test_the_primary_test_has_its_nominal_size_and_coverage_exactly_not_only_in_simulation():
    # The size of the truth bench's programmes (about 200 per group, 80% retained): the probability of calling a
    # null effect significant is 5.0%, so a higher Monte Carlo rate is noise, not the method.
    assert _exact_rate(n_t=200, n_c=200, p_t=0.8, p_c=0.8, covers=False) == pytest.approx(0.0499, abs=5e-4)
    assert _exact_rate(n_t=207, n_c=193, p_t=0.8, p_c=0.8, covers=False) == pytest.approx(0.050, abs=2e-3)
    assert _exact_rate(n_t=200, n_c=200, p_t=0.9, p_c=0.8, covers=True) == pytest.approx(0.951, abs=2e-3)
    assert _exact_rate(n_t=60, n_c=60, p_t=0.95, p_c=0.8, covers=True) > 0.94


def test_kaplan_meier_rmst_and_log_rank_equal_lifelines_bit_for_bit():
    """The survival statistics are computed in numpy as lifelines computes them: the same numbers, not close ones."""
    import random

    import numpy as np
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test
    from lifelines.utils import restricted_mean_survival_time as lifelines_rmst

    from loyalty.retention.services.impact import kaplan_meier, logrank, restricted_mean_survival_time

    for seed in range(25):
        rng = random.Random(seed)
        groups = []
        for _ in range(2):
            k = rng.randint(2, 300)
            groups.append(
                (
                    [rng.randint(0, 700) for _ in range(k)],
                    [int(rng.random() < 0.4) for _ in range(k)],
                    [rng.randint(1, 5000) for _ in range(k)],
                )
            )
        for d, e, w in groups:
            theirs = KaplanMeierFitter(label="g").fit(np.asarray(d, float), np.asarray(e), weights=np.asarray(w, float))
            ours = kaplan_meier(durations=d, events=e, weights=w, label="g")
            assert np.array_equal(theirs.survival_function_.iloc[:, 0].to_numpy(), ours.survival)
            interval = theirs.confidence_interval_survival_function_.to_numpy()
            assert np.array_equal(interval[:, 0], ours.ci_low) and np.array_equal(interval[:, 1], ours.ci_high)
            assert np.array_equal(theirs.event_table["at_risk"].to_numpy(), ours.at_risk)
            assert lifelines_rmst(theirs, t=365) == restricted_mean_survival_time(ours, t=365)
        (da, ea, wa), (db, eb, wb) = groups
        test = logrank_test(
            np.asarray(da, float),
            np.asarray(db, float),
            np.asarray(ea),
            np.asarray(eb),
            weights_A=np.asarray(wa, float),
            weights_B=np.asarray(wb, float),
        )
        assert logrank(groups[0], groups[1]) == (test.test_statistic, test.p_value)
