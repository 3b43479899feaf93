"""Reading masks (cnsvol.io): geometry in RAS+ mm, units, storage types, label selection, errors.

The geometry cases use an anisotropic, non-cubic grid (spacing 0.5 x 0.8 x 1.2 mm, shape
10 x 12 x 14, origin (-12.25, 30.5, 7.75)), optionally rotated (Euler angles 20, -35, 50 degrees
about x, y, z) and with every combination of axis flips, so an axis-order, LPS/RAS or unit
mix-up changes the numbers.

The test mask ``BLOB`` (hand counts):

* a box ``[1:4, 2:7, 3:12]``: 3 x 5 x 9 = 135 voxels, mean index (2, 4, 7);
* a bar ``[4:9, 2, 3]`` touching the box's face at (3, 2, 3): 5 voxels, index sums i = 30,
  j = 10, k = 15;
* together one lesion of 140 voxels, mean index (300 / 140, 550 / 140, 960 / 140)
  = (15/7, 55/14, 48/7);
* and a single voxel at the far corner (9, 11, 13) (catches off-by-one / shape transposes).

Expected centroids are ``affine @ (mean index, 1)``; volumes are counts x 0.48 mm3. NIfTI stores
the sform in float32, so the expected affine is the float64 affine rounded to float32 (written
identically to all three formats); 0.8 mm then reads as 0.800000011920929 mm, hence the 1e-6
relative tolerance on 0.48 for files, while an in-memory float64 affine gives 0.48 to 1e-15.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import affine_from, nifti_bytes, patch_nifti_header, write_nifti, write_sitk
from scipy.spatial.transform import Rotation

from cnsvol.errors import MaskError, MaskTooLargeError
from cnsvol.io import mask_format, mask_from_array, read_mask
from cnsvol.io import LABEL_PRESETS, parse_labels
from cnsvol.lesions import find_lesions

SPACING = (0.5, 0.8, 1.2)
SHAPE = (10, 12, 14)
ORIGIN = (-12.25, 30.5, 7.75)
VOX_MM3 = 0.48  # 0.5 * 0.8 * 1.2
ROTATION = Rotation.from_euler("xyz", [20.0, -35.0, 50.0], degrees=True).as_matrix()
FLIPS = list(itertools.product((1.0, -1.0), repeat=3))

BLOB_MEAN_INDEX = np.array([15 / 7, 55 / 14, 48 / 7])
CORNER_INDEX = np.array([9.0, 11.0, 13.0])


def blob() -> np.ndarray:
    data = np.zeros(SHAPE, dtype=np.uint8)
    data[1:4, 2:7, 3:12] = 1
    data[4:9, 2, 3] = 1
    data[9, 11, 13] = 1
    return data


def make_affine(flips=(1.0, 1.0, 1.0), oblique=False, float32=True) -> np.ndarray:
    rot = ROTATION if oblique else np.eye(3)
    aff = affine_from(rot @ np.diag(SPACING) @ np.diag(flips), ORIGIN)
    if float32:  # what a NIfTI sform can hold
        aff = aff.astype(np.float32).astype(np.float64)
    return aff


def world(affine, index) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(index, dtype=np.float64) + affine[:3, 3]


WRITERS = {
    "nifti1.nii.gz": lambda p, d, a: write_nifti(p, d, a),
    "nifti2.nii": lambda p, d, a: write_nifti(p, d, a, nifti2=True),
    "nrrd.nrrd": write_sitk,
    "metaimage.mha": write_sitk,
}


def assert_mask_error(excinfo, path, *words, cls=MaskError):
    """The error is a MaskError (hence a ValueError) naming the file and saying how to fix it."""
    err = excinfo.value
    assert isinstance(err, cls) and isinstance(err, ValueError)
    text = str(err)
    assert Path(path).name in text, text
    assert "Fix" in text, text
    for word in words:
        assert word.lower() in text.lower(), text


# --------------------------------------------------------------------------------------------
# geometry


@pytest.mark.parametrize("oblique", [False, True], ids=["aligned", "oblique"])
@pytest.mark.parametrize("flips", FLIPS, ids=lambda f: "".join("+" if v > 0 else "-" for v in f))
def test_same_mask_in_every_format_gives_the_hand_computed_geometry(tmp_path, flips, oblique):
    affine = make_affine(flips, oblique)
    data = blob()
    results = {}
    for name, writer in WRITERS.items():
        path = writer(tmp_path / f"mask.{name}", data, affine)
        m = read_mask(path)
        assert m.source_format == name.split(".")[0]
        assert m.shape == SHAPE
        assert np.array_equal(m.data, data)
        np.testing.assert_allclose(m.affine, affine, rtol=0, atol=1e-9)
        assert m.spacing_mm == pytest.approx(SPACING, rel=1e-6)
        assert m.voxel_volume_mm3 == pytest.approx(VOX_MM3, rel=1e-6)
        assert m.voxel_volume_mm3 == pytest.approx(abs(np.linalg.det(affine[:3, :3])), rel=1e-12)

        ls = find_lesions(m)
        assert [les.voxel_count for les in ls.lesions] == [140, 1]
        for les in ls.lesions:
            assert les.volume_mm3 == pytest.approx(les.voxel_count * VOX_MM3, rel=1e-6)
        assert ls.lesions[0].centroid_ras_mm == pytest.approx(
            tuple(world(affine, BLOB_MEAN_INDEX)), abs=1e-6
        )
        assert ls.lesions[1].centroid_ras_mm == pytest.approx(
            tuple(world(affine, CORNER_INDEX)), abs=1e-6
        )
        results[name] = ls

    ref = results["nifti1.nii.gz"]
    for name, ls in results.items():
        assert ls.total_volume_mm3 == pytest.approx(ref.total_volume_mm3, rel=1e-12), name
        for a, b in zip(ls.lesions, ref.lesions, strict=True):
            assert a.centroid_ras_mm == pytest.approx(b.centroid_ras_mm, abs=1e-6), name
            assert a.volume_mm3 == pytest.approx(b.volume_mm3, rel=1e-12), name


@pytest.mark.parametrize("flips", FLIPS)
def test_in_memory_float64_affine_gives_exact_voxel_volume(flips):
    aligned = mask_from_array(blob(), make_affine(flips, float32=False))
    assert aligned.voxel_volume_mm3 == pytest.approx(0.48, rel=1e-15, abs=0)
    oblique = mask_from_array(blob(), make_affine(flips, oblique=True, float32=False))
    assert oblique.voxel_volume_mm3 == pytest.approx(0.48, rel=1e-12, abs=0)
    assert oblique.spacing_mm == pytest.approx(SPACING, rel=1e-12)
    ls = find_lesions(oblique)
    assert ls.lesions[0].volume_mm3 == pytest.approx(140 * 0.48, rel=1e-12)
    assert ls.lesions[0].centroid_ras_mm == pytest.approx(
        tuple(world(oblique.affine, BLOB_MEAN_INDEX)), abs=1e-9
    )


def test_sitk_files_store_lps_geometry(tmp_path):
    """Independent look at the NRRD we wrote: ITK origin is the RAS origin with x, y negated."""
    import SimpleITK as sitk

    affine = make_affine(oblique=True)
    path = write_sitk(tmp_path / "m.nrrd", blob(), affine)
    img = sitk.ReadImage(str(path))
    assert img.GetSize() == SHAPE
    assert img.GetOrigin() == pytest.approx((12.25, -30.5, 7.75))
    assert img.GetSpacing() == pytest.approx(SPACING, rel=1e-6)
    # the voxel at index (9, 11, 13) is on, as in the [i, j, k] array
    assert img[9, 11, 13] == 1 and img[0, 0, 0] == 0


# --------------------------------------------------------------------------------------------
# NIfTI spatial units


@pytest.mark.parametrize("unit, factor", [("meter", 1e-3), ("micron", 1e3)])
def test_spatial_units_are_converted_to_mm(tmp_path, unit, factor):
    affine_mm = make_affine((1.0, -1.0, 1.0), oblique=True)
    ref = find_lesions(read_mask(write_nifti(tmp_path / "mm.nii.gz", blob(), affine_mm)))
    scaled = affine_mm.copy()
    scaled[:3, :] *= factor  # linear part and origin in the header's unit
    m = read_mask(write_nifti(tmp_path / f"{unit}.nii.gz", blob(), scaled, xyzt_units=unit))
    assert m.voxel_volume_mm3 == pytest.approx(VOX_MM3, rel=1e-6)
    assert any(unit in note for note in m.notes)
    ls = find_lesions(m)
    assert ls.total_volume_mm3 == pytest.approx(ref.total_volume_mm3, rel=1e-6)
    assert ls.total_volume_mm3 == pytest.approx(141 * VOX_MM3, rel=1e-6)
    for a, b in zip(ls.lesions, ref.lesions, strict=True):
        # float32 header: ~1e-7 relative on coordinates of ~30 mm
        assert a.centroid_ras_mm == pytest.approx(b.centroid_ras_mm, abs=1e-4)


def test_unknown_spatial_unit_is_read_as_mm_with_a_note(tmp_path):
    affine = make_affine(oblique=True)
    ref = read_mask(write_nifti(tmp_path / "mm.nii.gz", blob(), affine))
    m = read_mask(write_nifti(tmp_path / "unknown.nii.gz", blob(), affine, xyzt_units="unknown"))
    assert nib.load(m.path).header.get_xyzt_units()[0] == "unknown"
    assert ref.notes == ()
    assert len(m.notes) == 1 and "millimetres assumed" in m.notes[0]
    np.testing.assert_array_equal(m.affine, ref.affine)
    assert m.voxel_volume_mm3 == ref.voxel_volume_mm3


# --------------------------------------------------------------------------------------------
# storage


LABELLED = {1: 3, 2: 5, 3: 7, 4: 11}  # label value -> voxel count, distinct so sums identify


def labelled() -> np.ndarray:
    data = np.zeros(SHAPE, dtype=np.int16).ravel()
    pos = 0
    for value, count in LABELLED.items():
        data[pos * 7 : pos * 7 + count] = value  # non-overlapping runs
        pos += count
    return data.reshape(SHAPE)


@pytest.mark.parametrize("dtype", ["uint8", ">i2", "<i2", "int32", "uint16"])
def test_integer_storage_keeps_the_stored_labels(tmp_path, dtype):
    data = labelled()
    path = write_nifti(tmp_path / "m.nii.gz", data, make_affine(), dtype=dtype)
    assert nib.load(path).get_data_dtype() == np.dtype(dtype)
    m = read_mask(path)
    assert m.storage == "integer"
    assert m.data.dtype.kind in "iu" and m.data.dtype.isnative
    assert np.array_equal(m.data, data)
    assert m.threshold is None


def test_big_endian_uncompressed_nifti(tmp_path):
    data = labelled()
    path = write_nifti(tmp_path / "m.nii", data, make_affine(oblique=True), dtype=">i2")
    assert path.read_bytes()[:4] == (348).to_bytes(4, "big")  # sizeof_hdr, big-endian header
    m = read_mask(path)
    assert np.array_equal(m.data, data)
    assert find_lesions(m, instance_labels=True).total_voxel_count == sum(LABELLED.values())


def test_float32_integral_labels_become_integers(tmp_path):
    data = np.zeros(SHAPE, dtype=np.float32)
    data[0, 0, :4], data[5, 5, :2], data[8, 8, :6] = 1.0, 2.0, 4.0
    m = read_mask(write_nifti(tmp_path / "m.nii.gz", data, make_affine()))
    assert m.storage == "float-integral"
    assert m.data.dtype.kind in "iu"
    assert sorted(np.unique(m.data).tolist()) == [0, 1, 2, 4]
    assert [int((m.data == v).sum()) for v in (1, 2, 4)] == [4, 2, 6]
    m_tc = read_mask(m.path, labels="brats-tc")  # {1, 4} also works on float storage
    assert sorted(np.unique(m_tc.data).tolist()) == [0, 1, 4]


def test_scaled_int32_that_reads_0_99999997_is_label_1(tmp_path):
    """scl_slope = 2**-32, scl_inter = 0.5 (as in the deepmedic BRATS brain masks).

    Off voxels store -2**31: -2**31 * 2**-32 + 0.5 = 0 exactly. On voxels store
    round(0.49999997 * 2**32) = 2147483519: 2147483519 * 2**-32 + 0.5 = 0.99999997.
    """
    on = round(0.49999997 * 2**32)
    assert on == 2147483519
    stored = np.full(SHAPE, -(2**31), dtype=np.int64)
    truth = blob().astype(bool)
    stored[truth] = on
    path = write_nifti(tmp_path / "m.nii.gz", stored, make_affine(), dtype="int32",
                       slope=2.0**-32, inter=0.5)
    raw = np.asanyarray(nib.load(path).dataobj)
    assert raw[truth] == pytest.approx(0.99999997, abs=1e-9)
    assert not np.any(raw == 1)  # the trap: `== 1` finds nothing
    assert np.all(raw[~truth] == 0)
    m = read_mask(path)
    assert m.storage == "float-integral"
    assert np.array_equal(m.data, truth.astype(np.uint8))
    assert find_lesions(m).total_voxel_count == 141


def test_probability_map_threshold_is_inclusive_and_configurable(tmp_path):
    data = np.zeros(SHAPE, dtype=np.float32)
    data[0, 0, 0] = 0.5
    data[2, 2, 2] = 0.49
    data[4, 4, 4] = 0.9
    data[6, 6, 6] = 0.1
    data[8, 8, 8] = 0.3
    path = write_nifti(tmp_path / "prob.nii.gz", data, make_affine())
    m = read_mask(path)
    assert m.storage == "float-thresholded" and m.threshold == 0.5
    assert m.data.dtype == np.uint8
    on = {tuple(int(v) for v in ijk) for ijk in np.argwhere(m.data)}
    assert on == {(0, 0, 0), (4, 4, 4)}  # 0.5 in, 0.49 out
    m3 = read_mask(path, threshold=0.3)
    assert m3.threshold == 0.3
    on3 = {tuple(int(v) for v in ijk) for ijk in np.argwhere(m3.data)}
    assert on3 == {(0, 0, 0), (2, 2, 2), (4, 4, 4), (8, 8, 8)}  # 0.3 in, 0.1 out


def test_probability_map_from_array():
    data = np.zeros((3, 4, 5))
    data[1, 2, 3] = 0.75
    data[0, 0, 0] = 0.25
    m = mask_from_array(data, make_affine(float32=False))
    assert m.storage == "float-thresholded"
    assert np.argwhere(m.data).tolist() == [[1, 2, 3]]


# BraTS conventions, written out from cnsvol.labelsets' docstring (and the challenges' papers)
EXPECTED_PRESETS = {
    "all": None,
    "brats-et": (4,),
    "brats-tc": (1, 4),
    "brats-wt": (1, 2, 4),
    "brats-mets-et": (3,),
    "brats-mets-tc": (1, 3),
    "brats-mets-wt": (1, 2, 3),
}


def test_presets_are_the_documented_conventions():
    assert LABEL_PRESETS == EXPECTED_PRESETS


@pytest.mark.parametrize("preset", sorted(EXPECTED_PRESETS))
def test_label_presets_select_the_right_voxels(tmp_path, preset):
    path = write_nifti(tmp_path / "labels.nii.gz", labelled(), make_affine(), dtype="int16")
    m = read_mask(path, labels=preset.upper())  # preset names are case-insensitive
    chosen = EXPECTED_PRESETS[preset] or tuple(LABELLED)
    assert m.labels == EXPECTED_PRESETS[preset]
    assert int((m.data > 0).sum()) == sum(LABELLED[v] for v in chosen)
    assert set(np.unique(m.data).tolist()) - {0} == set(chosen)
    kept = np.isin(labelled(), chosen)
    assert np.array_equal(m.data[kept], labelled()[kept])


@pytest.mark.parametrize(
    "spec, expected",
    [("1,3", (1, 3)), (" 3, 1 ,3", (1, 3)), ([4, 1], (1, 4)), ((2,), (2,)), ("4", (4,))],
)
def test_explicit_label_values(tmp_path, spec, expected):
    assert parse_labels(spec) == expected
    path = write_nifti(tmp_path / "labels.nii.gz", labelled(), make_affine(), dtype="int16")
    m = read_mask(path, labels=spec)
    assert m.labels == expected
    assert int((m.data > 0).sum()) == sum(LABELLED[v] for v in expected)


def test_bool_array_via_mask_from_array():
    data = blob().astype(bool)
    m = mask_from_array(data, make_affine(oblique=True, float32=False))
    assert m.storage == "integer" and m.source_format == "array" and m.path is None
    assert m.data.dtype.kind in "iu"
    assert np.array_equal(m.data, data.astype(np.uint8))
    ls = find_lesions(m)
    assert ls.total_voxel_count == 141
    assert ls.total_volume_mm3 == pytest.approx(141 * 0.48, rel=1e-12)


def test_trailing_singleton_4th_dimension_is_squeezed(tmp_path):
    data = blob()[:5, :5, :5, None]
    path = write_nifti(tmp_path / "m.nii.gz", data, make_affine())
    assert nib.load(path).shape == (5, 5, 5, 1)
    m = read_mask(path)
    assert m.shape == (5, 5, 5)
    assert np.array_equal(m.data, data[..., 0])


def test_mask_format_by_suffix():
    assert mask_format("a/B.NII.GZ") == "nifti"
    assert mask_format("b.nii") == "nifti"
    assert [mask_format(f"c.{e}") for e in ("nrrd", "nhdr", "mha", "mhd")] == ["sitk"] * 4


# --------------------------------------------------------------------------------------------
# errors


def small_nifti(tmp_path, name="m.nii", data=None, **kw) -> Path:
    data = blob() if data is None else data
    return write_nifti(tmp_path / name, data, make_affine(), **kw)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.nii.gz"
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "not found")


def test_directory(tmp_path):
    path = tmp_path / "folder.nii.gz"
    path.mkdir()
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.write_bytes(b"")
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "empty")


def test_nii_gz_that_is_not_gzip(tmp_path):
    path = tmp_path / "plain.nii.gz"
    path.write_bytes(nifti_bytes(blob(), make_affine()))
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "gzip")


def test_truncated_nii_gz(tmp_path):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 3, size=(30, 30, 30), dtype=np.uint8)  # compresses poorly
    path = write_nifti(tmp_path / "cut.nii.gz", data, make_affine())
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "truncated")


def test_real_4d_is_refused(tmp_path):
    data = np.zeros((5, 5, 5, 2), dtype=np.uint8)
    data[1, 1, 1, :] = 1
    path = small_nifti(tmp_path, "fourd.nii.gz", data)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "4D")


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_nan_and_inf_values(tmp_path, bad, word):
    data = blob().astype(np.float32)
    data[5, 5, 5] = bad
    path = small_nifti(tmp_path, "bad.nii.gz", data)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, word)
    with pytest.raises(MaskError):
        mask_from_array(data, make_affine())


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_negative_labels(tmp_path, dtype):
    data = blob().astype(dtype)
    data[0, 0, 0] = -1
    path = small_nifti(tmp_path, "neg.nii.gz", data)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "negative", "-1")


def test_negative_values_in_fractional_map(tmp_path):
    data = np.full(SHAPE, 0.25, dtype=np.float32)
    data[0, 0, 0] = -0.5
    path = small_nifti(tmp_path, "negprob.nii.gz", data)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "negative")


def test_header_with_huge_dimensions_is_refused_before_reading(tmp_path):
    """A valid 10x12x14 header patched to 10000^3 (1e12 voxels); the file holds only the
    header and the original 1680 data bytes, so any attempt to read the data would fail
    differently (or exhaust memory)."""
    path = small_nifti(tmp_path, "huge.nii")
    patch_nifti_header(path, dim=[3, 10000, 10000, 10000, 1, 1, 1, 1])
    assert nib.load(path).shape == (10000, 10000, 10000)
    with pytest.raises(MaskTooLargeError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "1,000,000,000,000", cls=MaskTooLargeError)


def test_huge_nrrd_header_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.nrrd"
    path.write_bytes(
        b"NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\n"
        b"sizes: 10000 10000 10000\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
        b"kinds: domain domain domain\nencoding: raw\nspace origin: (0,0,0)\n\n" + b"\0" * 64
    )
    with pytest.raises(MaskTooLargeError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, cls=MaskTooLargeError)


def test_max_bytes_limit_is_inclusive_and_bounds_the_estimated_peak(tmp_path):
    """The limit applies to the memory estimate, by hand: 1680 uint8 voxels x (1 decoded + 3
    working) + what is held while reading (the .gz file whole and its 352-byte header; for
    NRRD, SimpleITK's buffer beside its numpy copy: 2 x 1 + 3 per voxel)."""
    from cnsvol.io.files import WORKING_BYTES_PER_VOXEL

    assert WORKING_BYTES_PER_VOXEL == 3
    path = small_nifti(tmp_path, "m.nii.gz")  # 10 * 12 * 14 = 1680 uint8 voxels
    need = 1680 * (1 + 3) + 352 + path.stat().st_size
    assert read_mask(path, max_bytes=need).shape == SHAPE
    with pytest.raises(MaskTooLargeError) as ei:
        read_mask(path, max_bytes=need - 1)
    assert_mask_error(ei, path, "1,680 voxels", f"{need:,} bytes", cls=MaskTooLargeError)
    nrrd = write_sitk(tmp_path / "m.nrrd", blob(), make_affine())
    assert read_mask(nrrd, max_bytes=1680 * (2 + 3)).shape == SHAPE
    with pytest.raises(MaskTooLargeError):
        read_mask(nrrd, max_bytes=1680 * (2 + 3) - 1)


@pytest.mark.parametrize(
    "fields",
    [
        {"pixdim": [1, 0, 0.8, 1.2, 1, 1, 1, 1], "sform_code": 0, "qform_code": 0},
        {"srow_x": [0, 0, 0, 1], "srow_y": [0, 0.8, 0, 2], "srow_z": [0, 0, 1.2, 3],
         "sform_code": 2, "qform_code": 0},
    ],
    ids=["pixdim", "sform"],
)
def test_zero_spacing(tmp_path, fields):
    path = small_nifti(tmp_path, "flat.nii")
    patch_nifti_header(path, **fields)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "spacing")


