"""What a response assessment returns, per timepoint, per track and per subject, and the declared
columns of their table rows (:mod:`cnsvol.columns`). Definitions: :mod:`cnsvol.response.series`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..columns import Column
from ..lesions.compartments import COMPARTMENT_COLUMNS, compartment_cells
from ..tracking.status import TrackStatus
from .categories import Category, ReasonCode

__all__ = [
    "SUMMARY_COLUMNS",
    "TIMEPOINT_COLUMNS",
    "TRACK_COLUMNS",
    "SubjectSummary",
    "TimepointResult",
    "TrackRow",
]


@dataclass(frozen=True)
class TimepointResult:
    """The assessment of one timepoint; ``category`` is ``None`` at the baseline."""

    timepoint: str
    days_from_baseline: float | None
    path: str
    lesion_count: int
    total_volume_mm3: float
    target_volume_mm3: float | None  # None where the correspondence is unregistered
    percent_change_vs_baseline: float | None
    percent_change_vs_nadir: float | None
    new_lesions: int | None  # None where the correspondence is unregistered
    equivocal_new_lesions: int | None
    category: Category | None
    reason: str
    reason_code: ReasonCode
    confirmed: bool | None
    confirmed_category: Category | None
    within_measurement_error: bool | None
    min_detectable_change_mm3: float
    volumetric_only: bool
    resampled_for_matching: bool
    nontarget_progression: bool | None = False
    post_progression: bool = False
    compartment_volumes_mm3: dict[str, float] = field(default_factory=dict, hash=False)
    segments: str = ""
    planar_volume_mm3: float | None = None
    mask_notes: str = ""
    registration: str = ""
    registration_detail: str = ""
    registration_matrix_ras: tuple[float, ...] | None = None  # 16 values, row by row

    def to_dict(self) -> dict[str, Any]:
        """Every field; the baseline's category is ``""``."""
        d = dict(self.__dict__)
        d["category"] = "" if self.category is None else self.category
        d["compartment_volumes_mm3"] = dict(self.compartment_volumes_mm3)
        if self.registration_matrix_ras is not None:
            d["registration_matrix_ras"] = list(self.registration_matrix_ras)
        return d

    def to_row(self) -> dict[str, Any]:
        """The row of ``timepoints.csv`` (without ``subject_id``)."""
        d = dict(self.__dict__)
        d.pop("registration_matrix_ras")  # in the .tfm files and the JSON, not the table
        d.update(compartment_cells(d.pop("compartment_volumes_mm3")))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimepointResult:
        """The inverse of :meth:`to_dict`."""
        values = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        values["category"] = Category(d["category"]) if d["category"] else None
        values["reason_code"] = ReasonCode(d["reason_code"])
        if d["confirmed_category"] is not None:
            values["confirmed_category"] = Category(d["confirmed_category"])
        if d.get("registration_matrix_ras") is not None:
            values["registration_matrix_ras"] = tuple(float(v) for v in
                                                      d["registration_matrix_ras"])
        return cls(**values)


@dataclass(frozen=True)
class TrackRow:
    """One track at one timepoint (see :mod:`cnsvol.tracking.tracks`)."""

    track_id: int
    timepoint: str
    days_from_baseline: float | None
    lesion_ids: tuple[int, ...]
    status: TrackStatus
    volume_mm3: float
    percent_change_vs_baseline: float | None
    within_measurement_error: bool | None
    is_target: bool
    registration_rotation_deg: float | None = None
    registration_translation_mm: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["lesion_ids"] = list(self.lesion_ids)
        if self.registration_translation_mm is not None:
            d["registration_translation_mm"] = list(self.registration_translation_mm)
        return d

    def to_row(self) -> dict[str, Any]:
        """The row of ``tracks.csv`` (without ``subject_id``): lesion ids space-separated."""
        d = dict(self.__dict__)
        d["lesion_ids"] = " ".join(map(str, self.lesion_ids))
        shift = d.pop("registration_translation_mm") or (None, None, None)
        d.update({f"registration_translation_{a}_mm": v for a, v in zip("xyz", shift)})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrackRow:
        values = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        values["lesion_ids"] = tuple(int(i) for i in d["lesion_ids"])
        values["status"] = TrackStatus(d["status"])
        shift = d.get("registration_translation_mm")
        values["registration_translation_mm"] = None if shift is None else tuple(
            float(v) for v in shift)
        return cls(**values)


@dataclass(frozen=True)
class SubjectSummary:
    """Best overall response and the per-subject endpoints of one series."""

    best_response: Category
    best_percent_change: float | None
    responder_20pct: bool | None
    objective_response: bool
    time_to_response_days: float | None
    progression_days: float | None
    reason: str = ""
    time_to_responder_20pct_days: float | None = None
    first_followup_days: float | None = None
    progression_reason: str = ""
    best_change_within_measurement_error: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubjectSummary:
        values = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        values["best_response"] = Category(d["best_response"])
        return cls(**values)


