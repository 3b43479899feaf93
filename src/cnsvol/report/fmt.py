"""How the report writes values: an em dash for what is not available, fixed decimals, signed
percentages with a true minus sign, p-values, rates with their exact intervals."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .markup import el, join, sep
from .style import number

if TYPE_CHECKING:  # pragma: no cover
    from ..cohort.stats.types import KaplanMeier, Rate

__all__ = [
    "NA",
    "iter_rows",
    "fmt_days",
    "fmt_int",
    "fmt_num",
    "fmt_p",
    "fmt_pct_change",
    "fmt_rate",
    "id_list",
    "median_ci",
    "median_midpoint",
    "responder_words",
    "yes_no",
]

NA = "\u2014"  # em dash: not available / not applicable


def iter_rows(frame: Any) -> Iterator[dict[str, Any]]:
    """The rows of a table one at a time, as dicts (a cohort's table is never held as a list
    of dicts)."""
    if frame is None:
        return
    columns = list(frame.columns)
    for values in frame.itertuples(index=False, name=None):
        yield dict(zip(columns, values))


def fmt_num(value: Any, digits: int = 1) -> str:
    x = number(value)
    return NA if x is None else f"{x:.{digits}f}"


def fmt_int(value: Any) -> str:
    x = number(value)
    return NA if x is None else f"{x:.0f}"


def fmt_pct_change(value: Any) -> str:
    x = number(value)
    if x is None:
        return NA
    return f"{x:+.1f}%".replace("-", "\u2212")


def fmt_p(value: Any) -> str:
    p = number(value)
    if p is None:
        return NA
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_rate(rate: Rate | None) -> tuple[str, str, str]:
    """(events / n, rate %, 95% CI %) of a rate."""
    if rate is None:
        return NA, NA, NA
    frac = f"{fmt_int(rate.events)} / {fmt_int(rate.n)}"
    pct = NA if rate.rate is None else f"{100 * rate.rate:.1f}%"
    ci = (NA if rate.ci_low is None or rate.ci_high is None
          else f"{100 * rate.ci_low:.1f}\u2013{100 * rate.ci_high:.1f}%")
    return frac, pct, ci


def flag(value: Any) -> bool | None:
    """A boolean of a typed table; ``None`` when missing."""
    if value is None or type(value).__name__ == "NAType":
        return None
    return bool(value)


def yes_no(value: Any) -> str:
    b = flag(value)
    return NA if b is None else ("yes" if b else "no")


def id_list(values: list[str]) -> Any:
    if not values:
        return "none"
    return join(f"{len(values)}: ", sep([el("code", i) for i in values], ", "))


def responder_words(col: str | None, pct: Any = 20) -> str:
    if col == "objective_response":
        return "objective response (CR or PR)"
    return f"\u2265{fmt_num(pct, 0)}% volumetric reduction"


def fmt_days(value: Any) -> str:
    """A time in days exactly as ``cohort.json`` has it, never rounded: the shortest text that
    reads back as the same float (what JSON writes), without a trailing ``.0`` (250.5 is
    "250.5", 250.0 is "250")."""
    x = number(value)
    if x is None:
        return NA
    return repr(x).removesuffix(".0")


def median_ci(km: KaplanMeier) -> str:
    """`` (lo\u2013hi)``, the limits as :func:`fmt_days`; a missing upper limit is "NR" (not
    reached); nothing when both are missing."""
    lo, hi = km.median_ci_low, km.median_ci_high
    if lo is None and hi is None:
        return ""
    return f" ({fmt_days(lo)}\u2013{'NR' if hi is None else fmt_days(hi)})"


_HALF_TOLERANCE = math.sqrt(sys.float_info.epsilon)  # as cnsvol.cohort.stats.survival


def median_midpoint(km: KaplanMeier) -> tuple[float, float] | None:
    """``(t, u)`` when the stored median is the midpoint rule's (t + u) / 2: the Kaplan-Meier
    curve is exactly 0.5 (within sqrt(machine epsilon)) from day ``t``, the first day it is
    <= 0.5, until it drops at the next event day ``u``. ``None`` when the median is the
    first day with S(t) <= 0.5 itself, or is not reached. Read off the curve stored with the
    median (``cohort.json`` records the median, not which rule gave it)."""
    med = number(km.median_days)
    times, surv = km.curve.time, km.curve.survival
    if med is None or not times or len(times) != len(surv):
        return None
    first = next((i for i, s in enumerate(surv) if s < 0.5 + _HALF_TOLERANCE), None)
    if first is None or abs(surv[first] - 0.5) >= _HALF_TOLERANCE:
        return None
    later = next((i for i, s in enumerate(surv) if s < surv[first] - _HALF_TOLERANCE), None)
    if later is None:
        return None
    t, u = float(times[first]), float(times[later])
    return (t, u) if math.isclose(med, (t + u) / 2, rel_tol=1e-12, abs_tol=1e-9) else None
