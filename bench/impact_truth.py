"""Does the impact report tell the truth? Run by a person, not by the test suite:

    python bench/impact_truth.py --replicates 1000 --customers 400 --workers 2 [--minutes 40] [--out results.jsonl]
    python bench/impact_truth.py --summarise results.jsonl [more.jsonl ...]   # tables of stored results

Each replicate simulates a programme with a known effect through the product's own pipeline (ingestion,
scoring, segmentation, enrolment, programme use, the churn feed: tests/loyalty/retention/simulate.py), computes
the report at the end of follow-up, and rolls everything back. Half the replicates have a true 12-month
retention effect (`--effect`), half none. Printed:

- coverage: the share of replicates whose 95% interval holds the truth, per headline figure (target 93-97%);
- false positives per report under no effect: the primary result called significant (target <= 5%), any
  exploratory comparison called significant (Benjamini-Hochberg: within 5% false discovery rate, so at most
  5% of null reports), and the engagement-band uplifts' mean under no effect (target 0: bands at enrolment).

Uses a fresh SQLite database in a temporary directory (one per worker process) unless DATABASE_URL is set (then that
database; the
replicates roll back and leave nothing).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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
            out["primary_counts"] = [
                primary["treatment"]["n"],
                primary["treatment"]["retained"],
                primary["control"]["n"],
                primary["control"]["retained"],
            ]
            exploratory = []
            for c in report["retention"]:
                if c.get("role") == "exploratory":
                    exploratory.append(c)
            for key in ("by_tier", "by_cohort", "by_age", "by_region"):
                exploratory += [c for s in report.get(key, []) for c in s["horizons"]]
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


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson 95% interval of a Monte Carlo rate hits/n: how far the rate may be from its true value by chance."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(hits: int, n: int) -> str:
    if not n:
        return "n/a"
    low, high = wilson(hits, n)
    return f"{hits / n * 100:.1f}% ({hits}/{n}; MC 95% {low * 100:.1f}-{high * 100:.1f}%)"


_worker_ready = False


def _run_one(job: tuple[int, int, float]) -> dict:
    """One replicate in a worker process (its own SQLite database, or the shared PostgreSQL one)."""
    global _worker_ready
    if not _worker_ready:
        call_command("migrate", verbosity=0)
        _worker_ready = True
    seed, customers, effect = job
    r = _replicate(seed=seed, customers=customers, effect=effect)
    r.update(seed=seed, effect=effect)
    return r


def summarise(results: list[dict], *, effect: float, customers: int, elapsed: float | None) -> None:
    null = [r for r in results if not r["effect"]]
    with_effect = [r for r in results if r["effect"]]
    covered: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        for name, (estimate, low, high, truth) in r["headline"].items():
            if estimate is not None and low is not None:
                covered[f"{name} ({'effect' if r['effect'] else 'no effect'})"].append(low <= truth <= high)
    print(
        f"{len(results)} replicates ({len(with_effect)} with a true +{effect * 100:.0f}-point 12-month effect, "
        f"{len(null)} without), {customers} customers each, 50% holdout"
        + (f", {elapsed:.0f}s" if elapsed is not None else "")
    )
    print(
        "Beside each rate: its Monte Carlo 95% interval (Wilson), i.e. where the true rate lies given the replicates."
    )
    print()
    print("| figure | replicates | 95% interval covers the truth | in 93-97%? |")
    print("|---|---|---|---|")
    for name in sorted(covered):
        hits = covered[name]
        low, high = wilson(sum(hits), len(hits))
        verdict = "yes" if 0.93 <= sum(hits) / len(hits) <= 0.97 else "no"
        if high < 0.93 or low > 0.97:
            verdict += " (MC interval outside)"
        elif verdict == "no":
            verdict += " (MC interval overlaps the target)"
        print(f"| {name} | {len(hits)} | {_rate(sum(hits), len(hits))} | {verdict} |")
    print()

    def count(items, key):
        return sum(1 for r in items if r[key]), len(items)

    bands = [u for r in null for u in r["band_uplifts_12"]]
    print("| under no effect (per report) | rate |")
    print("|---|---|")
    print(f"| primary result (12-month retention) called significant | {_rate(*count(null, 'primary_significant'))} |")
    print(
        "| any exploratory comparison called significant (BH adjusted) | "
        f"{_rate(*count(null, 'any_exploratory_significant'))} |"
    )
    print(
        "| any exploratory comparison with unadjusted p < 0.05 (what an unadjusted report would flag) | "
        f"{_rate(*count(null, 'any_unadjusted_p_below_5'))} |"
    )
    print(f"| any engagement band called significant | {_rate(*count(null, 'band_significant'))} |")
    print(f"| SRM check failed | {_rate(*count(null, 'srm_failed'))} |")
    if bands:
        mean = statistics.mean(bands)
        se = statistics.stdev(bands) / len(bands) ** 0.5 if len(bands) > 1 else float("nan")
        print(
            f"| engagement-band 12-month uplift, mean over bands and replicates | {mean * 100:+.2f} points "
            f"(SE {se * 100:.2f}) |"
        )
    counts = [r["primary_counts"] for r in null if r.get("primary_counts")]
    if len(counts) > 1:
        # Under no effect, is the primary uplift as variable as two independent binomials make it?
        z = []
        for n_t, x_t, n_c, x_c in counts:
            pooled = (x_t + x_c) / (n_t + n_c)
            se = (pooled * (1 - pooled) * (1 / n_t + 1 / n_c)) ** 0.5
            if se > 0:
                z.append((x_t / n_t - x_c / n_c) / se)
        print(
            f"| primary uplift / its binomial SE: SD over replicates (1 if binomial) | {statistics.stdev(z):.3f} "
            f"(n={len(z)}, SE {1 / (2 * (len(z) - 1)) ** 0.5:.3f}) |"
        )
    print()
    print("| with the effect | rate |")
    print("|---|---|")
    print(f"| primary result called significant (power) | {_rate(*count(with_effect, 'primary_significant'))} |")


def replica(*, seeds: int, first_seed: int, customers: int, effect: float) -> None:
    """The primary 12-month test over many seeds, each with and without the effect: the same random stream and
    assignment as the pipeline (customer ids 1..N, as in a fresh worker database), Newcombe's interval from the
    report's own code. The pipeline's counts equal the replica's seed for seed (the suite checks it)."""
    from loyalty.retention.services.impact import newcombe_interval
    from tests.loyalty.retention.simulate import primary_counts_replica

    started = time.monotonic()
    ids = list(range(1, customers + 1))
    rejected = {0.0: 0, effect: 0}
    for seed in range(first_seed, first_seed + seeds):
        for e in rejected:
            n_t, x_t, n_c, x_c = primary_counts_replica(seed=seed, customer_ids=ids, effect=e)
            low, high = newcombe_interval(n_t=n_t, x_t=x_t, n_c=n_c, x_c=x_c)
            rejected[e] += low > 0 or high < 0
    print(f"{seeds} seeds x 2 ({customers} customers, 50% holdout), replica, {time.monotonic() - started:.0f} s")
    print("| primary 12-month result | rate |")
    print("|---|---|")
    print(f"| called significant under no effect (target <= 5%) | {_rate(rejected[0.0], seeds)} |")
    power = _rate(rejected[effect], seeds)
    print(f"| called significant with a true +{effect * 100:.0f}-point effect (power) | {power} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--effect", type=float, default=0.10)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="Processes (each its own SQLite database).")
    parser.add_argument("--minutes", type=float, default=None, help="Stop after this long (prints what it has).")
    parser.add_argument("--out", default=None, help="Append each replicate's result to this JSON-lines file.")
    parser.add_argument("--summarise", nargs="*", default=None, help="Only print the tables of these result files.")
    parser.add_argument(
        "--replica",
        type=int,
        default=0,
        help="Only measure the primary test over this many seeds with the simulation's database-free replica "
        "(tests/loyalty/retention/simulate.py, checked against the pipeline by the suite).",
    )
    args = parser.parse_args()
    if args.replica:
        replica(seeds=args.replica, first_seed=args.first_seed, customers=args.customers, effect=args.effect)
        return
    if args.summarise is not None:
        results = []
        for path in args.summarise:
            with open(path) as lines:
                results += [json.loads(line) for line in lines if line.strip()]
        summarise(results, effect=args.effect, customers=args.customers, elapsed=None)
        return
    started = time.monotonic()
    jobs = [(args.first_seed + i, args.customers, args.effect if i % 2 == 0 else 0.0) for i in range(args.replicates)]
    results: list[dict] = []
    out = open(args.out, "a") if args.out else None  # noqa: SIM115
    pool = multiprocessing.get_context("spawn").Pool(args.workers) if args.workers > 1 else None
    iterator = pool.imap_unordered(_run_one, jobs) if pool else map(_run_one, jobs)
    for r in iterator:
        results.append(r)
        if out:
            out.write(json.dumps(r) + "\n")
            out.flush()
        if args.minutes and time.monotonic() - started > args.minutes * 60:
            break
    if pool:
        pool.terminate()
    summarise(results, effect=args.effect, customers=args.customers, elapsed=time.monotonic() - started)


if __name__ == "__main__":
    main()
