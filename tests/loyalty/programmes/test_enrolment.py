from datetime import UTC, datetime

import pytest
from django.core import mail
from django.db import connection

from loyalty.models import Enrolment, Membership, TierChange
from loyalty.programmes.services.assignment import (
    assignment_bucket_int,
    assignment_bucket_sql,
    holdout_cutoff,
    retention_mde_for_holdout,
    sample_ratio_check,
)
from loyalty.programmes.services.enrolment import enrolment_run, enrolment_start
from loyalty.programmes.services.memberships import memberships_end_for_churned
from loyalty.segmentation.models import RunStatus
from tests.factories import CustomerFactory, ProgrammeFactory, TierFactory
from tests.loyalty.programmes.factories import (
    ScoringRunFactory,
    SegmentMemberFactory,
    SegmentRunFactory,
    segment_run_with,
    synthetic_population,
)

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# The hash of (seed "golden", customer id) must give these buckets on every database and in Python.
GOLDEN = {1: 378_597, 2: 766_965, 3: 510_207, 1_000: 864_120, 123_456_789: 18_037, 9_007_199_254_740_993: 794_673}


def _sql_buckets(seed: str, ids: list[int]) -> dict[int, int]:
    values = " UNION ALL ".join(["SELECT CAST(%s AS BIGINT) AS customer_id"] * len(ids))
    sql, params = assignment_bucket_sql(values, [], seed)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*ids, *params])
        return dict(cursor.fetchall())


def test_hash_is_the_same_in_sql_on_this_database_and_in_python():
    assert {i: assignment_bucket_int("golden", i) for i in GOLDEN} == GOLDEN
    assert _sql_buckets("golden", list(GOLDEN)) == GOLDEN
    ids = list(range(1, 3001, 7))
    assert _sql_buckets("other seed", ids) == {i: assignment_bucket_int("other seed", i) for i in ids}


def test_holdout_cutoff_and_power_figures():
    assert holdout_cutoff(10) == 100_000
    assert holdout_cutoff("12.5") == 125_000
    assert round(retention_mde_for_holdout(customers=100_000, holdout_percent=10, baseline=0.89) * 100, 2) == 0.92
    assert round(retention_mde_for_holdout(customers=100_000, holdout_percent=5, baseline=0.89) * 100, 2) == 1.27
    assert sample_ratio_check(treatment=900, control=100, holdout_percent=10) == {
        "chi_square": 0.0,
        "p_value": 1.0,
        "mismatch": False,
    }
    assert sample_ratio_check(treatment=800, control=200, holdout_percent=10)["mismatch"] is True


def _ladder(programme):
    return [
        TierFactory(programme=programme, rank=1, name="Silver", threshold=0),
        TierFactory(programme=programme, rank=2, name="Gold", threshold=50),
        TierFactory(programme=programme, rank=3, name="Platinum", threshold=90),
    ]


def _enrol(programme, run, *, actor=None, capture=None):
    enrolment, created = enrolment_start(programme=programme, segment_run=run, actor=actor)
    return enrolment, created


