"""The typed results of the cohort statistics (the shapes of ``cohort.json``).

Each is a frozen dataclass whose :meth:`to_dict` gives exactly its JSON object (keys in the
documented order, numbers as JSON numbers, ``None`` for a number that does not exist: never NaN
or inf) and whose ``from_dict`` reads it back. Shapes: ``RATE``, ``TEST``, ``KM``,
``ANALYSIS``, ``COX`` of ``docs/outputs.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "ArmTest",
    "CohortSummary",
    "Cox",
    "Curve",
    "KaplanMeier",
    "LogRank",
    "PfsAnalysis",
    "PfsSummary",
    "Rate",
    "RateSet",
    "SurvivalAt",
]


class _Plain:
    """``to_dict``: the fields in order, nested results as their dicts."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


def _plain(value: Any) -> Any:
    if isinstance(value, _Plain):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _opt(cls: Any, value: Any) -> Any:
    return None if value is None else cls.from_dict(value)


@dataclass(frozen=True)
class Rate(_Plain):
    """events / n with its exact (Clopper-Pearson) interval; ``None`` values when n = 0."""

    n: int
    events: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    alpha: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rate:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class RateSet(_Plain):
    overall: Rate
    by_arm: dict[str, Rate]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RateSet:
        return cls(Rate.from_dict(d["overall"]),
                   {k: Rate.from_dict(v) for k, v in d["by_arm"].items()})


@dataclass(frozen=True)
class ArmTest(_Plain):
    """A flag compared between arms: ``table`` arm -> [events, non-events]."""

    test: str  # "fisher_exact" or "chi2"
    p_value: float | None
    table: dict[str, list[int]]
    odds_ratio: float | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArmTest:
        return cls(d["test"], d["p_value"], {k: list(v) for k, v in d["table"].items()},
                   d["odds_ratio"])


@dataclass(frozen=True)
class SurvivalAt(_Plain):
    days: int | float
    survival: float | None
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SurvivalAt:
        return cls(d["days"], d["survival"], d["ci_low"], d["ci_high"])


@dataclass(frozen=True)
class Curve(_Plain):
    """The step function: ``time`` from 0, then every distinct observed time."""

    time: list[float]
    survival: list[float]
    at_risk: list[int]
    events: list[int]
    censored: list[int]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Curve:
        return cls(*(list(d[f.name]) for f in fields(cls)))


@dataclass(frozen=True)
class KaplanMeier(_Plain):
    n: int
    events: int
    median_days: float | None
    median_ci_low: float | None
    median_ci_high: float | None
    survival_at: list[SurvivalAt]
    curve: Curve

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KaplanMeier:
        return cls(d["n"], d["events"], d["median_days"], d["median_ci_low"],
                   d["median_ci_high"], [SurvivalAt.from_dict(s) for s in d["survival_at"]],
                   Curve.from_dict(d["curve"]))


@dataclass(frozen=True)
class LogRank(_Plain):
    statistic: float
    p_value: float
    df: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogRank:
        return cls(d["statistic"], d["p_value"], d["df"])


@dataclass(frozen=True)
class Cox(_Plain):
    """Hazard ratio per unit of the covariate with its Wald interval and p."""

    hr: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    events: int
    unit: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cox:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class PfsAnalysis(_Plain):
    """PFS of responders vs non-responders; the landmark fields only in a landmark analysis."""

    label: str
    time_origin: str  # "baseline" or "landmark"
    groups: dict[str, KaplanMeier]  # "responder", "non_responder"
    logrank: LogRank | None
    cox_responder: Cox | None
    cox_percent_change: Cox | None
    landmark_days: float | None = None
    landmark_source: str | None = None
    n_excluded: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.time_origin != "landmark":
            for key in ("landmark_days", "landmark_source", "n_excluded"):
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PfsAnalysis:
        return cls(
            d["label"], d["time_origin"],
            {k: KaplanMeier.from_dict(v) for k, v in d["groups"].items()},
            _opt(LogRank, d["logrank"]), _opt(Cox, d["cox_responder"]),
            _opt(Cox, d["cox_percent_change"]), d.get("landmark_days"),
            d.get("landmark_source"), d.get("n_excluded"),
        )


@dataclass(frozen=True)
class PfsSummary(_Plain):
    responder_col: str
    n: int
    events: int
    naive: PfsAnalysis
    landmark: PfsAnalysis | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PfsSummary:
        return cls(d["responder_col"], d["n"], d["events"], PfsAnalysis.from_dict(d["naive"]),
                   _opt(PfsAnalysis, d["landmark"]))


@dataclass(frozen=True)
class CohortSummary(_Plain):
    """The content of ``cohort.json`` (see ``docs/outputs.md``)."""

    criteria: str
    n_subjects: int
    n_failed: int
    n_evaluable: int
    ids_without_pfs: list[str]
    ids_without_masks: list[str]
    failed_ids: list[str]
    rates: dict[str, RateSet]
    arm_comparison: dict[str, ArmTest | None] | None
    pfs: PfsSummary | None
    pfs_table: dict[str, Any] | None = field(default=None)  # {"path", "notes"} of the PFS table
    pfs_imaging_discrepancies: list[dict[str, Any]] | None = field(default=None)
    """Imaging vs the PFS record (:mod:`cnsvol.cohort.stats.reconcile`); None without PFS."""
    pfs_tolerance_days: float | None = field(default=None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CohortSummary:
        arms = d["arm_comparison"]
        return cls(
            d["criteria"], d["n_subjects"], d["n_failed"], d["n_evaluable"],
            list(d["ids_without_pfs"]), list(d["ids_without_masks"]), list(d["failed_ids"]),
            {k: RateSet.from_dict(v) for k, v in d["rates"].items()},
            None if arms is None else {k: _opt(ArmTest, v) for k, v in arms.items()},
            _opt(PfsSummary, d["pfs"]), d.get("pfs_table"),
            d.get("pfs_imaging_discrepancies"), d.get("pfs_tolerance_days"),
        )
