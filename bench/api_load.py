"""Member requests under load, as ratios to the authenticated floor (`GET /api/v1/me`) measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_apiload .venv/bin/python bench/api_load.py

What it does:
1. Seeds the PostgreSQL database (set-based, idempotent: a second run reuses the members): `--members` users with
   the member role, each the customer of an active treatment membership of the programme "API load bench", and
   an app session token each (Django sessions with fixed keys, as allauth's app client makes them); `--events`
   published free events to list and read, 3 bookings per member on them; a tier whose concierge allowance
   (1,000,000 a month) never runs out. Each run deletes the previous run's booked events and their bookings.
2. Starts gunicorn itself in production mode (`PREMIER_PRODUCTION=1`; gunicorn.conf.py, with `--workers` x
   `--threads`, 4 x 4 by default, and 2 x threads connections per worker) on `--port` (8100-8109 here), on
   PostgreSQL, with Redis (`--redis`, DB 3) as the cache (throttles) and the Celery broker, throttle rates raised
   (`API_THROTTLE_AUTH`).
3. Runs `wrk` (Debian package `wrk`; C, epoll, one thread) with bench/api_load.lua for every operation at 1 and
   16 clients for `--duration` seconds each: the floor `GET /me`, the reads `/events`, `/events/{id}`,
   `/me/membership`, `/bookings`, and the writes (a booking of a free event, a concierge request). Every request
   takes the next member in turn; every booking is a new (member, event) pair on events with room to spare,
   every concierge request a new row: the bench counts the rows created and the non-2xx answers apart. Bookings
   take the next member each request (`--book-order member`); `--book-order event` gives one member a booking
   on every event in turn, so that one member has as many bookings in flight as there are clients.
4. Prints per operation and client count: requests/s, p50, p99, non-2xx; the ratios (reads and writes to the
   floor's throughput at 16 clients, p99/p50 at 16 clients) against the targets of issue 16 (reads >= 0.6,
   writes >= 0.4, p99 <= 3 x p50), and the load generator's own CPU time (from its rusage) per second of load.

`--pin` runs gunicorn on CPUs 1.. and wrk on CPU 0 (taskset) when there are more than 2 CPUs; off by default.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_SECRET = "apiload-bench-secret-key-not-for-production-0123456789"
PROGRAMME = "API load bench"
TOKEN_PREFIX = "apiloadbench"
TARGETS = {"read": 0.6, "write": 0.4, "tail": 3.0}  # issue 16, at 16 clients


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20, help="Published events members list and read.")
    parser.add_argument("--duration", type=int, default=5, help="Seconds of load per operation, level and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Each operation runs once per round after the floor.")
    parser.add_argument(
        "--book-events", type=int, default=20, help="Events the booking runs spread over (1: one hot event)."
    )
    parser.add_argument(
        "--book-order",
        choices=["member", "event"],
        default="member",
        help="Bookings: the next member each request (member), or one member on every event in turn (event: as "
        "many bookings of one member in flight as clients, which PostgreSQL serializes on the membership row).",
    )
    parser.add_argument("--clients", default="1,16", help="Client counts (connections), comma-separated.")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--only", default="", help="Comma-separated operation names (the floor always runs).")
    parser.add_argument("--pin", action="store_true", help="taskset: wrk on CPU 0, gunicorn on the others.")
    parser.add_argument("--json", default="", help="Also write the results to this file.")
    return parser.parse_args()


def configure_environment(args: argparse.Namespace) -> None:
    """The seeding process and the server must share the secret key (session tokens are signed with it)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", BENCH_SECRET)
    os.environ["PREMIER_PRODUCTION"] = "1"
    os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_apiload_bench_only")
    os.environ["REDIS_URL"] = args.redis
    os.environ["CELERY_BROKER_URL"] = args.redis
    os.environ["API_THROTTLE_AUTH"] = "100000000/min"
    os.environ["API_THROTTLE_ANON"] = "100000000/min"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "600")


# ------------------------------------------------------------------------------------------------- seeding