@pytest.mark.parametrize("suffix", ["nrrd", "mha"])
def test_zero_spacing_in_sitk_files(tmp_path, suffix):
    """ITK refuses a zero spacing itself; the refusal must surface as a MaskError."""
    path = tmp_path / f"flat.{suffix}"
    if suffix == "nrrd":
        header = (b"NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\n"
                  b"sizes: 2 2 2\nspace directions: (0,0,0) (0,0.8,0) (0,0,1.2)\n"
                  b"kinds: domain domain domain\nencoding: raw\nspace origin: (0,0,0)\n\n")
    else:
        header = (b"ObjectType = Image\nNDims = 3\nBinaryData = True\n"
                  b"BinaryDataByteOrderMSB = False\nElementSpacing = 0 0.8 1.2\nDimSize = 2 2 2\n"
                  b"ElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    path.write_bytes(header + bytes([1, 0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "spacing")


def test_zero_spacing_in_memory():
    aff = make_affine(float32=False)
    aff[:3, 1] = 0
    with pytest.raises(MaskError) as ei:
        mask_from_array(blob(), aff)
    assert "<array>" in str(ei.value) and "Fix" in str(ei.value)


def test_bad_arrays_in_memory():
    with pytest.raises(MaskError, match="3D"):
        mask_from_array(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(MaskError, match="4x4"):
        mask_from_array(np.zeros((4, 4, 4)), np.eye(3))
    aff = np.eye(4)
    aff[0, 3] = np.nan
    with pytest.raises(MaskError, match="NaN"):
        mask_from_array(np.zeros((4, 4, 4)), aff)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "mask.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "file type")


def test_fractional_map_with_label_selection(tmp_path):
    data = np.zeros(SHAPE, dtype=np.float32)
    data[2, 2, 2] = 0.7
    path = small_nifti(tmp_path, "prob.nii.gz", data)
    with pytest.raises(MaskError) as ei:
        read_mask(path, labels="1")
    assert_mask_error(ei, path, "fractional")


def test_symlink_loop(tmp_path):
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    os.symlink(b, a)
    os.symlink(a, b)
    with pytest.raises(MaskError) as ei:
        read_mask(a)
    assert_mask_error(ei, a, "loop")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: root can read a chmod 000 file")
def test_unreadable_file(tmp_path):
    path = small_nifti(tmp_path, "secret.nii.gz")
    path.chmod(0)
    try:
        with pytest.raises(MaskError) as ei:
            read_mask(path)
        assert_mask_error(ei, path, "permission")
    finally:
        path.chmod(0o644)


def test_unreadable_file_as_reported_by_the_os(tmp_path, monkeypatch):
    """Same check whatever the user: the OS says 'not readable' for this one path."""
    path = small_nifti(tmp_path, "secret.nii.gz")
    real_access = os.access

    def access(p, mode, *args, **kw):
        if Path(p) == path and mode & os.R_OK:
            return False
        return real_access(p, mode, *args, **kw)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "permission")


@pytest.mark.parametrize("spec", ["abc", "0", "", "1,-2", "brats"])
def test_invalid_label_spec(tmp_path, spec):
    path = small_nifti(tmp_path, "labels.nii.gz")
    with pytest.raises(MaskError) as ei:
        read_mask(path, labels=spec)
    assert_mask_error(ei, path)
    with pytest.raises(ValueError):
        parse_labels(spec)
    with pytest.raises(MaskError):
        mask_from_array(blob(), make_affine(), labels=spec)


@pytest.mark.parametrize("flips", [(1.0, 1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, -1.0)])
def test_qform_only_header_gives_the_same_geometry(tmp_path, flips):
    """sform_code 0, qform_code 1: the affine comes from the quaternion, pixdim and qfac."""
    affine = make_affine(flips, oblique=True)
    img = nib.Nifti1Image(blob(), None)
    img.set_qform(affine, code=1)
    img.set_sform(None, code=0)
    img.header.set_xyzt_units("mm")
    nib.save(img, tmp_path / "q.nii.gz")
    assert (int(img.header["sform_code"]), int(img.header["qform_code"])) == (0, 1)
    m = read_mask(tmp_path / "q.nii.gz")
    np.testing.assert_allclose(m.affine, affine, rtol=0, atol=1e-5)  # float32 quaternion
    assert m.notes == ()
    les = find_lesions(m).lesions[0]
    assert les.centroid_ras_mm == pytest.approx(tuple(world(affine, BLOB_MEAN_INDEX)), abs=1e-4)


def test_2d_nrrd_is_refused_because_it_has_no_slice_thickness(tmp_path):
    import SimpleITK as sitk

    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5), np.uint8)), str(path))
    with pytest.raises(MaskError, match="2D image.*slice thickness") as info:
        read_mask(path)
    assert "slice.nrrd" in str(info.value) and "Fix:" in str(info.value)


