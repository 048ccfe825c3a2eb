"""Checks of notebook parameters, run before a notebook opens anything.

A parameter out of range used to surface cells later as a database error
(a negative ``LIMIT``), an error naming an internal argument, or no error
at all (a histogram of "alerts above -0.1"). These raise the project's
:class:`~pe_toolkit.errors.InputError` naming the parameter as the notebook
calls it, and the range it takes.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InputError


def check_count(value: Any, name: str, *, minimum: int = 0) -> int:
    """``value`` as an int of at least ``minimum`` (bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


def check_number(value: Any, name: str, *, low: float, high: float = math.inf) -> float:
    """``value`` as a float in ``[low, high]`` (NaN is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        bound = f"between {low:g} and {high:g}" if math.isfinite(high) else f"at least {low:g}"
        raise InputError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)
