"""CPU per request of the member operations of bench/api_load.py, in-process (Django test client, no network,
no gunicorn), on the database bench/api_load.py seeded. Production settings, as the bench's server runs them.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_apiload .venv/bin/python bench/api_profile.py \
        --requests 300            # --profile "GET /events": cProfile of its thread CPU

Prints, per operation: CPU ms per request (thread CPU, the fastest batch of 50), wall ms per request, queries per
request, the ratio of the floor's CPU (`GET /me`) to the operation's, the PostgreSQL backend's CPU per request (from
/proc, over all the requests) and the ratio of floor to operation counting both: the throughput ratio a CPU-bound
server on the same machine gives.
Run bench/api_load.py once first (it seeds the members, events and tokens)."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_load import PROGRAMME, TOKEN_PREFIX, configure_environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="Requests per operation (after 30 warm-up ones).")
    parser.add_argument("--only", default="", help="Comma-separated operation names (the floor always runs).")
    parser.add_argument("--profile", default="", help="An operation to profile (cProfile on thread CPU time).")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    args = parser.parse_args()
    configure_environment(argparse.Namespace(redis=args.redis))
    import django

    django.setup()
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from events.models import Event, Partner
    from loyalty.models import Programme

    programme = Programme.objects.get(name=PROGRAMME)
    partner = Partner.objects.get(name="API load bench partner")
    read_event = Event.objects.filter(partner=partner, title__startswith="Read ").order_by("id").first()
    now = timezone.now()
    write_event = Event.objects.create(
        partner=partner,
        title=f"Write profile {int(time.time())}",
        starts_at=now + timezone.timedelta(days=60),
        ends_at=now + timezone.timedelta(days=60, hours=3),
        capacity=1_000_000,
        min_tier_rank=1,
        booking_opens_at=now - timezone.timedelta(days=1),
        status=Event.Status.PUBLISHED,
        published_at=now,
    )
    tokens = [f"{TOKEN_PREFIX}{i:020d}" for i in range(2000)]
    operations = [
        ("GET /me", "get", "/api/v1/me"),
        ("GET /events", "get", "/api/v1/events"),
        ("GET /events/{id}", "get", f"/api/v1/events/{read_event.pk}"),
        ("GET /me/membership", "get", "/api/v1/me/membership"),
        ("GET /bookings", "get", "/api/v1/bookings"),
        ("POST /events/{id}/bookings", "book", f"/api/v1/events/{write_event.pk}/bookings"),
        ("POST /concierge/requests", "post", "/api/v1/concierge/requests"),
    ]
    only = {o.strip() for o in args.only.split(",") if o.strip()}
    operations = [op for op in operations if not only or op[0] == "GET /me" or op[0] in only or op[0] == args.profile]
    client = Client(SERVER_NAME="127.0.0.1")
    token_cycle = {name: itertools.cycle(tokens) for name, _, _ in operations}

    def call(name: str, mode: str, path: str):
        token = next(token_cycle[name])
        headers = {"HTTP_X_SESSION_TOKEN": token}
        if mode == "get":
            response = client.get(path, **headers)
        elif mode == "book":
            response = client.post(path, {"guests": 0}, content_type="application/json", **headers)
        else:
            response = client.post(
                path, {"category": "dining", "subject": "A table for two"}, content_type="application/json", **headers
            )
        if response.status_code >= 300 and not (mode == "book" and response.status_code == 409):
            sys.exit(f"{name}: {response.status_code} {response.content[:300]!r}")
        return response

    results = {}
    try:
        for name, mode, path in operations:
            for _ in range(30):
                call(name, mode, path)
            with CaptureQueriesContext(connection) as captured:
                call(name, mode, path)
            queries = len(captured.captured_queries)
            n = args.requests
            if name == args.profile:
                profile(lambda name=name, mode=mode, path=path: call(name, mode, path), n, name)
            # Batches of 50; the fastest batch counts (CPU time on a shared machine only ever grows with noise).
            cpus, walls = [], []
            for _ in range(max(1, n // 50)):
                cpu0, wall0 = time.thread_time(), time.perf_counter()
                for _ in range(min(n, 50)):
                    call(name, mode, path)
                cpus.append((time.thread_time() - cpu0) / min(n, 50) * 1000)
                walls.append((time.perf_counter() - wall0) / min(n, 50) * 1000)
            cpu, wall = min(cpus), min(walls)
            db0 = _backend_cpu(connection)
            for _ in range(n):
                call(name, mode, path)
            db = (_backend_cpu(connection) - db0) / n * 1000
            reset_queries()
            results[name] = (cpu, wall, queries, db)
    finally:
        from events.models import Booking

        Booking.objects.filter(event=write_event).delete()
        write_event.delete()
    floor = results["GET /me"][0]
    print(f"programme {programme.pk}; {args.requests} requests per operation, in-process, PostgreSQL")
    dbfloor = results["GET /me"][0] + results["GET /me"][3]
    print(
        f"{'operation':28s} {'cpu ms':>7s} {'wall ms':>8s} {'queries':>8s} {'floor/cpu':>9s} "
        f"{'db cpu ms':>9s} {'floor/all':>9s}"
    )
    for name, (cpu, wall, queries, db) in results.items():
        print(
            f"{name:28s} {cpu:7.2f} {wall:8.2f} {queries:8d} {floor / cpu:9.2f} {db:9.2f} {dbfloor / (cpu + db):9.2f}"
        )


def _backend_cpu(connection) -> float:
    """CPU seconds (user + system) of this connection's PostgreSQL backend so far, from /proc (same machine)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(fn, n: int, name: str) -> None:
    """cProfile on thread CPU time (not wall time: waits on PostgreSQL and Redis are not the server's CPU)."""
    import cProfile
    import pstats

    prof = cProfile.Profile(time.thread_time)
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    out = Path(tempfile.gettempdir()) / f"api_profile_{name.replace('/', '_').replace(' ', '')}.pstats"
    prof.dump_stats(out)
    print(f"profile of {name} (thread CPU, {n} requests): {out}")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(60)


if __name__ == "__main__":
    main()
