"""``cnsvol agree``: two sources of masks for one cohort, run with identical parameters and
compared from the voxels up to the cohort's results.

``agree(reference, test, out)`` runs both manifests with one :class:`~cnsvol.batch.RunConfig`
(into ``out/reference`` and ``out/test``: ordinary results folders, resumable, their stored
subjects reused), then writes

* ``agreement_scans.csv``: every scan of both manifests, whole mask and each label
  (:func:`~cnsvol.agreement.scans.scan_agreement`);
* ``agreement_timepoints.csv``: every follow-up of a subject evaluated under both sources,
  percent change and category side by side (a single-scan subject has scan rows only);
* ``agreement.json``: the cohort's agreement (:func:`summarise`);
* ``agreement.html`` with its figures (:mod:`cnsvol.report.agreement`).

The two manifests must list the same subjects and timepoints; a difference is refused before
any work, listing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CnsvolError, ManifestError

__all__ = ["Agreement", "agree", "summarise"]



@dataclass(frozen=True)
class Agreement:
    """What :func:`agree` wrote: ``scans`` and ``timepoints`` (DataFrames of the two CSV
    files), ``summary`` (``agreement.json``), the folder and the report."""

    out_dir: Path
    scans: Any
    timepoints: Any
    summary: dict[str, Any]
    report: Path


def _plans(manifest: Any) -> Any:
    from ..cohort.manifest import read_manifest

    return manifest if not isinstance(manifest, (str, Path)) else read_manifest(manifest)


def _check_same_scans(ref: Any, test: Any) -> None:
    """Refuse manifests that do not list the same scans, or give them other days or clinical
    records: the comparison must differ in the masks alone."""
    def keyed(plans: Any) -> dict[tuple[str, str], Any]:
        return {(p.subject_id, s.timepoint): s for p in plans for s in p.scans}

    a, b = keyed(ref), keyed(test)
    problems = [f"only in the reference: {s} {t}" for s, t in sorted(set(a) - set(b))]
    problems += [f"only in the test: {s} {t}" for s, t in sorted(set(b) - set(a))]
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if x.days_from_baseline != y.days_from_baseline:
            problems.append(f"{key[0]} {key[1]}: day {x.days_from_baseline:g} in the reference, "
                            f"{y.days_from_baseline:g} in the test")
        if x.clinical != y.clinical:
            problems.append(f"{key[0]} {key[1]}: other clinical records (steroid dose, "
                            "neurologic status, extra-CNS progression) in the two manifests")
    if problems:
        more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
        raise ManifestError(
            "the reference and test manifests must list the same scans with the same days and "
            f"clinical records, so that only the masks differ: {'; '.join(problems[:8])}{more}."
            " Fix: give both sources' masks for every subject and timepoint, with the same "
            "subject_id, timepoint, days and clinical columns")


def agree(reference: Any, test: Any, out_dir: str | Path, *, pfs: Any = None,
          config: Any = None, jobs: int | None = None, landmark_days: float | None = None,
          force: bool = False, progress: Any = None) -> Agreement:
    """Run both cohorts with identical parameters and compare them (see the module docstring).
    ``config``: a :class:`~cnsvol.batch.RunConfig` or criteria (preset, file); ``pfs``: a PFS
    table for the landmark analysis under each source."""
    from ..batch.config import RunConfig
    from ..batch.run import run_cohort
    from ..cohort.pfs_table import read_pfs

    config = config if isinstance(config, RunConfig) else (
        RunConfig() if config is None else RunConfig(criteria=config))
    ref_plans, test_plans = _plans(reference), _plans(test)
    _check_same_scans(ref_plans, test_plans)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _withdraw(out)  # an interrupted agree never leaves earlier results looking current
    pfs_table = read_pfs(pfs) if isinstance(pfs, (str, Path)) else pfs
    from ..batch.executors import make_executor

    executor = make_executor(jobs)
    failed = {}
    try:
        for name, plans in (("reference", ref_plans), ("test", test_plans)):
            run = run_cohort(plans, out / name, config, pfs=pfs_table,
                             landmark_days=landmark_days, executor=executor, force=force,
                             progress=progress)
            failed[name] = dict(run.failed)
        scans = _scan_rows(ref_plans, test_plans, config, executor)
    finally:
        executor.close()
    tps = _timepoint_rows(out)
    pairs = _subject_pairs(out)
    summary = summarise(scans, tps, pairs, out)
    summary.update(_record(config, ref_plans, test_plans, failed))
    return _write(out, scans, tps, summary, pairs)


OUTPUTS = ("agreement_scans.csv", "agreement_timepoints.csv", "agreement.json",
           "agreement.html")


def _withdraw(out: Path) -> None:
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    figures = out / "figures"
    if figures.is_dir():
        for f in figures.glob("agreement_*"):
            f.unlink(missing_ok=True)


def _record(config: Any, ref_plans: Any, test_plans: Any,
            failed: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What the comparison ran with, and the subjects a run could not evaluate (a single-scan
    subject is listed apart: it has scan rows, and no response to compare)."""
    from .._version import __version__

    single = sorted(p.subject_id for p in ref_plans if len(p.scans) == 1)
    not_single = {name: {sid: err for sid, err in errs.items() if sid not in single}
                  for name, errs in failed.items()}
    return {
        "cnsvol_version": __version__,
        "criteria": config.criteria.name,
        "options": config.options.to_dict(),
        "reference_manifest": str(getattr(ref_plans, "path", "") or ""),
        "test_manifest": str(getattr(test_plans, "path", "") or ""),
        "single_scan_subjects": single,
        "not_evaluated": not_single,
    }


