"""Runs that cannot get stuck (core.runs): the reconciler requeues runs nobody started and runs whose worker
died, within a bounded count, then fails them with the reason; a duplicate delivery never runs a run twice;
managers (only) retry failed runs through the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import OutboxMessage
from core.runs import runs_reconcile
from loyalty.models import Enrolment, ImpactReport, ScoringRun, Segment, SegmentRun
from loyalty.retention.tasks import reconcile_runs
from loyalty.segmentation.models import RunStatus
from loyalty.segmentation.services.scoring import scoring_run_execute
from tests.conftest import api_as
from tests.factories import CustomerFactory, ProgrammeFactory, UserFactory
from tests.loyalty.scoring.factories import AS_OF, ScoringModelFactory, ScoringRunFactory

pytestmark = pytest.mark.django_db
TASK = "loyalty.tasks.scoring_run_task"


def _ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def _scoring_run(**fields) -> ScoringRun:
    return ScoringRun.objects.create(scoring_model=ScoringModelFactory(), as_of=AS_OF, **fields)


def _segment_run(**fields) -> SegmentRun:
    segment = Segment.objects.create(name=f"s{Segment.objects.count()}", rule={})
    return SegmentRun.objects.create(segment=segment, scoring_run=ScoringRunFactory(), rule_snapshot={}, **fields)


def _enrolment(**fields) -> Enrolment:
    return Enrolment.objects.create(programme=ProgrammeFactory(), segment_run=_segment_run(), **fields)


def _impact_report(**fields) -> ImpactReport:
    return ImpactReport.objects.create(programme=ProgrammeFactory(), as_of=AS_OF, horizons=[12], **fields)


def _messages() -> list[tuple[str, list]]:
    return list(OutboxMessage.objects.order_by("id").values_list("task_name", "args"))


def test_a_pending_run_nobody_started_is_requeued_and_then_runs(django_capture_on_commit_callbacks):
    CustomerFactory.create_batch(2)
    run = _scoring_run(heartbeat_at=_ago(301))
    fresh = _scoring_run()  # queued just now: left alone
    with django_capture_on_commit_callbacks(execute=True):
        result = runs_reconcile(ScoringRun, task_name=TASK, pending_timeout=300, max_attempts=3)
    assert result == {"requeued": [run.pk], "failed": []}
    run.refresh_from_db()
    assert (run.status, run.attempts, run.customers_scored) == ("succeeded", 1, 2)
    assert run.error.startswith("not started by any worker since ")
    assert run.error.endswith("; requeued (attempt 1 of 3).")
    assert _messages() == [(TASK, [run.pk])]
    fresh.refresh_from_db()
    assert (fresh.status, fresh.attempts) == ("pending", 0)


def test_a_pending_run_whose_task_still_waits_in_the_outbox_is_left_to_the_relay():
    run = _scoring_run(heartbeat_at=_ago(3600))
    OutboxMessage.objects.create(task_name=TASK, args=[run.pk])  # the broker was down: not published yet
    assert runs_reconcile(ScoringRun, task_name=TASK, pending_timeout=300) == {"requeued": [], "failed": []}
    run.refresh_from_db()
    assert (run.status, run.attempts, run.error) == ("pending", 0, "")
    assert OutboxMessage.objects.count() == 1


def test_a_running_run_whose_heartbeat_stopped_is_requeued_then_failed_after_the_bound():
    run = _scoring_run(status=RunStatus.RUNNING, progress=5, started_at=_ago(900), heartbeat_at=_ago(601))
    alive = _scoring_run(status=RunStatus.RUNNING, progress=50, started_at=_ago(900), heartbeat_at=_ago(30))

    assert runs_reconcile(ScoringRun, task_name=TASK, heartbeat_timeout=600, max_attempts=1) == {
        "requeued": [run.pk],
        "failed": [],
    }
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("pending", 1)
    assert run.error.startswith("the worker stopped (no heartbeat since ")
    assert run.error.endswith("; requeued (attempt 1 of 1).")
    assert _messages() == [(TASK, [run.pk])]

    # The requeued delivery started and its worker died again: the bound is reached, the run fails.
    ScoringRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=_ago(601))
    assert runs_reconcile(ScoringRun, task_name=TASK, heartbeat_timeout=600, max_attempts=1) == {
        "requeued": [],
        "failed": [run.pk],
    }
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("failed", 1)
    assert run.error.startswith("the worker stopped (no heartbeat since ")
    assert run.error.endswith("; gave up after 1 requeue(s). Retry it when the cause is fixed.")
    assert run.finished_at is not None
    alive.refresh_from_db()
    assert (alive.status, alive.progress, alive.attempts, alive.error) == ("running", 50, 0, "")


def test_a_duplicate_delivery_of_a_running_run_does_nothing():
    CustomerFactory()
    started = _ago(60)
    run = _scoring_run(status=RunStatus.RUNNING, progress=50, started_at=started, heartbeat_at=started)
    assert scoring_run_execute(run_id=run.pk).status == "running"
    run.refresh_from_db()
    assert (run.status, run.progress, run.started_at, run.customers_scored) == ("running", 50, started, 0)


def test_the_beat_task_settles_every_kind_of_run(settings):
    settings.RUN_HEARTBEAT_TIMEOUT = 600
    stale = {"status": RunStatus.RUNNING, "heartbeat_at": _ago(601)}
    scoring, segment, enrolment = _scoring_run(**stale), _segment_run(**stale), _enrolment(**stale)
    report = _impact_report(**stale)
    result = reconcile_runs()
    assert result == {
        "scoring_runs": {"requeued": [scoring.pk], "failed": []},
        "segment_runs": {"requeued": [segment.pk], "failed": []},
        "enrolments": {"requeued": [enrolment.pk], "failed": []},
        "impact_reports": {"requeued": [report.pk], "failed": []},
    }
    for run in (scoring, segment, enrolment, report):
        run.refresh_from_db()
        assert (run.status, run.attempts) == ("pending", 1)
    assert _messages() == [
        ("loyalty.tasks.scoring_run_task", [scoring.pk]),
        ("loyalty.tasks.segment_run_task", [segment.pk]),
        ("loyalty.tasks.run_enrolment", [enrolment.pk]),
        ("loyalty.tasks.impact_report_run", [report.pk]),
    ]


# --- retry through the API -----------------------------------------------------------------------------------

KINDS = {
    "scoring_run": (_scoring_run, lambda r: f"scoring/runs/{r.pk}/retry", "loyalty.tasks.scoring_run_task"),
    "segment_run": (_segment_run, lambda r: f"segments/runs/{r.pk}/retry", "loyalty.tasks.segment_run_task"),
    "enrolment": (
        _enrolment,
        lambda r: f"programmes/{r.programme_id}/enrolments/{r.pk}/retry",
        "loyalty.tasks.run_enrolment",
    ),
    "impact_report": (
        _impact_report,
        lambda r: f"retention/impact-reports/{r.pk}/retry",
        "loyalty.tasks.impact_report_run",
    ),
}
FAILED = {"status": "failed", "progress": 40, "attempts": 3, "error": "the worker stopped"}


@pytest.mark.parametrize("kind", KINDS)
def test_only_managers_retry_a_failed_run(kind, anon_api, agent_api, partner_user):
    make, path, task = KINDS[kind]
    run = make(**FAILED, finished_at=_ago(10))
    member = UserFactory()
    CustomerFactory(email=member.email, user=member)
    denied = {
        "anonymous": (anon_api, 401),
        "member": (api_as(member), 403),
        "agent": (agent_api, 403),
        "partner": (api_as(partner_user), 403),
    }
    for who, (api, status) in denied.items():
        response = api.post(path(run))
        assert (who, response.status_code) == (who, status)
        assert set(response.json()) == {"detail", "code", "fields"}
        run.refresh_from_db()
        assert (run.status, run.progress, run.attempts, run.error) == ("failed", 40, 3, "the worker stopped")
    assert OutboxMessage.objects.count() == 0

    manager = api_as(UserFactory(roles=["programme_manager"]))
    response = manager.post(path(run))
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["id"], body["status"], body["progress"], body["attempts"], body["error"]) == (
        run.pk,
        "pending",
        0,
        0,
        "",
    )
    assert body["finished_at"] is None
    assert _messages() == [(task, [run.pk])]

    again = manager.post(path(run))
    assert again.status_code == 409
    assert again.json() == {
        "detail": "Only a failed run can be retried; this one is pending.",
        "code": "run_not_failed",
        "fields": {"status": ["pending"]},
    }
    assert OutboxMessage.objects.count() == 1


def test_a_retried_scoring_run_runs_again(manager_api, django_capture_on_commit_callbacks):
    CustomerFactory.create_batch(3)
    run = _scoring_run(**FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_api.post(f"scoring/runs/{run.pk}/retry")
    assert response.status_code == 202
    run.refresh_from_db()
    assert (run.status, run.progress, run.customers_scored, run.attempts, run.error) == ("succeeded", 100, 3, 0, "")
    assert OutboxMessage.objects.get().published_at is not None


def test_retry_of_an_unknown_run_is_404(manager_api):
    response = manager_api.post("scoring/runs/999999/retry")
    assert response.status_code == 404
