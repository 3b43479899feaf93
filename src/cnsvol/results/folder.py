"""Reading a results folder back: :func:`read_results` gives the typed tables, the cohort summary,
the criteria and the provenance that ``cnsvol run`` wrote, the same values the run built."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ..cohort.stats.types import CohortSummary
from ..columns import frame
from ..errors import CriteriaError, ResultsError
from ..response.criteria import PRESETS, Criteria
from .csvtable import read_table
from .schema import SCHEMAS

__all__ = ["RunResults", "read_results"]


class RunResults:
    """A results folder as typed values.

    ``subjects``, ``timepoints``, ``tracks``, ``lesions``: DataFrames with the declared columns
    and dtypes (:data:`cnsvol.SCHEMAS`), each read on first use (an absent table other than
    ``subjects.csv`` is empty); ``cohort``: the content of ``cohort.json`` (``None`` when the
    folder has none); ``criteria``: the criteria of the run (from ``provenance.json``, else the
    preset ``cohort.json`` names; ``None`` when neither says); ``provenance``: the content of
    ``provenance.json`` (empty when absent); ``criteria_source``: where the criteria were found.
    """

    def __init__(self, out_dir: Path, cohort: CohortSummary | None, criteria: Criteria | None,
                 provenance: dict[str, Any], criteria_source: str = "") -> None:
        self.out_dir = Path(out_dir)
        self.cohort = cohort
        self.criteria = criteria
        self.provenance = provenance
        self.criteria_source = criteria_source

    def table(self, name: str, columns: Sequence[str] | None = None):  # -> pandas.DataFrame
        """The table ``name`` (``"subjects"``, ``"timepoints"``, ``"tracks"``, ``"lesions"``),
        read from its file now; ``columns``: only those (in table order)."""
        schema = SCHEMAS[name]
        path = self.out_dir / schema.filename
        if not path.is_file() and name != "subjects":
            cols = schema.columns if columns is None else [c for c in schema.columns
                                                            if c.name in columns]
            return frame([], cols)
        return read_table(path, schema, columns)

    @cached_property
    def subjects(self):  # -> pandas.DataFrame
        return self.table("subjects")

    @cached_property
    def timepoints(self):  # -> pandas.DataFrame
        return self.table("timepoints")

    @cached_property
    def tracks(self):  # -> pandas.DataFrame
        return self.table("tracks")

    @cached_property
    def lesions(self):  # -> pandas.DataFrame
        return self.table("lesions")

    def __repr__(self) -> str:
        n = self.cohort.n_subjects if self.cohort else "?"
        return (f"RunResults({str(self.out_dir)!r}, {n} subject(s), "
                f"criteria {self.criteria.name if self.criteria else None})")


def read_results(out_dir: str | Path) -> RunResults:
    """Read the results folder written by ``cnsvol run`` (or :func:`cnsvol.run_cohort`).

    ``subjects.csv`` must be there, and the folder must not be one that a run is changing or
    that a run stopped before its end (``provenance.json`` says ``complete: false``). The
    tables are read on first use; ``cohort.json``,
    ``provenance.json`` and the criteria at once. Raises :class:`~cnsvol.errors.ResultsError`
    naming the file when something cannot be read.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise ResultsError(f"{out}: no such folder. Fix: give a results folder written by "
                           "cnsvol run")
    if not (out / "subjects.csv").is_file():
        if (out / ".cnsvol").is_dir():
            raise ResultsError(f"{out}: no subjects.csv yet: a cnsvol run is writing this "
                               "folder or stopped before writing its tables. Fix: wait for the "
                               "run to end, or run the same cnsvol run command again")
        raise ResultsError(f"{out}: no subjects.csv here. Fix: give a results folder written "
                           "by cnsvol run")
    cohort_doc = read_json(out / "cohort.json")
    provenance = read_json(out / "provenance.json")
    provenance = provenance if isinstance(provenance, dict) else {}
    if provenance.get("complete") is False:
        raise ResultsError(
            f"{out}: a cnsvol run is changing this folder or was interrupted before its end "
            "(provenance.json says complete: false), so its tables, figures and report may "
            "describe different runs. Fix: wait for the run to end, or run the same cnsvol run "
            "command again: it reuses the stored subjects and writes the outputs whole")
    criteria, source = _criteria(out, provenance, cohort_doc)
    try:
        cohort = None if cohort_doc is None else CohortSummary.from_dict(cohort_doc)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ResultsError(f"{out / 'cohort.json'}: not a cohort summary ({type(exc).__name__}: "
                           f"{exc}). Fix: rerun cnsvol run to write it again") from None
    return RunResults(out, cohort, criteria, provenance, source)


def read_json(path: Path) -> Any:
    """The JSON content of ``path``, ``None`` when there is no such file."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultsError(
            f"{path}: not valid JSON ({exc}). Fix: rerun cnsvol run to rewrite the folder"
        ) from None


def _criteria(out: Path, provenance: dict[str, Any], cohort: Any) -> tuple[Criteria | None, str]:
    """The run's criteria (all fields, from provenance.json) and where they came from."""
    recorded = provenance.get("criteria")
    if isinstance(recorded, dict):
        try:
            return Criteria.from_dict(recorded, f"{out / 'provenance.json'} criteria"), \
                "provenance.json"
        except CriteriaError as exc:
            raise ResultsError(f"{exc}. Fix: rerun cnsvol run to record them again") from None
    name = cohort.get("criteria") if isinstance(cohort, dict) else None
    if isinstance(name, str) and name in PRESETS:
        return PRESETS[name], f"preset {name!r} named in cohort.json"
    return None, ""
