"""The programme impact report: does the programme keep customers?

Intention to treat: every membership counts in the group it was randomly assigned (treatment or control),
whatever it did afterwards. Members who used the programme are never compared with those who did not (that
comparison is shown once, labelled, to make its bias visible). Aggregates come from set-based SQL
(`loyalty.retention.selectors`); the statistics run on those aggregates with numpy and scipy (Kaplan-Meier and the
log-rank test computed as lifelines computes them).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from core import outbox, runs
from core.errors import Conflict, ValidationFailed
from loyalty.programmes.models import Programme, Tier
from loyalty.retention import selectors as q
from loyalty.retention.models import ImpactReport
from loyalty.segmentation.services.rollups import rollups_apply_pending

logger = logging.getLogger(__name__)
ALPHA = 0.05
Z = NormalDist().inv_cdf(1 - ALPHA / 2)
DEFAULT_HORIZONS = (3, 6, 12)
RMST_DAYS = 365
AT_RISK_DAYS = (0, 30, 91, 183, 274, 365, 548, 730)
TREATMENT, CONTROL = "treatment", "control"


@dataclass(frozen=True)
class Minimums:
    """What a number needs before the report shows it (below these, it says what is missing and when it will be
    there, instead of an estimate, an interval or a p-value)."""

    members_per_group: int = 10  # evaluable members in each group: a horizon, CUPED, log-rank and RMST
    churned: int = 5  # churned members, both groups together, at a horizon
    retained: int = 5  # retained members, both groups together, at a horizon
    survival_events: int = 10  # churn events, both groups together, for the log-rank test and RMST
    followup_days: int = 30  # days of follow-up for the survival chart and the log-rank test

    def explanation(self) -> str:
        return (
            f"Shown only with enough data: a horizon's uplift needs at least {self.members_per_group} members per "
            f"group followed to the horizon (or churned before it) and at least {self.churned} churned and "
            f"{self.retained} retained members in the two groups together; CUPED needs {self.members_per_group} "
            f"members per group enrolled at least the horizon ago; the log-rank test needs "
            f"{self.members_per_group} members per group followed {self.followup_days} days or more and "
            f"{self.survival_events} churn events; RMST needs {self.members_per_group} members per group followed "
            f"the whole {RMST_DAYS} days and {self.survival_events} churn events; the survival chart needs "
            f"{self.followup_days} days of follow-up. Otherwise the report says what is missing and, where follow-up "
            "is what is missing, the date it will be there."
        )


MINIMUMS = Minimums()


def _ready_on(first_enrolled: dict[str, datetime | None], days: int, as_of: datetime) -> str | None:
    """The day the N-th earliest enrolled member of each group has been enrolled `days` days (N: the minimum
    members per group), if that lies after `as_of`; None when a group has fewer members or it has passed."""
    if any(first_enrolled.get(g) is None for g in (TREATMENT, CONTROL)):
        return None
    day = max(first_enrolled[TREATMENT], first_enrolled[CONTROL]) + timedelta(days=days)
    return day.date().isoformat() if day > as_of else None


def _followup_note(first_enrolled: dict[str, datetime | None], days: int, as_of: datetime, what: str) -> str:
    ready = _ready_on(first_enrolled, days, as_of)
    if ready:
        return f" Enough members will have {what} on {ready}."
    if any(first_enrolled.get(g) is None for g in (TREATMENT, CONTROL)):
        return " Not before more members are enrolled in both groups."
    return ""


def _f(value: float | None, digits: int = 6) -> float | None:
    """JSON-safe float: NaN and infinities become null."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _pts(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f} points"


def p_format(p: float | None) -> str:
    """'p < 0.001', 'p = 0.039', 'p = 0.04996' (never rounded onto or across 0.05), 'p = 0.27', or 'no test'."""
    if p is None:
        return "no test possible"
    if p < 0.001:
        return "p < 0.001"
    if p >= 0.1:
        return f"p = {p:.2f}"
    for digits in (3, 4, 5, 6):  # more digits until the printed value falls on the same side of 0.05
        text = f"{p:.{digits}f}"
        if float(text) != ALPHA and (float(text) < ALPHA) == (p < ALPHA):
            break
    return f"p = {text}"


def _p_text(p: float | None, *, significant: bool | None = None, role: str = "") -> str:
    if p is None:
        return "no test possible"
    significant = p < ALPHA if significant is None else significant
    verdict = "significant" if significant else "not significant"
    return f"{p_format(p)}, {verdict} at the 5% level{role}"


# --- statistics on aggregates -------------------------------------------------------------------------------


