"""Booking benchmark: the API under gunicorn on PostgreSQL, 64 concurrent clients over loopback booking a
1,000-seat free event, every request from a distinct member (one booking per member per event).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_bench .venv/bin/python bench/booking.py

More attempts than seats are sent (default 1,200 for 1,000 seats), so the last requests race for the last
seats and get 409 `event_full`. Prints bookings/s, p50/p99 latency, and the overbooking check: seats booked
above capacity plus any mismatch between the event's seat counter and the bookings (must be 0).
Bounded: setup is bulk SQL, every request has a timeout and the run stops at --max-seconds."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seats", type=int, default=1000)
    parser.add_argument("--attempts", type=int, default=1200, help="Booking requests, one distinct member each.")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--port", type=int, default=8797)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    return parser.parse_args()


def setup(attempts: int, seats: int) -> tuple[int, list[str]]:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.models import User
    from events.models import Event, Partner
    from loyalty.models import Customer, Membership, Programme, Tier

    if not settings.IS_POSTGRES:
        sys.exit("Set DATABASE_URL to a PostgreSQL database (this benchmark is about PostgreSQL under load).")
    call_command("migrate", verbosity=0)
    run = uuid.uuid4().hex[:8]
    now = timezone.now()
    programme = Programme.objects.create(name=f"Bench {run}", seed=run)
    tier = Tier.objects.create(programme=programme, rank=1, name="Gold", threshold=0, guests_per_booking=0)
    password = make_password(None)
    users = User.objects.bulk_create(
        [User(email=f"bench-{run}-{i}@example.test", password=password) for i in range(attempts)], batch_size=1000
    )
    member_group = Group.objects.get(name="member")
    User.groups.through.objects.bulk_create(
        [User.groups.through(user_id=u.pk, group_id=member_group.pk) for u in users], batch_size=1000
    )
    customers = Customer.objects.bulk_create(
        [
            Customer(external_id=f"bench-{run}-{i}", name=f"Bench {i}", joined_at=now, user=u)
            for i, u in enumerate(users)
        ],
        batch_size=1000,
    )
    Membership.objects.bulk_create(
        [
            Membership(
                programme=programme,
                customer=c,
                group="treatment",
                status="active",
                tier=tier,
                enrolled_at=now,
                assignment_seed=run,
                assignment_bucket=50.0,
            )
            for c in customers
        ],
        batch_size=1000,
    )
    tokens = []
    for user in users:  # app-client session tokens are Django session keys
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        tokens.append(session.session_key)
    partner = Partner.objects.create(name=f"Bench partner {run}")
    event = Event.objects.create(
        partner=partner,
        title=f"Bench gala {run}",
        starts_at=now + timedelta(days=30),
        ends_at=now + timedelta(days=30, hours=3),
        capacity=seats,
        min_tier_rank=1,
        booking_opens_at=now - timedelta(days=1),
        status="published",
        published_at=now,
    )
    from django.db import connection

    connection.close()
    return event.pk, tokens


def start_server(args: argparse.Namespace) -> subprocess.Popen:
    env = {
        **os.environ,
        "API_THROTTLE_AUTH": "1000000/min",
        "API_THROTTLE_ANON": "1000000/min",
        "LOG_LEVEL": "WARNING",
        "DATABASE_CONN_MAX_AGE": "600",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn with fixed arguments
        [
            str(gunicorn),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(args.threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    sys.exit("gunicorn did not become healthy within 30 s")


def run_clients(
    args: argparse.Namespace, event_id: int, tokens: list[str]
) -> tuple[list[float], dict[int, int], float]:
    work: queue.Queue[str] = queue.Queue()
    for token in tokens:
        work.put(token)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + args.max_seconds
    start = threading.Barrier(args.clients + 1)
    path = f"/api/v1/events/{event_id}/bookings"
    body = json.dumps({"guests": 0})

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
        start.wait()
        while time.monotonic() < stop_at:
            try:
                token = work.get_nowait()
            except queue.Empty:
                break
            began = time.perf_counter()
            try:
                conn.request(
                    "POST", path, body=body, headers={"Content-Type": "application/json", "X-Session-Token": token}
                )
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
                status = 0
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=args.max_seconds + 15)
    return latencies, statuses, time.perf_counter() - began


def check(event_id: int) -> dict:
    from django.db.models import Sum

    from events.models import Booking, Event

    event = Event.objects.get(pk=event_id)
    seat_rows = Booking.objects.filter(event_id=event_id, status__in=Booking.SEAT_STATUSES)
    seats_in_bookings = seat_rows.aggregate(total=Sum("seats"))["total"] or 0
    return {
        "capacity": event.capacity,
        "seats_booked": event.seats_booked,
        "seats_in_bookings": seats_in_bookings,
        "confirmed": seat_rows.filter(status="confirmed").count(),
        "overbooked": max(seats_in_bookings - event.capacity, 0) + abs(event.seats_booked - seats_in_bookings),
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def main() -> None:
    args = parse_args()
    t0 = time.perf_counter()
    event_id, tokens = setup(args.attempts, args.seats)
    print(
        f"setup: {args.attempts} members, event {event_id} with {args.seats} seats ({time.perf_counter() - t0:.1f} s)"
    )
    server = start_server(args)
    try:
        latencies, statuses, elapsed = run_clients(args, event_id, tokens)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    result = check(event_id)
    booked = statuses.get(201, 0)
    print(
        f"gunicorn {args.workers} workers x {args.threads} threads, {args.clients} clients, "
        f"{len(latencies)} requests in {elapsed:.2f} s"
    )
    print(f"responses: {dict(sorted(statuses.items()))}")
    print(f"bookings/s: {booked / elapsed:.1f} (all requests/s: {len(latencies) / elapsed:.1f})")
    if latencies:
        print(f"latency p50: {percentile(latencies, 50) * 1000:.1f} ms  p99: {percentile(latencies, 99) * 1000:.1f} ms")
    print(
        f"seats: capacity {result['capacity']}, counter {result['seats_booked']}, in bookings "
        f"{result['seats_in_bookings']}, confirmed bookings {result['confirmed']}"
    )
    print(f"overbooking check: {result['overbooked']} (must be 0)")
    sys.exit(1 if result["overbooked"] else 0)


if __name__ == "__main__":
    main()
