"""The cohort figures and the HTML report of a results folder, built from the folder alone.

:func:`write_cohort_figures` reads ``subjects.csv``, ``timepoints.csv``, ``cohort.json`` and the
criteria recorded in ``provenance.json`` and draws ``figures/waterfall.*``, ``figures/spider.*``
and, when the run had a PFS table, ``figures/km_naive.*`` and ``figures/km_landmark.*``.
:func:`build_report` writes ``report.html``: one self-contained file (figures embedded as PNG
data URIs, inline CSS, no script, no external resource; a Content-Security-Policy forbids any
fetch) that a clinician can read offline. Per-subject QC pictures stay beside it in
``figures/qc/`` and are linked relatively.

Every value read from the folder (ids, arms, messages, paths, labels) reaches the HTML through
:func:`el` / :func:`esc`, which escape it (``html.escape(..., quote=True)``); only markup built
by these helpers (:class:`Markup`) is inserted as is.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shlex
from pathlib import Path
from typing import Any

from ..cohort.tabular import cell_number as _num
from ..cohort.tabular import cell_text as _text
from urllib.parse import quote

from ..cohort.tabular import atomic_write_text

__all__ = [
    "Markup",
    "build_report",
    "el",
    "esc",
    "read_output_table",
    "safe_filename",
    "write_cohort_figures",
]

_CATEGORIES = ("CR", "PR", "SD", "PD", "NE")
_ENDPOINTS = ("responder_20pct", "objective_response")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# --------------------------------------------------------------------------------------------
# file names


_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                     *(f"LPT{i}" for i in range(10))}
_MAX_STEM = 80


def safe_filename(subject_id: str) -> str:
    """A file name stem for ``subject_id``: deterministic, portable and collision-free.

    Characters outside ``[A-Za-z0-9._-]`` become ``_``. The id is kept as is only when it is
    already safe *and* unambiguous: no lower-case letter (trial ids such as ``S01`` or
    ``EGF-0012`` stay readable, and two ids differing only in case, ``S01`` and ``s01``, cannot
    share a file on a case-insensitive file system as on macOS or Windows), no ``--``,
    not starting with ``.`` or ``-``, not ending with ``.``, not a Windows device name, and at
    most 80 characters. Otherwise ``--`` and the first 12 hex digits of the SHA-256 of the id
    (UTF-8) are appended to the (truncated) cleaned id. A kept name never contains ``--`` and a
    hashed one always does, so they cannot collide; two hashed names collide only if the hashes
    do.

    >>> safe_filename("S01")
    'S01'
    >>> safe_filename("S 01")
    'S_01--370a1bf4144c'
    """
    text = str(subject_id)
    stem = _SAFE_CHARS.sub("_", text)
    keep = (
        stem == text
        and stem != ""
        and not any("a" <= c <= "z" for c in stem)
        and "--" not in stem
        and not stem.startswith((".", "-"))
        and not stem.endswith(".")
        and stem.split(".")[0].upper() not in _WINDOWS_RESERVED
        and len(stem) <= _MAX_STEM
    )
    if keep:
        return stem
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem = stem[:_MAX_STEM]
    if stem.startswith((".", "-")) or not stem:
        stem = "_" + stem
    return f"{stem}--{digest}"


# --------------------------------------------------------------------------------------------
# reading the folder


def read_output_table(path: str | Path):  # -> pandas.DataFrame
    """A CSV written by ``cnsvol run``, every cell as text (``""`` = empty), with the
    spreadsheet-formula guard undone (a leading ``'`` before ``= + - @`` / tab / CR is removed,
    so ids read back as they were in the manifest)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    for col in frame.columns:
        frame[col] = [_unguard(v) for v in frame[col]]
    return frame


def _unguard(value: Any) -> str:
    text = "" if value is None else str(value)
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(_FORMULA_START):
        return text[1:]
    return text


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path}: not valid JSON ({exc}). Fix: rerun cnsvol run to rewrite the folder"
        ) from None


def _load_criteria_dict(provenance: Any, cohort: Any) -> tuple[dict[str, Any] | None, str]:
    """The criteria of the run (all fields) and where they came from."""
    if isinstance(provenance, dict) and isinstance(provenance.get("criteria"), dict):
        return provenance["criteria"], "provenance.json"
    from ..response.criteria import PRESETS

    name = cohort.get("criteria") if isinstance(cohort, dict) else None
    if isinstance(name, str) and name in PRESETS:
        return PRESETS[name].to_dict(), f"preset {name!r} named in cohort.json"
    return None, ""


