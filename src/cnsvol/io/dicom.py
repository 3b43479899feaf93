"""DICOM masks: SEG through highdicom, RTSTRUCT rasterised onto its image series (the ``dicom``
extra).

A file is recognised as DICOM by its content (the ``DICM`` marker after the 128-byte
preamble), whatever its name; a folder given as a mask must hold exactly one SEG or RTSTRUCT.

* **SEG**: the geometry comes from the per-frame functional groups, as highdicom's volume API
  assembles them (frame positions, orientation, pixel spacing, the spacing between frame
  positions; never SliceThickness). Frames that are not equally spaced or not parallel are
  refused by it and reported as a :class:`~cnsvol.errors.MaskError`; frames a SEG leaves out
  (empty ones, which the standard allows) are background. A FRACTIONAL SEG is thresholded like
  any probability map (``value >= threshold``).
* **RTSTRUCT**: :mod:`cnsvol.io.rtstruct` (grid of the referenced image series, rule stated).

Each segment (or ROI) becomes the label equal to its SegmentNumber (ROINumber) and is measured
on its own voxels (:class:`~cnsvol.io.mask.Segment`), so a voxel two segments share counts in
both. The lesion region is the union of the selected segments; a shared voxel is labelled with
the lower segment number, and the overlap is stated in the mask's notes. LPS is converted to
RAS+ once, here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from .dicom_series import LPS_TO_RAS, read_dataset
from .files import check_size, first_line, is_dicom
from .segments import DicomMask, choose, combine

__all__ = ["dicom_kind", "is_dicom", "mask_file_in", "read_dicom_mask", "segment_listing"]

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def dicom_kind(ds: Any) -> str:
    """``"seg"``, ``"rtstruct"`` or ``"other"``, from the SOP class."""
    sop = str(getattr(ds, "SOPClassUID", ""))
    return {SEG_SOP_CLASS: "seg", RTSTRUCT_SOP_CLASS: "rtstruct"}.get(sop, "other")


def mask_file_in(folder: Path) -> Path:
    """The one DICOM SEG or RTSTRUCT file in ``folder`` (not its subfolders)."""
    found, others = [], []
    for p in sorted(folder.iterdir()):
        if p.is_file() and is_dicom(p):
            ds = read_dataset(p, pixels=False)
            if dicom_kind(ds) == "other":
                others.append(ds)
            else:
                found.append(p)
    if not found and others:
        modalities = ", ".join(sorted({str(getattr(d, "Modality", "?")) for d in others}))
        raise MaskError(folder, f"is a folder of {len(others)} DICOM file(s) of modality "
                        f"{modalities} (an image series?), not a SEG or RTSTRUCT",
                        "give the segmentation as the mask (check that mask_path and "
                        "image_path are not swapped)")
    if not found:
        subs = sorted(p.name for p in folder.iterdir() if p.is_dir())
        where = (f" (its subfolders: {', '.join(subs[:8])}{' ...' if len(subs) > 8 else ''})"
                 if subs else "")
        raise MaskError(folder, "is a directory, not a mask file, and holds no DICOM SEG or "
                        f"RTSTRUCT file{where}", "give the mask file, or the folder holding its "
                        "SEG or RTSTRUCT")
    if len(found) > 1:
        raise MaskError(folder, f"a folder holding {len(found)} DICOM SEG/RTSTRUCT files ("
                        f"{', '.join(p.name for p in found[:5])})", "give one of them")
    return found[0]


def segment_listing(path: Path) -> list[tuple[int, str, str]] | None:
    """``(number, name, coded property or ROI type)`` of each segment (ROI) of a DICOM SEG or
    RTSTRUCT ``path`` (a file, or a folder holding one), from its header alone; ``None`` when
    ``path`` is not one."""
    if path.is_dir():
        path = mask_file_in(path)
    if not is_dicom(path):
        return None
    ds = read_dataset(path, pixels=False)
    kind = dicom_kind(ds)
    if kind == "rtstruct":
        from .rtstruct import roi_listing

        return roi_listing(ds)
    if kind != "seg":
        return None
    out = []
    for item in getattr(ds, "SegmentSequence", []):
        codes = getattr(item, "SegmentedPropertyTypeCodeSequence", None)
        prop = str(getattr(codes[0], "CodeMeaning", "") or "") if codes else ""
        out.append((int(item.SegmentNumber), str(getattr(item, "SegmentLabel", "")), prop))
    return out


def _highdicom(path: Path) -> Any:
    try:
        import highdicom
    except ImportError:
        raise MaskError(path, "a DICOM file, and reading DICOM needs highdicom",
                        "install the dicom extra: pip install 'cnsvol[dicom]'") from None
    return highdicom


def read_dicom_mask(path: Path, max_bytes: int, *, selection: tuple[int, ...] | None = None,
                    segments: tuple[str, ...] | None = None, reference: Path | None = None,
                    rasterisation: str = "centre", threshold: float = 0.5) -> DicomMask:
    """Read a DICOM SEG or RTSTRUCT (``path``, a file) as labelled voxels in RAS+ mm.
    ``selection`` (numbers) and ``segments`` (:func:`parse_segments`) choose segments;
    ``reference`` is the image series folder of an RTSTRUCT."""
    _highdicom(path)
    head = read_dataset(path)
    kind = dicom_kind(head)
    if kind == "other":
        raise MaskError(path, f"a DICOM file of SOP class {getattr(head, 'SOPClassUID', '?')} "
                        f"(modality {getattr(head, 'Modality', '?')}), not a Segmentation or "
                        "an RT Structure Set", "give the DICOM SEG or RTSTRUCT of the lesion mask")
    if kind == "rtstruct":
        from .rtstruct import read_rtstruct

        return read_rtstruct(path, head, max_bytes, selection=selection, segments=segments,
                             reference=reference, rasterisation=rasterisation)
    return _read_seg(path, head, max_bytes, selection, segments, threshold)


def _read_seg(path: Path, head: Any, max_bytes: int, selection: tuple[int, ...] | None,
              segments: tuple[str, ...] | None, threshold: float) -> DicomMask:
    hd = _highdicom(path)
    n_segments = len(getattr(head, "SegmentSequence", [])) or 1
    check_size(path, (int(head.Rows), int(head.Columns), _slices(head), n_segments), 1,
               max_bytes, reader_copies=2)  # highdicom's volume + its thresholded copy
    _check_pixel_length(path, head)
    try:
        seg = hd.seg.Segmentation.from_dataset(head, copy=False)
        available = []
        for n in seg.segment_numbers:
            desc = seg.get_segment_description(int(n))
            prop = desc.segmented_property_type
            available.append((int(n), str(desc.SegmentLabel),
                              str(getattr(prop, "meaning", "") or "")))
        wanted = choose(path, "segment", available, selection, segments)
        # none selected: the grid all the same (of the first segment), every voxel background
        volume = seg.get_volume(segment_numbers=wanted or [available[0][0]],
                                combine_segments=False)
    except MaskError:
        raise
    except Exception as exc:  # noqa: BLE001 - highdicom's refusals: spacing, orientation...
        raise MaskError(path, f"its frames do not form one regular 3D grid "
                        f"({type(exc).__name__}: {first_line(exc)}){_frame_gaps(head)}",
                        "re-export the SEG with equally spaced, parallel frames") from None
    fractional = str(seg.SegmentationType) == "FRACTIONAL"
    stack = np.asarray(volume.array)  # (frame, row, column, segment), C order
    affine = LPS_TO_RAS @ np.asarray(volume.affine, dtype=np.float64)
    names = {n: (name, prop) for n, name, prop in available}
    layers = [(n, *names[n], (stack[..., i] >= threshold) if fractional else stack[..., i] > 0)
              for i, n in enumerate(wanted)]
    labels, records, overlap, notes = combine(path, layers, stack.shape[:3], affine, "segment")
    labels, affine = _series_order(labels, affine)
    listing = ", ".join(f"{n} {name}" for n, name, _ in available)
    notes.insert(0, f"DICOM SEG segments: {listing}")
    if fractional:
        notes.append(f"FRACTIONAL SEG: a voxel is in a segment when its value >= {threshold:g}")
    return DicomMask(labels, affine, "dicom-seg", tuple(notes), records, overlap,
                     threshold if fractional else None, tuple(n for n, _, _ in available))


def _along_normal(ds: Any) -> np.ndarray:
    """The distinct frame positions of a SEG along its frame normal (mm), sorted."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    return np.unique(np.round([
        float(np.dot(normal, [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]))
        for f in ds.PerFrameFunctionalGroupsSequence], 4))


