"""Scoring fixtures: a scoring run with hand-set metrics (set-based computation is tested elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime

import factory

from loyalty.models import CustomerMetrics, ScoringModel, ScoringRun
from loyalty.segmentation.models import RunStatus
from tests.factories import CustomerFactory

AS_OF = datetime(2026, 6, 30, tzinfo=UTC)


class ScoringModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoringModel

    name = factory.Sequence(lambda n: f"model-{n}")


class ScoringRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoringRun

    scoring_model = factory.SubFactory(ScoringModelFactory)
    as_of = AS_OF
    status = RunStatus.SUCCEEDED
    progress = 100


def metrics_for(run: ScoringRun, customer=None, **values) -> CustomerMetrics:
    defaults = {
        "revenue_minor": 0,
        "revenue_rank": 1,
        "revenue_percentile": 0.0,
        "engagement_score": 0.0,
        "engagement_percentile": 0.0,
        "channels_used": 0,
        "active_weeks": 0,
        "days_since_last": None,
        "decayed_activity": 0.0,
    }
    return CustomerMetrics.objects.create(
        scoring_run=run, customer=customer or CustomerFactory(), **{**defaults, **values}
    )
