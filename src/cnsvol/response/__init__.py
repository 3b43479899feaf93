"""Response assessment of one subject: criteria as data, the rules, and the results.

* :mod:`.criteria`: :class:`Criteria`, the presets (``presets/*.toml``) and criteria files;
* :mod:`.evaluation`: :func:`evaluate` a subject's measured series (tracking, categories,
  tracks), giving a :class:`SeriesResult` (:class:`CompareResult` for two timepoints);
* :mod:`.series`, :mod:`.rules`, :mod:`.summary`: targets and sums, a timepoint's category,
  confirmation and the best overall response;
* :mod:`.results`: :class:`TimepointResult`, :class:`TrackRow`, :class:`SubjectSummary` and
  their columns; :mod:`.subject`: :class:`SubjectResult`, one subject's whole result;
* :mod:`.categories`, :mod:`.clinical`: the vocabularies (:class:`Category`,
  :class:`ReasonCode`, :class:`ClinicalStatus`); :mod:`.change`: percent change and
  inclusive thresholds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .categories import Category, ReasonCode  # noqa: F401
    from .change import percent_change, reached_decrease, reached_increase  # noqa: F401
    from .clinical import ClinicalStatus, NeuroStatus  # noqa: F401
    from .criteria import PRESETS, Criteria, get_criteria, load_criteria_file  # noqa: F401
    from .evaluation import CompareResult, SeriesResult, evaluate  # noqa: F401
    from .results import SubjectSummary, TimepointResult, TrackRow  # noqa: F401
    from .subject import SubjectResult, SubjectStatus  # noqa: F401

_EXPORTS = {
    "Category": "categories",
    "ClinicalStatus": "clinical",
    "CompareResult": "evaluation",
    "Criteria": "criteria",
    "NeuroStatus": "clinical",
    "PRESETS": "criteria",
    "ReasonCode": "categories",
    "SeriesResult": "evaluation",
    "SubjectResult": "subject",
    "SubjectStatus": "subject",
    "SubjectSummary": "results",
    "TimepointResult": "results",
    "TrackRow": "results",
    "evaluate": "evaluation",
    "get_criteria": "criteria",
    "load_criteria_file": "criteria",
    "percent_change": "change",
    "reached_decrease": "change",
    "reached_increase": "change",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
