"""The reproducible treatment/control split and the statistics that go with it.

The split hashes (programme seed, customer id) with integer arithmetic that PostgreSQL and SQLite evaluate
identically: every intermediate value stays below 2**62 (no overflow on either database), there is no
float, no vendor function, and XOR is written as `(a | b) - (a & b)`. `assignment_bucket_int` is the same
formula in Python, so tests (and anyone auditing) can recompute any customer's bucket.

bucket_int is in [0, 1_000_000); the stored bucket is bucket_int / 10_000 in [0, 100). A customer is held
out (control) when bucket_int < holdout_percent * 10_000, compared as integers.
"""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal

PRIME = 2_147_483_647  # 2**31 - 1
MULTIPLIERS = (1_103_515_245, 747_796_405, 1_597_334_677)
BUCKETS = 1_000_000
BUCKETS_PER_PERCENT = 10_000

Z_95_TWO_SIDED = 1.959963984540054
Z_80_POWER = 0.8416212335729143
SRM_ALPHA = 0.001


def seed_constants(seed: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return tuple(int(digest[i * 8 : (i + 1) * 8], 16) % PRIME for i in range(3))  # type: ignore[return-value]


def _xorshift(x: int, shift: int) -> int:
    y = x >> shift
    return (x | y) - (x & y)


def assignment_bucket_int(seed: str, customer_id: int) -> int:
    """Reference implementation of the SQL hash (see `assignment_bucket_sql`)."""
    a, b, c = seed_constants(seed)
    x = (customer_id % PRIME + a) % PRIME
    x = (x * MULTIPLIERS[0] + b) % PRIME
    x = _xorshift(x, 16)
    x = (x * MULTIPLIERS[1] + c) % PRIME
    x = _xorshift(x, 13)
    x = (x * MULTIPLIERS[2] + a) % PRIME
    return x % BUCKETS


def holdout_cutoff(holdout_percent: Decimal | float | int) -> int:
    """bucket_int below this value = control."""
    return int((Decimal(str(holdout_percent)) * BUCKETS_PER_PERCENT).to_integral_value())


def assignment_bucket_sql(source_sql: str, columns: list[str], seed: str) -> tuple[str, list[int]]:
    """Wrap `source_sql` (which must select `customer_id` and `columns`) in layers that add `bucket_int`.

    Returns SQL selecting customer_id, *columns, bucket_int, and its parameters (none: the source's own
    parameters are the only ones)."""
    a, b, c = seed_constants(seed)
    keep = ", ".join(["customer_id", *columns])
    p = PRIME

    def xor(col: str, shift: int) -> str:
        return f"(({col} | ({col} / {2**shift})) - ({col} & ({col} / {2**shift})))"

    # Shifts are written as integer division by a power of two (identical to >> for non-negative values).
    # The seed constants are integers computed here, inlined as literals (no placeholders to order).
    sql = f"SELECT {keep}, ((customer_id %% {p}) + {a}) %% {p} AS h FROM ({source_sql}) s0"
    sql = f"SELECT {keep}, (h * {MULTIPLIERS[0]} + {b}) %% {p} AS h FROM ({sql}) s1"
    sql = f"SELECT {keep}, {xor('h', 16)} AS h FROM ({sql}) s2"
    sql = f"SELECT {keep}, (h * {MULTIPLIERS[1]} + {c}) %% {p} AS h FROM ({sql}) s3"
    sql = f"SELECT {keep}, {xor('h', 13)} AS h FROM ({sql}) s4"
    sql = f"SELECT {keep}, ((h * {MULTIPLIERS[2]} + {a}) %% {p}) %% {BUCKETS} AS bucket_int FROM ({sql}) s5"
    return sql, []


def retention_mde(*, treatment: int, control: int, baseline: float) -> float | None:
    """Smallest absolute retention difference (a share, 0.009 = 0.9 points) detectable at 95% confidence
    (two-sided) and 80% power by a two-proportion test, with these group sizes."""
    if treatment <= 0 or control <= 0:
        return None
    return (Z_95_TWO_SIDED + Z_80_POWER) * math.sqrt(baseline * (1 - baseline) * (1 / treatment + 1 / control))


def retention_mde_for_holdout(*, customers: int, holdout_percent: float, baseline: float) -> float | None:
    control = round(customers * holdout_percent / 100)
    return retention_mde(treatment=customers - control, control=control, baseline=baseline)


def sample_ratio_check(*, treatment: int, control: int, holdout_percent: float) -> dict:
    """Chi-square goodness of fit of the observed split against the configured holdout (1 degree of freedom).
    A p-value below 0.001 flags a sample-ratio mismatch: the split is not what the design says."""
    n = treatment + control
    share = holdout_percent / 100
    if n == 0 or share <= 0 or share >= 1:
        return {"chi_square": None, "p_value": None, "mismatch": False}
    expected_c, expected_t = n * share, n * (1 - share)
    chi2 = (control - expected_c) ** 2 / expected_c + (treatment - expected_t) ** 2 / expected_t
    p_value = math.erfc(math.sqrt(chi2 / 2))
    return {"chi_square": round(chi2, 4), "p_value": round(p_value, 6), "mismatch": p_value < SRM_ALPHA}
