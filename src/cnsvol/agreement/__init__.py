"""Agreement between two sources of masks for one cohort (a reader and a model, two readers):
voxels and lesions per scan (:mod:`.scans`), categories and cohort results side by side, and
the statistics of agreement (:mod:`.stats`); :func:`agree` runs both cohorts and writes it all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .run import Agreement, agree  # noqa: F401
    from .scans import SCAN_KEYS, scan_agreement  # noqa: F401
    from .stats import (  # noqa: F401
        bland_altman, icc, kappa, mcnemar, paired_rate_difference,
    )

_EXPORTS = {
    "Agreement": "run",
    "agree": "run",
    "SCAN_KEYS": "scans",
    "scan_agreement": "scans",
    "bland_altman": "stats",
    "icc": "stats",
    "kappa": "stats",
    "mcnemar": "stats",
    "paired_rate_difference": "stats",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
