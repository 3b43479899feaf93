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

__all__ = ["DicomMask", "choose", "combine", "listing", "parse_segments", "selected"]

_MAX_LABEL = np.iinfo(np.uint16).max


def parse_segments(spec: str | int | list[Any] | tuple[Any, ...] | None
                   ) -> tuple[str, ...] | None:
    """``"GTV*,3"`` (or a sequence) -> ``("GTV*", "3")``: numbers and case-insensitive shell
    patterns on the segment/ROI name or its coded property."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    out = tuple(s.strip() for s in items if s.strip())
    if not out:
        raise ValueError(f"empty segment selection {spec!r}: give numbers or name patterns, "
                         "e.g. --segments 'GTV*' or --segments 1,3")
    return out


def _matches(pattern: str, number: int, name: str, prop: str) -> bool:
    pattern = pattern.lower()
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


def selected(available: list[tuple[int, str, str]], selection: tuple[int, ...] | None,
             segments: tuple[str, ...] | None) -> list[int]:
    """The numbers of the segments (or ROIs) ``(number, name, property)`` selected by label
    numbers ``selection`` and patterns ``segments`` (``None``: no condition)."""
    return [n for n, name, prop in available
            if (selection is None or n in selection)
            and (segments is None or any(_matches(p, n, name, prop) for p in segments))]


def listing(available: list[tuple[int, str, str]]) -> str:
    """``"1 GTV_1; 2 Brain (Organ)"``: segments (ROIs) as an error message names them."""
    return "; ".join(f"{n} {name}" + (f" ({prop})" if prop else "")
                     for n, name, prop in available) or "none"


def choose(path: Path, what: str, available: list[tuple[int, str, str]],
           selection: tuple[int, ...] | None, segments: tuple[str, ...] | None) -> list[int]:
    """:func:`selected`, refusing a pattern selection that matches none of the file's
    segments. (A segment is never assumed gone: names are typed per scan, so a missing one is
    more often renamed than resolved; a resolved lesion is an empty segment or ROI.)"""
    chosen = selected(available, selection, segments)
    if segments is not None and not chosen:
        among = ("" if selection is None else
                 f" among the --labels {', '.join(map(str, selection))} (both selections apply)")
        raise MaskError(path, f"no {what} matches {', '.join(segments)}{among} (its {what}s: "
                        f"{listing(available)})", f"choose {what}s by number or name pattern "
                        "(--segments or --roi, e.g. 'GTV*'; patterns match without case); a "
                        f"lesion that resolved is an empty {what} of its name, not a missing one")
    return chosen


def combine(path: Path, layers: list[tuple[int, str, str, np.ndarray]],
            shape: tuple[int, ...], affine: np.ndarray, what: str
            ) -> tuple[np.ndarray, tuple[Segment, ...], int, list[str]]:
    """One C-ordered label array of ``shape`` from per-segment voxel layers ``(number, name,
    property, voxels)`` (boolean arrays of ``shape``; ``affine`` maps their indices to RAS+):
    each segment measured on its own voxels, a shared voxel labelled with the lower number."""
    labels = np.zeros(int(np.prod(shape)) if len(layers) > 1 else 0, dtype=np.uint16)
    voxel = float(abs(np.linalg.det(affine[:3, :3])))
    records, hits = [], []
    for number, name, prop, on in sorted(layers, key=lambda t: -t[0]):
        if number > _MAX_LABEL or number < 1:
            raise MaskError(path, f"{what} number {number} cannot be a label (1..{_MAX_LABEL})",
                            "renumber the segments")
        idx = np.flatnonzero(on)  # C order of ``shape``
        if len(layers) > 1:
            labels[idx] = number  # the lowest number written last
            hits.append(idx)
        centroid = None
        if len(idx):
            mean = np.array([float(a.mean()) for a in np.unravel_index(idx, shape)])
            c = affine[:3, :3] @ mean + affine[:3, 3]
            centroid = (float(c[0]), float(c[1]), float(c[2]))
        records.append(Segment(number, name, int(len(idx)), len(idx) * voxel, centroid, prop))
    if len(layers) == 1:  # one segment: its voxels are the label array, nothing is shared
        on, number = layers[0][3], layers[0][0]
        out = np.asarray(on, dtype=np.uint8 if number <= 255 else np.uint16).reshape(shape)
        return (out if number == 1 else out * out.dtype.type(number)), tuple(records), 0, []
    union, counts = np.unique(np.concatenate(hits), return_counts=True) if hits else ([], [])
    shared = int(np.count_nonzero(np.asarray(counts) > 1))
    notes = []
    if shared:
        notes.append(f"{shared:,} voxels lie in more than one selected {what}: each {what}'s "
                     f"own volume counts them, the lesions and totals (their union, "
                     f"{len(union):,} voxels) count them once; a shared voxel carries the lower "
                     f"{what} number")
    return (labels.reshape(shape), tuple(sorted(records, key=lambda s: s.number)), shared,
            notes)