def _criteria_object(out: Path, provenance: Any, cohort: Any):  # -> Criteria
    from dataclasses import fields

    from ..response.criteria import Criteria

    data, _ = _load_criteria_dict(provenance, cohort)
    if data is None:
        raise ValueError(
            f"{out}: no criteria found (provenance.json has no 'criteria' and cohort.json names "
            "no preset). Fix: rerun cnsvol run, which records them"
        )
    known = {f.name for f in fields(Criteria)}
    return Criteria(**{k: v for k, v in data.items() if k in known})


def _subject_frame(out: Path):  # -> pandas.DataFrame
    path = out / "subjects.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{out}: no subjects.csv here. Fix: give a results folder written by cnsvol run"
        )
    return read_output_table(path)


# --------------------------------------------------------------------------------------------
# figures


def write_cohort_figures(out_dir: str | Path) -> dict[str, list[Path]]:
    """Draw the cohort figures of a results folder into ``<out_dir>/figures``.

    Returns ``{"waterfall": [png, svg], "spider": [...], "km_naive": [...],
    "km_landmark": [...]}``; the KM figures only when ``cohort.json`` has a ``pfs`` section;
    ``waterfall_by_arm`` as well when the subjects belong to two arms or more.
    """
    return {name: draw() for name, draw in cohort_figure_tasks(out_dir).items()}


def cohort_figure_tasks(out_dir: str | Path) -> dict[str, Any]:
    """The cohort figures of a results folder as independent, picklable calls (each returns
    the paths it wrote), so that a cohort run can draw them on its workers in parallel."""
    from functools import partial

    import pandas as pd

    from .figures import km_plot, spider, waterfall

    out = Path(out_dir)
    subjects = _subject_frame(out)
    tp_path = out / "timepoints.csv"
    timepoints = read_output_table(tp_path) if tp_path.is_file() else pd.DataFrame()
    cohort = _read_json(out / "cohort.json")
    provenance = _read_json(out / "provenance.json")
    criteria = _criteria_object(out, provenance, cohort)
    figs = out / "figures"
    tasks: dict[str, Any] = {
        "spider": partial(spider, timepoints, subjects, criteria, figs / "spider"),
        "waterfall": partial(waterfall, subjects, criteria, figs / "waterfall"),
    }
    ok = [r for r in subjects.to_dict("records") if r.get("status", "ok") == "ok"]
    if len({r.get("arm", "") for r in ok if r.get("arm", "")}) >= 2:
        tasks["waterfall_by_arm"] = partial(
            waterfall, subjects, criteria, figs / "waterfall_by_arm", color_by="arm"
        )
    pfs = cohort.get("pfs") if isinstance(cohort, dict) else None
    if isinstance(pfs, dict):
        what = _responder_words(pfs.get("responder_col"), criteria.responder_reduction_pct)
        for key, title in (
            ("naive", f"PFS by {what}, from baseline (naive analysis: guarantee-time biased)"),
            ("landmark", f"PFS by {what} reached by the landmark, from the landmark"),
        ):
            analysis = pfs.get(key)
            if isinstance(analysis, dict):
                tasks[f"km_{key}"] = partial(km_plot, analysis, figs / f"km_{key}", title)
    return tasks


def _responder_words(col: Any, pct: Any = 20) -> str:
    if col == "objective_response":
        return "objective response (CR or PR)"
    return f"\u2265{_fmt_num(pct, 0)}% volumetric reduction"


# --------------------------------------------------------------------------------------------
# HTML helpers


class Markup(str):
    """HTML built by :func:`el`: inserted as is. Any other string is escaped."""


_VOID = {"meta", "img", "br", "hr", "link"}


def esc(value: Any) -> Markup:
    """``value`` as text, HTML-escaped (quotes included)."""
    return value if isinstance(value, Markup) else Markup(html.escape(_text(value), quote=True))


def _content(children: Any) -> str:
    if children is None:
        return ""
    if isinstance(children, Markup):
        return children
    if isinstance(children, (list, tuple)):
        return "".join(_content(c) for c in children)
    return esc(children)


