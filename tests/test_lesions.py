"""Finding and measuring lesions (cnsvol.lesions) on hand-made masks with hand-derived numbers.

Definitions checked here are the ones in the module docstring of cnsvol.lesions:

* connectivity 6 / 18 / 26 = voxels sharing a face / a face or an edge / any corner;
* ids: descending voxel count, then ascending centroid RAS x, y, z (instance_labels: the label);
* diameters are Feret diameters over the voxels' outer corners ("edge to edge"), in 3D and on
  axial slices (slices perpendicular to the voxel axis closest to superior-inferior). So a box of
  a x b x c voxels of size (sx, sy, sz) has a 3D diameter of
  sqrt((a sx)^2 + (b sy)^2 + (c sz)^2) and an axial one of sqrt((a sx)^2 + (b sy)^2) when k is
  the slice axis.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers import affine_from
from scipy.spatial.distance import pdist
from scipy.spatial.transform import Rotation

from cnsvol.io import mask_from_array
from cnsvol.lesions import LESION_COLUMNS, find_lesions, label_components

SPACING = (0.5, 0.8, 1.2)
VOX = 0.5 * 0.8 * 1.2  # 0.48 mm3
ANISO = affine_from(np.diag(SPACING), (-3.0, 4.5, 10.2))
EYE = np.eye(4)
ROT = Rotation.from_euler("zyx", [33.0, 12.0, -21.0], degrees=True).as_matrix()
OBLIQUE = affine_from(ROT @ np.diag(SPACING), (7.0, -2.0, 5.5))
BACKENDS = ["runs", "scipy", "skimage", "cc3d"]


def lesions_of(data, affine=EYE, **kw):
    return find_lesions(mask_from_array(np.asarray(data), affine), **kw)


def voxels(shape, *ijk, value=1, dtype=np.uint8):
    data = np.zeros(shape, dtype=dtype)
    for p in ijk:
        data[p] = value
    return data


# --------------------------------------------------------------------------------------------
# connectivity


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "second, expected",
    [
        ((3, 2, 2), {6: 1, 18: 1, 26: 1}),  # shares a face with (2, 2, 2)
        ((3, 3, 2), {6: 2, 18: 1, 26: 1}),  # shares an edge
        ((2, 3, 3), {6: 2, 18: 1, 26: 1}),  # shares an edge (another pair of axes)
        ((3, 3, 3), {6: 2, 18: 2, 26: 1}),  # shares a corner only
        ((4, 2, 2), {6: 2, 18: 2, 26: 2}),  # one voxel gap
    ],
    ids=["face", "edge-ij", "edge-jk", "corner", "gap"],
)
def test_connectivity(second, expected, backend):
    data = voxels((6, 6, 6), (2, 2, 2), second)
    for conn, n in expected.items():
        ls = lesions_of(data, ANISO, connectivity=conn, backend=backend)
        assert ls.lesion_count == n, conn
        assert ls.connectivity == conn
        assert ls.total_volume_mm3 == pytest.approx(2 * VOX)


def test_default_connectivity_is_26_and_others_are_refused():
    data = voxels((6, 6, 6), (2, 2, 2), (3, 3, 3))
    assert lesions_of(data).lesion_count == 1
    with pytest.raises(ValueError, match="connectivity"):
        lesions_of(data, connectivity=8)
    with pytest.raises(ValueError, match="connectivity"):
        label_components(data > 0, connectivity=4)


# --------------------------------------------------------------------------------------------
# minimum volume


def three_components():
    """Components of 1, 2 and 5 voxels on the 0.48 mm3 grid: 0.48, 0.96 and 2.4 mm3."""
    data = np.zeros((12, 12, 12), dtype=np.uint8)
    data[1, 1, 1] = 1
    data[5, 5, 5:7] = 1
    data[9, 2:7, 9] = 1
    return data


@pytest.mark.parametrize(
    "min_volume, kept_counts, dropped",
    [(0.0, [5, 2, 1], 0), (0.5, [5, 2], 1), (0.96, [5, 2], 1), (0.97, [5], 2), (2.5, [], 3)],
)
def test_min_volume_drops_and_counts_small_components(min_volume, kept_counts, dropped):
    ls = lesions_of(three_components(), ANISO, min_volume_mm3=min_volume)
    assert [les.voxel_count for les in ls.lesions] == kept_counts
    assert [les.lesion_id for les in ls.lesions] == list(range(1, len(kept_counts) + 1))
    assert ls.dropped_below_min_volume == dropped
    assert ls.min_volume_mm3 == min_volume
    assert ls.total_volume_mm3 == pytest.approx(sum(kept_counts) * VOX)
    assert int((ls.label_image > 0).sum()) == sum(kept_counts)  # dropped voxels are 0
    assert bool(ls.notes) == bool(dropped)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_min_volume_must_be_a_finite_non_negative_number(bad):
    with pytest.raises(ValueError, match="min_volume_mm3"):
        lesions_of(three_components(), min_volume_mm3=bad)


# --------------------------------------------------------------------------------------------
# instance labels


def instance_mask():
    """Label 3: two disjoint blobs (2 + 3 voxels); labels 1 (4 voxels) and 2 (1 voxel) touch."""
    data = np.zeros((10, 10, 10), dtype=np.int16)
    data[1, 1, 1:3] = 3
    data[7, 7, 5:8] = 3
    data[4, 2:6, 4] = 1
    data[4, 6, 4] = 2  # face neighbour of (4, 5, 4)
    return data


def test_instance_labels_keep_label_values_as_ids():
    data = instance_mask()
    ls = lesions_of(data, ANISO, instance_labels=True)
    assert ls.instance_labels and ls.connectivity == 0
    assert [(les.lesion_id, les.voxel_count) for les in ls.lesions] == [(1, 4), (2, 1), (3, 5)]
    assert np.array_equal(ls.label_image, data)
    three = ls.by_id()[3]
    # mean index of (1,1,1), (1,1,2), (7,7,5), (7,7,6), (7,7,7) = (23/5, 23/5, 21/5)
    expected = ANISO[:3, :3] @ [23 / 5, 23 / 5, 21 / 5] + ANISO[:3, 3]
    assert three.centroid_ras_mm == pytest.approx(tuple(expected))
    assert three.bbox_voxel == ((1, 8), (1, 8), (1, 8))
    # without instance labels the same voxels are 3 components: {1,2} merged, 3 split in two
    cc = lesions_of(data, ANISO)
    assert [les.voxel_count for les in cc.lesions] == [5, 3, 2]


def test_instance_labels_with_min_volume_keep_the_remaining_ids():
    ls = lesions_of(instance_mask(), ANISO, instance_labels=True, min_volume_mm3=1.0)
    assert [les.lesion_id for les in ls.lesions] == [1, 3]
    assert ls.dropped_below_min_volume == 1
    assert not np.any(ls.label_image == 2)


# --------------------------------------------------------------------------------------------
# ids, label image, empty mask


# affine x = 20 - i, y = 20 - j, z = 20 - k: RAS order is the reverse of index order
REVERSED = affine_from(-np.eye(3), (20.0, 20.0, 20.0))
# name: (voxels, expected id). Singles sorted by (x, y, z):
#   P8 (6, 12, 19) < P4 (6, 14, 14) < P3 (6, 14, 18) < P2 (6, 18, 18) < P5 (10, 10, 18) < P1 (10, 18, 18)
# P2/P5 disagree on x and y (x decides), P8/P4 on y and z (y decides), P4/P3 tie on x and y.
ORDERING = {
    "A": ([(1, 1, 1), (2, 1, 1), (3, 1, 1)], 1),  # 3 voxels, largest x of all, still first
    "B": ([(20, 20, 20), (21, 20, 20)], 2),  # 2 voxels, smallest x of all, still second
    "P8": ([(14, 8, 1)], 3),
    "P4": ([(14, 6, 6)], 4),
    "P3": ([(14, 6, 2)], 5),
    "P2": ([(14, 2, 2)], 6),
    "P5": ([(10, 10, 2)], 7),
    "P1": ([(10, 2, 2)], 8),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("connectivity", [6, 26])
def test_id_order_is_count_then_ras_x_y_z(backend, connectivity):
    data = np.zeros((24, 24, 24), dtype=np.uint8)
    for vox, _ in ORDERING.values():
        for p in vox:
            data[p] = 1
    ls = lesions_of(data, REVERSED, connectivity=connectivity, backend=backend)
    assert ls.lesion_count == len(ORDERING)
    for name, (vox, lid) in ORDERING.items():
        assert {int(ls.label_image[p]) for p in vox} == {lid}, name
        les = ls.by_id()[lid]
        mean = np.mean(vox, axis=0)
        assert les.centroid_ras_mm == pytest.approx(tuple(20.0 - mean)), name
    assert [les.lesion_id for les in ls.lesions] == list(range(1, 9))


def check_label_image(ls):
    """label_image voxel values are the lesion ids; counts, bboxes and centroids agree with it."""
    ids = [les.lesion_id for les in ls.lesions]
    assert set(np.unique(ls.label_image).tolist()) - {0} == set(ids)
    for les in ls.lesions:
        where = np.argwhere(ls.label_image == les.lesion_id)
        assert len(where) == les.voxel_count
        assert les.bbox_voxel == tuple(
            (int(lo), int(hi) + 1) for lo, hi in zip(where.min(0), where.max(0), strict=True)
        )
        aff = ls.mask.affine
        expected = aff[:3, :3] @ where.mean(axis=0) + aff[:3, 3]
        assert les.centroid_ras_mm == pytest.approx(tuple(expected), abs=1e-9)
        assert les.volume_mm3 == pytest.approx(les.voxel_count * ls.mask.voxel_volume_mm3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_image_values_are_lesion_ids(seed):
    rng = np.random.default_rng(seed)
    data = rng.random((14, 12, 10)) < 0.12
    ls = lesions_of(data, OBLIQUE)
    assert ls.lesion_count > 5
    check_label_image(ls)
    counts = [les.voxel_count for les in ls.lesions]
    assert counts == sorted(counts, reverse=True)
    assert ls.total_voxel_count == int(data.sum())


def test_empty_mask_gives_no_lesions_and_zero_total():
    ls = lesions_of(np.zeros((5, 6, 7), dtype=np.uint8), ANISO)
    assert ls.lesion_count == 0 and ls.lesions == ()
    assert ls.total_volume_mm3 == 0.0 and ls.total_voxel_count == 0
    assert ls.label_image.shape == (5, 6, 7) and not ls.label_image.any()
    frame = ls.to_frame()
    assert list(frame.columns) == [c.name for c in LESION_COLUMNS] and len(frame) == 0
    assert ls.to_dict()["lesions"] == []


# --------------------------------------------------------------------------------------------
# diameters


def test_row_along_i_is_in_plane_when_k_is_superior():
    """10 voxels at 1 mm along i; k is the slice axis. Corner to corner on the slice the row
    spans 10 x 1 mm: sqrt(101); in 3D 10 x 1 x 1 mm: sqrt(102)."""
    data = np.zeros((12, 5, 5), dtype=np.uint8)
    data[1:11, 2, 2] = 1
    les = lesions_of(data).lesions[0]
    assert les.longest_diameter_mm == pytest.approx(math.sqrt(101), rel=1e-12)
    assert les.max_diameter_3d_mm == pytest.approx(math.sqrt(102), rel=1e-12)
    assert les.bbox_voxel == ((1, 11), (2, 3), (2, 3))


def test_row_along_i_is_through_plane_when_i_is_superior():
    """Same row, with the affine sending i to z (superior): every axial slice is one voxel,
    whose in-plane diagonal is sqrt(2); the 3D diameter does not change."""
    data = np.zeros((12, 5, 5), dtype=np.uint8)
    data[1:11, 2, 2] = 1
    i_up = np.array([[0.0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    les = lesions_of(data, i_up).lesions[0]
    assert les.longest_diameter_mm == pytest.approx(math.sqrt(2), rel=1e-12)
    assert les.max_diameter_3d_mm == pytest.approx(math.sqrt(102), rel=1e-12)


def test_row_on_anisotropic_grid():
    data = np.zeros((12, 5, 5), dtype=np.uint8)
    data[1:11, 2, 2] = 1  # 10 x 0.5 mm along i, one voxel of 0.8 x 1.2 across
    les = lesions_of(data, ANISO).lesions[0]
    assert les.longest_diameter_mm == pytest.approx(math.hypot(5.0, 0.8), rel=1e-12)
    assert les.max_diameter_3d_mm == pytest.approx(math.sqrt(25 + 0.64 + 1.44), rel=1e-12)


@pytest.mark.parametrize("affine", [ANISO, OBLIQUE], ids=["aligned", "oblique"])
def test_single_voxel(affine):
    les = lesions_of(voxels((3, 3, 3), (1, 1, 1)), affine).lesions[0]
    assert les.max_diameter_3d_mm == pytest.approx(math.sqrt(0.25 + 0.64 + 1.44), rel=1e-12)
    assert les.longest_diameter_mm == pytest.approx(math.sqrt(0.25 + 0.64), rel=1e-12)
    assert les.voxel_count == 1 and les.volume_mm3 == pytest.approx(VOX)
    # 6 exposed faces, each worth half a voxel
    assert les.min_detectable_change_mm3 == pytest.approx(3 * VOX)


@pytest.mark.parametrize("a, b", [(3, 4), (6, 8), (1, 7), (10, 1), (5, 5)])
def test_in_plane_rectangle_gives_its_diagonal(a, b):
    data = np.zeros((14, 14, 5), dtype=np.uint8)
    data[2 : 2 + a, 3 : 3 + b, 2] = 1
    les = lesions_of(data, ANISO).lesions[0]
    assert les.longest_diameter_mm == pytest.approx(math.hypot(a * 0.5, b * 0.8), rel=1e-12)
    assert les.max_diameter_3d_mm == pytest.approx(
        math.sqrt((a * 0.5) ** 2 + (b * 0.8) ** 2 + 1.2**2), rel=1e-12
    )


def test_measurable_boundary_is_inclusive_at_10_mm():
    """A 6 x 8 voxel rectangle at 1 mm has a diagonal of exactly sqrt(36 + 64) = 10 mm."""
    data = np.zeros((10, 10, 3), dtype=np.uint8)
    data[1:7, 1:9, 1] = 1
    les = lesions_of(data).lesions[0]
    assert les.longest_diameter_mm == 10.0
    assert les.measurable is True
    data[1:7, 8, 1] = 0  # 6 x 7: sqrt(85) = 9.22 mm
    les = lesions_of(data).lesions[0]
    assert les.longest_diameter_mm == pytest.approx(math.sqrt(85))
    assert les.measurable is False
    assert lesions_of(data, measurable_min_diameter_mm=9.0).lesions[0].measurable is True
    d = les.longest_diameter_mm
    assert lesions_of(data, measurable_min_diameter_mm=d).lesions[0].measurable is True
    above = math.nextafter(d, math.inf)
    assert lesions_of(data, measurable_min_diameter_mm=above).lesions[0].measurable is False


def digital_sphere(radius_mm, spacing):
    """Voxels whose centre lies within radius_mm of the centre voxel's centre."""
    half = [int(radius_mm // s) + 1 for s in spacing]
    shape = tuple(2 * h + 1 for h in half)
    grids = np.meshgrid(*[(np.arange(n) - h) * s for n, h, s in zip(shape, half, spacing,
                                                                      strict=True)],
                        indexing="ij")
    return (sum(g**2 for g in grids) <= radius_mm**2).astype(np.uint8)


@pytest.mark.parametrize(
    "radius, spacing",
    [(3.0, (1.0, 1.0, 1.0)), (5.0, (1.0, 1.0, 1.0)), (8.0, (1.0, 1.0, 1.0)),
     (6.0, (0.5, 0.8, 1.2))],
)
def test_digital_sphere_diameter(radius, spacing):
    """Centres lie within 2r of each other, corners add at most a voxel diagonal; along each
    axis the extreme voxels span at least 2r edge to edge (r is a multiple of half the spacing
    in these cases: 3, 5, 8 on 1 mm; 6 mm = 12 x 0.5 = 7.5 x 0.8 = 5 x 1.2), so
    2r <= diameter <= 2r + voxel diagonal, in 3D and on the central axial slice."""
    data = digital_sphere(radius, spacing)
    ls = lesions_of(data, affine_from(np.diag(spacing), (0.0, 0.0, 0.0)))
    assert ls.lesion_count == 1
    les = ls.lesions[0]
    diag3 = math.sqrt(sum(s * s for s in spacing))
    diag2 = math.hypot(spacing[0], spacing[1])
    assert 2 * radius <= les.max_diameter_3d_mm <= 2 * radius + diag3
    assert 2 * radius <= les.longest_diameter_mm <= 2 * radius + diag2
    assert les.longest_diameter_mm <= les.max_diameter_3d_mm


def brute_force_diameters(crop, affine, slice_axis):
    """Every corner of every voxel, every pair: the definition, without any shortcut."""
    corners = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))
    pts = (np.argwhere(crop)[:, None, :] + corners[None]).reshape(-1, 3)
    world = pts @ affine[:3, :3].T
    d3 = pdist(world).max() if len(world) > 1 else 0.0
    d2 = 0.0
    for k in range(crop.shape[slice_axis]):
        sl = np.take(crop, k, axis=slice_axis)
        if not sl.any():
            continue
        inplane = [a for a in range(3) if a != slice_axis]
        c2 = np.array(list(itertools.product((-0.5, 0.5), repeat=2)))
        p2 = (np.argwhere(sl)[:, None, :] + c2[None]).reshape(-1, 2)
        d2 = max(d2, pdist(p2 @ affine[:3, inplane].T).max())
    return d2, d3


