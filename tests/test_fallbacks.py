"""Speed dependencies are optional: without python-isal or connected-components-3d the
standard-library / scikit-image paths must give identical results."""

from __future__ import annotations

import builtins
import gzip
from pathlib import Path

import numpy as np
import pytest

import cnsvol
from cnsvol import io as cio

PAIR = Path(__file__).resolve().parents[1] / "fixtures" / "pair"


def _block_import(monkeypatch, name: str) -> None:
    real = builtins.__import__

    def fake(mod, *args, **kwargs):
        if mod == name or mod.startswith(name + "."):
            raise ImportError(f"{name} blocked for this test")
        return real(mod, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def _summary(result):
    return [
        [(les.lesion_id, les.voxel_count, les.centroid_ras_mm, les.longest_diameter_mm)
         for les in ls.lesions]
        for ls in (result.baseline, result.followup)
    ] + [result.percent_change, result.category]


def test_without_isal_the_stdlib_gzip_path_gives_identical_voxels(monkeypatch):
    fast = cnsvol.read_mask(PAIR / "baseline.nii.gz").data
    _block_import(monkeypatch, "isal")
    opened = []
    real_open = gzip.open
    monkeypatch.setattr(gzip, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    slow = cnsvol.read_mask(PAIR / "baseline.nii.gz").data
    assert opened, "the standard-library fallback was not used"
    assert np.array_equal(fast, slow) and slow.flags.f_contiguous


def test_without_cc3d_scikit_image_gives_identical_lesions(monkeypatch):
    fast = cnsvol.compare(PAIR / "baseline.nii.gz", PAIR / "followup.nii.gz")
    _block_import(monkeypatch, "cc3d")
    with pytest.raises(ImportError):
        cnsvol.lesions.label_components(np.ones((2, 2, 2), bool), backend="cc3d")
    slow = cnsvol.compare(PAIR / "baseline.nii.gz", PAIR / "followup.nii.gz")
    assert _summary(fast) == _summary(slow)


def test_fast_decode_matches_nibabel_for_every_storage(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(3)
    for dtype in (np.uint8, np.int16, ">i2", np.float32):
        data = (rng.random((7, 9, 5)) > 0.7).astype(dtype)
        img = nib.Nifti1Image(data, np.diag([0.5, 0.8, 1.2, 1.0]))
        if dtype == ">i2":
            img.header.set_data_dtype(np.dtype(">i2"))  # keep big-endian storage on disk
        for name in ("m.nii", "m.nii.gz"):
            path = tmp_path / name
            nib.save(img, str(path))
            loaded = nib.load(str(path))
            expected = np.asanyarray(loaded.dataobj)
            stored = np.dtype(loaded.header.get_data_dtype())
            got = cio._read_voxels(path, int(loaded.dataobj.offset), stored, data.shape)
            assert np.array_equal(got, expected) and got.dtype.isnative
