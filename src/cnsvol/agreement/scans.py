"""Agreement of two masks of one scan: voxels and lesions, for the whole mask and per label.

For each region (``whole``: every label > 0; then each label value present in either mask):

* **voxels**: true positives (in both), false positives (test only), false negatives
  (reference only), true negatives; volumes (voxels x voxel volume, mm3) and the Dice
  coefficient 2|A n B| / (|A| + |B|). Both empty: Dice 1 (the sources agree that there is
  nothing; AUDIT's formula gives the same for a non-empty one and 0 when only one is empty).
* **lesions**: connected components of the region in each mask (the run's connectivity),
  matched one to one by overlap (the assignment of maximum total overlap, scipy's
  ``linear_sum_assignment``; pairs that do not overlap are never matched). TP = matched
  pairs, FN = reference lesions unmatched, FP = test lesions unmatched, F1 = 2TP / (2TP + FP +
  FN) (1 when neither mask has a lesion). The same counts for measurable lesions: longest
  axial diameter at least the criteria's measurable size, the reference lesion deciding for
  TP and FN, the test lesion for FP.

The two masks must be on one grid (the same scan segmented twice); a mask on another grid is
refused, naming both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from ..io.mask import Mask, mask_from_array
from ..io.read import read_mask
from ..lesions.find import find_lesions

__all__ = ["SCAN_KEYS", "scan_agreement"]

SCAN_KEYS = (
    "region", "reference_volume_mm3", "test_volume_mm3", "dice", "tp_voxels", "fp_voxels",
    "fn_voxels", "tn_voxels", "lesions_reference", "lesions_test", "lesions_tp", "lesions_fp",
    "lesions_fn", "lesion_f1", "measurable_lesions_tp", "measurable_lesions_fp",
    "measurable_lesions_fn", "measurable_lesion_f1",
)


def _mask(source: str | Path | Mask, max_bytes: int | None) -> Mask:
    if isinstance(source, Mask):
        return source
    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    return read_mask(source, mask_kind="labels", **kwargs)


def scan_agreement(
    reference: str | Path | Mask,
    test: str | Path | Mask,
    *,
    labels: tuple[int, ...] | None = None,
    connectivity: int = 26,
    measurable_min_diameter_mm: float = 10.0,
    label_names: dict[int, str] | None = None,
    max_bytes: int | None = None,
    region_labels: tuple[int, ...] | None = None,
) -> list[dict[str, Any]]:
    """One row per region (see the module docstring); ``labels``: the label values compared
    (default: every one present in either mask); ``label_names``: a region name per value
    (default ``label_<v>``), and then a label without a name is refused (a mask of another
    convention); ``region_labels``: the labels of the ``whole`` region (default: ``labels``,
    else every label), e.g. the tumour core the response measures."""
    ref, tst = _mask(reference, max_bytes), _mask(test, max_bytes)
    if ref.shape != tst.shape or not np.allclose(ref.affine, tst.affine, rtol=0, atol=1e-3):
        def grid(m: Mask) -> str:
            rows = "; ".join(" ".join(f"{v:.4g}" for v in r) for r in m.affine[:3])
            return f"{'x'.join(map(str, m.shape))}, affine [{rows}]"
        raise MaskError(tst.path, f"is not on the grid of the reference mask {ref.path} "
                        f"(test {grid(tst)}; reference {grid(ref)})",
                        "compare two segmentations of the same scan, saved on its grid (a "
                        "mask resampled, cropped or flipped on saving must be written back on "
                        "the scan's grid)")
    a, b = np.asarray(ref.data), np.asarray(tst.data)
    values = sorted({int(v) for v in np.unique(a) if v > 0} | {int(v) for v in np.unique(b)
                                                               if v > 0})
    if labels is not None:
        values = [v for v in values if v in labels]
    if label_names is not None and (unknown := [v for v in values if v not in label_names]):
        raise MaskError(tst.path if any((b == v).any() for v in unknown) else ref.path,
                        f"holds label(s) {', '.join(map(str, unknown))}, which the compartment "
                        f"convention does not define ({', '.join(f'{v} {n}' for v, n in sorted(label_names.items()))})",
                        "give the masks' convention (--compartments) or select labels (--labels)")
    region = region_labels if region_labels is not None else labels
    if region is not None:
        whole_a, whole_b = np.isin(a, list(region)), np.isin(b, list(region))
    else:
        whole_a, whole_b = a > 0, b > 0
    names = label_names or {}
    regions = [("whole", whole_a, whole_b)] + [
        (names.get(v, f"label_{v}"), a == v, b == v) for v in values]
    voxel = float(abs(np.linalg.det(ref.affine[:3, :3])))
    return [_region_row(name, ra, rb, ref.affine, voxel, connectivity,
                        measurable_min_diameter_mm) for name, ra, rb in regions]


def _region_row(name: str, ra: np.ndarray, rb: np.ndarray, affine: np.ndarray, voxel: float,
                connectivity: int, measurable_mm: float) -> dict[str, Any]:
    tp = int(np.count_nonzero(ra & rb))
    n_a, n_b = int(np.count_nonzero(ra)), int(np.count_nonzero(rb))
    fp, fn = n_b - tp, n_a - tp
    dice = 1.0 if n_a + n_b == 0 else 2.0 * tp / (n_a + n_b)
    row: dict[str, Any] = {
        "region": name, "reference_volume_mm3": n_a * voxel, "test_volume_mm3": n_b * voxel,
        "dice": dice, "tp_voxels": tp, "fp_voxels": fp, "fn_voxels": fn,
        "tn_voxels": int(ra.size) - tp - fp - fn,
    }
    row.update(_lesion_counts(ra, rb, affine, connectivity, measurable_mm))
    return row


def _lesions(region: np.ndarray, affine: np.ndarray, connectivity: int,
             measurable_mm: float) -> tuple[np.ndarray, list[bool]]:
    """(label image of the region's lesions, 1..n; per lesion, whether it is measurable)."""
    if not region.any():
        return np.zeros(region.shape, dtype=np.int32), []
    ls = find_lesions(mask_from_array(region.astype(np.uint8), affine),
                      connectivity=connectivity, measurable_min_diameter_mm=measurable_mm)
    measurable = [False] * len(ls.lesions)
    for les in ls.lesions:
        measurable[les.lesion_id - 1] = bool(les.measurable)
    return ls.label_image, measurable


def _f1(tp: int, fp: int, fn: int) -> float:
    return 1.0 if tp + fp + fn == 0 else 2.0 * tp / (2 * tp + fp + fn)


def _lesion_counts(ra: np.ndarray, rb: np.ndarray, affine: np.ndarray, connectivity: int,
                   measurable_mm: float) -> dict[str, Any]:
    from scipy.optimize import linear_sum_assignment

    la, ma = _lesions(ra, affine, connectivity, measurable_mm)
    lb, mb = _lesions(rb, affine, connectivity, measurable_mm)
    overlap = np.zeros((len(ma), len(mb)), dtype=np.int64)
    both = (la > 0) & (lb > 0)
    if both.any():
        pairs, counts = np.unique(np.stack([la[both], lb[both]]), axis=1, return_counts=True)
        overlap[pairs[0] - 1, pairs[1] - 1] = counts
    matched: list[tuple[int, int]] = []
    if overlap.size and overlap.any():
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        matched = [(int(i), int(j)) for i, j in zip(rows, cols) if overlap[i, j] > 0]
    hit_a, hit_b = {i for i, _ in matched}, {j for _, j in matched}
    tp = len(matched)
    fn = len(ma) - tp
    fp = len(mb) - tp
    m_tp = sum(ma[i] for i, _ in matched)
    m_fn = sum(m for i, m in enumerate(ma) if m and i not in hit_a)
    m_fp = sum(m for j, m in enumerate(mb) if m and j not in hit_b)
    return {"lesions_reference": len(ma), "lesions_test": len(mb), "lesions_tp": tp,
            "lesions_fp": fp, "lesions_fn": fn, "lesion_f1": _f1(tp, fp, fn),
            "measurable_lesions_tp": int(m_tp), "measurable_lesions_fp": int(m_fp),
            "measurable_lesions_fn": int(m_fn),
            "measurable_lesion_f1": _f1(int(m_tp), int(m_fp), int(m_fn))}
