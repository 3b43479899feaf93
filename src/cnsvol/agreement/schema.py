"""The declared columns of ``agreement_scans.csv`` and ``agreement_timepoints.csv`` (names,
dtypes, units, meanings), shared by :func:`cnsvol.agree`'s writer and docs/outputs.md."""

from __future__ import annotations

from ..columns import Column
from ..results.schema import TableSchema

__all__ = ["AGREEMENT_SCANS", "AGREEMENT_SCHEMAS", "AGREEMENT_TIMEPOINTS"]


def _counts(prefix: str, what: str) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}tp", "Int64", None, f"{what} in both sources, matched one to one by "
               "overlap (true positives)"),
        Column(f"{prefix}fp", "Int64", None, f"{what} of the test source matched to none of "
               "the reference's (false positives)"),
        Column(f"{prefix}fn", "Int64", None, f"{what} of the reference matched to none of "
               "the test source's (false negatives)"),
    )


AGREEMENT_SCANS = TableSchema("agreement_scans", (
    Column("subject_id", "string", None, "subject, as in the manifests"),
    Column("timepoint", "string", None, "timepoint label"),
    Column("region", "string", None, "whole (the region the response measures: every "
           "label, the --labels selection, or with --compartments the tumour core or the "
           "criteria's compartments), then each label present in either mask: label_<value>, "
           "or the compartment with --compartments"),
    Column("reference_volume_mm3", "float64", "mm3", "the region's volume in the reference "
           "mask"),
    Column("test_volume_mm3", "float64", "mm3", "the region's volume in the test mask"),
    Column("dice", "float64", None, "2|A n B| / (|A| + |B|); 1 when both are empty"),
    Column("tp_voxels", "Int64", None, "voxels in both"),
    Column("fp_voxels", "Int64", None, "voxels in the test mask only"),
    Column("fn_voxels", "Int64", None, "voxels in the reference mask only"),
    Column("tn_voxels", "Int64", None, "voxels in neither"),
    Column("lesions_reference", "Int64", None, "lesions (connected components) of the region "
           "in the reference mask"),
    Column("lesions_test", "Int64", None, "lesions of the region in the test mask"),
    *_counts("lesions_", "lesions"),
    Column("lesion_f1", "float64", None, "2TP / (2TP + FP + FN) of lesions; 1 when neither "
           "mask has a lesion"),
    *_counts("measurable_lesions_", "measurable lesions (the reference lesion decides for "
             "TP and FN, the test lesion for FP)"),
    Column("measurable_lesion_f1", "float64", None, "the F1 of measurable lesions"),
    Column("reference_mask", "string", None, "the reference source's mask file"),
    Column("test_mask", "string", None, "the test source's mask file"),
    Column("error", "string", None, "why the scan could not be compared (then the other "
           "columns are empty); empty otherwise"),
), "one row per scan x region")

AGREEMENT_TIMEPOINTS = TableSchema("agreement_timepoints", (
    Column("subject_id", "string", None, "subject"),
    Column("timepoint", "string", None, "follow-up timepoint evaluated under both sources"),
    Column("days_from_baseline", "float64", "days", "day of the scan from the baseline scan"),
    Column("reference_percent_change", "float64", "%", "change of the target sum vs "
           "baseline under the reference source"),
    Column("test_percent_change", "float64", "%", "the same under the test source"),
    Column("reference_category", "string", None, "CR, PR, SD, PD or NE under the reference "
           "source"),
    Column("test_category", "string", None, "the category under the test source"),
    Column("category_agrees", "boolean", None, "the two categories are the same"),
    Column("reference_responder_20pct", "boolean", None, "the subject's >=20% reduction flag "
           "under the reference source"),
    Column("test_responder_20pct", "boolean", None, "the flag under the test source"),
), "one row per follow-up evaluated under both sources")

AGREEMENT_SCHEMAS = {s.name: s for s in (AGREEMENT_SCANS, AGREEMENT_TIMEPOINTS)}