TIMEPOINT_COLUMNS: tuple[Column, ...] = (
    Column("timepoint", "string", None, "timepoint label, as in the manifest"),
    Column("days_from_baseline", "float64", "days", "day of the scan from the baseline scan"),
    Column("path", "string", None, "the mask file"),
    Column("lesion_count", "Int64", None, "lesions in the mask"),
    Column("total_volume_mm3", "float64", "mm3", "volume of every lesion"),
    Column("segments", "string", None, "DICOM SEG and RTSTRUCT masks: the segments (ROIs) "
           "measured, each as number, name and its own volume; empty otherwise"),
    Column("planar_volume_mm3", "float64", "mm3", "RTSTRUCT masks: the selected ROIs' polygon "
           "areas x slice spacing (no rasterisation), beside the voxel volume; empty otherwise"),
    Column("mask_notes", "string", None, "what reading the mask noted ('; '-separated): "
           "e.g. the DICOM segments, the image series an RTSTRUCT was rasterised onto (modality, "
           "grid, rule), ROIs left out, overlaps, labels not found, header repairs"),
    Column("target_volume_mm3", "float64", "mm3", "the target sum: volume of the lesions the "
           "baseline targets correspond to; empty where the lesion correspondence is "
           "unregistered (see registration)"),
    Column("percent_change_vs_baseline", "float64", "%", "change of the target sum vs "
           "baseline (of the total volume where the correspondence is unregistered); empty "
           "when the baseline sum is 0"),
    Column("percent_change_vs_nadir", "float64", "%", "change of the target sum vs the "
           "smallest earlier sum (baseline included; totals where unregistered); empty at "
           "baseline"),
    Column("new_lesions", "Int64", None, "lesions the matching with the previous scan calls "
           "new; empty where the correspondence is unregistered"),
    Column("equivocal_new_lesions", "Int64", None, "new lesions below the criteria's "
           "new-lesion floor (listed, not progression unless a later scan confirms them)"),
    Column("nontarget_progression", "boolean", None, "a non-target lesion progressed "
           "unequivocally (the criteria's non-target rule)"),
    Column("post_progression", "boolean", None, "a timepoint after the subject's first PD "
           "(category PD, reason code post_progression)"),
    Column("category", "string", None, "CR, PR, SD, PD or NE; empty at baseline"),
    Column("confirmed", "boolean", None, "for a PR/CR under criteria that need confirmation: "
           "confirmed by a later scan"),
    Column("confirmed_category", "string", None, "the confirmed level (the worst of the "
           "confirming scans)"),
    Column("within_measurement_error", "boolean", None, "the change vs baseline is smaller "
           "than the half-voxel measurement band"),
    Column("min_detectable_change_mm3", "float64", "mm3", "half-voxel measurement band of the "
           "target sum"),
    Column("volumetric_only", "boolean", None, "no clinical status recorded at this timepoint"),
    Column("resampled_for_matching", "boolean", None, "the previous scan is on another grid: "
           "lesions were matched by nearest-neighbour lookup"),
    Column("registration", "string", None, "how this scan's lesions were put in the "
           "baseline's world for matching: empty (scanner coordinates: no registration asked, "
           "no image, or auto with the masks on one grid), 'aligned' (auto: registered, "
           "misalignment below the tolerance, scanner coordinates kept), 'registered', "
           "'failed' or 'unregistered' (after a failed registration): the last two make the "
           "lesion correspondence unreliable and the category come from the total volume"),
    Column("registration_detail", "string", None, "the registration's rotation, translation, "
           "misalignment before and after, or why it failed"),
    *COMPARTMENT_COLUMNS,
    Column("reason_code", "string", None, "machine-readable reason for the category"),
    Column("reason", "string", None, "why the category, in words"),
)

TRACK_COLUMNS: tuple[Column, ...] = (
    Column("track_id", "Int64", None, "track number, by first appearance then size"),
    Column("timepoint", "string", None, "timepoint label"),
    Column("days_from_baseline", "float64", "days", "day of the scan from the baseline scan"),
    Column("lesion_ids", "string", None, "lesion ids of the track at this timepoint, "
           "space-separated (empty once resolved)"),
    Column("status", "string", None, "baseline, matched, split, merged, complex, new, "
           "resolved, or unregistered (the scan's registration failed, or an earlier one did: "
           "correspondence unreliable, change not evaluated)"),
    Column("volume_mm3", "float64", "mm3", "volume of the track's lesions"),
    Column("percent_change_vs_baseline", "float64", "%", "change of the track's volume vs "
           "baseline; empty for a track that was not there at baseline"),
    Column("within_measurement_error", "boolean", None, "the change is smaller than the "
           "half-voxel measurement band"),
    Column("is_target", "boolean", None, "the track is a target (a baseline target lesion)"),
    Column("registration_rotation_deg", "float64", "degrees", "the rotation angle of the "
           "transform that put this scan in the baseline's world for matching; empty when none "
           "was used"),
    *(Column(f"registration_translation_{a}_mm", "float64", "mm", f"its translation along "
             f"RAS+ {a}: where the scan's world origin goes in the baseline's world")
      for a in "xyz"),
)

SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("best_response", "string", None, "best overall response: CR, PR, SD, PD or NE"),
    Column("best_percent_change", "float64", "%", "most negative change of the target sum vs "
           "baseline, up to the first PD"),
    Column("responder_20pct", "boolean", None, "a >=20% reduction of the target sum on a "
           "scan before the first PD (a PD scan never counts); empty if undefined"),
    Column("objective_response", "boolean", None, "best response CR or PR (confirmed where "
           "the criteria need it)"),
    Column("time_to_response_days", "float64", "days", "day of the first counted PR/CR"),
    Column("time_to_responder_20pct_days", "float64", "days", "day of the first >=20% "
           "reduction"),
    Column("progression_days", "float64", "days", "day of the first PD (dated back for "
           "confirmed equivocal new lesions)"),
    Column("first_followup_days", "float64", "days", "day of the first follow-up scan"),
    Column("progression_reason", "string", None, "what made the first PD (target sum, new or "
           "non-target lesion, clinical modifier), as in that timepoint's reason"),
    Column("best_change_within_measurement_error", "boolean", None, "the best % change is "
           "smaller than the half-voxel measurement band of its two scans (a boundary shift of "
           "half a voxel could explain it)"),
)