def _superior_along(axis, affine):
    """``affine`` with its voxel axes permuted so that voxel axis ``axis`` is the one closest to
    superior (the slices of the in-plane diameter are then perpendicular to it)."""
    rest = iter([0, 1])
    perm = [2 if m == axis else next(rest) for m in range(3)]  # new axis m = old axis perm[m]
    out = affine.copy()
    out[:3, :3] = affine[:3, perm]
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("affine", [ANISO, OBLIQUE], ids=["aligned", "oblique"])
@pytest.mark.parametrize("slice_axis", [0, 1, 2])
@pytest.mark.parametrize("order", ["C", "F"])
def test_diameters_match_brute_force(seed, affine, slice_axis, order):
    """Every storage order x slice axis combination: the slices lie along the runs, across
    them on either side, or are made of whole runs."""
    rng = np.random.default_rng(100 + seed)
    data = np.asarray((rng.random((6, 7, 5)) < 0.55).astype(np.uint8), order=order)
    affine = _superior_along(slice_axis, affine)
    ls = lesions_of(data, affine)
    from cnsvol.lesions.geometry import axial_axis

    ax = axial_axis(affine)
    assert ax == slice_axis
    for les in ls.lesions:
        crop = ls.label_image == les.lesion_id
        d2, d3 = brute_force_diameters(crop, affine, ax)
        assert les.max_diameter_3d_mm == pytest.approx(d3, rel=1e-9)
        assert les.longest_diameter_mm == pytest.approx(d2, rel=1e-9)