# --------------------------------------------------------------------------------------------
# hostile files (the cohort-level corpus is tests/test_hostile.py)


def test_a_named_pipe_is_refused_without_being_opened(tmp_path):
    """Opening a FIFO would block until a writer comes; it is refused from its mode."""
    path = tmp_path / "pipe.nii.gz"
    os.mkfifo(path)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "named pipe")


@pytest.mark.parametrize("name", ["neg.nii", "neg.nii.gz"])
def test_negative_dimension_in_the_header(tmp_path, name):
    path = small_nifti(tmp_path, "neg.nii")
    patch_nifti_header(path, dim=[3, -5, 12, 14, 1, 1, 1, 1])
    if name.endswith(".gz"):
        import gzip

        gz = tmp_path / name
        gz.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        path = gz
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "negative dimension", "(-5, 12, 14)")


def test_uncompressed_file_shorter_than_its_header_says_is_refused_before_allocating(
    tmp_path, monkeypatch
):
    """A 3.8 GiB header over a few bytes of data: refused by the default limit (reading and
    measuring it would need ~15 GiB); with the limit raised, the file size shows it is
    truncated before any voxel buffer is made."""
    path = small_nifti(tmp_path, "short.nii")
    patch_nifti_header(path, dim=[3, 1600, 1600, 1600, 1, 1, 1, 1])
    import cnsvol.io.nifti as cio

    def no_alloc(*args, **kw):  # pragma: no cover - reached only if the check is missing
        raise AssertionError("a voxel buffer was allocated")

    monkeypatch.setattr(cio, "_read_voxels", no_alloc)
    with pytest.raises(MaskTooLargeError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "3.81 GiB decoded", "15.26 GiB", cls=MaskTooLargeError)
    with pytest.raises(MaskError) as ei:
        read_mask(path, max_bytes=32 * 1024**3)
    assert_mask_error(ei, path, "truncated", "4,096,000,000 bytes")


