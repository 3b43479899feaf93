"""The agreement report of ``cnsvol agree``: Bland-Altman plots of volumes and of percent
change, the category confusion matrix and a paired waterfall, in a self-contained
``agreement.html`` in the style of the run report (figures embedded, vector SVGs beside)."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from .markup import Markup, el, kv_table, table
from .style import CATEGORY_COLOURS, figure, save, style

__all__ = ["write_agreement_report"]

_CATS = ("CR", "PR", "SD", "PD")


def _bland_altman_figure(a: list[float], b: list[float], ba: dict[str, Any], what: str,
                         unit: str, stem: Path) -> list[Path]:
    with style():
        fig, ax = figure(6.5, 4.2, layout="constrained")
        x, y = np.asarray(a, float), np.asarray(b, float)
        keep = np.isfinite(x) & np.isfinite(y)
        mean, diff = (x[keep] + y[keep]) / 2, y[keep] - x[keep]
        ax.scatter(mean, diff, s=18, color="#1f5f8b", alpha=0.8, zorder=3)
        if ba.get("bias") is not None:
            ax.axhline(ba["bias"], color="#000000", lw=1.2, label=f"bias {ba['bias']:+.3g}")
        for key, lab in (("loa_lower", "lower"), ("loa_upper", "upper")):
            if ba.get(key) is not None:
                ax.axhline(ba[key], color="#b03030", lw=1, ls="--",
                           label=f"{lab} 95% limit {ba[key]:+.3g}")
        ax.axhline(0, color="#888888", lw=0.8, ls=":")
        ax.set_xlabel(f"mean of the two sources ({unit})")
        ax.set_ylabel(f"test - reference ({unit})")
        ax.set_title(f"Bland-Altman: {what} (n = {int(keep.sum())})", loc="left")
        if ba.get("bias") is not None:
            ax.legend(loc="best", fontsize=8, frameon=False)
        else:
            ax.text(0.5, 0.5, "no pair to compare", transform=ax.transAxes, ha="center")
        return save(fig, stem, ("png", "svg"))


def _confusion_figure(k: dict[str, Any], stem: Path) -> list[Path]:
    counts = np.asarray(k["confusion"], dtype=float)
    with style():
        fig, ax = figure(4.6, 4.0, layout="constrained")
        ax.imshow(counts, cmap="Blues", vmin=0)
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                        color="white" if counts[i, j] > counts.max() / 2 else "black")
        ax.set_xticks(range(len(k["categories"])), k["categories"])
        ax.set_yticks(range(len(k["categories"])), k["categories"])
        ax.set_xlabel("test source")
        ax.set_ylabel("reference source")
        kap = "n/a" if k["kappa"] is None else f"{k['kappa']:.3f}"
        ax.set_title(f"Categories per follow-up (kappa {kap})", loc="left")
        return save(fig, stem, ("png", "svg"))


def _paired_waterfall(subjects: list[tuple[str, Any, Any, str, str]], stem: Path
                      ) -> list[Path]:
    rows = sorted(subjects, key=lambda r: -(r[1] if r[1] is not None else -1e9))
    with style():
        fig, ax = figure(max(6.0, 0.35 * len(rows) + 2), 4.4, layout="constrained")
        x = np.arange(len(rows))
        for off, idx, cat_idx, edge in ((-0.2, 1, 3, "#000000"), (0.2, 2, 4, "#555555")):
            vals = [min(r[idx], 100.0) if r[idx] is not None else 0.0 for r in rows]
            cols = [CATEGORY_COLOURS.get(r[cat_idx], "#cccccc") for r in rows]
            ax.bar(x + off, vals, width=0.38, color=cols, edgecolor=edge,
                   hatch="" if off < 0 else "//", lw=0.6)
        ax.axhline(0, color="black", lw=0.8)
        ax.axhline(-20, color="#2e8b57", lw=0.8, ls="-.")
        ax.set_xticks(x, [r[0] for r in rows], rotation=90, fontsize=7)
        ax.set_ylabel("best % change of the target sum")
        ax.set_title("Paired waterfall: reference (plain) and test (hatched) per subject, "
                     "coloured by best response", loc="left", fontsize=10)
        return save(fig, stem, ("png", "svg"))


def _figure(out: Path, name: str, caption: str) -> Markup:
    from .sections import figure_block

    return figure_block(out, name, caption)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_fmt(x, digits) for x in v) + ")"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _subjects(pairs: list[tuple[dict[str, Any], dict[str, Any]]]
              ) -> list[tuple[str, Any, Any, str, str]]:
    """(id, best % change and best response under each source) of the subjects evaluated
    under both (their subjects.csv rows, reference then test)."""
    return [(str(a["subject_id"]), a.get("best_percent_change"), b.get("best_percent_change"),
             str(a.get("best_response")), str(b.get("best_response"))) for a, b in pairs]


def write_agreement_report(out: Path, scans: Any, tps: Any, summary: dict[str, Any],
                           pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> Path:
    """Draw the figures into ``out/figures`` and write ``out/agreement.html`` (``pairs``: the
    reference and test subjects.csv rows of the subjects evaluated under both)."""
    from importlib import resources

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    whole = scans[(scans["region"] == "whole") & (scans["error"].fillna("") == "")]
    _bland_altman_figure(list(whole["reference_volume_mm3"]), list(whole["test_volume_mm3"]),
                         summary["volume_bland_altman"], "lesion volume per scan", "mm3",
                         fig_dir / "agreement_volume")
    _bland_altman_figure(list(tps["reference_percent_change"]), list(tps["test_percent_change"]),
                         summary["percent_change_bland_altman"],
                         "% change vs baseline per follow-up", "%", fig_dir / "agreement_change")
    _confusion_figure(summary["category_kappa"], fig_dir / "agreement_categories")
    _paired_waterfall(_subjects(pairs), fig_dir / "agreement_waterfall")
    body = [el("h1", "Agreement between two sources of masks"),
            el("p", f"Criteria {summary.get('criteria', '?')}; cnsvol "
               f"{summary.get('cnsvol_version', '?')}. The two sources' runs, with identical "
               "parameters: reference/ and test/ beside this file (each with its own report "
               "and provenance)."),
            _summary_table(summary),
            _not_evaluated(summary),
            _figure(out, "agreement_volume", "Bland-Altman of the lesion volume (whole mask) per "
                    "scan: test - reference against their mean; bias and 95% limits"),
            _figure(out, "agreement_change", "Bland-Altman of the % change of the target sum "
                    "per follow-up"),
            _figure(out, "agreement_categories", "Category per follow-up under each source"),
            _figure(out, "agreement_waterfall", "Best % change per subject under each source"),
            _pfs_section(summary.get("pfs")),
            _flips(tps)]
    template = resources.files("cnsvol.report").joinpath("templates", "report.html")
    css = resources.files("cnsvol.report").joinpath("templates", "report.css").read_text("utf-8")
    head, tail = template.read_text("utf-8").split("$body")
    html = (Template(head).substitute(title="Agreement report", css=css)
            + "".join(str(b) for b in body) + tail)
    from ..atomic import atomic_write_text

    path = out / "agreement.html"
    atomic_write_text(path, html)
    return path


def _summary_table(s: dict[str, Any]) -> Markup:
    ba, ch = s["volume_bland_altman"], s["percent_change_bland_altman"]
    ic, k, wk = s["volume_icc"], s["category_kappa"], s["category_weighted_kappa"]
    mc, rates = s["responder_20pct"]["mcnemar"], s["rates"]
    rows = [
        ("Subjects / scans / follow-ups compared",
         f"{s['n_subjects']} / {s['n_scans']} / {s['n_followups_compared']}"),
        ("Dice, whole mask (median, IQR)",
         f"{_fmt(s['dice_whole']['median'])} ({_fmt(s['dice_whole']['q1'])}-"
         f"{_fmt(s['dice_whole']['q3'])})"),
        ("Volume bias, mm3 (95% CI)", f"{_fmt(ba['bias'])} {_fmt(ba['bias_ci'])}"),
        ("Volume 95% limits of agreement, mm3",
         f"{_fmt(ba['loa_lower'])} to {_fmt(ba['loa_upper'])}"),
        ("Volume ICC(A,1) / ICC(C,1) (95% CI)",
         f"{_fmt(ic['icc_a1'])} {_fmt(ic['icc_a1_ci'])} / {_fmt(ic['icc_c1'])} "
         f"{_fmt(ic['icc_c1_ci'])}"),
        ("% change bias (95% limits)",
         f"{_fmt(ch['bias'])} ({_fmt(ch['loa_lower'])} to {_fmt(ch['loa_upper'])})"),
        ("Category kappa / linearly weighted (95% CI)",
         f"{_fmt(k['kappa'])} {_fmt(k['ci'])} / {_fmt(wk['kappa'])} {_fmt(wk['ci'])}"),
        (">=20% responder agreement; McNemar p",
         f"{_fmt(s['responder_20pct']['agreement'])}; {_fmt(mc['p_value'])} "
         f"(b = {mc['b']}, c = {mc['c']})"),
    ]
    for key, name in (("responder_20pct", ">=20% responder rate"),
                      ("objective_response", "objective response rate")):
        r, t, d = rates["reference"][key], rates["test"][key], rates["paired_difference"][key]
        rows.append((f"{name}: reference / test / difference (95% CI)",
                     f"{_fmt(r['rate'])} {_fmt(r['ci'])} / {_fmt(t['rate'])} {_fmt(t['ci'])} / "
                     f"{_fmt(d['difference'])} {_fmt(d['ci'])}"))
    return el("section", el("h2", "Cohort agreement"), kv_table(rows), id="agreement")


def _landmark_cells(block: Any) -> list[str]:
    lm = (block or {}).get("landmark") if isinstance(block, dict) else None
    if not lm:
        return ["n/a"] * 6
    groups = lm.get("groups") or {}
    def group(name: str) -> str:
        g = groups.get(name) or {}
        return (f"n {g.get('n', 'n/a')}, {g.get('events', 'n/a')} events, median "
                f"{_fmt(g.get('median_days'))} d")
    cox, lr = lm.get("cox_responder") or {}, lm.get("logrank") or {}
    return [_fmt(lm.get("landmark_days")), group("responder"), group("non_responder"),
            _fmt(lr.get("p_value")),
            f"{_fmt(cox.get('hr'))} ({_fmt(cox.get('ci_low'))}-{_fmt(cox.get('ci_high'))})",
            _fmt(cox.get("p_value"))]


def _not_evaluated(summary: dict[str, Any]) -> Markup:
    """The subjects a run could not evaluate (their scans may still be compared)."""
    rows = [[el("code", sid), name, err]
            for name, errs in (summary.get("not_evaluated") or {}).items()
            for sid, err in sorted(errs.items())]
    single = summary.get("single_scan_subjects") or []
    parts: list[Any] = [el("h2", "Subjects not compared for response")]
    if single:
        parts.append(el("p", f"{len(single)} subject(s) with a single scan: scan rows only "
                         f"({', '.join(single[:20])}{' ...' if len(single) > 20 else ''})."))
    if rows:
        parts.append(el("p", "Not evaluated by a source's run: left out of the rates, kappa "
                         "and PFS comparison.", class_="failed"))
        parts.append(table(["Subject", "Source", "Error"], rows))
    if not single and not rows:
        parts.append(el("p", "Every subject was evaluated under both sources."))
    return el("section", parts, id="not-evaluated")


def _pfs_section(pfs: Any) -> Markup:
    if not pfs:
        return el("section", el("h2", "Progression-free survival by source"),
                  el("p", "No PFS table was given (--pfs): no survival comparison."))
    names = ["Landmark day", "Responders", "Non-responders", "Log-rank p",
             "Cox HR, responder vs not (95% CI)", "Cox p"]
    ref, test = _landmark_cells(pfs.get("reference")), _landmark_cells(pfs.get("test"))
    return el("section", el("h2", "Progression-free survival by source"),
              el("p", "The landmark analysis of each source's run (responder: a >=20% "
                 "reduction by the landmark), side by side.", class_="muted"),
              table(["", "Reference source", "Test source"],
                    [[n, a, b] for n, a, b in zip(names, ref, test)]))


def _flips(tps: Any) -> Markup:
    flips = tps[~tps["category_agrees"].astype(bool)] if len(tps) else tps
    if not len(flips):
        return el("section", el("h2", "Category changes"),
                  el("p", "No follow-up changes category with the source."))
    return el("section", el("h2", "Category changes"), table(
        ["Subject", "Timepoint", "Reference", "Test", "Reference % change", "Test % change"],
        [[r["subject_id"], r["timepoint"], r["reference_category"], r["test_category"],
          _fmt(r["reference_percent_change"]), _fmt(r["test_percent_change"])]
         for _, r in flips.iterrows()]))
