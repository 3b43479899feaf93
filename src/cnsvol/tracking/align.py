"""Which follow-ups of a subject are registered, to what, and the frame each lesion set is
matched in.

Modes (``register``): ``none`` (scanner coordinates, as given); ``rigid`` / ``affine`` (every
follow-up with an image is registered); ``auto`` (default): every follow-up with an image is
registered rigidly (a shared voxel grid does not make two visits aligned: the head moves
inside it), and the transform is used only when the misalignment it finds reaches the
tolerance (2 mm): below, the scans were aligned already and are left as they are (recorded,
``applied=False``). Only the same image file at both timepoints is not registered.

A follow-up without an image (or whose baseline has none), when images were given, is matched
in scanner coordinates and says so (:func:`~cnsvol.tracking.registration.skipped`). An image
that cannot be read is an error naming it.

Each follow-up is registered to the baseline (``register_to="baseline"``) or to the previous
timepoint (``"previous"``, chained: the transforms compose into the baseline's world).

A registration that fails (:attr:`Registration.reliable` false), and every later timepoint
(tracks pass through it), make the lesion correspondence unreliable: :func:`unreliable` says
where and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..lesions.lesion import LesionSet
from .registration import TOLERANCE_MM, Registration, check_mode, register, skipped

__all__ = ["LESION_MARGIN_MM", "REGISTER_MASKS", "REGISTER_TO", "align_series", "frames",
           "in_frame", "lesion_region", "unreliable"]

REGISTER_TO = ("baseline", "previous")


def check_register_to(value: str) -> None:
    if value not in REGISTER_TO:
        raise ValueError(f"register_to must be one of {', '.join(REGISTER_TO)}, got {value!r}")


REGISTER_MASKS = ("none", "lesions")


def check_register_mask(value: str) -> None:
    if value not in REGISTER_MASKS:
        raise ValueError(f"register_mask must be one of {', '.join(REGISTER_MASKS)}, got "
                         f"{value!r}")


def align_series(
    images: Sequence[str | Path | None] | None,
    sets: Sequence[LesionSet],
    *,
    mode: str = "auto",
    to: str = "baseline",
    tolerance_mm: float = TOLERANCE_MM,
    max_bytes: int | None = None,
    mask: str = "none",
) -> tuple[Registration | None, ...]:
    """Per timepoint, the registration of its image (``None``: the baseline, not registered,
    or no image to register with). The registration's ``frame_ras`` maps the timepoint's world
    into the baseline's. ``mask="lesions"``: the metric is computed around the baseline's
    lesions only (:func:`lesion_region`; e.g. when the field of view or the anatomy away from
    them changed)."""
    check_mode(mode)
    check_register_to(to)
    check_register_mask(mask)
    n = len(sets)
    out: list[Registration | None] = [None] * n
    if mode == "none" or images is None:
        return tuple(out)
    for t in range(1, n):
        ref = 0 if to == "baseline" else t - 1
        if images[t] is None or images[ref] is None:
            which = "this scan" if images[t] is None else (
                "the baseline" if ref == 0 else "the previous scan")
            out[t] = skipped(mode, f"no image for {which}: matched in scanner coordinates "
                                   "(give its image_path to register it)")
            continue
        if mode == "auto" and Path(images[t]).resolve() == Path(images[ref]).resolve():
            continue  # the same image: nothing moved
        reg = _register(images[ref], images[t], sets[ref], "rigid" if mode == "auto" else mode,
                        max_bytes, mask == "lesions",
                        tolerance_mm / 4 if mode == "auto" else None)
        if mode == "auto" and reg.reliable and (reg.misalignment_before_mm or 0.0) < tolerance_mm:
            reg = replace(reg, applied=False, reason=(
                f"aligned within {tolerance_mm:g} mm: scanner coordinates kept"))
        previous = out[ref] if ref > 0 else None
        if previous is not None and previous.reliable:
            reg = replace(reg, frame_ras=previous.frame @ (reg.matrix_ras if reg.used
                                                          else np.eye(4)))
        out[t] = reg
    return tuple(out)


def _register(fixed: str | Path, moving: str | Path, fixed_set: LesionSet, mode: str,
              max_bytes: int | None, around_lesions: bool = False,
              early_mm: float | None = None) -> Registration:
    """:func:`register` with the baseline's lesion centroids as probe points; an image that
    cannot be read is an error (:class:`~cnsvol.errors.MaskError`, naming it), not a failed
    registration; ``around_lesions``: the metric computed within :data:`LESION_MARGIN_MM` of
    the baseline's lesions."""
    points = [les.centroid_ras_mm for les in fixed_set.lesions]
    mask = lesion_region(fixed_set) if around_lesions else None
    return register(fixed, moving, mode=mode, points=points, max_bytes=max_bytes,
                    fixed_mask=mask, early_mm=early_mm)


