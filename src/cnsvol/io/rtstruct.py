"""RTSTRUCT regions of interest rasterised onto the grid of their image series.

An RTSTRUCT holds closed planar polygons (LPS mm), not voxels; the voxels it means depend on
the grid and on a rasterisation rule, and tools differ (on the STS_002 PET GTV, polygon fill
gives 36% more volume than voxel centres). cnsvol states the rule it used:

``centre`` (default)
    a voxel belongs to the ROI when its centre lies inside the polygon; the polygons of one
    slice combine by the even-odd rule, so a contour inside another is a hole. Exact
    point-in-polygon on each slice (scikit-image).
``fill``
    polygon fill on vertices rounded to the nearest voxel, boundary included: the rule of
    OpenCV's ``fillPoly`` as rt-utils uses it; offered to reproduce such conversions.

Beside the voxel volume, each ROI's planar volume is reported: the sum over slices of its
polygon areas (holes subtracted) times the slice spacing, with no rasterisation, so the gap
the rule makes is visible.

Contours are placed on slices by position, not by the SOPInstanceUIDs they reference (those
are often stale after anonymisation or cropping): a contour belongs to the slice whose plane
it lies in, within :data:`PLANE_TOLERANCE` of the slice spacing. A contour that is not in the
plane of the slices, or lies off every slice, is refused naming the ROI and its position.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from .dicom_series import SeriesGrid

__all__ = ["PLANE_TOLERANCE", "RASTERISATIONS", "Roi", "check_rasterisation", "rasterise",
           "read_rois", "roi_listing"]

RASTERISATIONS = ("centre", "fill")


def check_rasterisation(rule: str) -> None:
    if rule not in RASTERISATIONS:
        raise ValueError(f"rasterisation must be one of {', '.join(RASTERISATIONS)}, got {rule!r}")

PLANE_TOLERANCE = 0.25
"""A contour is on a slice when it lies within this fraction of the slice spacing of its plane
(the STS_002 PET contours sit up to 0.04 mm off their 3.27 mm slices)."""


@dataclass(frozen=True)
class Roi:
    """One ROI of a structure set: its polygons in LPS mm."""

    number: int
    name: str
    kind: str  # RTROIInterpretedType (GTV, CTV, ORGAN...), or ""
    frame_of_reference_uid: str
    contours: tuple[np.ndarray, ...]  # each (n, 3) LPS mm


def read_rois(path: Path, ds: Any) -> list[Roi]:
    """The ROIs of the structure set ``ds`` (read from ``path``), with their closed planar
    contours; points and open contours are left out (they enclose no volume)."""
    contours: dict[int, list[np.ndarray]] = defaultdict(list)
    for item in getattr(ds, "ROIContourSequence", []):
        for c in getattr(item, "ContourSequence", []):
            if str(getattr(c, "ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                continue
            pts = np.asarray([float(v) for v in c.ContourData], dtype=np.float64)
            if pts.size < 9 or pts.size % 3:
                raise MaskError(path, f"ROI {item.ReferencedROINumber} has a contour of "
                                f"{pts.size} coordinates, not a polygon of 3 or more points",
                                "re-export the structure set")
            contours[int(item.ReferencedROINumber)].append(pts.reshape(-1, 3))
    frames = {int(r.ROINumber): str(getattr(r, "ReferencedFrameOfReferenceUID", ""))
              for r in getattr(ds, "StructureSetROISequence", [])}
    return [Roi(n, name, kind, frames[n], tuple(contours.get(n, ())))
            for n, name, kind in roi_listing(ds)]


def roi_listing(ds: Any) -> list[tuple[int, str, str]]:
    """``(ROINumber, ROIName, RTROIInterpretedType)`` of each ROI of the structure set ``ds``
    (its header is enough)."""
    kinds = {int(o.ReferencedROINumber): str(getattr(o, "RTROIInterpretedType", "") or "")
             for o in getattr(ds, "RTROIObservationsSequence", [])}
    return [(int(r.ROINumber), str(getattr(r, "ROIName", "") or f"ROI {int(r.ROINumber)}"),
             kinds.get(int(r.ROINumber), "")) for r in getattr(ds, "StructureSetROISequence", [])]


def _slice_polygons(path: Path, roi: Roi, grid: SeriesGrid) -> dict[int, list[np.ndarray]]:
    """The ROI's polygons in (column, row) voxel coordinates, by slice index."""
    inverse = np.linalg.inv(grid.affine_lps)
    n_slices = grid.shape[2]
    out: dict[int, list[np.ndarray]] = defaultdict(list)
    for pts in roi.contours:
        ijk = (inverse[:3, :3] @ pts.T).T + inverse[:3, 3]
        k = ijk[:, 2]
        spread = (k.max() - k.min()) * grid.slice_spacing_mm
        if spread > 2 * PLANE_TOLERANCE * grid.slice_spacing_mm:
            raise MaskError(path, f"a contour of ROI '{roi.name}' is not in the plane of the "
                            f"image slices (it spans {spread:.3f} mm across them)",
                            "give the image series the contours were drawn on")
        centre = float(k.mean())
        index = int(np.rint(centre))
        off = abs(centre - index) * grid.slice_spacing_mm
        z = pts.mean(axis=0)
        if not 0 <= index < n_slices or off > PLANE_TOLERANCE * grid.slice_spacing_mm:
            raise MaskError(path, f"a contour of ROI '{roi.name}' at LPS ({z[0]:.2f}, "
                            f"{z[1]:.2f}, {z[2]:.2f}) mm lies off every slice of the image "
                            f"series (nearest slice {min(max(index, 0), n_slices - 1)}, "
                            f"{_distance(centre, n_slices) * grid.slice_spacing_mm:.3f} mm "
                            f"away; tolerance {PLANE_TOLERANCE * grid.slice_spacing_mm:.3f} mm)",
                            "give the image series the structure set was drawn on")
        out[index].append(ijk[:, :2])
    return out