def _response_region(config: Any) -> tuple[int, ...] | None:
    """With a compartment convention, the labels the response measures (the ``whole`` region:
    the tumour core, or the criteria's compartments, or --labels), as the runs measure them."""
    if config.options.compartments is None:
        return None
    from ..lesions.compartments import get_convention
    from ..pipeline import lesion_labels

    return lesion_labels(config.options, config.criteria,
                         get_convention(config.options.compartments))


def _label_names(config: Any) -> dict[int, str] | None:
    if config.options.compartments is None:
        return None
    from ..lesions.compartments import get_convention

    labels = get_convention(config.options.compartments).labels
    shared = {c for c in labels.values() if list(labels.values()).count(c) > 1}
    return {int(v): (f"{c}_label_{v}" if c in shared else str(c)) for v, c in labels.items()}


def _scan_rows(ref_plans: Any, test_plans: Any, config: Any, executor: Any
               ) -> list[dict[str, Any]]:
    """One row per scan and region, subjects compared on the run's workers in subject order;
    a scan that cannot be compared is a row with its error."""
    from ..io.labelsets import parse_labels

    tests = {(p.subject_id, s.timepoint): s.mask for p in test_plans for s in p.scans}
    opts = config.options
    settings = (parse_labels(opts.labels) if opts.labels is not None else None,
                opts.connectivity, config.criteria.measurable_min_diameter_mm,
                _label_names(config), opts.max_bytes, _response_region(config))
    tasks = [(plan.subject_id, [(s.timepoint, s.mask, tests[(plan.subject_id, s.timepoint)])
                                for s in plan.scans], settings) for plan in ref_plans]
    done: dict[str, list[dict[str, Any]]] = {}
    for task, rows, exc in executor.run(subject_scans, tasks):
        done[task[0]] = rows if exc is None else subject_scans(task)  # a worker died: here
    return [r for plan in ref_plans for r in done[plan.subject_id]]


def subject_scans(task: tuple[str, list[tuple[str, str, str]], tuple[Any, ...]]
                  ) -> list[dict[str, Any]]:
    """The scan rows of one subject: ``(subject_id, [(timepoint, reference mask, test
    mask)], (labels, connectivity, measurable size, label names, max bytes))``."""
    from .scans import scan_agreement

    sid, scans, (labels, connectivity, measurable, names, max_bytes, region) = task
    rows: list[dict[str, Any]] = []
    for timepoint, ref, test in scans:
        head = {"subject_id": sid, "timepoint": timepoint, "reference_mask": ref,
                "test_mask": test}
        try:
            found = scan_agreement(ref, test, labels=labels, connectivity=connectivity,
                                   measurable_min_diameter_mm=measurable, label_names=names,
                                   max_bytes=max_bytes, region_labels=region)
        except (CnsvolError, OSError, ValueError) as exc:
            rows.append({**head, "region": "whole", "error": f"{type(exc).__name__}: {exc}"})
            continue
        rows += [{**head, **r, "error": ""} for r in found]
    return rows


def _timepoint_rows(out: Path) -> list[dict[str, Any]]:
    """Every follow-up evaluated under both sources, side by side."""
    from ..results import read_results

    ref, tst = read_results(out / "reference"), read_results(out / "test")
    subj = {name: {str(r["subject_id"]): r for _, r in res.subjects.iterrows()}
            for name, res in (("reference", ref), ("test", tst))}
    t_ref = {(str(r["subject_id"]), str(r["timepoint"])): r
             for _, r in ref.timepoints.iterrows()}
    rows = []
    for _, r in tst.timepoints.iterrows():
        key = (str(r["subject_id"]), str(r["timepoint"]))
        a = t_ref.get(key)
        if a is None or _missing(r["category"]) or _missing(a["category"]):
            continue  # a baseline, or a subject one of the runs could not evaluate
        rows.append({
            "subject_id": key[0], "timepoint": key[1],
            "days_from_baseline": _value(r["days_from_baseline"]),
            "reference_percent_change": _value(a["percent_change_vs_baseline"]),
            "test_percent_change": _value(r["percent_change_vs_baseline"]),
            "reference_category": str(a["category"]), "test_category": str(r["category"]),
            "category_agrees": str(a["category"]) == str(r["category"]),
            "reference_responder_20pct": _value(subj["reference"][key[0]]["responder_20pct"]),
            "test_responder_20pct": _value(subj["test"][key[0]]["responder_20pct"]),
        })
    return rows


def _missing(v: Any) -> bool:
    import pandas as pd

    return v is None or bool(pd.isna(v)) or str(v) == ""


