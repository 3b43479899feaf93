"""Clinical modifiers recorded at a timepoint: steroid dose, neurologic status, extra-CNS
progression. How each criteria set uses them: :mod:`cnsvol.response.rules`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["NEURO_STATES", "NOT_RECORDED", "ClinicalStatus", "NeuroStatus"]


class NeuroStatus(StrEnum):
    IMPROVED = "improved"
    STABLE = "stable"
    WORSE = "worse"


NEURO_STATES = tuple(s.value for s in NeuroStatus)


@dataclass(frozen=True, slots=True)
class ClinicalStatus:
    """Optional clinical modifiers recorded at one timepoint (``None`` = not recorded).

    ``steroid_dose_mg``: dexamethasone-equivalent dose, mg/day (an increase is a dose above the
    baseline dose); ``neuro_status``: improved, stable or worse; ``extracns_progression``:
    progression of disease outside the CNS.
    """

    steroid_dose_mg: float | None = None
    neuro_status: NeuroStatus | None = None
    extracns_progression: bool | None = None

    def __post_init__(self) -> None:
        if self.neuro_status is not None:
            if self.neuro_status not in NEURO_STATES:
                raise ValueError(f"neuro_status must be one of {', '.join(NEURO_STATES)}, "
                                 f"got {self.neuro_status!r}")
            object.__setattr__(self, "neuro_status", NeuroStatus(self.neuro_status))
        if self.steroid_dose_mg is not None and not self.steroid_dose_mg >= 0:
            raise ValueError(f"steroid_dose_mg must be >= 0, got {self.steroid_dose_mg!r}")

    @property
    def recorded(self) -> bool:
        return (self.steroid_dose_mg, self.neuro_status, self.extracns_progression) != (
            None, None, None,
        )

    def steroid_increase_over(self, baseline: ClinicalStatus) -> bool:
        """True when both doses are recorded and this one is above the baseline's."""
        return (self.steroid_dose_mg is not None and baseline.steroid_dose_mg is not None
                and self.steroid_dose_mg > baseline.steroid_dose_mg)


NOT_RECORDED = ClinicalStatus()
"""The status of a timepoint with no clinical modifier recorded (one shared value)."""
