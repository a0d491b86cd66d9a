from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail

from core.errors import BusinessRuleError, ValidationFailed
from loyalty.models import MemberNotification, Membership, TierChange
from loyalty.programmes.selectors.members import effective_tier
from loyalty.programmes.services.tier_policy import (
    membership_override_clear,
    membership_override_set,
    programme_evaluate,
    programmes_evaluate_due,
)
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory, TierFactory
from tests.loyalty.programmes.factories import CustomerMetricsFactory, ScoringRunFactory

pytestmark = pytest.mark.django_db
DAY0 = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def ladder():
    programme = ProgrammeFactory(grace_period_days=30, evaluation_cadence_days=1)
    silver = TierFactory(programme=programme, rank=1, name="Silver", threshold=0)
    gold = TierFactory(programme=programme, rank=2, name="Gold", threshold=50)
    platinum = TierFactory(programme=programme, rank=3, name="Platinum", threshold=90)
    return programme, silver, gold, platinum


def scored(customer, value, at):
    run = ScoringRunFactory(as_of=at - timedelta(hours=1))
    CustomerMetricsFactory(scoring_run=run, customer=customer, revenue_percentile=value)
    return run


def evaluate(programme, at, run):
    return programme_evaluate(programme=programme, now=at, scoring_run=run)


def changes(membership):
    return list(
        TierChange.objects.filter(membership=membership)
        .order_by("id")
        .values_list("reason", "from_tier__name", "to_tier__name")
    )


def test_upgrade_is_immediate_and_skips_levels(ladder, django_capture_on_commit_callbacks):
    programme, silver, gold, platinum = ladder
    member = MembershipFactory(programme=programme, tier=silver)
    run = scored(member.customer, 95, DAY0)
    with django_capture_on_commit_callbacks(execute=True):
        summary = evaluate(programme, DAY0, run)
    member.refresh_from_db()
    assert (summary["upgrades"], summary["downgrades"], summary["evaluated"]) == (1, 0, 1)
    assert member.tier == platinum and member.below_threshold_since is None and member.last_evaluated_at == DAY0
    assert changes(member) == [("upgrade", "Silver", "Platinum")]
    assert [m.subject for m in mail.outbox] == ["You are now Platinum"]
    assert mail.outbox[0].to == [member.customer.email]


def test_downgrade_only_after_grace_and_one_tier_at_a_time(ladder, django_capture_on_commit_callbacks):
    programme, silver, gold, platinum = ladder
    member = MembershipFactory(programme=programme, tier=platinum)
    run = scored(member.customer, 10, DAY0)  # qualifies only for Silver

    with django_capture_on_commit_callbacks(execute=True):
        first = evaluate(programme, DAY0, run)
    member.refresh_from_db()
    assert (first["downgrade_warnings"], first["downgrades"]) == (1, 0)
    assert (member.tier, member.below_threshold_since) == (platinum, date(2026, 4, 1))
    assert changes(member) == []
    assert [m.subject for m in mail.outbox] == [f"Keep your {programme.name} tier"]
    assert "01 May 2026" in mail.outbox[0].body

    # One day short of the grace period: still Platinum, no second warning.
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(programme, DAY0 + timedelta(days=29), run)
    member.refresh_from_db()
    assert member.tier == platinum and len(mail.outbox) == 1

    # Grace over: one step down (Gold, not Silver); grace restarts because Gold is still too high.
    day30 = DAY0 + timedelta(days=30)
    with django_capture_on_commit_callbacks(execute=True):
        summary = evaluate(programme, day30, run)
    member.refresh_from_db()
    assert summary["downgrades"] == 1
    assert (member.tier, member.below_threshold_since) == (gold, date(2026, 5, 1))
    assert changes(member) == [("downgrade", "Platinum", "Gold")]
    assert mail.outbox[-1].subject == f"Your {programme.name} tier changed"

    # Same day again: nothing changes.
    state = Membership.objects.values().get(pk=member.pk)
    again = evaluate(programme, day30 + timedelta(hours=5), run)
    assert (again["upgrades"], again["downgrades"], again["downgrade_warnings"], again["recovered"]) == (0, 0, 0, 0)
    assert Membership.objects.values().get(pk=member.pk) == state
    assert len(changes(member)) == 1
    assert MemberNotification.objects.filter(membership=member).count() == 2

    # Another grace period later: Silver, the floor; no further warning.
    evaluate(programme, day30 + timedelta(days=30), run)
    member.refresh_from_db()
    assert (member.tier, member.below_threshold_since) == (silver, None)
    assert [c[0] for c in changes(member)] == ["downgrade", "downgrade"]
    assert evaluate(programme, day30 + timedelta(days=31), run)["downgrade_warnings"] == 0


