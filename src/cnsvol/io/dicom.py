"""DICOM SEG masks through highdicom (the ``dicom`` extra).

A file is recognised as DICOM by its content (the ``DICM`` marker after the 128-byte
preamble), whatever its name. A SEG's geometry comes from its per-frame functional groups, as
highdicom's volume API assembles them (frame positions, orientation, pixel spacing, the spacing
between frame positions; never SliceThickness); frames that are not equally spaced or not
parallel are refused by it and reported as a :class:`~cnsvol.errors.MaskError`. LPS is
converted to RAS+ once, here. Each segment becomes the label equal to its SegmentNumber. A
voxel in two selected segments cannot be one label: such a SEG is refused, naming the
overlaps, unless ``--labels`` selects segments that do not overlap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from .files import check_size

__all__ = ["is_dicom", "read_dicom_seg"]

_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_dicom(path: Path) -> bool:
    """Whether ``path`` holds a DICOM Part 10 file (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _highdicom(path: Path) -> Any:
    try:
        import highdicom
    except ImportError:
        raise MaskError(path, "a DICOM file, and reading DICOM needs highdicom",
                        "install the dicom extra: pip install 'cnsvol[dicom]'") from None
    return highdicom


def read_dicom_seg(path: Path, max_bytes: int,
                   selection: tuple[int, ...] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """(labels ``[i, j, k]`` = frame, row, column; RAS+ affine; format; notes) of a DICOM SEG.
    The labels are the SegmentNumbers; with ``selection``, only those segments are read."""
    hd = _highdicom(path)
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on a broken file
        raise MaskError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})",
                        "re-export the segmentation") from None
    if str(getattr(ds, "SOPClassUID", "")) != _SEG_SOP_CLASS:
        raise MaskError(path, f"a DICOM file of SOP class {getattr(ds, 'SOPClassUID', '?')}, "
                        "not a Segmentation", "give the DICOM SEG file of the lesion mask")
    n_frames = int(getattr(ds, "NumberOfFrames", 1))
    check_size(path, (int(ds.Rows), int(ds.Columns), n_frames, len(ds.SegmentSequence)), 1,
               max_bytes)
    try:
        seg = hd.seg.Segmentation.from_dataset(ds)
        numbers = [int(n) for n in seg.segment_numbers]
        wanted = numbers if selection is None else [n for n in numbers if n in selection]
        # none selected: the grid all the same (of the first segment), every voxel background
        volume = seg.get_volume(segment_numbers=wanted or numbers[:1], combine_segments=False)
    except MaskError:
        raise
    except Exception as exc:  # noqa: BLE001 - highdicom's refusals: spacing, orientation...
        raise MaskError(path, f"its frames do not form one regular 3D grid "
                        f"({type(exc).__name__}: {exc})",
                        "re-export the SEG with equally spaced, parallel frames") from None
    stack = np.asarray(volume.array)
    stack = stack >= 0.5 if seg.SegmentationType == "FRACTIONAL" else stack > 0
    stack = stack[..., :len(wanted)]
    overlap = int(np.count_nonzero(stack.sum(axis=-1) > 1))
    if overlap:
        raise MaskError(path, f"{overlap:,} voxels lie in more than one of the segments "
                        f"{', '.join(map(str, wanted))}, which one label per voxel cannot hold",
                        "select segments that do not overlap with --labels (segment numbers)")
    labels = np.zeros(stack.shape[:3], dtype=np.uint16)
    for index, number in enumerate(wanted):
        labels[stack[..., index]] = number
    names = ", ".join(f"{n} {seg.get_segment_description(n).SegmentLabel!s}" for n in numbers)
    affine = _LPS_TO_RAS @ np.asarray(volume.affine, dtype=np.float64)
    return labels, affine, "dicom-seg", [f"DICOM SEG segments: {names}"]
