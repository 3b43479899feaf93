"""Cross-grid matching on real data: one MS patient's consensus lesion mask on two grids.

open_ms_data (Lesjak et al., CC-BY), patient02: ``patient02_raw/consensus_gt.nii.gz`` is the raw
192 x 512 x 512 grid (0.8 x 0.469 x 0.469 mm, 28 lesions, 1424.00 mm3) and
``patient02_resampled/consensus_gt.nii.gz`` the same lesions resampled to 1 mm (26 lesions,
1419 mm3); reference values from the realdata README. The same lesions on two grids must find
each other, and the two totals must agree within the half-voxel-shell measurement band.

The folder is ``$CNSVOL_REALDATA`` or ``../shared/realdata`` beside the project checkout; the
tests skip, saying why, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnsvol import evaluate_series, find_lesions, match, read_mask

pytestmark = pytest.mark.realdata

MIN_VOLUME_MM3 = 50.0


def _realdata_dir() -> Path:
    env = os.environ.get("CNSVOL_REALDATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="module")
def patient02():
    root = _realdata_dir() / "open_ms_data"
    raw_path = root / "patient02_raw" / "consensus_gt.nii.gz"
    res_path = root / "patient02_resampled" / "consensus_gt.nii.gz"
    missing = [str(p) for p in (raw_path, res_path) if not p.is_file()]
    if missing:
        pytest.skip(f"real data not found: {', '.join(missing)} (set CNSVOL_REALDATA)")
    return find_lesions(read_mask(raw_path)), find_lesions(read_mask(res_path))


def test_reference_values(patient02):
    raw, res = patient02
    assert raw.lesion_count == 28 and res.lesion_count == 26
    assert raw.total_voxel_count == 8101
    assert raw.total_volume_mm3 == pytest.approx(1424.00, abs=0.01)
    assert res.total_voxel_count == 1419
    assert res.total_volume_mm3 == pytest.approx(1419.0, abs=0.01)
    assert raw.mask.shape == (192, 512, 512)


@pytest.mark.parametrize("direction", ["raw->resampled", "resampled->raw"])
def test_every_lesion_of_50mm3_matches_a_lesion_on_the_other_grid(patient02, direction):
    raw, res = patient02
    before, after = (raw, res) if direction == "raw->resampled" else (res, raw)
    m = match(before, after)
    assert m.resampled and not m.same_grid
    partner_of_before = {i: c.after_ids for c in m.correspondences for i in c.before_ids}
    partner_of_after = {i: c.before_ids for c in m.correspondences for i in c.after_ids}
    big_before = [les.lesion_id for les in before.lesions if les.volume_mm3 >= MIN_VOLUME_MM3]
    big_after = [les.lesion_id for les in after.lesions if les.volume_mm3 >= MIN_VOLUME_MM3]
    assert big_before and big_after
    assert [i for i in big_before if not partner_of_before[i]] == []
    assert [i for i in big_after if not partner_of_after[i]] == []
    # the big lesions are found by overlap, not by the centroid fallback
    for c in m.correspondences:
        if set(c.before_ids) & set(big_before):
            assert c.matched_by == "overlap"


def test_totals_agree_within_the_measurement_band(patient02):
    raw, res = patient02
    band = max(raw.total_min_detectable_change_mm3, res.total_min_detectable_change_mm3)
    difference = abs(raw.total_volume_mm3 - res.total_volume_mm3)  # 1424.00 vs 1419: 5 mm3
    assert difference == pytest.approx(5.0, abs=0.01)
    assert difference < band


def test_series_across_the_two_grids_reports_resampling_and_native_volumes(patient02):
    raw, res = patient02
    series = evaluate_series([raw, res], [0, 1])
    t0, t1 = series.timepoints
    assert t1.resampled_for_matching
    assert t0.total_volume_mm3 == pytest.approx(1424.00, abs=0.01)
    assert t1.total_volume_mm3 == pytest.approx(1419.0, abs=0.01)
    # every baseline track that holds a lesion of >= 50 mm3 continues at the follow-up
    big = {les.lesion_id for les in raw.lesions if les.volume_mm3 >= MIN_VOLUME_MM3}
    base_rows = [r for r in series.tracks if r.timepoint == "T0" and set(r.lesion_ids) & big]
    follow = {r.track_id: r for r in series.tracks if r.timepoint == "T1"}
    assert base_rows
    for r in base_rows:
        assert follow[r.track_id].status != "resolved"
