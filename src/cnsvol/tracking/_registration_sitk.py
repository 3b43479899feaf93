"""The SimpleITK side of :func:`cnsvol.tracking.registration.register` (see its module
docstring for the method): the pyramid, one optimisation per level, the metric evaluations and
the checks that decide whether the result is reliable; the ``.tfm`` file. (Images are read by
:mod:`cnsvol.io`, with the geometry of the masks.)"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CnsvolError

__all__ = ["LEVELS_MM", "MIN_NORMALISED_MI", "RegistrationError", "STABLE_MM",
           "WORSE_TOLERANCE", "run", "sitk_transform", "write_transform"]

LEVELS_MM = (8.0, 4.0, 2.0)
"""Voxel sizes of the pyramid levels, coarse to fine."""
MIN_NORMALISED_MI = 0.05
"""Mutual information after registration, as a fraction of the baseline image's own
information (its mutual information with itself), below which the images are taken to share
nothing (noise, a blank, the wrong image)."""
STABLE_MM = 2.0
"""Largest displacement a second pass may still find for the result to count as converged."""
WORSE_TOLERANCE = 0.02
"""The similarity after registration counts as worse than before when the metric is higher by
more than this fraction of it (sampling noise of the optimiser on images already aligned)."""
_BINS = 32
_SAMPLES = 12_000  # voxels sampled per iteration (all of a smaller level)
_EVALUATED = 200_000  # voxels of the similarity before and after (all, in a smaller image)
_SEED = 20260101
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


class RegistrationError(CnsvolError):
    """The registration could not be computed (reported on the result, never raised out)."""


def _sitk() -> Any:
    import SimpleITK as sitk

    return sitk


def _read(path: Path, max_bytes: int | None, what: str) -> Any:
    from ..io.itk import to_sitk
    from ..io.read import read_image

    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    data, affine = read_image(path, **kwargs)
    data = np.asarray(data)
    if data.ndim != 3:
        raise RegistrationError(f"the {what} image {path} is not 3D")
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, 0)
    if float(np.ptp(data)) == 0.0:
        raise RegistrationError(f"the {what} image {path} is constant (blank): nothing to "
                                "register")
    return to_sitk(data, affine)


def _pyramid(img: Any) -> list[Any]:
    """``img`` block-averaged to about each of :data:`LEVELS_MM`, per axis, coarse to fine."""
    sitk = _sitk()
    spacing = np.asarray(img.GetSpacing())
    out = []
    for level in LEVELS_MM:
        factors = [int(max(1, round(level / s))) for s in spacing]
        out.append(sitk.BinShrink(img, factors) if max(factors) > 1 else img)
    return out


def _mask_on(mask: Any, grid: Any) -> Any:
    sitk = _sitk()
    return sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)


def _method(threads: int, sampling: float | None, mask: Any = None) -> Any:
    sitk = _sitk()
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=_BINS)
    if sampling is None:
        r.SetMetricSamplingStrategy(r.NONE)
    else:
        r.SetMetricSamplingStrategy(r.RANDOM)
        r.SetMetricSamplingPercentage(sampling, _SEED)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetMetricUseFixedImageGradientFilter(False)  # gradients at the sampled points only
    r.SetMetricUseMovingImageGradientFilter(False)
    r.SetNumberOfThreads(threads)
    if mask is not None:
        r.SetMetricFixedMask(mask)
    return r


def _evaluate(fixed: Any, moving: Any, tx: Any, threads: int, mask: Any) -> float | None:
    """The metric on every voxel of ``fixed`` with ``tx`` (``None``: images do not overlap)."""
    n = int(np.prod(fixed.GetSize()))
    r = _method(threads, None if n <= _EVALUATED else _EVALUATED / n, mask)
    r.SetInitialTransform(tx, inPlace=False)
    try:
        return float(r.MetricEvaluate(fixed, moving))
    except RuntimeError:
        return None


def _optimise(fixed: Any, moving: Any, tx: Any, level_mm: float, threads: int, mask: Any,
              iterations: int = 100, min_step: float = 0.005) -> int:
    """Optimise ``tx`` in place at one level (first step ``level_mm``, stopping below
    ``min_step``: coarse levels stop coarser, the finest level refines); returns the
    iterations used."""
    n = int(np.prod(fixed.GetSize()))
    r = _method(threads, min(1.0, _SAMPLES / n), mask)
    r.SetOptimizerAsRegularStepGradientDescent(
        learningRate=level_mm, minStep=min_step, numberOfIterations=iterations,
        relaxationFactor=0.85, gradientMagnitudeTolerance=1e-8)
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetInitialTransform(tx, inPlace=True)
    r.Execute(fixed, moving)
    return int(r.GetOptimizerIteration())


def _start(fixed: Any, moving: Any, threads: int, mask: Any) -> Any:
    """The better (by the metric) of the scanner alignment and the centres of mass aligned,
    as a 3D Euler transform about the fixed image's centre."""
    sitk = _sitk()
    centre = fixed.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2.0 for n in fixed.GetSize()])
    identity = sitk.Euler3DTransform()
    identity.SetCenter(centre)
    try:
        moments = sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.MOMENTS))
    except RuntimeError:
        return identity
    scored = [(v, i, t) for i, t in enumerate((identity, moments))
              if (v := _evaluate(fixed, moving, t, threads, mask)) is not None]
    if not scored:
        raise RegistrationError("the images do not overlap in the scanner alignment or with "
                                "their centres of mass aligned")
    return min(scored, key=lambda s: (s[0], s[1]))[2]


