"""Figures and the HTML report, from typed results (never from text).

* :mod:`.waterfall_plot`, :mod:`.spider_plot`, :mod:`.km`: the cohort figures; :mod:`.figures`: them all
  for a results folder, as tasks; :mod:`.qc`: per-subject QC pictures (:mod:`.orient`: the
  radiological display of a slice);
* :mod:`.page`: the report (:mod:`.sections`, :mod:`.sections_subjects`; :mod:`.markup`:
  escaped HTML; :mod:`.fmt`: how values are written); ``templates/``: the page and its CSS;
* :mod:`.style`: colours, the fixed style and byte-stable files; :mod:`.names`: safe names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .figures import cohort_figure_tasks, write_cohort_figures  # noqa: F401
    from .km import km_plot  # noqa: F401
    from .names import safe_filename  # noqa: F401
    from .orient import display_slice  # noqa: F401
    from .page import build_report, render_report, write_report  # noqa: F401
    from .qc import qc_picture  # noqa: F401
    from .spider_plot import spider  # noqa: F401
    from .style import CATEGORY_COLOURS, track_colour  # noqa: F401
    from .waterfall_plot import waterfall  # noqa: F401

_EXPORTS = {
    "CATEGORY_COLOURS": "style",
    "build_report": "page",
    "cohort_figure_tasks": "figures",
    "display_slice": "orient",
    "km_plot": "km",
    "qc_picture": "qc",
    "render_report": "page",
    "safe_filename": "names",
    "spider": "spider_plot",
    "track_colour": "style",
    "waterfall": "waterfall_plot",
    "write_cohort_figures": "figures",
    "write_report": "page",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
