"""cnsvol: volumetric response assessment of brain (CNS) lesions on MRI segmentation masks.

The public API is importable from the package root; heavy modules load on first use so that
``import cnsvol`` (and the ``cnsvol`` command) starts quickly.

>>> import cnsvol
>>> result = cnsvol.compare("baseline.nii.gz", "week8.nii.gz", criteria="lin2009")  # doctest: +SKIP
>>> result.percent_change, result.category                                         # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .criteria import PRESETS, Criteria, get_criteria, load_criteria_file
    from .errors import (
        ClinicalError, CnsvolError, CriteriaError, GridError, ManifestError, MaskError,
        MaskTooLargeError,
    )
    from .io import Mask, mask_from_array, read_image, read_mask
    from .labelsets import LABEL_PRESETS, parse_labels
    from .lesions import Lesion, LesionSet, find_lesions
    from .matching import Correspondence, Matching, match
    from .response import (
        CompareResult, MeasureOptions, SeriesResult, compare, evaluate_series, measure,
        percent_change,
    )
    from .series import ClinicalStatus
    from .batch import RunConfig, RunSummary, run_cohort
    from .clinical import PfsTable, read_pfs
    from .manifest import SubjectPlan, read_manifest
    from .report import build_report, write_cohort_figures
    from .stats import cohort_statistics

_EXPORTS = {
    "read_mask": "io",
    "mask_from_array": "io",
    "Mask": "io",
    "find_lesions": "lesions",
    "Lesion": "lesions",
    "LesionSet": "lesions",
    "Criteria": "criteria",
    "PRESETS": "criteria",
    "get_criteria": "criteria",
    "load_criteria_file": "criteria",
    "LABEL_PRESETS": "labelsets",
    "parse_labels": "labelsets",
    "compare": "response",
    "evaluate_series": "response",
    "SeriesResult": "response",
    "match": "matching",
    "Matching": "matching",
    "Correspondence": "matching",
    "ClinicalStatus": "series",
    "read_manifest": "manifest",
    "SubjectPlan": "manifest",
    "read_pfs": "clinical",
    "PfsTable": "clinical",
    "run_cohort": "batch",
    "RunConfig": "batch",
    "RunSummary": "batch",
    "cohort_statistics": "stats",
    "build_report": "report",
    "write_cohort_figures": "report",
    "read_image": "io",
    "measure": "response",
    "percent_change": "response",
    "CompareResult": "response",
    "MeasureOptions": "response",
    "CnsvolError": "errors",
    "MaskError": "errors",
    "MaskTooLargeError": "errors",
    "CriteriaError": "errors",
    "GridError": "errors",
    "ClinicalError": "errors",
    "ManifestError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cnsvol' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