def test_recovery_during_grace_cancels_the_pending_downgrade(ladder):
    programme, silver, gold, platinum = ladder
    member = MembershipFactory(programme=programme, tier=gold)
    evaluate(programme, DAY0, scored(member.customer, 20, DAY0))
    member.refresh_from_db()
    assert member.below_threshold_since == date(2026, 4, 1)
    later = DAY0 + timedelta(days=10)
    assert evaluate(programme, later, scored(member.customer, 60, later))["recovered"] == 1
    member.refresh_from_db()
    assert (member.tier, member.below_threshold_since) == (gold, None)
    assert changes(member) == []


def test_override_wins_until_it_expires(ladder, manager):
    programme, silver, gold, platinum = ladder
    member = MembershipFactory(programme=programme, tier=silver)
    run = scored(member.customer, 10, DAY0)
    expires = DAY0 + timedelta(days=14)
    membership_override_set(
        membership=member, tier=platinum, expires_at=expires, reason="VIP complaint", actor=manager, now=DAY0
    )
    member.refresh_from_db()
    assert effective_tier(member, now=DAY0) == platinum
    assert changes(member) == [("override", "Silver", "Platinum")]

    evaluate(programme, DAY0 + timedelta(days=1), run)
    member.refresh_from_db()
    assert (member.tier, member.override_tier, member.below_threshold_since) == (silver, platinum, None)
    assert effective_tier(member, now=DAY0 + timedelta(days=13)) == platinum

    # Expired: back to the evaluated tier, then evaluated as usual (here: qualifies for Gold -> upgrade).
    after = expires + timedelta(hours=1)
    summary = evaluate(programme, after, scored(member.customer, 60, after))
    member.refresh_from_db()
    assert (summary["overrides_expired"], summary["upgrades"]) == (1, 1)
    assert (member.tier, member.override_tier, member.override_expires_at, member.override_reason) == (
        gold,
        None,
        None,
        "",
    )
    assert changes(member)[1:] == [("override_expired", "Platinum", "Silver"), ("upgrade", "Silver", "Gold")]
    assert effective_tier(member, now=after) == gold


def test_override_validation_and_clear(ladder, manager):
    programme, silver, gold, platinum = ladder
    member = MembershipFactory(programme=programme, tier=silver)
    other_tier = TierFactory()
    with pytest.raises(ValidationFailed) as bad:
        membership_override_set(
            membership=member, tier=other_tier, expires_at=DAY0 - timedelta(days=1), reason=" ", actor=manager, now=DAY0
        )
    assert sorted(bad.value.fields) == ["expires_at", "reason", "tier_id"]
    held_out = MembershipFactory(programme=programme, control=True)
    with pytest.raises(BusinessRuleError):
        membership_override_set(
            membership=held_out, tier=gold, expires_at=DAY0 + timedelta(days=1), reason="x", actor=manager, now=DAY0
        )
    assert TierChange.objects.count() == 0
    membership_override_set(
        membership=member, tier=gold, expires_at=DAY0 + timedelta(days=1), reason="goodwill", actor=manager, now=DAY0
    )
    membership_override_clear(membership=member, actor=manager, now=DAY0)
    membership_override_clear(membership=member, actor=manager, now=DAY0)
    member.refresh_from_db()
    assert member.override_tier is None
    assert changes(member) == [("override", "Silver", "Gold"), ("override_expired", "Gold", "Silver")]


def test_evaluation_ends_churned_members_in_both_groups_and_ignores_control(ladder):
    programme, silver, gold, platinum = ladder
    churned = MembershipFactory(
        programme=programme, tier=gold, customer=CustomerFactory(status="churned", churned_at=DAY0)
    )
    held_out = MembershipFactory(programme=programme, control=True, shadow_tier=silver)
    run = scored(held_out.customer, 99, DAY0)
    summary = evaluate(programme, DAY0, run)
    assert summary["ended"] == 1
    churned.refresh_from_db()
    held_out.refresh_from_db()
    assert (churned.status, held_out.status, held_out.tier, held_out.shadow_tier) == ("ended", "holdout", None, silver)


def test_due_programmes_follow_their_cadence(ladder):
    programme, *_ = ladder
    programme.last_evaluated_at = DAY0
    programme.save()
    assert programmes_evaluate_due(now=DAY0 + timedelta(hours=23)) == []
    assert [s["programme_id"] for s in programmes_evaluate_due(now=DAY0 + timedelta(days=1))] == [programme.pk]
    programme.refresh_from_db()
    assert programme.last_evaluated_at == DAY0 + timedelta(days=1)


def test_beat_schedule_has_the_evaluation():
    from django.conf import settings

    assert (
        settings.CELERY_BEAT_SCHEDULE["loyalty-evaluate-due-programmes"]["task"]
        == "loyalty.tasks.evaluate_due_programmes"
    )
