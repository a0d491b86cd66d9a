"""Deterministic, realistic demo population: customers, 12 months of revenue and channel interactions.

The same `seed` and `as_of` give the same population. Shape (design page, section 1):
- revenue is heavy-tailed: monthly ARPU is lognormal (median about 30, sigma 1.2), so the top fifth of the
  customers bring well over half of the revenue; business customers and weekly interactors spend more;
- each customer uses each contact channel independently with the field-research share (phone 68%, online 52%,
  store 35%, email 34%, social 31%, app 29%); about 3% use none;
- about a fifth are weekly interactors (more among the young, fewer among the over-65s), the rest monthly;
  interactions are spread over the customer's active span so weekly interactors are active most weeks;
- ages 18-84, six regions, joined 1-12 years ago (15% within the last year), about 9% churned during the year
  (status `churned`, `churned_at` set, no activity after it).

On PostgreSQL everything is generated inside the database (generate_series and `hashint8extended` as a seeded
pseudo-random function), block by block: a million customers and about twenty million interactions take
minutes. On SQLite the same distributions come from Python's `random.Random(seed)` and are written in batches.
External ids start with `D` so demo rows never clash with CRM ids; a second run skips existing rows.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction

CHANNEL_SHARES: dict[str, float] = {
    "phone": 0.68,
    "online": 0.52,
    "store": 0.35,
    "email": 0.34,
    "social": 0.31,
    "app": 0.29,
}
CHANNEL_KINDS = {
    "phone": "call",
    "online": "web_session",
    "store": "store_visit",
    "email": "email",
    "social": "social_message",
    "app": "app_session",
}
REGIONS = [("capital", 0.28), ("north", 0.18), ("south", 0.17), ("east", 0.13), ("west", 0.12), ("central", 0.12)]
PLANS = ["prepaid", "sim_only", "postpaid_s", "postpaid_m", "postpaid_l", "family"]
FIRST_NAMES = [
    "Alice",
    "Amir",
    "Anna",
    "Ben",
    "Camille",
    "Chloe",
    "David",
    "Elena",
    "Emma",
    "Farid",
    "Fatima",
    "Gabriel",
    "Hugo",
    "Ines",
    "Jade",
    "Jonas",
    "Julia",
    "Karim",
    "Lea",
    "Leo",
    "Lina",
    "Louis",
    "Lucas",
    "Maria",
    "Mateo",
    "Mia",
    "Nadia",
    "Noah",
    "Nora",
    "Oscar",
    "Paul",
    "Rosa",
    "Sami",
    "Sara",
    "Sofia",
    "Tom",
    "Yara",
    "Yusuf",
    "Zoe",
    "Ivan",
]
LAST_NAMES = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "Andre",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "Francois",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guerin",
    "Muller",
    "Henry",
    "Roussel",
    "Nicolas",
    "Perrin",
]

WINDOW_DAYS = 365
CHURN_SHARE = 0.09
RECENT_JOIN_SHARE = 0.15
BUSINESS_SHARE = 0.12
BLOCK = 50_000  # customers per block on PostgreSQL (one progress step)

Progress = Callable[[str, int, int], None]


def _noop(stage: str, done: int, total: int) -> None:
    return None


def demo_window(as_of: date) -> tuple[datetime, datetime]:
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    return end - timedelta(days=WINDOW_DAYS), end


def demo_data_generate(
    *, customers: int, seed: int, as_of: date | None = None, progress: Progress | None = None
) -> dict[str, int]:
    """Create `customers` demo customers with their history. Returns counts of rows written."""
    as_of = as_of or datetime.now(UTC).date()
    progress = progress or _noop
    if connection.vendor == "postgresql":
        return _generate_postgres(customers=customers, seed=seed, as_of=as_of, progress=progress)
    return _generate_python(customers=customers, seed=seed, as_of=as_of, progress=progress)


# --------------------------------------------------------------------------------------------------------------
# PostgreSQL: generated in the database.


def _pg_sql_params(seed: int, as_of: date) -> dict:
    start, end = demo_window(as_of)
    return {"seed": seed, "start": start, "end": end}


# u(x, salt): uniform [0, 1) from the seeded hash of a bigint.
def _u(expr: str, salt: int) -> str:
    hashed = f"hashint8extended(({expr})::bigint, %(seed)s::bigint * 1000 + {salt})"
    return f"(({hashed} & 2147483647)::float8 / 2147483648.0)"


def _pg_customer_params_sql() -> str:
    """Per-customer parameters for customers i in [lo, hi], as a temp table `demo_seed`."""
    first = "ARRAY[" + ",".join(f"'{n}'" for n in FIRST_NAMES) + "]"
    last = "ARRAY[" + ",".join(f"'{n}'" for n in LAST_NAMES) + "]"
    plans = "ARRAY[" + ",".join(f"'{p}'" for p in PLANS) + "]"
    region_case = "CASE"
    acc = 0.0
    for name, share in REGIONS[:-1]:
        acc += share
        region_case += f" WHEN {_u('i', 6)} < {acc:.4f} THEN '{name}'"
    region_case += f" ELSE '{REGIONS[-1][0]}' END"
    channel_flags = ", ".join(
        f"{_u('i', 20 + n)} < {share} AS use_{channel}" for n, (channel, share) in enumerate(CHANNEL_SHARES.items())
    )
    return f"""
        CREATE TEMP TABLE demo_seed ON COMMIT DROP AS
        WITH base AS (
            SELECT i,
                   'D' || lpad(i::text, 8, '0') AS ext,
                   ({first})[1 + floor({_u("i", 1)} * {len(FIRST_NAMES)})::int] AS first_name,
                   ({last})[1 + floor({_u("i", 2)} * {len(LAST_NAMES)})::int] AS last_name,
                   18 + floor(({_u("i", 3)} + {_u("i", 4)} + {_u("i", 5)}) / 3 * 60)::int AS age,
                   {region_case} AS region,
                   {_u("i", 7)} < {BUSINESS_SHARE} AS business,
                   ({plans})[1 + floor({_u("i", 8)} * {len(PLANS)})::int] AS plan,
                   CASE WHEN {_u("i", 9)} < {RECENT_JOIN_SHARE}
                        THEN %(start)s::timestamptz + {_u("i", 10)} * interval '360 days'
                        ELSE %(start)s::timestamptz - (1 + {_u("i", 10)} * 11) * interval '365 days'
                   END AS joined_at,
                   {_u("i", 11)} < {CHURN_SHARE} AS churns,
                   {_u("i", 12)} AS u_churn, {_u("i", 13)} AS u_weekly, {_u("i", 14)} AS u_freq,
                   sqrt(-2 * ln(1 - {_u("i", 15)})) * cos(2 * pi() * {_u("i", 16)}) AS z,
                   {channel_flags}
            FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
        ), shaped AS (
            SELECT b.*,
                   CASE WHEN b.churns AND b.joined_at < %(end)s::timestamptz - interval '40 days'
                        THEN greatest(b.joined_at, %(start)s::timestamptz) + interval '30 days'
                             + b.u_churn * (%(end)s::timestamptz - interval '1 day'
                                            - greatest(b.joined_at, %(start)s::timestamptz) - interval '30 days')
                   END AS churned_at,
                   b.u_weekly < CASE WHEN b.age < 35 THEN 0.30 WHEN b.age >= 65 THEN 0.10 ELSE 0.21 END AS weekly,
                   array_remove(ARRAY[
                       CASE WHEN b.use_phone THEN 'phone' END, CASE WHEN b.use_online THEN 'online' END,
                       CASE WHEN b.use_store THEN 'store' END, CASE WHEN b.use_email THEN 'email' END,
                       CASE WHEN b.use_social THEN 'social' END, CASE WHEN b.use_app THEN 'app' END
                   ], NULL) AS channels
            FROM base b
        )
        SELECT s.*,
               greatest(s.joined_at, %(start)s::timestamptz) AS active_from,
               coalesce(s.churned_at, %(end)s::timestamptz) AS active_to,
               -- Monthly ARPU: lognormal, higher for business customers and weekly interactors.
               30 * exp(1.2 * s.z) * CASE WHEN s.business THEN 2.5 ELSE 1 END
                  * CASE WHEN s.weekly THEN 1.4 ELSE 1 END AS arpu
        FROM shaped s
    """


def _generate_postgres(*, customers: int, seed: int, as_of: date, progress: Progress) -> dict[str, int]:
    params = _pg_sql_params(seed, as_of)
    counts = {"customers": 0, "revenue_entries": 0, "interactions": 0}
    kind_case = "CASE ch " + " ".join(f"WHEN '{c}' THEN '{k}'" for c, k in CHANNEL_KINDS.items()) + " END"
    for lo in range(1, customers + 1, BLOCK):
        hi = min(customers, lo + BLOCK - 1)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
            # ON COMMIT DROP is not enough inside an outer transaction (tests, callers' atomic blocks).
            cursor.execute("DROP TABLE IF EXISTS demo_seed, demo_map")
            cursor.execute(_pg_customer_params_sql(), {**params, "lo": lo, "hi": hi})
            cursor.execute(
                """
                INSERT INTO loyalty_customer (external_id, name, email, phone, birth_year, region, attributes,
                                              joined_at, status, churned_at, created_at, updated_at)
                SELECT ext, first_name || ' ' || last_name,
                       lower(first_name || '.' || last_name || '.' || i) || '@example.com',
                       '+3360' || lpad(i::text, 7, '0'),
                       extract(year FROM %(end)s::timestamptz)::int - age,
                       region,
                       jsonb_build_object('plan', plan, 'segment', CASE WHEN business THEN 'business'
                                                                        ELSE 'consumer' END,
                                          'weekly_interactor', weekly),
                       joined_at,
                       CASE WHEN churned_at IS NULL THEN 'active' ELSE 'churned' END,
                       churned_at, now(), now()
                FROM demo_seed
                ON CONFLICT (external_id) DO NOTHING
                """,
                params,
            )
            counts["customers"] += cursor.rowcount
            cursor.execute(
                """
                CREATE TEMP TABLE demo_map ON COMMIT DROP AS
                SELECT s.*, c.id AS customer_id FROM demo_seed s JOIN loyalty_customer c ON c.external_id = s.ext
                """
            )
            # One billing line per month the customer was active in the window.
            cursor.execute(
                f"""
                INSERT INTO loyalty_revenueentry (customer_id, period, amount, currency, kind, external_id,
                                                  created_at)
                SELECT customer_id, period,
                       round((arpu * (0.85 + 0.3 * {_u("i * 16 + m", 30)}))::numeric, 2),
                       'EUR', 'billing', ext || '-R' || to_char(period, 'YYYYMM'), now()
                FROM demo_map,
                     LATERAL generate_series(0, 11) AS m,
                     LATERAL (SELECT (date_trunc('month', %(end)s::timestamptz) - (11 - m) * interval '1 month')::date
                              AS period) p
                WHERE p.period >= date_trunc('month', active_from)::date
                  AND p.period <= active_to::date
                ON CONFLICT (external_id) DO NOTHING
                """,
                params,
            )
            counts["revenue_entries"] += cursor.rowcount
            # Weekly interactors: 1-1.5 interactions per week of their active span; monthly: per month.
            cursor.execute(
                f"""
                INSERT INTO loyalty_interaction (customer_id, channel, occurred_at, kind, external_id)
                SELECT customer_id, ch, occurred_at, {kind_case}, ext || '-I' || k
                FROM (
                    SELECT d.customer_id, d.ext, k,
                           -- every channel the customer uses shows up at least once, then random channels
                           d.channels[CASE WHEN k <= cardinality(d.channels) THEN k::int
                                      ELSE 1 + floor({_u("d.i * 4096 + k", 40)} * cardinality(d.channels))::int
                                      END] AS ch,
                           d.active_from + (d.active_to - d.active_from) * ((k - 1 + {_u("d.i * 4096 + k", 41)}) / n)
                               AS occurred_at
                    FROM (
                        SELECT demo_map.*,
                               greatest(1, round(extract(epoch FROM active_to - active_from)
                                                 / CASE WHEN weekly THEN 604800.0 ELSE 2629800.0 END
                                                 * (1 + 0.5 * u_freq)))::int AS n
                        FROM demo_map
                        WHERE cardinality(channels) > 0 AND active_to > active_from
                    ) d, LATERAL generate_series(1, d.n) AS k
                ) x
                ON CONFLICT (external_id) DO NOTHING
                """,
                params,
            )
            counts["interactions"] += cursor.rowcount
            cursor.execute("DROP TABLE demo_seed, demo_map")
        progress("customers", hi, customers)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE loyalty_customer")
        cursor.execute("ANALYZE loyalty_revenueentry")
        cursor.execute("ANALYZE loyalty_interaction")
    return counts


# --------------------------------------------------------------------------------------------------------------
# Python (SQLite and any other backend): same distributions from random.Random(seed), batched writes.


def _weighted(rng: random.Random, choices: list[tuple[str, float]]) -> str:
    r, acc = rng.random(), 0.0
    for name, share in choices:
        acc += share
        if r < acc:
            return name
    return choices[-1][0]


def _python_customers(customers: int, seed: int, as_of: date) -> Iterator[tuple[dict, list[tuple], list[tuple]]]:
    start, end = demo_window(as_of)
    rng = random.Random(seed)
    month_starts = []
    for m in range(12):
        y, mo = end.year, end.month - (11 - m)
        while mo <= 0:
            mo += 12
            y -= 1
        month_starts.append(date(y, mo, 1))
    for i in range(1, customers + 1):
        ext = f"D{i:08d}"
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        age = 18 + int((rng.random() + rng.random() + rng.random()) / 3 * 60)
        region = _weighted(rng, REGIONS)
        business = rng.random() < BUSINESS_SHARE
        plan = rng.choice(PLANS)
        if rng.random() < RECENT_JOIN_SHARE:
            joined_at = start + timedelta(days=360 * rng.random())
        else:
            joined_at = start - timedelta(days=365 * (1 + 11 * rng.random()))
        active_from = max(joined_at, start)
        churned_at = None
        if rng.random() < CHURN_SHARE and joined_at < end - timedelta(days=40):
            lo = active_from + timedelta(days=30)
            churned_at = lo + (end - timedelta(days=1) - lo) * rng.random()
        weekly = rng.random() < (0.30 if age < 35 else 0.10 if age >= 65 else 0.21)
        channels = [c for c, share in CHANNEL_SHARES.items() if rng.random() < share]
        z = math.sqrt(-2 * math.log(1 - rng.random())) * math.cos(2 * math.pi * rng.random())
        arpu = 30 * math.exp(1.2 * z) * (2.5 if business else 1) * (1.4 if weekly else 1)
        active_to = churned_at or end
        customer = {
            "external_id": ext,
            "name": f"{first} {last}",
            "email": f"{first}.{last}.{i}@example.com".lower(),
            "phone": f"+3360{i:07d}",
            "birth_year": end.year - age,
            "region": region,
            "attributes": {
                "plan": plan,
                "segment": "business" if business else "consumer",
                "weekly_interactor": weekly,
            },
            "joined_at": joined_at,
            "status": "churned" if churned_at else "active",
            "churned_at": churned_at,
        }
        revenue = []
        for period in month_starts:
            if period >= date(active_from.year, active_from.month, 1) and period <= active_to.date():
                amount = Decimal(str(round(arpu * (0.85 + 0.3 * rng.random()), 2)))
                revenue.append((period, amount, "EUR", "billing", f"{ext}-R{period:%Y%m}"))
        interactions = []
        if channels and active_to > active_from:
            span = (active_to - active_from).total_seconds()
            n = max(1, round(span / (604800.0 if weekly else 2629800.0) * (1 + 0.5 * rng.random())))
            for k in range(1, n + 1):
                ch = channels[k - 1] if k <= len(channels) else channels[int(rng.random() * len(channels))]
                occurred = active_from + timedelta(seconds=span * (k - 1 + rng.random()) / n)
                interactions.append((ch, occurred, CHANNEL_KINDS[ch], f"{ext}-I{k}"))
        yield customer, revenue, interactions


def _generate_python(*, customers: int, seed: int, as_of: date, progress: Progress) -> dict[str, int]:
    from loyalty.customers.models import Customer

    counts = {"customers": 0, "revenue_entries": 0, "interactions": 0}
    batch_size = 2000
    pending: list[tuple[dict, list, list]] = []
    qn = connection.ops.quote_name

    def flush() -> None:
        if not pending:
            return
        now = datetime.now(UTC)
        ops = connection.ops
        created = ops.adapt_datetimefield_value(now)
        with transaction.atomic(), connection.cursor() as cursor:
            exts = [c["external_id"] for c, _, _ in pending]
            existing = set(Customer.objects.filter(external_id__in=exts).values_list("external_id", flat=True))
            fresh = [p for p in pending if p[0]["external_id"] not in existing]
            cursor.executemany(
                f"INSERT INTO {qn('loyalty_customer')} (external_id, name, email, phone, birth_year, region, "
                "attributes, joined_at, status, churned_at, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        c["external_id"],
                        c["name"],
                        c["email"],
                        c["phone"],
                        c["birth_year"],
                        c["region"],
                        json.dumps(c["attributes"]),
                        connection.ops.adapt_datetimefield_value(c["joined_at"]),
                        c["status"],
                        connection.ops.adapt_datetimefield_value(c["churned_at"]),
                        connection.ops.adapt_datetimefield_value(now),
                        connection.ops.adapt_datetimefield_value(now),
                    )
                    for c, _, _ in fresh
                ],
            )
            ids = dict(
                Customer.objects.filter(external_id__in=[c["external_id"] for c, _, _ in fresh]).values_list(
                    "external_id", "id"
                )
            )
            revenue_rows, interaction_rows = [], []
            for c, revenue, interactions in fresh:
                cid = ids[c["external_id"]]
                revenue_rows += [
                    (cid, ops.adapt_datefield_value(p), ops.adapt_decimalfield_value(a, 14, 2), cur, k, e, created)
                    for p, a, cur, k, e in revenue
                ]
                interaction_rows += [
                    (cid, ch, connection.ops.adapt_datetimefield_value(at), kind, e) for ch, at, kind, e in interactions
                ]
            cursor.executemany(
                f"INSERT INTO {qn('loyalty_revenueentry')} (customer_id, period, amount, currency, kind, "
                "external_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                revenue_rows,
            )
            cursor.executemany(
                f"INSERT INTO {qn('loyalty_interaction')} (customer_id, channel, occurred_at, kind, external_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                interaction_rows,
            )
        counts["customers"] += len(fresh)
        counts["revenue_entries"] += len(revenue_rows)
        counts["interactions"] += len(interaction_rows)
        pending.clear()

    for n, item in enumerate(_python_customers(customers, seed, as_of), start=1):
        pending.append(item)
        if len(pending) >= batch_size:
            flush()
            progress("customers", n, customers)
    flush()
    progress("customers", customers, customers)
    return counts
