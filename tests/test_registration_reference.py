"""Registration of follow-up scans to the baseline scan, checked against known transforms.

The feature: cnsvol matches lesions in world (scanner) coordinates, which breaks when the head sits
elsewhere at the follow-up visit. ``cnsvol.register`` (SimpleITK, Mattes mutual information,
moments initialisation, multi-resolution) finds the rigid (or affine) transform from the follow-up
scan's world to the baseline scan's world; ``compare`` / ``evaluate_series`` use it to map the
follow-up lesion coordinates for *matching only* (volumes stay on their native grids).

Every expected value here is derived without cnsvol:

* A move is a 4x4 RAS+ rigid transform ``T`` chosen by the test. Writing a copy of an image with
  its affine changed from ``A`` to ``T @ A`` (voxels untouched, "header-only") puts every voxel,
  hence every lesion centroid, at ``T @ x`` in the copy's world. The correct follow-up -> baseline
  transform is therefore ``inv(T)``; a lesion's follow-up centroid ``T @ c`` must map back to ``c``.
* Volumes of a header-only copy equal the original's (same voxel count, same spacing), so the
  per-lesion and total percent change are 0 up to float rounding of the rotated spacing vectors.
* Voxel counts, centroids (mean voxel centre, RAS) and lesion components (26-connected) are
  computed with numpy / scipy.ndimage from arrays read by SimpleITK (ITK is LPS: RAS = (-x, -y, z)).
* World matching falls back to centroids when lesions lie within the sum of their
  sphere-equivalent radii (see tests/test_matching.py); each move is chosen so that every
  follow-up lesion is farther than that from every baseline lesion and shares no voxel with any,
  and ``register="none"`` is asserted to give resolved + new (so the test would fail if the
  perturbation were too small to need registration).

Data: pyradiomics brain1 (real T1 MRI + its lesion label; 256 x 256 x 25, 0.78125 x 0.78125 x 6.5 mm,
2 lesions of 3524 and 613 voxels: see ../shared/realdata/README.md), read in place, and a 64^3
head-like phantom (2.5 mm voxels) with textured anatomy for mutual information and three spherical
lesions. Derived files are written under pytest's tmp_path only.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import write_sitk
from scipy import ndimage

import cnsvol

F3 = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS (its own inverse)
ROT_TOL_DEG = 0.5
POINT_TOL_MM = 1.0


# --------------------------------------------------------------------------------------------
# geometry, written independently of cnsvol


def rotation(axis, degrees: float) -> np.ndarray:
    """Rodrigues: the 3x3 rotation by ``degrees`` about the unit vector along ``axis``."""
    k = np.asarray(axis, dtype=float)
    k = k / np.linalg.norm(k)
    th = math.radians(degrees)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(th) * kx + (1.0 - math.cos(th)) * kx @ kx


def rigid(axis, degrees: float, translation, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 RAS transform x -> R (x - centre) + centre + translation."""
    r = rotation(axis, degrees)
    c = np.asarray(centre, dtype=float)
    t = np.eye(4)
    t[:3, :3] = r
    t[:3, 3] = c - r @ c + np.asarray(translation, dtype=float)
    return t


def apply(t: np.ndarray, points) -> np.ndarray:
    p = np.atleast_2d(np.asarray(points, dtype=float))
    return p @ t[:3, :3].T + t[:3, 3]


def rotation_angle_deg(r: np.ndarray) -> float:
    """Angle of a 3x3 rotation (arccos((trace - 1) / 2)), in degrees."""
    c = (np.trace(r) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def ras_affine(img: sitk.Image) -> np.ndarray:
    """RAS+ affine of a SimpleITK image: diag(-1,-1,1) @ [direction @ diag(spacing) | origin]."""
    d = np.array(img.GetDirection()).reshape(3, 3)
    a = np.eye(4)
    a[:3, :3] = F3 @ d @ np.diag(img.GetSpacing())
    a[:3, 3] = F3 @ np.array(img.GetOrigin())
    return a


def read_ijk(path) -> tuple[np.ndarray, np.ndarray]:
    """(array indexed [i, j, k], RAS affine) of an image file, via SimpleITK."""
    img = sitk.ReadImage(str(path))
    return np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0)), ras_affine(img)


def components(mask_ijk: np.ndarray, affine: np.ndarray) -> list[SimpleNamespace]:
    """26-connected lesions, largest first: voxel count, volume, RAS centroid, voxel centres."""
    lab, n = ndimage.label(mask_ijk > 0, structure=np.ones((3, 3, 3)))
    vox = abs(np.linalg.det(affine[:3, :3]))
    out = []
    for lbl in range(1, n + 1):
        idx = np.argwhere(lab == lbl).astype(float)
        world = apply(affine, idx)
        out.append(SimpleNamespace(count=len(idx), volume=len(idx) * vox,
                                   centroid=world.mean(axis=0), points=world))
    out.sort(key=lambda c: -c.count)
    return out


def sphere_radius(volume_mm3: float) -> float:
    return (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)


def assert_world_matching_is_defeated(base: list, follow: list, min_gap_mm: float = 8.0) -> None:
    """Precondition on the test data: no follow-up lesion overlaps (voxel centres at least
    ``min_gap_mm`` apart, more than a voxel edge), or lies within the centroid fallback radius
    (sum of sphere-equivalent radii) of, any baseline lesion in world space."""
    from scipy.spatial import cKDTree

    for b in base:
        tree = cKDTree(b.points)
        for f in follow:
            dist = float(np.linalg.norm(b.centroid - f.centroid))
            assert dist > sphere_radius(b.volume) + sphere_radius(f.volume) + 3.0, dist
            nearest, _ = tree.query(f.points, k=1)
            assert nearest.min() > min_gap_mm  # not one voxel in common


