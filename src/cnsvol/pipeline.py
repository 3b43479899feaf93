"""The pipeline for one subject, from mask files to response: read (:mod:`cnsvol.io`), find and
measure lesions (:mod:`cnsvol.lesions`), then track and classify (:mod:`cnsvol.response`).

* :func:`measure`: one mask -> :class:`~cnsvol.lesions.LesionSet`;
* :func:`evaluate_series`: N >= 2 timepoints -> :class:`~cnsvol.response.SeriesResult`;
* :func:`compare`: a follow-up vs its baseline -> :class:`~cnsvol.response.CompareResult`.

:class:`MeasureOptions` holds how masks are read, measured and matched; one set of options
applies to every timepoint of a subject (and every subject of a cohort run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io.files import DEFAULT_MAX_BYTES
from .io.mask import DEFAULT_THRESHOLD, Mask
from .io.read import read_mask
from .lesions.find import DEFAULT_CONNECTIVITY, DEFAULT_MEASURABLE_MM, find_lesions
from .lesions.lesion import LesionSet
from .response.clinical import ClinicalStatus
from .response.criteria import Criteria, get_criteria
from .response.evaluation import CompareResult, SeriesResult, evaluate, series_inputs

__all__ = ["MaskSource", "MeasureOptions", "compare", "evaluate_series", "measure"]

MaskSource = str | Path | Mask | LesionSet
"""A mask given as a file, an in-memory :class:`Mask`, or already measured."""


@dataclass(frozen=True)
class MeasureOptions:
    """How masks become lesion sets and are matched (shared by every timepoint).

    ``labels``, ``threshold``, ``max_bytes``: reading (:func:`cnsvol.read_mask`);
    ``connectivity``, ``min_volume_mm3``, ``instance_labels``: finding lesions
    (:func:`cnsvol.find_lesions`); ``max_centroid_distance_mm``, ``centroid_fallback``:
    matching (:func:`cnsvol.match`).
    """

    labels: str | tuple[int, ...] | None = None
    threshold: float = DEFAULT_THRESHOLD
    connectivity: int = DEFAULT_CONNECTIVITY
    min_volume_mm3: float = 0.0
    instance_labels: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    max_centroid_distance_mm: float | None = None
    centroid_fallback: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Every option, as JSON-ready values (tuples as lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def measure(
    source: MaskSource, options: MeasureOptions | None = None,
    measurable_min_diameter_mm: float = DEFAULT_MEASURABLE_MM,
) -> LesionSet:
    """Read (if needed) and measure one mask; a :class:`LesionSet` is returned as is."""
    opts = options or MeasureOptions()
    if isinstance(source, LesionSet):
        return source
    mask = source if isinstance(source, Mask) else read_mask(
        source, labels=opts.labels, threshold=opts.threshold, max_bytes=opts.max_bytes
    )
    return find_lesions(
        mask,
        connectivity=opts.connectivity,
        min_volume_mm3=opts.min_volume_mm3,
        instance_labels=opts.instance_labels,
        measurable_min_diameter_mm=measurable_min_diameter_mm,
    )


def evaluate_series(
    masks: Sequence[MaskSource],
    days: Sequence[float | None] | None = None,
    *,
    timepoints: Sequence[str] | None = None,
    clinical: Sequence[ClinicalStatus | dict[str, Any] | None] | None = None,
    criteria: str | Path | Criteria = "lin2009",
    options: MeasureOptions | None = None,
) -> SeriesResult:
    """Evaluate one subject's series: baseline first, then follow-ups in time order.

    ``masks``: a mask (path, :class:`Mask` or :class:`LesionSet`) per timepoint, read and
    measured with ``options``; ``days``, ``timepoints``, ``clinical`` and ``criteria`` as for
    :func:`cnsvol.response.evaluate`, which evaluates the measured series.
    """
    series_inputs(len(masks), days, timepoints, clinical)  # checked before any file is read
    crit = get_criteria(criteria)
    opts = options or MeasureOptions()
    sets = [measure(m, opts, crit.measurable_min_diameter_mm) for m in masks]
    return evaluate(
        sets, days, timepoints=timepoints, clinical=clinical, criteria=crit,
        max_centroid_distance_mm=opts.max_centroid_distance_mm,
        centroid_fallback=opts.centroid_fallback,
    )


def compare(
    baseline: MaskSource,
    followup: MaskSource,
    *,
    criteria: str | Path | Criteria = "lin2009",
    options: MeasureOptions | None = None,
    days: float | None = None,
) -> CompareResult:
    """Compare a follow-up with its baseline: target and total volumes on each native grid,
    change, the >=20% flag, tracks and the category under ``criteria``.

    ``days`` is the follow-up's day from baseline, if known.
    """
    series = evaluate_series(
        [baseline, followup], [0.0, days] if days is not None else None,
        timepoints=["baseline", "followup"], criteria=criteria, options=options,
    )
    return CompareResult(series)
