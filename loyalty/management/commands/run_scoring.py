"""Scheduled scoring: score every customer with the newest default model (or --model), then run segments."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from loyalty.segmentation.models import RunStatus, ScoringModel, Segment
from loyalty.segmentation.services.scoring import scoring_model_default, scoring_run_create, scoring_run_execute
from loyalty.segmentation.services.segments import segment_run_create, segment_run_execute


class Command(BaseCommand):
    help = "Run a scoring run now (in this process), then the given segments (or all with --all-segments)."

    def add_arguments(self, parser):
        parser.add_argument("--model", type=int, help="Scoring model id (default: newest default model).")
        parser.add_argument("--as-of", help="Day to score as of, YYYY-MM-DD (default: now).")
        parser.add_argument("--segment", type=int, action="append", default=[], help="Segment id to run.")
        parser.add_argument("--all-segments", action="store_true", help="Run every segment.")

    def handle(self, *args, **options):
        model = (
            ScoringModel.objects.filter(pk=options["model"]).first() if options["model"] else scoring_model_default()
        )
        if model is None:
            raise CommandError("No such scoring model.")
        as_of = datetime.fromisoformat(options["as_of"]).replace(tzinfo=UTC) if options["as_of"] else None
        run = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=as_of, enqueue=False).pk)
        self.stdout.write(json.dumps({"scoring_run": run.pk, "status": run.status, "timings": run.timings}))
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"Scoring run {run.pk} failed: {run.error}")
        segments = (
            Segment.objects.all() if options["all_segments"] else Segment.objects.filter(pk__in=options["segment"])
        )
        for segment in segments:
            seg_run = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=run, enqueue=False).pk)
            self.stdout.write(
                json.dumps(
                    {
                        "segment": segment.name,
                        "run": seg_run.pk,
                        "status": seg_run.status,
                        "members": seg_run.member_count,
                        "timings": seg_run.timings,
                    }
                )
            )
