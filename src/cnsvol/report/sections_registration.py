"""The report's registration section: how the follow-ups were put in their baseline's world
for lesion matching, and every timepoint whose correspondence is unregistered."""

from __future__ import annotations

from typing import Any

from .markup import Markup, el, table
from .style import text

__all__ = ["registration_section"]

_ORDER = ("registered", "aligned", "no image", "failed", "unregistered")
_MEANING = {
    "registered": "registered; lesions matched through the transform",
    "aligned": "registered, misalignment below the tolerance: scanner coordinates kept",
    "no image": "not registered (no image for it or its baseline): scanner coordinates",
    "failed": "registration failed: correspondence unregistered, category from the total volume",
    "unregistered": "after a failed registration: correspondence unregistered",
}


def registration_section(results: Any) -> Markup:
    """Counts of follow-ups by registration outcome and the list of those whose lesion
    correspondence is unreliable; nothing when no follow-up was registered."""
    try:
        tps = results.table("timepoints", columns=["subject_id", "timepoint", "registration",
                                                   "registration_detail"])
    except (KeyError, ValueError):
        return Markup("")
    done = tps[tps["registration"].fillna("").astype(str) != ""]
    if not len(done):
        return Markup("")
    counts = done["registration"].value_counts()
    rows = [[status, int(counts.get(status, 0)), _MEANING[status]] for status in _ORDER
            if counts.get(status, 0)]
    parts: list[Any] = [
        el("h2", "Registration"),
        el("p", "Follow-up scans that were not on their baseline's grid were registered to it "
           "(images from the manifest's image_path) before their lesions were matched; masks "
           "are never resampled for measurement. Transforms: the transforms folder "
           "(<subject>_<timepoint>.tfm); parameters: timepoints.csv and tracks.csv.",
           class_="muted"),
        table(["Outcome", "Follow-up scans", "Meaning"], rows),
    ]
    bad = done[done["registration"].isin(["failed", "unregistered", "no image"])]
    if len(bad):
        parts.append(el("p", f"{len(bad)} follow-up scan(s) were not matched through a "
                         "registration: failed or unregistered ones have their per-lesion "
                         "changes and new lesions not evaluated and their category from the "
                         "total volume; those without an image were matched in scanner "
                         "coordinates. Check the images (QC pictures show each registered "
                         "follow-up's lesions on the baseline).", class_="failed"))
        parts.append(table(["Subject", "Timepoint", "Outcome", "Detail"], [
            [el("code", text(r["subject_id"])), text(r["timepoint"]), text(r["registration"]),
             text(r["registration_detail"])] for _, r in bad.iterrows()]))
    return el("section", parts, id="registration")