def _value(v: Any) -> Any:
    if _missing(v):
        return None
    return v.item() if hasattr(v, "item") else v


def summarise(scans: list[dict[str, Any]], tps: list[dict[str, Any]],
              subjects: list[tuple[dict[str, Any], dict[str, Any]]], out: Path
              ) -> dict[str, Any]:
    """The cohort's agreement (``agreement.json``) from the scan and follow-up rows, the
    (reference, test) rows of the subjects evaluated under both, and the runs in ``out``."""
    from .stats import bland_altman, icc, kappa, mcnemar, paired_rate_difference

    whole = [r for r in scans if r.get("region") == "whole" and not r.get("error")]
    ref_v = [r["reference_volume_mm3"] for r in whole]
    test_v = [r["test_volume_mm3"] for r in whole]
    flags = {k: ([s[0].get(k) for s in subjects], [s[1].get(k) for s in subjects])
             for k in ("responder_20pct", "objective_response")}
    rates = {name: {k: _rate([s[i].get(k) for s in subjects]) for k in flags}
             for i, name in enumerate(("reference", "test"))}
    rates["paired_difference"] = {k: paired_rate_difference(*flags[k]) for k in flags}
    best = ([s[0].get("best_response") for s in subjects],
            [s[1].get("best_response") for s in subjects])
    responders = mcnemar(*flags["responder_20pct"])
    return {
        "n_subjects": len({r["subject_id"] for r in scans}),
        "n_scans": len({(r["subject_id"], r["timepoint"]) for r in scans}),
        "n_scans_not_compared": len([r for r in scans if r.get("error")]),
        "n_followups_compared": len(tps),
        "dice_whole": _quantiles([r["dice"] for r in whole]),
        "volume_bland_altman": bland_altman(ref_v, test_v),
        "volume_icc": icc(ref_v, test_v),
        "percent_change_bland_altman": bland_altman(
            [t["reference_percent_change"] for t in tps], [t["test_percent_change"] for t in tps]),
        "category_kappa": kappa([t["reference_category"] for t in tps],
                                [t["test_category"] for t in tps]),
        "category_weighted_kappa": kappa([t["reference_category"] for t in tps],
                                         [t["test_category"] for t in tps], weights="linear"),
        "best_response_kappa": kappa(*best),
        "responder_20pct": {"mcnemar": responders, "agreement": responders["agreement"]},
        "rates": rates,
        "pfs": _pfs(out),
    }


def _subject_pairs(out: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(reference, test) subject rows of the subjects evaluated under both."""
    from ..results import read_results

    def rows(name: str) -> dict[str, dict[str, Any]]:
        res = read_results(out / name)
        return {str(r["subject_id"]): {k: _value(v) for k, v in r.items()}
                for _, r in res.subjects.iterrows() if str(r["status"]) == "ok"}

    a, b = rows("reference"), rows("test")
    return [(a[s], b[s]) for s in sorted(set(a) & set(b))]


def _rate(flags: list[Any]) -> dict[str, Any]:
    from ..cohort.stats.rates import binomial_rate

    known = [bool(f) for f in flags if f is not None]
    r = binomial_rate(sum(known), len(known))
    return {"n": r.n, "events": r.events, "rate": r.rate, "ci": [r.ci_low, r.ci_high],
            "method": "clopper-pearson"}


def _quantiles(values: list[float]) -> dict[str, Any]:
    import numpy as np

    if not values:
        return {"n": 0, "median": None, "q1": None, "q3": None, "min": None}
    v = np.asarray(values, dtype=np.float64)
    return {"n": len(v), "median": float(np.median(v)), "q1": float(np.quantile(v, 0.25)),
            "q3": float(np.quantile(v, 0.75)), "min": float(v.min())}


def _pfs(out: Path) -> dict[str, Any] | None:
    """The landmark PFS results of each run's cohort.json, side by side (``None`` without)."""
    import json

    docs = {}
    for name in ("reference", "test"):
        path = out / name / "cohort.json"
        doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        docs[name] = doc.get("pfs")
    return None if all(v is None for v in docs.values()) else docs


def _write(out: Path, scans: list[dict[str, Any]], tps: list[dict[str, Any]],
           summary: dict[str, Any], pairs: list[tuple[dict[str, Any], dict[str, Any]]]
           ) -> Agreement:
    import json

    from ..atomic import atomic_write_text
    from ..columns import frame
    from .schema import AGREEMENT_SCANS, AGREEMENT_TIMEPOINTS

    scans_df = frame(scans, AGREEMENT_SCANS.columns)
    tps_df = frame(tps, AGREEMENT_TIMEPOINTS.columns)
    atomic_write_text(out / "agreement_scans.csv", scans_df.to_csv(index=False))
    atomic_write_text(out / "agreement_timepoints.csv", tps_df.to_csv(index=False))
    atomic_write_text(out / "agreement.json", json.dumps(summary, indent=2, default=str) + "\n")
    from ..report.agreement import write_agreement_report

    report = write_agreement_report(out, scans_df, tps_df, summary, pairs)
    return Agreement(out, scans_df, tps_df, summary, report)