def wilson_interval(x: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a proportion x/n (Newcombe 1998, method 3)."""
    if n == 0:
        return 0.0, 1.0
    p = x / n
    denom = n + z * z
    centre = (x + z * z / 2) / denom
    half = z / denom * math.sqrt(max(x * (n - x) / n, 0.0) + z * z / 4)
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def newcombe_interval(*, n_t: int, x_t: int, n_c: int, x_c: int, z: float = Z) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p_t - p_c (Newcombe 1998, method 10): the Wilson intervals of the
    two proportions combined. Never degenerate: 10/10 against 20/20 gives about [-0.16, +0.28]."""
    p_t, p_c = x_t / n_t, x_c / n_c
    l_t, u_t = wilson_interval(x_t, n_t, z)
    l_c, u_c = wilson_interval(x_c, n_c, z)
    d = p_t - p_c
    return (
        d - math.sqrt((p_t - l_t) ** 2 + (u_c - p_c) ** 2),
        d + math.sqrt((u_t - p_t) ** 2 + (p_c - l_c) ** 2),
    )


def newcombe_p_value(*, n_t: int, x_t: int, n_c: int, x_c: int) -> float:
    """Two-sided p-value obtained by inverting Newcombe's interval: the largest confidence level at which the
    interval still excludes 0 is 1 - p. So p < 0.05 exactly when the 95% interval excludes 0."""
    from scipy import optimize, stats

    d = x_t / n_t - x_c / n_c
    if d == 0:
        return 1.0

    def bound(z: float) -> float:  # the bound nearer to 0, signed so that it is > 0 while 0 is excluded
        low, high = newcombe_interval(n_t=n_t, x_t=x_t, n_c=n_c, x_c=x_c, z=z)
        return low if d > 0 else -high

    top = 38.0
    if bound(top) > 0:
        return float(2 * stats.norm.sf(top))
    z_star = optimize.brentq(bound, 1e-9, top, xtol=1e-10)
    return float(2 * stats.norm.sf(z_star))


def proportion_difference(*, n_t: int, x_t: int, n_c: int, x_c: int) -> dict[str, float | None]:
    """Difference of two proportions x_t/n_t - x_c/n_c with Newcombe's hybrid score 95% interval and the
    two-sided p-value of the same method (the interval inverted), so the two never disagree."""
    if n_t == 0 or n_c == 0:
        return {"difference": None, "ci_low": None, "ci_high": None, "p_value": None}
    low, high = newcombe_interval(n_t=n_t, x_t=x_t, n_c=n_c, x_c=x_c)
    p_value = newcombe_p_value(n_t=n_t, x_t=x_t, n_c=n_c, x_c=x_c)
    return {"difference": x_t / n_t - x_c / n_c, "ci_low": low, "ci_high": high, "p_value": p_value}


def complier_effect(*, itt: float, itt_ci: tuple[float, float], took_up: int, eligible: int) -> dict:
    """Effect on those who took the programme up (CACE = ITT / take-up r; control has no access), with a 95%
    interval by the delta method: Var(CACE) = Var(ITT)/r^2 + ITT^2 Var(r)/r^4, Var(ITT) from the width of the
    ITT interval, Var(r) = r(1-r)/n. The take-up's own uncertainty widens the interval (ignored covariance:
    take-up and retention are measured on the same treatment members, so this is an approximation)."""
    r = took_up / eligible
    se_itt = (itt_ci[1] - itt_ci[0]) / (2 * Z)
    var = se_itt**2 / r**2 + itt**2 * (r * (1 - r) / eligible) / r**4
    estimate, se = itt / r, math.sqrt(var)
    return {"estimate": _f(estimate), "ci_low": _f(estimate - Z * se), "ci_high": _f(estimate + Z * se)}


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(running, 1.0)
    return adjusted


def _relative_churn_text(reduction: float) -> str:
    if abs(reduction) < 0.0005:
        return " Churn is the same in both groups."
    word = "lower" if reduction > 0 else "higher"
    return f" Treatment churned {abs(reduction) * 100:.0f}% {word} than control, relative to control's churn."


def compare_retention(
    *,
    months: int,
    n_t: int,
    churned_t: int,
    n_c: int,
    churned_c: int,
    label: str,
    minimums: Minimums = MINIMUMS,
    ready_on: str | None = None,
    enrolled: tuple[int, int] | None = None,
) -> dict:
    """Retention at a horizon in both groups, the absolute uplift (treatment minus control, percentage
    points) with its 95% CI and p-value, and the relative churn reduction. Below `minimums` the uplift, its
    interval and p are null, `available` is false and `reason` says what is missing (and `ready_on`, the day
    follow-up will suffice, if known; `enrolled`: members of each group, evaluable or not)."""
    retained_t, retained_c = n_t - churned_t, n_c - churned_c
    test = proportion_difference(n_t=n_t, x_t=retained_t, n_c=n_c, x_c=retained_c)
    rate_t = retained_t / n_t if n_t else None
    rate_c = retained_c / n_c if n_c else None
    churn_t = 1 - rate_t if rate_t is not None else None
    churn_c = 1 - rate_c if rate_c is not None else None
    reduction = (churn_c - churn_t) / churn_c if churn_c and churn_t is not None else None
    p = test["p_value"]
    if test["difference"] is None:
        explanation = (
            f"{label}, {months} months: not enough members enrolled at least {months} months ago "
            f"(treatment n={n_t}, control n={n_c})."
        )
    else:
        explanation = (
            f"{label}, {months} months after enrolment: {_pct(rate_t)} of {n_t} treatment members were retained "
            f"against {_pct(rate_c)} of {n_c} control members. Uplift {test['difference'] * 100:+.1f} points "
            f"(95% CI {test['ci_low'] * 100:+.1f} to {test['ci_high'] * 100:+.1f}), {_p_text(p)}."
        )
        if reduction is not None:
            explanation += _relative_churn_text(reduction)
    missing = []
    if min(n_t, n_c) < minimums.members_per_group:
        missing.append(
            f"{minimums.members_per_group} members per group followed {months} months (treatment {n_t}, control {n_c})"
        )
    churned, retained = churned_t + churned_c, retained_t + retained_c
    if churned < minimums.churned:
        missing.append(f"{minimums.churned} churned members in the two groups together (now {churned})")
    if retained < minimums.retained:
        missing.append(f"{minimums.retained} retained members in the two groups together (now {retained})")
    reason = None
    if missing:
        reason = f"{label}, {months} months: no uplift shown yet; it needs at least {' and '.join(missing)}."
        if min(n_t, n_c) < minimums.members_per_group:
            if ready_on:
                reason += f" Enough members will have been followed {months} months on {ready_on}."
            elif enrolled is not None and min(enrolled) < minimums.members_per_group:
                reason += " Not before more members are enrolled in both groups."
            else:
                reason += f" It will show as more members reach {months} months."
        else:
            reason += " It will show once enough members have churned or stayed that long."
        explanation, test, reduction, p = reason, dict.fromkeys(test), None, None
    return {
        "label": label,
        "months": months,
        "horizon_days": q.horizon_days(months),
        "treatment": {"n": n_t, "retained": retained_t, "rate": _f(rate_t)},
        "control": {"n": n_c, "retained": retained_c, "rate": _f(rate_c)},
        "uplift": _f(test["difference"]),
        "ci_low": _f(test["ci_low"]),
        "ci_high": _f(test["ci_high"]),
        "p_value": _f(p),
        "significant": p is not None and p < ALPHA,
        "relative_churn_reduction": _f(reduction),
        "available": reason is None,
        "reason": reason,
        "ready_on": ready_on if reason else None,
        "explanation": explanation,
    }


def srm_check(*, treatment: int, control: int, holdout_percent: float, label: str) -> dict:
    """Sample-ratio mismatch: chi-square goodness of fit of the observed split against the programme's
    holdout share. A p-value below 0.001 means the randomisation or the data feed is broken."""
    from scipy import stats

    total = treatment + control
    share = holdout_percent / 100
    if total == 0 or share in (0, 1):
        chi2, p = None, None
    else:
        result = stats.chisquare([treatment, control], f_exp=[total * (1 - share), total * share])
        chi2, p = float(result.statistic), float(result.pvalue)
    mismatch = p is not None and p < 0.001
    explanation = (
        f"{label}: {treatment} treatment and {control} control members; the design holds out "
        f"{holdout_percent:g}% so {total * share:.0f} control members were expected. "
    )
    if p is None:
        explanation += "No test possible."
    elif mismatch:
        explanation += f"Chi-square p = {p:.3g} < 0.001: sample-ratio mismatch, the comparison is not trustworthy."
    else:
        explanation += f"Chi-square p = {p:.3g}: the split matches the design."
    return {
        "label": label,
        "treatment": treatment,
        "control": control,
        "expected_control": _f(total * share, 2),
        "chi2": _f(chi2),
        "p_value": _f(p),
        "mismatch": mismatch,
        "explanation": explanation,
    }


@dataclass(frozen=True)
class KaplanMeier:
    """The Kaplan-Meier estimate of one group from aggregated (tenure, event, members) rows, computed in numpy the
    way lifelines' `KaplanMeierFitter` computes it (the same event table, formulas and order of operations, so the
    same numbers; it took most of the survival section's time on pandas): the event table at time 0 and at every
    tenure (`at_risk` just before it, `observed` churn events, `censored`), the survival exp(cumsum(log(n - d) -
    log(n))) and its exponential Greenwood 95% interval."""

    label: str
    times: np.ndarray
    at_risk: np.ndarray
    observed: np.ndarray
    censored: np.ndarray
    survival: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray

    def at(self, day: float) -> float:
        """S(day): the step function's value at the last time at or before `day` (as lifelines' `predict`)."""
        return float(self.survival[max(int(np.searchsorted(self.times, day, side="right")) - 1, 0)])


def _event_table(durations: np.ndarray, events: np.ndarray, weights: np.ndarray, birth: float):
    """(times, removed, observed, at risk) as lifelines' `survival_table_from_events` with every subject born at
    `birth`: rows at every duration and at the birth time; at risk = entrants so far minus those removed before."""
    times, inverse = np.unique(np.append(durations, birth), return_inverse=True)
    inverse = inverse[:-1]
    removed = np.bincount(inverse, weights=weights, minlength=len(times))
    observed = np.bincount(inverse, weights=weights * events, minlength=len(times))
    entrance = np.zeros(len(times))
    entrance[np.searchsorted(times, birth)] = weights.sum()
    at_risk = np.cumsum(entrance) - np.append(0.0, np.cumsum(removed)[:-1])
    return times, removed, observed, at_risk


def kaplan_meier(*, durations: Sequence[float], events: Sequence[int], weights: Sequence[int], label: str):
    from scipy import stats

    d, w = np.asarray(durations, dtype=float), np.asarray(weights, dtype=float)
    e = np.asarray(events).astype(bool)
    times, removed, observed, at_risk = _event_table(d, e, w, min(0.0, float(d.min())))
    removed, observed, at_risk = removed.astype(int), observed.astype(int), at_risk.astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_estimate = np.cumsum(np.log(at_risk - observed) - np.log(at_risk))
        population = at_risk.astype("uint64")
        terms = observed / (population * (population - observed))
        terms[terms == np.inf] = 0
        variance = np.cumsum(terms)
        survival = np.exp(log_estimate)
        z = stats.norm.ppf(1 - ALPHA / 2)
        v = np.log(survival)
        low = np.exp(-np.exp(np.log(-v) - z * np.sqrt(variance) / v))
        high = np.exp(-np.exp(np.log(-v) + z * np.sqrt(variance) / v))
    low[np.isnan(low)], high[np.isnan(high)] = 1.0, 1.0
    return KaplanMeier(label, times, at_risk, observed, removed - observed, survival, low, high)


def _km_points(kmf: KaplanMeier) -> list[dict]:
    """The curve at every time of the event table."""
    return [
        {
            "day": int(t),
            "at_risk": int(kmf.at_risk[j]),
            "events": int(kmf.observed[j]),
            "censored": int(kmf.censored[j]),
            "survival": _f(kmf.survival[j]),
            "ci_low": _f(kmf.ci_low[j]),
            "ci_high": _f(kmf.ci_high[j]),
        }
        for j, t in enumerate(kmf.times.tolist())
    ]


def _at_risk(kmf: KaplanMeier, day: int) -> int:
    later = np.flatnonzero(kmf.times >= day)
    return int(kmf.at_risk[later[0]]) if len(later) else 0


def restricted_mean_survival_time(kmf: KaplanMeier, *, t: float) -> float:
    """The area under the Kaplan-Meier curve from 0 to t (as lifelines' `restricted_mean_survival_time` of a
    fitted Kaplan-Meier model: the steps up to t, then S(t) at t)."""
    inside = kmf.times <= t
    x = np.append(kmf.times[inside], float(t))
    y = np.append(kmf.survival[inside], kmf.at(t))
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    return float(np.append((x[1:] - x[:-1]) * y[:-1], 0.0).sum())


def rmst_variance(kmf: KaplanMeier, tau: float) -> float:
    """Variance of the RMST estimate up to tau (Greenwood-type, Klein & Moeschberger 4.5):
    sum over event times t_j <= tau of A_j^2 d_j / (n_j (n_j - d_j)), A_j = area under the KM curve from t_j
    to tau. (lifelines' `return_variance` gives the variance of min(T, tau) itself, not of the estimate.)
    Vectorised; the terms are added in time order (a running sum), as a loop would."""
    index = kmf.times
    inside = index <= tau
    times, values = index[inside], kmf.survival[inside]
    edges = np.append(times, float(tau))
    areas = values * (edges[1:] - edges[:-1])
    tail = np.cumsum(areas[::-1])[::-1]  # tail[k] = area from times[k] to tau
    t = index
    d, n = kmf.observed.astype(float), kmf.at_risk.astype(float)
    use = (t <= tau) & (d != 0) & (n > d)
    if not use.any():
        return 0.0
    area = tail[np.searchsorted(times, t[use])]
    terms = area * area * d[use] / (n[use] * (n[use] - d[use]))
    return float(np.cumsum(terms)[-1])


def logrank(a: tuple[Sequence, Sequence, Sequence], b: tuple[Sequence, Sequence, Sequence]) -> tuple[float, float]:
    """(chi-square, p) of the log-rank test of two groups' (durations, events, weights), computed in numpy as
    lifelines' `logrank_test` computes it (its multivariate form with two groups: the joint event table from the
    earliest duration, observed minus expected events of the first group, the hypergeometric variance)."""
    from scipy import stats

    d = [np.asarray(g[0], dtype=float) for g in (a, b)]
    e = [np.asarray(g[1]).astype(bool) for g in (a, b)]
    w = [np.asarray(g[2], dtype=float) for g in (a, b)]
    birth = float(min(x.min() for x in d))
    times = np.unique(np.concatenate([*d, [birth]]))
    rm, obs = np.zeros((len(times), 2)), np.zeros((len(times), 2))
    for j in range(2):
        at = np.searchsorted(times, d[j])
        rm[:, j] = np.bincount(at, weights=w[j], minlength=len(times))
        obs[:, j] = np.bincount(at, weights=w[j] * e[j], minlength=len(times))
    n_ij = rm.sum(0) - np.vstack([np.zeros((1, 2)), np.cumsum(rm, axis=0)[:-1]])
    d_i = obs.sum(1)
    n_i = rm.sum() - np.append(0.0, np.cumsum(rm.sum(1))[:-1])
    ev_i = n_ij * (d_i / n_i)[:, None]
    n_j = obs.sum(0)
    ev = np.array([ev_i[:, 0].sum(), ev_i[:, 1].sum()])
    z_j = n_j - ev
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (n_i - d_i) / (n_i - 1)
    ratio[~np.isfinite(ratio)] = 1
    factor = ratio * d_i / n_i**2
    columns = np.vstack([n_ij[:, 0], n_ij[:, 1], n_i]) * np.sqrt(factor)
    columns[np.isnan(columns)] = 0.0
    v = -np.dot(columns, columns.T.copy(order="F"))  # a copy: a product with its own transpose is another kernel
    ix = np.arange(2)
    v[ix, ix] = v[ix, ix] - v[-1, ix]
    v = v[:-1, :-1]
    u = float(z_j[:1] @ np.linalg.pinv(v[:1, :1]) @ z_j[:1])
    return u, float(stats.chi2.sf(u, 1))


def survival_section(
    counts: list[tuple[str, int, int, int]],
    *,
    minimums: Minimums = MINIMUMS,
    first_enrolled: dict[str, datetime | None] | None = None,
    as_of: datetime | None = None,
) -> dict:
    """Kaplan-Meier curves per group, the log-rank test and RMST, each with `available` and a `reason` when
    follow-up or churn events fall short of `minimums` (`first_enrolled`: per group, the enrolment of the N-th
    earliest member, to say when follow-up will suffice)."""
    from scipy import stats

    data: dict[str, tuple[list, list, list]] = {}
    for group, day, event, n in counts:
        d, e, w = data.setdefault(group, ([], [], []))
        d.append(day)
        e.append(event)
        w.append(n)
    curves, fitters = [], {}
    for group in (TREATMENT, CONTROL):
        if group not in data:
            continue
        d, e, w = data[group]
        kmf = kaplan_meier(durations=d, events=e, weights=w, label=group)
        fitters[group] = kmf
        curves.append(
            {
                "group": group,
                "n": int(sum(w)),
                "events": int(sum(n for n, ev in zip(w, e, strict=True) if ev)),
                "points": _km_points(kmf),
            }
        )
    at_risk = [
        {"day": day, **{g: _at_risk(fitters[g], day) for g in (TREATMENT, CONTROL) if g in fitters}}
        for day in AT_RISK_DAYS
    ]
    section: dict[str, Any] = {
        "curves": curves,
        # Cut at the end of follow-up: no rows for days nobody has been followed to yet.
        "at_risk": [
            {"day": r["day"], "treatment": r.get(TREATMENT, 0), "control": r.get(CONTROL, 0)}
            for r in at_risk
            if r["day"] <= max((max(d) for d, _, _ in data.values()), default=0)
        ],
        "explanation": (
            "Kaplan-Meier estimate of the share of members still customers by days since enrolment, per assigned "
            "group; members who have not churned are censored at their last observation. `at_risk` is the number "
            "of members still observed (not churned, not censored) at each day."
        ),
        "logrank": None,
        "rmst": None,
    }
    first_enrolled = first_enrolled or {}
    as_of = as_of or timezone.now()
    longest = max((max(d) for d, _, _ in data.values()), default=0)
    events = sum(c["events"] for c in curves)
    followed = {
        g: sum(n for day, n in zip(data[g][0], data[g][2], strict=True) if day >= minimums.followup_days) for g in data
    }
    through = {g: sum(n for day, n in zip(data[g][0], data[g][2], strict=True) if day >= RMST_DAYS) for g in data}
    m = minimums.members_per_group
    chart_reason = None
    if longest < minimums.followup_days:
        chart_reason = (
            f"No survival curve yet: the longest follow-up is {longest} days and a curve needs "
            f"{minimums.followup_days}."
            + _followup_note(
                first_enrolled, minimums.followup_days, as_of, f"been followed {minimums.followup_days} days"
            )
        )
    section["chart"] = {"available": chart_reason is None, "reason": chart_reason, "longest_followup_days": longest}
    both = TREATMENT in fitters and CONTROL in fitters
    missing = []
    if not both:
        missing.append("members in both groups")
    if min(followed.get(TREATMENT, 0), followed.get(CONTROL, 0)) < m:
        missing.append(
            f"{m} members per group followed {minimums.followup_days} days or more (treatment "
            f"{followed.get(TREATMENT, 0)}, control {followed.get(CONTROL, 0)})"
        )
    if events < minimums.survival_events:
        missing.append(f"{minimums.survival_events} churn events (now {events})")
    if missing:
        reason = "No log-rank test yet: it needs at least " + " and ".join(missing) + "."
        if min(followed.get(TREATMENT, 0), followed.get(CONTROL, 0)) < m:
            reason += _followup_note(
                first_enrolled, minimums.followup_days, as_of, f"been followed {minimums.followup_days} days"
            )
        section["logrank"] = {
            "available": False,
            "reason": reason,
            "chi2": None,
            "p_value": None,
            "significant": False,
            "explanation": reason,
        }
    rmst_missing = [x for x in missing if not x.startswith(f"{m} members per group followed")]
    if min(through.get(TREATMENT, 0), through.get(CONTROL, 0)) < m:
        rmst_missing.append(
            f"{m} members per group followed the whole {RMST_DAYS} days (treatment {through.get(TREATMENT, 0)}, "
            f"control {through.get(CONTROL, 0)})"
        )
    if rmst_missing:
        reason = f"No restricted mean survival time yet: it needs at least {' and '.join(rmst_missing)}."
        if min(through.get(TREATMENT, 0), through.get(CONTROL, 0)) < m:
            reason += _followup_note(first_enrolled, RMST_DAYS, as_of, f"been followed {RMST_DAYS} days")
        section["rmst"] = {
            "available": False,
            "reason": reason,
            "horizon_days": RMST_DAYS,
            "treatment": None,
            "control": None,
            "difference_days": None,
            "ci_low": None,
            "ci_high": None,
            "p_value": None,
            "explanation": reason,
        }
    if both and not missing:
        wt, wc = data[TREATMENT][2], data[CONTROL][2]
        chi2, p_logrank = logrank(data[TREATMENT], data[CONTROL])
        p = _f(p_logrank)
        section["logrank"] = {
            "available": True,
            "reason": None,
            "chi2": _f(chi2),
            "p_value": p,
            "significant": p is not None and p < ALPHA,
            "explanation": (
                f"Log-rank test of equal survival curves over the whole follow-up "
                f"(treatment n={sum(wt)}, control n={sum(wc)}, {events} churn events): {_p_text(p)}."
            ),
        }
    if both and not rmst_missing:
        rm_t, var_t = (
            restricted_mean_survival_time(fitters[TREATMENT], t=RMST_DAYS),
            rmst_variance(fitters[TREATMENT], RMST_DAYS),
        )
        rm_c, var_c = (
            restricted_mean_survival_time(fitters[CONTROL], t=RMST_DAYS),
            rmst_variance(fitters[CONTROL], RMST_DAYS),
        )
        diff, se = rm_t - rm_c, math.sqrt(max(var_t, 0) + max(var_c, 0))
        p_rmst = float(2 * stats.norm.sf(abs(diff / se))) if se > 0 else None
        section["rmst"] = {
            "available": True,
            "reason": None,
            "horizon_days": RMST_DAYS,
            "treatment": _f(rm_t, 2),
            "control": _f(rm_c, 2),
            "difference_days": _f(diff, 2),
            "ci_low": _f(diff - Z * se, 2) if se > 0 else None,
            "ci_high": _f(diff + Z * se, 2) if se > 0 else None,
            "p_value": _f(p_rmst),
            "explanation": (
                f"Restricted mean survival time: of the first {RMST_DAYS} days after enrolment, a treatment member "
                f"stayed {rm_t:.1f} days on average and a control member {rm_c:.1f}; the programme gains "
                f"{diff:+.1f} days of tenure per customer"
                + (f" (95% CI {diff - Z * se:+.1f} to {diff + Z * se:+.1f} days, " if se > 0 else " (")
                + f"{_p_text(p_rmst)})."
            ),
        }
    return section


def cuped_section(
    moments: list[q.RevenueMoments],
    horizons: Sequence[int],
    *,
    minimums: Minimums = MINIMUMS,
    first_enrolled: dict[str, datetime | None] | None = None,
    as_of: datetime | None = None,
) -> list[dict]:
    """Revenue in the first months after enrolment per group, raw and CUPED-adjusted with the revenue of the
    year before enrolment as covariate (theta pooled over both groups). Normal-approximation CI and p. Shown
    only with `minimums.members_per_group` members per group enrolled at least the horizon ago."""
    from scipy import stats

    by = {(m.group, m.months): m for m in moments}
    need = max(minimums.members_per_group, 2)
    out = []
    for months in horizons:
        t, c = by.get((TREATMENT, months)), by.get((CONTROL, months))
        if not t or not c or t.n < need or c.n < need:
            reason = (
                f"{months} months: no revenue comparison yet; it needs at least {need} members per group enrolled "
                f"{months} months ago (treatment {t.n if t else 0}, control {c.n if c else 0})."
                + _followup_note(
                    first_enrolled or {},
                    q.horizon_days(months),
                    as_of or timezone.now(),
                    f"been enrolled {months} months",
                )
            )
            out.append(
                {
                    "months": months,
                    "treatment_n": t.n if t else 0,
                    "control_n": c.n if c else 0,
                    "available": False,
                    "reason": reason,
                    "explanation": reason,
                }
            )
            continue

        def var(n, s, ss):
            return (ss - s * s / n) / (n - 1)

        def cov(n, sx, sy, sxy):
            return (sxy - sx * sy / n) / (n - 1)

        n_all = t.n + c.n
        sx, sy = t.sx + c.sx, t.sy + c.sy
        var_x_all = var(n_all, sx, t.sxx + c.sxx)
        cov_all = cov(n_all, sx, sy, t.sxy + c.sxy)
        theta = cov_all / var_x_all if var_x_all > 0 else 0.0
        mean_x_all = sx / n_all
        res: dict[str, Any] = {
            "months": months,
            "treatment_n": t.n,
            "control_n": c.n,
            "available": True,
            "reason": None,
            "theta": _f(theta),
        }
        raw, adj = {}, {}
        for g, m in ((TREATMENT, t), (CONTROL, c)):
            vy, vx, cxy = var(m.n, m.sy, m.syy), var(m.n, m.sx, m.sxx), cov(m.n, m.sx, m.sy, m.sxy)
            raw[g] = (m.sy / m.n, max(vy, 0) / m.n)
            adjusted_var = max(vy - 2 * theta * cxy + theta**2 * vx, 0)
            adj[g] = (m.sy / m.n - theta * (m.sx / m.n - mean_x_all), adjusted_var / m.n)
        for name, est in (("raw", raw), ("adjusted", adj)):
            diff = est[TREATMENT][0] - est[CONTROL][0]
            se = math.sqrt(est[TREATMENT][1] + est[CONTROL][1])
            p = float(2 * stats.norm.sf(abs(diff / se))) if se > 0 else None
            res[name] = {
                "treatment_mean": _f(est[TREATMENT][0], 2),
                "control_mean": _f(est[CONTROL][0], 2),
                "difference": _f(diff, 2),
                "ci_low": _f(diff - Z * se, 2) if se > 0 else None,
                "ci_high": _f(diff + Z * se, 2) if se > 0 else None,
                "p_value": _f(p),
            }
        v_raw = raw[TREATMENT][1] + raw[CONTROL][1]
        v_adj = adj[TREATMENT][1] + adj[CONTROL][1]
        res["variance_reduction"] = _f(1 - v_adj / v_raw) if v_raw > 0 else None
        a = res["adjusted"]
        res["explanation"] = (
            f"Revenue per customer in the first {months} months after enrolment (churned customers count with what "
            f"they spent), treatment n={t.n}, control n={c.n}. Raw difference {res['raw']['difference']}; adjusted "
            f"for revenue in the year before enrolment (CUPED, theta={theta:.3f}) {a['difference']} "
            f"(95% CI {a['ci_low']} to {a['ci_high']}), {_p_text(a['p_value'])}. The adjustment removes "
            f"{(res['variance_reduction'] or 0) * 100:.0f}% of the variance, so smaller effects show."
        )
        out.append(res)
    return out


# --- the report ---------------------------------------------------------------------------------------------


def _sum_cells(cells, horizons, key: Callable) -> dict:
    """Group cells by key(cell) and (group): members and per-horizon evaluable/churned totals."""
    acc: dict = defaultdict(lambda: {"members": 0, "e": [0] * len(horizons), "c": [0] * len(horizons)})
    for cell in cells:
        k = key(cell)
        if k is None:
            continue
        a = acc[(k, cell.group)]
        a["members"] += cell.members
        for i in range(len(horizons)):
            a["e"][i] += cell.evaluable[i]
            a["c"][i] += cell.churned[i]
    return acc


def _comparisons(acc, key, horizons, label, minimums: Minimums = MINIMUMS, ready_on=None) -> list[dict]:
    empty = {"members": 0, "e": [0] * len(horizons), "c": [0] * len(horizons)}
    t, c = acc.get((key, TREATMENT), empty), acc.get((key, CONTROL), empty)
    ready_on = ready_on or {}
    return [
        compare_retention(
            months=m,
            n_t=t["e"][i],
            churned_t=t["c"][i],
            n_c=c["e"][i],
            churned_c=c["c"][i],
            label=label,
            minimums=minimums,
            ready_on=ready_on.get(m),
            enrolled=(t["members"], c["members"]),
        )
        for i, m in enumerate(horizons)
    ]


def impact_report_compute(
    *,
    programme: Programme,
    as_of: datetime | None = None,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    progress: Callable[[int], None] | None = None,
    minimums: Minimums = MINIMUMS,
) -> dict:
    """The whole report as a JSON-ready dict. `progress(percent)` is called between steps. Estimates, intervals
    and tests without enough follow-up or events (`minimums`) are left out with `available: false` and a
    `reason`."""
    as_of = as_of or timezone.now()
    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1 or horizons[-1] > 60:
        raise ValidationFailed("Horizons are months between 1 and 60.", fields={"horizons": ["1 to 60 months."]})
    primary_months = int(programme.primary_horizon_months)
    horizons = sorted({*horizons, primary_months})  # the primary question is always answered
    timings: dict[str, float] = {}
    step = time.perf_counter()

    def done(name: str, percent: int) -> None:
        nonlocal step
        now = time.perf_counter()
        timings[name] = round(now - step, 3)
        step = now
        if progress:
            progress(percent)

    # Revenue comes from the revenue rollup: ingestion batches still pending (applied after their commit on
    # PostgreSQL) are applied first, as every reader of the rollups does.
    rollups_apply_pending()
    # The per-member data is read once; every figure below is an aggregate of its arrays.
    with q.ImpactMembers(programme_id=programme.pk, as_of=as_of, horizons=horizons) as members:
        done("members", 25)
        cells = members.cells()
        first_enrolled = members.nth_enrolment(minimums.members_per_group)
        survival_counts = members.survival_counts()
        revenue_by_month, revenue_moments, last_enrolled = members.revenue()
        scoring_run_ids = members.baseline_scoring_runs()
    done("cells", 30)
    tiers = {t.pk: t for t in Tier.objects.filter(programme=programme)}
    holdout = float(programme.holdout_percent)

    # Groups and sample-ratio mismatch.
    by_group = _sum_cells(cells, horizons, key=lambda c: "all")
    n_t = by_group.get(("all", TREATMENT), {"members": 0})["members"]
    n_c = by_group.get(("all", CONTROL), {"members": 0})["members"]
    by_tier = _sum_cells(cells, horizons, key=lambda c: c.tier_id)
    tier_ids = sorted({k for k, _ in by_tier}, key=lambda i: (tiers[i].rank if i in tiers else 10**6, i or 0))

    def tier_name(i):
        return tiers[i].name if i in tiers else "(no tier)"

    srm = {
        "overall": srm_check(treatment=n_t, control=n_c, holdout_percent=holdout, label="All members"),
        "by_tier": [
            {
                "tier_id": i,
                "tier_name": tier_name(i),
                **srm_check(
                    treatment=by_tier.get((i, TREATMENT), {"members": 0})["members"],
                    control=by_tier.get((i, CONTROL), {"members": 0})["members"],
                    holdout_percent=holdout,
                    label=f"Tier {tier_name(i)} (shadow tier for control)",
                ),
            }
            for i in tier_ids
        ],
    }

    # Retention at horizons, intention to treat.
    ready_on = {m: _ready_on(first_enrolled, q.horizon_days(m), as_of) for m in horizons}
    overall = _comparisons(by_group, "all", horizons, "All members", minimums, ready_on)
    excluded = []
    for i in range(len(horizons)):
        evaluable = sum(a["e"][i] for a in by_group.values())
        excluded.append(n_t + n_c - evaluable)
    for i, comparison in enumerate(overall):
        comparison["not_evaluable"] = excluded[i]
        comparison["explanation"] += (
            f" {excluded[i]} members are left out of this horizon: enrolled less than {horizons[i]} months ago, or "
            "their last observation came before it."
        )

    # Take-up and the effect on those who took it up (CACE = ITT / take-up; control has no access).
    took = _sum_cells(cells, horizons, key=lambda c: c.took_up)
    users = took.get((True, TREATMENT), {"members": 0, "e": [0] * len(horizons), "c": [0] * len(horizons)})
    non_users = took.get((False, TREATMENT), {"members": 0, "e": [0] * len(horizons), "c": [0] * len(horizons)})
    control_users = took.get((True, CONTROL), {"members": 0})["members"]
    take_up_rate = users["members"] / n_t if n_t else None
    per_horizon = []
    for i, months in enumerate(horizons):
        itt = overall[i]
        eligible_t = users["e"][i] + non_users["e"][i]
        rate = users["e"][i] / eligible_t if eligible_t else None
        cace = {"estimate": None, "ci_low": None, "ci_high": None}
        if rate and itt["uplift"] is not None:
            cace = complier_effect(
                itt=itt["uplift"], itt_ci=(itt["ci_low"], itt["ci_high"]), took_up=users["e"][i], eligible=eligible_t
            )
        naive = compare_retention(
            months=months,
            n_t=users["e"][i],
            churned_t=users["c"][i],
            n_c=non_users["e"][i],
            churned_c=non_users["c"][i],
            label="Naive users vs non-users (biased)",
            minimums=minimums,
        )
        explanation = (
            f"{months} months: {_pct(rate)} of the {eligible_t} evaluable treatment members took up the "
            "programme. Effect on those who took it up (CACE = ITT uplift / take-up): "
            f"{_pts(cace['estimate'])} (95% CI {_pts(cace['ci_low'])} to {_pts(cace['ci_high'])}; delta method, "
            "with the uncertainty of both the uplift and the take-up). For contrast only, the naive "
            f"users-versus-non-users difference is {_pts(naive['uplift'])}: users "
            "select themselves (those who would stay anyway use the programme more), so it overstates the "
            "effect and must not be reported as the programme's effect."
        )
        if not eligible_t:
            explanation = f"{months} months: no treatment member has been followed that long yet."
        elif not itt["available"]:
            explanation = (
                f"{months} months: {_pct(rate)} of the {eligible_t} evaluable treatment members took up the "
                "programme. No effect on those who took it up yet: it is the intention-to-treat uplift divided by "
                "take-up, and that uplift is not available at this horizon (see Retention)."
            )
        per_horizon.append(
            {
                "months": months,
                "available": itt["available"],
                "take_up": _f(rate),
                "itt_uplift": itt["uplift"],
                "cace": cace["estimate"],
                "cace_ci_low": cace["ci_low"],
                "cace_ci_high": cace["ci_high"],
                "naive_users_rate": naive["treatment"]["rate"],
                "naive_non_users_rate": naive["control"]["rate"],
                "naive_difference": naive["uplift"],
                "explanation": explanation,
            }
        )
    take_up = {
        "treatment_members": n_t,
        "took_up": users["members"],
        "rate": _f(take_up_rate),
        "control_with_programme_use": control_users,
        "channels": list(q.TAKE_UP_CHANNELS),
        "by_horizon": per_horizon,
        "explanation": (
            f"Take-up: {users['members']} of {n_t} treatment members ({_pct(take_up_rate)}) had a concierge or event "
            f"interaction after enrolment. {control_users} control members show such use (should be 0; more means "
            "the holdout leaks)."
        ),
    }
    done("groups", 45)

    def subgroup(acc, key, label: str) -> dict:
        """A baseline subgroup's comparisons with its own sample-ratio check; a failing split is untrustworthy."""
        check = srm_check(
            treatment=acc.get((key, TREATMENT), {"members": 0})["members"],
            control=acc.get((key, CONTROL), {"members": 0})["members"],
            holdout_percent=holdout,
            label=label,
        )
        comparisons = _comparisons(acc, key, horizons, label, minimums)
        for c in comparisons:
            c["subgroup_srm_mismatch"] = check["mismatch"]
        return {"srm": check, "horizons": comparisons}

    tier_section = [
        {"tier_id": i, "tier_name": tier_name(i), **subgroup(by_tier, i, f"Tier {tier_name(i)}")} for i in tier_ids
    ]
    by_cohort = _sum_cells(cells, horizons, key=lambda c: c.cohort)
    cohort_section = [{"cohort": k, **subgroup(by_cohort, k, f"Cohort {k}")} for k in sorted({k for k, _ in by_cohort})]
    by_band = _sum_cells(cells, horizons, key=lambda c: c.band)
    band_names = {k: q.ENGAGEMENT_BANDS[k] if k >= 0 else "unscored" for k, _ in by_band}
    band_section = [
        {"band": band_names[b], **subgroup(by_band, b, f"Engagement {band_names[b]} at enrolment")}
        for b in sorted(band_names)
    ]
    by_age = _sum_cells(cells, horizons, key=lambda c: c.age_band)
    age_names = {k: q.AGE_BANDS[k] if k >= 0 else "birth year unknown" for k, _ in by_age}
    age_section = [
        {"age_band": age_names[a], **subgroup(by_age, a, f"Age {age_names[a]} at enrolment")} for a in sorted(age_names)
    ]
    by_region = _sum_cells(cells, horizons, key=lambda c: c.region)
    region_names = {k: k or "not recorded at enrolment" for k, _ in by_region}
    region_section = [
        {"region": region_names[r], **subgroup(by_region, r, f"Region {region_names[r]} at enrolment")}
        for r in sorted(region_names)
    ]
    done("breakdowns", 55)

    survival = survival_section(
        survival_counts,
        minimums=minimums,
        first_enrolled=first_enrolled,
        as_of=as_of,
    )
    done("survival", 75)

    over_time = defaultdict(dict)
    for group, k, total, count in revenue_by_month:
        over_time[k][group] = (total, count)
    revenue_rows = [
        {
            "month": k + 1,
            "treatment_per_customer": _f(v[TREATMENT][0] / v[TREATMENT][1], 2) if TREATMENT in v else None,
            "treatment_n": v[TREATMENT][1] if TREATMENT in v else 0,
            "control_per_customer": _f(v[CONTROL][0] / v[CONTROL][1], 2) if CONTROL in v else None,
            "control_n": v[CONTROL][1] if CONTROL in v else 0,
        }
        for k, v in sorted(over_time.items())
    ]
    cuped = cuped_section(
        revenue_moments,
        horizons,
        minimums=minimums,
        first_enrolled=first_enrolled,
        as_of=as_of,
    )
    done("revenue", 95)

    report = {
        "programme": {"id": programme.pk, "name": programme.name, "holdout_percent": holdout},
        "as_of": as_of.isoformat(),
        "horizons": horizons,
        "method": (
            "Intention to treat: every customer counts in the group it was randomly assigned at enrolment "
            "(treatment or control), whatever it did afterwards. Only the latest outcome of a membership that no "
            "correction supersedes counts. A member counts at a horizon only if enrolled at least that long ago "
            "(months of 30.44 days). Uplift = treatment retention minus control retention in points, with "
            "Newcombe's hybrid score 95% interval (method 10) and the p-value of the same interval inverted, so "
            "a p below 0.05 always goes with an interval that excludes 0. Subgroups (tier, cohort, engagement band, "
            "age band, region) use values fixed at enrolment: the tier at enrolment (shadow tier for control), the "
            "engagement score of the scoring run the enrolment used, the age and the region recorded on the "
            "membership when it was enrolled."
        ),
        "minimums": {
            "members_per_group": minimums.members_per_group,
            "churned": minimums.churned,
            "retained": minimums.retained,
            "survival_events": minimums.survival_events,
            "followup_days": minimums.followup_days,
            "rmst_days": RMST_DAYS,
            "explanation": minimums.explanation(),
        },
        "groups": {
            "treatment": n_t,
            "control": n_c,
            "explanation": f"{n_t} treatment and {n_c} control memberships enrolled by {as_of:%Y-%m-%d}.",
        },
        "srm": srm,
        "take_up": take_up,
        "retention": overall,
        "by_tier": tier_section,
        "by_cohort": cohort_section,
        "by_age": age_section,
        "by_region": region_section,
        "engagement": {
            "scoring_run_ids": scoring_run_ids,
            "bands": band_section,
            "explanation": (
                "Retention by engagement score band (0-100) at enrolment: the score of the scoring run the "
                "enrolment used (or the latest one before it), never a later one, since churners stop interacting "
                "and members who use the concierge rise. Each band has its own sample-ratio check. Band results "
                "are exploratory (adjusted for multiple comparisons); differences between bands are not causal."
            ),
        },
        "survival": survival,
        "revenue": {
            "over_time": revenue_rows,
            "cuped": cuped,
            "explanation": (
                "Revenue per customer in each month since enrolment (members enrolled long enough to complete "
                "that month; churned customers count with zero), then the CUPED-adjusted comparison."
            ),
        },
        "timings": timings,
    }
    _judge(report, programme=programme, primary_months=primary_months, last_enrolled=last_enrolled, as_of=as_of)
    return report


# --- one primary question, exploratory adjustment, interim looks, SRM -------------------------------------

_VERDICT = re.compile(r"(p = [0-9.e-]+|p < 0\.001), (not )?significant at the 5% level")
SRM_WARNING = (
    "Warning: sample-ratio mismatch (the treatment/control split does not match the design, so members were lost "
    "or added selectively): this figure is not trustworthy and is not called significant. "
)


def _effects(report: dict) -> list[tuple[dict, dict, str]]:
    """Every effect with a p-value: (holder of the explanation, holder of p_value/significant, kind)."""
    items = [(c, c, "overall") for c in report["retention"]]
    for key in ("by_tier", "by_cohort", "by_age", "by_region"):
        items += [(c, c, key) for s in report.get(key, []) for c in s["horizons"]]
    items += [(c, c, "engagement") for s in report["engagement"]["bands"] for c in s["horizons"]]
    for key in ("logrank", "rmst"):
        if report["survival"].get(key):
            items.append((report["survival"][key], report["survival"][key], key))
    items += [(r, r["adjusted"], "cuped") for r in report["revenue"]["cuped"] if r.get("adjusted")]
    return items


def _judge(report: dict, *, programme: Programme, primary_months: int, last_enrolled, as_of: datetime) -> None:
    """Decide, once for the whole report, what may be called significant.

    - The programme's primary question (retention at `primary_months`, intention to treat) is the one
      confirmatory test, at the 5% level.
    - Every other comparison is exploratory: Benjamini-Hochberg adjusted over all of them (false discovery rate
      5%), labelled as such.
    - Before every enrolled member has reached the primary horizon the report is an interim look: estimates and
      intervals are shown, nothing is called significant, and the report says it is not a decision (no
      always-valid sequential test is used; looking again later does not inflate the error rate because no
      decision is taken before the horizon).
    - A subgroup whose own split fails its sample-ratio check is untrustworthy: no effect is shown for it.
    - When the overall split fails, every effect carries the warning and nothing is called significant."""
    srm_failed = bool(report["srm"]["overall"]["mismatch"])
    decision_day = last_enrolled + timedelta(days=q.horizon_days(primary_months)) if last_enrolled else None
    interim = decision_day is None or as_of < decision_day
    primary = next(c for c in report["retention"] if c["months"] == primary_months)
    family = []
    for holder, stats_, _kind in _effects(report):
        stats_["significant"] = False
        if holder.get("subgroup_srm_mismatch"):
            reason = (
                f"{holder['label']}, {holder['months']} months: this subgroup's own treatment/control split fails its "
                "sample-ratio check (p < 0.001), so its comparison is untrustworthy and no effect is shown."
            )
            for k in ("uplift", "ci_low", "ci_high", "p_value", "relative_churn_reduction"):
                holder[k] = None
            holder.update(available=False, reason=reason, explanation=reason, role="untrustworthy")
            continue
        if holder is primary:
            holder["role"] = "primary"
            continue
        holder["role"] = "exploratory"
        if stats_.get("p_value") is not None and holder.get("available", True):
            family.append((holder, stats_))
    adjusted = benjamini_hochberg([st["p_value"] for _, st in family])
    blocked = "srm" if srm_failed else "interim" if interim else None
    decision = decision_day.date().isoformat() if decision_day else None

    def verdict(p: float, significant: bool, label: str) -> str:
        if blocked == "srm":
            return f"{p_format(p)}; not trustworthy (sample-ratio mismatch), not called significant"
        if blocked == "interim":
            return f"{p_format(p)}; interim look, not a decision: nothing is called significant before {decision}"
        return f"{p_format(p)}, {'significant' if significant else 'not significant'} {label}"

    for (holder, st), q_value in zip(family, adjusted, strict=True):
        st["p_adjusted"] = _f(q_value)
        st["significant"] = blocked is None and q_value < ALPHA
        label = (
            f"after Benjamini-Hochberg adjustment over {len(family)} exploratory comparisons "
            f"(adjusted {p_format(q_value)[2:]}; exploratory, not a decision)"
        )
        holder["explanation"] = _VERDICT.sub(verdict(st["p_value"], st["significant"], label), holder["explanation"])
    if primary.get("available") and primary["p_value"] is not None:
        primary["significant"] = blocked is None and primary["p_value"] < ALPHA
        label = f"at the 5% level (the programme's primary question: {primary_months}-month retention, confirmatory)"
        primary["explanation"] = _VERDICT.sub(
            verdict(primary["p_value"], primary["significant"], label), primary["explanation"]
        )
    if srm_failed:
        for holder, _, _ in _effects(report):
            holder["explanation"] = SRM_WARNING + holder["explanation"]
            holder["srm_warning"] = True
        for h in report["take_up"]["by_horizon"]:
            h["explanation"] = SRM_WARNING + h["explanation"]
            h["srm_warning"] = True
    if blocked == "srm":
        status = "Not trustworthy: the treatment/control split fails the sample-ratio check. No result is a decision."
    elif interim:
        status = (
            f"Interim look: not every member has reached the primary horizon ({primary_months} months) yet"
            + (f"; the primary question is decided on {decision}." if decision else ".")
            + " The figures are estimates to watch, not a decision, and nothing is called significant."
        )
    else:
        status = (
            f"Final for the primary question ({primary_months}-month retention): every member has been enrolled "
            f"{primary_months} months. It is the only confirmatory result; everything else is exploratory."
        )
    report["decision"] = {
        "primary_metric": programme.primary_metric,
        "primary_months": primary_months,
        "interim": interim,
        "decision_day": decision,
        "srm_failed": srm_failed,
        "looks": "interim_not_a_decision",
        "exploratory_comparisons": len(family),
        "exploratory_adjustment": "benjamini-hochberg",
        "explanation": status
        + " Repeated looks: the report may be computed at any date; before the horizon it says it is interim and "
        "claims nothing (no always-valid sequential test is used). Exploratory comparisons (other horizons, tiers, "
        "cohorts, engagement and age bands, regions, log-rank, RMST, revenue) are adjusted together by "
        "Benjamini-Hochberg (5% false discovery rate).",
    }


# --- stored reports (Celery) --------------------------------------------------------------------------------


@transaction.atomic
def impact_report_request(*, programme: Programme, as_of: datetime | None, horizons: Sequence[int], user=None):
    """Create a pending stored report and enqueue its computation after commit."""
    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1 or horizons[-1] > 60:
        raise ValidationFailed("Horizons are months between 1 and 60.", fields={"horizons": ["1 to 60 months."]})
    report = ImpactReport.objects.create(
        programme=programme, as_of=as_of or timezone.now(), horizons=horizons, created_by=user
    )
    outbox.enqueue("loyalty.tasks.impact_report_run", report.pk)
    return report


def impact_report_run_stored(*, report_id: int) -> ImpactReport:
    """Compute a stored report. Idempotent: a finished report is left alone; a claimed running one is
    refused, so two deliveries of the task never compute it twice at once (one whose worker died is requeued
    by the reconciler, core.runs)."""
    claimed = runs.run_claim(ImpactReport, report_id, progress=1)
    report = ImpactReport.objects.select_related("programme").get(pk=report_id)
    if not claimed:
        if report.status == ImpactReport.Status.RUNNING:
            raise Conflict("This report is already being computed.", code="report_running")
        return report

    def progress(percent: int) -> None:
        runs.run_progress(ImpactReport, report_id, percent)

    try:
        with runs.heartbeat(ImpactReport, report_id):
            result = impact_report_compute(
                programme=report.programme, as_of=report.as_of, horizons=report.horizons, progress=progress
            )
    except Exception as exc:  # recorded on the report; the task is not retried with the same input
        logger.exception("Impact report %s failed", report_id)
        ImpactReport.objects.filter(pk=report_id).update(
            status=ImpactReport.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        report.refresh_from_db()
        return report
    ImpactReport.objects.filter(pk=report_id).update(
        status=ImpactReport.Status.SUCCEEDED,
        progress=100,
        result=result,
        timings=result["timings"],
        heartbeat_at=timezone.now(),
        finished_at=timezone.now(),
    )
    report.refresh_from_db()
    return report


def impact_report_retry(*, report: ImpactReport) -> ImpactReport:
    """A failed stored report is computed again (409 `run_not_failed` otherwise)."""
    return runs.run_retry(ImpactReport, report.pk, task_name="loyalty.tasks.impact_report_run", result=None)


def impact_reports_reconcile() -> dict[str, list[int]]:
    """Requeue or fail stored reports that never started or whose worker died (beat, core.runs)."""
    return runs.runs_reconcile(ImpactReport, task_name="loyalty.tasks.impact_report_run")
