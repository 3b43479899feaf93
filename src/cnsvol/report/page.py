"""The HTML report of a results folder: one self-contained file (figures embedded as PNG data
URIs, inline CSS, no script, no external resource; a Content-Security-Policy forbids any fetch)
that a clinician can read offline. Per-subject QC pictures stay beside it in ``figures/qc/`` and
are linked relatively. The page skeleton and its style sheet are the package's
``templates/report.html`` and ``templates/report.css``."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template

from ..atomic import atomic_writer
from ..results.folder import RunResults, read_results
from .markup import esc
from .sections import (
    arms_section, header, pfs_section, rates_section, response_figures_section, summary_section,
)
from .sections_subjects import (
    criteria_section, failed_section, provenance_section, reconciliation_section,
    subjects_section,
)
from .sections_registration import registration_section

__all__ = ["build_report", "iter_report", "render_report", "write_report"]

TITLE = "CNS lesion volumetric response report"


@cache
def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text("utf-8")


def iter_report(results: RunResults, folder: Path | None = None) -> Iterator[str]:
    """The report of ``results`` as an HTML document, in pieces (see :func:`render_report`);
    ``folder``: where the report will be read, if not in the results folder (its links to QC
    pictures are checked there)."""
    out = Path(results.out_dir)
    subjects = results.subjects
    cohort, criteria, provenance = results.cohort, results.criteria, results.provenance
    title = TITLE + (f" \u2014 {criteria.title or criteria.name}" if criteria else "")
    head, tail = _template("report.html").split("$body")
    yield Template(head).substitute(title=esc(title), css=_template("report.css"))
    yield header(criteria, provenance)
    yield summary_section(subjects, cohort)
    yield rates_section(cohort, criteria)
    yield arms_section(cohort)
    yield response_figures_section(out)
    yield pfs_section(out, cohort, criteria)
    yield reconciliation_section(cohort)
    yield from subjects_section(Path(folder) if folder is not None else out, subjects)
    yield failed_section(subjects, cohort)
    yield registration_section(results)
    yield criteria_section(criteria, results.criteria_source)
    yield from provenance_section(provenance)
    yield tail


def render_report(results: RunResults) -> str:
    """The report of ``results`` as an HTML document.

    Works with what is there: without a PFS analysis, with one arm, with no successful
    subject, and without figures (each missing figure says so).
    """
    return "".join(iter_report(results))


def write_report(results: RunResults, folder: Path | None = None) -> Path:
    """Write ``report.html`` into the results folder, piece by piece; returns its path.
    ``folder``: as for :func:`iter_report`."""
    path = Path(results.out_dir) / "report.html"
    with atomic_writer(path) as fh:
        for piece in iter_report(results, folder):
            fh.write(piece)
    return path


def build_report(out_dir: str | Path) -> Path:
    """Read the results folder ``out_dir`` and write its ``report.html``."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(
            f"{out}: no such folder. Fix: give a results folder written by cnsvol run")
    return write_report(read_results(out))
