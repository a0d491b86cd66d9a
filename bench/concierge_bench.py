"""Concierge benchmark (run by a person, not by the test suite):

    DATABASE_URL=postgres://... python bench/concierge_bench.py [--requests 20000]

Builds N open requests over N/10 members, then times the agent queue's first page, the SLA breach check
(first run marks the overdue half, the second run marks nothing), the SLA report and request creation through
the service. Everything runs in one transaction that is rolled back: nothing is left behind."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from accounts.models import User  # noqa: E402
from concierge import selectors  # noqa: E402
from concierge.models import ConciergeRequest  # noqa: E402
from concierge.services.requests import request_create  # noqa: E402
from concierge.services.sla import sla_breaches_mark  # noqa: E402
from loyalty.models import Customer, Membership, Programme, Tier  # noqa: E402

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


class Rollback(Exception):
    pass


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label:<48} {(time.perf_counter() - start) * 1000:9.1f} ms   {result}")
    return result


def main(n_requests: int) -> None:
    n_members = max(1, n_requests // 10)
    print(f"database: {connection.vendor}; {n_requests} open requests over {n_members} members")
    programme = Programme.objects.create(name=f"bench-{time.time()}", seed="bench")
    tiers = [
        Tier.objects.create(
            programme=programme,
            rank=rank,
            name=f"T{rank}",
            threshold=0,
            first_response_sla_hours=fr,
            resolution_sla_hours=res,
            monthly_request_allowance=1000,
        )
        for rank, fr, res in ((1, 24, 96), (2, 4, 48), (3, 1, 8))
    ]
    customers = Customer.objects.bulk_create(
        Customer(external_id=f"bench-{i}", name=f"Bench Member {i}", joined_at=NOW) for i in range(n_members)
    )
    memberships = Membership.objects.bulk_create(
        Membership(
            programme=programme,
            customer=c,
            group="treatment",
            status="active",
            tier=tiers[i % 3],
            enrolled_at=NOW,
            assignment_seed="bench",
            assignment_bucket=50,
        )
        for i, c in enumerate(customers)
    )
    rows = []
    for i in range(n_requests):
        m = memberships[i % n_members]
        tier = tiers[(i % n_members) % 3]
        created = NOW - timedelta(minutes=(i * 7) % (3 * 24 * 60))
        first_due = created + timedelta(hours=tier.first_response_sla_hours)
        rows.append(
            ConciergeRequest(
                membership=m,
                tier=tier,
                category=["dining", "travel", "tickets", "gifts", "telco_support", "other"][i % 6],
                subject=f"bench {i}",
                priority=tier.rank,
                created_at=created,
                updated_at=created,
                first_response_due_at=first_due,
                resolution_due_at=created + timedelta(hours=tier.resolution_sla_hours),
                due_at=first_due,
            )
        )
    timed("bulk insert requests", lambda: len(ConciergeRequest.objects.bulk_create(rows, batch_size=2000)))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE concierge_conciergerequest")
    timed("agent queue, first page (50)", lambda: len(list(selectors.agent_queue()[:50])))
    timed("agent queue, breached=false, dining (50)", lambda: len(list(selectors.agent_queue(category="dining")[:50])))
    timed("SLA breach check, first run", lambda: sla_breaches_mark(now=NOW))
    timed("SLA breach check, second run (idempotent)", lambda: sla_breaches_mark(now=NOW))
    timed("SLA report per tier and category", lambda: len(selectors.sla_report()))
    user = User.objects.create_user(email=f"bench-{time.time()}@example.test")
    customers[0].user = user
    customers[0].save(update_fields=["user"])

    def create_many():
        for i in range(200):
            request_create(user=user, category="dining", subject=f"bench create {i}", now=NOW)
        return 200

    start = time.perf_counter()
    create_many()
    each_ms = (time.perf_counter() - start) * 5
    print(f"{'request_create x200 (allowance, event, interaction)':<48} {each_ms:9.2f} ms each")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    try:
        with transaction.atomic():
            main(args.requests)
            raise Rollback
    except Rollback:
        print("rolled back")