def el(tag: str, *children: Any, **attrs: Any) -> Markup:
    """``<tag attrs>children</tag>``: children and attribute values are escaped unless they
    are :class:`Markup`. ``class_`` gives ``class``; ``None``/``False`` attributes are left
    out; ``True`` gives a bare attribute."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{esc(value)}"')
    head = "<" + " ".join(parts) + ">"
    if tag in _VOID:
        return Markup(head)
    return Markup(f"{head}{_content(list(children))}</{tag}>")


def _join(*parts: Any) -> Markup:
    return Markup(_content(list(parts)))


def _table(header: list[Any], rows: list[list[Any]], class_: str | None = None) -> Markup:
    head = el("thead", el("tr", [el("th", h, scope="col") for h in header]))
    body = el("tbody", [el("tr", [el("td", c) for c in row]) for row in rows])
    return el("table", head, body, class_=class_)


def _kv_table(rows: list[tuple[Any, Any]]) -> Markup:
    return el("table", el("tbody", [
        el("tr", el("th", k, scope="row"), el("td", v)) for k, v in rows
    ]), class_="kv")


# --------------------------------------------------------------------------------------------
# formatting


_NA = "\u2014"  # em dash: not available / not applicable




def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    return {"true": True, "false": False, "1": True, "0": False}.get(text)


def _fmt_num(value: Any, digits: int = 1) -> str:
    x = _num(value)
    return _NA if x is None else f"{x:.{digits}f}"


def _fmt_int(value: Any) -> str:
    x = _num(value)
    return _NA if x is None else f"{x:.0f}"


def _fmt_pct_change(value: Any) -> str:
    x = _num(value)
    if x is None:
        return _NA
    return f"{x:+.1f}%".replace("-", "\u2212")


def _fmt_p(value: Any) -> str:
    p = _num(value)
    if p is None:
        return _NA
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_rate(rate: Any) -> tuple[str, str, str]:
    """(events / n, rate %, 95% CI %) of a RATE dict."""
    if not isinstance(rate, dict):
        return _NA, _NA, _NA
    r = _num(rate.get("rate"))
    lo, hi = _num(rate.get("ci_low")), _num(rate.get("ci_high"))
    frac = f"{_fmt_int(rate.get('events'))} / {_fmt_int(rate.get('n'))}"
    pct = _NA if r is None else f"{100 * r:.1f}%"
    ci = _NA if lo is None or hi is None else f"{100 * lo:.1f}\u2013{100 * hi:.1f}%"
    return frac, pct, ci


def _yes_no(value: Any) -> str:
    b = _bool(value)
    return _NA if b is None else ("yes" if b else "no")


def _id_list(values: Any) -> Any:
    ids = [str(v) for v in values] if isinstance(values, list) else []
    if not ids:
        return "none"
    return _join(f"{len(ids)}: ", _sep([el("code", i) for i in ids], ", "))


def _sep(items: list[Markup], sep: str) -> Markup:
    return Markup(esc(sep).join(items))


# --------------------------------------------------------------------------------------------
# the report


def build_report(out_dir: str | Path) -> Path:
    """Write ``<out_dir>/report.html`` from the folder's tables, JSON files and figures.

    Works with what is there: without a PFS analysis, with one arm, with no successful
    subject, and without figures (each missing figure says so).
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such folder. Fix: give a results folder written by cnsvol run")
    subjects = _subject_frame(out).to_dict("records")
    cohort = _read_json(out / "cohort.json")
    cohort = cohort if isinstance(cohort, dict) else {}
    provenance = _read_json(out / "provenance.json")
    provenance = provenance if isinstance(provenance, dict) else {}
    criteria, criteria_from = _load_criteria_dict(provenance, cohort)
    sections = [
        _header(criteria, provenance),
        _summary_section(subjects, cohort),
        _rates_section(cohort, criteria),
        _arms_section(cohort),
        _response_figures_section(out),
        _pfs_section(out, cohort, criteria),
        _subjects_section(out, subjects),
        _failed_section(subjects, cohort),
        _criteria_section(criteria, criteria_from),
        _provenance_section(provenance),
    ]
    title = "CNS lesion volumetric response report"
    if criteria:
        title += f" \u2014 {_text(criteria.get('title') or criteria.get('name'))}"
    doc = "<!DOCTYPE html>\n" + el(
        "html",
        el(
            "head",
            el("meta", charset="utf-8"),
            el("meta", http_equiv="Content-Security-Policy",
               content="default-src 'none'; img-src data:; style-src 'unsafe-inline'"),
            el("meta", name="viewport", content="width=device-width, initial-scale=1"),
            el("title", title),
            el("style", Markup(_CSS)),
        ),
        el("body", el("main", sections)),
        lang="en",
    ) + "\n"
    path = out / "report.html"
    atomic_write_text(path, doc)
    return path