def _slices(ds: Any) -> int:
    """How many slices the SEG's volume spans (frames it leaves out included), for the memory
    estimate; its frame count when the tags cannot say."""
    frames = int(getattr(ds, "NumberOfFrames", 1))
    try:
        along = _along_normal(ds)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return frames
    if len(along) < 2:
        return max(len(along), 1)
    step = float(np.diff(along).min())
    return max(int(round((along[-1] - along[0]) / step)) + 1, len(along)) if step > 0 else frames


def _frame_gaps(ds: Any) -> str:
    """``"; frame positions N mm apart ..."``: the spacing the frames really have, for the
    message of a SEG refused for its geometry (empty when the tags cannot say)."""
    try:
        along = _along_normal(ds)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return ""
    if len(along) < 2:
        return ""
    gaps = np.diff(along)
    return (f"; its {len(along)} frame positions lie {gaps.min():.4g} to {gaps.max():.4g} mm "
            "apart along the frame normal")


def _series_order(stack: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """highdicom's (frame, row, column) array order as ``[i, j, k]`` = (column, row, frame),
    frames in the direction of the row x column normal: the array order of the image series
    the SEG was made on (and of SimpleITK's reading of it). A view: no voxel is copied."""
    stack = stack.transpose(2, 1, 0)
    affine = affine[:, [2, 1, 0, 3]]
    normal = np.cross(affine[:3, 0], affine[:3, 1])
    if float(np.dot(normal, affine[:3, 2])) < 0:  # k against the normal: frames reversed
        affine = affine.copy()
        affine[:3, 3] += affine[:3, 2] * (stack.shape[2] - 1)
        affine[:3, 2] *= -1
        stack = stack[:, :, ::-1]
    return stack, affine


def _check_pixel_length(path: Path, ds: Any) -> None:
    """An uncompressed SEG whose pixel data is shorter than its frames need is truncated."""
    if "PixelData" not in ds:
        raise MaskError(path, "truncated or incomplete: it ends before its pixel data",
                        "re-export or re-copy the file")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or syntax.is_compressed:
        return
    bits = int(getattr(ds, "BitsAllocated", 1))
    n_frames = int(getattr(ds, "NumberOfFrames", 1))
    need = -(-int(ds.Rows) * int(ds.Columns) * n_frames * bits // 8)
    have = len(ds.PixelData)
    if have < need:
        raise MaskError(path, f"truncated: its pixel data ends after {have:,} of the {need:,} "
                        f"bytes its {n_frames} frames of {ds.Rows}x{ds.Columns} need",
                        "re-export or re-copy the file")
