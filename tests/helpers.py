"""Writers for synthetic mask files, independent of cnsvol's readers.

``write_nifti`` lays out the NIfTI file itself (nibabel header block + raw voxel bytes), so that
the values stored on disk are exactly the ones the test chose, including ``scl_slope`` /
``scl_inter`` and the byte order (nibabel's own writer would recompute the scaling).

``write_sitk`` converts a RAS affine and an ``[i, j, k]`` array to SimpleITK's conventions here,
written out independently of ``cnsvol.io._read_sitk``:

* ITK's world is LPS+: ``world_lps = diag(-1, -1, 1) @ world_ras``;
* ``world_lps = origin + direction @ diag(spacing) @ (i, j, k)``, so spacing is the norm of each
  column of the LPS linear part and direction is that part with unit columns;
* ``sitk.GetImageFromArray`` takes a C-ordered ``[k, j, i]`` array (x fastest), i.e. the
  ``[i, j, k]`` array transposed.
"""

from __future__ import annotations

import gzip
from io import BytesIO
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

__all__ = [
    "affine_from",
    "nifti_bytes",
    "patch_nifti_header",
    "write_nifti",
    "write_sitk",
]


def affine_from(linear: np.ndarray, origin) -> np.ndarray:
    """4x4 affine from a 3x3 linear part and an origin."""
    aff = np.eye(4)
    aff[:3, :3] = linear
    aff[:3, 3] = origin
    return aff


def nifti_bytes(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    dtype=None,
    xyzt_units: str = "mm",
    slope: float | None = None,
    inter: float | None = None,
    nifti2: bool = False,
) -> bytes:
    """A complete single-file NIfTI (``.nii``) image as bytes.

    ``data`` holds the *stored* values, cast to ``dtype`` (default: its own dtype); the reader
    sees ``stored * slope + inter`` when ``slope``/``inter`` are given. ``affine`` goes into the
    sform (code 2, "aligned") in the units named by ``xyzt_units``.
    """
    dtype = np.dtype(data.dtype if dtype is None else dtype)
    stored = np.asarray(data).astype(dtype)
    cls = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    img = cls(stored.astype(dtype.newbyteorder("=")), np.asarray(affine, dtype=np.float64))
    hdr = img.header
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and not dtype.isnative):
        hdr = hdr.as_byteswapped(">")
    hdr.set_data_dtype(dtype)
    hdr.set_xyzt_units(xyz=xyzt_units)
    hdr["scl_slope"] = np.nan if slope is None else slope
    hdr["scl_inter"] = np.nan if inter is None else inter
    offset = 544 if nifti2 else 352
    hdr["vox_offset"] = offset
    block = hdr.binaryblock
    block += b"\x00" * (offset - len(block))  # 4-byte "no extensions" flag
    return block + stored.tobytes(order="F")


def write_nifti(
    path,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    dtype=None,
    xyzt_units: str = "mm",
    slope: float | None = None,
    inter: float | None = None,
    nifti2: bool = False,
) -> Path:
    """Write ``data`` (indexed ``[i, j, k]``) to ``path`` (.nii or .nii.gz); see nifti_bytes."""
    path = Path(path)
    raw = nifti_bytes(
        data, affine, dtype=dtype, xyzt_units=xyzt_units, slope=slope, inter=inter, nifti2=nifti2
    )
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)
    return path


def patch_nifti_header(path, **fields) -> Path:
    """Overwrite header fields of an uncompressed NIfTI-1 ``.nii`` in place (data untouched).

    ``fields`` are nibabel header field names (``dim``, ``pixdim``, ``sform_code``...).
    """
    path = Path(path)
    raw = path.read_bytes()
    hdr = nib.Nifti1Header.from_fileobj(BytesIO(raw))
    for key, value in fields.items():
        hdr[key] = value
    block = hdr.binaryblock
    path.write_bytes(block + raw[len(block):])
    return path


def write_sitk(path, data_ijk: np.ndarray, affine_ras: np.ndarray, *, compress: bool = True) -> Path:
    """Write an ``[i, j, k]`` array with a RAS+ mm affine as NRRD / MetaImage via SimpleITK."""
    path = Path(path)
    affine_ras = np.asarray(affine_ras, dtype=np.float64)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    linear_lps = ras_to_lps @ affine_ras[:3, :3]
    origin_lps = ras_to_lps @ affine_ras[:3, 3]
    spacing = np.linalg.norm(linear_lps, axis=0)
    direction = linear_lps / spacing  # unit columns
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data_ijk, (2, 1, 0))))
    assert img.GetSize() == tuple(int(s) for s in data_ijk.shape)
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in direction.ravel()])  # row-major 3x3
    img.SetOrigin([float(v) for v in origin_lps])
    sitk.WriteImage(img, str(path), compress)
    return path


def read_text_table(path):
    """A CSV written by cnsvol, every cell as text ("" = empty), formula guards removed (so ids
    read back as in the manifest): the file as a person opening it sees it."""
    import pandas as pd

    from cnsvol.csvformat import unguard

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    for col in frame.columns:
        frame[col] = [unguard(v) for v in frame[col]]
    return frame


# --------------------------------------------------------------------------------------------
# a small anisotropic grid and the command line, for the tests of the documented contract

CONTRACT_SHAPE = (16, 24, 8)


def grid_affine():
    """1.0 x 0.5 x 1.5 mm voxels (0.75 mm3), origin off zero: a unit mix-up cannot hide."""
    import numpy as np

    aff = np.diag([1.0, 0.5, 1.5, 1.0])
    aff[:3, 3] = [-10.0, 5.0, 3.0]
    return aff


def box(i0, i1, j0, j1, k0, k1):
    """A box of foreground voxels on the CONTRACT_SHAPE grid."""
    import numpy as np

    data = np.zeros(CONTRACT_SHAPE, np.uint8)
    data[i0:i1, j0:j1, k0:k1] = 1
    return data


def cli_main():
    """The ``cnsvol`` entry point named in pyproject.toml (wherever main lives)."""
    import importlib
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["cnsvol"]
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def run_cli(argv):
    """The exit code of ``cnsvol ARGV`` run in this process."""
    try:
        return cli_main()(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


CONTRACT_FULL = box(2, 14, 2, 22, 2, 6)   # 12 x 20 x 4 voxels: 960 voxels, 720 mm3
CONTRACT_HALF = box(2, 8, 2, 22, 2, 6)    # 6 x 20 x 4 voxels: 480 voxels, 360 mm3


def write_contract_masks(folder):
    """full, half, empty and a truncated (corrupt) full mask in ``folder``, on grid_affine()."""
    import gzip

    import numpy as np

    aff = grid_affine()
    write_nifti(folder / "full.nii.gz", CONTRACT_FULL, aff)
    write_nifti(folder / "half.nii.gz", CONTRACT_HALF, aff)
    write_nifti(folder / "empty.nii.gz", np.zeros(CONTRACT_SHAPE, np.uint8), aff)
    raw = gzip.compress(nifti_bytes(CONTRACT_FULL, aff), mtime=0)
    (folder / "corrupt.nii.gz").write_bytes(raw[: len(raw) // 2])