def test_compressed_file_larger_than_the_limit_is_refused_before_reading_it(
    tmp_path, monkeypatch
):
    """Deflate never grows data by more than a fraction of a percent, so a .gz file much larger
    than the limit cannot hold data within it: refused from its size, before it is read."""
    path = small_nifti(tmp_path, "big.nii.gz")
    path.write_bytes(path.read_bytes() + b"\0" * (2 << 20))  # 2 MiB of trailing bytes
    import cnsvol.io.nifti as cio

    def no_read(*args, **kw):  # pragma: no cover - reached only if the check is missing
        raise AssertionError("the file was read into memory")

    monkeypatch.setattr(cio, "_inflate_nifti_gz", no_read)
    with pytest.raises(MaskTooLargeError) as ei:
        read_mask(path, max_bytes=1024)
    assert_mask_error(ei, path, "compressed file", cls=MaskTooLargeError)


@pytest.mark.parametrize("data", [np.ones(SHAPE, np.uint8), np.full(SHAPE, 3, np.int16),
                                  np.full(SHAPE, 0.9, np.float32)])
def test_a_mask_without_background_is_refused(tmp_path, data):
    path = small_nifti(tmp_path, "ones.nii.gz", data)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, f"every one of its {data.size:,} voxels is lesion")
    almost = data.copy()
    almost[3, 4, 5] = 0  # one background voxel anywhere is enough
    assert find_lesions(read_mask(small_nifti(tmp_path, "almost.nii.gz", almost))).lesion_count == 1
    if data.dtype.kind == "i":  # a label selection that leaves background is a valid mask
        assert read_mask(path, labels="1").data.max() == 0


