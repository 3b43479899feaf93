"""Speed paths never change a result: without zlib-ng the standard library's zlib inflates
the same bytes; the in-memory NIfTI header path and nibabel's agree; the run-based labelling
finds the lesions that connected-components-3d and scikit-image find."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np

import cnsvol
from cnsvol.io import nifti as cio

PAIR = Path(__file__).resolve().parents[1] / "fixtures" / "pair"


def _block_import(monkeypatch, name: str) -> None:
    real = builtins.__import__

    def fake(mod, *args, **kwargs):
        if mod == name or mod.startswith(name + "."):
            raise ImportError(f"{name} blocked for this test")
        return real(mod, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_without_zlib_ng_the_stdlib_inflater_gives_identical_voxels(monkeypatch):
    import zlib

    fast = cnsvol.read_mask(PAIR / "baseline.nii.gz").data
    assert cio.zlib_module() is not zlib  # zlib-ng is installed with the test extra
    _block_import(monkeypatch, "zlib_ng")
    assert cio.zlib_module() is zlib
    slow = cnsvol.read_mask(PAIR / "baseline.nii.gz").data
    assert np.array_equal(fast, slow) and slow.flags.f_contiguous


def test_in_memory_header_and_nibabel_header_give_the_same_mask(monkeypatch, tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(5)
    data = (rng.random((7, 9, 5)) > 0.6).astype(np.uint8) * 3
    affine = np.array([[0.0, -0.8, 0.1, 4.0], [0.9, 0.0, 0.0, -2.0],
                       [0.0, 0.05, 1.2, 7.5], [0, 0, 0, 1]])
    paths = [PAIR / "baseline.nii.gz", PAIR / "followup.nii.gz"]
    for klass, name in ((nib.Nifti1Image, "n1.nii.gz"), (nib.Nifti2Image, "n2.nii.gz")):
        img = klass(data, affine)
        img.header.set_data_dtype(np.dtype(">i2"))  # big-endian storage
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"x" * 37))
        nib.save(img, str(tmp_path / name))
        paths.append(tmp_path / name)
    fast = [cnsvol.read_mask(p) for p in paths]
    used = []
    real = cio._inflate_nifti_gz
    assert all(real(p) is not None for p in paths)  # the in-memory path handled them all
    monkeypatch.setattr(cio, "_inflate_nifti_gz", lambda p: used.append(p))
    slow = [cnsvol.read_mask(p) for p in paths]
    assert len(used) == len(paths)
    for a, b in zip(fast, slow):
        assert np.array_equal(a.data, b.data) and a.data.dtype == b.data.dtype
        assert np.array_equal(a.affine, b.affine)
        assert (a.source_format, a.notes) == (b.source_format, b.notes)


def test_runs_labelling_gives_the_lesions_of_cc3d_and_scikit_image():
    results = {}
    for backend in ("runs", "cc3d", "skimage", "scipy"):
        results[backend] = [
            [(les.lesion_id, les.voxel_count, les.centroid_ras_mm, les.bbox_voxel,
              les.longest_diameter_mm, les.max_diameter_3d_mm, les.min_detectable_change_mm3)
             for les in cnsvol.find_lesions(cnsvol.read_mask(PAIR / f), backend=backend).lesions]
            for f in ("baseline.nii.gz", "followup.nii.gz")
        ]
    assert results["runs"] == results["cc3d"] == results["skimage"] == results["scipy"]
    assert all(results["runs"])


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


def test_qc_pictures_are_the_same_png_pixels_without_zlib_ng(monkeypatch):
    from PIL import Image

    from cnsvol.report.raster import png_bytes

    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (37, 53, 3)).astype(np.uint8)
    pixels[10:20] = 255  # flat rows too
    fast = png_bytes(pixels)
    _block_import(monkeypatch, "zlib_ng")
    slow = png_bytes(pixels)
    import io

    for data in (fast, slow):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), pixels)
