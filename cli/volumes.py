"""``cnsvol volumes``: find and measure the lesions of one or more masks."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import render as F
from .options import (
    EXIT_INPUT_ERROR, EXIT_OK, UNITS, add_criteria_option, add_mask_options, measure_options,
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "volumes",
        help="find and measure the lesions of one or more masks",
        description="Find the lesions (connected components) of each mask and measure them.",
        epilog=UNITS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("masks", nargs="+", metavar="MASK",
                   help="mask file(s): NIfTI, NRRD, MetaImage, DICOM SEG or RTSTRUCT (or a "
                   "folder holding one SEG or RTSTRUCT)")
    p.add_argument("--image", default=None, metavar="DIR",
                   help="RTSTRUCT masks: the folder of the DICOM image series the contours "
                   "were drawn on (default: looked for beside the RTSTRUCT by frame of "
                   "reference)")
    add_mask_options(p)
    add_criteria_option(p, "the measurability rule of a preset or criteria file")
    p.add_argument(
        "--format", choices=("table", "csv", "json"), default="table",
        help="output format (default: table)",
    )
    p.add_argument(
        "--per", choices=("lesion", "segment"), default="lesion",
        help="csv rows: one per lesion (default), or one per DICOM segment / RTSTRUCT ROI "
        "(measured on its own voxels, with its planar volume); table and json show both",
    )
    p.set_defaults(func=command)
    return p


def command(args: argparse.Namespace) -> tuple[str, int]:
    from cnsvol.errors import CnsvolError
    from cnsvol.pipeline import measure

    opts = measure_options(args)
    sets, failed = [], 0
    for path in args.masks:  # every good file is measured; each bad one is reported
        try:
            sets.append(measure(path, opts, args.criteria, reference=args.image))
        except (CnsvolError, OSError, ValueError) as exc:
            if len(args.masks) == 1:
                raise
            failed += 1
            sys.stderr.write(f"cnsvol volumes: error: {exc}\n")
    if not sets:
        raise ValueError(f"none of the {len(args.masks)} masks could be measured (each error "
                         "is above)")
    code = EXIT_INPUT_ERROR if failed else EXIT_OK
    return _render(args, sets), code


def _render(args: argparse.Namespace, sets: list) -> str:
    from cnsvol.lesions import LESION_COLUMNS

    for ls in sets:  # an option a mask cannot use is never silent
        if args.image is not None and ls.mask.source_format != "dicom-rtstruct":
            sys.stderr.write(f"cnsvol volumes: warning: {ls.mask.name}: --image not used (it "
                             f"is the grid RTSTRUCT contours are rasterised onto; this "
                             f"{ls.mask.source_format} mask has its own grid)\n")
        if ls.mask.labels_found is not None:
            found = ", ".join(map(str, ls.mask.labels_found)) or "none"
            asked = ", ".join(map(str, ls.mask.labels or ()))
            sys.stderr.write(f"cnsvol volumes: warning: {ls.mask.name}: none of the labels "
                             f"{args.labels} ({asked}) is in this mask (labels present: "
                             f"{found})\n")
    if args.format == "json":
        docs = [ls.to_dict() for ls in sets]
        return F.to_json(docs[0] if len(docs) == 1 else docs)
    if args.format == "csv" and args.per == "segment":
        return _segment_csv(sets)
    if args.format == "csv":
        rows = [
            {"path": ls.mask.name, **les.to_row()} for ls in sets for les in ls.lesions
        ]
        return F.to_csv(rows, ["path", *(c.name for c in LESION_COLUMNS)]).rstrip("\n")
    blocks = []
    for ls in sets:
        m = ls.mask
        sx, sy, sz = m.spacing_mm
        head = [
            m.name,
            f"  grid {'x'.join(map(str, m.shape))}, spacing {sx:.3f} x {sy:.3f} x {sz:.3f} mm, "
            f"voxel {m.voxel_volume_mm3:.4f} mm3, {m.source_format}, {m.storage} storage",
            f"  {ls.lesion_count} lesion(s), total {ls.total_volume_mm3:.2f} mm3 "
            f"({ls.connectivity or 'instance'}-connected)",
        ]
        head += [f"  note: {n}" for n in (*m.notes, *ls.notes)]
        for g in m.segments:
            planar = ("" if g.planar_volume_mm3 is None
                      else f", planar {g.planar_volume_mm3:.2f} mm3")
            head.append(f"  segment {g.number} {g.name}"
                        + (f" ({g.property})" if g.property else "")
                        + f": {g.voxel_count} voxels, {g.volume_mm3:.2f} mm3{planar}")
        if ls.compartments:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in ls.compartment_volumes_mm3.items())
            head.append(f"  compartments ({ls.compartments}), mm3: {parts}")
        names = list(ls.compartment_volumes_mm3)
        rows = [
            (
                les.lesion_id, les.voxel_count, les.volume_mm3, les.centroid_ras_mm,
                les.longest_diameter_mm, les.perpendicular_diameter_mm, les.axial_slice_count,
                les.max_diameter_3d_mm, les.measurable,
                *(les.compartment_volumes_mm3.get(k, 0.0) for k in names),
                *((les.segment,) if m.segments else ()),
            )
            for les in ls.lesions
        ]
        header = (
            "lesion", "voxels", "volume_mm3", "centroid_ras_mm (x, y, z)",
            "longest_axial_mm", "perpendicular_mm", "slices", "max_3d_mm", "measurable",
            *(f"{k}_mm3" for k in names), *(("segment",) if m.segments else ()),
        )
        blocks.append("\n".join(head + ([F.table(rows, header)] if rows else [])))
    return "\n\n".join(blocks)


SEGMENT_CSV = ("path", "segment_number", "segment_name", "property", "voxel_count", "volume_mm3",
               "planar_volume_mm3", "centroid_ras_x_mm", "centroid_ras_y_mm", "centroid_ras_z_mm")


def _segment_csv(sets: list) -> str:
    """One row per segment (ROI) of each DICOM mask; other masks have none, and say so."""
    rows = []
    for ls in sets:
        if not ls.mask.segments:
            sys.stderr.write(f"cnsvol volumes: warning: {ls.mask.name}: no segments (--per "
                             f"segment lists DICOM SEG segments and RTSTRUCT ROIs; this is a "
                             f"{ls.mask.source_format} mask)\n")
        for g in ls.mask.segments:
            x, y, z = g.centroid_ras_mm if g.centroid_ras_mm is not None else (None,) * 3
            rows.append(dict(zip(SEGMENT_CSV, (ls.mask.name, g.number, g.name, g.property,
                                               g.voxel_count, g.volume_mm3, g.planar_volume_mm3,
                                               x, y, z))))
    return F.to_csv(rows, list(SEGMENT_CSV)).rstrip("\n")
