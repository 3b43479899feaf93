"""DICOM image series (a folder of single-frame slices): geometry from the slice headers.

The grid is built from the headers themselves, with the checks a careful conversion makes:
one series in the folder, one orientation (ImageOrientationPatient) and one pixel spacing and
matrix for every slice, no two slices at one position, slice positions equally spaced along
the slice normal (the spacing is measured between positions, never read from SliceThickness),
and no gantry tilt (positions stepping off the normal). The voxels are read with SimpleITK's
series reader in that slice order and its geometry is checked against the headers'. The affine
maps ``(i, j, k)`` = (column, row, slice) to RAS+ mm; LPS becomes RAS once, here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from .files import check_size, first_line, is_dicom

__all__ = ["LPS_TO_RAS", "SeriesGrid", "dicom_headers", "read_dataset", "read_dicom_series",
           "series_grid"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient coordinates (LPS) to RAS+, as a 4x4 affine."""
_NON_IMAGE_MODALITIES = ("SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "SR", "PR", "KO", "REG")
_ORIENTATION_TOL = 1e-4  # direction cosines
_POSITION_TOL_MM = 1e-3  # in-plane, and spacing uniformity (relative to the spacing: 1e-3)


@dataclass(frozen=True)
class SeriesGrid:
    """The voxel grid of one image series, slices in order along the normal."""

    files: tuple[Path, ...]
    affine_lps: np.ndarray  # (column, row, slice) -> LPS mm
    shape: tuple[int, int, int]  # (columns, rows, slices)
    series_uid: str
    frame_of_reference_uid: str
    notes: tuple[str, ...] = ()
    modality: str = ""
    description: str = ""  # SeriesDescription
    sop_class_uid: str = ""

    @property
    def affine(self) -> np.ndarray:
        """``(i, j, k)`` -> RAS+ mm."""
        return LPS_TO_RAS @ self.affine_lps

    @property
    def slice_spacing_mm(self) -> float:
        return float(np.linalg.norm(self.affine_lps[:3, 2]))


def read_dataset(path: Path, *, pixels: bool = True) -> Any:
    """The file's dataset; with ``pixels``, its pixel data (and any other element over 1 MB)
    is read only when used, so that a SEG's size is checked before its frames are read."""
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels, defer_size="1 MB")
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on a broken file
        raise MaskError(path, f"a truncated or corrupt DICOM file: its data elements cannot be "
                        f"read ({type(exc).__name__}: {first_line(exc)})",
                        "re-export or re-copy the file") from None


def dicom_headers(folder: Path, *, recursive: bool = False) -> list[tuple[Path, Any]]:
    """``(file, header without pixel data)`` of every DICOM Part 10 file in ``folder``."""
    paths = sorted(folder.rglob("*") if recursive else folder.iterdir())
    return [(p, read_dataset(p, pixels=False)) for p in paths if p.is_file() and is_dicom(p)]


