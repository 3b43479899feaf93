"""Cohort statistics: response rates with exact intervals, the arm comparison, Kaplan-Meier,
log-rank, Cox, and the naive and landmark PFS analyses by response. Table or arrays in, typed
results out (:mod:`.types`, the shapes of ``cohort.json``); no I/O, no plotting. A number that
does not exist (a rate of 0 subjects, a median that is not reached, a limit at infinity, a
hazard ratio that cannot be estimated) is ``None``, never NaN or inf.

* :mod:`.rates`: :func:`binomial_rate` (Clopper-Pearson), :func:`compare_arms` (Fisher/chi2);
* :mod:`.survival`: :func:`kaplan_meier`, :func:`logrank`; :mod:`.hazards`: :func:`cox`;
* :mod:`.pfs`: :func:`pfs_analysis`, the landmark analysis (guarantee-time bias);
* :mod:`.cohort`: :func:`cohort_statistics`, all of it for a subjects table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .cohort import cohort_statistics  # noqa: F401
    from .hazards import UNIT_PER_10_POINTS, UNIT_RESPONDER, cox  # noqa: F401
    from .pfs import (  # noqa: F401
        NAIVE_LABEL, RESPONSE_TIME_COLUMNS, default_landmark_days, landmark_frame,
        landmark_label, pfs_analysis,
    )
    from .rates import binomial_rate, compare_arms  # noqa: F401
    from .survival import kaplan_meier, logrank  # noqa: F401
    from .types import (  # noqa: F401
        ArmTest, CohortSummary, Cox, Curve, KaplanMeier, LogRank, PfsAnalysis, PfsSummary, Rate,
        RateSet, SurvivalAt,
    )

_EXPORTS = {
    "ArmTest": "types",
    "CohortSummary": "types",
    "Cox": "types",
    "Curve": "types",
    "KaplanMeier": "types",
    "LogRank": "types",
    "NAIVE_LABEL": "pfs",
    "PfsAnalysis": "types",
    "PfsSummary": "types",
    "RESPONSE_TIME_COLUMNS": "pfs",
    "Rate": "types",
    "RateSet": "types",
    "SurvivalAt": "types",
    "UNIT_PER_10_POINTS": "hazards",
    "UNIT_RESPONDER": "hazards",
    "binomial_rate": "rates",
    "cohort_statistics": "cohort",
    "compare_arms": "rates",
    "cox": "hazards",
    "default_landmark_days": "pfs",
    "kaplan_meier": "survival",
    "landmark_frame": "pfs",
    "landmark_label": "pfs",
    "logrank": "survival",
    "pfs_analysis": "pfs",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