def _header(criteria: dict[str, Any] | None, provenance: dict[str, Any]) -> Markup:
    parts: list[Any] = [el("h1", "CNS lesion volumetric response report")]
    if criteria:
        parts.append(el("p", el("strong", "Response criteria: "),
                        criteria.get("title") or criteria.get("name"),
                        " (", el("code", criteria.get("name")), "). ",
                        "Source: ", criteria.get("source") or _NA, "."))
    else:
        parts.append(el("p", el("strong", "Response criteria: "),
                        "not recorded in this folder (provenance.json missing)."))
    version = provenance.get("cnsvol_version") or provenance.get("version")
    when = provenance.get("finished_at") or provenance.get("started_at")
    parts.append(el("p", f"cnsvol {_text(version) or 'version unknown'}; run of "
                    f"{_text(when) or 'unknown date'}. Volumes are summed lesion volumes in mm\u00b3 "
                    "measured on each scan's own grid; % change = (follow-up \u2212 baseline) / "
                    f"baseline \u00d7 100. {_NA} = not available or not applicable.",
                    class_="muted"))
    return el("header", parts)


def _summary_section(subjects: list[dict[str, Any]], cohort: dict[str, Any]) -> Markup:
    ok = [s for s in subjects if s.get("status", "ok") == "ok"]
    n = cohort.get("n_subjects", len(subjects))
    n_failed = cohort.get("n_failed", len(subjects) - len(ok))
    counts = {c: sum(_text(s.get("best_response")) == c for s in ok) for c in _CATEGORIES}
    best = ", ".join(f"{c} {counts[c]}" for c in _CATEGORIES) if ok else _NA
    rows = [
        ("Subjects (rows of the manifest)", _fmt_int(n)),
        ("Failed (not evaluated, see below)", _fmt_int(n_failed)),
        ("Evaluated", _fmt_int(len(ok))),
        ("Evaluable for the \u226520% reduction flag", _fmt_int(cohort.get("n_evaluable"))),
        ("Best overall response", best),
        ("Subjects without a PFS record", _id_list(cohort.get("ids_without_pfs"))),
        ("PFS records without masks", _id_list(cohort.get("ids_without_masks"))),
    ]
    table = cohort.get("pfs_table")
    notes = table.get("notes") if isinstance(table, dict) else None
    if isinstance(notes, list) and notes:  # e.g. PFS rows set aside, with their ids and rows
        rows.append(("PFS table notes", _sep([el("span", _text(n)) for n in notes], "; ")))
    return el("section", el("h2", "Cohort"), _kv_table(rows), id="cohort")


def _rates_section(cohort: dict[str, Any], criteria: dict[str, Any] | None) -> Markup:
    rates = cohort.get("rates")
    parts: list[Any] = [el("h2", "Response rates")]
    if not isinstance(rates, dict) or not rates:
        parts.append(el("p", "Response rates not available (cohort.json missing or empty)."))
        return el("section", parts, id="rates")
    pct = (criteria or {}).get("responder_reduction_pct", 20)
    dec = (criteria or {}).get("response_decrease_pct")
    names = {
        "responder_20pct": f"\u2265{_fmt_num(pct, 0)}% volumetric reduction of the target sum "
                           "at any follow-up (exploratory responder)",
        "objective_response": "Objective response: best response CR or PR"
                              + (f" (PR: \u2265{_fmt_num(dec, 0)}% reduction)" if dec else ""),
    }
    alpha = None
    rows = []
    for key in [*_ENDPOINTS, *sorted(set(rates) - set(_ENDPOINTS))]:
        block = rates.get(key)
        if not isinstance(block, dict):
            continue
        groups = [("all subjects", block.get("overall"))]
        by_arm = block.get("by_arm") if isinstance(block.get("by_arm"), dict) else {}
        groups += [(_join("arm ", el("code", arm)), by_arm[arm]) for arm in sorted(by_arm)]
        for i, (label, rate) in enumerate(groups):
            frac, rate_pct, ci = _fmt_rate(rate)
            if isinstance(rate, dict) and alpha is None:
                alpha = _num(rate.get("alpha"))
            rows.append([names.get(key, key) if i == 0 else "", label, frac, rate_pct, ci])
    level = 95 if alpha is None else round(100 * (1 - alpha))
    parts.append(_table(["Endpoint", "Group", "Responders / evaluable", "Rate",
                         f"{level}% CI (exact, Clopper-Pearson)"], rows))
    parts.append(el("p", "Rates use the evaluated subjects with the flag defined.", class_="muted"))
    return el("section", parts, id="rates")