def seed(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import User
    from events.models import Booking, Event, Partner
    from loyalty.models import Customer, Membership, Programme, Tier

    if not settings.IS_POSTGRES:
        sys.exit("Set DATABASE_URL to a PostgreSQL database (this benchmark measures the production path).")
    call_command("migrate", verbosity=0)
    now = timezone.now()
    n = args.members
    with transaction.atomic():
        programme, _ = Programme.objects.get_or_create(name=PROGRAMME, defaults={"seed": "apiload"})
        tier, _ = Tier.objects.update_or_create(
            programme=programme,
            rank=1,
            defaults={
                "name": "Gold",
                "threshold": 0,
                "guests_per_booking": 0,
                "monthly_request_allowance": 1_000_000,
                "first_response_sla_hours": 4,
                "resolution_sla_hours": 48,
            },
        )
        Tier.objects.get_or_create(programme=programme, rank=2, defaults={"name": "Platinum", "threshold": 90})
        emails = [f"apiload-{i}@bench.example" for i in range(n)]
        have = set(User.objects.filter(email__in=emails).values_list("email", flat=True))
        password = make_password(None)
        User.objects.bulk_create(
            [User(email=e, password=password, first_name="Bench") for e in emails if e not in have], batch_size=2000
        )
        users = list(User.objects.filter(email__in=emails).order_by("id"))
        member_group, _ = Group.objects.get_or_create(name="member")
        User.groups.through.objects.bulk_create(
            [User.groups.through(user_id=u.pk, group_id=member_group.pk) for u in users],
            batch_size=2000,
            ignore_conflicts=True,
        )
        Customer.objects.bulk_create(
            [
                Customer(external_id=f"apiload-{u.pk}", name=f"Bench member {u.pk}", joined_at=now, user=u)
                for u in users
            ],
            batch_size=2000,
            ignore_conflicts=True,
        )
        customers = list(Customer.objects.filter(user__in=users).order_by("user_id"))
        have_members = set(Membership.objects.filter(programme=programme).values_list("customer_id", flat=True))
        Membership.objects.bulk_create(
            [
                Membership(
                    programme=programme,
                    customer=c,
                    group="treatment",
                    status="active",
                    tier=tier,
                    enrolled_at=now,
                    assignment_seed="apiload",
                    assignment_bucket=50.0,
                )
                for c in customers
                if c.pk not in have_members
            ],
            batch_size=2000,
        )
        memberships = list(Membership.objects.filter(programme=programme).order_by("customer__user_id"))
        # Tokens: Django sessions with fixed keys, made anew each run (the hash follows the stored password).
        Session.objects.filter(session_key__startswith=TOKEN_PREFIX).delete()
        store = SessionStore()
        expire = now + timedelta(days=7)
        sessions = []
        for i, user in enumerate(users):
            data = {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
            sessions.append(
                Session(session_key=f"{TOKEN_PREFIX}{i:020d}", session_data=store.encode(data), expire_date=expire)
            )
        Session.objects.bulk_create(sessions, batch_size=2000)
        tokens = [s.session_key for s in sessions]

        # The previous run's booked events go (with their bookings); concierge requests stay (their audit trail is
        # append-only; the tier's allowance of 1,000,000 a month does not run out).
        partner, _ = Partner.objects.get_or_create(name="API load bench partner")
        write_events = Event.objects.filter(partner=partner, title__startswith="Write ")
        Booking.objects.filter(event__in=write_events).delete()
        write_events.delete()

        def event(title: str) -> Event:
            return Event(
                partner=partner,
                title=title,
                venue="Bench hall",
                description="A benchmark event.",
                starts_at=now + timedelta(days=60),
                ends_at=now + timedelta(days=60, hours=3),
                capacity=1_000_000,
                min_tier_rank=1,
                booking_opens_at=now - timedelta(days=1),
                status=Event.Status.PUBLISHED,
                published_at=now,
            )

        read_events = list(Event.objects.filter(partner=partner, title__startswith="Read ").order_by("id"))
        if len(read_events) < args.events:
            Event.objects.bulk_create([event(f"Read {i}") for i in range(len(read_events), args.events)])
            read_events = list(Event.objects.filter(partner=partner, title__startswith="Read ").order_by("id"))
        Event.objects.filter(pk__in=[e.pk for e in read_events]).update(
            starts_at=now + timedelta(days=60), ends_at=now + timedelta(days=60, hours=3)
        )
        # Three bookings per member on the read events (for GET /bookings), once.
        booked = set(Booking.objects.filter(event__in=read_events).values_list("membership_id", flat=True))
        Booking.objects.bulk_create(
            [
                Booking(
                    event=read_events[(m.pk + k) % len(read_events)],
                    membership=m,
                    seats=1,
                    status=Booking.Status.CONFIRMED,
                    tier_rank=1,
                    amount=0,
                    currency="EUR",
                    created_at=now,
                    confirmed_at=now,
                )
                for m in memberships
                if m.pk not in booked
                for k in range(3)
            ],
            batch_size=2000,
        )
        for e in read_events:
            e.seats_booked = Booking.objects.filter(event=e, status=Booking.Status.CONFIRMED).count()
        Event.objects.bulk_update(read_events, ["seats_booked"])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    seeded = {
        "members": len(users),
        "tokens": tokens,
        "programme": programme.pk,
        "partner": partner.pk,
        "read_event": read_events[0].pk,
        "read_events": len(read_events),
    }
    return seeded


def make_write_events(partner_id: int, count: int, label: str) -> list[int]:
    from django.utils import timezone

    from events.models import Event

    now = timezone.now()
    events = Event.objects.bulk_create(
        [
            Event(
                partner_id=partner_id,
                title=f"Write {label} {i}",
                starts_at=now + timedelta(days=60),
                ends_at=now + timedelta(days=60, hours=3),
                capacity=1_000_000,
                min_tier_rank=1,
                booking_opens_at=now - timedelta(days=1),
                status=Event.Status.PUBLISHED,
                published_at=now,
            )
            for i in range(count)
        ]
    )
    return [e.pk for e in events]


def drop_write_events(event_ids: list[int]) -> None:
    from django.db import transaction

    from events.models import Booking, Event

    with transaction.atomic():
        list(Event.objects.select_for_update().filter(pk__in=event_ids).values_list("pk", flat=True))  # locked
        Booking.objects.filter(event_id__in=event_ids).delete()
        Event.objects.filter(pk__in=event_ids).delete()


def rows_created(kind: str, since_ids: dict) -> int:
    from concierge.models import ConciergeRequest
    from events.models import Booking

    if kind == "book":
        return Booking.objects.filter(event_id__in=since_ids["events"], status=Booking.Status.CONFIRMED).count()
    mine = ConciergeRequest.objects.filter(membership__programme_id=since_ids["programme"])
    return mine.filter(pk__gt=since_ids["request"]).count()


# --------------------------------------------------------------------------------------------------- server


def taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


def start_server(args: argparse.Namespace, token: str, cpus: str | None) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn with fixed arguments
        [
            *taskset(cpus),
            str(gunicorn),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--worker-connections",  # as gunicorn.conf.py: 2 x threads (the rest comes from that file)
            str(2 * args.threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=dict(os.environ),
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
            conn.request("GET", "/api/v1/me", headers={"X-Session-Token": token})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return server
            sys.exit(f"GET /api/v1/me answered {response.status}")
        except OSError:
            time.sleep(0.3)
    stop_server(server)
    sys.exit("gunicorn did not answer within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# ---------------------------------------------------------------------------------------------------- load


def run_wrk(args, *, clients: int, mode: str, path: str, tokens_file: str, events: list[int], cpus, duration) -> dict:
    """One wrk run (one thread, `clients` connections); its figures plus its own CPU seconds."""
    env = {
        **os.environ,
        "APILOAD_TOKENS": tokens_file,
        "APILOAD_MODE": mode,
        "APILOAD_PATH": path,
        "APILOAD_EVENTS": ",".join(map(str, events)),
        "APILOAD_THREADS": "1",
        "APILOAD_BOOK_ORDER": args.book_order,
    }
    command = [
        *taskset(cpus),
        "wrk",
        "-t1",
        f"-c{clients}",
        f"-d{int(duration)}s",
        "--timeout",
        "30s",
        "-s",
        str(ROOT / "bench" / "api_load.lua"),
        f"http://127.0.0.1:{args.port}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration + 60)  # noqa: S603
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
    if line is None:
        sys.exit(f"wrk gave no figures:\n{done.stdout}\n{done.stderr}")
    result = json.loads(line)
    seconds = result["duration_us"] / 1e6
    result["rps"] = (result["requests"] - result["non_2xx"]) / seconds
    result["seconds"] = seconds
    result["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


OPERATIONS = [
    # name, kind, mode, path (None: filled in)
    ("GET /me", "floor", "get", "/api/v1/me"),
    ("GET /events", "read", "get", "/api/v1/events"),
    ("GET /events/{id}", "read", "get", None),
    ("GET /me/membership", "read", "get", "/api/v1/me/membership"),
    ("GET /bookings", "read", "get", "/api/v1/bookings"),
    ("POST /events/{id}/bookings", "write", "book", None),
    ("POST /concierge/requests", "write", "concierge", None),
]


def main() -> None:
    args = parse_args()
    configure_environment(args)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk).")
    levels = [int(c) for c in args.clients.split(",")]
    started = time.perf_counter()
    seeded = seed(args)
    print(
        f"seed: {seeded['members']} members, {seeded['read_events']} events to read "
        f"({time.perf_counter() - started:.1f} s)"
    )
    from django.db import connection

    from concierge.models import ConciergeRequest

    ncpu = os.cpu_count() or 1
    server_cpus = wrk_cpus = None
    if args.pin and ncpu > 2:
        server_cpus, wrk_cpus = f"1-{ncpu - 1}", "0"
    connection.close()

    workdir = Path(tempfile.mkdtemp(prefix="apiload-"))
    tokens_file = workdir / "tokens.txt"
    tokens_file.write_text("\n".join(seeded["tokens"]) + "\n")
    only = {o.strip() for o in args.only.split(",") if o.strip()}
    operations = [op for op in OPERATIONS if not only or op[1] == "floor" or op[0] in only]
    server = start_server(args, seeded["tokens"][0], server_cpus)
    results: list[dict] = []
    try:
        # Warm-up: every worker and thread imports, connects, fills its caches.
        for _, _, mode, path in [op for op in operations if op[2] == "get"]:
            run_wrk(
                args,
                clients=16,
                mode=mode,
                path=path or f"/api/v1/events/{seeded['read_event']}",
                tokens_file=str(tokens_file),
                events=[],
                cpus=wrk_cpus,
                duration=1,
            )
        # Rounds: every operation runs right after the floor of its round, so a ratio compares figures taken
        # within seconds of each other on this shared machine; the report takes the median over rounds.
        for clients in levels:
            for round_no in range(1, args.rounds + 1):
                for name, kind, mode, path in operations:
                    events: list[int] = []
                    since: dict = {}
                    if mode == "book":
                        label = f"{clients}-{round_no}-{int(time.time())}"
                        events = make_write_events(seeded["partner"], args.book_events, label)
                        since = {"events": events}
                    elif mode == "concierge":
                        last = ConciergeRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
                        since = {"request": last, "programme": seeded["programme"]}
                    connection.close()
                    result = run_wrk(
                        args,
                        clients=clients,
                        mode=mode,
                        path=path or f"/api/v1/events/{seeded['read_event']}",
                        tokens_file=str(tokens_file),
                        events=events,
                        cpus=wrk_cpus,
                        duration=args.duration,
                    )
                    if kind == "write":
                        time.sleep(3)  # requests in flight when wrk stopped still commit
                        result["rows_created"] = rows_created(mode, since)
                        if events:  # the booked events go at once: members must not see them in GET /events
                            drop_write_events(events)
                        connection.close()
                    result.update(name=name, kind=kind, clients=clients, round=round_no)
                    results.append(result)
                    print(
                        f"round {round_no} {name:28s} {clients:3d} clients: {result['rps']:8.1f} req/s"
                        f"  p50 {result['p50_us'] / 1000:7.1f} ms  p99 {result['p99_us'] / 1000:7.1f} ms"
                        f"  non-2xx {result['non_2xx']}"
                        + (f"  rows created {result['rows_created']}" if kind == "write" else "")
                        + f"  wrk cpu {100 * result['wrk_cpu_s'] / result['seconds']:.1f}%",
                        flush=True,
                    )
    finally:
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)
    report(args, results, levels, operations)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(args, results: list[dict], levels: list[int], operations) -> None:
    top = max(levels)
    floor = {(r["clients"], r["round"]): r["rps"] for r in results if r["kind"] == "floor"}
    print()
    print(
        f"gunicorn {args.workers} workers x {args.threads} threads (gthread), production settings, PostgreSQL, "
        f"Redis cache and broker; wrk 1 thread; {args.rounds} rounds of {args.duration:.0f} s per operation and "
        f"level; medians over rounds; {os.cpu_count()} CPUs" + (" (pinned)" if args.pin else "")
    )
    cells = " ".join(f"{f'req/s@{c}':>10s} {f'ratio@{c}':>8s}" for c in levels)
    print(f"{'operation':28s} {cells} {f'p50@{top}':>9s} {f'p99@{top}':>9s} {'p99/p50':>8s}  targets at {top}")
    summary = []
    all_met = True
    for name, kind, _, _ in operations:
        runs = [r for r in results if r["name"] == name]
        row: dict = {"name": name, "kind": kind}
        line = f"{name:28s} "
        for c in levels:
            mine = [r for r in runs if r["clients"] == c]
            rps = median([r["rps"] for r in mine])
            ratio = median([r["rps"] / floor[(c, r["round"])] for r in mine if floor.get((c, r["round"]))])
            row[f"rps_{c}"], row[f"ratio_{c}"] = rps, ratio
            row[f"p50_ms_{c}"] = median([r["p50_us"] / 1000 for r in mine])
            row[f"p99_ms_{c}"] = median([r["p99_us"] / 1000 for r in mine])
            row[f"non_2xx_{c}"] = sum(r["non_2xx"] for r in mine)
            if kind == "write":
                row[f"rows_created_{c}"] = sum(r["rows_created"] for r in mine)
            line += f"{rps:10.1f} {ratio:8.2f} "
        tail = median([r["p99_us"] / r["p50_us"] for r in runs if r["clients"] == top and r["p50_us"]])
        row["p99_over_p50"] = tail
        checks = []
        if kind in TARGETS:
            ok = row[f"ratio_{top}"] >= TARGETS[kind]
            checks.append(f"ratio >= {TARGETS[kind]} {'met' if ok else 'MISSED'}")
            all_met &= ok
        ok = tail <= TARGETS["tail"]
        checks.append(f"p99 <= 3 x p50 {'met' if ok else 'MISSED'}")
        if kind != "floor":
            all_met &= ok
        line += f"{row[f'p50_ms_{top}']:7.1f}ms {row[f'p99_ms_{top}']:7.1f}ms {tail:8.2f}  " + "; ".join(checks)
        print(line)
        summary.append(row)
    for row in summary:
        if row["kind"] == "write":
            made = ", ".join(f"{row[f'rows_created_{c}']} rows at {c}" for c in levels)
            bad = sum(row[f"non_2xx_{c}"] for c in levels)
            print(f"{row['name']}: {made} created; non-2xx answers {bad}")
    wrk_cpu = sum(r["wrk_cpu_s"] for r in results)
    load_s = sum(r["seconds"] for r in results)
    print(
        f"load generator (wrk, one thread): {wrk_cpu:.2f} CPU s over {load_s:.0f} s of load "
        f"({100 * wrk_cpu / load_s:.1f}% of one core on average, "
        f"{100 * max(r['wrk_cpu_s'] / r['seconds'] for r in results):.1f}% at most)"
    )
    print(f"targets: {'all met' if all_met else 'some missed'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": summary}, indent=2))


if __name__ == "__main__":
    main()