def _matrix(tx: Any) -> np.ndarray:
    """4x4 LPS matrix of a SimpleITK matrix-offset transform (fixed point -> moving point)."""
    a = np.asarray(tx.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.asarray(tx.GetCenter(), dtype=np.float64)
    t = np.asarray(tx.GetTranslation(), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = a, t + c - a @ c
    return m


def _affine_from(rigid: Any) -> Any:
    sitk = _sitk()
    tx = sitk.AffineTransform(3)
    tx.SetCenter(rigid.GetCenter())
    tx.SetMatrix(rigid.GetMatrix())
    tx.SetTranslation(rigid.GetTranslation())
    return tx


def _copy(tx: Any) -> Any:
    sitk = _sitk()
    return (sitk.AffineTransform(tx) if tx.GetName() == "AffineTransform"
            else sitk.Euler3DTransform(tx))


@dataclass
class _Levels:
    fixed: list[Any]
    moving: list[Any]
    masks: list[Any]


def _levels(fixed_path: Path, moving_path: Path, mask_path: Any,
            max_bytes: int | None) -> _Levels:
    fixed = _pyramid(_read(fixed_path, max_bytes, "baseline"))
    moving = _pyramid(_read(moving_path, max_bytes, "follow-up"))
    masks: list[Any] = [None] * len(fixed)
    if mask_path is not None:
        from ..io.itk import to_sitk
        from ..io.read import read_image

        kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
        data, affine = (mask_path if isinstance(mask_path, tuple)  # (array, RAS+ affine)
                        else read_image(Path(mask_path), **kwargs))
        mask = _sitk().Cast(to_sitk(np.asarray(data) > 0, affine), _sitk().sitkUInt8)
        masks = [_mask_on(mask, f) for f in fixed]
        if not any(_sitk().GetArrayViewFromImage(m).any() for m in masks):
            where = "given" if isinstance(mask_path, tuple) else str(mask_path)
            raise RegistrationError(f"the fixed mask ({where}) covers none of the baseline "
                                    "image")
    return _Levels(fixed, moving, masks)


def _displacement(m_lps_a: np.ndarray, m_lps_b: np.ndarray, probes_lps: np.ndarray) -> float:
    """Largest distance between the images of the probe points under two LPS transforms."""
    h = np.c_[probes_lps, np.ones(len(probes_lps))]
    return float(np.linalg.norm((h @ m_lps_a.T - h @ m_lps_b.T)[:, :3], axis=1).max())


def run(fixed_path: Path, moving_path: Path, mode: str, mask_path: Any, points: Any,
        max_bytes: int | None, threads: int, early_mm: float | None = None) -> dict[str, Any]:
    """The fields of a :class:`~cnsvol.tracking.registration.Registration` (see
    :func:`~cnsvol.tracking.registration.register`), every SimpleITK filter on ``threads``
    threads (with one, the result is the same to the bit on every run: sums are not split)."""
    sitk = _sitk()
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        return _run(fixed_path, moving_path, mode, mask_path, points, max_bytes, threads,
                    early_mm)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def _run(fixed_path: Path, moving_path: Path, mode: str, mask_path: Any, points: Any,
         max_bytes: int | None, threads: int, early_mm: float | None) -> dict[str, Any]:
    start = time.perf_counter()
    lv = _levels(fixed_path, moving_path, mask_path, max_bytes)
    centre = lv.fixed[-1].TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2.0 for n in lv.fixed[-1].GetSize()])
    probes_lps = np.vstack([np.asarray(centre)] + [
        _LPS[:3, :3] @ np.asarray(p, dtype=np.float64) for p in (points or [])])
    try:
        tx, check, iterations = _optimised(lv, mode, threads, early_mm, probes_lps)
    except RuntimeError as exc:
        raise RegistrationError(f"the optimisation failed ({str(exc).strip().splitlines()[-1]})"
                                ) from None
    at = -1 if check is not None else -2  # an early stop is judged at the level it reached
    f, m, k = lv.fixed[at], lv.moving[at], lv.masks[at]
    identity = _sitk().Euler3DTransform()
    before = _evaluate(f, m, identity, threads, k)
    after = _evaluate(f, m, tx, threads, k)
    own = _evaluate(f, f, identity, threads, k)
    m_lps = _matrix(tx)
    residual = None if check is None else _displacement(_matrix(check), m_lps, probes_lps)
    reason = _unreliable(before, after, own, residual or 0.0) or _implausible(m_lps)
    return dict(
        mode=mode, matrix_ras=_LPS @ np.linalg.inv(m_lps) @ _LPS, reliable=not reason,
        reason=reason, converged=residual is not None and residual <= STABLE_MM,
        similarity_before=before, similarity_after=after,
        misalignment_before_mm=_displacement(m_lps, np.eye(4), probes_lps),
        misalignment_after_mm=residual, iterations=iterations,
        seconds=time.perf_counter() - start, fixed=str(fixed_path), moving=str(moving_path),
        notes=() if check is not None else (
            f"stopped at the {LEVELS_MM[-2]:g} mm level: the scans are aligned within "
            f"{early_mm:g} mm there",),
    )


