"""What registration (or its absence) does to one subject's evaluation.

* A timepoint whose registration failed, and every later one, has an **unregistered** lesion
  correspondence: each of its correspondences keeps the lesions the scanner-coordinate matching
  put together (as a hint only) but has status ``unregistered``; per-lesion change is not
  evaluated; the category comes from the total volume (:mod:`cnsvol.response.series`).
* Without any registration, a follow-up whose lesions all fail to overlap the previous scan's
  while some lie close (centroids within :data:`HINT_DISTANCE_MM`) gets a note: the scans may not
  be co-registered, and images would let cnsvol register them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..tracking.matching import Matching
from ..tracking.status import MatchedBy, TrackStatus

__all__ = ["HINT_DISTANCE_MM", "misalignment_hints", "registration_cells", "unregistered",
           "used_frame"]

HINT_DISTANCE_MM = 40.0


def unregistered(m: Matching) -> Matching:
    """``m`` with every correspondence's status ``unregistered``."""
    return replace(m, correspondences=tuple(replace(c, status=TrackStatus.UNREGISTERED)
                                            for c in m.correspondences))


def used_frame(reg: Any) -> np.ndarray | None:
    """The matrix that put a timepoint in the baseline's world, ``None`` when scanner
    coordinates were used."""
    if reg is None or not reg.reliable or (not reg.applied and reg.frame_ras is None):
        return None
    return reg.frame


def misalignment_hints(matchings: list[Matching], sets: list[Any], regs: list[Any]
                       ) -> dict[int, str]:
    """Timepoint -> a note when none of its lesions overlaps one of the previous scan's, while
    two of them (one each side) lie within :data:`HINT_DISTANCE_MM` (a sign of scans not
    co-registered), for timepoints matched in scanner coordinates; and, for those that could
    not be registered, why."""
    out = {t: f"not registered: {r.reason}" for t, r in enumerate(regs)
           if r is not None and r.skipped}
    images = any(r is not None for r in regs)
    for t, m in enumerate(matchings, start=1):
        if regs[t] is not None and not regs[t].skipped:
            continue
        if any(c.matched_by == MatchedBy.OVERLAP for c in m.correspondences):
            continue
        a = [les.centroid_ras_mm for les in sets[t - 1].lesions]
        b = [les.centroid_ras_mm for les in sets[t].lesions]
        if not a or not b:
            continue
        gap = float(np.linalg.norm(np.asarray(a)[:, None, :] - np.asarray(b)[None, :, :],
                                   axis=2).min())
        if gap <= HINT_DISTANCE_MM:
            fix = ("give this scan's image too" if images else
                   "give the images (image_path) so that cnsvol registers them")
            hint = (f"no lesion overlaps one of the previous scan's, though two lie "
                    f"{gap:.1f} mm apart: the scans may not be co-registered; {fix}")
            out[t] = f"{out[t]}; {hint}" if t in out else hint
    return out


def registration_cells(reg: Any, broken: bool) -> dict[str, Any]:
    """The ``registration`` and ``registration_detail`` cells of a follow-up's row, and the
    matrix that put it in the baseline's world (``registration_matrix_ras``) when one did."""
    frame = used_frame(reg)
    cells = _cells(reg, broken)
    if frame is not None and not broken:
        cells["registration_matrix_ras"] = tuple(float(v) for v in frame.ravel())
    return cells


def _cells(reg: Any, broken: bool) -> dict[str, Any]:
    if reg is not None and reg.skipped:
        return {"registration": "unregistered" if broken else "no image",
                "registration_detail": reg.summary()}
    if reg is None:
        return {"registration": "unregistered" if broken else "", "registration_detail": (
            "after a failed registration: lesion correspondence unreliable" if broken else "")}
    if not reg.reliable:
        return {"registration": "failed", "registration_detail": reg.summary()}
    if broken:
        return {"registration": "unregistered", "registration_detail": (
            f"{reg.summary()}; after a failed registration: lesion correspondence unreliable")}
    return {"registration": "registered" if reg.applied else "aligned",
            "registration_detail": reg.summary()}
