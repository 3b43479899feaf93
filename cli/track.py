"""``cnsvol track``: one subject's series of masks, baseline first."""

from __future__ import annotations

import argparse
from typing import Any

from cnsvol.cohort.vocabulary import parse_yes_no

from . import render as F
from .options import (
    UNITS, add_criteria_option, add_mask_options, add_register_options, float_list,
    measure_options, str_list,
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "track",
        help="evaluate one subject's series of masks (baseline first)",
        description=(
            "Follow every lesion from baseline through each follow-up in world space and "
            "classify each timepoint and the subject (best overall response, >=20% flag, "
            "time to response and to progression)."
        ),
        epilog=UNITS + "\n\npercent changes are of the target sum (the lesions the criteria "
        "sum), vs baseline and vs nadir (the smallest earlier sum, baseline included). "
        "--format csv prints the timepoint table, a blank line, then the track table.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("masks", nargs="+", metavar="MASK", help="mask files, baseline first")
    p.add_argument(
        "--days", required=True, type=float_list, metavar="D0,D1,...",
        help="days from baseline of each mask, e.g. 0,56,112 (needed for confirmation and "
        "times to response/progression)",
    )
    p.add_argument("--images", nargs="+", default=None, metavar="IMAGE",
                   help="the image (file, or DICOM series folder) each mask was drawn on, "
                   "baseline first: the grid an RTSTRUCT mask is rasterised onto ('-' for "
                   "none); give it after the masks")
    p.add_argument("--timepoints", type=str_list, metavar="L0,L1,...",
                   help="timepoint labels (default: T0,T1,...)")
    p.add_argument("--steroid-dose-mg", type=float_list, metavar="S0,S1,...",
                   help="dexamethasone-equivalent dose per timepoint, mg/day (optional; "
                   "leave an entry empty when not recorded)")
    p.add_argument("--neuro-status", type=str_list, metavar="N0,N1,...",
                   help="improved, stable or worse per timepoint (optional)")
    p.add_argument("--extracns-progression", type=str_list, metavar="E0,E1,...",
                   help="yes or no per timepoint (optional)")
    p.add_argument(
        "--radiotherapy-end-days", type=float, default=None, metavar="D",
        help="the day radiotherapy ended, from baseline (negative: before it); rano2-vol "
        "asks the next scan to confirm a progression within 84 days after it",
    )
    add_criteria_option(p)
    add_mask_options(p)
    add_register_options(p, "--images")
    p.add_argument(
        "--format", choices=("table", "json", "csv"), default="table",
        help="output format (default: table)",
    )
    p.set_defaults(func=command)
    return p


def _clinical_records(args: argparse.Namespace, n: int) -> list[dict[str, Any]] | None:
    columns = {
        "steroid_dose_mg": args.steroid_dose_mg,
        "neuro_status": args.neuro_status,
        "extracns_progression": args.extracns_progression,
    }
    if all(v is None for v in columns.values()):
        return None
    records: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, values in columns.items():
        if values is None:
            continue
        if len(values) != n:
            raise ValueError(f"--{key.replace('_', '-')} has {len(values)} values for {n} masks")
        for rec, value in zip(records, values):
            if key == "extracns_progression" and value is not None:
                flag = parse_yes_no(value)
                if flag is None:
                    raise ValueError(f"--extracns-progression: expected yes or no, got {value!r}")
                value = flag
            rec[key] = value
    return records


def command(args: argparse.Namespace) -> str:
    from cnsvol.lesions.compartments import compartment_cells
    from cnsvol.pipeline import evaluate_series

    if len(args.masks) < 2:
        raise ValueError("track needs at least two masks: the baseline and a follow-up")
    if len(args.days) != len(args.masks):
        raise ValueError(f"--days has {len(args.days)} values for {len(args.masks)} masks")
    if args.images is not None and len(args.images) != len(args.masks):
        raise ValueError(f"--images has {len(args.images)} values for {len(args.masks)} masks")
    images = None if args.images is None else [None if i == "-" else i for i in args.images]
    if args.radiotherapy_end_days is not None:
        from .compare import _check_radiotherapy

        _check_radiotherapy(args.criteria, True)
    result = evaluate_series(
        args.masks, args.days, timepoints=args.timepoints,
        clinical=_clinical_records(args, len(args.masks)),
        criteria=args.criteria, options=measure_options(args),
        radiotherapy_end_days=args.radiotherapy_end_days, images=images,
    )
    if args.format == "json":
        return F.to_json(result.to_dict())
    tp_cols = [
        "timepoint", "days_from_baseline", "total_volume_mm3", "target_volume_mm3",
        "percent_change_vs_baseline", "percent_change_vs_nadir", "new_lesions",
        "equivocal_new_lesions", "nontarget_progression", "post_progression", "category",
        "confirmed", "within_measurement_error", "registration", "registration_detail",
        "reason_code", "reason",
    ]
    tr_cols = [
        "track_id", "timepoint", "days_from_baseline", "lesion_ids", "status", "volume_mm3",
        "percent_change_vs_baseline", "within_measurement_error", "is_target",
    ]
    if result.lesion_sets[0].compartments:  # one column per compartment of the convention
        tp_cols[-1:-1] = [f"{c}_volume_mm3" for c in result.timepoints[0].compartment_volumes_mm3]
    tps = [{**t.to_dict(), **compartment_cells(t.compartment_volumes_mm3)}
           for t in result.timepoints]
    trs = [r.to_dict() for r in result.tracks]
    for r in trs:
        r["lesion_ids"] = " ".join(map(str, r["lesion_ids"]))
    if args.format == "csv":
        return F.to_csv(tps, tp_cols) + "\n" + F.to_csv(trs, tr_cols).rstrip("\n")
    sub = result.subject
    lines = [
        f"criteria   {result.criteria.name}: {result.criteria.title}",
        "",
        "timepoints",
        F.table(
            [(t["timepoint"], t["days_from_baseline"], t["total_volume_mm3"],
              t["target_volume_mm3"], F.pct(t["percent_change_vs_baseline"]) if t["timepoint"]
              != tps[0]["timepoint"] else "", F.pct(t["percent_change_vs_nadir"])
              if t["percent_change_vs_nadir"] is not None else "", t["new_lesions"],
              t["category"]) for t in tps],
            ("timepoint", "day", "total_mm3", "target_mm3", "vs baseline", "vs nadir", "new",
             "category"),
        ),
        "",
        *[f"  {t['timepoint']}: {t['reason']}" for t in tps[1:]],
        *[f"  {t['timepoint']} registration: {t['registration']}: {t['registration_detail']}"
          for t in tps[1:] if t.get("registration")],
        "",
        "tracks",
        F.table(
            [(r["track_id"], r["timepoint"], r["lesion_ids"], r["status"], r["volume_mm3"],
              F.pct(r["percent_change_vs_baseline"]) if r["percent_change_vs_baseline"]
              is not None else "n/a", r["within_measurement_error"], r["is_target"])
             for r in trs],
            ("track", "timepoint", "lesions", "status", "volume_mm3", "vs baseline",
             "within error", "target"),
        ),
        "",
        f"best overall response   {sub.best_response}",
        f"best percent change     {F.pct(sub.best_percent_change)}",
        f">=20% reduction         {F.fmt(sub.responder_20pct)}",
        f"objective response      {F.fmt(sub.objective_response)}",
        f"time to response        {F.days(sub.time_to_response_days)}",
        f"progression             {F.days(sub.progression_days)}",
    ]
    return "\n".join(lines)