def _distance(k: float, n: int) -> float:
    return abs(k - min(max(round(k), 0), n - 1))


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _planar_area(polys: list[np.ndarray]) -> float:
    """Area of one slice's polygons in voxel units, a polygon inside an odd number of others
    being a hole (the even-odd rule)."""
    from skimage.measure import points_in_poly

    total = 0.0
    for n, poly in enumerate(polys):
        depth = sum(bool(points_in_poly(poly[:1], other)[0])
                    for m, other in enumerate(polys) if m != n)
        total += _area(poly) * (-1 if depth % 2 else 1)
    return total


def _fill(poly: np.ndarray, shape: tuple[int, int], rule: str) -> np.ndarray:
    """The voxels of one polygon on a (columns, rows) slice under ``rule``."""
    from skimage.draw import polygon, polygon_perimeter

    out = np.zeros(shape, dtype=bool)
    if rule == "centre":
        ii, jj = polygon(poly[:, 0], poly[:, 1], shape)
        out[ii, jj] = True
        return out
    rounded = np.rint(poly)
    ii, jj = polygon(rounded[:, 0], rounded[:, 1], shape)
    out[ii, jj] = True
    ii, jj = polygon_perimeter(rounded[:, 0], rounded[:, 1], shape, clip=False)
    keep = (ii >= 0) & (ii < shape[0]) & (jj >= 0) & (jj < shape[1])
    out[ii[keep], jj[keep]] = True
    return out


def rasterise(path: Path, roi: Roi, grid: SeriesGrid, rule: str = "centre"
              ) -> tuple[np.ndarray, float]:
    """(boolean ``[i, j, k]`` voxels of ``roi`` on ``grid`` under ``rule``, planar volume in
    mm3)."""
    check_rasterisation(rule)
    mask = np.zeros(grid.shape, dtype=bool)
    planar = 0.0
    pixel_area = float(np.linalg.norm(np.cross(grid.affine_lps[:3, 0], grid.affine_lps[:3, 1])))
    for k, polys in _slice_polygons(path, roi, grid).items():
        layer = np.zeros(grid.shape[:2], dtype=bool)
        for poly in polys:
            layer ^= _fill(poly, grid.shape[:2], rule)  # even-odd: a nested contour is a hole
        mask[:, :, k] = layer
        planar += _planar_area(polys) * pixel_area * grid.slice_spacing_mm
    return mask, planar


def _referenced_series(ds: Any) -> set[str]:
    """The SeriesInstanceUIDs the structure set says it was drawn on."""
    out = set()
    for fr in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        for st in getattr(fr, "RTReferencedStudySequence", []):
            for se in getattr(st, "RTReferencedSeriesSequence", []):
                out.add(str(getattr(se, "SeriesInstanceUID", "")))
    return out