def _optimised(lv: _Levels, mode: str, threads: int, early_mm: float | None = None,
               probes_lps: np.ndarray | None = None) -> tuple[Any, Any, int]:
    """The transform optimised level by level (rigid, then affine when asked), and a copy
    optimised once more at the level before the last (the check of convergence); with
    iterations. ``early_mm``: stop before the finest level (no check: ``None``) when the
    coarser levels find the scans aligned within it (a rigid registration only)."""
    tx = _start(lv.fixed[0], lv.moving[0], threads, lv.masks[0])
    last = len(LEVELS_MM) - 1
    iterations = 0
    for i, (f, m, k, level) in enumerate(zip(lv.fixed, lv.moving, lv.masks, LEVELS_MM)):
        if (i == last and early_mm is not None and mode == "rigid" and probes_lps is not None
                and _displacement(_matrix(tx), np.eye(4), probes_lps) < early_mm):
            return tx, None, iterations
        iterations += _optimise(f, m, tx, level / 2, threads, k,
                                min_step=0.005 if i == last else level / 100)
    if mode == "affine":  # refined at the finest level only (12 parameters from the rigid)
        tx = _affine_from(tx)
        iterations += _optimise(lv.fixed[-1], lv.moving[-1], tx, LEVELS_MM[-1], threads,
                                lv.masks[-1])
    check = _copy(tx)  # a second, shorter pass from the result, at the level before the last
    iterations += _optimise(lv.fixed[-2], lv.moving[-2], check, LEVELS_MM[-2] / 2, threads,
                            lv.masks[-2], iterations=20, min_step=0.02)
    return tx, check, iterations


def sitk_transform(matrix_ras: np.ndarray) -> Any:
    """``matrix_ras`` (follow-up RAS world -> baseline RAS world) as SimpleITK uses it: an
    affine transform in LPS, baseline point -> follow-up point."""
    m = _LPS @ np.linalg.inv(matrix_ras) @ _LPS
    tx = _sitk().AffineTransform(3)
    tx.SetMatrix(tuple(float(v) for v in m[:3, :3].ravel()))
    tx.SetTranslation(tuple(float(v) for v in m[:3, 3]))
    return tx


def write_transform(matrix_ras: np.ndarray, path: Path) -> None:
    """Write :func:`sitk_transform` of ``matrix_ras`` as an ITK ``.tfm``, atomically."""
    import tempfile

    from ..atomic import atomic_write_bytes

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "transform.tfm"
        _sitk().WriteTransform(sitk_transform(matrix_ras), str(scratch))
        atomic_write_bytes(path, scratch.read_bytes())


SCALE_RANGE = (0.8, 1.25)
"""An affine result whose scalings leave this range is implausible for one head scanned twice."""


def _implausible(m_lps: np.ndarray) -> str:
    scales = np.linalg.svd(m_lps[:3, :3], compute_uv=False)
    if scales.min() < SCALE_RANGE[0] or scales.max() > SCALE_RANGE[1]:
        return (f"implausible scaling for one head scanned twice (scales "
                f"{', '.join(f'{v:.3f}' for v in scales)}; outside {SCALE_RANGE[0]:g}-"
                f"{SCALE_RANGE[1]:g})")
    return ""


def _unreliable(before: float | None, after: float | None, own: float | None,
                residual: float) -> str:
    """Why the result may not be used for lesion correspondence ("" when it may)."""
    if after is None:
        return "the registered images do not overlap"
    if before is not None and after > before + WORSE_TOLERANCE * abs(before):
        return (f"the similarity got worse (Mattes metric {before:.4f} before, {after:.4f} "
                "after)")
    if own is not None and own < 0 and -after < MIN_NORMALISED_MI * -own:
        return (f"the images share almost no information after registration (mutual "
                f"information {-after:.4f}, {-after / -own:.1%} of the baseline's own "
                f"{-own:.4f}; below {MIN_NORMALISED_MI:.0%}: noise, a blank or the wrong image?)")
    if residual > STABLE_MM:
        return (f"did not converge: a second pass from the result still moves it by "
                f"{residual:.2f} mm (more than {STABLE_MM:g} mm)")
    return ""
