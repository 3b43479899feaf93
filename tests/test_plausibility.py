"""Inputs that are not plausibly lesion masks are refused at the I/O boundary, with the numbers
found and the override: intensity images (many distinct values, or fractional values beyond
[0, 1]) and foregrounds too large to be lesions (over 1.5 L, or over a quarter of a head-sized
field of view)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from cnsvol import MeasureOptions, read_mask
from cnsvol.errors import MaskError
from cnsvol.pipeline import measure
from cnsvol_cli.main import EXIT_INPUT_ERROR, EXIT_OK, main


def save(path, data, zooms=(1.0, 1.0, 1.0)):
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), str(path))
    return path


def test_an_integer_image_with_many_values_is_refused(tmp_path):
    data = np.zeros((20, 20, 20), np.int16)
    data[2:17, 2:17, 2:5] = np.arange(1, 676).reshape(15, 15, 3)  # 675 distinct values
    path = save(tmp_path / "t1.nii.gz", data)
    with pytest.raises(MaskError, match=r"675 distinct voxel values \(1 to 675\).*not a "
                                        r"plausible lesion mask.*--mask-kind labels"):
        read_mask(path)
    assert len(read_mask(path, mask_kind="labels").labels or ()) == 0  # every label kept
    assert measure(path, MeasureOptions(instance_labels=True)).lesion_count == 675
    # 256 labels is still a label mask
    few = data.copy()
    few[few > 256] = 0
    read_mask(save(tmp_path / "few.nii.gz", few))


def test_a_float_intensity_image_is_refused_and_a_probability_map_accepted(tmp_path):
    rng = np.random.default_rng(0)
    t1 = rng.uniform(0, 900, size=(16, 16, 16)).astype(np.float32)
    with pytest.raises(MaskError, match=r"fractional values in \[.*\]: neither integer labels "
                                        r"nor a probability map in \[0, 1\]"):
        read_mask(save(tmp_path / "t1.nii.gz", t1))
    prob = np.zeros((16, 16, 16), np.float32)
    prob[4:8, 4:8, 4:8] = rng.uniform(0.2, 1.0, size=(4, 4, 4))
    m = read_mask(save(tmp_path / "prob.nii.gz", prob))
    assert int(m.data.sum()) == int((prob >= 0.5).sum())
    # --mask-kind probability thresholds even a 0/1 map, and refuses values outside [0, 1]
    labels = (prob > 0).astype(np.float32) * 2
    with pytest.raises(MaskError, match=r"values in \[0, 2\] with --mask-kind probability"):
        read_mask(save(tmp_path / "two.nii.gz", labels), mask_kind="probability")


def test_a_foreground_too_large_for_lesions_is_refused(tmp_path):
    # a head-sized field of view (100 x 100 x 100 mm = 1 L), 30% foreground: a brain mask
    data = np.zeros((100, 100, 100), np.uint8)
    data[:, :, :30] = 1
    path = save(tmp_path / "brain.nii.gz", data)
    with pytest.raises(MaskError, match=r"0\.30 L \(300,000 voxels, 30% of the field of view\)"
                                        r".*--allow-large-lesions"):
        read_mask(path)
    assert read_mask(path, allow_large_lesions=True).data.sum() == 300_000
    # over 1.5 L whatever the field of view: 2 mm voxels, 200,000 voxels = 1.6 L, 20% of the FOV
    big = np.zeros((100, 100, 100), np.uint8)
    big[:, :, :20] = 1
    with pytest.raises(MaskError, match=r"1\.60 L"):
        read_mask(save(tmp_path / "big.nii.gz", big, (2.0, 2.0, 2.0)))
    # a mask cropped around its lesion fills its small field of view legitimately
    crop = np.zeros((20, 20, 10), np.uint8)
    crop[1:19, 1:19, 1:9] = 1  # 65% of a 4 mL field of view
    assert read_mask(save(tmp_path / "crop.nii.gz", crop)).data.sum() == 18 * 18 * 8


def test_the_overrides_reach_the_command_line(tmp_path, capsys):
    data = np.zeros((100, 100, 100), np.uint8)
    data[:, :, :30] = 1
    path = str(save(tmp_path / "brain.nii.gz", data))
    assert main(["volumes", path]) == EXIT_INPUT_ERROR
    assert "--allow-large-lesions" in capsys.readouterr().err
    assert main(["volumes", path, "--allow-large-lesions", "--format", "json"]) == EXIT_OK
    assert '"total_volume_mm3": 300000.0' in capsys.readouterr().out


MASKS = [  # every lesion mask of ../shared/realdata readable today (DICOM comes later)
    "audit_brats2024/PED/BraTS2024_PED-00001-000/BraTS2024_PED-00001-000_seg.nii.gz",
    "audit_brats2024/PED/BraTS2024_PED-00001-000/SegResNet/BraTS2024_PED-00001-000_pred.nii.gz",
    "audit_brats2024/PED/BraTS2024_PED-00266-000/BraTS2024_PED-00266-000_seg.nii.gz",
    "audit_brats2024/SSA/BraTS2024_SSA-00002-000/BraTS2024_SSA-00002-000_seg.nii.gz",
    "audit_brats2024/SSA/BraTS2024_SSA-00230-000/nnUnet/BraTS2024_SSA-00230-000_pred.nii.gz",
    "deepmedic_brats2015/pat0001/OTMultiClass.nii.gz",
    "dicom/dcmqi/23x38x3/nrrd/label.nrrd",
    "dicom/dcmqi/liver_seg.nrrd",
    "dicom/mirp_sts/STS_002/MR_T1/nifti/mask/mask.nii.gz",
    "dicom/mirp_sts/STS_002/PET/nifti/mask/mask.nii.gz",
    "ibsi/ct_phantom/mask.nii.gz",
    "ibsi/digital_phantom/mask.nii.gz",
    "nibabel/standard.nii.gz",
    "open_ms_data/patient02_raw/consensus_gt.nii.gz",
    "open_ms_data/patient02_resampled/consensus_gt.nii.gz",
    "pyradiomics/brain1_label.nrrd",
    "pyradiomics/brain2_label.nrrd",
    "pyradiomics/breast1_label.nrrd",
    "pyradiomics/lung1_label.nrrd",
    "pyradiomics/lung2_label.nrrd",
]


@pytest.mark.parametrize("name", MASKS)
def test_every_real_mask_passes(realdata, name):
    assert read_mask(realdata / name).data.any()


def test_the_real_images_are_refused(realdata):
    image = realdata / "pyradiomics" / "brain1_image.nrrd"
    with pytest.raises(MaskError, match=r"2,412 distinct voxel values"):
        read_mask(image)
    with pytest.raises(MaskError, match=r"6\.14 L .*94% of the field of view"):
        read_mask(image, mask_kind="labels")
    with pytest.raises(MaskError, match=r"9,842 distinct voxel values \(-610 to 30393\)"):
        read_mask(realdata / "nibabel" / "anatomical.nii")  # an int16 MRI


def test_a_manifest_with_image_and_mask_swapped_fails_those_subjects(realdata, tmp_path, capsys):
    mask = realdata / "pyradiomics" / "brain1_label.nrrd"
    image = realdata / "pyradiomics" / "brain1_image.nrrd"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "subject_id,timepoint,days_from_baseline,mask_path,image_path\n"
        f"A,base,0,{mask},{image}\nA,wk8,56,{mask},{image}\n"
        f"B,base,0,{image},{mask}\nB,wk8,56,{image},{mask}\n")
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--no-qc", "--quiet"])
    shown = "".join(capsys.readouterr())
    assert code == 3  # finished, one subject failed
    assert "failed B" in shown and "not a plausible lesion mask" in shown


# --------------------------------------------------------------------------------------------
# labels that exist nowhere


def two_label_mask(path, labels=(2, 3)):
    data = np.zeros((30, 30, 10), np.uint8)
    data[2:14, 2:14, 2:5] = labels[0]  # 12 x 12 mm: measurable
    if len(labels) > 1:
        data[20:24, 20:24, 2:5] = labels[1]
    return str(save(path, data))


def test_volumes_warns_with_the_labels_present(tmp_path, capsys):
    path = two_label_mask(tmp_path / "m.nii.gz")
    assert main(["volumes", path, "--labels", "brats-et"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "0 lesion(s)" in out
    assert "none of the labels brats-et (4) is in this mask (labels present: 2, 3)" in err
    assert main(["volumes", path, "--labels", "3"]) == EXIT_OK
    assert "warning" not in capsys.readouterr().err


def manifest_of(tmp_path, rows):
    path = tmp_path / "manifest.csv"
    path.write_text("subject_id,timepoint,days_from_baseline,mask_path\n"
                    + "".join(f"{s},{t},{d},{m}\n" for s, t, d, m in rows))
    return str(path)


def test_a_run_whose_labels_no_mask_holds_is_refused_before_any_work(tmp_path, capsys):
    a, b = two_label_mask(tmp_path / "a.nii.gz"), two_label_mask(tmp_path / "b.nii.gz")
    man = manifest_of(tmp_path, [("S1", "base", 0, a), ("S1", "wk8", 56, b)])
    out = tmp_path / "out"
    assert main(["run", man, "--out", str(out), "--labels", "4", "--no-qc", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--labels 4: none of the 2 masks of the manifest holds these labels (labels found: " \
           "2, 3)" in err
    assert not out.exists()


def test_a_subject_whose_masks_lack_the_labels_fails_and_a_vanished_label_is_a_response(
        tmp_path, capsys):
    import pandas as pd

    with_4 = two_label_mask(tmp_path / "with4.nii.gz", (4, 2))
    only_2 = two_label_mask(tmp_path / "only2.nii.gz", (2,))
    other = two_label_mask(tmp_path / "other.nii.gz", (1, 2))
    man = manifest_of(tmp_path, [
        ("S1", "base", 0, with_4), ("S1", "wk8", 56, only_2),  # label 4 gone: a response
        ("S2", "base", 0, other), ("S2", "wk8", 56, other),  # never label 4: fails
    ])
    out = tmp_path / "out"
    code = main(["run", man, "--out", str(out), "--labels", "4", "--no-qc", "--quiet"])
    capsys.readouterr()
    assert code == 3
    subjects = pd.read_csv(out / "subjects.csv").set_index("subject_id")
    assert subjects.loc["S1", "status"] == "ok" and subjects.loc["S1", "best_response"] == "CR"
    assert subjects.loc["S2", "status"] == "failed"
    assert "none of its 2 masks holds the labels 4 (labels found: 1, 2)" in \
        subjects.loc["S2", "error"]


def test_an_image_with_few_values_and_negatives_is_named_an_image(tmp_path):
    """The demo's synthetic T1c: 108 distinct int16 values, some negative (the noise of the
    background): the message says what is likely wrong and where to look."""
    data = np.zeros((40, 40, 30), np.int16)
    data[5:35, 5:35, 5:25] = np.arange(-8, 100).repeat(167)[:18000].reshape(30, 30, 20)
    with pytest.raises(MaskError, match=r"negative label value -8 found: lesion labels are >= "
                                        r"0, so this is not a plausible lesion mask .*check "
                                        r"mask_path and image_path"):
        read_mask(save(tmp_path / "t1c.nii.gz", data))


def test_the_tolerance_needs_a_pfs_table(tmp_path, capsys):
    path = two_label_mask(tmp_path / "a.nii.gz")
    man = manifest_of(tmp_path, [("S1", "base", 0, path), ("S1", "wk8", 56, path)])
    assert main(["run", man, "--out", str(tmp_path / "o"), "--pfs-tolerance-days", "30"]) == 1
    assert "give --pfs" in capsys.readouterr().err