def _referenced_sop_classes(ds: Any) -> set[str]:
    """The SOP classes of the images the structure set says its contours were drawn on."""
    out = set()
    for fr in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        for st in getattr(fr, "RTReferencedStudySequence", []):
            for se in getattr(st, "RTReferencedSeriesSequence", []):
                out.update(str(getattr(i, "ReferencedSOPClassUID", "")) for i in
                           getattr(se, "ContourImageSequence", []))
    for item in getattr(ds, "ROIContourSequence", []):
        for c in getattr(item, "ContourSequence", []):
            out.update(str(getattr(i, "ReferencedSOPClassUID", "")) for i in
                       getattr(c, "ContourImageSequence", []))
    return out - {""}


def _series_checks(ds: Any, grid: SeriesGrid) -> list[str]:
    """Notes when the series rasterised onto is not the one the structure set names, or holds
    images of another kind (an MR structure set on a PET series)."""
    from pydicom.uid import UID

    notes = []
    classes = _referenced_sop_classes(ds)
    if classes and grid.sop_class_uid and grid.sop_class_uid not in classes:
        drawn = ", ".join(sorted(UID(c).name for c in classes))
        notes.append(f"WARNING: the contours were drawn on {drawn} images, but rasterised onto "
                     f"a {UID(grid.sop_class_uid).name} series ({grid.modality}): check that "
                     "image_path is the series the structure set was drawn on")
    named = _referenced_series(ds) - {""}
    if named and grid.series_uid not in named:
        notes.append(f"the structure set names series {', '.join(sorted(named))}; rasterised "
                     f"onto series {grid.series_uid} (same frame of reference: contours placed "
                     "by position; voxel counts depend on the grid)")
    return notes


def _frame_of_reference(ds: Any, rois: list[Roi]) -> str:
    for fr in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        uid = str(getattr(fr, "FrameOfReferenceUID", ""))
        if uid:
            return uid
    return next((r.frame_of_reference_uid for r in rois if r.frame_of_reference_uid), "")


NOT_LESIONS = frozenset({
    "EXTERNAL", "PTV", "CTV", "TREATED_VOLUME", "IRRAD_VOLUME", "BOLUS", "AVOIDANCE", "ORGAN",
    "MARKER", "REGISTRATION", "ISOCENTER", "CONTRAST_AGENT", "CAVITY", "BRACHY_CHANNEL",
    "BRACHY_ACCESSORY", "BRACHY_SRC_APP", "BRACHY_CHNL_SHLD", "SUPPORT", "FIXATION",
    "DOSE_REGION", "CONTROL", "DOSE_MEASUREMENT", "ACQ_ISOCENTER",
})
"""RT ROI Interpreted Types (DICOM PS3.3 C.8.8.8) that are not a lesion: the body outline,
treatment margins, organs at risk, markers and devices."""


def lesion_rois(path: Path, listed: list[tuple[int, str, str]]
                ) -> tuple[list[tuple[int, str, str]], list[str]]:
    """The ROIs measured when none is chosen: those typed GTV; without any, those whose type
    is not one of :data:`NOT_LESIONS`. Returns them and a note naming the ROIs left out."""
    gtv = [r for r in listed if r[2].upper() == "GTV"]
    kept = gtv or [r for r in listed if r[2].upper() not in NOT_LESIONS]
    out = [r for r in listed if r not in kept]
    if not kept:
        raise MaskError(path, "none of its ROIs is a lesion by its RT ROI type ("
                        + "; ".join(f"{n} {name} ({kind})" for n, name, kind in listed) + ")",
                        "choose the lesion ROIs by name (--roi 'GTV*') or number")
    note = [] if not out else [
        "ROIs left out (not lesions by type" + (", the GTVs are measured" if gtv else "")
        + "): " + "; ".join(f"{n} {name}" + (f" ({kind})" if kind else "")
                            for n, name, kind in out) + "; choose them with --roi to measure them"]
    return kept, note