# --------------------------------------------------------------------------------------------
# backends


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("seed, density", [(11, 0.15), (12, 0.3), (13, 0.45)])
@pytest.mark.parametrize("other", ["scipy", "skimage", "cc3d"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_runs_skimage_and_cc3d_give_the_same_lesions(seed, density, connectivity, other, order):
    rng = np.random.default_rng(seed)
    data = np.asarray(rng.random((20, 18, 16)) < density, order=order)
    a = lesions_of(data, OBLIQUE, connectivity=connectivity, backend="runs")
    b = lesions_of(data, OBLIQUE, connectivity=connectivity, backend=other)
    assert a.lesion_count == b.lesion_count > 0
    assert np.array_equal(a.label_image, b.label_image)
    for x, y in zip(a.lesions, b.lesions, strict=True):
        assert (x.lesion_id, x.voxel_count, x.bbox_voxel) == (y.lesion_id, y.voxel_count,
                                                               y.bbox_voxel)
        assert x.centroid_ras_mm == pytest.approx(y.centroid_ras_mm, abs=1e-12)
        assert x.longest_diameter_mm == y.longest_diameter_mm
        assert x.max_diameter_3d_mm == y.max_diameter_3d_mm
        assert x.min_detectable_change_mm3 == y.min_detectable_change_mm3
    check_label_image(a)


def _corner_hull_diameters(data, affine, slice_axis):
    """Independent reference for large lesions: every corner of every voxel, reduced to its
    convex hull by qhull (distances are maximised at hull vertices), then all pairs."""
    from scipy.spatial import ConvexHull

    corners = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))
    pts = (np.argwhere(data)[:, None, :] + corners[None]).reshape(-1, 3) @ affine[:3, :3].T
    d3 = pdist(pts[ConvexHull(pts).vertices]).max()
    inplane = [a for a in range(3) if a != slice_axis]
    c2 = np.array(list(itertools.product((-0.5, 0.5), repeat=2)))
    d2 = 0.0
    for k in range(data.shape[slice_axis]):
        sl = np.take(data, k, axis=slice_axis)
        if sl.any():
            p2 = (np.argwhere(sl)[:, None, :] + c2[None]).reshape(-1, 2) @ affine[:3, inplane].T
            d2 = max(d2, pdist(p2).max())
    return d2, d3


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("slice_axis", [0, 2])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("qhull_from", [None, 3], ids=["default", "qhull-always"])
def test_large_irregular_lesion_diameters_match_a_hull_of_every_corner(
    seed, slice_axis, order, qhull_from, monkeypatch
):
    """Lesions big enough for every shortcut (convex-chain reduction, qhull, slice pruning)."""
    import cnsvol.lesions.diameters

    if qhull_from is not None:  # force the qhull reduction that only very large lesions reach
        monkeypatch.setattr(cnsvol.lesions.diameters, "_HULL_MIN_POINTS", qhull_from)
    rng = np.random.default_rng(300 + seed)
    g = np.indices((30, 28, 24)).astype(float)
    centre = np.array([15.0, 14.0, 12.0])
    rot = Rotation.from_euler("xyz", rng.uniform(-60, 60, 3), degrees=True).as_matrix()
    local = np.einsum("ij,j...->i...", rot, g - centre[:, None, None, None])
    radii = rng.uniform(5.0, 11.0, 3)
    r = np.sqrt(sum((local[i] / radii[i]) ** 2 for i in range(3)))
    wobble = 0.12 * np.sin(3 * np.arctan2(local[1], local[0]) + rng.uniform(0, 6))
    data = np.asarray(((r + wobble) <= 1.0) | (rng.random(r.shape) < 0.002), order=order)
    affine = _superior_along(slice_axis, OBLIQUE)
    ls = lesions_of(data.astype(np.uint8), affine)
    big = ls.lesions[0]
    assert big.voxel_count > 1000
    d2, d3 = _corner_hull_diameters(ls.label_image == big.lesion_id, affine, slice_axis)
    assert big.max_diameter_3d_mm == pytest.approx(d3, rel=1e-12)
    assert big.longest_diameter_mm == pytest.approx(d2, rel=1e-12)
