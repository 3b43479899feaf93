"""``cnsvol compare``: a follow-up mask against its baseline."""

from __future__ import annotations

import argparse
from typing import Any

from . import render as F
from .options import (
    UNITS, add_criteria_option, add_mask_options, add_register_options, measure_options,
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="compare a follow-up mask with its baseline",
        description=(
            "Measure the summed lesion volume at baseline and follow-up (each on its own grid), "
            "the change, the >=20% volumetric reduction flag and the response category."
        ),
        epilog=UNITS + "\n\npercent change = (follow-up - baseline) / baseline x 100; "
        "undefined (n/a) when the baseline total is 0.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("baseline", metavar="BASELINE", help="baseline mask file")
    p.add_argument("followup", metavar="FOLLOWUP", help="follow-up mask file")
    p.add_argument("--baseline-image", default=None, metavar="IMAGE",
                   help="the baseline image (file, or DICOM series folder) the mask was drawn "
                   "on: the grid an RTSTRUCT mask is rasterised onto")
    p.add_argument("--followup-image", default=None, metavar="IMAGE",
                   help="the follow-up image, likewise")
    add_criteria_option(p)
    add_mask_options(p)
    add_register_options(p, "--baseline-image and --followup-image")
    p.add_argument(
        "--days", type=float, default=None, metavar="D",
        help="the follow-up's day from baseline (for rules that depend on time)",
    )
    p.add_argument(
        "--radiotherapy-end-days", type=float, default=None, metavar="D",
        help="the day radiotherapy ended, from baseline (negative: before it); rano2-vol "
        "asks the next scan to confirm a progression within 84 days after it",
    )
    p.add_argument(
        "--format", choices=("table", "json", "csv"), default="table",
        help="output format (default: table)",
    )
    p.set_defaults(func=command)
    return p


def command(args: argparse.Namespace) -> str:
    from cnsvol.pipeline import compare

    if args.radiotherapy_end_days is not None:
        _check_radiotherapy(args.criteria, args.days is not None)
    result = compare(args.baseline, args.followup, criteria=args.criteria,
                     options=measure_options(args), days=args.days,
                     radiotherapy_end_days=args.radiotherapy_end_days,
                     baseline_image=args.baseline_image, followup_image=args.followup_image)
    if args.format == "json":
        return F.to_json(result.to_dict())
    if args.format == "csv":  # one row per timepoint, the columns of timepoints.csv
        from cnsvol.response.results import TIMEPOINT_COLUMNS

        rows = [t.to_row() for t in result.series.timepoints]
        return F.to_csv(rows, [c.name for c in TIMEPOINT_COLUMNS]).rstrip("\n")
    d = result.to_dict()
    b, f = d["baseline"], d["followup"]
    grids = (
        "same grid" if d["same_grid"] else "different grids (each measured on its own grid)"
    )
    lines = [
        f"criteria          {result.criteria.name}: {result.criteria.title}",
        f"baseline          {b['path']}",
        f"                  {b['total_volume_mm3']:.2f} mm3 in {b['lesion_count']} lesion(s), "
        f"{b['measurable_lesion_count']} measurable",
        f"follow-up         {f['path']}",
        f"                  {f['total_volume_mm3']:.2f} mm3 in {f['lesion_count']} lesion(s)",
        (f"target sum        {b['target_volume_mm3']:.2f} -> {f['target_volume_mm3']:.2f} mm3: "
         f"{d['absolute_change_mm3']:+.2f} mm3, {F.pct(d['percent_change'])} (what the criteria "
         "evaluate)" if f["target_volume_mm3"] is not None else
         "target sum        not evaluated: the lesion correspondence is unregistered (the "
         "category is of the total)"),
        f"total             {b['total_volume_mm3']:.2f} -> {f['total_volume_mm3']:.2f} mm3: "
        f"{f['total_volume_mm3'] - b['total_volume_mm3']:+.2f} mm3, "
        f"{F.pct(d['total_percent_change'])} (every lesion)",
        f"new lesions       {d['new_lesions']} ({d['equivocal_new_lesions']} equivocal, below "
        f"the {result.criteria.new_lesion_min_diameter_mm:g} mm floor)",
        f">=20% reduction   {F.fmt(d['responder_20pct'])}",
        f"category          {d['category']}: {d['reason']}",
        f"grids             {grids}",
        *([f"compartments      {_compartments(b)} -> {_compartments(f)} mm3"]
          if "compartment_volumes_mm3" in b else []),
        *(f"note ({side})   {n}" for side, ls in (("baseline", result.baseline),
                                                  ("follow-up", result.followup))
          for n in ls.mask.notes),
        *(f"registration      {tp.registration}: {tp.registration_detail}"
          for tp in result.series.timepoints[1:] if tp.registration),
        "",
        "tracks",
        F.table(
            [
                (
                    t["track_id"], t["status"], " ".join(map(str, t["baseline_lesion_ids"])),
                    " ".join(map(str, t["followup_lesion_ids"])), t["baseline_volume_mm3"],
                    t["followup_volume_mm3"],
                    F.pct(t["percent_change"]) if t["baseline_volume_mm3"] else "n/a (new)",
                    t["within_measurement_error"], t["is_target"],
                )
                for t in d["tracks"]
            ],
            ("track", "status", "baseline ids", "follow-up ids", "baseline_mm3",
             "follow-up_mm3", "change", "within error", "target"),
        ),
    ]
    return "\n".join(lines)


def _compartments(side: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in side["compartment_volumes_mm3"].items())


def _check_radiotherapy(criteria: str, has_days: bool) -> None:
    """``--radiotherapy-end-days`` must be able to act: the criteria have the rule, and the
    follow-up's day is known."""
    from cnsvol.response.criteria import get_criteria

    crit = get_criteria(criteria)
    if crit.radiotherapy_confirmation_days is None:
        raise ValueError(f"--radiotherapy-end-days: criteria {crit.name} have no radiotherapy "
                         "rule (radiotherapy_confirmation_days); use rano2-vol, or a criteria "
                         "file that sets it")
    if not has_days:
        raise ValueError("--radiotherapy-end-days needs --days (the follow-up's day from "
                         "baseline) to place the scan against the end of radiotherapy")
