"""Time the impact report on a synthetic programme (PostgreSQL) against a floor measured in the same run. Run by a
person, not by the test suite:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_bench python bench/impact_report.py --members 100000

Builds (set-based, generate_series) N customers and memberships (10% control), churn outcomes for ~17%,
a concierge interaction for ~40% of treatment and 4 revenue lines per member (two before enrolment, two after),
then the revenue rollup of those lines with the product's own refresh (`rollups_refresh_revenue`; ingestion keeps
it current in production).

Floor: one sequential read of the rows the report uses, table by table (count and a sum of a column, so every row
is read): the programme's memberships, their customers, outcomes, interactions, enrolment tier changes, baseline
metrics and revenue rollup rows (the report reads the rollup, not the raw lines; the bench's rows are contiguous
id ranges, so a range predicate selects them without a join). The same read with the raw revenue lines instead of
the rollup is printed as a second floor ("raw source rows"). The report and both floors run `--repeat` times
alternately (warm cache, libraries imported); the bench prints every time, the best of each and the ratios
report / floor. Target: at most 2 against the floor of the rows the report reads. `--reuse` times the programme
an earlier run built in the same database instead of building another (the 1,000,000-member build takes minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from loyalty.models import Programme, Tier  # noqa: E402
from loyalty.retention.services.impact import impact_report_compute  # noqa: E402
from loyalty.segmentation.services.rollups import rollups_refresh_revenue  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the latest programme an earlier run of this bench built in this database (the same --members)",
    )
    args = parser.parse_args()
    assert connection.vendor == "postgresql", "needs PostgreSQL"
    n = args.members
    if args.reuse:
        programme = Programme.objects.filter(name__startswith="bench").order_by("-id").first()
        assert programme is not None, "no programme of this bench in the database: run it once without --reuse"
        found = programme.memberships.count()
        assert found == n, f"the latest bench programme has {found} members, not {n}"
        print(f"reusing {programme.name} ({n} members)")
        _time(args, programme, programme.name, n)
        return
    tag = f"bench{int(time.time())}"
    programme = Programme.objects.create(name=tag, seed=tag, holdout_percent=10)
    tier = Tier.objects.create(programme=programme, rank=1, name="Gold", threshold=0)
    t0 = time.perf_counter()
    with connection.cursor() as c:
        c.execute(
            """INSERT INTO loyalty_customer (external_id, name, email, phone, region, attributes, joined_at, status,
               created_at, updated_at)
               SELECT %s || '-' || g, 'c' || g, '', '', '', '{}', '2020-01-01', 'active', now(), now()
               FROM generate_series(1, %s) g""",
            [tag, n],
        )
        c.execute(
            """INSERT INTO loyalty_membership (programme_id, customer_id, "group", tier_id, shadow_tier_id, status,
               enrolled_at, assignment_seed, assignment_bucket, override_reason)
               SELECT %s, c.id, CASE WHEN c.id %% 10 = 0 THEN 'control' ELSE 'treatment' END,
                      CASE WHEN c.id %% 10 = 0 THEN NULL ELSE %s END, CASE WHEN c.id %% 10 = 0 THEN %s END,
                      CASE WHEN c.id %% 10 = 0 THEN 'holdout' ELSE 'active' END,
                      timestamptz '2024-01-01' + (c.id %% 180) * interval '1 day', %s, 50, ''
               FROM loyalty_customer c WHERE c.external_id LIKE %s""",
            [programme.pk, tier.pk, tier.pk, tag, f"{tag}-%"],
        )
        c.execute(
            """INSERT INTO loyalty_retentionoutcome (membership_id, observed_at, outcome, source, recorded_at)
               SELECT m.id, m.enrolled_at + (m.id %% 400) * interval '1 day', 'churned', 'ingest', now()
               FROM loyalty_membership m WHERE m.programme_id = %s
                 AND (m.id * 7919) %% 100 < CASE WHEN m."group" = 'control' THEN 20 ELSE 14 END""",
            [programme.pk],
        )
        c.execute(
            """INSERT INTO loyalty_interaction (customer_id, channel, occurred_at, kind, external_id)
               SELECT m.customer_id, 'concierge', m.enrolled_at + interval '3 days', '', %s || '-i' || m.id
               FROM loyalty_membership m WHERE m.programme_id = %s AND m."group" = 'treatment' AND m.id %% 5 < 2""",
            [tag, programme.pk],
        )
        c.execute(
            """INSERT INTO loyalty_revenueentry (customer_id, period, amount, currency, kind, external_id, created_at)
               SELECT m.customer_id, (m.enrolled_at + k * interval '60 days')::date, 20 + (m.customer_id %% 50), 'EUR',
                      '', %s || '-r' || m.id || '-' || k, now()
               FROM loyalty_membership m CROSS JOIN generate_series(-2, 1) k WHERE m.programme_id = %s""",
            [tag, programme.pk],
        )
        c.execute("SELECT min(period), max(period) FROM loyalty_revenueentry")
        first, last = c.fetchone()
    print(f"built {n} members in {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    rollups_refresh_revenue(customer_ids=None, date_from=first, date_to=last)
    with connection.cursor() as c:
        c.execute("ANALYZE")
    print(f"revenue rollup of their lines in {time.perf_counter() - t0:.1f}s (ingestion keeps it current)")
    _time(args, programme, tag, n)


def _time(args, programme: Programme, tag: str, n: int) -> None:
    floor_sql, raw_sql = _floor_queries(programme.pk, tag)
    import scipy.optimize  # noqa: F401  (imported before timing: seconds of import are not the report's work)
    import scipy.stats  # noqa: F401

    as_of = datetime(2025, 9, 1, tzinfo=UTC)
    reports, floors, raws = [], [], []

    def read(queries) -> float:
        t0 = time.perf_counter()
        with connection.cursor() as c:
            for sql, params in queries:
                c.execute(sql, params)
                c.fetchall()
        return time.perf_counter() - t0

    for i in range(args.repeat):
        floors.append(read(floor_sql))
        t0 = time.perf_counter()
        report = impact_report_compute(programme=programme, as_of=as_of)
        reports.append(time.perf_counter() - t0)
        raws.append(read(raw_sql))
        print(
            f"run {i + 1}: report {reports[-1]:.3f}s (steps {report['timings']}), floor {floors[-1]:.3f}s, "
            f"raw floor {raws[-1]:.3f}s"
        )
    best_report, best_floor, best_raw = min(reports), min(floors), min(raws)
    ratio = best_report / best_floor
    print(
        f"{n} members: report {best_report:.3f}s; floor (one sequential read of the rows it reads: revenue rollup, "
        f"not raw lines) {best_floor:.3f}s, ratio {ratio:.2f} (target <= 2: {'met' if ratio <= 2 else 'missed'}); "
        "per run: " + ", ".join(f"{r / f:.2f}" for r, f in zip(reports, floors, strict=True))
    )
    print(
        f"{n} members: raw floor (the same read with the raw revenue lines instead of the rollup) {best_raw:.3f}s, "
        f"ratio {best_report / best_raw:.2f}; per run: "
        + ", ".join(f"{r / f:.2f}" for r, f in zip(reports, raws, strict=True))
    )
    print(report["retention"][-1]["explanation"])


def _floor_queries(programme_id: int, tag: str) -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
    """(the rows the report reads: revenue rollup; the same with the raw revenue lines instead)."""
    with connection.cursor() as c:
        c.execute("SELECT min(id), max(id) FROM loyalty_customer WHERE external_id LIKE %s", [f"{tag}-%"])
        c_low, c_high = c.fetchone()
        c.execute("SELECT min(id), max(id) FROM loyalty_membership WHERE programme_id = %s", [programme_id])
        m_low, m_high = c.fetchone()
    customers = [c_low, c_high]
    members = [m_low, m_high]
    shared = [
        (
            "SELECT count(*), sum(customer_id), max(enrolled_at) FROM loyalty_membership WHERE programme_id = %s",
            [programme_id],
        ),
        ("SELECT count(*), max(churned_at), max(status) FROM loyalty_customer WHERE id BETWEEN %s AND %s", customers),
        (
            "SELECT count(*), max(observed_at) FROM loyalty_retentionoutcome WHERE membership_id BETWEEN %s AND %s",
            members,
        ),
        ("SELECT count(*), max(occurred_at) FROM loyalty_interaction WHERE customer_id BETWEEN %s AND %s", customers),
        ("SELECT count(*), max(at) FROM loyalty_tierchange WHERE membership_id BETWEEN %s AND %s", members),
        (
            "SELECT count(*), sum(engagement_score) FROM loyalty_customermetrics WHERE customer_id BETWEEN %s AND %s",
            customers,
        ),
    ]
    rollup = (
        "SELECT count(*), sum(amount_minor), max(day) FROM loyalty_revenuedayrollup "
        "WHERE customer_id BETWEEN %s AND %s",
        customers,
    )
    raw = (
        "SELECT count(*), sum(amount), max(period) FROM loyalty_revenueentry WHERE customer_id BETWEEN %s AND %s",
        customers,
    )
    return [*shared, rollup], [*shared, raw]


if __name__ == "__main__":
    main()
