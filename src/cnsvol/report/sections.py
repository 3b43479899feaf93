"""The cohort sections of the report: header, cohort summary, response rates, arm comparison,
the volume-change figures and the PFS analyses. Each takes typed values (the results folder as
:class:`~cnsvol.results.RunResults`) and returns :class:`~.markup.Markup`."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .fmt import (
    NA, fmt_days, fmt_int, fmt_num, fmt_p, fmt_rate, id_list, iter_rows, median_ci,
    median_midpoint, responder_words,
)
from .markup import Markup, el, join, kv_table, sep, table
from .style import text

if TYPE_CHECKING:  # pragma: no cover
    from ..cohort.stats.types import CohortSummary, PfsAnalysis
    from ..response.criteria import Criteria

__all__ = [
    "arms_section",
    "figure_block",
    "header",
    "pfs_section",
    "rates_section",
    "response_figures_section",
    "summary_section",
]

CATEGORIES = ("CR", "PR", "SD", "PD", "NE")
_ENDPOINTS = ("responder_20pct", "objective_response")


def header(criteria: Criteria | None, provenance: dict[str, Any]) -> Markup:
    parts: list[Any] = [el("h1", "CNS lesion volumetric response report")]
    if criteria:
        parts.append(el("p", el("strong", "Response criteria: "),
                        criteria.title or criteria.name,
                        " (", el("code", criteria.name), "). ",
                        "Source: ", criteria.source or NA, "."))
    else:
        parts.append(el("p", el("strong", "Response criteria: "),
                        "not recorded in this folder (provenance.json missing)."))
    version = provenance.get("cnsvol_version") or provenance.get("version")
    parts.append(el("p", f"cnsvol {text(version) or 'version unknown'} (when the run took place: "
                    "provenance.json and run.log). Volumes are summed lesion volumes in mm\u00b3 "
                    "measured on each scan's own grid; % change = (follow-up \u2212 baseline) / "
                    f"baseline \u00d7 100. {NA} = not available or not applicable.",
                    class_="muted"))
    return el("header", parts)


def summary_section(subjects: Any, cohort: CohortSummary | None) -> Markup:
    n_rows, n_ok = 0, 0
    counts = dict.fromkeys(CATEGORIES, 0)
    for s in iter_rows(subjects):
        n_rows += 1
        if s.get("status", "ok") == "ok":
            n_ok += 1
            best_response = text(s.get("best_response"))
            if best_response in counts:
                counts[best_response] += 1
    n = cohort.n_subjects if cohort else n_rows
    n_failed = cohort.n_failed if cohort else n_rows - n_ok
    best = ", ".join(f"{c} {counts[c]}" for c in CATEGORIES) if n_ok else NA
    rows = [
        ("Subjects in the manifest", fmt_int(n)),
        ("Failed (not evaluated, see below)", fmt_int(n_failed)),
        ("Evaluated", fmt_int(n_ok)),
        ("Evaluable for the \u226520% reduction flag",
         fmt_int(cohort.n_evaluable if cohort else None)),
        ("Best overall response", best),
        ("Subjects without a PFS record", id_list(cohort.ids_without_pfs if cohort else [])),
        ("PFS records without masks", id_list(cohort.ids_without_masks if cohort else [])),
    ]
    table_info = cohort.pfs_table if cohort else None
    notes = table_info.get("notes") if isinstance(table_info, dict) else None
    if isinstance(notes, list) and notes:  # e.g. PFS rows set aside, with their ids and rows
        rows.append(("PFS table notes", sep([el("span", text(n)) for n in notes], "; ")))
    return el("section", el("h2", "Cohort"), kv_table(rows), id="cohort")


def rates_section(cohort: CohortSummary | None, criteria: Criteria | None) -> Markup:
    parts: list[Any] = [el("h2", "Response rates")]
    if cohort is None or not cohort.rates:
        parts.append(el("p", "Response rates not available (cohort.json missing or empty)."))
        return el("section", parts, id="rates")
    rates = cohort.rates
    pct = criteria.responder_reduction_pct if criteria else 20
    dec = criteria.response_decrease_pct if criteria else None
    names = {
        "responder_20pct": f"\u2265{fmt_num(pct, 0)}% volumetric reduction of the target sum "
                           "at any follow-up (exploratory responder)",
        "objective_response": "Objective response: best response CR or PR"
                              + (f" (PR: \u2265{fmt_num(dec, 0)}% reduction)" if dec else ""),
    }
    alpha = None
    rows = []
    for key in [*_ENDPOINTS, *sorted(set(rates) - set(_ENDPOINTS))]:
        block = rates.get(key)
        if block is None:
            continue
        groups: list[tuple[Any, Any]] = [("all subjects", block.overall)]
        groups += [(join("arm ", el("code", arm)), block.by_arm[arm])
                   for arm in sorted(block.by_arm)]
        for i, (label, rate) in enumerate(groups):
            frac, rate_pct, ci = fmt_rate(rate)
            if rate is not None and alpha is None:
                alpha = rate.alpha
            rows.append([names.get(key, key) if i == 0 else "", label, frac, rate_pct, ci])
    level = 95 if alpha is None else round(100 * (1 - alpha))
    parts.append(table(["Endpoint", "Group", "Responders / evaluable", "Rate",
                        f"{level}% CI (exact, Clopper-Pearson)"], rows))
    parts.append(el("p", "Rates use the evaluated subjects with the flag defined.", class_="muted"))
    return el("section", parts, id="rates")


def arms_section(cohort: CohortSummary | None) -> Markup:
    parts: list[Any] = [el("h2", "Arm comparison")]
    comp = cohort.arm_comparison if cohort else None
    if not comp:
        parts.append(el("p", "Not applicable: fewer than two treatment arms."))
        return el("section", parts, id="arms")
    tests = {"fisher_exact": "Fisher's exact test (two-sided)", "chi2": "chi-squared test"}
    for key in [*_ENDPOINTS, *sorted(set(comp) - set(_ENDPOINTS))]:
        test = comp.get(key)
        if test is None:
            continue
        name = {"responder_20pct": "\u226520% volumetric reduction",
                "objective_response": "Objective response (CR/PR)"}.get(key, key)
        line = [el("strong", name), ": ", tests.get(test.test, test.test or "test"),
                ", p = ", fmt_p(test.p_value)]
        if test.odds_ratio is not None:
            line += [", odds ratio ", fmt_num(test.odds_ratio, 2)]
        parts.append(el("p", line + ["."]))
        rows = [[el("code", arm), fmt_int(cells[0]), fmt_int(cells[1])]
                for arm, cells in sorted(test.table.items())]
        if rows:
            parts.append(table(["Arm", "Responders", "Non-responders"], rows, class_="narrow"))
    return el("section", parts, id="arms")


def figure_block(out: Path, name: str, caption: str) -> Markup:
    """A figure of ``out/figures`` embedded as a PNG data URI, linked to its SVG."""
    png = out / "figures" / f"{name}.png"
    if not png.is_file():
        return el("figure", el("p", f"{caption}: figure not available.", class_="missing"))
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    img = el("img", src=f"data:image/png;base64,{data}", alt=caption)
    links: list[Any] = []
    if (out / "figures" / f"{name}.svg").is_file():
        links = [" ", el("a", "(vector SVG)", href=f"figures/{quote(name)}.svg")]
    return el("figure", img, el("figcaption", caption, *links))


def response_figures_section(out: Path) -> Markup:
    parts = [
        el("h2", "Volume change"),
        figure_block(out, "waterfall", "Waterfall: best % change of the target volume per "
                     "subject (the most negative change vs baseline over the scans up to and "
                     "including the first PD), coloured by best response; a cross under the "
                     "axis marks a subject whose first PD was clinical (steroids, neurologic or "
                     "extra-CNS), a triangle new lesions, hatching a change inside the "
                     "measurement band"),
    ]
    if (out / "figures" / "waterfall_by_arm.png").is_file():
        parts.append(figure_block(out, "waterfall_by_arm", "Waterfall coloured by arm"))
    parts.append(figure_block(out, "spider", "Spider plot: % change of the target volume "
                              "over time per subject, coloured by best response; a cross at "
                              "each subject's first PD, hollow dots inside the measurement "
                              "band, a log scale above +100%"))
    return el("section", parts, id="figures")


CAVEAT = (
    "Comparing responders with non-responders from the start of treatment is biased in favour "
    "of responders (guarantee-time, or immortal-time, bias): a patient can only be classified "
    "as a responder if they stayed on study and free of progression long enough to have the "
    "scan that shows the response, so responders are guaranteed some progression-free time "
    "that non-responders are not, and early progressors can only ever be non-responders. The "
    "naive curves therefore overstate the benefit of responding even when response has no "
    "effect on outcome. The landmark analysis (Anderson, Cain and Gelber, J Clin Oncol 1983) "
    "removes this bias: it fixes a landmark day, excludes the patients who progressed or were "
    "censored before it, classifies the others by the response they had reached by the "
    "landmark, and counts progression-free time from the landmark. Read the landmark analysis; "
    "the naive one is shown only for comparison with publications that used it. Responses "
    "first seen after the landmark count as non-response there."
)


def pfs_section(out: Path, cohort: CohortSummary | None, criteria: Criteria | None) -> Markup:
    parts: list[Any] = [el("h2", "Progression-free survival by response")]
    pfs = cohort.pfs if cohort else None
    if pfs is None:
        parts.append(el("p", "No PFS table was given for this run: no survival analysis."))
        return el("section", parts, id="pfs")
    what = responder_words(pfs.responder_col,
                           criteria.responder_reduction_pct if criteria else 20)
    parts.append(el("p", f"Responder definition: {what}. {fmt_int(pfs.n)} subjects with "
                    f"PFS and a defined response flag, {fmt_int(pfs.events)} events "
                    "(progression or death)."))
    parts.append(el("div", el("strong", "Caveat: guarantee-time bias. "), CAVEAT, class_="caveat"))
    landmark, naive = pfs.landmark, pfs.naive
    if landmark:
        lm = fmt_num(landmark.landmark_days, 0)
        src = text(landmark.landmark_source)
        parts.append(el("h3", f"Landmark analysis (day {lm}) \u2014 the one to read"))
        parts.append(el("p", f"Landmark day {lm}" + (f" ({src})" if src else "") + "; "
                        f"{fmt_int(landmark.n_excluded)} subject(s) excluded because they "
                        "progressed or were censored before it."))
        parts.append(figure_block(out, "km_landmark", "Kaplan-Meier, PFS from the landmark"))
    parts.append(el("h3", "Naive analysis from baseline (guarantee-time biased)"))
    parts.append(figure_block(out, "km_naive", "Kaplan-Meier, PFS from baseline (biased)"))
    rows: list[list[Any]] = []
    midpoints: list[str] = []
    for label, analysis in (("landmark", landmark), ("naive (biased)", naive)):
        if analysis is not None:
            rows += _pfs_rows(label, analysis, midpoints)
    parts.append(el("h3", "Summary"))
    parts.append(table(["Analysis", "Group", "n", "Events", "Median PFS, days (95% CI)",
                        "Log-rank p", "Cox HR responder vs non-responder (95% CI)"], rows))
    parts.append(el("p", MEDIAN_RULE, *(" " + m for m in midpoints), class_="muted"))
    parts.append(el("p", COX_METHOD, class_="muted"))
    return el("section", parts, id="pfs")


MEDIAN_RULE = (
    "Median PFS: the Kaplan-Meier median in days as cohort.json has it (not rounded): the "
    "first day t with S(t) \u2264 0.5; when S(t) is exactly 0.5 from t until the next "
    "progression, the midpoint of t and that day (the R survival and SAS convention; without "
    "censoring it is the sample median), marked \u2020. 95% CI: Brookmeyer-Crowley with the "
    "log-log transform; NR = upper limit not reached."
)

COX_METHOD = (
    "Hazard ratio: Cox proportional-hazards model with one covariate (responder vs "
    "non-responder), fitted with Efron's handling of tied event times (the default of R's "
    "survival::coxph and of lifelines; PFS seen at scheduled scans gives many patients the "
    "same day), Wald 95% CI and p. \u2014 = not estimable (e.g. no progression, or every "
    "progression in one group)."
)


def _pfs_rows(label: str, analysis: PfsAnalysis, midpoints: list[str]) -> list[list[Any]]:
    """The summary rows of one analysis; a note for each median given by the midpoint rule is
    appended to ``midpoints``."""
    lr, cox = analysis.logrank, analysis.cox_responder
    hr = NA if cox is None else (
        f"{fmt_num(cox.hr, 2)} ({fmt_num(cox.ci_low, 2)}\u2013"
        f"{fmt_num(cox.ci_high, 2)}), p = {fmt_p(cox.p_value)}"
    )
    rows = []
    for i, key in enumerate(("responder", "non_responder")):
        km = analysis.groups.get(key)
        if km is None or km.median_days is None:
            median = "not reached"
        else:
            median = value = fmt_days(km.median_days)
            mid = median_midpoint(km)
            if mid is not None:
                median += "\u2020"
                t, u = fmt_days(mid[0]), fmt_days(mid[1])
                midpoints.append(f"\u2020 {label}, {key.replace('_', '-')}s: S(t) = 0.5 from "
                                 f"day {t} to day {u}, median ({t} + {u}) / 2 = {value}.")
            median += median_ci(km)
        rows.append([label if i == 0 else "", key.replace("_", "-"),
                     fmt_int(km.n if km else None), fmt_int(km.events if km else None), median,
                     fmt_p(lr.p_value if lr else None) if i == 0 else "", hr if i == 0 else ""])
    return rows
