"""The one backoff formula (gsmgw.backoff): capped, exponent included (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from gsmgw.backoff import MAX_EXPONENT, backoff_s

attempts = st.integers(min_value=-(10**30), max_value=10**30)
seconds = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(attempt=attempts, initial_s=seconds, max_s=seconds)
def test_always_a_finite_wait_between_zero_and_the_cap(attempt: int, initial_s: float, max_s: float) -> None:
    wait = backoff_s(attempt, initial_s=initial_s, max_s=max_s)
    assert math.isfinite(wait)
    assert 0.0 <= wait <= max_s


@given(attempt=st.integers(min_value=-5, max_value=5000), initial_s=seconds, max_s=seconds)
def test_never_shrinks_as_failures_go_on(attempt: int, initial_s: float, max_s: float) -> None:
    assert backoff_s(attempt, initial_s=initial_s, max_s=max_s) <= backoff_s(
        attempt + 1, initial_s=initial_s, max_s=max_s)


@given(attempt=st.integers(min_value=1, max_value=MAX_EXPONENT + 1),
       initial_s=st.floats(min_value=1e-3, max_value=1e3), max_s=seconds)
def test_doubles_from_the_initial_wait_until_the_cap(attempt: int, initial_s: float, max_s: float) -> None:
    assert backoff_s(attempt, initial_s=initial_s, max_s=max_s) == min(max_s, initial_s * 2.0 ** (attempt - 1))


def test_the_attempts_that_used_to_overflow() -> None:
    # 2 ** 1024 does not fit a float: the old formula raised OverflowError here.
    for attempt in (1024, 1025, 1026, 10**6, 10**100):
        assert backoff_s(attempt, initial_s=5.0, max_s=300.0) == 300.0
    assert [backoff_s(a, initial_s=5, max_s=60) for a in (0, 1, 2, 3, 4, 5)] == [5, 5, 10, 20, 40, 60]