def find_reference(path: Path, ds: Any, frame: str) -> SeriesGrid:
    """The image series an RTSTRUCT was drawn on, looked for beside it: in its own folder,
    then in the folders next to that folder (and theirs), by FrameOfReferenceUID."""
    from .dicom_series import dicom_headers, grid_of, image_series

    here = path.parent
    places = [(here, False)] + [(p, True) for p in sorted(here.parent.iterdir())
                                if p.is_dir() and p != here]
    candidates: dict[str, tuple[Path, list[tuple[Path, Any]]]] = {}
    for folder, recursive in places:
        for uid, slices in image_series(dicom_headers(folder, recursive=recursive)).items():
            if frame and str(getattr(slices[0][1], "FrameOfReferenceUID", "")) != frame:
                continue
            candidates.setdefault(uid, (folder, []))[1].extend(slices)
        if candidates and folder == here:
            break
    if not candidates:
        raise MaskError(path, f"its image series (frame of reference {frame or 'not stated'}) "
                        f"is not beside it (looked in {here} and the folders next to it)",
                        "give the folder of the image series the structure set was drawn on "
                        "(image_path in the manifest, --image on the command line)")
    named = _referenced_series(ds) & set(candidates)
    if len(candidates) > 1 and len(named) != 1:
        listing = ", ".join(f"{uid} in {f}" for uid, (f, _) in sorted(candidates.items()))
        raise MaskError(path, f"{len(candidates)} image series share its frame of reference "
                        f"({listing})", "give the series it was drawn on (image_path, --image)")
    uid = next(iter(named)) if len(candidates) > 1 else next(iter(candidates))
    folder, slices = candidates[uid]
    return grid_of(folder, uid, slices)


def read_rtstruct(path: Path, head: Any, max_bytes: int, *,
                  selection: tuple[int, ...] | None, segments: tuple[str, ...] | None,
                  reference: Path | None, rasterisation: str) -> Any:
    """An RTSTRUCT's selected ROIs as a :class:`~cnsvol.io.dicom.DicomMask` on the grid of
    its image series (``reference``, a folder, or found beside it)."""
    from .segments import DicomMask, choose, combine
    from .dicom_series import series_grid
    from .files import check_size

    check_rasterisation(rasterisation)
    rois = read_rois(path, head)
    if not rois:
        raise MaskError(path, "an RT Structure Set with no ROI", "export the lesion contours")
    frame = _frame_of_reference(head, rois)
    grid = series_grid(reference) if reference is not None else find_reference(path, head, frame)
    if frame and grid.frame_of_reference_uid and grid.frame_of_reference_uid != frame:
        raise MaskError(path, f"drawn in frame of reference {frame}, but the image series in "
                        f"{grid.files[0].parent} is in {grid.frame_of_reference_uid}",
                        "give the image series the structure set was drawn on")
    check_size(path, grid.shape, 2, max_bytes)
    grid = replace(grid, notes=(*grid.notes, *_series_checks(head, grid)))
    listed = [(r.number, r.name, r.kind) for r in rois]
    left_out: list[str] = []
    if selection is None and segments is None:
        listed, left_out = lesion_rois(path, listed)
    wanted = choose(path, "ROI", listed, selection, segments)
    layers, planar = [], {}
    for roi in (r for r in rois if r.number in wanted):
        voxels, planar[roi.number] = rasterise(path, roi, grid, rasterisation)
        layers.append((roi.number, roi.name, roi.kind, voxels))
    labels, records, overlap, notes = combine(path, layers, grid.shape, grid.affine, "ROI")
    records = tuple(replace(r, planar_volume_mm3=planar[r.number]) for r in records)
    rule = {"centre": "voxel centre inside the polygon (even-odd)",
            "fill": "polygon fill on rounded vertices, boundary included"}[rasterisation]
    listing = ", ".join(f"{r.number} {r.name}" for r in rois)
    gap = "; ".join(f"{r.name} {r.volume_mm3:.2f} mm3 by voxels, {r.planar_volume_mm3:.2f} "
                    "planar" for r in records)
    what = " ".join(x for x in (grid.modality, f"'{grid.description}'" if grid.description
                                 else "") if x)
    sx, sy, sz = (float(v) for v in np.linalg.norm(grid.affine[:3, :3], axis=0))
    notes[:0] = [f"RTSTRUCT ROIs: {listing}", *left_out,
                 f"rasterised onto the {what + ' ' if what else ''}image series in "
                 f"{grid.files[0].parent} ({'x'.join(map(str, grid.shape))}, {sx:.3g} x "
                 f"{sy:.3g} x {sz:.3g} mm), rule: {rule}" + (f"; {gap}" if gap else ""),
                 *grid.notes]
    return DicomMask(labels, grid.affine, "dicom-rtstruct", tuple(notes), records, overlap, None,
                     tuple(r.number for r in rois))
