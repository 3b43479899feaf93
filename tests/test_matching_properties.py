"""Properties of lesion matching (hypothesis, derandomized so every run checks the same cases).

* symmetry: ``match(b, a)`` is ``match(a, b)`` with every correspondence ``swapped()`` (split <->
  merged, new <-> resolved, ids and volumes exchanged), on one grid and across grids;
* the label values of an instance-labelled mask are names, not data: permuting them renames the
  lesion ids and changes nothing else;
* the storage order is not data either: flipping array axes (with the affine adjusted so every
  voxel keeps its world position) changes neither statuses, ids nor volumes, whether one side
  or both sides are flipped.

Masks are unions of random boxes on small anisotropic grids, so every example runs in
milliseconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnsvol import find_lesions, mask_from_array, match

SHAPE = (9, 8, 7)
SETTINGS = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SPACINGS = st.sampled_from([(0.5, 0.8, 1.2), (1.0, 1.0, 1.5), (1.2, 0.7, 0.9)])
OFFSETS = st.tuples(*[st.sampled_from([0.0, 0.3, -0.7, 1.1, -1.6])] * 3)
BOX = st.tuples(
    st.integers(0, SHAPE[0] - 1), st.integers(0, SHAPE[1] - 1), st.integers(0, SHAPE[2] - 1),
    st.integers(1, 4), st.integers(1, 4), st.integers(1, 3),
)
BOXES = st.lists(BOX, min_size=0, max_size=4)


BIG_BOX = st.tuples(
    st.integers(0, 4), st.integers(0, 3), st.integers(0, 3),
    st.integers(3, 5), st.integers(3, 5), st.integers(2, 4),
)
CUT = st.tuples(st.integers(0, 2), st.integers(1, 5))


@st.composite
def related_pair(draw):
    """Before boxes, and after boxes that are shifted/resized copies of them plus maybe an extra
    box; each side may have planes cut out of it (which splits lesions), so that split, merged
    and complex groups are common, not only new/resolved pairs."""
    before = draw(st.lists(BIG_BOX, min_size=1, max_size=3))
    after = []
    for i, j, k, si, sj, sk in before:
        if draw(st.integers(0, 5)) == 0:
            continue  # this one resolves
        di, dj, dk, ds = (draw(st.integers(-1, 1)) for _ in range(4))
        after.append((max(i + di, 0), max(j + dj, 0), max(k + dk, 0),
                      max(si + ds, 1), max(sj + ds, 1), sk))
    after += draw(st.lists(BOX, max_size=1))
    cuts_b = draw(st.lists(CUT, max_size=1))
    cuts_a = draw(st.lists(CUT, max_size=2))
    return (before, cuts_b), (after, cuts_a)


PAIRS = st.one_of(related_pair(), st.tuples(BOXES, BOXES))


def affine(spacing, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = origin
    return aff


def paint(boxes, labelled: bool = False) -> np.ndarray:
    """Boxes painted in order (later ones overwrite); label n + 1 for box n if ``labelled``.

    ``boxes`` may also be ``(boxes, cuts)`` where each cut ``(axis, index)`` is a plane cleared
    afterwards.
    """
    cuts = []
    if isinstance(boxes, tuple):
        boxes, cuts = boxes
    data = np.zeros(SHAPE, dtype=np.uint8)
    for n, (i, j, k, si, sj, sk) in enumerate(boxes):
        data[i : i + si, j : j + sj, k : k + sk] = n + 1 if labelled else 1
    for axis, at in cuts:
        index = [slice(None)] * 3
        index[axis] = min(at, SHAPE[axis] - 1)
        data[tuple(index)] = 0
    return data


def flipped(data: np.ndarray, aff: np.ndarray, axes) -> tuple[np.ndarray, np.ndarray]:
    """Reverse the storage order along ``axes``; voxels keep their world coordinates."""
    data, aff = data.copy(), aff.copy()
    for ax in axes:
        data = np.flip(data, axis=ax)
        aff[:3, 3] = aff[:3, 3] + aff[:3, ax] * (data.shape[ax] - 1)
        aff[:3, ax] = -aff[:3, ax]
    return np.ascontiguousarray(data), aff


def lesions(data, aff, **kw):
    return find_lesions(mask_from_array(data, aff), **kw)


def assert_same_correspondences(got, expected):
    """Equal as sets: discrete fields exactly, volumes and distances to float rounding."""
    key = lambda c: (c.before_ids, c.after_ids)  # noqa: E731
    got, expected = sorted(got, key=key), sorted(expected, key=key)
    assert [(c.status, c.before_ids, c.after_ids, c.matched_by) for c in got] == [
        (c.status, c.before_ids, c.after_ids, c.matched_by) for c in expected
    ]
    for g, e in zip(got, expected):
        assert g.before_volume_mm3 == pytest.approx(e.before_volume_mm3, abs=1e-9)
        assert g.after_volume_mm3 == pytest.approx(e.after_volume_mm3, abs=1e-9)
        assert g.overlap_mm3 == pytest.approx(e.overlap_mm3, abs=1e-9)
        assert (g.centroid_distance_mm is None) == (e.centroid_distance_mm is None)
        if e.centroid_distance_mm is not None:
            assert g.centroid_distance_mm == pytest.approx(e.centroid_distance_mm, abs=1e-9)


def check_swap(a, b):
    ab, ba = match(a, b), match(b, a)
    assert_same_correspondences(list(ba.correspondences), [c.swapped() for c in ab.correspondences])
    swap = {"split": "merged", "merged": "split", "new": "resolved", "resolved": "new"}
    assert ba.counts() == {swap.get(s, s): n for s, n in ab.counts().items()}
    assert set(ba.overlap_mm3) == {(y, x) for x, y in ab.overlap_mm3}
    for (x, y), v in ab.overlap_mm3.items():
        assert ba.overlap_mm3[(y, x)] == pytest.approx(v, abs=1e-9)
    assert (ba.same_grid, ba.resampled) == (ab.same_grid, ab.resampled)
    # every lesion appears in exactly one correspondence, on each side
    for m, before, after in ((ab, a, b), (ba, b, a)):
        assert sorted(i for c in m.correspondences for i in c.before_ids) == [
            les.lesion_id for les in before.lesions
        ]
        assert sorted(i for c in m.correspondences for i in c.after_ids) == [
            les.lesion_id for les in after.lesions
        ]


def test_swapped_is_an_involution_that_swaps_only_the_documented_statuses():
    # a fixed, hand-built case, so the property below cannot pass vacuously
    before = paint([(0, 0, 0, 4, 4, 3), (6, 5, 0, 3, 3, 2)])
    after = paint([(0, 0, 0, 4, 2, 3), (0, 3, 0, 4, 2, 3)])
    a, b = lesions(before, affine((0.5, 0.8, 1.2))), lesions(after, affine((0.5, 0.8, 1.2)))
    statuses = [c.status for c in match(a, b).correspondences]
    assert statuses == ["split", "resolved"]
    assert [c.status for c in match(b, a).correspondences] == ["merged", "new"]
    for c in match(a, b).correspondences:
        assert c.swapped().swapped() == c


@SETTINGS
@given(pair=PAIRS, spacing=SPACINGS)
def test_match_is_symmetric_on_one_grid(pair, spacing):
    before, after = pair
    aff = affine(spacing, (-3.0, 2.0, 1.0))
    check_swap(lesions(paint(before), aff), lesions(paint(after), aff))


@SETTINGS
@given(pair=PAIRS, s1=SPACINGS, s2=SPACINGS, offset=OFFSETS)
def test_match_is_symmetric_across_grids(pair, s1, s2, offset):
    before, after = pair
    a = lesions(paint(before), affine(s1))
    b = lesions(paint(after), affine(s2, offset))
    check_swap(a, b)


@SETTINGS
@given(
    before=BOXES.filter(len), after=BOXES.filter(len), spacing=SPACINGS, data=st.data(),
)
def test_permuting_instance_label_values_only_renames_lesions(before, after, spacing, data):
    aff = affine(spacing)
    raw_b, raw_a = paint(before, labelled=True), paint(after, labelled=True)
    perm_b = [0, *data.draw(st.permutations(range(1, len(before) + 1)))]
    perm_a = [0, *data.draw(st.permutations(range(1, len(after) + 1)))]
    a0 = lesions(raw_b, aff, instance_labels=True)
    b0 = lesions(raw_a, aff, instance_labels=True)
    a1 = lesions(np.asarray(perm_b, np.uint8)[raw_b], aff, instance_labels=True)
    b1 = lesions(np.asarray(perm_a, np.uint8)[raw_a], aff, instance_labels=True)
    # ids are the stored label values: renamed, with the same volumes
    assert {perm_b[les.lesion_id]: les.volume_mm3 for les in a0.lesions} == {
        les.lesion_id: les.volume_mm3 for les in a1.lesions
    }
    renamed = []
    for c in match(a0, b0).correspondences:
        renamed.append(
            type(c)(
                status=c.status,
                before_ids=tuple(sorted(perm_b[i] for i in c.before_ids)),
                after_ids=tuple(sorted(perm_a[i] for i in c.after_ids)),
                before_volume_mm3=c.before_volume_mm3,
                after_volume_mm3=c.after_volume_mm3,
                overlap_mm3=c.overlap_mm3,
                matched_by=c.matched_by,
                centroid_distance_mm=c.centroid_distance_mm,
            )
        )
    assert_same_correspondences(list(match(a1, b1).correspondences), renamed)


AXES = st.lists(st.sampled_from([0, 1, 2]), unique=True, max_size=3)


@SETTINGS
@given(pair=PAIRS, spacing=SPACINGS, flip_b=AXES, flip_a=AXES)
def test_flipping_storage_axes_changes_nothing(pair, spacing, flip_b, flip_a):
    before, after = pair
    aff = affine(spacing, (5.0, -4.0, 2.5))
    db, da = paint(before), paint(after)
    ref = match(lesions(db, aff), lesions(da, aff))
    fb, fa = lesions(*flipped(db, aff, flip_b)), lesions(*flipped(da, aff, flip_a))
    # lesion ids and volumes do not depend on the storage order
    assert [(les.lesion_id, les.voxel_count) for les in fb.lesions] == [
        (les.lesion_id, les.voxel_count) for les in lesions(db, aff).lesions
    ]
    got = match(fb, fa)
    assert got.resampled is (sorted(flip_b) != sorted(flip_a))
    assert_same_correspondences(list(got.correspondences), list(ref.correspondences))
    assert got.counts() == ref.counts()


def test_flip_helper_keeps_world_positions():
    aff = affine((0.5, 0.8, 1.2), (5.0, -4.0, 2.5))
    data = np.zeros(SHAPE, np.uint8)
    data[1, 2, 3] = 1
    fdata, faff = flipped(data, aff, [0, 2])
    (ijk,) = np.argwhere(fdata)
    np.testing.assert_allclose(faff[:3, :3] @ ijk + faff[:3, 3], aff[:3, :3] @ [1, 2, 3] + aff[:3, 3])
    assert fdata[SHAPE[0] - 2, 2, SHAPE[2] - 4] == 1