def test_not_gzip_message_shows_the_bytes_found(tmp_path):
    path = tmp_path / "plain.nii.gz"
    path.write_bytes(nifti_bytes(blob(), make_affine()))
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "first bytes 5c 01", "1f 8b", ".nii")


def test_header_repairs_are_not_logged_to_stderr(tmp_path, capfd):
    """nibabel logs (to stderr, without the file name) what it repairs in a bad header; a
    cohort run would print such lines between its own. The error, with the file, is enough."""
    path = small_nifti(tmp_path, "bad.nii")
    patch_nifti_header(path, datatype=999)
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert_mask_error(ei, path, "NIfTI header")
    assert capfd.readouterr().err == ""
    from nibabel.imageglobals import logger

    assert not logger.disabled  # nibabel's logging is left as it was


def test_a_2d_nifti_without_slice_thickness_is_refused(tmp_path):
    """pixdim[3] = 0 and no qform/sform: the voxel volume is unknown (no 1 mm is assumed); with
    a slice thickness stored the 2D mask is read as one slice of that thickness."""
    data = np.zeros((20, 20), np.uint8)
    data[5:10, 5:10] = 1
    img = nib.Nifti1Image(data, None)
    img.header.set_sform(None, code=0)
    img.header.set_qform(None, code=0)
    img.header["pixdim"][1:4] = [0.8, 0.8, 0.0]
    nib.save(img, str(tmp_path / "flat.nii.gz"))
    with pytest.raises(MaskError, match=r"2D image without a slice thickness \(pixdim\[3\] = 0"):
        read_mask(tmp_path / "flat.nii.gz")
    img.header["pixdim"][3] = 3.0
    nib.save(img, str(tmp_path / "thick.nii.gz"))
    assert read_mask(tmp_path / "thick.nii.gz").voxel_volume_mm3 == pytest.approx(0.8 * 0.8 * 3)


def test_a_qform_that_disagrees_with_the_sform_is_noted(tmp_path):
    data = np.zeros((20, 20, 10), np.uint8)
    data[5:10, 5:10, 2:4] = 1
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]), code=1)
    img.header.set_sform(np.eye(4), code=1)
    nib.save(img, str(tmp_path / "qs.nii.gz"))
    m = read_mask(tmp_path / "qs.nii.gz")
    assert m.voxel_volume_mm3 == 1.0  # the sform, as nibabel
    assert any("qform and sform disagree (voxel volume 8 vs 1 mm3" in n for n in m.notes)
    img.header.set_qform(np.eye(4), code=1)  # agreeing: no note
    nib.save(img, str(tmp_path / "same.nii.gz"))
    assert not any("disagree" in n for n in read_mask(tmp_path / "same.nii.gz").notes)