def _arms_section(cohort: dict[str, Any]) -> Markup:
    parts: list[Any] = [el("h2", "Arm comparison")]
    comp = cohort.get("arm_comparison")
    if not isinstance(comp, dict) or not comp:
        parts.append(el("p", "Not applicable: fewer than two treatment arms."))
        return el("section", parts, id="arms")
    tests = {"fisher_exact": "Fisher's exact test (two-sided)", "chi2": "chi-squared test"}
    for key in [*_ENDPOINTS, *sorted(set(comp) - set(_ENDPOINTS))]:
        test = comp.get(key)
        if not isinstance(test, dict):
            continue
        name = {"responder_20pct": "\u226520% volumetric reduction",
                "objective_response": "Objective response (CR/PR)"}.get(key, key)
        line = [el("strong", name), ": ", tests.get(test.get("test"), test.get("test") or "test"),
                ", p = ", _fmt_p(test.get("p_value"))]
        if _num(test.get("odds_ratio")) is not None:
            line += [", odds ratio ", _fmt_num(test.get("odds_ratio"), 2)]
        parts.append(el("p", line + ["."]))
        table = test.get("table") if isinstance(test.get("table"), dict) else {}
        rows = []
        for arm, cells in sorted(table.items()):
            cells = cells if isinstance(cells, list) and len(cells) == 2 else [None, None]
            rows.append([el("code", arm), _fmt_int(cells[0]), _fmt_int(cells[1])])
        if rows:
            parts.append(_table(["Arm", "Responders", "Non-responders"], rows, class_="narrow"))
    return el("section", parts, id="arms")


def _figure_block(out: Path, name: str, caption: str) -> Markup:
    png = out / "figures" / f"{name}.png"
    if not png.is_file():
        return el("figure", el("p", f"{caption}: figure not available.", class_="missing"))
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    img = el("img", src=f"data:image/png;base64,{data}", alt=caption)
    links: list[Any] = []
    if (out / "figures" / f"{name}.svg").is_file():
        links = [" ", el("a", "(vector SVG)", href=f"figures/{quote(name)}.svg")]
    return el("figure", img, el("figcaption", caption, *links))


def _response_figures_section(out: Path) -> Markup:
    parts = [
        el("h2", "Volume change"),
        _figure_block(out, "waterfall", "Waterfall: best % change of the target volume per "
                      "subject, coloured by best response"),
    ]
    if (out / "figures" / "waterfall_by_arm.png").is_file():
        parts.append(_figure_block(out, "waterfall_by_arm", "Waterfall coloured by arm"))
    parts.append(_figure_block(out, "spider", "Spider plot: % change of the target volume "
                               "over time per subject, coloured by best response"))
    return el("section", parts, id="figures")


