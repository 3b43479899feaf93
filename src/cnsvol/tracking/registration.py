"""Registration of a follow-up scan to the baseline, used for lesion correspondence only.

A follow-up MRI is a new visit: the head sits elsewhere in the scanner and is turned, so lesions
matched in scanner (world) coordinates miss each other. :func:`register` estimates the rigid (or
affine) transform between the two images with SimpleITK:

* **images**: read as every cnsvol image is (:func:`cnsvol.read_image`: RAS+ geometry, the same
  affines as the masks), cast to float32;
* **pyramid**: each image is block-averaged (``BinShrink``) to about :data:`LEVELS_MM` voxel
  sizes, per axis (a thick-slice axis is not shrunk), coarse to fine; the registration never
  runs at full resolution, which is what keeps it fast and its memory small;
* **metric**: Mattes mutual information (32 bins; works across sequences), on a fixed random
  sample of the voxels (the seed is fixed, so a run is reproducible), with the baseline's optional
  mask (e.g. a brain mask) restricting where it is computed;
* **start**: the better (by the metric) of the scanner alignment and the alignment of the two
  images' centres of mass (moments);
* **optimiser**: regular-step gradient descent on a 3D Euler (rigid) transform, scaled by
  physical shift; ``affine`` refines that rigid result with a 12-parameter affine transform.

**How well it worked** is measured, not assumed. The similarity (the Mattes metric, lower is
better, as SimpleITK reports it) is evaluated on every voxel of the finest level with the
scanner alignment (``similarity_before``) and with the result (``similarity_after``); the
*misalignment* is the largest displacement the transform applies to the probe points (the
baseline image's centre and any lesion centroids given): ``misalignment_before_mm`` is what the
registration found, ``misalignment_after_mm`` what a second, independent pass at the finest
level still finds from the result. The result is **unreliable** (``reliable=False``, with the
reason) when the optimisation fails, an image is constant, the similarity after is worse than
before (by more than :data:`WORSE_TOLERANCE`), the images share almost no information (normalised mutual information after below
:data:`MIN_NORMALISED_MI`: noise, a blank or a wrong image), or the second pass moves the
probe points by more than :data:`STABLE_MM`. An unreliable registration is never used to match
lesions: :mod:`cnsvol.response` marks the correspondence ``unregistered`` instead.

The transform is reported as ``matrix_ras``: a 4x4 matrix taking a point of the follow-up
scan's world (RAS+ mm) to the corresponding point of the baseline's. It moves lesion centroids
and voxel coordinates for matching; masks are never resampled for measurement. The ``.tfm`` file
(:meth:`Registration.write`) holds the same transform in ITK's convention (LPS, baseline point
-> follow-up point: the transform that resamples the follow-up image onto the baseline grid),
readable by SimpleITK, 3D Slicer and ANTs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._registration_sitk import (
    LEVELS_MM, MIN_NORMALISED_MI, STABLE_MM, WORSE_TOLERANCE, RegistrationError, run,
    sitk_transform, write_transform,
)

__all__ = [
    "LEVELS_MM", "MIN_NORMALISED_MI", "MODES", "Registration", "RegistrationError",
    "STABLE_MM", "TOLERANCE_MM", "WORSE_TOLERANCE", "check_mode", "failed", "register",
    "rotation_angle_deg", "skipped",
]

MODES = ("none", "rigid", "affine", "auto")
TOLERANCE_MM = 2.0
"""``auto``: the misalignment below which scans are taken as aligned (scanner coordinates)."""


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"register must be one of {', '.join(MODES)}, got {mode!r}")


@dataclass(frozen=True)
class Registration:
    """A follow-up image registered to a baseline image (see the module docstring).

    Attributes:
        mode: ``"rigid"`` or ``"affine"``.
        matrix_ras: 4x4, follow-up world (RAS+ mm) -> baseline world; the identity when the
            registration failed.
        reliable: whether it may be used for lesion correspondence; ``reason`` says why not.
        converged: the optimisation finished and a second pass agrees (``misalignment_after_mm``
            <= :data:`STABLE_MM`).
        similarity_before, similarity_after: Mattes mutual information metric (lower is better)
            with the scanner alignment and with the result; ``None`` where it could not be
            evaluated (no overlap).
        misalignment_before_mm: largest displacement the transform applies to the probe points
            (the estimated misalignment of the scans as acquired).
        misalignment_after_mm: largest displacement a second pass still finds (``None`` when
            the registration stopped early: ``early_mm`` of :func:`register`).
        applied: used for matching (``auto`` leaves scans aligned within the tolerance as they
            are, recorded but not applied).
        frame_ras: with ``register_to="previous"``, the composed transform into the baseline's
            world (``None`` when registered to the baseline itself).
    """

    mode: str
    matrix_ras: np.ndarray
    reliable: bool
    reason: str = ""
    converged: bool = False
    similarity_before: float | None = None
    similarity_after: float | None = None
    misalignment_before_mm: float | None = None
    misalignment_after_mm: float | None = None
    applied: bool = True
    iterations: int = 0
    seconds: float = 0.0
    fixed: str = ""
    moving: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    frame_ras: np.ndarray | None = None
    skipped: bool = False  # no registration computed (an image missing): ``reason`` says why

    @property
    def frame(self) -> np.ndarray:
        """Follow-up world -> baseline world as used for matching: ``frame_ras`` when the
        registration is chained through earlier ones, else ``matrix_ras`` (the identity when
        not applied)."""
        if self.frame_ras is not None:
            return self.frame_ras
        return self.matrix_ras if self.applied else np.eye(4)

    @property
    def rotation_deg(self) -> float:
        """The angle of the rotation (of the rotation part, for an affine), degrees."""
        return rotation_angle_deg(self.matrix_ras)

    @property
    def translation_mm(self) -> tuple[float, float, float]:
        """The translation of ``matrix_ras`` (RAS+ mm): where the follow-up world origin goes."""
        t = self.matrix_ras[:3, 3]
        return (float(t[0]), float(t[1]), float(t[2]))

    @property
    def used(self) -> bool:
        """Whether lesion correspondence goes through this transform."""
        return self.reliable and self.applied

    def map_points(self, points: Any) -> np.ndarray:
        """Follow-up world points ``(n, 3)`` (RAS+ mm) -> baseline world points."""
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return p @ self.matrix_ras[:3, :3].T + self.matrix_ras[:3, 3]

    def sitk_transform(self) -> Any:
        """The transform as SimpleITK uses it: LPS, baseline point -> follow-up point."""
        return sitk_transform(self.matrix_ras)

    def write(self, path: str | Path) -> Path:
        """Write the ``.tfm`` (ITK text format, see the module docstring), atomically."""
        path = Path(path)
        write_transform(self.matrix_ras, path)
        return path

    def summary(self) -> str:
        """One line for tables and notes."""
        if not self.reliable:
            return f"{self.mode} registration failed: {self.reason}"
        if self.skipped:
            return f"not registered: {self.reason}"
        check = ("a coarse estimate: " + self.notes[0] if self.misalignment_after_mm is None
                 and self.notes else f"a second pass: {_mm(self.misalignment_after_mm)}")
        head = (f"{self.mode} registration{' to the previous scan' if self.frame_ras is not None else ''}: "
                f"rotation {self.rotation_deg:.2f} deg, lesions and image centre moved by up to "
                f"{_mm(self.misalignment_before_mm)} ({check})")
        return head if self.applied else f"{head} (not applied: {self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "reliable": self.reliable, "applied": self.applied,
            "skipped": self.skipped,
            "reason": self.reason, "converged": self.converged,
            "rotation_deg": self.rotation_deg, "translation_mm": list(self.translation_mm),
            "matrix_ras": self.matrix_ras.tolist(),
            "similarity_before": self.similarity_before,
            "similarity_after": self.similarity_after,
            "misalignment_before_mm": self.misalignment_before_mm,
            "misalignment_after_mm": self.misalignment_after_mm,
            "iterations": self.iterations, "seconds": self.seconds,
            "fixed": self.fixed, "moving": self.moving, "notes": list(self.notes),
        }


def _mm(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} mm"


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """The rotation angle of the 3x3 part of ``matrix`` (its nearest rotation, for an
    affine), degrees."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64)[:3, :3])
    r = u @ vt
    cos = (np.trace(r) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def skipped(mode: str, reason: str) -> Registration:
    """A follow-up that could not be registered because an image is missing: scanner
    coordinates, said so."""
    return Registration(mode, np.eye(4), reliable=True, reason=reason, applied=False,
                        skipped=True)


def failed(mode: str, reason: str, fixed: str = "", moving: str = "",
           seconds: float = 0.0) -> Registration:
    """An unreliable registration (identity transform) with its reason."""
    return Registration(mode, np.eye(4), reliable=False, reason=reason, applied=False,
                        fixed=fixed, moving=moving, seconds=seconds)


def register(
    fixed: str | Path,
    moving: str | Path,
    *,
    mode: str = "rigid",
    fixed_mask: str | Path | tuple[np.ndarray, np.ndarray] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    max_bytes: int | None = None,
    threads: int = 1,
    early_mm: float | None = None,
) -> Registration:
    """Register the ``moving`` (follow-up) image to the ``fixed`` (baseline) image.

    Args:
        fixed, moving: image files (NIfTI, NRRD, MetaImage) or DICOM series folders.
        mode: ``"rigid"`` (6 parameters) or ``"affine"`` (12, refining the rigid result).
        fixed_mask: a mask file on the baseline's world (e.g. a brain mask), or ``(array,
            RAS+ affine)``: the metric is
            computed where it is non-zero.
        points: baseline world points (RAS+ mm; e.g. lesion centroids) at which the
            misalignment is measured, beside the baseline image's centre.
        max_bytes: refuse an image whose data would need more memory (as for masks).
        threads: SimpleITK threads (1: reproducible to the bit).
        early_mm: stop before the finest level when the coarser ones find the scans aligned
            within this (``auto`` uses a quarter of its tolerance: such scans keep their
            scanner coordinates anyway); the result then says so in its notes.

    Returns a :class:`Registration`; a registration that could not be computed is returned
    unreliable with the reason, never raised (a bad image file still raises its
    :class:`~cnsvol.errors.MaskError`).
    """
    if mode not in ("rigid", "affine"):
        raise ValueError(f"mode must be rigid or affine, got {mode!r}")
    start = time.perf_counter()
    names = (str(fixed), str(moving))
    try:
        return Registration(**run(Path(fixed), Path(moving), mode, fixed_mask, points,
                                  max_bytes, threads, early_mm))
    except RegistrationError as exc:
        return failed(mode, str(exc), *names, seconds=time.perf_counter() - start)
