"""Real masks from public sources (../shared/realdata, see its README) against golden values
from independent tools.

* pyradiomics (its own baseline_shape.csv, produced by pyradiomics 2.x on these files):
  ``original_shape_VoxelVolume`` = voxel count x voxel volume; ``diagnostics_Mask-original_
  CenterOfMass`` = the mean voxel centre in ITK's LPS world (for the original-mask diagnostics
  the csv fills only the ``*_resampling`` columns; the mask is the same file); Maximum3DDiameter
  and Maximum2DDiameterSlice are measured on a marching-cubes mesh through the voxel faces'
  mid-points, ours on voxel corners, so ours lie between theirs and theirs + one voxel diagonal.
* IBSI consensus values for the digital and CT phantoms; counts from the README for the
  deepmedic BRATS 2015, nibabel and open_ms_data files, re-derived with numpy below where it
  is cheap.
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cnsvol.errors import MaskError
from cnsvol.io import read_mask
from cnsvol.lesions import find_lesions

pytestmark = pytest.mark.realdata

PYRADIOMICS = {  # README / csv: VoxelVolume in mm3 and voxel count
    "brain1": (16412.658691406243, 4137),
    "brain2": (1797.180175781249, 453),
    "breast1": (132.42579545515324, 143),
    "lung1": (1361.1978149414062, 837),
    "lung2": (48434.108762463955, 24644),
}


@pytest.fixture(scope="module")
def baseline(realdata):
    return pd.read_csv(realdata / "pyradiomics" / "baseline" / "baseline_shape.csv",
                       index_col="featureName")


def parse_tuple(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.strip("()").split(","))


@pytest.mark.parametrize("case", sorted(PYRADIOMICS))
def test_pyradiomics_voxel_volume_and_centre_of_mass(realdata, baseline, case):
    volume, count = PYRADIOMICS[case]
    assert float(baseline.loc["original_shape_VoxelVolume", case]) == volume
    assert int(baseline.loc["diagnostics_Mask-original_VoxelNum", f"{case}_resampling"]) == count

    m = read_mask(realdata / "pyradiomics" / f"{case}_label.nrrd")
    assert m.source_format == "nrrd"
    ls = find_lesions(m)
    assert ls.total_voxel_count == count
    assert ls.total_volume_mm3 == pytest.approx(volume, rel=1e-9, abs=0)
    n_regions = int(baseline.loc["diagnostics_Mask-original_VolumeNum", f"{case}_resampling"])
    assert ls.lesion_count == n_regions

    # the voxel-weighted mean of the lesion centroids is the mask's centre of mass; pyradiomics
    # reports it in LPS: negate x and y for RAS
    lps = parse_tuple(baseline.loc["diagnostics_Mask-original_CenterOfMass", f"{case}_resampling"])
    ras = (-lps[0], -lps[1], lps[2])
    weights = np.array([les.voxel_count for les in ls.lesions], dtype=float)
    centre = (np.array([les.centroid_ras_mm for les in ls.lesions]) * weights[:, None]).sum(0)
    np.testing.assert_allclose(centre / weights.sum(), ras, rtol=0, atol=1e-6)


def test_brain1_has_two_lesions(realdata):
    ls = find_lesions(read_mask(realdata / "pyradiomics" / "brain1_label.nrrd"))
    assert [les.voxel_count for les in ls.lesions] == [3524, 613]
    spacing = (0.78125, 0.78125, 6.5)
    assert ls.mask.spacing_mm == pytest.approx(spacing, rel=1e-12)
    # the header's direction has a -y axis in LPS: in RAS (x, y negated) i runs to -x, j to +y
    direction = np.array(sitk.ReadImage(str(ls.mask.path)).GetDirection()).reshape(3, 3)
    assert np.allclose(direction, np.diag([1.0, -1.0, 1.0]))
    np.testing.assert_allclose(ls.mask.affine[:3, :3], np.diag([-0.78125, 0.78125, 6.5]),
                               atol=1e-12)


def test_brain2_diameters_bracket_pyradiomics(realdata, baseline):
    les = find_lesions(read_mask(realdata / "pyradiomics" / "brain2_label.nrrd")).lesions[0]
    sx, sy, sz = 0.78125, 0.78125, 6.5
    d3_ref = float(baseline.loc["original_shape_Maximum3DDiameter", "brain2"])
    d2_ref = float(baseline.loc["original_shape_Maximum2DDiameterSlice", "brain2"])
    assert (d3_ref, d2_ref) == pytest.approx((24.4445322363, 16.3129789202))
    # brain2's slices are perpendicular to k (z), as pyradiomics' "Slice" diameter
    assert d3_ref <= les.max_diameter_3d_mm <= d3_ref + math.sqrt(sx**2 + sy**2 + sz**2)
    assert d2_ref <= les.longest_diameter_mm <= d2_ref + math.hypot(sx, sy)


def test_brain1_nrrd_rewritten_as_nifti_gives_the_same_centroids(realdata, tmp_path):
    """NRRD read by cnsvol vs the same voxels written to NIfTI with an affine derived here from
    SimpleITK's origin/spacing/direction: RAS = diag(-1, -1, 1) @ (origin + D diag(s) ijk);
    the array is SimpleITK's [k, j, i] transposed. The NIfTI sform is float32, so centroids
    agree to float32 precision of ~100 mm coordinates (1e-4 mm is generous)."""
    path = realdata / "pyradiomics" / "brain1_label.nrrd"
    img = sitk.ReadImage(str(path))
    ijk = np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    direction = np.array(img.GetDirection()).reshape(3, 3)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(img.GetSpacing())
    affine[:3, 3] = lps_to_ras @ np.array(img.GetOrigin())
    out = tmp_path / "brain1_label.nii.gz"
    nifti = nib.Nifti1Image(ijk.astype(np.int16), affine)
    nifti.header.set_xyzt_units("mm")
    nib.save(nifti, out)

    a = find_lesions(read_mask(path))
    b = find_lesions(read_mask(out))
    assert b.mask.source_format == "nifti1"
    assert [les.voxel_count for les in a.lesions] == [les.voxel_count for les in b.lesions]
    for x, y in zip(a.lesions, b.lesions, strict=True):
        np.testing.assert_allclose(x.centroid_ras_mm, y.centroid_ras_mm, rtol=0, atol=1e-4)
        assert x.volume_mm3 == pytest.approx(y.volume_mm3, rel=1e-6)


def test_ibsi_digital_phantom(realdata):
    m = read_mask(realdata / "ibsi" / "digital_phantom" / "mask.nii.gz")
    assert m.spacing_mm == pytest.approx((2.0, 2.0, 2.0))
    ls = find_lesions(m)
    assert ls.total_voxel_count == 74
    assert ls.total_volume_mm3 == pytest.approx(592.0, rel=1e-9)


def test_ibsi_ct_phantom(realdata):
    ls = find_lesions(read_mask(realdata / "ibsi" / "ct_phantom" / "mask.nii.gz"))
    assert ls.total_voxel_count == 125256
    assert ls.total_volume_mm3 == pytest.approx(358681.45, abs=0.01)
    assert ls.total_volume_mm3 == pytest.approx(3.59e5, abs=5e3)  # IBSI consensus range


def test_deepmedic_scaled_brainmask(realdata):
    path = realdata / "deepmedic_brats2015" / "pat0001" / "brainmask.nii.gz"
    img = nib.load(path)
    raw = np.asanyarray(img.dataobj)
    assert img.get_data_dtype() == np.int32
    assert int(np.count_nonzero(raw == 1)) == 0  # the trap: on voxels read 0.99999997
    assert int(np.count_nonzero(raw > 0.5)) == 1487565
    m = read_mask(path)
    assert m.storage == "float-integral"
    assert int(np.count_nonzero(m.data == 1)) == 1487565
    assert find_lesions(m).total_voxel_count == 1487565


def test_deepmedic_multiclass_labels(realdata):
    path = realdata / "deepmedic_brats2015" / "pat0001" / "OTMultiClass.nii.gz"
    values, counts = np.unique(nib.load(path).get_fdata(), return_counts=True)
    per_label = dict(zip(values.astype(int).tolist(), counts.tolist(), strict=True))
    # this BRATS 2015 file still has label 3 (818 voxels), which no BraTS preset includes
    assert per_label == {0: 8816276, 1: 26371, 2: 53050, 3: 818, 4: 31485}

    m = read_mask(path)
    assert m.storage == "float-integral"
    ls = find_lesions(m, connectivity=26)
    assert ls.total_voxel_count == 111724 == sum(per_label.values()) - per_label[0]
    assert ls.total_volume_mm3 == pytest.approx(111724.0)
    assert ls.lesion_count == 2

    expected = {"brats-et": (4,), "brats-tc": (1, 4), "brats-wt": (1, 2, 4)}
    totals = {"brats-et": 31485, "brats-tc": 57856, "brats-wt": 110906}
    for preset, labels in expected.items():
        n = int(np.count_nonzero(read_mask(path, labels=preset).data))
        assert n == sum(per_label[v] for v in labels) == totals[preset], preset


def test_nibabel_standard_sform_only(realdata):
    path = realdata / "nibabel" / "standard.nii.gz"
    hdr = nib.load(path).header
    assert int(hdr["sform_code"]) > 0
    m = read_mask(path)
    np.testing.assert_allclose(m.affine, hdr.get_sform(), atol=1e-12)
    ls = find_lesions(m)
    assert ls.total_voxel_count == 30
    assert ls.lesion_count == 3


@pytest.mark.parametrize("name", ["example4d.nii.gz", "example_nifti2.nii.gz"])
def test_4d_examples_are_refused(realdata, name):
    path = realdata / "nibabel" / name
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    text = str(ei.value)
    assert name in text and "4D" in text and "Fix" in text


def test_big_endian_anatomical_image_is_not_a_mask(realdata):
    """A real big-endian int16 MRI (not a mask): read through the byte-order path and refused
    as an intensity image (9,842 distinct values, from -610: the byte order is right, or the
    range would be garbage), with the file named; as labels, for its negative values."""
    path = realdata / "nibabel" / "anatomical.nii"
    assert nib.load(path).header.endianness == ">"
    with pytest.raises(MaskError) as ei:
        read_mask(path)
    assert "anatomical.nii" in str(ei.value)
    assert "9,842 distinct voxel values (-610 to 30393)" in str(ei.value)
    with pytest.raises(MaskError, match="negative label value -610"):
        read_mask(path, mask_kind="labels")


def test_open_ms_raw_grid(realdata):
    m = read_mask(realdata / "open_ms_data" / "patient02_raw" / "consensus_gt.nii.gz")
    assert m.shape == (192, 512, 512)
    ls = find_lesions(m)
    assert ls.total_voxel_count == 8101
    assert ls.total_volume_mm3 == pytest.approx(1424.00, abs=0.01)
    assert ls.lesion_count == 28


def test_open_ms_resampled_grid(realdata):
    path = realdata / "open_ms_data" / "patient02_resampled" / "consensus_gt.nii.gz"
    hdr = nib.load(path).header
    assert int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) > 0  # qform only
    m = read_mask(path)
    assert m.storage == "float-integral"
    ls = find_lesions(m)
    assert ls.total_voxel_count == 1419
    assert ls.total_volume_mm3 == pytest.approx(1419.0, rel=1e-6)
    assert ls.lesion_count == 26
