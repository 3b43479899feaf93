"""The per-subject and reference sections of the report: the subjects table with links to QC
pictures, failed subjects, the criteria definition and the run's provenance."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .fmt import NA, fmt_int, fmt_pct_change, flag, yes_no
from .markup import Markup, el, kv_table, table
from .names import safe_filename
from .style import number, text

if TYPE_CHECKING:  # pragma: no cover
    from ..cohort.stats.types import CohortSummary
    from ..response.criteria import Criteria

__all__ = ["criteria_section", "failed_section", "provenance_section", "subjects_section"]


def subjects_section(out: Path, subjects: list[dict[str, Any]]) -> Markup:
    parts: list[Any] = [el("h2", "Subjects")]
    if not subjects:
        parts.append(el("p", "No subject in this run."))
        return el("section", parts, id="subjects")
    rows = []
    for s in subjects:
        sid = text(s.get("subject_id"))
        failed = s.get("status", "ok") != "ok"
        qc_name = safe_filename(sid) + ".png"
        qc: Any = NA
        if (out / "figures" / "qc" / qc_name).is_file():
            qc = el("a", "QC picture", href=f"figures/qc/{quote(qc_name)}")
        if not flag(s.get("has_pfs")) and number(s.get("pfs_days")) is None:
            pfs: Any = "no PFS record" if "has_pfs" in s else NA
        else:
            event = flag(s.get("pfs_event"))
            pfs = f"{fmt_int(s.get('pfs_days'))} d, " + (
                "progressed/died" if event else "censored" if event is False else "event unknown"
            )
        best = el("span", "failed", class_="failed") if failed else text(s.get("best_response")) or NA
        rows.append([
            el("code", sid), text(s.get("arm")) or NA, best,
            fmt_pct_change(s.get("best_percent_change")), yes_no(s.get("responder_20pct")),
            fmt_int(s.get("progression_days")), pfs, qc,
        ])
    parts.append(table(["Subject", "Arm", "Best response", "Best % change",
                        "\u226520% reduction", "Progression, day", "PFS", "QC"], rows,
                       class_="subjects"))
    parts.append(el("p", "Best % change: most negative change of the target sum vs baseline up "
                    "to the first progression. QC pictures open from the figures/qc folder "
                    "beside this file.", class_="muted"))
    return el("section", parts, id="subjects")


def failed_section(subjects: list[dict[str, Any]], cohort: CohortSummary | None) -> Markup:
    parts: list[Any] = [el("h2", "Failed subjects")]
    failed = [(text(s.get("subject_id")), text(s.get("error")))
              for s in subjects if s.get("status", "ok") != "ok"]
    seen = {sid for sid, _ in failed}
    for sid in (cohort.failed_ids if cohort else []):
        if str(sid) not in seen:
            failed.append((str(sid), ""))
    if not failed:
        parts.append(el("p", "No subject failed."))
    else:
        parts.append(el("p", "These subjects were not evaluated; they count in the cohort size "
                         "but not in the rates. Each message names the file, the problem and "
                         "the fix."))
        parts.append(table(["Subject", "Error"], [
            [el("code", sid), el("span", msg or "error message not recorded", class_="error")]
            for sid, msg in failed
        ]))
    return el("section", parts, id="failed")


_CRITERIA_HELP = {
    "name": "preset or file name",
    "title": "title",
    "source": "published source",
    "response_decrease_pct": "PR: decrease of the target sum vs baseline of at least (%)",
    "progression_increase_pct": "PD: increase of the target sum vs the reference of at least (%)",
    "progression_reference": "reference for progression (nadir = smallest sum so far)",
    "progression_min_lesion_growth_mm": "PD also needs one lesion to grow by at least (mm)",
    "measurable_min_diameter_mm": "measurable (target) lesion: longest axial diameter \u2265 (mm)",
    "max_target_lesions": "maximum number of target lesions (largest first)",
    "target_lesions": "lesions summed: measurable ones or all",
    "new_lesion_is_progression": "an unequivocal new lesion is progression",
    "new_lesion_min_diameter_mm": "new lesions shorter than this are equivocal (mm)",
    "confirmation_min_days": "PR/CR must be confirmed by a scan at least this many days later",
    "cr_requires_off_steroids": "CR requires being off corticosteroids",
    "steroid_increase_blocks_response": "a steroid increase prevents a response",
    "steroid_increase_is_progression": "a steroid increase is progression",
    "neuro_worse_blocks_response": "neurologic worsening prevents a response",
    "neuro_worse_is_progression": "neurologic worsening is progression",
    "extracns_blocks_response": "extra-CNS progression prevents a response",
    "extracns_is_progression": "extra-CNS progression is progression",
    "responder_reduction_pct": "exploratory responder: reduction vs baseline of at least (%)",
}


def criteria_section(criteria: Criteria | None, source: str) -> Markup:
    parts: list[Any] = [el("h2", "Response criteria definition")]
    if not criteria:
        parts.append(el("p", "Not available: provenance.json is missing or has no criteria."))
        return el("section", parts, id="criteria")
    rows = []
    for key, value in criteria.to_dict().items():
        shown = "none" if value is None else ("yes" if value is True else "no" if value is False
                                               else value)
        rows.append([el("code", key), _CRITERIA_HELP.get(key, ""), shown])
    parts.append(table(["Field", "Meaning", "Value"], rows))
    parts.append(el("p", f"Thresholds are inclusive. Taken from {source}.", class_="muted"))
    return el("section", parts, id="criteria")


def provenance_section(prov: dict[str, Any]) -> Markup:
    parts: list[Any] = [el("h2", "Provenance")]
    if not prov:
        parts.append(el("p", "provenance.json not found."))
        return el("section", parts, id="provenance")
    rows: list[tuple[Any, Any]] = []
    shown = {"criteria", "subject_errors", "subject_seconds", "inputs", "parameters"}
    labels = {"cnsvol_version": "cnsvol version", "started_at": "started",
              "finished_at": "finished", "python": "Python", "platform": "platform",
              "command": "command line", "libraries": "libraries",
              "measure_options": "measurement options", "landmark_days": "landmark (days)"}
    order = [k for k in labels if k in prov] + sorted(k for k in prov if k not in labels and k not in shown)
    for key in order:
        value = prov[key]
        if key == "command" and isinstance(value, list):
            value = shlex.join(str(v) for v in value)
        elif isinstance(value, dict):
            value = "; ".join(f"{k} {_compact(v)}" for k, v in value.items()) or "none"
        elif isinstance(value, list):
            value = _compact(value)
        rows.append((labels.get(key, key), el("code", text(value) if value is not None else "none")))
    parts.append(kv_table(rows))
    inputs = prov.get("inputs")
    if isinstance(inputs, dict) and inputs:
        parts.append(el("details", el("summary", f"Input files and SHA-256 ({len(inputs)})"),
                        table(["File", "SHA-256"], [[el("code", p), el("code", h or "unreadable")]
                                                     for p, h in inputs.items()], class_="mono")))
    params = prov.get("parameters")
    if isinstance(params, dict) and params:
        parts.append(el("details", el("summary", f"Parameters ({len(params)})"),
                        table(["Parameter", "Value"], [[el("code", k), el("code", _compact(v))]
                                                        for k, v in params.items()])))
    return el("section", parts, id="provenance")


def _compact(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