def moved_copy(src, dst, t: np.ndarray) -> Path:
    """Write ``src`` with its RAS affine A replaced by ``t @ A``: voxels and dtype untouched."""
    data, aff = read_ijk(src)
    return write_sitk(dst, data, t @ aff)


def tfm_maps(path, src_ras, dst_ras, tol=POINT_TOL_MM) -> bool:
    """True when the ITK transform file maps src -> dst (RAS points; ITK works in LPS)."""
    tx = sitk.ReadTransform(str(path))
    got = np.array([tx.TransformPoint(tuple(float(v) for v in F3 @ p)) for p in src_ras]) @ F3
    return bool(np.all(np.linalg.norm(got - np.asarray(dst_ras), axis=1) < tol))


def tfm_is_consistent(path, base_ras, follow_ras) -> bool:
    """Either convention: ITK's fixed -> moving (baseline -> follow-up) or its inverse."""
    return tfm_maps(path, base_ras, follow_ras) or tfm_maps(path, follow_ras, base_ras)


# --------------------------------------------------------------------------------------------
# result helpers


def status(s) -> str:
    return str(getattr(s, "value", s))


def is_ne(x) -> bool:
    return x is None or x == "NE" or (isinstance(x, float) and math.isnan(x))


def rows_at(series, timepoint: str) -> list:
    return [r for r in series.tracks if r.timepoint == timepoint]


def track_signature(series) -> list[tuple]:
    """Every track row as (track, timepoint, status, lesion ids, volume, % change or None)."""
    out = []
    for r in series.tracks:
        pct = r.percent_change_vs_baseline
        out.append((r.track_id, r.timepoint, status(r.status), tuple(r.lesion_ids),
                    float(r.volume_mm3), None if is_ne(pct) else float(pct)))
    return sorted(out, key=lambda x: x[:4])


def assert_same_tracks(got, ref) -> None:
    """Same tracks, statuses and lesion ids; volumes and changes equal to float rounding (a
    header-only move recomputes the spacing from rotated direction vectors)."""
    g, r = track_signature(got), track_signature(ref)
    assert [x[:4] for x in g] == [x[:4] for x in r]
    for x, y in zip(g, r):
        assert x[4] == pytest.approx(y[4], rel=1e-9, abs=1e-9), x
        if y[5] is None:
            assert x[5] is None, x
        else:
            assert x[5] == pytest.approx(y[5], abs=1e-6), x


def assert_same_timepoints(got, ref) -> None:
    assert len(got.timepoints) == len(ref.timepoints)
    for a, b in zip(got.timepoints, ref.timepoints):
        assert a.total_volume_mm3 == pytest.approx(b.total_volume_mm3, rel=1e-9)
        assert a.target_volume_mm3 == pytest.approx(b.target_volume_mm3, rel=1e-9)
        if is_ne(b.percent_change_vs_baseline):
            assert is_ne(a.percent_change_vs_baseline)
        else:
            assert a.percent_change_vs_baseline == pytest.approx(b.percent_change_vs_baseline,
                                                                 abs=1e-6)
        assert status(a.category) == status(b.category)


_NEW_KEYS = ("regist", "similar", "misalign", "align", "transform", "image")