LESION_MARGIN_MM = 20.0
"""``register_mask="lesions"``: how far around the baseline's lesions the metric is computed."""


def lesion_region(ls: LesionSet) -> tuple[np.ndarray, np.ndarray] | None:
    """The baseline's lesions dilated by :data:`LESION_MARGIN_MM`, as ``(mask, affine)`` on a
    grid of about 2 mm (block maxima of the lesion voxels); ``None`` without lesions."""
    from scipy.ndimage import distance_transform_edt

    if not ls.lesions:
        return None
    spacing = np.linalg.norm(ls.mask.affine[:3, :3], axis=0)
    f = np.maximum(1, np.floor(2.0 / spacing)).astype(int)
    lab = ls.label_image > 0
    crop = tuple(slice(0, (n // k) * k) for n, k in zip(lab.shape, f))
    small = lab[crop].reshape(lab[crop].shape[0] // f[0], f[0], lab[crop].shape[1] // f[1],
                              f[1], lab[crop].shape[2] // f[2], f[2]).any(axis=(1, 3, 5))
    near = distance_transform_edt(~small, sampling=spacing * f) <= LESION_MARGIN_MM
    affine = ls.mask.affine.copy()
    affine[:3, :3] = ls.mask.affine[:3, :3] * f
    affine[:3, 3] = ls.mask.affine[:3, :3] @ ((f - 1) / 2.0) + ls.mask.affine[:3, 3]
    return near.astype(np.uint8), affine


def unreliable(registrations: Sequence[Registration | None], labels: Sequence[str]
               ) -> dict[int, str]:
    """Timepoint index -> why its lesion correspondence is unreliable: its registration
    failed, or an earlier one did (tracks pass through it)."""
    out: dict[int, str] = {}
    first = None
    for t, reg in enumerate(registrations):
        if first is not None:
            out[t] = f"after the failed registration at {labels[first]}"
        elif reg is not None and not reg.reliable:
            first = t
            out[t] = f"registration failed: {reg.reason}"
    return out


def frames(registrations: Sequence[Registration | None]) -> list[np.ndarray | None]:
    """Per timepoint, the matrix into the baseline's world, ``None`` for scanner coordinates."""
    return [reg.frame if reg is not None and reg.reliable else None for reg in registrations]


def in_frame(ls: LesionSet, matrix: np.ndarray | None) -> LesionSet:
    """``ls`` seen in another world (``matrix``: 4x4 RAS+ mm), for matching only: its mask's
    affine and its lesions' centroids moved; voxels, volumes and ids unchanged."""
    if matrix is None:
        return ls
    mask = replace(ls.mask, affine=matrix @ ls.mask.affine)
    lesions = tuple(replace(les, centroid_ras_mm=tuple(
        float(v) for v in matrix[:3, :3] @ np.asarray(les.centroid_ras_mm) + matrix[:3, 3]))
        for les in ls.lesions)
    return replace(ls, mask=mask, lesions=lesions)
