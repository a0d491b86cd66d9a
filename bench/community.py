"""Community benchmark on PostgreSQL. Run by a person, not by the test suite:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_bench python bench/community.py

Builds set-based (generate_series), under a fresh tag: 100,000 members, 10,000 ideas in one round with
1,000,000 votes (skewed: the first ideas get most), an ambassador campaign with 2,000 nominees (1,000
ambassadors, 1,000 held out) and 200,000 referred customers attributed over four generations (80,000 /
60,000 / 40,000 / 20,000; half converted, with revenue). Then times, each a few times (median, min-max):
- the idea list sorted by votes, first page of 50 with its count (the API's selector and schema);
- the campaign report;
- the influence metric for every customer (recursive chain credit + votes, written to loyalty's table);
and, as the reference measured in the same run, a plain `count(*)` over the 1,000,000 votes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from community.models import Campaign, Round  # noqa: E402
from community.schemas import CampaignReportOut, IdeaOut  # noqa: E402
from community.selectors import campaign_report, round_ideas  # noqa: E402
from community.services.influence import influence_refresh  # noqa: E402
from loyalty.models import Customer, Programme, Tier  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def _ids(cursor, prefix: str, count: int) -> int:
    """First id of the customers `prefix-1..count`, checked contiguous (one INSERT ... SELECT)."""
    cursor.execute("SELECT min(id), max(id), count(*) FROM loyalty_customer WHERE external_id LIKE %s", [f"{prefix}-%"])
    low, high, n = cursor.fetchone()
    assert n == count and high - low + 1 == count, "ids are not contiguous"
    return low


def build(members: int, ideas: int, votes: int, referrals: int) -> tuple[int, int, int]:
    # Four generations of 40%, 30%, 20% and 10% of the referrals.
    generations = [referrals * 4 // 10, referrals * 3 // 10, referrals * 2 // 10]
    generations.append(referrals - sum(generations))
    tag = f"cb{int(time.time())}"
    programme = Programme.objects.create(name=tag, seed=tag, holdout_percent=10)
    tier = Tier.objects.create(programme=programme, rank=1, name="Gold", threshold=0)
    campaign = Campaign.objects.create(
        programme=programme,
        name=tag,
        starts_at=START,
        ends_at=datetime(2027, 1, 1, tzinfo=UTC),
        holdout_percent=50,
        max_ambassadors=2000,
    )
    round_ = Round.objects.create(title=tag, starts_at=START, ends_at=datetime(2027, 1, 1, tzinfo=UTC), budget=100_000)
    referred = referrals
    t0 = time.perf_counter()
    with connection.cursor() as c:
        for prefix, count, joined in ((f"{tag}-m", members, "2020-01-01"), (f"{tag}-r", referred, "2026-01-15")):
            c.execute(
                """INSERT INTO loyalty_customer (external_id, name, email, phone, region, attributes, joined_at,
                   status, created_at, updated_at)
                   SELECT %s || '-' || g, 'Member ' || g || ' Example', '', '', '', '{}', %s::timestamptz, 'active',
                          now(), now()
                   FROM generate_series(1, %s) g ORDER BY g""",
                [prefix, joined, count],
            )
        m0 = _ids(c, f"{tag}-m", members)  # member g has id m0 + g - 1
        r0 = _ids(c, f"{tag}-r", referred)
        c.execute(
            """INSERT INTO loyalty_membership (programme_id, customer_id, "group", tier_id, status, enrolled_at,
               assignment_seed, assignment_bucket, override_reason)
               SELECT %s, g, 'treatment', %s, 'active', '2025-01-01', %s, 50, ''
               FROM generate_series(%s, %s) g""",
            [programme.pk, tier.pk, tag, m0, m0 + members - 1],
        )
        # 2,000 nominees: odd members are ambassadors, even ones held out.
        c.execute(
            """INSERT INTO community_nominee (campaign_id, customer_id, membership_id, "group", assignment_bucket,
               rank, nominated_at, received)
               SELECT %s, m.customer_id, m.id, CASE WHEN (m.customer_id - %s) %% 2 = 0 THEN 'ambassador'
                      ELSE 'held_out' END, 0, m.customer_id - %s + 1, %s, ''
               FROM loyalty_membership m WHERE m.programme_id = %s AND m.customer_id < %s""",
            [campaign.pk, m0, m0, START, programme.pk, m0 + 2000],
        )
        c.execute(
            """INSERT INTO community_referralcode (campaign_id, customer_id, code, created_at)
               SELECT %s, n.customer_id, 'K' || n.customer_id, %s FROM community_nominee n
               WHERE n.campaign_id = %s AND n."group" = 'ambassador'
               UNION ALL SELECT %s, g, 'K' || g, %s FROM generate_series(%s, %s) g""",
            [campaign.pk, START, campaign.pk, campaign.pk, START, r0, r0 + referred - 1],
        )
        c.execute("ANALYZE loyalty_customer, community_nominee, community_referralcode")
        # Generation 1: referred 1..80,000 by the 1,000 ambassadors; then each generation by the one before.
        first = 0
        for gen, size in enumerate(generations, start=1):
            if gen == 1:
                referrer = f"{m0} + 2 * (g %% 1000)"
                parent_join, root, generation = "", "k.customer_id", "1"
            else:
                prev_first, prev_size = first - generations[gen - 2], generations[gen - 2]
                referrer = f"{r0 + prev_first} + ((g * 7919) %% {prev_size})"
                parent_join = (
                    f"JOIN community_referral p ON p.referred_id = {referrer} AND p.campaign_id = {campaign.pk}"
                )
                root, generation = "p.root_id", "p.generation + 1"
            c.execute(
                f"""INSERT INTO community_referral (campaign_id, code_id, referrer_id, referred_id, root_id,
                    generation, source, attributed_at, attributed_on, converted_at)
                    SELECT %s, k.id, k.customer_id, %s + g, {root}, {generation}, 'ingestion',
                           timestamptz '2026-02-01', date '2026-02-01',
                           CASE WHEN g %% 2 = 0 THEN timestamptz '2026-03-02' END
                    FROM generate_series(%s, %s) g
                    JOIN community_referralcode k ON k.campaign_id = %s AND k.customer_id = {referrer}
                    {parent_join}""",
                [campaign.pk, r0, first, first + size - 1, campaign.pk],
            )
            first += size
            c.execute("ANALYZE community_referral")  # the next generation joins this one
        # Revenue: converted referred customers and every nominee.
        c.execute(
            """INSERT INTO loyalty_revenueentry (customer_id, period, amount, currency, kind, external_id, created_at)
               SELECT r.referred_id, date '2026-03-01', 20 + r.referred_id %% 30, 'EUR', '', %s || '-rr' || r.id, now()
               FROM community_referral r WHERE r.campaign_id = %s AND r.converted_at IS NOT NULL
               UNION ALL
               SELECT n.customer_id, date '2026-03-01', 40 + n.customer_id %% 20, 'EUR', '', %s || '-rn' || n.id, now()
               FROM community_nominee n WHERE n.campaign_id = %s""",
            [tag, campaign.pk, tag, campaign.pk],
        )
        c.execute(
            """INSERT INTO community_idea (round_id, author_id, title, body, category, status, vote_count, hidden,
               hidden_reason, created_at, updated_at)
               SELECT %s, %s + (g * 31) %% %s, 'Idea ' || g, 'Text of idea ' || g, 'service', 'open', 0, false, '',
                      now(), now()
               FROM generate_series(1, %s) g ORDER BY g""",
            [round_.pk, m0, members, ideas],
        )
        c.execute("SELECT min(id), count(*) FROM community_idea WHERE round_id = %s", [round_.pk])
        i0, n_ideas = c.fetchone()
        # Vote i goes to idea floor(ideas * (i / votes)^2): skewed, each idea's votes a contiguous run of i,
        # so the voters (i mod members) are distinct within an idea.
        c.execute(
            """INSERT INTO community_vote (idea_id, customer_id, created_at)
               SELECT %s + floor(%s * ((g::float8 / %s) ^ 2))::int, %s + g %% %s, now()
               FROM generate_series(0, %s) g""",
            [i0, n_ideas, votes, m0, members, votes - 1],
        )
        c.execute(
            """UPDATE community_idea i SET vote_count = v.n
               FROM (SELECT idea_id, count(*) AS n FROM community_vote GROUP BY idea_id) v
               WHERE v.idea_id = i.id AND i.round_id = %s""",
            [round_.pk],
        )
        c.execute("ANALYZE")
    print(f"built in {time.perf_counter() - t0:.1f}s (tag {tag})")
    return round_.pk, campaign.pk, m0


def timed(fn, repeat: int) -> tuple[float, float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--ideas", type=int, default=10_000)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--referrals", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    assert connection.vendor == "postgresql", "needs PostgreSQL (DATABASE_URL)"
    round_id, campaign_id, m0 = build(args.members, args.ideas, args.votes, args.referrals)

    def reference():
        with connection.cursor() as c:
            c.execute("SELECT count(*) FROM community_vote")
            return c.fetchone()[0]

    def idea_page():
        qs = round_ideas(round_id=round_id, customer_id=m0 + 5, sort="votes")
        items = [IdeaOut.from_orm(i).dict() for i in qs[:50]]
        return items, qs.count()

    def report():
        return CampaignReportOut(**campaign_report(campaign_id=campaign_id)).dict()

    ref = timed(reference, args.repeat)
    rows = []
    page = timed(idea_page, args.repeat)
    items, count = page[3]
    rows.append(
        (
            "idea list by votes, first page",
            page,
            f"{len(items)} of {count} ideas; top votes {[i['vote_count'] for i in items[:3]]}",
        )
    )
    rep = timed(report, args.repeat)
    r = rep[3]
    rows.append(
        (
            "campaign report",
            rep,
            f"{r['referrals']} referrals, {r['conversions']} conversions, depth "
            f"{[(d['generation'], d['referrals']) for d in r['depth_distribution']]}, K {r['k']}, "
            f"{len(r['per_ambassador'])} ambassador rows, uplift {r['uplift']['difference']} "
            f"[{r['uplift']['ci_low']}, {r['uplift']['ci_high']}]",
        )
    )
    inf = timed(influence_refresh, args.repeat)
    rows.append(
        (
            "influence metric, all customers",
            inf,
            f"{inf[3]['customers']} customers with influence, {inf[3]['conversions_marked']} new conversions",
        )
    )
    print(f"reference: count(*) over {ref[3]} votes {ref[0] * 1000:.1f} ms")
    for name, (median, low, high, _), what in rows:
        print(
            f"{name}: {median * 1000:.1f} ms (min {low * 1000:.1f}, max {high * 1000:.1f}), "
            f"{median / ref[0]:.1f}x the reference; rows: {what}"
        )
    total = Customer.objects.count()
    print(f"customers in the database: {total}")


if __name__ == "__main__":
    main()
