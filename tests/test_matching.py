"""Lesion correspondence between two timepoints (cnsvol.matching), checked against hand counts.

Box lesions live on a 0.5 x 0.8 x 1.2 mm grid (0.48 mm3 per voxel) with a non-zero origin, so
every volume below is a voxel count x 0.48 and an axis or unit mix-up changes the numbers.
Lesion ids follow the documented rule (descending voxel count, then RAS x, y, z), so the boxes
are given different sizes whenever the expected id matters.

Cross-grid cases render the same world-space ellipsoids on several grids by testing each voxel
centre (affine @ ijk) against the ellipsoid equation; the voxel counts of that rendering are the
expected native volumes.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnsvol
from cnsvol import GridError, MeasureOptions, evaluate_series, find_lesions, mask_from_array, match
from cnsvol.lesions.geometry import sphere_equivalent_diameter_mm

SPACING = (0.5, 0.8, 1.2)
SHAPE = (40, 44, 30)
ORIGIN = (-10.0, -17.6, -18.0)
VOX = 0.5 * 0.8 * 1.2  # 0.48 mm3


def make_affine(spacing, origin) -> np.ndarray:
    aff = np.diag([*map(float, spacing), 1.0])
    aff[:3, 3] = origin
    return aff


AFFINE = make_affine(SPACING, ORIGIN)


def lesion_set(*boxes, shape=SHAPE, affine=AFFINE, **kw):
    data = np.zeros(shape, dtype=np.uint8)
    for box in boxes:
        data[box] = 1
    return find_lesions(mask_from_array(data, affine), **kw)


def as_tuple(c):
    return (c.status, c.before_ids, c.after_ids)


# --------------------------------------------------------------------------------------------
# statuses on one grid

BIG = np.s_[4:16, 4:16, 4:14]  # 12 x 12 x 10 = 1440 voxels = 691.2 mm3


def test_identical_sets_match_one_to_one_with_full_overlap():
    small = np.s_[25:31, 30:36, 20:24]  # 6 x 6 x 4 = 144 voxels
    ls = lesion_set(BIG, small)
    m = match(ls, ls)
    assert [as_tuple(c) for c in m.correspondences] == [
        ("matched", (1,), (1,)),
        ("matched", (2,), (2,)),
    ]
    c1, c2 = m.correspondences
    assert c1.before_volume_mm3 == pytest.approx(1440 * VOX)
    assert c1.after_volume_mm3 == pytest.approx(1440 * VOX)
    assert c1.overlap_mm3 == pytest.approx(1440 * VOX)
    assert c2.overlap_mm3 == pytest.approx(144 * VOX)
    assert {c.matched_by for c in m.correspondences} == {"overlap"}
    assert m.same_grid and not m.resampled
    assert m.counts() == {"matched": 2, "split": 0, "merged": 0, "complex": 0, "new": 0,
                          "resolved": 0}


# one lesion split in two by removing slices k = 9, 10 (two empty slices: not 26-connected)
SPLIT_BEFORE = (BIG,)
SPLIT_AFTER = (np.s_[4:16, 4:16, 4:9], np.s_[4:16, 4:16, 11:14])  # 720 and 432 voxels


def test_one_lesion_splitting_in_two_is_one_split_correspondence():
    m = match(lesion_set(*SPLIT_BEFORE), lesion_set(*SPLIT_AFTER))
    assert len(m.correspondences) == 1
    (c,) = m.correspondences
    assert as_tuple(c) == ("split", (1,), (1, 2))
    assert c.before_volume_mm3 == pytest.approx(1440 * VOX)  # 691.2
    assert c.after_volume_mm3 == pytest.approx((720 + 432) * VOX)  # 552.96
    assert c.overlap_mm3 == pytest.approx((720 + 432) * VOX)  # both pieces lie inside
    assert c.matched_by == "overlap" and c.centroid_distance_mm is None
    assert m.overlap_mm3 == pytest.approx({(1, 1): 720 * VOX, (1, 2): 432 * VOX})
    assert m.counts()["split"] == 1 and sum(m.counts().values()) == 1


def test_two_lesions_merging_into_one_is_one_merged_correspondence():
    m = match(lesion_set(*SPLIT_AFTER), lesion_set(*SPLIT_BEFORE))
    (c,) = m.correspondences
    assert as_tuple(c) == ("merged", (1, 2), (1,))
    assert c.before_volume_mm3 == pytest.approx(1152 * VOX)
    assert c.after_volume_mm3 == pytest.approx(1440 * VOX)
    assert m.overlap_mm3 == pytest.approx({(1, 1): 720 * VOX, (2, 1): 432 * VOX})


def test_two_to_two_overlap_chain_is_complex():
    # before: P (i 2..9, 960 voxels, id 2) and Q (i 12..21, 1200 voxels, id 1)
    # after:  C (i 6..14, 1080 voxels, id 2) touches P and Q; D (i 17..26, 1200 voxels, id 1)
    # touches Q only. One connected 2:2 group.
    rest = (slice(4, 16), slice(4, 14))
    before = lesion_set((slice(2, 10), *rest), (slice(12, 22), *rest))
    after = lesion_set((slice(6, 15), *rest), (slice(17, 27), *rest))
    assert [les.voxel_count for les in before.lesions] == [1200, 960]
    assert [les.voxel_count for les in after.lesions] == [1200, 1080]
    m = match(before, after)
    (c,) = m.correspondences
    assert as_tuple(c) == ("complex", (1, 2), (1, 2))
    # overlaps: P&C i 6..9 (480 vox), Q&C i 12..14 (360 vox), Q&D i 17..21 (600 vox)
    assert m.overlap_mm3 == pytest.approx(
        {(2, 2): 480 * VOX, (1, 2): 360 * VOX, (1, 1): 600 * VOX}
    )
    assert c.overlap_mm3 == pytest.approx(1440 * VOX)
    assert c.before_volume_mm3 == pytest.approx(2160 * VOX)
    assert c.after_volume_mm3 == pytest.approx(2280 * VOX)
    assert match(after, before).correspondences[0].status == "complex"


def test_new_lesion_and_resolved_lesion():
    new = np.s_[30:34, 30:34, 20:23]  # 48 voxels, far from BIG
    m = match(lesion_set(BIG), lesion_set(BIG, new))
    assert [as_tuple(c) for c in m.correspondences] == [
        ("matched", (1,), (1,)),
        ("new", (), (2,)),
    ]
    c_new = m.correspondences[1]
    assert c_new.before_volume_mm3 == 0.0
    assert c_new.after_volume_mm3 == pytest.approx(48 * VOX)
    assert c_new.overlap_mm3 == 0.0 and c_new.matched_by is None

    back = match(lesion_set(BIG, new), lesion_set(BIG))
    assert [as_tuple(c) for c in back.correspondences] == [
        ("matched", (1,), (1,)),
        ("resolved", (2,), ()),
    ]


def test_complete_disappearance_resolves_every_lesion():
    empty = lesion_set()
    m = match(lesion_set(BIG), empty)
    assert [as_tuple(c) for c in m.correspondences] == [("resolved", (1,), ())]
    assert m.correspondences[0].after_volume_mm3 == 0.0
    assert m.correspondences[0].matched_by is None
    assert match(empty, empty).correspondences == ()


def test_correspondences_are_ordered_by_before_id_then_after_id():
    # before: B1 (1440 vox, resolves), B2 (384 vox); after: A1 (600 vox) over B2, and two new
    # lesions A2 (216 vox) and A3 (27 vox) far from B1, so no centroid fallback applies
    # (B1-A2 centroid distance ~23 mm vs radii 5.5 + 2.9 mm).
    before = lesion_set(np.s_[2:14, 2:14, 2:12], np.s_[20:28, 20:28, 2:8])
    after = lesion_set(np.s_[20:30, 20:30, 2:8], np.s_[30:36, 2:8, 20:26], np.s_[2:5, 36:39, 20:23])
    m = match(before, after)
    assert [as_tuple(c) for c in m.correspondences] == [
        ("resolved", (1,), ()),
        ("matched", (2,), (1,)),
        ("new", (), (2,)),
        ("new", (), (3,)),
    ]
    frame = m.to_frame()
    assert list(frame["status"]) == ["resolved", "matched", "new", "new"]
    assert list(frame["after_ids"]) == ["", "1", "2", "3"]


def test_swapping_inputs_swaps_statuses_and_ids_only():
    before = lesion_set(np.s_[2:14, 2:14, 2:12], np.s_[20:28, 20:28, 2:8], np.s_[30:38, 2:10, 2:6])
    after = lesion_set(np.s_[20:30, 20:30, 2:8], np.s_[30:36, 2:8, 20:26], *SPLIT_AFTER[1:])
    ab, ba = match(before, after), match(after, before)
    key = lambda c: (c.before_ids, c.after_ids)  # noqa: E731
    assert sorted((c.swapped() for c in ab.correspondences), key=key) == sorted(
        ba.correspondences, key=key
    )
    assert ba.overlap_mm3 == {(a, b): v for (b, a), v in ab.overlap_mm3.items()}


# --------------------------------------------------------------------------------------------
# centroid fallback: lesions that do not overlap but lie close

# before: 20 x 15 x 10 voxels (10 x 12 x 12 mm) = 3000 voxels = 1440 mm3, centre j = 12
FALLBACK_BEFORE = np.s_[10:30, 5:20, 5:15]
# near: 20 x 10 x 10 voxels = 2000 voxels = 960 mm3, j 22..31 (centre 26.5): no overlap, centroid
# distance (26.5 - 12) * 0.8 = 11.6 mm; sphere-equivalent radii 7.01 + 6.12 = 13.13 mm
FALLBACK_NEAR = np.s_[10:30, 22:32, 5:15]
# far: j 30..39 (centre 34.5): distance 22.5 * 0.8 = 18.0 mm > 13.13 mm
FALLBACK_FAR = np.s_[10:30, 30:40, 5:15]


def test_fallback_radii_are_as_derived_by_hand():
    r_before = sphere_equivalent_diameter_mm(3000 * VOX) / 2
    r_after = sphere_equivalent_diameter_mm(2000 * VOX) / 2
    # (6 * 1440 / pi) ** (1/3) / 2 = 2750.2 ** (1/3) / 2; (6 * 960 / pi) ** (1/3) / 2
    assert r_before == pytest.approx(7.005, abs=2e-3)
    assert r_after == pytest.approx(6.120, abs=2e-3)
    assert 11.6 < r_before + r_after < 18.0


def test_non_overlapping_lesions_within_sum_of_radii_match_by_centroid():
    m = match(lesion_set(FALLBACK_BEFORE), lesion_set(FALLBACK_NEAR))
    (c,) = m.correspondences
    assert as_tuple(c) == ("matched", (1,), (1,))
    assert c.matched_by == "centroid"
    assert c.overlap_mm3 == 0.0
    assert c.centroid_distance_mm == pytest.approx(11.6)
    assert m.overlap_mm3 == {}


def test_lesions_farther_than_sum_of_radii_are_new_and_resolved():
    m = match(lesion_set(FALLBACK_BEFORE), lesion_set(FALLBACK_FAR))
    assert [as_tuple(c) for c in m.correspondences] == [
        ("resolved", (1,), ()),
        ("new", (), (1,)),
    ]


def test_fallback_can_be_switched_off():
    m = match(lesion_set(FALLBACK_BEFORE), lesion_set(FALLBACK_NEAR), centroid_fallback=False)
    assert [c.status for c in m.correspondences] == ["resolved", "new"]


def test_max_centroid_distance_overrides_the_radius_rule_via_measure_options():
    base = mask_from_array(_data(FALLBACK_BEFORE), AFFINE)
    far = mask_from_array(_data(FALLBACK_FAR), AFFINE)
    near = mask_from_array(_data(FALLBACK_NEAR), AFFINE)
    wide = evaluate_series([base, far], [0, 56], options=MeasureOptions(max_centroid_distance_mm=20))
    (c,) = wide.matchings[0].correspondences
    assert (c.status, c.matched_by) == ("matched", "centroid")
    assert c.centroid_distance_mm == pytest.approx(18.0)
    assert [r.status for r in wide.tracks] == ["baseline", "matched"]

    narrow = evaluate_series(
        [base, near], [0, 56], options=MeasureOptions(max_centroid_distance_mm=10)
    )
    assert [c.status for c in narrow.matchings[0].correspondences] == ["resolved", "new"]
    assert match(find_lesions(base), find_lesions(far), max_centroid_distance_mm=20).counts()[
        "matched"
    ] == 1


def test_fallback_pairs_only_lesions_that_overlap_nothing():
    # before lesion 1 overlaps after lesion 1; the extra after lesion sits right next to them
    # but lesion 1 before is taken, so the extra one is new
    extra = np.s_[10:30, 22:26, 5:15]  # 800 voxels beside the before box, no overlap
    m = match(lesion_set(FALLBACK_BEFORE), lesion_set(np.s_[10:30, 5:18, 5:15], extra))
    assert [as_tuple(c) for c in m.correspondences] == [
        ("matched", (1,), (1,)),
        ("new", (), (2,)),
    ]


def _data(*boxes, shape=SHAPE):
    data = np.zeros(shape, dtype=np.uint8)
    for box in boxes:
        data[box] = 1
    return data


# --------------------------------------------------------------------------------------------
# different grids: the same world-space lesions

# (centre RAS mm, semi-axes mm): well separated, all inside every grid below
ELLIPSOIDS = [
    ((-9.0, 5.0, 2.0), (7.0, 6.0, 5.0)),
    ((10.0, -7.0, -4.0), (5.0, 4.5, 6.0)),
    ((8.0, 12.0, 9.0), (3.0, 3.0, 4.0)),
]


def render(shape, affine, ellipsoids=ELLIPSOIDS):
    """Binary array with voxel centres inside any ellipsoid set, and the count per ellipsoid."""
    ijk = np.indices(shape).reshape(3, -1).T.astype(np.float64)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    data = np.zeros(len(ijk), dtype=np.uint8)
    counts = []
    for centre, radii in ellipsoids:
        inside = (((xyz - np.array(centre)) / np.array(radii)) ** 2).sum(axis=1) <= 1.0
        data[inside] = 1
        counts.append(int(inside.sum()))
    return data.reshape(shape), counts


# 1 mm isotropic: x -25..24, y -24..23, z -20..19
G_ISO = ((50, 48, 40), make_affine((1.0, 1.0, 1.0), (-25.0, -24.0, -20.0)))
# the same grid with i reversed: voxel 0 at x = +24, spacing -1 mm along x
_flip = make_affine((1.0, 1.0, 1.0), (24.0, -24.0, -20.0))
_flip[0, 0] = -1.0
G_ISO_FLIP = ((50, 48, 40), _flip)
# thick slices, shifted origin: 0.5 x 0.5 x 3 mm
G_THICK = ((96, 100, 13), make_affine((0.5, 0.5, 3.0), (-23.7, -24.9, -18.4)))
# anisotropic with a flipped x axis: x from +23.9 down to -23.3 mm
_flip2 = make_affine((0.8, 1.0, 1.5), (23.9, -23.6, -19.25))
_flip2[0, 0] = -0.8
G_ANISO_FLIP = ((60, 48, 26), _flip2)

GRIDS = {"iso": G_ISO, "iso_flip": G_ISO_FLIP, "thick": G_THICK, "aniso_flip": G_ANISO_FLIP}


@pytest.fixture(scope="module")
def rendered():
    out = {}
    for name, (shape, aff) in GRIDS.items():
        data, counts = render(shape, aff)
        out[name] = (find_lesions(mask_from_array(data, aff)), counts, aff)
    return out


def _which(centroid) -> int:
    d = [np.linalg.norm(np.array(centroid) - np.array(c)) for c, _ in ELLIPSOIDS]
    return int(np.argmin(d))


def test_rendering_helper_is_consistent_with_a_flipped_grid():
    iso, _ = render(*G_ISO)
    flipped, _ = render(*G_ISO_FLIP)
    np.testing.assert_array_equal(flipped, iso[::-1])


@pytest.mark.parametrize(
    "a, b",
    [("iso", "thick"), ("iso", "iso_flip"), ("iso", "aniso_flip"), ("thick", "aniso_flip")],
)
def test_same_world_lesions_on_different_grids_match_one_to_one(rendered, a, b):
    ls_a, counts_a, aff_a = rendered[a]
    ls_b, counts_b, aff_b = rendered[b]
    vv_a = abs(np.linalg.det(aff_a[:3, :3]))
    vv_b = abs(np.linalg.det(aff_b[:3, :3]))
    assert ls_a.lesion_count == ls_b.lesion_count == 3
    m = match(ls_a, ls_b)
    assert m.resampled and not m.same_grid
    assert m.counts()["matched"] == 3 and len(m.correspondences) == 3
    by_a, by_b = ls_a.by_id(), ls_b.by_id()
    seen = set()
    for c in m.correspondences:
        assert c.matched_by == "overlap" and c.overlap_mm3 > 0
        (ia,), (ib,) = c.before_ids, c.after_ids
        k = _which(by_a[ia].centroid_ras_mm)
        assert _which(by_b[ib].centroid_ras_mm) == k
        seen.add(k)
        # volumes are measured natively: the rendering's voxel count x that grid's voxel volume
        assert c.before_volume_mm3 == pytest.approx(counts_a[k] * vv_a)
        assert c.after_volume_mm3 == pytest.approx(counts_b[k] * vv_b)
        assert by_a[ia].voxel_count == counts_a[k] and by_b[ib].voxel_count == counts_b[k]
    assert seen == {0, 1, 2}


def test_mirrored_storage_overlaps_completely(rendered):
    ls_a, counts, _ = rendered["iso"]
    ls_b, _, _ = rendered["iso_flip"]
    m = match(ls_a, ls_b)
    for c in m.correspondences:
        assert c.overlap_mm3 == pytest.approx(c.before_volume_mm3)
        assert c.before_volume_mm3 == pytest.approx(c.after_volume_mm3)
    # ids do not depend on the storage order: the same world lesion gets the same id
    assert [(c.before_ids, c.after_ids) for c in m.correspondences] == [
        ((1,), (1,)), ((2,), (2,)), ((3,), (3,)),
    ]


def test_series_over_three_grids_keeps_three_matched_tracks(rendered):
    sets = [rendered[n][0] for n in ("iso", "thick", "aniso_flip")]
    res = evaluate_series(sets, [0, 56, 112])
    assert [t.new_lesions for t in res.timepoints] == [0, 0, 0]
    assert [t.resampled_for_matching for t in res.timepoints] == [False, True, True]
    assert {r.track_id for r in res.tracks} == {1, 2, 3}
    for tid in (1, 2, 3):
        rows = [r for r in res.tracks if r.track_id == tid]
        assert [r.status for r in rows] == ["baseline", "matched", "matched"]
    for t, name in enumerate(("iso", "thick", "aniso_flip")):
        _, counts, aff = rendered[name]
        vv = abs(np.linalg.det(aff[:3, :3]))
        assert res.timepoints[t].total_volume_mm3 == pytest.approx(sum(counts) * vv)


def test_disjoint_world_extents_raise_grid_error(rendered):
    ls_a, _, _ = rendered["iso"]
    shape, aff = G_ISO
    moved = aff.copy()
    moved[0, 3] += 100.0  # x 75..124 mm: no intersection with -25..24
    data, _ = render(*G_ISO)
    far = find_lesions(mask_from_array(data, moved))
    with pytest.raises(GridError, match="do not overlap"):
        match(ls_a, far)
    with pytest.raises(GridError):
        match(far, ls_a)
    with pytest.raises(cnsvol.GridError):
        evaluate_series([ls_a, far], [0, 56])
    assert issubclass(GridError, ValueError)


def test_cross_grid_overlap_found_in_one_direction_only_still_matches():
    # fine 1 mm grid: one lesion voxel centred at (16, 16, 16) mm; coarse 3 mm grid: one lesion
    # voxel centred at (15, 15, 15) mm. Fine -> coarse: 16 / 3 = 5.33 rounds to coarse voxel 5,
    # a hit (1 mm3). Coarse -> fine: 15 mm is fine voxel 15, background (0 mm3). An edge exists
    # when either direction overlaps; overlap_mm3 is the mean of the two directions, 0.5 mm3.
    fine = np.zeros((30, 30, 30), np.uint8)
    fine[16, 16, 16] = 1
    coarse = np.zeros((10, 10, 10), np.uint8)
    coarse[5, 5, 5] = 1
    fine_ls = find_lesions(mask_from_array(fine, make_affine((1.0, 1.0, 1.0), (0, 0, 0))))
    coarse_ls = find_lesions(mask_from_array(coarse, make_affine((3.0, 3.0, 3.0), (0, 0, 0))))
    for m, vols in ((match(fine_ls, coarse_ls), (1.0, 27.0)),
                    (match(coarse_ls, fine_ls), (27.0, 1.0))):
        (c,) = m.correspondences
        assert (c.status, c.matched_by) == ("matched", "overlap")
        assert (c.before_volume_mm3, c.after_volume_mm3) == pytest.approx(vols)
        assert c.overlap_mm3 == pytest.approx(0.5)
        assert m.resampled


def _flip_i(data: np.ndarray, aff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Store ``data`` with i reversed; the affine keeps every voxel at its world position."""
    out = aff.copy()
    out[:3, 3] = aff[:3, 3] + aff[:3, 0] * (data.shape[0] - 1)
    out[:3, 0] = -aff[:3, 0]
    return np.ascontiguousarray(data[::-1]), out


