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
    from .response.criteria import PRESETS, Criteria, get_criteria, load_criteria_file
    from .errors import (
        ClinicalError, CnsvolError, CriteriaError, GridError, ManifestError, MaskError,
        MaskTooLargeError,
    )
    from .io import Mask, mask_from_array, read_image, read_mask
    from .io.labelsets import LABEL_PRESETS, parse_labels
    from .lesions import Lesion, LesionSet, find_lesions
    from .tracking.matching import Correspondence, Matching, match
    from .pipeline import MeasureOptions, compare, evaluate_series, measure
    from .response import ClinicalStatus, CompareResult, SeriesResult, percent_change
    from .batch.run import RunConfig, RunSummary, run_cohort
    from .cohort.pfs import PfsTable, read_pfs
    from .cohort.manifest import SubjectPlan, read_manifest
    from .report.html import build_report, write_cohort_figures
    from .cohort.stats import cohort_statistics

_EXPORTS = {
    "read_mask": "io.read",
    "mask_from_array": "io.mask",
    "Mask": "io.mask",
    "find_lesions": "lesions.find",
    "Lesion": "lesions.lesion",
    "LesionSet": "lesions.lesion",
    "Criteria": "response.criteria",
    "PRESETS": "response.criteria",
    "get_criteria": "response.criteria",
    "load_criteria_file": "response.criteria",
    "LABEL_PRESETS": "io.labelsets",
    "parse_labels": "io.labelsets",
    "compare": "pipeline",
    "evaluate_series": "pipeline",
    "SeriesResult": "response.evaluate",
    "match": "tracking.matching",
    "Matching": "tracking.matching",
    "Correspondence": "tracking.matching",
    "ClinicalStatus": "response.clinical",
    "read_manifest": "cohort.manifest",
    "SubjectPlan": "cohort.manifest",
    "read_pfs": "cohort.pfs",
    "PfsTable": "cohort.pfs",
    "run_cohort": "batch.run",
    "RunConfig": "batch.run",
    "RunSummary": "batch.run",
    "cohort_statistics": "cohort.stats",
    "build_report": "report.html",
    "write_cohort_figures": "report.html",
    "read_image": "io.read",
    "measure": "pipeline",
    "percent_change": "response.change",
    "CompareResult": "response.evaluate",
    "MeasureOptions": "pipeline",
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
