"""Properties of reading-independent lesion measurement (hypothesis, derandomized: every run
checks the same examples; no example database).

* The order voxels are stored in is not data. Flipping array axes (np.flip) and permuting them
  (np.transpose), with the affine adjusted so that every voxel keeps its world position, leaves
  the lesions unchanged: the same ids on the same voxels, the same counts, volumes, centroids in
  RAS and diameters. The affine adjustment, for a flip of axis a of length n (new index
  i' = n - 1 - i): column a is negated and the origin moves by (n - 1) * old column a; for a
  transpose by ``perm`` (new axis m = old axis perm[m]): new column m = old column perm[m].
* The label values of an instance-labelled mask are names: permuting them renames lesions and
  changes nothing else (count, volumes, centroids).
* Total volume = foreground voxel count x voxel volume, whatever the connectivity or backend.
"""

from __future__ import annotations

import numpy as np
from helpers import affine_from
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes
from scipy.spatial.transform import Rotation

from cnsvol.io import mask_from_array
from cnsvol.lesions import find_lesions

SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SHAPES = array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=8)


@st.composite
def masks(draw, max_label=1):
    """Random masks with several lesions: a drawn shape, density and seed (numpy generator)."""
    shape = draw(SHAPES)
    density = draw(st.sampled_from([0.1, 0.25, 0.4, 0.6]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    on = rng.random(shape) < density
    if max_label == 1:
        return on
    return np.where(on, rng.integers(1, max_label + 1, size=shape), 0).astype(np.uint8)


MASKS = masks()
SPACINGS = st.sampled_from([(0.5, 0.8, 1.2), (1.0, 1.0, 1.5), (1.2, 0.7, 0.9)])
ORIGINS = st.tuples(*[st.sampled_from([0.0, 0.3, -7.7, 12.1])] * 3)
ROTATIONS = st.sampled_from([
    np.eye(3),
    Rotation.from_euler("xyz", [20.0, -35.0, 50.0], degrees=True).as_matrix(),
    np.diag([-1.0, 1.0, 1.0]),  # radiological storage (x flipped)
])


@st.composite
def affines(draw):
    return affine_from(draw(ROTATIONS) @ np.diag(draw(SPACINGS)), draw(ORIGINS))


@st.composite
def reorderings(draw):
    flips = draw(st.lists(st.sampled_from([0, 1, 2]), unique=True, max_size=3))
    perm = tuple(draw(st.permutations([0, 1, 2])))
    return flips, perm


def reorder(data, affine, flips, perm):
    """Reorder the array storage; return (data, affine) with every voxel's world position kept."""
    aff = np.array(affine, dtype=np.float64)
    for ax in flips:
        n = data.shape[ax]
        data = np.flip(data, ax)
        aff[:3, 3] += aff[:3, ax] * (n - 1)
        aff[:3, ax] = -aff[:3, ax]
    data = np.transpose(data, perm)
    aff[:3, :3] = aff[:3, list(perm)]
    return np.ascontiguousarray(data), aff


def test_reorder_keeps_world_positions():
    """Check of the helper itself on a hand case: a 2 x 3 x 4 grid, flip axis 0, swap 0 and 2."""
    data = np.zeros((2, 3, 4), dtype=bool)
    data[0, 1, 3] = True
    aff = affine_from(np.diag([0.5, 0.8, 1.2]), (1.0, 2.0, 3.0))
    new, new_aff = reorder(data, aff, [0], (2, 1, 0))
    # flipped: index (1, 1, 3); transposed: (3, 1, 1)
    assert np.argwhere(new).tolist() == [[3, 1, 1]]
    expected = aff[:3, :3] @ [0, 1, 3] + aff[:3, 3]  # (1.0, 2.8, 6.6)
    np.testing.assert_allclose(new_aff[:3, :3] @ [3, 1, 1] + new_aff[:3, 3], expected)


@SETTINGS
@given(data=MASKS, affine=affines(), how=reorderings(), connectivity=st.sampled_from([6, 18, 26]))
def test_lesions_do_not_depend_on_storage_order(data, affine, how, connectivity):
    flips, perm = how
    before = find_lesions(mask_from_array(data, affine), connectivity=connectivity)
    data2, affine2 = reorder(data, affine, flips, perm)
    after = find_lesions(mask_from_array(data2, affine2), connectivity=connectivity)

    np.testing.assert_allclose(after.total_volume_mm3, before.total_volume_mm3, rtol=1e-12)
    np.testing.assert_allclose(sorted(les.volume_mm3 for les in after.lesions),
                               sorted(les.volume_mm3 for les in before.lesions), rtol=1e-12)
    # the same ids on the same voxels
    relabelled, _ = reorder(before.label_image, affine, flips, perm)
    assert np.array_equal(after.label_image, relabelled)
    assert after.lesion_count == before.lesion_count
    for a, b in zip(after.lesions, before.lesions, strict=True):
        assert (a.lesion_id, a.voxel_count) == (b.lesion_id, b.voxel_count)
        np.testing.assert_allclose(a.centroid_ras_mm, b.centroid_ras_mm, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.max_diameter_3d_mm, b.max_diameter_3d_mm, rtol=1e-9)
        np.testing.assert_allclose(a.longest_diameter_mm, b.longest_diameter_mm, rtol=1e-9)
        assert a.measurable == b.measurable or np.isclose(a.longest_diameter_mm, 10.0)
        np.testing.assert_allclose(a.min_detectable_change_mm3, b.min_detectable_change_mm3,
                                   rtol=1e-12)


@SETTINGS
@given(
    data=masks(max_label=4),
    affine=affines(),
    perm=st.permutations([1, 2, 3, 4]),
)
def test_instance_label_values_are_only_names(data, affine, perm):
    lut = np.array([0, *perm], dtype=np.uint8)  # label v -> perm[v - 1]
    before = find_lesions(mask_from_array(data, affine), instance_labels=True)
    after = find_lesions(mask_from_array(lut[data], affine), instance_labels=True)
    assert after.lesion_count == before.lesion_count == len(set(np.unique(data).tolist()) - {0})
    assert sorted(les.volume_mm3 for les in after.lesions) == sorted(
        les.volume_mm3 for les in before.lesions
    )
    renamed = after.by_id()
    for les in before.lesions:
        other = renamed[int(lut[les.lesion_id])]
        assert other.voxel_count == les.voxel_count
        assert other.centroid_ras_mm == les.centroid_ras_mm
        assert other.max_diameter_3d_mm == les.max_diameter_3d_mm
    assert np.array_equal(after.label_image, lut[before.label_image])


@SETTINGS
@given(data=MASKS, affine=affines(), connectivity=st.sampled_from([6, 18, 26]),
       backend=st.sampled_from(["runs", "scipy", "skimage", "cc3d"]))
def test_total_volume_is_voxel_count_times_voxel_volume(data, affine, connectivity, backend):
    ls = find_lesions(mask_from_array(data, affine), connectivity=connectivity, backend=backend)
    vv = abs(np.linalg.det(affine[:3, :3]))
    assert ls.total_voxel_count == int(data.sum())
    np.testing.assert_allclose(ls.total_volume_mm3, data.sum() * vv, rtol=1e-12)
    assert np.array_equal(ls.label_image > 0, data)
