"""Does the impact report tell the truth? Run by a person, not by the test suite:

    python bench/impact_truth.py --replicates 200 --customers 400 [--minutes 30]

Each replicate simulates a programme with a known effect through the product's own pipeline (ingestion,
scoring, segmentation, enrolment, programme use, the churn feed: tests/loyalty/retention/simulate.py), computes
the report at the end of follow-up, and rolls everything back. Half the replicates have a true 12-month
retention effect (`--effect`), half none. Printed:

- coverage: the share of replicates whose 95% interval holds the truth, per headline figure (target 93-97%);
- false positives per report under no effect: the primary result called significant (target <= 5%), any
  exploratory comparison called significant (Benjamini-Hochberg: within 5% false discovery rate, so at most
  5% of null reports), and the engagement-band uplifts' mean under no effect (target 0: bands at enrolment).

Uses a fresh SQLite database in a temporary directory unless DATABASE_URL is set (then that database; the
replicates roll back and leave nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if "DATABASE_URL" not in os.environ:
    os.environ["SQLITE_PATH"] = f"{tempfile.mkdtemp(prefix='impact-truth-')}/truth.sqlite3"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402


class _Rollback(Exception):
    pass


def _replicate(*, seed: int, customers: int, effect: float) -> dict:
    from loyalty.retention.services.impact import impact_report_compute
    from tests.loyalty.retention.simulate import headline, simulate_programme

    out: dict = {}
    try:
        with transaction.atomic():
            sim = simulate_programme(customers=customers, effect=effect, seed=seed, name=f"Truth {seed}")
            report = impact_report_compute(programme=sim.programme, as_of=sim.end)
            out["headline"] = headline(report, sim)
            primary = next(c for c in report["retention"] if c.get("role") == "primary")
            out["primary_significant"] = bool(primary["significant"])
            exploratory = []
            for c in report["retention"]:
                if c.get("role") == "exploratory":
                    exploratory.append(c)
            for key in ("by_tier", "by_cohort", "by_age"):
                exploratory += [c for s in report[key] for c in s["horizons"]]
            bands = [c for s in report["engagement"]["bands"] for c in s["horizons"]]
            exploratory += bands
            for key in ("logrank", "rmst"):
                if report["survival"].get(key):
                    exploratory.append(report["survival"][key])
            exploratory += [r["adjusted"] for r in report["revenue"]["cuped"] if r.get("adjusted")]
            out["any_exploratory_significant"] = any(c.get("significant") for c in exploratory)
            out["any_unadjusted_p_below_5"] = any(
                c.get("p_value") is not None and c["p_value"] < 0.05 for c in exploratory
            )
            out["band_uplifts_12"] = [c["uplift"] for c in bands if c["months"] == 12 and c["uplift"] is not None]
            out["band_significant"] = any(c.get("significant") for c in bands)
            out["srm_failed"] = report["srm"]["overall"]["mismatch"]
            raise _Rollback
    except _Rollback:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--effect", type=float, default=0.10)
    parser.add_argument("--minutes", type=float, default=None, help="Stop after this long (prints what it has).")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    started = time.monotonic()
    covered: dict[str, list[bool]] = defaultdict(list)
    null: list[dict] = []
    with_effect: list[dict] = []
    for i in range(args.replicates):
        effect = args.effect if i % 2 == 0 else 0.0
        r = _replicate(seed=1000 + i, customers=args.customers, effect=effect)
        (with_effect if effect else null).append(r)
        for name, (estimate, low, high, truth) in r["headline"].items():
            if estimate is not None and low is not None:
                covered[f"{name} ({'effect' if effect else 'no effect'})"].append(low <= truth <= high)
        if args.minutes and time.monotonic() - started > args.minutes * 60:
            break
    elapsed = time.monotonic() - started
    n = len(null) + len(with_effect)
    print(
        f"{n} replicates ({len(with_effect)} with a true +{args.effect * 100:.0f}-point 12-month effect, "
        f"{len(null)} without), {args.customers} customers each, 50% holdout, {elapsed:.0f}s"
    )
    print()
    print("| figure | replicates | 95% interval covers the truth |")
    print("|---|---|---|")
    for name in sorted(covered):
        hits = covered[name]
        print(f"| {name} | {len(hits)} | {sum(hits) / len(hits) * 100:.1f}% |")
    print()

    def rate(items, key):
        return f"{sum(1 for r in items if r[key]) / len(items) * 100:.1f}%" if items else "n/a"

    bands = [u for r in null for u in r["band_uplifts_12"]]
    print("| under no effect (per report) | rate |")
    print("|---|---|")
    print(f"| primary result (12-month retention) called significant | {rate(null, 'primary_significant')} |")
    print(
        f"| any exploratory comparison called significant (BH adjusted) | {rate(null, 'any_exploratory_significant')} |"
    )
    print(
        f"| any exploratory comparison with unadjusted p < 0.05 (what an unadjusted report would flag) | "
        f"{rate(null, 'any_unadjusted_p_below_5')} |"
    )
    print(f"| any engagement band called significant | {rate(null, 'band_significant')} |")
    print(f"| SRM check failed | {rate(null, 'srm_failed')} |")
    if bands:
        mean = statistics.mean(bands)
        se = statistics.stdev(bands) / len(bands) ** 0.5 if len(bands) > 1 else float("nan")
        print(
            f"| engagement-band 12-month uplift, mean over bands and replicates | {mean * 100:+.2f} points "
            f"(SE {se * 100:.2f}) |"
        )
    print()
    print("| with the effect | rate |")
    print("|---|---|")
    print(f"| primary result called significant (power) | {rate(with_effect, 'primary_significant')} |")


if __name__ == "__main__":
    main()