def test_centroid_fallback_tie_is_broken_by_centroids_whatever_the_storage_order():
    # before: one 3x3x3 lesion at i 14..16; after: two 3x3x3 lesions at i 10..12 and 18..20.
    # No overlap; both centroid distances are 4 voxels x 0.8 = 3.2 mm, within the sum of
    # sphere-equivalent radii 2 x 1.674 mm (27 x 0.728 mm3 each). The distances tie, and the
    # documented tie-break (the unordered pair of centroids) picks the pair whose sorted
    # centroids come first: the after lesion at x = 0.1 + 0.8 * 11 = 8.9 mm. The other one
    # (x = 15.3 mm) is new. The answer must not depend on how the arrays are stored.
    shape, aff = (31, 9, 9), make_affine((0.8, 0.7, 1.3), (0.1, 0.2, 0.3))
    before = np.zeros(shape, np.uint8)
    before[14:17, 3:6, 3:6] = 1
    after = np.zeros(shape, np.uint8)
    after[10:13, 3:6, 3:6] = 1
    after[18:21, 3:6, 3:6] = 1
    assert sphere_equivalent_diameter_mm(27 * 0.8 * 0.7 * 1.3) > 3.2  # two equal radii
    outcomes = []
    for flip_before in (False, True):
        for flip_after in (False, True):
            b = _flip_i(before, aff) if flip_before else (before, aff)
            a = _flip_i(after, aff) if flip_after else (after, aff)
            ls_b, ls_a = find_lesions(mask_from_array(*b)), find_lesions(mask_from_array(*a))
            m = match(ls_b, ls_a)
            x_of = {les.lesion_id: les.centroid_ras_mm[0] for les in ls_a.lesions}
            got = {c.status: round(x_of[c.after_ids[0]], 6) for c in m.correspondences}
            outcomes.append(((flip_before, flip_after), got))
    assert all(got == {"matched": 8.9, "new": 15.3} for _, got in outcomes), outcomes
