"""Two-timepoint comparison: totals, percent change, the >=20% flag and the category.

Volumes are built from whole voxels on a 0.5 x 0.8 x 1.2 mm grid (0.48 mm3 per voxel) so every
expected number is voxel count x 0.48.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnsvol import compare, mask_from_array
from cnsvol.response.criteria import PRESETS, with_overrides

SPACING = (0.5, 0.8, 1.2)
AFFINE = np.diag([*SPACING, 1.0])
VOX = 0.5 * 0.8 * 1.2


def box_mask(n_i: int, shape=(40, 30, 20), affine=AFFINE, extra=None):
    """A lesion of n_i x 14 x 10 voxels (7 mm x 11.2 mm x 12 mm when n_i = 14)."""
    data = np.zeros(shape, dtype=np.uint8)
    data[2 : 2 + n_i, 2:16, 2:12] = 1
    if extra is not None:
        data[extra] = 1
    return mask_from_array(data, affine)


def test_totals_and_percent_change_are_hand_derivable():
    r = compare(box_mask(20), box_mask(10))
    assert r.baseline.total_volume_mm3 == pytest.approx(20 * 14 * 10 * VOX)
    assert r.followup.total_volume_mm3 == pytest.approx(10 * 14 * 10 * VOX)
    assert r.absolute_change_mm3 == pytest.approx(-10 * 14 * 10 * VOX)
    assert r.percent_change == pytest.approx(-50.0)
    assert r.responder_20pct is True
    assert r.category == "PR" and r.reason_code == "partial_response"
    assert r.same_grid


@pytest.mark.parametrize(
    "n_follow, category, responder",
    [
        (20, "SD", False),   # 0%
        (17, "SD", False),   # -15%
        (16, "SD", True),    # -20% exactly: the flag is inclusive
        (11, "SD", True),    # -45%
        (10, "PR", True),    # -50% exactly: inclusive
        (28, "PD", False),   # +40% exactly: inclusive
        (27, "SD", False),   # +35%
    ],
)
def test_thresholds_are_inclusive_under_lin2009(n_follow, category, responder):
    r = compare(box_mask(20), box_mask(n_follow), criteria="lin2009")
    assert r.percent_change == pytest.approx((n_follow - 20) / 20 * 100)
    assert (r.category, r.responder_20pct) == (category, responder)


def test_rano_bm_vol_needs_65_percent_for_pr():
    r = compare(box_mask(20), box_mask(10), criteria="rano-bm-vol")
    assert r.category == "SD" and r.responder_20pct
    r = compare(box_mask(20), box_mask(7), criteria="rano-bm-vol")  # -65%
    assert r.category == "PR"


def test_complete_disappearance_is_cr():
    empty = mask_from_array(np.zeros((40, 30, 20), np.uint8), AFFINE)
    r = compare(box_mask(20), empty)
    assert r.category == "CR" and r.percent_change == -100.0 and r.responder_20pct


def test_empty_baseline_is_explicit_never_a_division():
    empty = mask_from_array(np.zeros((40, 30, 20), np.uint8), AFFINE)
    r = compare(empty, empty)
    assert (r.category, r.reason_code) == ("NE", "no_baseline_disease")
    assert r.percent_change is None and r.responder_20pct is None
    d = r.to_dict()
    assert d["percent_change"] is None
    r = compare(empty, box_mask(20))
    assert (r.category, r.reason_code) == ("PD", "new_disease")
    assert r.percent_change is None


def test_new_disease_below_the_size_floor_is_equivocal():
    empty = mask_from_array(np.zeros((40, 30, 20), np.uint8), AFFINE)
    tiny = np.zeros((40, 30, 20), np.uint8)
    tiny[5, 5, 5] = 1  # 0.5 x 0.8 mm in plane: far below 6 mm
    r = compare(empty, mask_from_array(tiny, AFFINE), criteria="tbcrc022")
    assert (r.category, r.reason_code) == ("NE", "new_disease")
    assert "equivocal" in r.reason


def test_no_measurable_lesion_at_baseline_is_not_evaluable():
    small = np.zeros((40, 30, 20), np.uint8)
    small[2:6, 2:6, 2:4] = 1  # 2 mm x 3.2 mm in plane: not measurable
    grown = small.copy()
    grown[2:7, 2:7, 2:4] = 1  # 2.5 x 4 mm in plane: 3.8 -> 4.7 mm, no unequivocal growth
    r = compare(mask_from_array(small, AFFINE), mask_from_array(grown, AFFINE))
    assert (r.category, r.reason_code) == ("NE", "no_measurable_disease")
    # the same non-target growing to 10 x 11.2 mm (>= 10 mm from below 6 mm) is progression
    r = compare(mask_from_array(small, AFFINE), box_mask(20))
    assert (r.category, r.reason_code) == ("PD", "progression")
    assert "non-target" in r.reason
    relaxed = with_overrides(PRESETS["lin2009"], name="all", target_lesions="all")
    assert compare(mask_from_array(small, AFFINE), box_mask(20), criteria=relaxed).category == "PD"


def test_different_grids_are_measured_natively_and_reported():
    fine = np.zeros((80, 30, 20), np.uint8)
    fine[4:44, 2:16, 2:12] = 1  # same physical box as box_mask(20) on a grid twice as fine in i
    affine_fine = np.diag([0.25, 0.8, 1.2, 1.0])
    r = compare(box_mask(20), mask_from_array(fine, affine_fine))
    assert not r.same_grid
    assert r.percent_change == pytest.approx(0.0)
    assert r.to_dict()["same_grid"] is False


def test_to_dict_has_the_documented_keys():
    d = compare(box_mask(20), box_mask(10)).to_dict()
    assert set(d) >= {
        "baseline", "followup", "absolute_change_mm3", "percent_change", "responder_20pct",
        "category", "reason", "criteria", "same_grid",
    }
    assert set(d["baseline"]) >= {"path", "total_volume_mm3", "lesion_count"}
    frame = compare(box_mask(20), box_mask(10)).to_frame()
    assert list(frame["timepoint"]) == ["baseline", "followup"]
