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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .io.files import DEFAULT_MAX_BYTES
from .io.labelsets import parse_labels
from .errors import MaskError
from .io.mask import DEFAULT_THRESHOLD, Mask, check_mask_kind, select_labels
from .io.read import read_mask
from .io.rtstruct import check_rasterisation
from .lesions.compartments import check_labels, get_convention, with_compartments
from .lesions.find import DEFAULT_CONNECTIVITY, DiameterConvention, find_lesions
from .lesions.lesion import LesionSet, with_segment_names
from .response.clinical import ClinicalStatus
from .response.criteria import Criteria, get_criteria
from .response.evaluation import CompareResult, SeriesResult, evaluate, series_inputs
from .tracking.align import align_series, check_register_mask, check_register_to
from .tracking.registration import TOLERANCE_MM, check_mode

__all__ = ["MaskSource", "MeasureOptions", "compare", "evaluate_series", "measure"]

MaskSource = str | Path | Mask | LesionSet
"""A mask given as a file, an in-memory :class:`Mask`, or already measured."""


@dataclass(frozen=True)
class MeasureOptions:
    """How masks become lesion sets and are matched (shared by every timepoint).

    ``labels``, ``threshold``, ``max_bytes``, ``mask_kind``, ``allow_large_lesions``: reading
    and the plausibility checks (:func:`cnsvol.read_mask`); ``segments``, ``rasterisation``:
    the segments (ROIs) of DICOM SEG and RTSTRUCT masks, and an RTSTRUCT's rasterisation rule;
    ``connectivity``, ``min_volume_mm3``, ``instance_labels``, ``diameter_convention``:
    finding and measuring lesions (:func:`cnsvol.find_lesions`); ``compartments``: the label
    convention of a multi-label tumour mask (:mod:`cnsvol.lesions.compartments`: ``brats2021``,
    ``brats2023``, ``brats-mets``, ``lumiere``), whose compartment volumes are then reported
    per lesion and per timepoint; ``max_centroid_distance_mm``, ``centroid_fallback``:
    matching (:func:`cnsvol.match`); ``register`` (``none``, ``rigid``, ``affine``, ``auto``),
    ``register_to`` (``baseline``, ``previous``), ``register_tolerance_mm``, ``register_mask``
    (``none``, ``lesions``): registration of the follow-up images for matching
    (:mod:`cnsvol.tracking.align`).
    """

    labels: str | tuple[int, ...] | None = None
    threshold: float = DEFAULT_THRESHOLD
    connectivity: int = DEFAULT_CONNECTIVITY
    min_volume_mm3: float = 0.0
    instance_labels: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    max_centroid_distance_mm: float | None = None
    centroid_fallback: bool = True
    diameter_convention: DiameterConvention = "corners"
    compartments: str | None = None
    mask_kind: str = "auto"
    allow_large_lesions: bool = False
    segments: str | None = None
    rasterisation: str = "centre"
    register: str = "auto"
    register_to: str = "baseline"
    register_tolerance_mm: float = TOLERANCE_MM
    register_mask: str = "none"

    def __post_init__(self) -> None:
        if self.diameter_convention not in ("corners", "centres"):
            raise ValueError("diameter_convention must be 'corners' or 'centres', got "
                             f"{self.diameter_convention!r}")
        if self.compartments is not None:
            object.__setattr__(self, "compartments", get_convention(self.compartments).name)
        check_mask_kind(self.mask_kind)
        check_rasterisation(self.rasterisation)
        check_mode(self.register)
        check_register_to(self.register_to)
        check_register_mask(self.register_mask)
        if not self.register_tolerance_mm >= 0:
            raise ValueError("register_tolerance_mm must be >= 0, got "
                             f"{self.register_tolerance_mm!r}")

    def to_dict(self) -> dict[str, Any]:
        """Every option, as JSON-ready values (tuples as lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def measure(
    source: MaskSource, options: MeasureOptions | None = None,
    criteria: str | Path | Criteria = "lin2009", *, reference: str | Path | None = None,
) -> LesionSet:
    """Read (if needed) and measure one mask; a :class:`LesionSet` is returned as is.
    ``reference``: the image series folder an RTSTRUCT mask was drawn on (else looked for
    beside it); other masks ignore it.

    ``criteria`` gives the measurability rule (longest and perpendicular diameter, slices) and,
    with ``options.compartments``, the compartments that form the lesions (the labels selected,
    else the criteria's ``response_compartments``, else :data:`TUMOUR_CORE`). Criteria with
    response compartments refuse a multi-label mask given without a convention.
    """
    opts = options or MeasureOptions()
    crit = get_criteria(criteria)
    if isinstance(source, LesionSet):
        return source
    convention = get_convention(opts.compartments) if opts.compartments else None
    read_labels = None if convention else opts.labels
    mask = source if isinstance(source, Mask) else read_mask(
        source, labels=read_labels, threshold=opts.threshold, max_bytes=opts.max_bytes,
        mask_kind="labels" if opts.instance_labels and opts.mask_kind == "auto" else opts.mask_kind,
        allow_large_lesions=opts.allow_large_lesions, segments=opts.segments,
        reference=reference, rasterisation=opts.rasterisation,
    )
    if mask.overlap_voxels and (convention is not None or opts.instance_labels):
        raise MaskError(mask.path, f"{mask.overlap_voxels:,} voxels lie in more than one of "
                        "its segments, and " + ("a compartment convention" if convention
                                                else "--instance-labels")
                        + " needs one label per voxel",
                        "select segments that do not overlap (--segments)")
    if isinstance(source, Mask) and read_labels is not None:  # a file applies them when read
        sel = parse_labels(read_labels)
        mask = replace(mask, data=select_labels(mask.data, sel), labels=sel)
    if (convention is None and opts.labels is None and not opts.instance_labels
            and crit.response_compartments):
        _refuse_unlabelled_compartments(mask, crit)
    full = None
    if convention is not None:
        full = mask.data
        check_labels(full, convention, mask.path)
        region = lesion_labels(opts, crit, convention)
        if region is not None:
            mask = replace(mask, data=select_labels(full, region), labels=region)
    lesions = find_lesions(
        mask,
        connectivity=opts.connectivity,
        min_volume_mm3=opts.min_volume_mm3,
        instance_labels=opts.instance_labels,
        measurable_min_diameter_mm=crit.measurable_min_diameter_mm,
        measurable_min_perpendicular_mm=crit.measurable_min_perpendicular_mm,
        measurable_min_slices=crit.measurable_min_slices,
        diameter_convention=opts.diameter_convention,
    )
    if convention is not None and full is not None:
        lesions = with_compartments(lesions, full, convention)
    return with_segment_names(lesions)


def _refuse_unlabelled_compartments(mask: Mask, crit: Criteria) -> None:
    """Criteria that measure compartments (``rano2-vol``: enhancing) on a multi-label mask
    without a convention would measure every label: refused, with the fix."""
    present = np.unique(mask.data)
    present = present[present > 0]
    if len(present) > 1:
        raise MaskError(
            mask.path,
            f"{crit.name} measures the {' and '.join(crit.response_compartments or ())} "
            f"compartment but the mask holds {len(present)} labels "
            f"({', '.join(map(str, present.tolist()))}) and no compartment convention was given",
            "name the mask's label convention (--compartments brats2021, brats2023, brats-mets, "
            "lumiere, ...; MeasureOptions(compartments=...)), or select the labels to measure "
            "with --labels",
        )


TUMOUR_CORE = ("enhancing", "nonenhancing")
"""The compartments that form the lesions under a compartment convention when the criteria name
none: the contrast-enhancing lesion with its necrotic / non-enhancing core, as a reader measures
it on post-contrast T1; never the surrounding oedema or a resection cavity."""


def lesion_labels(opts: MeasureOptions, crit: Criteria, convention: Any
                  ) -> tuple[int, ...] | None:
    """The label values that form the lesions under a compartment convention: the labels
    selected, else the criteria's response compartments, else the tumour core."""
    if opts.labels is not None:
        return parse_labels(opts.labels)
    return convention.labels_of(tuple(crit.response_compartments or TUMOUR_CORE))


def evaluate_series(
    masks: Sequence[MaskSource],
    days: Sequence[float | None] | None = None,
    *,
    timepoints: Sequence[str] | None = None,
    clinical: Sequence[ClinicalStatus | dict[str, Any] | None] | None = None,
    criteria: str | Path | Criteria = "lin2009",
    options: MeasureOptions | None = None,
    radiotherapy_end_days: float | None = None,
    images: Sequence[str | Path | None] | None = None,
    register: str | None = None,
    register_to: str | None = None,
) -> SeriesResult:
    """Evaluate one subject's series: baseline first, then follow-ups in time order.

    ``masks``: a mask (path, :class:`Mask` or :class:`LesionSet`) per timepoint, read and
    measured with ``options``; ``images``: per timepoint, the image the mask was drawn on (or
    ``None``): the grid an RTSTRUCT mask is rasterised onto (:func:`measure`), and what
    follow-ups are registered with for matching (``register``/``register_to``, default from
    ``options``: :mod:`cnsvol.tracking.align`; masks are never resampled for measurement);
    ``days``, ``timepoints``, ``clinical``, ``criteria`` and
    ``radiotherapy_end_days`` as for :func:`cnsvol.response.evaluate`, which evaluates the
    measured series.
    """
    series_inputs(len(masks), days, timepoints, clinical)  # checked before any file is read
    crit = get_criteria(criteria)
    opts = options or MeasureOptions()
    refs = list(images) if images is not None else [None] * len(masks)
    if len(refs) != len(masks):
        raise ValueError(f"{len(refs)} images for {len(masks)} masks: give one (or None) per "
                         "mask")
    sets = [measure(m, opts, crit, reference=r) for m, r in zip(masks, refs, strict=True)]
    registrations = align_series(
        refs if any(r is not None for r in refs) else None, sets,
        mode=opts.register if register is None else register,
        to=opts.register_to if register_to is None else register_to,
        tolerance_mm=opts.register_tolerance_mm, max_bytes=opts.max_bytes,
        mask=opts.register_mask)
    return evaluate(
        sets, days, timepoints=timepoints, clinical=clinical, criteria=crit,
        max_centroid_distance_mm=opts.max_centroid_distance_mm,
        centroid_fallback=opts.centroid_fallback,
        radiotherapy_end_days=radiotherapy_end_days, registrations=registrations,
    )


def compare(
    baseline: MaskSource,
    followup: MaskSource,
    *,
    criteria: str | Path | Criteria = "lin2009",
    options: MeasureOptions | None = None,
    days: float | None = None,
    radiotherapy_end_days: float | None = None,
    baseline_image: str | Path | None = None,
    followup_image: str | Path | None = None,
    register: str | None = None,
) -> CompareResult:
    """Compare a follow-up with its baseline: target and total volumes on each native grid,
    change, the >=20% flag, tracks and the category under ``criteria``.

    ``days`` is the follow-up's day from baseline, if known; ``radiotherapy_end_days`` the day
    radiotherapy ended (same axis), for ``rano2-vol``; ``baseline_image``/``followup_image``
    the images the masks were drawn on (an RTSTRUCT's image series), with which the
    follow-up is registered for matching (``register``), as in :func:`evaluate_series`.
    """
    series = evaluate_series(
        [baseline, followup], [0.0, days] if days is not None else None,
        timepoints=["baseline", "followup"], criteria=criteria, options=options,
        radiotherapy_end_days=radiotherapy_end_days, images=[baseline_image, followup_image],
        register=register,
    )
    return CompareResult(series)
