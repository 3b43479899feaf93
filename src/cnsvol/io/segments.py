"""Segments of DICOM masks: choosing them by number, name or coded property, and combining
their voxel layers into one label array, each segment measured on its own voxels."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from .mask import Segment

__all__ = ["DicomMask", "choose", "combine", "parse_segments"]

_MAX_LABEL = np.iinfo(np.uint16).max


def parse_segments(spec: str | int | list[Any] | tuple[Any, ...] | None
                   ) -> tuple[str, ...] | None:
    """``"GTV*,3"`` (or a sequence) -> ``("gtv*", "3")``: numbers and case-insensitive shell
    patterns on the segment/ROI name or its coded property."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    out = tuple(s.strip().lower() for s in items if s.strip())
    if not out:
        raise ValueError(f"empty segment selection {spec!r}: give numbers or name patterns, "
                         "e.g. --segments 'GTV*' or --segments 1,3")
    return out


def _matches(pattern: str, number: int, name: str, prop: str) -> bool:
    if pattern.isdigit():
        return int(pattern) == number
    return fnmatch.fnmatchcase(name.lower(), pattern) or bool(
        prop and fnmatch.fnmatchcase(prop.lower(), pattern))


@dataclass(frozen=True)
class DicomMask:
    """What a DICOM mask read gives :func:`cnsvol.io.read_mask`."""

    labels: np.ndarray  # uint16 [i, j, k]
    affine: np.ndarray  # RAS+
    source_format: str  # "dicom-seg" or "dicom-rtstruct"
    notes: tuple[str, ...]
    segments: tuple[Segment, ...]
    overlap_voxels: int
    threshold: float | None  # for a FRACTIONAL SEG
    available: tuple[int, ...]  # every segment (ROI) number in the file


def choose(path: Path, what: str, available: list[tuple[int, str, str]],
           selection: tuple[int, ...] | None, segments: tuple[str, ...] | None) -> list[int]:
    """The numbers of the segments (or ROIs) ``(number, name, property)`` selected."""
    chosen = [n for n, name, prop in available
              if (selection is None or n in selection)
              and (segments is None or any(_matches(p, n, name, prop) for p in segments))]
    if segments is not None and not chosen:
        listing = "; ".join(f"{n} {name}" + (f" ({prop})" if prop else "")
                            for n, name, prop in available) or "none"
        raise MaskError(path, f"no {what} matches {', '.join(segments)} (its {what}s: "
                        f"{listing})", f"choose {what}s by number or name pattern, e.g. "
                        "--segments 'GTV*'")
    return chosen


def combine(path: Path, layers: list[tuple[int, str, str, np.ndarray]],
            shape: tuple[int, ...], affine: np.ndarray, what: str
            ) -> tuple[np.ndarray, tuple[Segment, ...], int, list[str]]:
    """One label array of ``shape`` from per-segment voxel layers ``(number, name, property,
    voxels)``: each segment measured on its own, shared voxels labelled with the lower
    number."""
    labels = np.zeros(shape, dtype=np.uint16)
    count = np.zeros(shape, dtype=np.uint8)
    voxel = float(abs(np.linalg.det(affine[:3, :3])))
    records = []
    for number, name, prop, on in sorted(layers, key=lambda t: -t[0]):
        if number > _MAX_LABEL or number < 1:
            raise MaskError(path, f"{what} number {number} cannot be a label (1..{_MAX_LABEL})",
                            "renumber the segments")
        labels[on] = number  # the lowest number written last
        count += on
        idx = np.argwhere(on)
        centroid = None
        if len(idx):
            c = affine @ np.append(idx.mean(axis=0), 1.0)
            centroid = (float(c[0]), float(c[1]), float(c[2]))
        records.append(Segment(number, name, int(len(idx)), len(idx) * voxel, centroid,
                               prop))
    shared = int(np.count_nonzero(count > 1))
    notes = []
    if shared:
        notes.append(f"{shared:,} voxels lie in more than one selected {what}: each {what} is "
                     f"measured on its own voxels; the lesion region is their union "
                     f"({int(np.count_nonzero(count)):,} voxels), a shared voxel labelled with "
                     f"the lower {what} number")
    return labels, tuple(sorted(records, key=lambda s: s.number)), shared, notes
