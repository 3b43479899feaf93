"""The vocabularies of a response assessment: categories and reason codes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Category", "ReasonCode"]


class Category(StrEnum):
    """Response category of a timepoint, and best overall response of a subject."""

    CR = "CR"  # complete response
    PR = "PR"  # partial response
    SD = "SD"  # stable disease
    PD = "PD"  # progressive disease
    NE = "NE"  # not evaluable

    @property
    def rank(self) -> int:
        """Order for the best overall response: CR > PR > SD > PD > NE."""
        return _RANK[self]

    @property
    def is_response(self) -> bool:
        return self in (Category.CR, Category.PR)


_RANK = {Category.CR: 4, Category.PR: 3, Category.SD: 2, Category.PD: 1, Category.NE: 0}


class ReasonCode(StrEnum):
    """Why a timepoint has its category (machine-readable; the ``reason`` text says more)."""

    BASELINE = "baseline"
    STABLE_DISEASE = "stable_disease"
    PARTIAL_RESPONSE = "partial_response"
    COMPLETE_RESPONSE = "complete_response"
    PROGRESSION = "progression"
    RESPONSE_BLOCKED = "response_blocked"  # a volumetric CR/PR not counted (clinical modifier)
    NEW_DISEASE = "new_disease"  # lesions where the baseline had none
    NO_BASELINE_DISEASE = "no_baseline_disease"  # baseline total 0 mm3
    NO_MEASURABLE_DISEASE = "no_measurable_disease"  # no target lesion at baseline
    POST_PROGRESSION = "post_progression"  # a timepoint after the subject's first PD
    PROGRESSION_UNCONFIRMED = "progression_unconfirmed"  # PD after radiotherapy, unconfirmed