_CAVEAT = (
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


def _pfs_section(out: Path, cohort: dict[str, Any], criteria: dict[str, Any] | None) -> Markup:
    parts: list[Any] = [el("h2", "Progression-free survival by response")]
    pfs = cohort.get("pfs")
    if not isinstance(pfs, dict):
        parts.append(el("p", "No PFS table was given for this run: no survival analysis."))
        return el("section", parts, id="pfs")
    what = _responder_words(pfs.get("responder_col"), (criteria or {}).get("responder_reduction_pct", 20))
    parts.append(el("p", f"Responder definition: {what}. {_fmt_int(pfs.get('n'))} subjects with "
                    f"PFS and a defined response flag, {_fmt_int(pfs.get('events'))} events "
                    "(progression or death)."))
    parts.append(el("div", el("strong", "Caveat: guarantee-time bias. "), _CAVEAT, class_="caveat"))
    landmark = pfs.get("landmark") if isinstance(pfs.get("landmark"), dict) else None
    naive = pfs.get("naive") if isinstance(pfs.get("naive"), dict) else None
    if landmark:
        lm = _fmt_num(landmark.get("landmark_days"), 0)
        src = _text(landmark.get("landmark_source"))
        parts.append(el("h3", f"Landmark analysis (day {lm}) \u2014 the one to read"))
        parts.append(el("p", f"Landmark day {lm}" + (f" ({src})" if src else "") + "; "
                        f"{_fmt_int(landmark.get('n_excluded'))} subject(s) excluded because they "
                        "progressed or were censored before it."))
        parts.append(_figure_block(out, "km_landmark", "Kaplan-Meier, PFS from the landmark"))
    if naive:
        parts.append(el("h3", "Naive analysis from baseline (guarantee-time biased)"))
        parts.append(_figure_block(out, "km_naive", "Kaplan-Meier, PFS from baseline (biased)"))
    rows = []
    for label, analysis in (("landmark", landmark), ("naive (biased)", naive)):
        if not analysis:
            continue
        lr = analysis.get("logrank") if isinstance(analysis.get("logrank"), dict) else {}
        cox = analysis.get("cox_responder") if isinstance(analysis.get("cox_responder"), dict) else {}
        hr = _NA if _num(cox.get("hr")) is None else (
            f"{_fmt_num(cox.get('hr'), 2)} ({_fmt_num(cox.get('ci_low'), 2)}\u2013"
            f"{_fmt_num(cox.get('ci_high'), 2)}), p = {_fmt_p(cox.get('p_value'))}"
        )
        groups = analysis.get("groups") if isinstance(analysis.get("groups"), dict) else {}
        for i, key in enumerate(("responder", "non_responder")):
            km = groups.get(key) if isinstance(groups.get(key), dict) else {}
            med = _num(km.get("median_days"))
            median = "not reached" if med is None else f"{med:.0f}" + _median_ci(km)
            rows.append([label if i == 0 else "", key.replace("_", "-"), _fmt_int(km.get("n")),
                         _fmt_int(km.get("events")), median,
                         _fmt_p(lr.get("p_value")) if i == 0 else "", hr if i == 0 else ""])
    if rows:
        parts.append(el("h3", "Summary"))
        parts.append(_table(["Analysis", "Group", "n", "Events", "Median PFS, days (95% CI)",
                             "Log-rank p", "Cox HR responder vs non-responder (95% CI)"], rows))
    return el("section", parts, id="pfs")


def _median_ci(km: dict[str, Any]) -> str:
    """`` (lo\u2013hi)``; a missing upper limit is "NR" (not reached); nothing when both are
    missing."""
    lo, hi = _num(km.get("median_ci_low")), _num(km.get("median_ci_high"))
    if lo is None and hi is None:
        return ""
    return f" ({_fmt_num(lo, 0)}\u2013{'NR' if hi is None else f'{hi:.0f}'})"


def _subjects_section(out: Path, subjects: list[dict[str, Any]]) -> Markup:
    parts: list[Any] = [el("h2", "Subjects")]
    if not subjects:
        parts.append(el("p", "No subject in this run."))
        return el("section", parts, id="subjects")
    rows = []
    for s in subjects:
        sid = _text(s.get("subject_id"))
        failed = s.get("status", "ok") != "ok"
        qc_name = safe_filename(sid) + ".png"
        qc: Any = _NA
        if (out / "figures" / "qc" / qc_name).is_file():
            qc = el("a", "QC picture", href=f"figures/qc/{quote(qc_name)}")
        if not _bool(s.get("has_pfs")) and _num(s.get("pfs_days")) is None:
            pfs: Any = "no PFS record" if "has_pfs" in s else _NA
        else:
            event = _bool(s.get("pfs_event"))
            pfs = f"{_fmt_int(s.get('pfs_days'))} d, " + (
                "progressed/died" if event else "censored" if event is False else "event unknown"
            )
        best = el("span", "failed", class_="failed") if failed else _text(s.get("best_response")) or _NA
        rows.append([
            el("code", sid), _text(s.get("arm")) or _NA, best,
            _fmt_pct_change(s.get("best_percent_change")), _yes_no(s.get("responder_20pct")),
            _fmt_int(s.get("progression_days")), pfs, qc,
        ])
    parts.append(_table(["Subject", "Arm", "Best response", "Best % change",
                         "\u226520% reduction", "Progression, day", "PFS", "QC"], rows,
                        class_="subjects"))
    parts.append(el("p", "Best % change: most negative change of the target sum vs baseline up "
                    "to the first progression. QC pictures open from the figures/qc folder "
                    "beside this file.", class_="muted"))
    return el("section", parts, id="subjects")


def _failed_section(subjects: list[dict[str, Any]], cohort: dict[str, Any]) -> Markup:
    parts: list[Any] = [el("h2", "Failed subjects")]
    failed = [(_text(s.get("subject_id")), _text(s.get("error")))
              for s in subjects if s.get("status", "ok") != "ok"]
    seen = {sid for sid, _ in failed}
    for sid in cohort.get("failed_ids") or []:
        if str(sid) not in seen:
            failed.append((str(sid), ""))
    if not failed:
        parts.append(el("p", "No subject failed."))
    else:
        parts.append(el("p", "These subjects were not evaluated; they count in the cohort size "
                         "but not in the rates. Each message names the file, the problem and "
                         "the fix."))
        parts.append(_table(["Subject", "Error"], [
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


def _criteria_section(criteria: dict[str, Any] | None, source: str) -> Markup:
    parts: list[Any] = [el("h2", "Response criteria definition")]
    if not criteria:
        parts.append(el("p", "Not available: provenance.json is missing or has no criteria."))
        return el("section", parts, id="criteria")
    rows = []
    for key, value in criteria.items():
        shown = "none" if value is None else ("yes" if value is True else "no" if value is False
                                               else value)
        rows.append([el("code", key), _CRITERIA_HELP.get(key, ""), shown])
    parts.append(_table(["Field", "Meaning", "Value"], rows))
    parts.append(el("p", f"Thresholds are inclusive. Taken from {source}.", class_="muted"))
    return el("section", parts, id="criteria")


def _provenance_section(prov: dict[str, Any]) -> Markup:
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
        rows.append((labels.get(key, key), el("code", _text(value) if value is not None else "none")))
    parts.append(_kv_table(rows))
    inputs = prov.get("inputs")
    if isinstance(inputs, dict) and inputs:
        parts.append(el("details", el("summary", f"Input files and SHA-256 ({len(inputs)})"),
                        _table(["File", "SHA-256"], [[el("code", p), el("code", h or "unreadable")]
                                                     for p, h in inputs.items()], class_="mono")))
    params = prov.get("parameters")
    if isinstance(params, dict) and params:
        parts.append(el("details", el("summary", f"Parameters ({len(params)})"),
                        _table(["Parameter", "Value"], [[el("code", k), el("code", _compact(v))]
                                                        for k, v in params.items()])))
    return el("section", parts, id="provenance")


def _compact(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
  color:#1a1a1a;margin:0;background:#fff;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5rem 2rem 4rem}
h1{font-size:1.6rem;margin-bottom:.3rem}
h2{font-size:1.25rem;border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2.2rem}
h3{font-size:1.05rem;margin-top:1.4rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .55rem;text-align:left;vertical-align:top}
thead th{background:#f3f5f7}
table.kv th{background:#f7f8fa;font-weight:600;width:18rem}
table.subjects td:nth-child(4),table.subjects td:nth-child(6){text-align:right}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em;word-break:break-all}
figure{margin:1rem 0}
figure img{max-width:100%;height:auto;border:1px solid #e5e5e5}
figcaption{font-size:.85rem;color:#555}
.muted{color:#555;font-size:.88rem}
.caveat{background:#fff8e5;border-left:4px solid #dda33a;padding:.7rem 1rem;margin:.8rem 0}
.missing{color:#8a6d00;font-style:italic}
.failed,.error{color:#a4262c}
details{margin:.6rem 0}
@media print{main{max-width:none;padding:0}h2{page-break-after:avoid}figure{page-break-inside:avoid}}
"""