def test_holdout_share_over_100000_customers_is_within_half_a_point_and_reproducible(
    django_capture_on_commit_callbacks,
):
    scoring = ScoringRunFactory()
    run = SegmentRunFactory(scoring_run=scoring)
    synthetic_population(count=100_000, prefix="HO", scoring_run=scoring, segment_run=run)
    first = ProgrammeFactory(seed="reproducible", holdout_percent=10)
    second = ProgrammeFactory(seed="reproducible", holdout_percent=10)
    for programme in (first, second):
        _ladder(programme)
        with django_capture_on_commit_callbacks(execute=False):
            enrolment, created = enrolment_start(programme=programme, segment_run=run)
        assert created
        enrolment_run(enrolment_id=enrolment.pk, now=NOW)

    control = Membership.objects.filter(programme=first, group="control").count()
    assert Membership.objects.filter(programme=first).count() == 100_000
    assert abs(control / 100_000 - 0.10) < 0.005
    # Identical assignment in both runs, customer by customer (the same seed).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM loyalty_membership a JOIN loyalty_membership b ON a.customer_id = b.customer_id "
            'WHERE a.programme_id = %s AND b.programme_id = %s AND (a."group" <> b."group" '
            "OR a.assignment_bucket <> b.assignment_bucket)",
            [first.pk, second.pk],
        )
        assert cursor.fetchone()[0] == 0
    # And identical to the reference formula (hence to the other database), for every customer.
    rows = Membership.objects.filter(programme=first).values_list("customer_id", "group", "assignment_bucket")
    mismatches = []
    for customer_id, group, bucket in rows:
        expected = assignment_bucket_int("reproducible", customer_id)
        if bucket != expected / 10_000 or group != ("control" if expected < 100_000 else "treatment"):
            mismatches.append(customer_id)
    assert mismatches == []

    result = Enrolment.objects.get(programme=first).result
    assert result["totals"] == {"treatment": 100_000 - control, "control": control}
    assert result["sample_ratio"]["mismatch"] is False
    assert [row["tier"] for row in result["per_tier"]] == ["Silver", "Gold", "Platinum"]
    assert sum(row["treatment"] + row["control"] for row in result["per_tier"]) == 100_000
    assert all(row["sample_ratio"]["mismatch"] is False for row in result["per_tier"])
    balance = result["balance"]
    assert abs(balance["standardized_mean_difference"]["revenue"]) < 0.05
    assert abs(balance["standardized_mean_difference"]["engagement"]) < 0.05
    assert result["power"]["min_detectable_retention_effect_points"] == pytest.approx(0.92, abs=0.02)
    assert result["power"]["by_holdout_percent"]["5"] == 1.27


def test_enrolment_assigns_tiers_shadow_tiers_history_and_invitations(django_capture_on_commit_callbacks):
    programme = ProgrammeFactory(holdout_percent=50, seed="split")
    silver, gold, platinum = _ladder(programme)
    customers = [CustomerFactory() for _ in range(12)]
    values = [10, 55, 95, 49.9, 50, 90, 0, 99, 60, 70, 20, 92]
    run = segment_run_with(list(zip(customers, values, strict=True)))
    with django_capture_on_commit_callbacks(execute=True):
        enrolment, created = enrolment_start(programme=programme, segment_run=run)
    enrolment.refresh_from_db()
    assert created and enrolment.status == RunStatus.SUCCEEDED and enrolment.enrolled_count == 12

    expected_tier = {
        c.pk: (silver if v < 50 else gold if v < 90 else platinum) for c, v in zip(customers, values, strict=True)
    }
    memberships = list(Membership.objects.filter(programme=programme))
    assert len(memberships) == 12
    treatment = [m for m in memberships if m.group == "treatment"]
    control = [m for m in memberships if m.group == "control"]
    assert treatment and control
    for m in memberships:
        expected_group = "control" if assignment_bucket_int("split", m.customer_id) < 500_000 else "treatment"
        assert m.group == expected_group
        if m.group == "treatment":
            assert (m.status, m.tier_id, m.shadow_tier_id) == ("active", expected_tier[m.customer_id].pk, None)
        else:
            assert (m.status, m.tier_id, m.shadow_tier_id) == ("holdout", None, expected_tier[m.customer_id].pk)
    changes = TierChange.objects.filter(membership__programme=programme)
    assert sorted(changes.values_list("membership_id", "reason")) == sorted((m.pk, "enrolment") for m in treatment)
    # Invitations: treatment only, sent after commit, never to the control group.
    assert sorted(mail.outbox[i].to[0] for i in range(len(mail.outbox))) == sorted(m.customer.email for m in treatment)
    assert "Create your account with this email address" in mail.outbox[0].body
    assert Membership.objects.filter(group="treatment", invited_at__isnull=True).count() == 0
    assert Membership.objects.filter(group="control", invited_at__isnull=False).count() == 0