def _plain(obj):
    """dataclass/dict/sequence -> plain data, enum values as strings, NaN as None; keys this
    feature may add (registration, similarity, misalignment, transform, image paths) dropped."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()
                if not any(w in str(k).lower() for w in _NEW_KEYS)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "value") and type(obj).__module__ != "builtins" and not isinstance(obj, np.ndarray):
        return str(obj.value)
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def text_of(obj, depth=0) -> list[str]:
    """Every string reachable from a result (dataclass fields, dicts, sequences)."""
    if depth > 6:
        return []
    if isinstance(obj, str):
        return [obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [s for f in dataclasses.fields(obj) for s in text_of(getattr(obj, f.name), depth + 1)]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in text_of(v, depth + 1)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in text_of(v, depth + 1)]
    return []


def registration_at(series, i: int):
    regs = tuple(series.registrations)
    assert len(regs) == len(series.timepoints)
    assert regs[0] is None  # the baseline is the reference
    return regs[i]


# --------------------------------------------------------------------------------------------
# the phantom: a 64^3 head with textured anatomy and spherical lesions (2.5 mm voxels)

PH_SHAPE = (64, 64, 64)
PH_AFFINE = np.diag([2.5, 2.5, 2.5, 1.0])
PH_AFFINE[:3, 3] = -78.75  # voxel centres symmetric about 0: -78.75 ... +78.75 mm
PH_VOXEL_MM3 = 2.5 ** 3

# (centre RAS mm, radius mm) in the baseline scan's world
LESION_A = ((-24.0, 18.0, 12.0), 14.0)
LESION_B = ((26.0, 22.0, -16.0), 8.0)
LESION_C = ((2.0, -36.0, -8.0), 9.0)
LESION_D = ((-28.0, -22.0, 26.0), 7.0)  # new at the follow-up
SHRUNK_A = (LESION_A[0], LESION_A[1] * 0.4 ** (1.0 / 3.0))  # 40% of the volume: -60%
BASE_LESIONS = (LESION_A, LESION_B, LESION_C)
FOLLOW_LESIONS = (SHRUNK_A, LESION_C, LESION_D)  # A shrinks, B resolves, C stays, D is new

# the follow-up visit: head turned 10 degrees about an oblique axis and shifted ~37 mm
T_PHANTOM = rigid((2.0, -1.0, 1.0), 10.0, (28.0, -18.0, 16.0))
# a third visit, moved again relative to the second (for chained registration)
T_PHANTOM_2 = rigid((0.0, 1.0, 1.0), -7.0, (-12.0, 14.0, 9.0)) @ T_PHANTOM


def _grid():
    ijk = np.indices(PH_SHAPE).reshape(3, -1).astype(float)
    xyz = PH_AFFINE[:3, :3] @ ijk + PH_AFFINE[:3, 3:4]
    return xyz.reshape(3, *PH_SHAPE)


def _ellipsoid(xyz, centre, semi):
    return sum(((xyz[i] - centre[i]) / semi[i]) ** 2 for i in range(3)) <= 1.0


def phantom_mask(lesions) -> np.ndarray:
    xyz = _grid()
    out = np.zeros(PH_SHAPE, np.uint8)
    for centre, r in lesions:
        out[_ellipsoid(xyz, centre, (r, r, r))] = 1
    return out


def phantom_image(lesions, scan_seed: int) -> np.ndarray:
    """Scalp/skull shell, CSF, grey and white matter, two ventricles, asymmetric blobs (so no
    rotation maps the head onto itself), smooth anatomical texture (same for every scan), a
    little scan-specific noise, and bright lesions."""
    xyz = _grid()
    img = np.zeros(PH_SHAPE, np.float32)
    head = _ellipsoid(xyz, (0, 0, 0), (64, 74, 60))
    img[head] = 240.0
    img[_ellipsoid(xyz, (0, 0, 0), (58, 68, 54))] = 70.0
    img[_ellipsoid(xyz, (0, -3, 2), (54, 63, 49))] = 120.0
    img[_ellipsoid(xyz, (0, -5, 5), (40, 49, 33))] = 165.0
    img[_ellipsoid(xyz, (-9, 5, 8), (5, 16, 9))] = 35.0
    img[_ellipsoid(xyz, (9, 5, 8), (5, 16, 9))] = 35.0
    img[_ellipsoid(xyz, (30, -38, 22), (11, 8, 13))] = 205.0
    img[_ellipsoid(xyz, (-32, 34, -22), (8, 12, 7))] = 55.0
    img[_ellipsoid(xyz, (12, 48, -28), (9, 6, 6))] = 190.0
    anatomy = ndimage.gaussian_filter(np.random.default_rng(1234).standard_normal(PH_SHAPE), 2.0)
    img[head] += (12.0 / anatomy.std() * anatomy)[head]
    img += np.random.default_rng(scan_seed).normal(0.0, 3.0, PH_SHAPE).astype(np.float32)
    for centre, r in lesions:
        img[_ellipsoid(xyz, centre, (r, r, r))] = 230.0
    return img


def phantom_components(lesions, t=None) -> list:
    return components(phantom_mask(lesions), (np.eye(4) if t is None else t) @ PH_AFFINE)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """Baseline, the follow-up unmoved, the follow-up moved by T_PHANTOM, a third visit moved by
    T_PHANTOM_2 (same lesions as the follow-up), blank and noise follow-up images, and a
    header-only moved copy of the *baseline* lesions (same totals) for the failure tests."""
    d = tmp_path_factory.mktemp("phantom")
    base_mask, fu_mask = phantom_mask(BASE_LESIONS), phantom_mask(FOLLOW_LESIONS)
    base_img, fu_img = phantom_image(BASE_LESIONS, 1), phantom_image(FOLLOW_LESIONS, 2)
    fu3_img = phantom_image(FOLLOW_LESIONS, 3)
    p = SimpleNamespace(dir=d)
    p.base_mask = write_sitk(d / "base_mask.nrrd", base_mask, PH_AFFINE)
    p.base_img = write_sitk(d / "base_img.nrrd", base_img, PH_AFFINE)
    p.fu_mask = write_sitk(d / "fu_mask.nrrd", fu_mask, PH_AFFINE)
    p.fu_img = write_sitk(d / "fu_img.nrrd", fu_img, PH_AFFINE)
    p.fu_mask_moved = write_sitk(d / "fu_mask_moved.nrrd", fu_mask, T_PHANTOM @ PH_AFFINE)
    p.fu_img_moved = write_sitk(d / "fu_img_moved.nrrd", fu_img, T_PHANTOM @ PH_AFFINE)
    p.fu3_mask = write_sitk(d / "fu3_mask.nrrd", fu_mask, PH_AFFINE)
    p.fu3_img = write_sitk(d / "fu3_img.nrrd", fu3_img, PH_AFFINE)
    p.fu3_mask_moved = write_sitk(d / "fu3_mask_moved.nrrd", fu_mask, T_PHANTOM_2 @ PH_AFFINE)
    p.fu3_img_moved = write_sitk(d / "fu3_img_moved.nrrd", fu3_img, T_PHANTOM_2 @ PH_AFFINE)
    # failure cases: the baseline lesions unchanged, moved; the image blank or pure noise
    p.same_mask_moved = write_sitk(d / "same_mask_moved.nrrd", base_mask, T_PHANTOM @ PH_AFFINE)
    p.blank_img = write_sitk(d / "blank.nrrd", np.full(PH_SHAPE, 100.0, np.float32),
                             T_PHANTOM @ PH_AFFINE)
    noise = np.random.default_rng(99).uniform(0.0, 1000.0, PH_SHAPE).astype(np.float32)
    p.noise_img = write_sitk(d / "noise.nrrd", noise, T_PHANTOM @ PH_AFFINE)
    head = phantom_image((), 1) > 20.0
    p.head_mask = write_sitk(d / "head_mask.nrrd", head.astype(np.uint8), PH_AFFINE)
    return p


# --------------------------------------------------------------------------------------------
# brain1 (real MRI) moved by a known rigid transform

# 8 degrees about the oblique axis (1, 2, 2)/3, and (0, -35, -20) mm (40 mm). The 12 mm
# is too small here: the larger lesion's sphere-equivalent radius is 14.9 mm (51.9 mm long), so it
# would still overlap itself or match by centroid. With this move every moved lesion voxel lies
# >= 13.9 mm from every baseline lesion voxel (checked in the first test).
T_BRAIN = rigid((1.0, 2.0, 2.0), 8.0, (0.0, -35.0, -20.0))
RESAMPLED_SPACING = (1.2, 1.2, 4.0)  # mm, along the moved scan's own axes


@pytest.fixture(scope="module")
def brain1(realdata, tmp_path_factory):
    src = realdata / "pyradiomics"
    img, lab = src / "brain1_image.nrrd", src / "brain1_label.nrrd"
    if not (img.is_file() and lab.is_file()):
        pytest.skip(f"brain1 image/label not found in {src}")
    d = tmp_path_factory.mktemp("brain1")
    b = SimpleNamespace(image=img, label=lab, dir=d)
    b.moved_image = moved_copy(img, d / "moved_image.nrrd", T_BRAIN)
    b.moved_label = moved_copy(lab, d / "moved_label.nrrd", T_BRAIN)

    # a resampled copy of the moved scan: another grid (1.2 x 1.2 x 4 mm), linear for the image,
    # nearest neighbour for the mask
    mi = sitk.ReadImage(str(b.moved_image), sitk.sitkFloat32)
    ml = sitk.ReadImage(str(b.moved_label))
    extent = np.array(mi.GetSize()) * np.array(mi.GetSpacing())
    ref = sitk.Image([math.ceil(e / s) for e, s in zip(extent, RESAMPLED_SPACING)],
                     sitk.sitkUInt8)
    ref.SetSpacing(RESAMPLED_SPACING)
    ref.SetDirection(mi.GetDirection())
    ref.SetOrigin(mi.GetOrigin())
    b.resampled_image = d / "resampled_image.mha"
    b.resampled_label = d / "resampled_label.mha"
    sitk.WriteImage(sitk.Resample(mi, ref, sitk.Transform(), sitk.sitkLinear, 0.0,
                                  sitk.sitkFloat32), str(b.resampled_image), True)
    sitk.WriteImage(sitk.Resample(ml, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                  sitk.sitkUInt8), str(b.resampled_label), True)

    b.base = components(*read_ijk(lab))
    b.moved = components(*read_ijk(b.moved_label))
    b.resampled = components(*read_ijk(b.resampled_label))
    return b


@pytest.mark.realdata
def test_brain1_truth_and_the_perturbation_are_as_designed(brain1):
    """The test data itself, without cnsvol: brain1 has 2 lesions (3524 + 613 voxels, README);
    the header-only copy keeps them voxel for voxel with every centroid at T @ c; the resampled
    copy still has 2 lesions; and in world space no moved lesion overlaps or lies within the
    centroid-fallback radius of any baseline lesion (so world matching must fail)."""
    assert [c.count for c in brain1.base] == [3524, 613]
    assert [c.count for c in brain1.moved] == [3524, 613]
    for b, m in zip(brain1.base, brain1.moved):
        assert m.volume == pytest.approx(b.volume, rel=1e-12)
        assert np.allclose(m.centroid, apply(T_BRAIN, b.centroid)[0], atol=1e-6)
    assert len(brain1.resampled) == 2
    assert_world_matching_is_defeated(brain1.base, brain1.moved)
    assert_world_matching_is_defeated(brain1.base, brain1.resampled)
    assert rotation_angle_deg(T_BRAIN[:3, :3]) == pytest.approx(8.0, abs=1e-9)


def test_phantom_truth_and_the_perturbation_are_as_designed():
    """Phantom lesions are distinct in size (so lesion ids, largest first, are the same on every
    scan), A shrinks by about 60%, C keeps its voxels, and the moved follow-up defeats world
    matching."""
    base, fu = phantom_components(BASE_LESIONS), phantom_components(FOLLOW_LESIONS)
    assert len(base) == 3 and len(fu) == 3
    assert len({c.count for c in base + fu}) == 5  # C is the same on both
    a0, a1 = base[0].count, fu[0].count  # A is the largest on both scans
    assert (a1 - a0) / a0 * 100.0 == pytest.approx(-60.0, abs=4.0)
    assert_world_matching_is_defeated(base, phantom_components(FOLLOW_LESIONS, T_PHANTOM), 3.0)
    assert_world_matching_is_defeated(base, phantom_components(BASE_LESIONS, T_PHANTOM), 3.0)


# --------------------------------------------------------------------------------------------
# cnsvol.register on a known rigid move


@pytest.fixture(scope="module")
def brain1_registration(brain1):
    return cnsvol.register(brain1.image, brain1.moved_image, mode="rigid")


@pytest.mark.slow
@pytest.mark.realdata
def test_register_recovers_the_known_rigid_transform(brain1, brain1_registration):
    """brain1 moved by T_BRAIN (8 deg, 40 mm). The follow-up -> baseline transform is inv(T):
    every follow-up lesion centroid T @ c must map to c within 1 mm, the rotation angle must be
    8 deg within 0.5 deg, and matrix_ras's rotation block times T's must be the identity (within
    0.5 deg). The alignment check must see a large misalignment before (the true displacement of
    every lesion is > 30 mm) and less than the 2 mm tolerance after; MI (lower = better) improves."""
    reg = brain1_registration
    assert reg.mode == "rigid"
    assert reg.converged is True and reg.reliable is True and reg.reason == ""
    assert math.isfinite(reg.similarity_before) and math.isfinite(reg.similarity_after)
    assert reg.similarity_after < reg.similarity_before
    assert reg.misalignment_before_mm > 10.0
    assert reg.misalignment_after_mm < 2.0
    assert reg.rotation_deg == pytest.approx(8.0, abs=ROT_TOL_DEG)

    m = np.asarray(reg.matrix_ras, dtype=float)
    assert m.shape == (4, 4)
    assert np.allclose(m[3], [0, 0, 0, 1])
    assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-6)  # rigid
    assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0, abs=1e-6)
    assert rotation_angle_deg(m[:3, :3] @ T_BRAIN[:3, :3]) < ROT_TOL_DEG

    base_c = np.array([c.centroid for c in brain1.base])
    follow_c = apply(T_BRAIN, base_c)
    mapped = np.asarray(reg.map_points(follow_c), dtype=float)
    assert mapped.shape == (2, 3)
    assert np.all(np.linalg.norm(mapped - base_c, axis=1) < POINT_TOL_MM)
    # map_points is matrix_ras applied to the points
    assert np.allclose(mapped, apply(m, follow_c), atol=1e-6)


@pytest.mark.slow
@pytest.mark.realdata
def test_registration_translation_and_written_transform(brain1, brain1_registration, tmp_path):
    """translation_mm is 3 floats, the RAS offset of matrix_ras (follow-up -> baseline) or of its
    inverse, and close to that of inv(T) or T (2 mm: a 0.5 deg rotation error moves the offset by
    up to ~1.5 mm at the world origin, ~170 mm from the brain1 corners). write() gives a .tfm that
    SimpleITK reads and that maps the lesion centroids between the two scans (either direction:
    ITK's own convention is fixed -> moving, i.e. baseline -> follow-up)."""
    reg = brain1_registration
    t = tuple(reg.translation_mm)
    assert len(t) == 3 and all(isinstance(v, float) and math.isfinite(v) for v in t)
    m = np.asarray(reg.matrix_ras, dtype=float)
    inv_m = np.linalg.inv(m)
    assert (np.allclose(t, m[:3, 3], atol=0.5) or np.allclose(t, inv_m[:3, 3], atol=0.5))
    inv_t = np.linalg.inv(T_BRAIN)
    assert (np.allclose(t, inv_t[:3, 3], atol=2.0) or np.allclose(t, T_BRAIN[:3, 3], atol=2.0))

    path = tmp_path / "fu_to_base.tfm"
    reg.write(path)
    assert path.is_file()
    base_c = np.array([c.centroid for c in brain1.base])
    assert tfm_is_consistent(path, base_c, apply(T_BRAIN, base_c))


# --------------------------------------------------------------------------------------------
# compare() on brain1: header-only move and a resampled copy


@pytest.mark.realdata
def test_brain1_without_registration_lesions_do_not_match(brain1):
    """register="none": world matching alone. Both baseline lesions lie > 30 mm from anything in
    the moved follow-up (see the precondition test), so both resolve and both follow-up lesions
    are new; no registration is recorded."""
    r = cnsvol.compare(brain1.label, brain1.moved_label, baseline_image=brain1.image,
                       followup_image=brain1.moved_image, register="none")
    base_label = r.series.timepoints[0].timepoint
    fu = [status(x.status) for x in r.series.tracks if x.timepoint != base_label]
    assert sorted(fu) == ["new", "new", "resolved", "resolved"]
    assert all(reg is None for reg in r.series.registrations)


@pytest.mark.slow
@pytest.mark.realdata
def test_brain1_with_rigid_registration_matches_one_to_one_with_zero_change(brain1):
    """register="rigid": both lesions match one to one (lesion k at baseline <-> lesion k at the
    follow-up: same voxel counts, so the same largest-first ids); volumes stay native, so every
    per-lesion change and the percent change are 0 (to float rounding), category SD. The centroids
    cnsvol reports equal the independent ones (baseline c, follow-up T @ c), and the registration
    maps each follow-up centroid to within 1 mm of its baseline centroid."""
    r = cnsvol.compare(brain1.label, brain1.moved_label, baseline_image=brain1.image,
                       followup_image=brain1.moved_image, register="rigid")
    base_c = {les.lesion_id: np.asarray(les.centroid_ras_mm) for les in r.baseline.lesions}
    fu_c = {les.lesion_id: np.asarray(les.centroid_ras_mm) for les in r.followup.lesions}
    assert sorted(base_c) == sorted(fu_c) == [1, 2]
    for k, comp in zip((1, 2), brain1.base):
        assert np.allclose(base_c[k], comp.centroid, atol=1e-4)
        assert np.allclose(fu_c[k], apply(T_BRAIN, comp.centroid)[0], atol=1e-4)

    base_label = r.series.timepoints[0].timepoint
    by_track: dict = {}
    for row in r.series.tracks:
        by_track.setdefault(row.track_id, {})[row.timepoint == base_label] = row
    assert len(by_track) == 2
    for rows in by_track.values():
        b, f = rows[True], rows[False]
        assert status(f.status) == "matched"
        assert tuple(b.lesion_ids) == tuple(f.lesion_ids) and len(f.lesion_ids) == 1
        assert f.volume_mm3 == pytest.approx(b.volume_mm3, rel=1e-12)
        assert f.percent_change_vs_baseline == pytest.approx(0.0, abs=1e-9)
    assert r.percent_change == pytest.approx(0.0, abs=1e-9)
    assert status(r.category) == "SD"

    reg = registration_at(r.series, 1)
    assert reg is not None and reg.reliable
    ids = sorted(fu_c)
    mapped = np.asarray(reg.map_points(np.array([fu_c[k] for k in ids])), dtype=float)
    for k, p in zip(ids, mapped):
        assert np.linalg.norm(p - base_c[k]) < POINT_TOL_MM


@pytest.mark.slow
@pytest.mark.realdata
def test_brain1_resampled_copy_matches_and_keeps_native_volumes(brain1):
    """The moved scan resampled to 1.2 x 1.2 x 4 mm (image linear, mask nearest neighbour).
    Truth: a follow-up lesion whose centroid is p in the follow-up world sits at inv(T) @ p in
    the baseline world; the registration must map it there within 1 mm. Both lesions match one
    to one (the larger with the larger), and the volumes cnsvol reports are the native ones:
    voxel count x 1.2 x 1.2 x 4 mm3 at the follow-up (counted with scipy), so each per-lesion
    change is (v_fu - v_base) / v_base x 100 from those counts."""
    r = cnsvol.compare(brain1.label, brain1.resampled_label, baseline_image=brain1.image,
                       followup_image=brain1.resampled_image, register="rigid")
    base_label = r.series.timepoints[0].timepoint
    fu_rows = [x for x in r.series.tracks if x.timepoint != base_label]
    assert sorted(status(x.status) for x in fu_rows) == ["matched", "matched"]
    expected_total = sum(c.volume for c in brain1.resampled)
    assert r.series.timepoints[1].total_volume_mm3 == pytest.approx(expected_total, rel=1e-9)
    base_rows = {x.track_id: x for x in r.series.tracks if x.timepoint == base_label}
    for row in fu_rows:
        (k,) = row.lesion_ids
        (kb,) = base_rows[row.track_id].lesion_ids
        assert k == kb  # largest with largest
        v_b, v_f = brain1.base[k - 1].volume, brain1.resampled[k - 1].volume
        assert row.volume_mm3 == pytest.approx(v_f, rel=1e-9)
        assert row.percent_change_vs_baseline == pytest.approx((v_f - v_b) / v_b * 100, abs=1e-6)

    reg = registration_at(r.series, 1)
    assert reg is not None and reg.reliable
    assert reg.rotation_deg == pytest.approx(8.0, abs=ROT_TOL_DEG)
    fu_c = np.array([c.centroid for c in brain1.resampled])
    mapped = np.asarray(reg.map_points(fu_c), dtype=float)
    truth = apply(np.linalg.inv(T_BRAIN), fu_c)
    assert np.all(np.linalg.norm(mapped - truth, axis=1) < POINT_TOL_MM)


# --------------------------------------------------------------------------------------------
# a series where the follow-up is moved AND changed


def _phantom_series(phantom, moved: bool, **kw):
    masks = [phantom.base_mask, phantom.fu_mask_moved if moved else phantom.fu_mask]
    return cnsvol.evaluate_series(masks, [0, 56], timepoints=["T0", "T1"], **kw)


def _unmoved_reference(phantom):
    """The same lesions with no move: world matching is right by construction."""
    return _phantom_series(phantom, moved=False)


def test_unmoved_phantom_series_is_as_derived_by_hand(phantom):
    """Reference series (no move, no images): track of A matched at T1 with the voxel-count
    change (about -60%), B resolved, C matched at exactly 0%, D new. This pins the reference the
    moved series is compared against (it holds today)."""
    res = _unmoved_reference(phantom)
    base, fu = phantom_components(BASE_LESIONS), phantom_components(FOLLOW_LESIONS)
    st = sorted(status(r.status) for r in rows_at(res, "T1"))
    assert st == ["matched", "matched", "new", "resolved"]
    # lesion ids are largest first: baseline A=1, C=2, B=3; follow-up A'=1, C=2, D=3
    by_id = {r.lesion_ids: r for r in rows_at(res, "T1") if r.lesion_ids}
    a = by_id[(1,)]
    assert status(a.status) == "matched"
    assert a.percent_change_vs_baseline == pytest.approx(
        (fu[0].count - base[0].count) / base[0].count * 100.0, abs=1e-9)
    assert status(by_id[(2,)].status) == "matched"
    assert by_id[(2,)].percent_change_vs_baseline == pytest.approx(0.0, abs=1e-9)
    assert status(by_id[(3,)].status) == "new"


def test_moved_and_changed_follow_up_without_registration_fails_to_match(phantom):
    """register="none" on the moved follow-up: world matching finds nothing (every baseline track
    resolves, every follow-up lesion is new), so registration is needed."""
    res = _phantom_series(phantom, moved=True, images=[phantom.base_img, phantom.fu_img_moved],
                          register="none")
    st = sorted(status(r.status) for r in rows_at(res, "T1"))
    assert st == ["new", "new", "new", "resolved", "resolved", "resolved"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["rigid", "auto"])
def test_moved_and_changed_follow_up_gives_the_unmoved_results(phantom, mode):
    """The follow-up moved by T_PHANTOM (10 deg, ~37 mm) and changed (A -60%, B resolved, D new):
    with registration (explicit rigid, or auto since the misalignment is far above 2 mm), every
    track's status, lesion ids, native volume and per-lesion change equal those of the unmoved
    series (header-only move: the same voxels), and so do the timepoint totals and category. The
    registration maps the moved follow-up centroids to their unmoved positions within 1 mm."""
    ref = _unmoved_reference(phantom)
    res = _phantom_series(phantom, moved=True, images=[phantom.base_img, phantom.fu_img_moved],
                          register=mode)
    assert_same_tracks(res, ref)
    assert_same_timepoints(res, ref)
    reg = registration_at(res, 1)
    assert reg is not None and reg.reliable and reg.converged
    assert reg.rotation_deg == pytest.approx(10.0, abs=ROT_TOL_DEG)
    fu = phantom_components(FOLLOW_LESIONS)
    moved_c = apply(T_PHANTOM, np.array([c.centroid for c in fu]))
    mapped = np.asarray(reg.map_points(moved_c), dtype=float)
    assert np.all(np.linalg.norm(mapped - np.array([c.centroid for c in fu]), axis=1) < POINT_TOL_MM)


@pytest.mark.slow
def test_chained_registration_to_the_previous_timepoint(phantom):
    """Three visits: T1 moved by T_PHANTOM, T2 (same lesions as T1) moved by T_PHANTOM_2.
    register_to="previous" registers T2 to T1 and chains; the tracks must equal those of the
    unmoved three-visit series (A matched, C matched, D new then matched, B resolved). The T2
    registration maps T2 centroids either to the T1 world (T_PHANTOM @ c, the pairwise transform)
    or to the baseline world (c, the chained one) within 1 mm."""
    ref = cnsvol.evaluate_series([phantom.base_mask, phantom.fu_mask, phantom.fu3_mask],
                                 [0, 56, 112], timepoints=["T0", "T1", "T2"])
    res = cnsvol.evaluate_series(
        [phantom.base_mask, phantom.fu_mask_moved, phantom.fu3_mask_moved], [0, 56, 112],
        timepoints=["T0", "T1", "T2"],
        images=[phantom.base_img, phantom.fu_img_moved, phantom.fu3_img_moved],
        register="rigid", register_to="previous")
    assert_same_tracks(res, ref)
    assert_same_timepoints(res, ref)
    reg2 = registration_at(res, 2)
    assert reg2 is not None and reg2.reliable
    c = np.array([x.centroid for x in phantom_components(FOLLOW_LESIONS)])
    mapped = np.asarray(reg2.map_points(apply(T_PHANTOM_2, c)), dtype=float)
    to_previous = np.all(np.linalg.norm(mapped - apply(T_PHANTOM, c), axis=1) < POINT_TOL_MM)
    to_baseline = np.all(np.linalg.norm(mapped - c, axis=1) < POINT_TOL_MM)
    assert to_previous or to_baseline


@pytest.mark.slow
def test_affine_mode_and_fixed_mask(phantom):
    """mode="affine" (and a fixed-image head mask for the rigid mode) on the moved phantom: the
    true transform is rigid, so either must still map the moved follow-up centroids back within
    1 mm, and report its mode."""
    fu = phantom_components(FOLLOW_LESIONS)
    c = np.array([x.centroid for x in fu])
    aff = cnsvol.register(phantom.base_img, phantom.fu_img_moved, mode="affine")
    assert aff.mode == "affine" and aff.reliable
    assert np.all(np.linalg.norm(np.asarray(aff.map_points(apply(T_PHANTOM, c))) - c, axis=1)
                  < POINT_TOL_MM)
    masked = cnsvol.register(phantom.base_img, phantom.fu_img_moved, mode="rigid",
                             fixed_mask=phantom.head_mask)
    assert masked.mode == "rigid" and masked.reliable
    assert masked.rotation_deg == pytest.approx(10.0, abs=ROT_TOL_DEG)
    assert np.all(np.linalg.norm(np.asarray(masked.map_points(apply(T_PHANTOM, c))) - c, axis=1)
                  < POINT_TOL_MM)


# --------------------------------------------------------------------------------------------
# auto, none, and visible failure


@pytest.mark.slow
def test_auto_with_already_aligned_images_changes_nothing(phantom):
    """Images on identical geometry (follow-up unmoved, only lesions changed): the estimated
    misalignment is ~0, below the 2 mm tolerance, so auto either does not register (None) or
    registers to ~0; results equal those of a run without images."""
    ref = _unmoved_reference(phantom)
    res = _phantom_series(phantom, moved=False, images=[phantom.base_img, phantom.fu_img])
    assert_same_tracks(res, ref)
    assert_same_timepoints(res, ref)
    reg = registration_at(res, 1)
    if reg is not None:
        assert reg.misalignment_before_mm < 2.0
        # None when auto stopped before the finest level (aligned within a quarter of the
        # tolerance at the coarser ones: no second pass was needed)
        assert reg.misalignment_after_mm is None or reg.misalignment_after_mm < 2.0
        assert not reg.applied


def test_register_none_reproduces_the_run_without_images(phantom):
    """register="none" with images must give exactly what a run without images gives (tracks,
    timepoints, matchings, subject summary; fields this feature adds are left out), with no
    registration recorded."""
    plain = _phantom_series(phantom, moved=True)
    none = _phantom_series(phantom, moved=True, images=[phantom.base_img, phantom.fu_img_moved],
                           register="none")
    assert _plain(none.tracks) == _plain(plain.tracks)
    assert _plain(none.timepoints) == _plain(plain.timepoints)
    assert _plain(none.matchings) == _plain(plain.matchings)
    assert _plain(none.subject) == _plain(plain.subject)
    assert all(reg is None for reg in none.registrations)

    c_plain = cnsvol.compare(phantom.base_mask, phantom.fu_mask_moved)
    c_none = cnsvol.compare(phantom.base_mask, phantom.fu_mask_moved,
                            baseline_image=phantom.base_img,
                            followup_image=phantom.fu_img_moved, register="none")
    assert _plain(c_none.to_dict()) == _plain(c_plain.to_dict())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_failed_registration_is_visible_and_keeps_the_totals(phantom, kind):
    """The follow-up holds the baseline lesions unchanged, moved by T_PHANTOM, but its image is
    blank (constant) or pure noise: nothing to register to. The registration must be recorded as
    unreliable with a reason; every T1 track row is 'unregistered' with its per-lesion change NE;
    the T1 total volume is the native one (3 lesions' voxel counts x 15.625 mm3, equal to the
    run without registration); the category from totals is still given: 0% change -> SD."""
    img = phantom.blank_img if kind == "blank" else phantom.noise_img
    masks = [phantom.base_mask, phantom.same_mask_moved]
    res = cnsvol.evaluate_series(masks, [0, 56], timepoints=["T0", "T1"],
                                 images=[phantom.base_img, img], register="rigid")
    reg = registration_at(res, 1)
    assert reg is not None
    assert reg.reliable is False
    assert isinstance(reg.reason, str) and reg.reason.strip()

    t1 = rows_at(res, "T1")
    assert t1 and {status(r.status) for r in t1} == {"unregistered"}
    assert all(is_ne(r.percent_change_vs_baseline) for r in t1)

    expected = sum(c.count for c in phantom_components(BASE_LESIONS)) * PH_VOXEL_MM3
    plain = cnsvol.evaluate_series(masks, [0, 56], timepoints=["T0", "T1"])
    for tp, ref in zip(res.timepoints, plain.timepoints):
        assert tp.total_volume_mm3 == pytest.approx(ref.total_volume_mm3, rel=1e-12)
    assert res.timepoints[1].total_volume_mm3 == pytest.approx(expected, rel=1e-9)
    assert status(res.timepoints[1].category) == "SD"


def _registration_texts(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fn()
    texts = [str(w.message) for w in caught]
    texts += text_of(res.timepoints) + text_of(getattr(res, "subject", None))
    for name in dir(res):
        if "warn" in name.lower() and not name.startswith("_"):
            texts += text_of(getattr(res, name))
    return [t for t in texts if "regist" in t.lower()]


def test_masks_only_warns_when_scans_look_misaligned(phantom):
    """No images. Every lesion of the follow-up is shifted 16 mm (radius-5 mm spheres: diameter
    10 mm < 16 mm, so none overlaps; centroid distance 16 mm > 5 + 5 mm, so no centroid match)
    while centroids stay within a few cm: the scans may not be co-registered, and cnsvol must say
    so (a Python warning or a reason/warning text mentioning registration). A genuine change
    (one lesion gone, two overlapping themselves) must not raise that warning."""
    small = [((-30.0, 10.0, 0.0), 5.0), ((25.0, 20.0, 10.0), 5.0), ((0.0, -35.0, -15.0), 5.0)]
    shifted = [((c[0], c[1], c[2] + 16.0), r) for c, r in small]
    d = phantom.dir
    base = write_sitk(d / "small_base.nrrd", phantom_mask(small), PH_AFFINE)
    moved = write_sitk(d / "small_shift.nrrd", phantom_mask(shifted), PH_AFFINE)
    changed = write_sitk(d / "small_changed.nrrd", phantom_mask(small[:2]), PH_AFFINE)
    assert_world_matching_is_defeated(components(phantom_mask(small), PH_AFFINE),
                                      components(phantom_mask(shifted), PH_AFFINE),
                                      min_gap_mm=3.0)  # 2.5 mm voxels

    hits = _registration_texts(lambda: cnsvol.evaluate_series([base, moved], [0, 56]))
    assert hits, "no warning that the scans may not be co-registered"
    assert not _registration_texts(lambda: cnsvol.evaluate_series([base, changed], [0, 56]))


# --------------------------------------------------------------------------------------------
# the command line, end to end


def _cli(args, cwd) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("cnsvol_cli") is not None:
        cmd = [sys.executable, "-m", "cnsvol_cli", *args]
    elif importlib.util.find_spec("cli") is not None:
        cmd = [sys.executable, "-m", "cli", *args]
    else:
        cmd = [str(Path(sys.executable).parent / "cnsvol"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?", cell)]


@pytest.mark.slow
@pytest.mark.realdata
def test_cli_run_registers_stores_transforms_and_parameters(brain1, tmp_path):
    """`cnsvol run MANIFEST --out DIR --register auto` on brain1 (baseline read in place) and its
    moved copy: both lesions match at the follow-up, tracks.csv carries the rotation (8 deg within
    0.5) and a 3-number translation for the follow-up rows, the percent change is 0, and at least
    one .tfm under DIR/transforms maps the lesion centroids between the scans (SimpleITK)."""
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["subject_id", "timepoint", "days_from_baseline", "mask_path", "image_path"])
        w.writerow(["S1", "base", 0, str(brain1.label), str(brain1.image)])
        w.writerow(["S1", "fu", 56, str(brain1.moved_label), str(brain1.moved_image)])
    out = tmp_path / "out"
    proc = _cli(["run", str(manifest), "--out", str(out), "--register", "auto", "--jobs", "1",
                 "--no-qc", "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    with (out / "tracks.csv").open(newline="", encoding="utf-8") as fh:
        tracks = list(csv.DictReader(fh))
    for col in ("status", "registration_rotation_deg", *(f"registration_translation_{a}_mm"
                                                        for a in "xyz")):
        assert col in tracks[0], col
    fu = [t for t in tracks if t["timepoint"] == "fu"]
    assert sorted(t["status"] for t in fu) == ["matched", "matched"]
    for t in fu:
        assert float(t["registration_rotation_deg"]) == pytest.approx(8.0, abs=ROT_TOL_DEG)
        assert all(_numbers(t[f"registration_translation_{a}_mm"]) for a in "xyz")
    with (out / "timepoints.csv").open(newline="", encoding="utf-8") as fh:
        tps = {r["timepoint"]: r for r in csv.DictReader(fh)}
    assert float(tps["fu"]["percent_change_vs_baseline"]) == pytest.approx(0.0, abs=1e-6)

    tfms = sorted((out / "transforms").rglob("*.tfm"))
    assert tfms
    for p in tfms:
        sitk.ReadTransform(str(p))
    base_c = np.array([c.centroid for c in brain1.base])
    assert any(tfm_is_consistent(p, base_c, apply(T_BRAIN, base_c)) for p in tfms)


def _find_numbers_under(doc, word: str) -> list[float]:
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if word in str(k).lower() and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(float(v))
            out += _find_numbers_under(v, word)
    elif isinstance(doc, list):
        for v in doc:
            out += _find_numbers_under(v, word)
    return out


@pytest.mark.slow
def test_cli_compare_json_with_rigid_registration(phantom, tmp_path):
    """`cnsvol compare BASE FU --baseline-image --followup-image --register rigid --format json`
    on the moved and changed phantom: the track statuses (A matched, C matched, B resolved,
    D new) and the percent change equal those of the unmoved pair compared without images, and
    the JSON reports the recovered rotation (10 deg within 0.5)."""
    proc = _cli(["compare", str(phantom.base_mask), str(phantom.fu_mask_moved),
                 "--baseline-image", str(phantom.base_img),
                 "--followup-image", str(phantom.fu_img_moved),
                 "--register", "rigid", "--format", "json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert sorted(t["status"] for t in doc["tracks"]) == ["matched", "matched", "new", "resolved"]
    ref = cnsvol.compare(phantom.base_mask, phantom.fu_mask)
    assert doc["percent_change"] == pytest.approx(ref.percent_change, abs=1e-6)
    assert doc["category"] == status(ref.category)
    rotations = _find_numbers_under(doc, "rotation")
    assert rotations and any(abs(v - 10.0) < ROT_TOL_DEG for v in rotations)
