"""Percent change and inclusive threshold tests, shared by every response computation."""

from __future__ import annotations

__all__ = ["percent_change", "reached_decrease", "reached_increase"]

THRESHOLD_TOL = 1e-9
"""Percent-point tolerance for threshold tests, so float rounding of volumes (e.g. -19.999...96%
for an exact -20%) cannot flip a change that lies exactly on an inclusive threshold."""


def percent_change(value: float, reference: float) -> float | None:
    """``(value - reference) / reference * 100``; ``None`` when the reference is 0."""
    if reference == 0:
        return None
    return (value - reference) / reference * 100.0


def reached_decrease(pct: float, threshold_pct: float) -> bool:
    """True when ``pct`` is a decrease of at least ``threshold_pct`` percent (inclusive)."""
    return pct <= -threshold_pct + THRESHOLD_TOL


def reached_increase(pct: float, threshold_pct: float) -> bool:
    """True when ``pct`` is an increase of at least ``threshold_pct`` percent (inclusive)."""
    return pct >= threshold_pct - THRESHOLD_TOL
