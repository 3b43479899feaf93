"""What the commands share: exit codes, the units note, the mask and criteria options, and the
parsing of list arguments."""

from __future__ import annotations

import argparse
import math
from typing import Any

from cnsvol.io.labelsets import LABEL_PRESETS
from cnsvol.lesions.compartments import CONVENTIONS
from cnsvol.response.criteria import PRESETS

EXIT_OK = 0
EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

UNITS = """\
units: volumes in mm3 (voxel count x voxel volume from the header, float64), coordinates in
RAS+ mm (x to the patient's right, y anterior, z superior), diameters in mm."""


def float_list(text: str) -> list[float | None]:
    out: list[float | None] = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(float(part) if part else None)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {part!r} in {text!r}") from None
    return out


def str_list(text: str) -> list[str | None]:
    return [p.strip() or None for p in text.split(",")]


def add_criteria_option(p: argparse.ArgumentParser, what: str = "response criteria") -> None:
    p.add_argument(
        "--criteria", default="lin2009", metavar="PRESET|FILE.toml",
        help=f"{what}: {', '.join(PRESETS)}, or a TOML criteria file (default: lin2009)",
    )


def add_mask_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--labels", default=None, metavar="SPEC",
        help="label values that form the lesion region: comma-separated values (e.g. 1,3) or a "
        f"preset ({', '.join(LABEL_PRESETS)}); default: every non-zero label",
    )
    p.add_argument(
        "--segments", "--roi", dest="segments", default=None, metavar="SPEC",
        help="DICOM SEG and RTSTRUCT masks: the segments (ROIs) that form the lesion region, "
        "comma-separated numbers or name patterns matched without case on SegmentLabel / "
        "ROIName or the coded property (e.g. 'GTV*'); default: every segment",
    )
    p.add_argument(
        "--rasterisation", choices=("centre", "fill"), default="centre",
        help="how RTSTRUCT contours become voxels: centre (a voxel whose centre lies inside the "
        "polygon, holes by the even-odd rule; default) or fill (polygon fill on rounded "
        "vertices, boundary included: the OpenCV/rt-utils rule). Each ROI's planar volume is "
        "reported beside its voxel volume",
    )
    p.add_argument(
        "--connectivity", type=int, choices=(6, 18, 26), default=26,
        help="voxel connectivity of a lesion: 6 (faces), 18 (+edges), 26 (+corners); "
        "default: 26",
    )
    p.add_argument(
        "--min-volume-mm3", type=non_negative, default=0.0, metavar="X",
        help="drop lesions smaller than X mm3 (default: 0, keep all)",
    )
    p.add_argument(
        "--threshold", type=float, default=0.5, metavar="T",
        help="foreground threshold for fractional float masks, value >= T (default: 0.5); "
        "float masks holding whole-number labels are rounded instead",
    )
    p.add_argument(
        "--instance-labels", action="store_true",
        help="the mask is already instance-labelled: each label value is one lesion",
    )
    p.add_argument(
        "--max-gib", type=positive, default=4.0, metavar="G",
        help="refuse a mask (or a QC image) whose reading and measuring would need an "
        "estimated peak of more than G GiB: about 4x its decoded size for uint8 storage, "
        "more for wider types and header extensions (default: 4). In `run`, local workers "
        "also share the memory available",
    )
    p.add_argument(
        "--mask-kind", choices=("auto", "labels", "probability"), default="auto",
        help="what the mask's values are: auto (integer labels, or a map in [0, 1]; more than "
        "256 distinct labels is refused as an image), labels (any number of labels, e.g. an "
        "instance mask) or probability (a map in [0, 1], thresholded); default: auto",
    )
    p.add_argument(
        "--allow-large-lesions", action="store_true",
        help="accept a lesion foreground above 1.5 L or a quarter of a head-sized field of view "
        "(refused by default: an image or a brain mask given as a lesion mask)",
    )
    p.add_argument(
        "--diameter-convention", choices=("corners", "centres"), default="corners",
        help="diameters between outer voxel corners (edge to edge, as calipers are placed; "
        "default) or between voxel centres",
    )
    p.add_argument(
        "--compartments", default=None, choices=tuple(CONVENTIONS), metavar="CONVENTION",
        help="label convention of a multi-label tumour mask, to report the volume of every "
        "compartment (enhancing, nonenhancing, edema, cavity) per lesion and timepoint: "
        f"{', '.join(CONVENTIONS)}. Under rano2-vol the enhancing compartment forms the "
        "lesions",
    )


def add_register_options(p: argparse.ArgumentParser, images: str) -> None:
    """Registration of follow-up images for lesion matching (compare, track, run)."""
    p.add_argument(
        "--register", choices=("none", "rigid", "affine", "auto"), default="auto",
        help=f"register each follow-up image to the baseline's before matching lesions (images: "
        f"{images}): none (scanner coordinates as given), rigid, affine, or auto (default: "
        "rigid whenever both images are given, used only when the misalignment found reaches "
        "--register-tolerance-mm). Masks are never resampled for "
        "measurement; a failed registration makes the correspondence 'unregistered'",
    )
    p.add_argument(
        "--register-to", choices=("baseline", "previous"), default="baseline",
        help="register each follow-up to the baseline (default) or to the previous timepoint, "
        "chained",
    )
    p.add_argument(
        "--register-mask", choices=("none", "lesions"), default="none",
        help="where the registration compares the images: the whole field of view (none, "
        "default) or within 20 mm of the baseline's lesions (lesions: when the anatomy away "
        "from them, or the field of view, changed between visits)",
    )
    p.add_argument(
        "--register-tolerance-mm", type=non_negative, default=2.0, metavar="MM",
        help="auto: the misalignment (largest displacement of the lesion centroids and image "
        "centre) below which scanner coordinates are kept (default: 2)",
    )


def non_negative(text: str) -> float:
    """A finite number >= 0 (argparse type)."""
    value = _number(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive(text: str) -> float:
    """A finite number > 0 (argparse type)."""
    value = _number(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def measure_options(args: argparse.Namespace) -> Any:
    from cnsvol.pipeline import MeasureOptions

    return MeasureOptions(
        labels=args.labels,
        threshold=args.threshold,
        connectivity=args.connectivity,
        min_volume_mm3=args.min_volume_mm3,
        instance_labels=args.instance_labels,
        max_bytes=int(args.max_gib * 1024**3),
        diameter_convention=args.diameter_convention,
        compartments=args.compartments,
        mask_kind=args.mask_kind,
        allow_large_lesions=args.allow_large_lesions,
        segments=args.segments,
        rasterisation=args.rasterisation,
        register=getattr(args, "register", "auto"),
        register_to=getattr(args, "register_to", "baseline"),
        register_tolerance_mm=getattr(args, "register_tolerance_mm", 2.0),
        register_mask=getattr(args, "register_mask", "none"),
    )
