"""cnsvol: volumetric response assessment of brain (CNS) lesions on MRI segmentation masks.

The pipeline, one subpackage per stage, data flowing one way as typed values:
:mod:`cnsvol.io` (masks in RAS+ mm) -> :mod:`cnsvol.lesions` (components, measurements) ->
:mod:`cnsvol.tracking` (correspondence over time) -> :mod:`cnsvol.response` (criteria,
categories, one :class:`SubjectResult` per subject) -> :mod:`cnsvol.cohort` (manifest, PFS,
statistics) -> :mod:`cnsvol.results` (the output tables) -> :mod:`cnsvol.report` (figures,
HTML) -> :mod:`cnsvol.batch` (cohort runs). Everything the ``cnsvol`` command does is one call
here; names load on first use so that ``import cnsvol`` (and the command) starts quickly.

>>> import cnsvol
>>> result = cnsvol.compare("baseline.nii.gz", "week8.nii.gz", criteria="lin2009")  # doctest: +SKIP
>>> result.percent_change, result.category                                         # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .batch import RunConfig, RunSummary, evaluate_subject, run_cohort  # noqa: F401
    from .batch.limits import RunLimits  # noqa: F401
    from .batch.outputs import rebuild_report  # noqa: F401
    from .cohort import Manifest, PfsTable, SubjectPlan, read_manifest, read_pfs  # noqa: F401
    from .cohort.bids import bids_manifest, write_manifest  # noqa: F401
    from .cohort.stats import (  # noqa: F401
        CohortSummary, binomial_rate, cohort_statistics, compare_arms, cox, kaplan_meier, logrank,
    )
    from .errors import (  # noqa: F401
        BidsError, ClinicalError, CnsvolError, CriteriaError, FolderLockedError, GridError,
        ManifestError, MaskError, MaskTooLargeError, ResultsError,
    )
    from .io import LABEL_PRESETS, Mask, mask_from_array, parse_labels, read_image  # noqa: F401
    from .io import read_mask  # noqa: F401
    from .lesions import Lesion, LesionSet, find_lesions  # noqa: F401
    from .pipeline import MeasureOptions, compare, evaluate_series, measure  # noqa: F401
    from .report import build_report, write_cohort_figures, write_report  # noqa: F401
    from .response import (  # noqa: F401
        PRESETS, Category, ClinicalStatus, CompareResult, Criteria, ReasonCode, SeriesResult,
        SubjectResult, SubjectStatus, SubjectSummary, TimepointResult, TrackRow, get_criteria,
        load_criteria_file, percent_change,
    )
    from .results import SCHEMAS, RunResults, build_frames, read_results  # noqa: F401
    from .tracking import Correspondence, Matching, TrackStatus, match  # noqa: F401
    from .tracking.registration import Registration, register  # noqa: F401
    from .agreement.run import Agreement, agree  # noqa: F401

_EXPORTS = {
    # reading masks
    "read_mask": "io.read",
    "read_image": "io.read",
    "mask_from_array": "io.mask",
    "Mask": "io.mask",
    "LABEL_PRESETS": "io.labelsets",
    "parse_labels": "io.labelsets",
    # lesions
    "find_lesions": "lesions.find",
    "Lesion": "lesions.lesion",
    "LesionSet": "lesions.lesion",
    # tracking
    "match": "tracking.matching",
    "Matching": "tracking.matching",
    "Correspondence": "tracking.matching",
    "TrackStatus": "tracking.status",
    "register": "tracking.registration",
    "agree": "agreement.run",
    "Agreement": "agreement.run",
    "Registration": "tracking.registration",
    # one subject
    "measure": "pipeline",
    "compare": "pipeline",
    "evaluate_series": "pipeline",
    "MeasureOptions": "pipeline",
    "Criteria": "response.criteria",
    "PRESETS": "response.criteria",
    "get_criteria": "response.criteria",
    "load_criteria_file": "response.criteria",
    "Category": "response.categories",
    "ReasonCode": "response.categories",
    "ClinicalStatus": "response.clinical",
    "SeriesResult": "response.evaluation",
    "CompareResult": "response.evaluation",
    "TimepointResult": "response.results",
    "TrackRow": "response.results",
    "SubjectSummary": "response.results",
    "SubjectResult": "response.subject",
    "SubjectStatus": "response.subject",
    "percent_change": "response.change",
    # cohort inputs and statistics
    "read_manifest": "cohort.manifest",
    "Manifest": "cohort.manifest",
    "SubjectPlan": "cohort.manifest",
    "bids_manifest": "cohort.bids.build",
    "write_manifest": "cohort.bids.build",
    "read_pfs": "cohort.pfs_table",
    "PfsTable": "cohort.pfs_table",
    "cohort_statistics": "cohort.stats.cohort",
    "CohortSummary": "cohort.stats.types",
    "binomial_rate": "cohort.stats.rates",
    "compare_arms": "cohort.stats.rates",
    "kaplan_meier": "cohort.stats.survival",
    "logrank": "cohort.stats.survival",
    "cox": "cohort.stats.hazards",
    # the output tables
    "SCHEMAS": "results.schema",
    "build_frames": "results.frames",
    "read_results": "results.folder",
    "RunResults": "results.folder",
    # report
    "build_report": "report.page",
    "write_report": "report.page",
    "write_cohort_figures": "report.figures",
    # cohort runs
    "run_cohort": "batch.run",
    "RunConfig": "batch.config",
    "RunLimits": "batch.limits",
    "RunSummary": "batch.run",
    "evaluate_subject": "batch.evaluate",
    "rebuild_report": "batch.outputs",
    # errors
    "CnsvolError": "errors",
    "MaskError": "errors",
    "MaskTooLargeError": "errors",
    "CriteriaError": "errors",
    "GridError": "errors",
    "ClinicalError": "errors",
    "ManifestError": "errors",
    "BidsError": "errors",
    "ResultsError": "errors",
    "FolderLockedError": "errors",
}

__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