def _is_image(ds: Any) -> bool:
    return (str(getattr(ds, "Modality", "")) not in _NON_IMAGE_MODALITIES
            and "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds)


def image_series(headers: list[tuple[Path, Any]]) -> dict[str, list[tuple[Path, Any]]]:
    """The image slices among ``headers``, by SeriesInstanceUID."""
    series: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    for p, ds in headers:
        if _is_image(ds):
            series[str(getattr(ds, "SeriesInstanceUID", ""))].append((p, ds))
    return dict(series)


def series_grid(folder: Path) -> SeriesGrid:
    """The checked grid of the one image series in ``folder`` (headers only, no pixels)."""
    if not folder.exists():
        raise MaskError(folder, "not found", "check the path of the image series folder")
    if not folder.is_dir():
        raise MaskError(folder, "not a folder of DICOM slices",
                        "give the folder holding the image series")
    found = image_series(dicom_headers(folder))
    if not found:
        raise MaskError(folder, "holds no DICOM image slices",
                        "give the folder holding the DICOM image series")
    if len(found) > 1:
        counts = ", ".join(f"{uid} ({len(v)} files)" for uid, v in sorted(found.items()))
        raise MaskError(folder, f"holds {len(found)} image series: {counts}",
                        "give a folder holding one series")
    uid, slices = next(iter(found.items()))
    return grid_of(folder, uid, slices)


def _vectors(folder: Path, slices: list[tuple[Path, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The slices' shared orientation (2 x 3) and in-plane (row, column) spacing, checked."""
    iops = np.array([[float(v) for v in ds.ImageOrientationPatient] for _, ds in slices])
    bad = np.abs(iops - iops[0]).max(axis=1) > _ORIENTATION_TOL
    if bad.any():
        other = slices[int(np.argmax(bad))]
        raise MaskError(folder, f"its slices have {len(np.unique(iops.round(4), axis=0))} "
                        f"orientations (e.g. {_fmt(iops[0])} in {slices[0][0].name}, "
                        f"{_fmt(iops[int(np.argmax(bad))])} in {other[0].name})",
                        "give a folder holding one series acquired in one orientation")
    spacing = np.array([[float(v) for v in ds.PixelSpacing] for _, ds in slices])
    matrix = {(int(ds.Rows), int(ds.Columns)) for _, ds in slices}
    if np.abs(spacing - spacing[0]).max() > 1e-6 or len(matrix) > 1:
        raise MaskError(folder, f"its slices differ in pixel spacing or matrix "
                        f"({sorted({tuple(s) for s in spacing.round(6).tolist()})}, "
                        f"{sorted(matrix)})", "give a folder holding one regular series")
    return iops[0].reshape(2, 3), spacing[0]


def grid_of(folder: Path, uid: str, slices: list[tuple[Path, Any]]) -> SeriesGrid:
    """The grid of one series' slices (checks in the module docstring)."""
    (row_dir, col_dir), (d_row, d_col) = _vectors(folder, slices)
    normal = np.cross(row_dir, col_dir)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in slices])
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    files = tuple(slices[i][0] for i in order)
    along = positions @ normal
    notes: list[str] = []
    if len(files) > 1:
        gaps = np.diff(along)
        if np.any(gaps < _POSITION_TOL_MM):
            dup = int(np.argmax(gaps < _POSITION_TOL_MM))
            raise MaskError(folder, f"two slices at one position ({files[dup].name} and "
                            f"{files[dup + 1].name}, {along[dup]:.4f} mm along the normal)",
                            "remove the duplicate slice (or give one series per folder)")
        step = float(np.mean(gaps))
        if np.abs(gaps - step).max() > max(_POSITION_TOL_MM, 1e-3 * step):
            raise MaskError(folder, f"its slices are not equally spaced (gaps from "
                            f"{gaps.min():.4f} to {gaps.max():.4f} mm between positions): a "
                            "missing slice, or a series of variable thickness",
                            "give the complete series (or resample it to one spacing)")
        shift = positions[-1] - positions[0] - (along[-1] - along[0]) * normal
        if np.linalg.norm(shift) > max(_POSITION_TOL_MM, 1e-3 * step * len(files)):
            raise MaskError(folder, f"its slice positions step off the slice normal by "
                            f"{np.linalg.norm(shift):.3f} mm over the series (gantry tilt)",
                            "correct the tilt (resample) before measuring")
        thickness = getattr(slices[0][1], "SliceThickness", None)
        if thickness is not None and abs(float(thickness) - step) > 1e-3:
            notes.append(f"slices lie {step:.6g} mm apart (SliceThickness says "
                         f"{float(thickness):.6g}): the spacing between positions is used")
    else:
        step = float(getattr(slices[0][1], "SpacingBetweenSlices", 0)
                     or getattr(slices[0][1], "SliceThickness", 0) or 0)
        if step <= 0:
            raise MaskError(folder, "one slice without SliceThickness: no volume can be computed",
                            "give the whole series")
    affine = np.eye(4)
    affine[:3, 0] = row_dir * d_col  # along a row: the column index i
    affine[:3, 1] = col_dir * d_row  # down a column: the row index j
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[0]
    ds0 = slices[0][1]
    return SeriesGrid(files, affine, (int(ds0.Columns), int(ds0.Rows), len(files)), uid,
                      str(getattr(ds0, "FrameOfReferenceUID", "")), tuple(notes),
                      str(getattr(ds0, "Modality", "") or ""),
                      str(getattr(ds0, "SeriesDescription", "") or ""),
                      str(getattr(ds0, "SOPClassUID", "") or ""))


def read_dicom_series(folder: Path, max_bytes: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(voxels ``[i, j, k]``, RAS+ affine, notes) of the one image series in ``folder``."""
    import SimpleITK as sitk

    grid = series_grid(folder)
    check_size(folder, grid.shape, 4, max_bytes, reader_copies=2)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in grid.files])
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise MaskError(folder, f"cannot read the slices' pixels ({first_line(exc)})",
                        "re-copy the series (a slice may be truncated)") from None
    arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # [k, j, i] -> [i, j, k]
    if arr.shape != grid.shape:
        raise MaskError(folder, f"its pixels form {arr.shape} voxels, its headers {grid.shape}",
                        "re-export the series")
    itk = np.eye(4)
    itk[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    itk[:3, 3] = img.GetOrigin()
    if np.abs(itk[:3, :2] - grid.affine_lps[:3, :2]).max() > 1e-4 or \
            np.abs(itk[:3, 3] - grid.affine_lps[:3, 3]).max() > 1e-3:
        raise MaskError(folder, "SimpleITK and the slice headers disagree on its geometry",
                        "re-export the series")
    return arr, grid.affine, list(grid.notes)


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
