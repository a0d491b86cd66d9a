"""Properties of the engagement score (on the Python reference, which test_scoring_sql ties to the SQL)."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.sql import day_number, week_of
from loyalty.segmentation.services.scoring import ALL_CHANNELS, CONTACT, DEFAULT_MODEL, engagement_score
from tests.loyalty.scoring.reference import reference_metrics

AS_OF = date(2026, 6, 30)
SUBJECT = 0

interaction = st.tuples(st.sampled_from(ALL_CHANNELS), st.integers(min_value=0, max_value=200))
population = st.dictionaries(st.integers(min_value=0, max_value=7), st.lists(interaction, max_size=12), min_size=1).map(
    lambda p: {SUBJECT: [], **p}
)
weights = st.floats(min_value=0, max_value=10, allow_nan=False)
model_strategy = st.builds(
    lambda b, f, r, h: SimpleNamespace(
        **{**DEFAULT_MODEL, "breadth_weight": b, "frequency_weight": f, "recency_weight": r, "half_life_days": h}
    ),
    weights,
    weights,
    weights,
    st.floats(min_value=1, max_value=400),
).filter(lambda m: m.breadth_weight + m.frequency_weight + m.recency_weight > 0.01)
default_model = SimpleNamespace(**DEFAULT_MODEL)


def _scores(pop: dict[int, list[tuple[str, int]]], model=default_model) -> dict[int, dict]:
    rows = [(c, channel, AS_OF - timedelta(days=ago)) for c, items in pop.items() for channel, ago in items]
    return reference_metrics(customer_ids=sorted(pop), interactions=rows, revenue=[], model=model, as_of=AS_OF)


def _score(pop, model=default_model) -> float:
    return _scores(pop, model)[SUBJECT]["engagement_score"]


@settings(max_examples=150, deadline=None)
@given(population, model_strategy)
def test_score_is_bounded(pop, model):
    for row in _scores(pop, model).values():
        assert 0.0 <= row["engagement_score"] <= 100.0
        assert 0.0 <= row["engagement_percentile"] <= 100.0


@settings(max_examples=150, deadline=None)
@given(population, st.data())
def test_one_more_channel_never_lowers_the_score(pop, data):
    in_window = {ch for ch, ago in pop[SUBJECT] if ago < DEFAULT_MODEL["engagement_window_days"]}
    unused = [c for c in CONTACT if c not in in_window]
    assume(unused)
    channel = data.draw(st.sampled_from(unused))
    ago = data.draw(st.integers(min_value=0, max_value=DEFAULT_MODEL["engagement_window_days"] - 1))
    before = _scores(pop)[SUBJECT]
    after = _scores({**pop, SUBJECT: [*pop[SUBJECT], (channel, ago)]})[SUBJECT]
    assert after["channels_used"] == before["channels_used"] + 1
    assert after["engagement_score"] >= before["engagement_score"]


@settings(max_examples=150, deadline=None)
@given(population, st.data())
def test_a_more_recent_interaction_never_lowers_the_score(pop, data):
    assume(pop[SUBJECT])
    index = data.draw(st.integers(min_value=0, max_value=len(pop[SUBJECT]) - 1))
    channel, ago = pop[SUBJECT][index]
    day = AS_OF - timedelta(days=ago)
    # Later, but in the same week (so it is the recency that changes, not the count of active weeks).
    latest = min(AS_OF, day + timedelta(days=6 - day.weekday()))
    assume(latest > day)
    new_day = data.draw(st.dates(min_value=day + timedelta(days=1), max_value=latest))
    assert week_of(day_number(new_day)) == week_of(day_number(day))
    moved = list(pop[SUBJECT])
    moved[index] = (channel, (AS_OF - new_day).days)
    assert _score({**pop, SUBJECT: moved}) >= _score(pop)


@settings(max_examples=150, deadline=None)
@given(population, st.data())
def test_more_active_weeks_never_lower_the_score(pop, data):
    active = {week_of(day_number(AS_OF - timedelta(days=ago))) for _, ago in pop[SUBJECT]}
    candidates = [ago for ago in range(0, 91) if week_of(day_number(AS_OF - timedelta(days=ago))) not in active]
    candidates = [
        a for a in candidates if week_of(day_number(AS_OF - timedelta(days=a))) > week_of(day_number(AS_OF)) - 13
    ]
    assume(candidates)
    ago = data.draw(st.sampled_from(candidates))
    channel = data.draw(st.sampled_from(ALL_CHANNELS))
    before = _scores(pop)[SUBJECT]
    after = _scores({**pop, SUBJECT: [*pop[SUBJECT], (channel, ago)]})[SUBJECT]
    assert after["active_weeks"] == before["active_weeks"] + 1
    assert after["engagement_score"] >= before["engagement_score"]


@given(st.integers(0, 6), st.integers(0, 13), st.floats(0, 1), st.integers(0, 5), st.integers(0, 12), st.floats(0, 1))
def test_the_score_is_monotone_in_each_part(ch, wk, pct, dch, dwk, dpct):
    ch2, wk2, pct2 = min(6, ch + dch), min(13, wk + dwk), min(1.0, pct + dpct)
    weights = {"breadth_weight": 0.3, "frequency_weight": 0.3, "recency_weight": 0.4}
    low = engagement_score(channels_used=ch, active_weeks=wk, weeks=13, activity_percentile=pct, **weights)
    high = engagement_score(channels_used=ch2, active_weeks=wk2, weeks=13, activity_percentile=pct2, **weights)
    assert 0 <= low <= high <= 100


def test_default_model_follows_the_field_data():
    """Typical profiles land near the survey index (README): all six channels ~80, weekly ~77, monthly lower,
    and one social or app contact weighs more than one website contact."""
    profile = {"breadth_weight": 0.3, "frequency_weight": 0.3, "recency_weight": 0.4, "weeks": 13}
    all_six = engagement_score(channels_used=6, active_weeks=7, activity_percentile=0.85, **profile)
    weekly = engagement_score(channels_used=3, active_weeks=13, activity_percentile=0.80, **profile)
    monthly = engagement_score(channels_used=3, active_weeks=3, activity_percentile=0.50, **profile)
    assert (round(all_six), round(weekly), round(monthly)) == (80, 77, 42)
    w = DEFAULT_MODEL["channel_weights"]
    assert w["social"] > w["app"] > w["online"]
