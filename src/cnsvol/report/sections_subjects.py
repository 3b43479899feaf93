"""The per-subject and reference sections of the report: the subjects table with links to QC
pictures, failed subjects, the criteria definition and the run's provenance."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .fmt import NA, flag, fmt_int, fmt_pct_change, iter_rows, yes_no
from .markup import Markup, el, join, kv_table, table
from .names import safe_filename
from .style import number, text

if TYPE_CHECKING:  # pragma: no cover
    from ..cohort.stats.types import CohortSummary
    from ..response.criteria import Criteria

__all__ = ["criteria_section", "failed_section", "provenance_section", "reconciliation_section",
           "subjects_section"]


def subjects_section(out: Path, subjects: Any) -> Iterator[Markup]:
    """The subjects table, in pieces: one per subject row (a cohort of tens of thousands of
    subjects is written out row by row, never held as one text)."""
    if not len(subjects):
        yield el("section", el("h2", "Subjects"), el("p", "No subject in this run."),
                 id="subjects")
        return
    head = el("thead", el("tr", [el("th", h, scope="col") for h in (
        "Subject", "Arm", "Best response", "Best % change", "\u226520% reduction",
        "Progression, day", "PFS", "QC")]))
    yield join(Markup('<section id="subjects">'), el("h2", "Subjects"),
               Markup('<table class="subjects">'), head, Markup("<tbody>"))
    for s in iter_rows(subjects):
        yield el("tr", [el("td", cell) for cell in _subject_cells(out, s)])
    yield join(Markup("</tbody></table>"), el(
        "p", "Best % change: most negative change of the target sum vs baseline over the scans up "
        "to and including the first progression; \u201cwithin error\u201d when it is smaller than the measurement band: the "
        "half-voxel band of its two scans (exposed voxel faces \u00d7 half a voxel: the volume "
        "a boundary shifting by half a voxel moves; cnsvol's own model of segmentation "
        "uncertainty, not a published test-retest figure), hatched on the waterfall. "
        "\u226520% reduction: on a scan before the first progression. "
        "Progression: the first PD, with what made it (target sum, a new lesion at or above the "
        "criteria's floor or a smaller one confirmed by growth, unequivocal growth of a "
        "non-target lesion, a clinical modifier); every later scan is PD post-progression in "
        "timepoints.csv. Equivocal new lesions (below the floor, never confirmed) are listed "
        "but are not progression. QC pictures open from the figures/qc folder beside this file.",
        class_="muted"), Markup("</section>"))


def _subject_cells(out: Path, s: dict[str, Any]) -> list[Any]:
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
    progression: Any = fmt_int(s.get("progression_days"))
    why = _short_reason(text(s.get("progression_reason")))
    if why and number(s.get("progression_days")) is not None:
        progression = join(progression, el("br"), el("span", why, class_="muted"))
    equivocal = number(s.get("equivocal_new_lesions")) or 0
    if equivocal and not failed:
        best = join(best, el("br"), el("span", f"{equivocal:g} equivocal new lesion(s)",
                                       class_="muted"))
    change: Any = fmt_pct_change(s.get("best_percent_change"))
    if flag(s.get("best_change_within_measurement_error")):
        change = join(change, el("br"), el("span", "within error", class_="muted",
                                           title="inside the half-voxel measurement band"))
    return [
        el("code", sid), text(s.get("arm")) or NA, best, change,
        yes_no(s.get("responder_20pct")), progression, pfs, qc,
    ]


def _short_reason(reason: str) -> str:
    """A PD reason for the table: the findings without their volumes (kept in subjects.csv),
    keeping a measurement-error warning."""
    out = re.sub(r" \((?:\d[^()]*->[^()]*mm3|largest [^()]*)\)", "", reason)
    return re.sub(r" \(within measurement error, [^()]*\)", " (within measurement error)", out)


_KIND_TITLES = {
    "event_before_response_scan": "PFS event before the response scan",
    "pfs_event_before_imaging_progression": "PFS event before imaging progression",
    "imaging_progression_long_before_pfs_event": "imaging progression long before the PFS event",
    "censored_after_imaging_progression": "censored after imaging progression",
    "imaging_progression_after_censoring": "imaging progression after censoring",
    "clinical_progression_no_imaging_pd": "clinical progression (no imaging PD)",
}


def reconciliation_section(cohort: CohortSummary | None) -> Markup:
    """Imaging vs the PFS record: every discrepancy, and the notes on PFS events without an
    imaging progression."""
    parts: list[Any] = [el("h2", "Imaging reconciled with the PFS record")]
    entries = None if cohort is None else cohort.pfs_imaging_discrepancies
    if entries is None:
        parts.append(el("p", "No PFS record was given, or this folder was written before the "
                         "reconciliation existed."))
        return el("section", parts, id="reconciliation")
    tol = cohort.pfs_tolerance_days if cohort else None
    real = [e for e in entries if e.get("severity") != "note"]
    notes = [e for e in entries if e.get("severity") == "note"]
    parts.append(el("p", (
        f"The first imaging progression cnsvol found, compared with each subject's PFS time "
        f"and event; gaps up to {tol:g} days are not discrepancies (--pfs-tolerance-days). "
        if tol is not None else "") + f"{len(real)} discrepanc{'y' if len(real) == 1 else 'ies'}"
        f", {len(notes)} PFS event(s) without an imaging progression (clinical progression or "
        "death: legitimate). Check each discrepancy against the source records before "
        "trusting the PFS analysis; the list is also in pfs_reconciliation.csv."))
    if real:
        parts.append(table(["Subject", "Kind", "Imaging PD, day", "PFS", "What"], [
            [el("code", text(e.get("subject_id"))),
             _KIND_TITLES.get(str(e.get("kind")), text(e.get("kind"))),
             fmt_int(e.get("imaging_progression_days")),
             f"{fmt_int(e.get('pfs_days'))} d, "
             + ("event" if e.get("pfs_event") else "censored"),
             el("span", text(e.get("message")), class_="error")]
            for e in real]))
    if notes:
        listed = ", ".join(f"{text(e.get('subject_id'))} (day {fmt_int(e.get('pfs_days'))})"
                           for e in notes)
        parts.append(el("p", "PFS events that are clinical progression (no imaging PD), or a "
                         f"progression after the last scan evaluated: {listed}.", class_="muted"))
    return el("section", parts, id="reconciliation")


def failed_section(subjects: Any, cohort: CohortSummary | None) -> Markup:
    parts: list[Any] = [el("h2", "Failed subjects")]
    failed = [(text(s.get("subject_id")), text(s.get("error")))
              for s in iter_rows(subjects) if s.get("status", "ok") != "ok"]
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
    "measurable_min_perpendicular_mm": "measurable lesion: perpendicular diameter \u2265 (mm)",
    "measurable_min_slices": "measurable lesion: on at least this many axial slices",
    "nontarget_progression_growth_mm": "non-target progression: a lesion grows by at least (mm)",
    "nontarget_progression_small_below_mm": "... or, for a non-target smaller than this (mm),",
    "nontarget_progression_small_reach_mm": "... reaches at least this diameter (mm)",
    "radiotherapy_confirmation_days": "PD within this many days after radiotherapy needs the "
                                      "next scan to confirm it",
    "response_compartments": "compartments measured (with a compartment convention)",
}


def criteria_section(criteria: Criteria | None, source: str) -> Markup:
    parts: list[Any] = [el("h2", "Response criteria definition")]
    if not criteria:
        parts.append(el("p", "Not available: provenance.json is missing or has no criteria."))
        return el("section", parts, id="criteria")
    rows = []
    for key, value in criteria.to_dict().items():
        shown = "none" if value is None else ("yes" if value is True else "no" if value is False
                                               else ", ".join(value) if isinstance(value, tuple)
                                               else value)
        rows.append([el("code", key), _CRITERIA_HELP.get(key, ""), shown])
    parts.append(table(["Field", "Meaning", "Value"], rows))
    parts.append(el("p", f"Thresholds are inclusive. Taken from {source}.", class_="muted"))
    return el("section", parts, id="criteria")


def provenance_section(prov: dict[str, Any]) -> Iterator[Markup]:
    """The run's provenance, in pieces (its input files one row each: a cohort has tens of
    thousands)."""
    if not prov:
        yield el("section", el("h2", "Provenance"), el("p", "provenance.json not found."),
                 id="provenance")
        return
    rows: list[tuple[Any, Any]] = []
    # what describes the results, not when or where this run happened (times, the folder,
    # what was reused): the same results give the same report, byte for byte
    shown = {"criteria", "subject_errors", "subject_seconds", "inputs", "parameters",
             *RUN_EVENTS}
    labels = {"cnsvol_version": "cnsvol version", "python": "Python", "platform": "platform",
              "command": "command line", "libraries": "libraries",
              "measure_options": "measurement options", "landmark_days": "landmark (days)"}
    order = [k for k in labels if k in prov] + sorted(k for k in prov if k not in labels and k not in shown)
    for key in order:
        value = prov[key]
        if key == "command" and isinstance(value, list):
            value = shlex.join(_without_folder([str(v) for v in value]))
        elif isinstance(value, dict):
            value = "; ".join(f"{k} {_compact(v)}" for k, v in value.items()) or "none"
        elif isinstance(value, list):
            value = _compact(value)
        rows.append((labels.get(key, key), el("code", text(value) if value is not None else "none")))
    yield join(Markup('<section id="provenance">'), el("h2", "Provenance"), kv_table(rows))
    inputs = prov.get("inputs")
    if isinstance(inputs, dict) and inputs:
        yield join(Markup("<details>"),
                   el("summary", f"Input files and SHA-256 ({len(inputs)})"),
                   Markup('<table class="mono">'),
                   el("thead", el("tr", el("th", "File", scope="col"),
                                  el("th", "SHA-256", scope="col"))),
                   Markup("<tbody>"))
        for path, digest in inputs.items():
            yield el("tr", el("td", el("code", path)), el("td", el("code", digest or "unreadable")))
        yield Markup("</tbody></table></details>")
    params = prov.get("parameters")
    if isinstance(params, dict) and params:
        yield el("details", el("summary", f"Parameters ({len(params)})"),
                 table(["Parameter", "Value"], [[el("code", k), el("code", _compact(v))]
                                                for k, v in params.items() if k != "out_dir"]))
    yield el("p", "When the run started and finished, the folder it wrote and which subjects "
             "it took from an earlier run are in provenance.json and run.log, not here: the "
             "same results give the same report.", class_="muted")
    yield Markup("</section>")


RUN_EVENTS = ("started_at", "finished_at", "subjects_from_earlier_run", "complete")
"""provenance.json keys about the run as an event, left out of the report."""


def _without_folder(command: list[str]) -> list[str]:
    """The command line with the results folder (``--out``) shown as ``DIR``: the report is
    in that folder, and names no path that differs between runs giving the same results."""
    out = []
    skip = False
    for arg in command:
        if skip:
            out.append("DIR")
            skip = False
        elif arg == "--out":
            out.append(arg)
            skip = True
        elif arg.startswith("--out="):
            out.append("--out=DIR")
        else:
            out.append(arg)
    return out


_COMPACT_ITEMS = 50  # a long list is shown by its first items and its length


def _compact(value: Any, limit: int = 400) -> str:
    if isinstance(value, list) and len(value) > _COMPACT_ITEMS:
        head = json.dumps(value[:_COMPACT_ITEMS], ensure_ascii=False, default=str)
        return _compact(head[:-1] + f", \u2026 ({len(value)} in all)]", limit)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
