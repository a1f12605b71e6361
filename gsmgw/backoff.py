"""Capped exponential backoff, the one formula every retry loop uses.

Pure (no clock, no sleep): callers count their failures and ask how long to wait.
"""

from __future__ import annotations

# 2**62 × any positive initial is past every useful cap; bounding the exponent keeps
# the arithmetic in floats. Without it a long failure streak (about 1,024 in a row)
# made ``2 ** attempt`` an int too large for a float: OverflowError.
MAX_EXPONENT = 62


def backoff_s(attempt: int, *, initial_s: float, max_s: float) -> float:
    """Seconds to wait after the ``attempt``-th failure in a row: ``initial_s``,
    2×, 4×, … never more than ``max_s`` (nor less than 0).

    ``attempt`` counts from 1; 0 or less is treated as 1. Any int is accepted.
    """
    exponent = min(max(0, attempt - 1), MAX_EXPONENT)
    return max(0.0, min(float(max_s), float(initial_s) * 2.0**exponent))