def test_reenrolling_the_same_run_changes_nothing_and_a_new_run_adds_only_newcomers(
    django_capture_on_commit_callbacks,
):
    programme = ProgrammeFactory(holdout_percent=10)
    _ladder(programme)
    old = [CustomerFactory() for _ in range(5)]
    run = segment_run_with([(c, 60) for c in old])
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = enrolment_start(programme=programme, segment_run=run)
    state = sorted(Membership.objects.values_list("id", "customer_id", "group", "tier_id", "shadow_tier_id"))
    changes, sent = TierChange.objects.count(), len(mail.outbox)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again, created = enrolment_start(programme=programme, segment_run=run)
    assert (again.pk, created, callbacks) == (first.pk, False, [])
    assert enrolment_run(enrolment_id=first.pk) is None  # a duplicate task delivery does nothing
    assert sorted(Membership.objects.values_list("id", "customer_id", "group", "tier_id", "shadow_tier_id")) == state
    assert (TierChange.objects.count(), len(mail.outbox)) == (changes, sent)

    newcomer, churned = CustomerFactory(), CustomerFactory(status="churned", churned_at=NOW)
    later = segment_run_with([(c, 60) for c in [*old, newcomer, churned]])
    with django_capture_on_commit_callbacks(execute=True):
        second, _ = enrolment_start(programme=programme, segment_run=later)
    second.refresh_from_db()
    assert (second.enrolled_count, second.skipped_count) == (1, 5)
    assert set(Membership.objects.filter(source_run=later).values_list("customer_id", flat=True)) == {newcomer.pk}


def test_only_a_succeeded_run_into_an_active_programme_with_tiers(django_capture_on_commit_callbacks):
    from core.errors import BusinessRuleError

    programme = ProgrammeFactory()
    run = SegmentMemberFactory().run
    with pytest.raises(BusinessRuleError) as no_tiers:
        enrolment_start(programme=programme, segment_run=run)
    assert no_tiers.value.code == "programme_has_no_tiers"
    _ladder(programme)
    run.status = RunStatus.RUNNING
    run.save()
    with pytest.raises(BusinessRuleError) as not_done:
        enrolment_start(programme=programme, segment_run=run)
    assert not_done.value.code == "segment_run_not_succeeded"
    assert Enrolment.objects.count() == 0 and Membership.objects.count() == 0


def test_churned_customers_leave_the_programme_in_both_groups():
    from tests.factories import MembershipFactory

    member = MembershipFactory()
    held_out = MembershipFactory(control=True, programme=member.programme)
    other = MembershipFactory(programme=member.programme)
    ended = memberships_end_for_churned(customer_ids=[member.customer_id, held_out.customer_id], now=NOW)
    assert ended == 2
    assert sorted(Membership.objects.values_list("id", "status")) == sorted(
        [(member.pk, "ended"), (held_out.pk, "ended"), (other.pk, "active")]
    )
    assert list(TierChange.objects.values_list("membership_id", "reason", "to_tier")) == [(member.pk, "ended", None)]
    assert memberships_end_for_churned(customer_ids=[member.customer_id], now=NOW) == 0
    assert TierChange.objects.count() == 1


def test_enrolment_preview_counts_who_would_be_enrolled_and_the_power_without_writing():
    from core.errors import BusinessRuleError
    from loyalty.programmes.services.enrolment import enrolment_preview
    from tests.factories import MembershipFactory

    programme = ProgrammeFactory(holdout_percent=25, expected_retention=0.9)
    tier = TierFactory(programme=programme, rank=1, threshold=0.0)
    customers = [CustomerFactory() for _ in range(10)]
    customers[0].status, customers[0].churned_at = "churned", NOW
    customers[0].save(update_fields=["status", "churned_at"])
    MembershipFactory(programme=programme, customer=customers[1], tier=tier)
    MembershipFactory(programme=programme, control=True, shadow_tier=tier)
    run = segment_run_with([(c, 50.0) for c in customers])

    preview = enrolment_preview(programme=programme, segment_run=run)
    assert {k: v for k, v in preview.items() if k != "power"} == {
        "run_members": 10,
        "already_members": 1,
        "inactive": 1,
        "new": 8,
        "holdout_percent": 25.0,
        "expected_treatment": 6,
        "expected_control": 2,
        # (1.96 + 0.8416) * sqrt(0.9 * 0.1 * (1/6 + 1/2)) and with the programme's 1 + 1 live members: 7 and 3
        "this_enrolment_mde_points": 68.62,
        "programme_treatment_after": 7,
        "programme_control_after": 3,
        "programme_mde_points_after": 58.0,
    }
    assert preview["power"]["customers"] == 8
    assert [row["holdout_percent"] for row in preview["power"]["rows"]] == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 50.0]
    assert Membership.objects.count() == 2 and not Enrolment.objects.exists()

    with pytest.raises(BusinessRuleError) as refused:
        enrolment_preview(programme=ProgrammeFactory(), segment_run=run)
    assert refused.value.code == "programme_has_no_tiers"
