"""Reader-vs-model agreement (`cnsvol.agreement`, `cnsvol.agree`, `cnsvol agree`) against
independent references.

Written from the issue and its API contract only, not from the implementation. The references:

* AUDIT's own per-region Dice and predicted SIZE for four BraTS 2024 cases and two models
  (``audit_brats2024/audit_metrics_subset.csv``), and connected components, overlaps, matchings and
  axial diameters recomputed here with nibabel + numpy + scipy;
* statsmodels (``cohens_kappa``, ``mcnemar``, an OLS two-way ANOVA for the ICC mean squares) and
  scipy (t, F, chi-square, binomial, Clopper-Pearson); scikit-learn is not used;
* hand computations on small tables, written out in the docstrings;
* synthetic two-source cohorts (spheres on a 1 mm grid) whose lesions, categories, responder
  flags and rates are known by construction.

Imports of cnsvol happen inside the tests so that collection works before the feature exists.
"""

from __future__ import annotations

import importlib
import json
import math
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats
from scipy.optimize import linear_sum_assignment
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist

CNSVOL_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "cnsvol"
CATEGORIES = ("CR", "PR", "SD", "PD")
AUDIT_NAMES = {1: "ENH", 2: "NEC", 3: "EDE"}
AUDIT_CASES = (
    ("SSA", "BraTS2024_SSA-00002-000"),
    ("SSA", "BraTS2024_SSA-00230-000"),
    ("PED", "BraTS2024_PED-00001-000"),
    ("PED", "BraTS2024_PED-00266-000"),
)
AUDIT_MODELS = ("SegResNet", "nnUnet")
SCAN_KEYS = (
    "region", "reference_volume_mm3", "test_volume_mm3", "dice", "tp_voxels", "fp_voxels",
    "fn_voxels", "tn_voxels", "lesions_reference", "lesions_test", "lesions_tp", "lesions_fp",
    "lesions_fn", "lesion_f1", "measurable_lesions_tp", "measurable_lesions_fp",
    "measurable_lesions_fn", "measurable_lesion_f1",
)
BA_KEYS = ("n", "bias", "sd", "loa_lower", "loa_upper", "bias_ci", "loa_lower_ci", "loa_upper_ci")
ICC_KEYS = ("n", "icc_a1", "icc_a1_ci", "icc_c1", "icc_c1_ci")
KAPPA_KEYS = ("kappa", "se", "ci", "confusion", "n", "observed_agreement")


# --------------------------------------------------------------------------------------------
# lazy access to the code under test
# --------------------------------------------------------------------------------------------


def _agreement():
    return importlib.import_module("cnsvol.agreement")


def _cnsvol():
    return importlib.import_module("cnsvol")


# --------------------------------------------------------------------------------------------
# independent reference implementations (numpy / scipy / statsmodels only)
# --------------------------------------------------------------------------------------------


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|); 1.0 when both are empty (cnsvol's convention)."""
    sa, sb = int(a.sum()), int(b.sum())
    if sa + sb == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / (sa + sb)


def _f1(tp: int, fp: int, fn: int) -> float:
    return 1.0 if tp + fp + fn == 0 else 2.0 * tp / (2 * tp + fp + fn)


def _structure(connectivity: int) -> np.ndarray:
    return ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])


def _label(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    lab, n = ndimage.label(mask, structure=_structure(connectivity))
    return lab, int(n)


def _overlap_matrix(ref_lab, nr, test_lab, nt) -> np.ndarray:
    both = (ref_lab > 0) & (test_lab > 0)
    idx = ref_lab[both].astype(np.int64) * (nt + 1) + test_lab[both].astype(np.int64)
    return np.bincount(idx, minlength=(nr + 1) * (nt + 1)).reshape(nr + 1, nt + 1)[1:, 1:]


def _greedy_match(ov: np.ndarray) -> list[tuple[int, int]]:
    """Maximum-overlap-first one-to-one matching (0-based lesion indices)."""
    pairs = [(-int(ov[r, t]), r, t) for r, t in zip(*np.nonzero(ov))]
    pairs.sort()
    used_r, used_t, out = set(), set(), []
    for _, r, t in pairs:
        if r not in used_r and t not in used_t:
            used_r.add(r)
            used_t.add(t)
            out.append((r, t))
    return out


def _hungarian_match(ov: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one matching maximising the total overlap (pairs with no overlap dropped)."""
    if ov.size == 0:
        return []
    rows, cols = linear_sum_assignment(ov, maximize=True)
    return [(int(r), int(t)) for r, t in zip(rows, cols) if ov[r, t] > 0]


_OFFSETS = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])


def _axial_diameter(ijk: np.ndarray, sx: float = 1.0, sy: float = 1.0, stop_at: float = np.inf) -> float:
    """Largest in-plane Feret diameter over the axial (k) slices, between outer voxel corners.

    (README: "measured between the outer corners of its voxels"; a row of 10 voxels of 1 mm gives
    sqrt(10^2 + 1^2).) Stops early once ``stop_at`` is reached (the value returned is then a lower
    bound >= stop_at).
    """
    best = 0.0
    ks = ijk[:, 2]
    for z in np.unique(ks):
        pts = ijk[ks == z][:, :2].astype(float)
        ext_i = (pts[:, 0].max() - pts[:, 0].min() + 1) * sx
        ext_j = (pts[:, 1].max() - pts[:, 1].min() + 1) * sy
        if math.hypot(ext_i, ext_j) <= best:
            continue
        corners = (pts[:, None, :] + _OFFSETS[None]).reshape(-1, 2) * (sx, sy)
        corners = np.unique(corners, axis=0)
        if len(corners) > 8:
            corners = corners[ConvexHull(corners).vertices]
        best = max(best, float(pdist(corners).max()))
        if best >= stop_at:
            return best
    return best


def _independent_scan(ref: np.ndarray, test: np.ndarray, *, connectivity=26, min_diam=10.0,
                      spacing=(1.0, 1.0, 1.0)) -> dict:
    """Everything scan_agreement reports for one region, from boolean arrays."""
    vox = float(np.prod(spacing))
    tp = int(np.logical_and(ref, test).sum())
    fp = int(np.logical_and(~ref, test).sum())
    fn = int(np.logical_and(ref, ~test).sum())
    tn = int(ref.size - tp - fp - fn)
    rl, nr = _label(ref, connectivity)
    tl, nt = _label(test, connectivity)
    ov = _overlap_matrix(rl, nr, tl, nt)
    greedy = _greedy_match(ov)
    hung = _hungarian_match(ov)
    # diameters, 1-based label -> diameter (stop early far above the threshold)
    def diams(lab, n):
        out = {}
        objs = ndimage.find_objects(lab)
        for i, sl in enumerate(objs, start=1):
            sub = lab[sl] == i
            ijk = np.argwhere(sub)
            out[i - 1] = _axial_diameter(ijk, spacing[0], spacing[1], stop_at=min_diam + 1.0)
        return out
    dr, dt = diams(rl, nr), diams(tl, nt)
    borderline = any(abs(d - min_diam) < 0.05 for d in list(dr.values()) + list(dt.values()))
    mr = {i for i, d in dr.items() if d >= min_diam}
    mt = {i for i, d in dt.items() if d >= min_diam}

    def measurable(match):
        matched_r = {r for r, _ in match}
        matched_t = {t for _, t in match}
        m_tp = sum(1 for r, _ in match if r in mr)
        m_fn = len(mr - matched_r)
        m_fp = len(mt - matched_t)
        # the other reading: a matched pair whose test lesion is measurable and whose reference is
        # not counts as a measurable FP
        m_fp_alt = m_fp + sum(1 for r, t in match if r not in mr and t in mt)
        return m_tp, m_fp, m_fn, m_fp_alt

    return {
        "reference_voxels": int(ref.sum()), "test_voxels": int(test.sum()),
        "reference_volume_mm3": int(ref.sum()) * vox, "test_volume_mm3": int(test.sum()) * vox,
        "dice": _dice(ref, test), "tp_voxels": tp, "fp_voxels": fp, "fn_voxels": fn,
        "tn_voxels": tn, "lesions_reference": nr, "lesions_test": nt,
        "greedy_tp": len(greedy), "hungarian_tp": len(hung),
        "greedy_measurable": measurable(greedy), "hungarian_measurable": measurable(hung),
        "borderline": borderline,
    }


def _ref_bland_altman(a, b) -> dict:
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    n = len(d)
    bias, sd = d.mean(), d.std(ddof=1)
    t = stats.t.ppf(0.975, n - 1)
    lo, up = bias - 1.96 * sd, bias + 1.96 * sd
    h_bias = t * sd / math.sqrt(n)
    h_loa = t * sd * math.sqrt(3.0 / n)
    return {"n": n, "bias": bias, "sd": sd, "loa_lower": lo, "loa_upper": up,
            "bias_ci": (bias - h_bias, bias + h_bias), "loa_lower_ci": (lo - h_loa, lo + h_loa),
            "loa_upper_ci": (up - h_loa, up + h_loa)}


def _mean_squares(Y: np.ndarray) -> tuple[float, float, float]:
    """MSR (subjects), MSC (raters), MSE of the two-way ANOVA without interaction."""
    Y = np.asarray(Y, float)
    n, k = Y.shape
    g = Y.mean()
    ssr = k * ((Y.mean(1) - g) ** 2).sum()
    ssc = n * ((Y.mean(0) - g) ** 2).sum()
    sse = ((Y - g) ** 2).sum() - ssr - ssc
    return ssr / (n - 1), ssc / (k - 1), sse / ((n - 1) * (k - 1))


def _ref_icc(Y, alpha: float = 0.05) -> dict:
    """McGraw & Wong (1996) ICC(A,1) and ICC(C,1) with their F-based CIs, for k raters."""
    Y = np.asarray(Y, float)
    n, k = Y.shape
    msr, msc, mse = _mean_squares(Y)
    q = 1 - alpha / 2
    icc_c = (msr - mse) / (msr + (k - 1) * mse)
    icc_a = (msr - mse) / (msr + (k - 1) * mse + k / n * (msc - mse))
    f_obs = msr / mse
    fl = f_obs / stats.f.ppf(q, n - 1, (n - 1) * (k - 1))
    fu = f_obs * stats.f.ppf(q, (n - 1) * (k - 1), n - 1)
    c_ci = ((fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1))
    a = k * icc_a / (n * (1 - icc_a))
    b = 1 + k * icc_a * (n - 1) / (n * (1 - icc_a))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f3 = stats.f.ppf(q, n - 1, v)
    f4 = stats.f.ppf(q, v, n - 1)
    a_lo = n * (msr - f3 * mse) / (f3 * (k * msc + (k * n - k - n) * mse) + n * msr)
    a_up = n * (f4 * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f4 * msr)
    return {"n": n, "icc_a1": icc_a, "icc_a1_ci": (a_lo, a_up), "icc_c1": icc_c, "icc_c1_ci": c_ci,
            "v": v}


def _clopper_pearson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return ci.low, ci.high


def _value(x) -> float:
    """A paired difference given as a number or as a dict holding it."""
    if isinstance(x, dict):
        for key in ("difference", "estimate", "rate_difference", "value", "diff"):
            if key in x:
                return float(x[key])
        raise AssertionError(f"no difference value in {x!r}")
    return float(x)


def _truthy(x) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    return str(x).strip().lower() in ("true", "1", "1.0", "yes")


def _close_pair(got, want, tol=1e-9):
    got = list(got)
    assert len(got) == 2
    assert got[0] == pytest.approx(want[0], rel=tol, abs=tol)
    assert got[1] == pytest.approx(want[1], rel=tol, abs=tol)


def _by_region(rows) -> dict:
    return {r["region"]: r for r in rows}


# --------------------------------------------------------------------------------------------
# synthetic masks
# --------------------------------------------------------------------------------------------


def _ball(shape, centre, r) -> np.ndarray:
    i, j, k = np.indices(shape)
    return ((i - centre[0]) ** 2 + (j - centre[1]) ** 2 + (k - centre[2]) ** 2) <= r * r


def _save(path: Path, arr: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> Path:
    img = nib.Nifti1Image(np.asarray(arr).astype(np.uint8), np.diag([*spacing, 1.0]))
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return path


# ============================================================================================
# 1. statistics against statsmodels / scipy / hand computations
# ============================================================================================


def test_bland_altman_hand_computation():
    """Bland-Altman of b against a, by hand.

    a = [10, 20, 30, 40], b = [12, 19, 33, 44]: d = b - a = [2, -1, 3, 4], bias = 8/4 = 2;
    deviations 0, -3, 1, 2, sum of squares 14, sd = sqrt(14/3) = 2.1602469;
    LoA = 2 -/+ 1.96 * 2.1602469 = (-2.2340839, 6.2340839);
    t(0.975, 3) = 3.1824463: bias CI = 2 -/+ 3.1824463 * 2.1602469 / 2 = (-1.4373814, 5.4373814);
    LoA CI half-width t * sd * sqrt(3/4) = 5.9538...: lower LoA CI (-8.1879, 3.7198),
    upper (0.2803, 12.1879).
    (statsmodels' mean_diff_plot uses a - b and ddof=0, so it is not the reference here.)
    """
    ag = _agreement()
    a, b = [10, 20, 30, 40], [12, 19, 33, 44]
    got = ag.bland_altman(a, b)
    for key in BA_KEYS:
        assert key in got, key
    sd = math.sqrt(14 / 3)
    t = 3.182446305284263
    assert got["n"] == 4
    assert got["bias"] == pytest.approx(2.0, abs=1e-12)
    assert got["sd"] == pytest.approx(sd, rel=1e-12)
    assert got["loa_lower"] == pytest.approx(2 - 1.96 * sd, rel=1e-12)
    assert got["loa_upper"] == pytest.approx(2 + 1.96 * sd, rel=1e-12)
    _close_pair(got["bias_ci"], (2 - t * sd / 2, 2 + t * sd / 2), 1e-9)
    h = t * sd * math.sqrt(3 / 4)
    _close_pair(got["loa_lower_ci"], (2 - 1.96 * sd - h, 2 - 1.96 * sd + h), 1e-9)
    _close_pair(got["loa_upper_ci"], (2 + 1.96 * sd - h, 2 + 1.96 * sd + h), 1e-9)
    assert got["loa_lower_ci"][0] == pytest.approx(-8.18789, abs=1e-4)
    # the sign: b - a, so swapping the arguments negates the bias
    assert ag.bland_altman(b, a)["bias"] == pytest.approx(-2.0, abs=1e-12)


def test_bland_altman_random_against_scipy():
    """On 40 random pairs, every field equals the formulas computed with numpy + scipy's t."""
    ag = _agreement()
    rng = np.random.default_rng(7)
    a = rng.gamma(3.0, 2000.0, 40)
    b = a * rng.normal(1.05, 0.1, 40) + rng.normal(0, 200, 40)
    got, want = ag.bland_altman(a, b), _ref_bland_altman(a, b)
    assert got["n"] == 40
    for key in ("bias", "sd", "loa_lower", "loa_upper"):
        assert got[key] == pytest.approx(want[key], rel=1e-10), key
    for key in ("bias_ci", "loa_lower_ci", "loa_upper_ci"):
        _close_pair(got[key], want[key], 1e-9)


def test_bland_altman_identical_sources():
    ag = _agreement()
    got = ag.bland_altman([1.0, 5.0, 9.0], [1.0, 5.0, 9.0])
    assert got["bias"] == 0 and got["sd"] == 0
    assert got["loa_lower"] == 0 and got["loa_upper"] == 0


def test_icc_hand_anova_and_statsmodels():
    """ICC(A,1) and ICC(C,1) of two raters on five subjects, from the ANOVA mean squares.

    a = [2, 4, 6, 8, 10], b = [3, 4, 7, 9, 12]; grand mean 6.5.
    SS subjects = 2 * sum((row mean - 6.5)^2) = 2 * (16 + 6.25 + 0 + 4 + 20.25) = 93, MSR = 23.25;
    SS raters = 5 * ((6 - 6.5)^2 + (7 - 6.5)^2) = 2.5, MSC = 2.5; SS total = 96.5, SSE = 1,
    MSE = 0.25 (statsmodels' OLS ANOVA y ~ C(subject) + C(rater) gives the same).
    ICC(C,1) = (MSR - MSE) / (MSR + MSE) = 23 / 23.5 = 46/47 = 0.9787234;
    ICC(A,1) = (MSR - MSE) / (MSR + MSE + (2/5)(MSC - MSE)) = 23 / 24.4 = 0.9426230.
    CIs (McGraw & Wong 1996, table 7): C,1 from F = MSR/MSE = 93 on (4, 4) df: (0.81279, 0.99776);
    A,1 with v = 1.92008 (Satterthwaite): (0.16350, 0.99441).
    The reference helper itself is checked first on Shrout & Fleiss's (1979) 6 x 4 table, whose
    published ICC(2,1) = 0.29 [0.019, 0.76] and ICC(3,1) = 0.71 [0.34, 0.95].
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    sf = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    ref = _ref_icc(sf)
    assert round(ref["icc_a1"], 2) == 0.29 and round(ref["icc_c1"], 2) == 0.71
    assert [round(x, 2) for x in ref["icc_a1_ci"]] == [0.02, 0.76]
    assert [round(x, 2) for x in ref["icc_c1_ci"]] == [0.34, 0.95]

    a = np.array([2, 4, 6, 8, 10.0])
    b = np.array([3, 4, 7, 9, 12.0])
    df = pd.DataFrame({"y": np.r_[a, b], "s": np.tile(np.arange(5), 2), "r": np.repeat([0, 1], 5)})
    table = anova_lm(smf.ols("y ~ C(s) + C(r)", df).fit())
    assert table.loc["C(s)", "mean_sq"] == pytest.approx(23.25)
    assert table.loc["C(r)", "mean_sq"] == pytest.approx(2.5)
    assert table.loc["Residual", "mean_sq"] == pytest.approx(0.25)
    want = _ref_icc(np.c_[a, b])
    assert want["icc_c1"] == pytest.approx(46 / 47, rel=1e-12)
    assert want["icc_a1"] == pytest.approx(23 / 24.4, rel=1e-12)

    got = _agreement().icc(a, b)
    for key in ICC_KEYS:
        assert key in got, key
    assert got["n"] == 5
    assert got["icc_c1"] == pytest.approx(46 / 47, rel=1e-10)
    assert got["icc_a1"] == pytest.approx(23 / 24.4, rel=1e-10)
    _close_pair(got["icc_c1_ci"], want["icc_c1_ci"], 1e-7)
    _close_pair(got["icc_a1_ci"], want["icc_a1_ci"], 1e-7)
    assert got["icc_c1_ci"][0] == pytest.approx(0.81279, abs=1e-5)
    assert got["icc_a1_ci"][0] == pytest.approx(0.16350, abs=1e-5)


def test_icc_random_and_rater_order():
    """Random volumes: equals the McGraw & Wong formulas; both ICCs are symmetric in the raters;
    a constant offset between raters lowers ICC(A,1) but leaves ICC(C,1) unchanged."""
    ag = _agreement()
    rng = np.random.default_rng(11)
    a = rng.gamma(4.0, 1500.0, 25)
    b = a + rng.normal(300.0, 400.0, 25)
    got, want = ag.icc(a, b), _ref_icc(np.c_[a, b])
    for key in ("icc_a1", "icc_c1"):
        assert got[key] == pytest.approx(want[key], rel=1e-10)
    _close_pair(got["icc_a1_ci"], want["icc_a1_ci"], 1e-7)
    _close_pair(got["icc_c1_ci"], want["icc_c1_ci"], 1e-7)
    swapped = ag.icc(b, a)
    assert swapped["icc_a1"] == pytest.approx(got["icc_a1"], rel=1e-12)
    assert swapped["icc_c1"] == pytest.approx(got["icc_c1"], rel=1e-12)
    shifted = ag.icc(a, a + 2000.0 + rng.normal(0, 1.0, 25))
    assert shifted["icc_c1"] > 0.999
    assert shifted["icc_a1"] < shifted["icc_c1"] - 0.05


def test_kappa_2x2_hand_and_statsmodels():
    """Cohen's kappa on a 2 x 2 table, by hand and by statsmodels.

    Table (rows reference, columns test), categories (yes, no): [[20, 5], [10, 15]], n = 50.
    p_o = 35/50 = 0.7; marginals rows (0.5, 0.5), columns (0.6, 0.4): p_e = 0.3 + 0.2 = 0.5;
    kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    SE (Fleiss, Cohen & Everitt 1969, statsmodels' std_kappa), with p = table / 50:
      A = sum_i p_ii (1 - (r_i + c_i)(1 - k))^2 = 0.4 * 0.34^2 + 0.3 * 0.46^2 = 0.10972,
      B = (1 - k)^2 sum_{i!=j} p_ij (c_i + r_j)^2 = 0.36 * (0.1 * 1.21 + 0.2 * 0.81) = 0.10188,
      C = (k - p_e (1 - k))^2 = 0.01;
      var = (A + B - C) / (1 - p_e)^2 / n = 0.2016 / 0.25 / 50 = 0.016128, SE = 0.1269961.
    CI = 0.4 -/+ 1.959964 * SE = (0.15109, 0.64891).
    """
    from statsmodels.stats.inter_rater import cohens_kappa

    ref = ["yes"] * 25 + ["no"] * 25
    test = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    got = _agreement().kappa(ref, test, categories=("yes", "no"))
    for key in KAPPA_KEYS:
        assert key in got, key
    assert np.asarray(got["confusion"]).tolist() == [[20, 5], [10, 15]]
    assert got["n"] == 50
    assert got["observed_agreement"] == pytest.approx(0.7, abs=1e-12)
    assert got["kappa"] == pytest.approx(0.4, abs=1e-12)
    assert got["se"] == pytest.approx(math.sqrt(0.016128), rel=1e-9)
    sm = cohens_kappa(np.array([[20, 5], [10, 15]]))
    assert got["kappa"] == pytest.approx(sm.kappa, abs=1e-12)
    assert got["se"] == pytest.approx(sm.std_kappa, rel=1e-9)
    _close_pair(got["ci"], (sm.kappa_low, sm.kappa_upp), 1e-9)


def test_kappa_4x4_hand_weighted_and_statsmodels():
    """Unweighted and linearly weighted kappa on CR/PR/SD/PD, by hand and by statsmodels.

    Confusion (rows reference, columns test, order CR PR SD PD):
        CR [1 0 0 0]
        PR [0 1 1 0]
        SD [0 0 2 1]
        PD [0 0 0 1]          n = 7, rows (1, 2, 3, 1), columns (1, 1, 3, 2).
    Unweighted: p_o = 5/7, p_e = (1 + 2 + 9 + 2)/49 = 14/49, kappa = (35 - 14)/(49 - 14) = 0.6.
    Linear weights w_ij = 1 - |i - j|/3: the two disagreements are adjacent (w = 2/3), so
    p_o,w = (5 + 4/3)/7 = 19/21; sum_ij r_i c_j |i - j| = 13 + 16 + 15 + 8 = 52, so
    p_e,w = (49 - 52/3)/49 = 95/147; kappa_w = (133 - 95)/(147 - 95) = 38/52 = 0.7307692.
    statsmodels: SE 0.2428403 (unweighted), 0.1793330 (linear). Its upper CI limits exceed 1
    (1.07596, 1.08226): they are compared unclipped, or clipped at 1.
    """
    from statsmodels.stats.inter_rater import cohens_kappa

    pairs = [("CR", "CR"), ("PR", "PR"), ("PR", "SD"), ("SD", "SD"), ("SD", "SD"), ("SD", "PD"),
             ("PD", "PD")]
    ref = [p[0] for p in pairs]
    test = [p[1] for p in pairs]
    table = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 2, 1], [0, 0, 0, 1]])
    ag = _agreement()
    for weights, wt, hand in ((None, None, 0.6), ("linear", "linear", 38 / 52)):
        got = ag.kappa(ref, test, weights=weights)
        sm = cohens_kappa(table, wt=wt)
        assert np.asarray(got["confusion"]).tolist() == table.tolist()
        assert got["n"] == 7
        assert got["kappa"] == pytest.approx(hand, abs=1e-12)
        assert got["kappa"] == pytest.approx(sm.kappa, abs=1e-12)
        assert got["se"] == pytest.approx(sm.std_kappa, rel=1e-9)
        assert got["ci"][0] == pytest.approx(sm.kappa_low, rel=1e-9)
        assert got["ci"][1] == pytest.approx(sm.kappa_upp, rel=1e-9) or got["ci"][1] == pytest.approx(1.0)
    assert ag.kappa(ref, test)["observed_agreement"] == pytest.approx(5 / 7, abs=1e-12)


def test_kappa_absent_categories_and_random_tables():
    """Categories absent from both sources still get their (zero) rows and columns, and the
    kappas equal statsmodels' on that 4 x 4 table; random tables agree too."""
    from statsmodels.stats.inter_rater import cohens_kappa

    ag = _agreement()
    ref = ["PR", "PR", "SD", "SD", "SD", "PR", "SD", "PR"]
    test = ["PR", "SD", "SD", "SD", "PR", "PR", "SD", "PR"]
    got = ag.kappa(ref, test)
    table = np.array([[0, 0, 0, 0], [0, 3, 1, 0], [0, 1, 3, 0], [0, 0, 0, 0]])
    assert np.asarray(got["confusion"]).tolist() == table.tolist()
    assert got["kappa"] == pytest.approx(cohens_kappa(table).kappa, abs=1e-12)
    assert got["kappa"] == pytest.approx(0.5, abs=1e-12)  # p_o 6/8, p_e 1/2
    rng = np.random.default_rng(3)
    for _ in range(5):
        r = rng.choice(CATEGORIES, 60, p=[0.1, 0.3, 0.4, 0.2])
        t = np.where(rng.random(60) < 0.7, r, rng.choice(CATEGORIES, 60))
        tab = np.zeros((4, 4), int)
        for x, y in zip(r, t):
            tab[CATEGORIES.index(x), CATEGORIES.index(y)] += 1
        for weights in (None, "linear"):
            g = ag.kappa(list(r), list(t), weights=weights)
            sm = cohens_kappa(tab, wt=weights)
            assert np.asarray(g["confusion"]).tolist() == tab.tolist()
            assert g["kappa"] == pytest.approx(sm.kappa, abs=1e-12)
            assert g["se"] == pytest.approx(sm.std_kappa, rel=1e-9)
            assert g["ci"][0] == pytest.approx(sm.kappa_low, rel=1e-9)


def test_kappa_perfect_agreement():
    ag = _agreement()
    cats = ["CR", "PR", "PR", "SD", "SD", "SD", "PD"]
    for weights in (None, "linear"):
        got = ag.kappa(cats, cats, weights=weights)
        assert got["kappa"] == pytest.approx(1.0, abs=1e-12)
        assert got["observed_agreement"] == 1.0
        assert np.asarray(got["confusion"]).tolist() == np.diag([1, 2, 3, 1]).tolist()


def test_mcnemar_exact_and_chi_square_against_statsmodels():
    """McNemar on the >=20% responder flag.

    Exact case: b = 1 (reference yes, test no), c = 5: two-sided binomial
    p = 2 * P(X <= 1 | 6, 1/2) = 2 * 7/64 = 0.21875.
    Chi-square case: b = 20, c = 10 (b + c = 30 >= 25): (|20 - 10| - 1)^2 / 30 = 2.7,
    p = chi2.sf(2.7, 1) = 0.1003482.
    The switch is at b + c = 25: 24 discordant pairs are exact, 25 are chi-square.
    """
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    def flags(both_yes, b, c, both_no):
        ref = [True] * both_yes + [True] * b + [False] * c + [False] * both_no
        test = [True] * both_yes + [False] * b + [True] * c + [False] * both_no
        return ref, test

    ag = _agreement()
    got = ag.mcnemar(*flags(3, 1, 5, 2))
    assert (got["n"], got["b"], got["c"], got["exact"]) == (11, 1, 5, True)
    assert got["p_value"] == pytest.approx(14 / 64, abs=1e-12)
    got = ag.mcnemar(*flags(3, 20, 10, 2))
    assert (got["n"], got["b"], got["c"], got["exact"]) == (35, 20, 10, False)
    assert got["p_value"] == pytest.approx(stats.chi2.sf(2.7, 1), rel=1e-10)
    assert got["p_value"] == pytest.approx(0.10034824646229054, rel=1e-9)
    for b, c in ((17, 7), (18, 7), (0, 4), (12, 13), (40, 22)):
        exact = b + c < 25
        got = ag.mcnemar(*flags(5, b, c, 6))
        sm = sm_mcnemar(np.array([[5, b], [c, 6]]), exact=exact, correction=True)
        assert got["exact"] is exact or got["exact"] == exact
        assert (got["b"], got["c"]) == (b, c)
        assert got["p_value"] == pytest.approx(sm.pvalue, rel=1e-10)


def test_mcnemar_no_discordant_pairs():
    got = _agreement().mcnemar([True, False, True], [True, False, True])
    assert got["b"] == 0 and got["c"] == 0 and got["n"] == 3
    # statsmodels' exact test gives 1.0 here; a missing p value is also acceptable
    assert got["p_value"] is None or got["p_value"] == pytest.approx(1.0)


# ============================================================================================
# 2. scan_agreement on synthetic masks with known lesions
# ============================================================================================

GRID = (56, 40, 40)


def test_scan_missed_lesion_and_speck(tmp_path):
    """Reference: two balls of radius 6 (measurable: axial diameter ~13 mm). Test: only the first
    one, plus a 1-voxel speck far away (axial diameter sqrt(2) mm, not measurable).
    Lesions: reference 2, test 2, TP 1, FN 1 (the missed ball), FP 1 (the speck); F1 = 2/4.
    Measurable: TP 1, FN 1, FP 0 (the speck is too small): F1 = 2/3.
    Voxels: TP = V6, FN = V6, FP = 1, TN = N - 2 V6 - 1; Dice = 2 V6 / (3 V6 + 1)."""
    b1, b2 = _ball(GRID, (14, 20, 20), 6), _ball(GRID, (42, 20, 20), 6)
    speck = np.zeros(GRID, bool)
    speck[2, 2, 37] = True
    ref, test = b1 | b2, b1 | speck
    v6 = int(b1.sum())
    rows = _agreement().scan_agreement(_save(tmp_path / "r.nii.gz", ref), _save(tmp_path / "t.nii.gz", test))
    assert [r["region"] for r in rows] == ["whole", "label_1"]
    for r in rows:
        for key in SCAN_KEYS:
            assert key in r, key
    w = _by_region(rows)["whole"]
    assert w["lesions_reference"] == 2 and w["lesions_test"] == 2
    assert (w["lesions_tp"], w["lesions_fp"], w["lesions_fn"]) == (1, 1, 1)
    assert w["lesion_f1"] == pytest.approx(0.5, abs=1e-12)
    assert (w["measurable_lesions_tp"], w["measurable_lesions_fp"], w["measurable_lesions_fn"]) == (1, 0, 1)
    assert w["measurable_lesion_f1"] == pytest.approx(2 / 3, abs=1e-12)
    assert (w["tp_voxels"], w["fp_voxels"], w["fn_voxels"]) == (v6, 1, v6)
    assert w["tn_voxels"] == ref.size - 2 * v6 - 1
    assert w["dice"] == pytest.approx(2 * v6 / (3 * v6 + 1), abs=1e-12)
    assert w["reference_volume_mm3"] == 2 * v6 and w["test_volume_mm3"] == v6 + 1
    # a binary mask: its one label is the whole mask
    lab = _by_region(rows)["label_1"]
    for key in SCAN_KEYS[1:]:
        assert lab[key] == pytest.approx(w[key]), key


def test_scan_over_segmentation_known_margin_anisotropic(tmp_path):
    """Test over-segments a radius-6 ball by a 2-voxel margin (radius 8), on 1 x 1 x 2 mm voxels:
    volumes are voxel counts x 2 mm3, Dice = 2 V6 / (V6 + V8), one lesion matched (F1 1),
    FP voxels = V8 - V6, FN voxels 0."""
    ref, test = _ball(GRID, (20, 20, 20), 6), _ball(GRID, (20, 20, 20), 8)
    v6, v8 = int(ref.sum()), int(test.sum())
    rows = _agreement().scan_agreement(
        _save(tmp_path / "r.nii.gz", ref, (1, 1, 2)), _save(tmp_path / "t.nii.gz", test, (1, 1, 2))
    )
    w = _by_region(rows)["whole"]
    assert w["reference_volume_mm3"] == pytest.approx(2.0 * v6, abs=1e-9)
    assert w["test_volume_mm3"] == pytest.approx(2.0 * v8, abs=1e-9)
    assert w["dice"] == pytest.approx(2 * v6 / (v6 + v8), abs=1e-12)
    assert (w["tp_voxels"], w["fp_voxels"], w["fn_voxels"]) == (v6, v8 - v6, 0)
    assert (w["lesions_tp"], w["lesions_fp"], w["lesions_fn"]) == (1, 0, 0)
    assert w["lesion_f1"] == 1.0
    assert w["measurable_lesions_tp"] == 1 and w["measurable_lesion_f1"] == 1.0


def test_scan_one_to_one_matching_split_and_merge(tmp_path):
    """One-to-one matching by overlap. A radius-8 ball cut by a 2-voxel slab off centre gives a
    large piece and a cap (both measurable: the cap's axial section is 4 x 13 voxels).
    Test split (reference whole ball, test two pieces): the large piece is the TP, the cap overlaps
    a reference lesion already matched and is an FP: TP 1, FP 1, FN 0, F1 2/3.
    Test merged (reference two pieces, test whole ball): TP 1, FN 1, FP 0."""
    whole = _ball(GRID, (20, 20, 20), 8)
    pieces = whole.copy()
    pieces[23:25] = False
    assert _label(pieces)[1] == 2
    ag = _agreement()
    p_whole, p_pieces = _save(tmp_path / "w.nii.gz", whole), _save(tmp_path / "p.nii.gz", pieces)
    w = _by_region(ag.scan_agreement(p_whole, p_pieces))["whole"]
    assert (w["lesions_reference"], w["lesions_test"]) == (1, 2)
    assert (w["lesions_tp"], w["lesions_fp"], w["lesions_fn"]) == (1, 1, 0)
    assert w["lesion_f1"] == pytest.approx(2 / 3, abs=1e-12)
    assert (w["measurable_lesions_tp"], w["measurable_lesions_fp"], w["measurable_lesions_fn"]) == (1, 1, 0)
    m = _by_region(ag.scan_agreement(p_pieces, p_whole))["whole"]
    assert (m["lesions_reference"], m["lesions_test"]) == (2, 1)
    assert (m["lesions_tp"], m["lesions_fp"], m["lesions_fn"]) == (1, 0, 1)
    assert m["lesion_f1"] == pytest.approx(2 / 3, abs=1e-12)


def test_scan_measurable_rule_reference_decides_pairs(tmp_path):
    """The measurable counts of a matched pair follow the reference lesion.

    Reference a radius-6 ball (measurable), test a radius-2 ball inside it (axial diameter ~5.4 mm,
    not measurable): measurable TP 1, FN 0, FP 0.
    Swapped (reference small, test large): the pair is not a measurable TP and not a measurable FN.
    (Whether that pair's measurable test lesion is a measurable FP is not pinned by the contract:
    "the test lesion [decides] for FP" reads most naturally as unmatched test lesions only; this
    test does not assert it.)
    With measurable_min_diameter_mm=20, the radius-6 ball is no longer measurable."""
    big, small = _ball(GRID, (20, 20, 20), 6), _ball(GRID, (20, 20, 20), 2)
    ag = _agreement()
    pb, ps = _save(tmp_path / "b.nii.gz", big), _save(tmp_path / "s.nii.gz", small)
    w = _by_region(ag.scan_agreement(pb, ps))["whole"]
    assert (w["lesions_tp"], w["lesions_fp"], w["lesions_fn"]) == (1, 0, 0)
    assert (w["measurable_lesions_tp"], w["measurable_lesions_fp"], w["measurable_lesions_fn"]) == (1, 0, 0)
    s = _by_region(ag.scan_agreement(ps, pb))["whole"]
    assert s["measurable_lesions_tp"] == 0 and s["measurable_lesions_fn"] == 0
    hi = _by_region(ag.scan_agreement(pb, ps, measurable_min_diameter_mm=20.0))["whole"]
    assert (hi["measurable_lesions_tp"], hi["measurable_lesions_fn"], hi["measurable_lesions_fp"]) == (0, 0, 0)
    assert hi["lesions_tp"] == 1


def test_scan_measurable_threshold_corner_convention(tmp_path):
    """A 1-voxel-thick row of 10 voxels measures sqrt(10^2 + 1^2) = 10.05 mm between outer corners
    (measurable); a row of 9 measures 9.06 mm (not). Reference has both, test misses both:
    FN 2, measurable FN 1."""
    ref = np.zeros(GRID, bool)
    ref[5:15, 5, 5] = True
    ref[5:14, 30, 30] = True
    assert _axial_diameter(np.argwhere(ref[:, :20, :20])) == pytest.approx(math.hypot(10, 1))
    w = _by_region(_agreement().scan_agreement(
        _save(tmp_path / "r.nii.gz", ref), _save(tmp_path / "t.nii.gz", np.zeros(GRID, bool))))["whole"]
    assert (w["lesions_fn"], w["measurable_lesions_fn"]) == (2, 1)
    assert w["lesion_f1"] == 0.0 and w["dice"] == 0.0


def test_scan_connectivity(tmp_path):
    """Two cubes touching only at a corner: one lesion with 26-connectivity, two with 6."""
    m = np.zeros(GRID, bool)
    m[10:13, 10:13, 10:13] = True
    m[13:16, 13:16, 13:16] = True
    p = _save(tmp_path / "m.nii.gz", m)
    ag = _agreement()
    assert _by_region(ag.scan_agreement(p, p))["whole"]["lesions_reference"] == 1
    six = _by_region(ag.scan_agreement(p, p, connectivity=6))["whole"]
    assert six["lesions_reference"] == 2 and six["lesions_tp"] == 2 and six["lesion_f1"] == 1.0


def test_scan_compartments_and_label_names(tmp_path):
    """Multi-label masks: region "whole" first, then one per label present in either mask, in
    label order, named label_<v> or by label_names. Label 2 exists only in the test mask.
    Each region's Dice, voxel counts and lesion counts equal numpy/scipy on that label."""
    c = (20, 20, 20)
    ref = np.zeros(GRID, np.uint8)
    ref[_ball(GRID, c, 9)] = 3
    ref[_ball(GRID, c, 4)] = 1
    test = np.zeros(GRID, np.uint8)
    test[_ball(GRID, c, 10)] = 3
    test[_ball(GRID, c, 5)] = 1
    test[40:44, 10:14, 10:14] = 2
    pr, pt = _save(tmp_path / "r.nii.gz", ref), _save(tmp_path / "t.nii.gz", test)
    ag = _agreement()
    rows = ag.scan_agreement(pr, pt)
    assert [r["region"] for r in rows] == ["whole", "label_1", "label_2", "label_3"]
    named = ag.scan_agreement(pr, pt, label_names=AUDIT_NAMES)
    assert [r["region"] for r in named] == ["whole", "ENH", "NEC", "EDE"]
    regions = {"whole": (ref > 0, test > 0), "label_1": (ref == 1, test == 1),
               "label_2": (ref == 2, test == 2), "label_3": (ref == 3, test == 3)}
    for row, named_row in zip(rows, named):
        want = _independent_scan(*regions[row["region"]])
        assert row["dice"] == pytest.approx(want["dice"], abs=1e-12), row["region"]
        for key in ("tp_voxels", "fp_voxels", "fn_voxels", "tn_voxels", "lesions_reference", "lesions_test"):
            assert row[key] == want[key], (row["region"], key)
        assert row["lesions_tp"] == want["greedy_tp"]
        for key in SCAN_KEYS[1:]:
            assert named_row[key] == pytest.approx(row[key]), key
    lab2 = _by_region(rows)["label_2"]
    assert lab2["reference_volume_mm3"] == 0 and lab2["test_volume_mm3"] == 64
    assert lab2["dice"] == 0.0 and lab2["lesions_fp"] == 1 and lab2["lesion_f1"] == 0.0


def test_scan_empty_conventions(tmp_path):
    """Both empty: Dice 1 and lesion F1 1 (cnsvol's convention; the formula is 0/0), every count 0,
    TN = every voxel, only the "whole" region. Reference empty and test not: Dice 0 and F1 0,
    which is the formula itself and AUDIT's value for an empty ground truth. Accepts cnsvol.Mask
    objects as well as paths, with the same result."""
    empty = _save(tmp_path / "e.nii.gz", np.zeros(GRID, bool))
    ball = _ball(GRID, (20, 20, 20), 6)
    full = _save(tmp_path / "b.nii.gz", ball)
    ag = _agreement()
    rows = ag.scan_agreement(empty, empty)
    assert [r["region"] for r in rows] == ["whole"]
    w = rows[0]
    assert w["dice"] == 1.0 and w["lesion_f1"] == 1.0
    assert w["reference_volume_mm3"] == 0 and w["test_volume_mm3"] == 0
    for key in ("tp_voxels", "fp_voxels", "fn_voxels", "lesions_reference", "lesions_test",
                "lesions_tp", "lesions_fp", "lesions_fn", "measurable_lesions_tp",
                "measurable_lesions_fp", "measurable_lesions_fn"):
        assert w[key] == 0, key
    assert w["tn_voxels"] == int(np.prod(GRID))
    e = _by_region(ag.scan_agreement(empty, full))["whole"]
    assert e["dice"] == 0.0 and e["lesion_f1"] == 0.0
    assert (e["lesions_tp"], e["lesions_fp"], e["lesions_fn"]) == (0, 1, 0)
    assert e["test_volume_mm3"] == int(ball.sum())
    cv = _cnsvol()
    via_masks = ag.scan_agreement(cv.read_mask(str(full)), cv.read_mask(str(empty)))
    via_paths = ag.scan_agreement(full, empty)
    assert [r["region"] for r in via_masks] == [r["region"] for r in via_paths]
    for a, b in zip(via_masks, via_paths):
        for key in SCAN_KEYS[1:]:
            assert a[key] == pytest.approx(b[key]), key


# ============================================================================================
# 3. real masks: AUDIT's BraTS 2024 metrics
# ============================================================================================


def _audit_paths(realdata: Path, ds: str, case: str):
    root = realdata / "audit_brats2024" / ds / case
    gt = root / f"{case}_seg.nii.gz"
    preds = {m: root / m / f"{case}_pred.nii.gz" for m in AUDIT_MODELS}
    return gt, preds


def _load_labels(path: Path) -> np.ndarray:
    data = np.asanyarray(nib.load(str(path)).dataobj)
    return np.rint(data).astype(np.uint8)


@pytest.fixture(scope="module")
def audit(realdata):
    """cnsvol's scan_agreement for the 8 (case, model) pairs, the AUDIT rows, and the same
    quantities recomputed here from nibabel arrays (cropped to the union's bounding box, which
    changes no count but TN; TN is taken from the full grid)."""
    base = realdata / "audit_brats2024"
    for ds, case in AUDIT_CASES:
        gt, preds = _audit_paths(realdata, ds, case)
        if not gt.is_file() or not all(p.is_file() for p in preds.values()):
            pytest.skip(f"audit_brats2024 files missing under {base}")
    metrics = pd.read_csv(base / "audit_metrics_subset.csv")
    recomputed = pd.read_csv(base / "reference_recomputed.csv")
    ag = _agreement()
    got, mine = {}, {}
    for ds, case in AUDIT_CASES:
        gt_path, preds = _audit_paths(realdata, ds, case)
        gt = _load_labels(gt_path)
        for model, pred_path in preds.items():
            got[case, model] = _by_region(ag.scan_agreement(gt_path, pred_path, label_names=AUDIT_NAMES))
            pred = _load_labels(pred_path)
            union = (gt > 0) | (pred > 0)
            sl = tuple(slice(max(int(a.min()) - 1, 0), int(a.max()) + 2) for a in np.nonzero(union))
            g, p = gt[sl], pred[sl]
            per = {}
            for region, (a, b) in {"whole": (g > 0, p > 0),
                                   **{name: (g == v, p == v) for v, name in AUDIT_NAMES.items()}}.items():
                rec = _independent_scan(a, b)
                rec["tn_voxels"] = int(gt.size) - rec["tp_voxels"] - rec["fp_voxels"] - rec["fn_voxels"]
                per[region] = rec
            mine[case, model] = per
    return {"got": got, "mine": mine, "metrics": metrics, "recomputed": recomputed}


@pytest.mark.slow
@pytest.mark.realdata
def test_audit_dice_and_predicted_size_exact(audit):
    """Per case, region and model: cnsvol's Dice equals AUDIT's DICE to 1e-12, and cnsvol's
    test (predicted) volume equals AUDIT's SIZE (voxels x 1 mm3); an empty SIZE (the prediction
    has no voxel of that label: nnUnet on PED-00001 ENH) is test_volume_mm3 == 0.

    Conventions, checked both ways: AUDIT writes DICE = 0 when the ground truth is empty and the
    prediction is not (PED-00266 ENH and EDE, both models), and when the prediction is empty and
    the ground truth is not (PED-00001 nnUnet ENH). That is the formula 2|A∩B|/(|A|+|B|) itself,
    so cnsvol gives 0 there too, and lesion F1 0. Where they would differ is both sides empty:
    cnsvol says 1.0 (checked in test_scan_empty_conventions), a case absent from AUDIT's rows.
    AUDIT's PREC/SENS are empty (0/0) on the empty-side rows; cnsvol reports neither."""
    metrics = audit["metrics"]
    rows = metrics[metrics["model"].isin(AUDIT_MODELS)]
    assert len(rows) == 24
    n_empty_ref = 0
    for rec in rows.itertuples(index=False):
        r = audit["got"][rec.ID, rec.model][rec.region]
        assert abs(r["dice"] - rec.DICE) <= 1e-12, (rec.ID, rec.model, rec.region, r["dice"], rec.DICE)
        if pd.isna(rec.SIZE):
            assert r["test_volume_mm3"] == 0, (rec.ID, rec.model, rec.region)
            assert r["lesions_test"] == 0
        else:
            assert r["test_volume_mm3"] == pytest.approx(rec.SIZE, abs=1e-12), (rec.ID, rec.model, rec.region)
        if r["reference_volume_mm3"] == 0:
            n_empty_ref += 1
            assert rec.DICE == 0.0 and r["dice"] == 0.0       # AUDIT's convention == the formula
            assert r["test_volume_mm3"] > 0                   # never both empty in AUDIT's rows
            assert r["lesion_f1"] == 0.0 and r["lesions_tp"] == 0
    assert n_empty_ref == 4


@pytest.mark.slow
@pytest.mark.realdata
def test_audit_voxel_counts_and_volumes(audit):
    """Reference/test volumes and TP/FP/FN/TN voxels per region equal the recomputation shipped
    beside the data (reference_recomputed.csv) and numpy's; whole-tumour volumes equal the
    label_values.csv whole-tumour voxel counts."""
    rc = audit["recomputed"]
    for rec in rc.itertuples(index=False):
        r = audit["got"][rec.ID, rec.model][rec.region]
        assert r["reference_volume_mm3"] == pytest.approx(rec.gt_mm3, abs=1e-9)
        assert r["test_volume_mm3"] == pytest.approx(rec.pred_mm3, abs=1e-9)
        assert r["tp_voxels"] == rec.intersection_voxels
        assert r["fp_voxels"] == rec.pred_voxels - rec.intersection_voxels
        assert r["fn_voxels"] == rec.gt_voxels - rec.intersection_voxels
    for key, per in audit["mine"].items():
        for region, want in per.items():
            r = audit["got"][key][region]
            for k in ("tp_voxels", "fp_voxels", "fn_voxels", "tn_voxels"):
                assert r[k] == want[k], (key, region, k)
            assert r["dice"] == pytest.approx(want["dice"], abs=1e-12), (key, region)
            assert r["reference_volume_mm3"] == pytest.approx(want["reference_volume_mm3"])
    whole_gt = {"BraTS2024_SSA-00002-000": 218461, "BraTS2024_SSA-00230-000": 255784,
                "BraTS2024_PED-00001-000": 128667, "BraTS2024_PED-00266-000": 21897}
    for (case, _), per in audit["got"].items():
        assert per["whole"]["reference_volume_mm3"] == whole_gt[case]


@pytest.mark.slow
@pytest.mark.realdata
def test_audit_lesion_detection(audit):
    """Lesion-wise detection on real masks, against scipy's 26-connected labelling and two
    independent one-to-one matchings of the overlap matrix (maximum overlap first, and the
    assignment maximising total overlap, scipy's linear_sum_assignment). Where the two agree on the
    number of matched pairs, cnsvol's lesion TP equals it; elsewhere it is one of the two.
    Whole-tumour component counts also equal label_values.csv (e.g. SSA-00230 SegResNet 6,
    PED-00266 nnUnet 53). Measurable counts follow corner-to-corner axial Feret diameters >= 10 mm
    computed here (skipped for a region with a lesion within 0.05 mm of 10 mm, or where the two
    readings of a measurable FP differ)."""
    wt_components = {
        ("BraTS2024_SSA-00002-000", "SegResNet"): 2, ("BraTS2024_SSA-00002-000", "nnUnet"): 3,
        ("BraTS2024_SSA-00230-000", "SegResNet"): 6, ("BraTS2024_SSA-00230-000", "nnUnet"): 2,
        ("BraTS2024_PED-00001-000", "SegResNet"): 9, ("BraTS2024_PED-00001-000", "nnUnet"): 13,
        ("BraTS2024_PED-00266-000", "SegResNet"): 43, ("BraTS2024_PED-00266-000", "nnUnet"): 53,
    }
    gt_components = {"BraTS2024_SSA-00002-000": 2, "BraTS2024_SSA-00230-000": 1,
                     "BraTS2024_PED-00001-000": 9, "BraTS2024_PED-00266-000": 1}
    checked_measurable = 0
    for key, per in audit["mine"].items():
        assert audit["got"][key]["whole"]["lesions_test"] == wt_components[key]
        assert audit["got"][key]["whole"]["lesions_reference"] == gt_components[key[0]]
        for region, want in per.items():
            r = audit["got"][key][region]
            where = (key, region)
            assert r["lesions_reference"] == want["lesions_reference"], where
            assert r["lesions_test"] == want["lesions_test"], where
            if want["greedy_tp"] == want["hungarian_tp"]:
                assert r["lesions_tp"] == want["greedy_tp"], where
            else:
                assert r["lesions_tp"] in (want["greedy_tp"], want["hungarian_tp"]), where
            assert r["lesions_fn"] == r["lesions_reference"] - r["lesions_tp"], where
            assert r["lesions_fp"] == r["lesions_test"] - r["lesions_tp"], where
            assert r["lesion_f1"] == pytest.approx(
                _f1(r["lesions_tp"], r["lesions_fp"], r["lesions_fn"]), abs=1e-12), where
            m = want["greedy_measurable"]
            same = (want["greedy_tp"] == want["hungarian_tp"]
                    and want["greedy_measurable"] == want["hungarian_measurable"])
            if same and not want["borderline"]:
                assert r["measurable_lesions_tp"] == m[0], where
                assert r["measurable_lesions_fn"] == m[2], where
                if m[1] == m[3]:
                    assert r["measurable_lesions_fp"] == m[1], where
                checked_measurable += 1
            tp, fp, fn = (r["measurable_lesions_tp"], r["measurable_lesions_fp"], r["measurable_lesions_fn"])
            assert tp <= r["lesions_tp"] and fp <= r["lesions_test"] and fn <= r["lesions_fn"], where
            if tp + fp + fn:
                assert r["measurable_lesion_f1"] == pytest.approx(_f1(tp, fp, fn), abs=1e-12), where
    assert checked_measurable >= 24


@pytest.mark.slow
@pytest.mark.realdata
def test_agree_realdata_single_scan_subjects(audit, realdata, tmp_path):
    """cnsvol.agree on the four ground truths (reference) against SegResNet (test), one scan per
    subject: scan-level agreement for every subject and no response comparison, never an error.
    Whole-tumour Dice equals numpy's; any per-label row equals AUDIT's DICE; the volume
    Bland-Altman and ICC over the four whole-tumour volumes equal the independent formulas."""
    ref_rows, test_rows = [], []
    for ds, case in AUDIT_CASES:
        gt, preds = _audit_paths(realdata, ds, case)
        ref_rows.append((case, "baseline", 0, str(gt)))
        test_rows.append((case, "baseline", 0, str(preds["SegResNet"])))
    cols = ["subject_id", "timepoint", "days_from_baseline", "mask_path"]
    pd.DataFrame(ref_rows, columns=cols).to_csv(tmp_path / "reader.csv", index=False)
    pd.DataFrame(test_rows, columns=cols).to_csv(tmp_path / "model.csv", index=False)
    result = _cnsvol().agree(tmp_path / "reader.csv", tmp_path / "model.csv", tmp_path / "out", jobs=1)
    scans = result.scans
    assert sorted(set(scans["subject_id"].astype(str))) == sorted(c for _, c in AUDIT_CASES)
    metrics = audit["metrics"]
    ref_v, test_v = [], []
    for _, case in AUDIT_CASES:
        sub = scans[scans["subject_id"].astype(str) == case]
        whole = sub[sub["region"] == "whole"]
        assert len(whole) == 1
        want = audit["mine"][case, "SegResNet"]["whole"]
        assert float(whole["dice"].iloc[0]) == pytest.approx(want["dice"], abs=1e-12)
        assert float(whole["test_volume_mm3"].iloc[0]) == pytest.approx(want["test_volume_mm3"])
        ref_v.append(want["reference_volume_mm3"])
        test_v.append(want["test_volume_mm3"])
        for v, name in AUDIT_NAMES.items():
            row = sub[sub["region"].isin([f"label_{v}", name])]
            assert len(row) == 1, (case, name, sorted(sub["region"]))
            if len(row):
                audit_dice = metrics[(metrics.ID == case) & (metrics.model == "SegResNet")
                                     & (metrics.region == name)]["DICE"].iloc[0]
                assert abs(float(row["dice"].iloc[0]) - audit_dice) <= 1e-12, (case, name)
    tp = result.timepoints
    if len(tp):
        assert tp["reference_category"].isna().all() and tp["test_category"].isna().all()
    s = result.summary
    assert s["n_subjects"] == 4 and s["n_scans"] == 4
    want_ba = _ref_bland_altman(ref_v, test_v)
    assert s["volume_bland_altman"]["bias"] == pytest.approx(want_ba["bias"], rel=1e-9)
    assert s["volume_bland_altman"]["sd"] == pytest.approx(want_ba["sd"], rel=1e-9)
    want_icc = _ref_icc(np.c_[ref_v, test_v])
    assert s["volume_icc"]["icc_a1"] == pytest.approx(want_icc["icc_a1"], rel=1e-9)
    assert s["volume_icc"]["icc_c1"] == pytest.approx(want_icc["icc_c1"], rel=1e-9)
    assert s["pfs"] is None


# ============================================================================================
# 4. end to end: a synthetic reader-vs-model cohort with known flips
# ============================================================================================

COHORT_GRID = (64, 36, 36)
MAIN = (18, 18, 18)
SECOND = (48, 18, 18)
SPECK = (60, 3, 3)

# subject -> (reference radii per timepoint, test radii per timepoint); None = empty mask.
# Baseline radius 10 (4169 voxels); follow-up radii 7 (-66%), 9 (-26%), 10 (0%), 10.5 (+19%),
# 11.5 (+54%), 12 (+72%).
COHORT = {
    "S01": ((10, 7), (10, 7)),          # PR / PR
    "S02": ((10, 7), (10, 9)),          # PR / SD   (test over-segments the follow-up)
    "S03": ((10, 9), (10, 10)),         # SD / SD, responder yes / no
    "S04": ((10, 10.5), (10, 11.5)),    # SD / PD
    "S05": ((10, None), (10, None)),    # CR / CR   (empty follow-up)
    "S06": ((10, 10), (10, 10)),        # SD / SD   (test adds a 1-voxel speck at follow-up)
    "S07": ((8,), (9,)),                # single scan: scan agreement only
    "S08": ((10, 12), (10, 12)),        # PD / PD   (test misses a second lesion at both scans)
}
EXPECTED_CATEGORIES = {
    "S01": ("PR", "PR"), "S02": ("PR", "SD"), "S03": ("SD", "SD"), "S04": ("SD", "PD"),
    "S05": ("CR", "CR"), "S06": ("SD", "SD"), "S08": ("PD", "PD"),
}
TIMEPOINTS = ("baseline", "week8")
DAYS = (0, 56)


def _cohort_mask(subject: str, source: str, t: int) -> np.ndarray:
    radii = COHORT[subject][0 if source == "reference" else 1]
    r = radii[t]
    m = np.zeros(COHORT_GRID, bool) if r is None else _ball(COHORT_GRID, MAIN, r)
    if subject == "S08" and source == "reference":
        m |= _ball(COHORT_GRID, SECOND, 6)
    if subject == "S06" and source == "test" and t == 1:
        m[SPECK] = True
    return m


def _write_cohort(root: Path, *, identical: bool = False) -> tuple[Path, Path, dict]:
    """Masks and two manifests; returns the manifests and the arrays by (source, subject, t)."""
    root.mkdir(parents=True, exist_ok=True)
    arrays, manifests = {}, {}
    for source in ("reference", "test"):
        src = "reference" if identical else source
        rows = []
        for subject, radii in COHORT.items():
            for t in range(len(radii[0])):
                m = _cohort_mask(subject, src, t)
                arrays[source, subject, t] = m
                path = _save(root / f"{source}_{subject}_{TIMEPOINTS[t]}.nii.gz", m)
                rows.append((subject, TIMEPOINTS[t], DAYS[t], path.name))
        manifests[source] = root / f"{source}.csv"
        pd.DataFrame(rows, columns=["subject_id", "timepoint", "days_from_baseline", "mask_path"]).to_csv(
            manifests[source], index=False)
    return manifests["reference"], manifests["test"], arrays


def _expected_cohort(arrays: dict) -> dict:
    """Percent changes (of the target sum: every lesion here is measurable), categories under
    lin2009 (PR <= -50%, PD >= +40% or a new lesion >= 5 mm; the speck is equivocal), flags."""
    out = {}
    for subject in EXPECTED_CATEGORIES:
        row = {}
        for source in ("reference", "test"):
            v0 = int(arrays[source, subject, 0].sum())
            v1 = int(arrays[source, subject, 1].sum())
            if subject == "S06" and source == "test":
                v1 -= 1  # the speck is a new (equivocal) lesion, not part of the target sum
            pc = (v1 - v0) / v0 * 100.0
            cat = "CR" if v1 == 0 else "PR" if pc <= -50 else "PD" if pc >= 40 else "SD"
            row[source] = (pc, cat, pc <= -20.0)
            assert min(abs(pc + 50), abs(pc - 40), abs(pc + 20)) > 5  # well clear of thresholds
        assert (row["reference"][1], row["test"][1]) == EXPECTED_CATEGORIES[subject]
        out[subject] = row
    return out


@pytest.fixture(scope="module")
def flip_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("agree_flip")
    ref_m, test_m, arrays = _write_cohort(root / "in")
    result = _cnsvol().agree(ref_m, test_m, root / "out", config="lin2009", jobs=1)
    return {"root": root, "ref": ref_m, "test": test_m, "arrays": arrays, "result": result,
            "expected": _expected_cohort(arrays)}


@pytest.mark.slow
def test_agree_outputs_and_tables(flip_cohort):
    """The folder holds the three tables; result.scans/timepoints/summary are those files."""
    res = flip_cohort["result"]
    out = Path(res.out_dir)
    for name in ("agreement_scans.csv", "agreement_timepoints.csv", "agreement.json"):
        assert (out / name).is_file(), name
    assert (out / "report.html").is_file() or (out / "agreement.html").is_file()
    on_disk = pd.read_csv(out / "agreement_scans.csv")
    assert len(on_disk) == len(res.scans)
    assert json.loads((out / "agreement.json").read_text())["n_scans"] == res.summary["n_scans"]
    for col in ("subject_id", "timepoint", *SCAN_KEYS):
        assert col in res.scans.columns, col
    for col in ("subject_id", "timepoint", "days_from_baseline", "reference_percent_change",
                "test_percent_change", "reference_category", "test_category", "category_agrees",
                "reference_responder_20pct", "test_responder_20pct"):
        assert col in res.timepoints.columns, col
    s = res.summary
    assert s["n_subjects"] == 8 and s["n_scans"] == 15
    for key in ("volume_bland_altman", "percent_change_bland_altman", "volume_icc", "category_kappa",
                "category_weighted_kappa", "responder_20pct", "rates", "pfs"):
        assert key in s, key
    assert s["pfs"] is None
    for key in BA_KEYS:
        assert key in s["volume_bland_altman"] and key in s["percent_change_bland_altman"], key
    for key in ICC_KEYS:
        assert key in s["volume_icc"], key
    for key in KAPPA_KEYS:
        assert key in s["category_kappa"] and key in s["category_weighted_kappa"], key


@pytest.mark.slow
def test_agree_scan_rows_lesions_as_constructed(flip_cohort):
    """Per scan (whole mask): volumes and Dice equal numpy's on the masks written; S08's missed
    second lesion is lesions_fn 1 (measurable FN 1) on both scans; S06's 1-voxel speck is
    lesions_fp 1 and measurable FP 0; S05's two empty follow-ups have Dice 1 and F1 1; the
    single-scan subject S07 has its scan row (test over-segments by 1 mm: radius 9 vs 8)."""
    scans = flip_cohort["result"].scans
    arrays = flip_cohort["arrays"]
    whole = scans[scans["region"] == "whole"]
    assert len(whole) == 15
    for subject, radii in COHORT.items():
        for t in range(len(radii[0])):
            row = whole[(whole["subject_id"].astype(str) == subject) & (whole["timepoint"] == TIMEPOINTS[t])]
            assert len(row) == 1, (subject, t)
            row = row.iloc[0]
            a, b = arrays["reference", subject, t], arrays["test", subject, t]
            assert row["reference_volume_mm3"] == pytest.approx(a.sum())
            assert row["test_volume_mm3"] == pytest.approx(b.sum())
            assert row["dice"] == pytest.approx(_dice(a, b), abs=1e-12), (subject, t)
            fn = 1 if subject == "S08" else 0
            fp = 1 if (subject == "S06" and t == 1) else 0
            assert (row["lesions_fn"], row["lesions_fp"]) == (fn, fp), (subject, t)
            assert (row["measurable_lesions_fn"], row["measurable_lesions_fp"]) == (fn, 0), (subject, t)
            if subject == "S05" and t == 1:
                assert row["dice"] == 1.0 and row["lesion_f1"] == 1.0
                assert row["reference_volume_mm3"] == 0 and row["test_volume_mm3"] == 0
    s08 = whole[whole["subject_id"].astype(str) == "S08"]
    assert (s08["lesions_reference"] == 2).all() and (s08["lesions_test"] == 1).all()
    assert s08["lesion_f1"].tolist() == pytest.approx([2 / 3, 2 / 3])


@pytest.mark.slow
def test_agree_timepoints_categories_flip_as_constructed(flip_cohort):
    """Percent change and category under both sources, side by side: S02 PR -> SD, S04 SD -> PD
    (flips), S03 responder yes -> no, S06's speck changes nothing (equivocal); the single-scan
    subject S07 has no comparison row."""
    tp = flip_cohort["result"].timepoints
    expected = flip_cohort["expected"]
    compared = tp[tp["reference_category"].notna() | tp["test_category"].notna()]
    assert "S07" not in set(compared["subject_id"].astype(str))
    assert sorted(compared["subject_id"].astype(str)) == sorted(expected)
    for subject, want in expected.items():
        row = compared[compared["subject_id"].astype(str) == subject].iloc[0]
        assert row["timepoint"] == "week8"
        assert float(row["days_from_baseline"]) == 56
        assert float(row["reference_percent_change"]) == pytest.approx(want["reference"][0], abs=1e-9)
        assert float(row["test_percent_change"]) == pytest.approx(want["test"][0], abs=1e-9)
        assert row["reference_category"] == want["reference"][1], subject
        assert row["test_category"] == want["test"][1], subject
        assert _truthy(row["category_agrees"]) == (want["reference"][1] == want["test"][1])
        assert _truthy(row["reference_responder_20pct"]) == want["reference"][2], subject
        assert _truthy(row["test_responder_20pct"]) == want["test"][2], subject


@pytest.mark.slow
def test_agree_cohort_statistics(flip_cohort):
    """agreement.json against the hand-built table of test_kappa_4x4_hand_weighted_and_statsmodels
    (it is this cohort's: kappa 0.6, weighted 38/52), statsmodels and scipy.

    Responder flag (per subject, one follow-up each): reference yes S01 S02 S03 S05, test yes
    S01 S02 S05: agreement 6/7, McNemar b = 1 (S03), c = 0, exact, p = 1.
    Rates over the 7 subjects with a follow-up: responder 4/7 vs 3/7, objective response
    (CR or PR: S01 S02 S05 vs S01 S05) 3/7 vs 2/7, Clopper-Pearson CIs; paired differences
    (test - reference) -1/7 and -1/7.
    Volume Bland-Altman and ICC over the 15 whole-mask scan volumes; percent-change
    Bland-Altman over the 7 follow-ups."""
    from statsmodels.stats.inter_rater import cohens_kappa

    s = flip_cohort["result"].summary
    arrays, expected = flip_cohort["arrays"], flip_cohort["expected"]
    table = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 2, 1], [0, 0, 0, 1]])
    for key, wt, hand in (("category_kappa", None, 0.6), ("category_weighted_kappa", "linear", 38 / 52)):
        k = s[key]
        sm = cohens_kappa(table, wt=wt)
        assert np.asarray(k["confusion"]).tolist() == table.tolist()
        assert k["n"] == 7
        assert k["kappa"] == pytest.approx(hand, abs=1e-12)
        assert k["se"] == pytest.approx(sm.std_kappa, rel=1e-9)
        assert k["ci"][0] == pytest.approx(sm.kappa_low, rel=1e-9)
    resp = s["responder_20pct"]
    assert resp["agreement"] == pytest.approx(6 / 7, abs=1e-12)
    mc = resp["mcnemar"]
    assert (mc["n"], mc["b"], mc["c"]) == (7, 1, 0)
    assert mc["exact"] and mc["p_value"] == pytest.approx(1.0)
    rates = s["rates"]
    for source, k_resp, k_orr in (("reference", 4, 3), ("test", 3, 2)):
        for key, k in (("responder_20pct", k_resp), ("objective_response", k_orr)):
            r = rates[source][key]
            assert r["n"] == 7, (source, key)
            assert r["rate"] == pytest.approx(k / 7, abs=1e-12), (source, key)
            _close_pair(r["ci"], _clopper_pearson(k, 7), 1e-9)
    assert _value(rates["paired_difference"]["responder_20pct"]) == pytest.approx(-1 / 7, abs=1e-12)
    assert _value(rates["paired_difference"]["objective_response"]) == pytest.approx(-1 / 7, abs=1e-12)

    ref_v, test_v = [], []
    for subject, radii in COHORT.items():
        for t in range(len(radii[0])):
            ref_v.append(float(arrays["reference", subject, t].sum()))
            test_v.append(float(arrays["test", subject, t].sum()))
    ba = s["volume_bland_altman"]
    want = _ref_bland_altman(ref_v, test_v)
    assert ba["n"] == 15
    for key in ("bias", "sd", "loa_lower", "loa_upper"):
        assert ba[key] == pytest.approx(want[key], rel=1e-9), key
    _close_pair(ba["bias_ci"], want["bias_ci"], 1e-9)
    icc = s["volume_icc"]
    want_icc = _ref_icc(np.c_[ref_v, test_v])
    assert icc["n"] == 15
    assert icc["icc_a1"] == pytest.approx(want_icc["icc_a1"], rel=1e-9)
    assert icc["icc_c1"] == pytest.approx(want_icc["icc_c1"], rel=1e-9)
    _close_pair(icc["icc_a1_ci"], want_icc["icc_a1_ci"], 1e-7)
    pcs = [(expected[x]["reference"][0], expected[x]["test"][0]) for x in sorted(expected)]
    pba = s["percent_change_bland_altman"]
    want_p = _ref_bland_altman([p[0] for p in pcs], [p[1] for p in pcs])
    assert pba["n"] == 7
    assert pba["bias"] == pytest.approx(want_p["bias"], rel=1e-9)
    assert pba["sd"] == pytest.approx(want_p["sd"], rel=1e-9)


@pytest.mark.slow
def test_agree_self_agreement_is_perfect(tmp_path):
    """A manifest against itself: kappa 1 (CR, PR, SD and PD all occur), weighted kappa 1,
    bias 0 and SD 0 for volumes and percent change, Dice 1 and lesion F1 1 on every scan and region
    (S05's empty follow-up included), no discordant responder pair, rate differences 0."""
    ref_m, _, _ = _write_cohort(tmp_path / "in", identical=True)
    res = _cnsvol().agree(ref_m, ref_m, tmp_path / "out", config="lin2009", jobs=1)
    scans = res.scans
    assert len(scans[scans["region"] == "whole"]) == 15
    assert (scans["dice"] == 1.0).all()
    assert (scans["lesion_f1"] == 1.0).all()
    assert (scans["lesions_fp"] == 0).all() and (scans["lesions_fn"] == 0).all()
    assert (scans["fp_voxels"] == 0).all() and (scans["fn_voxels"] == 0).all()
    assert (scans["reference_volume_mm3"] == scans["test_volume_mm3"]).all()
    tp = res.timepoints
    compared = tp[tp["reference_category"].notna()]
    assert len(compared) == 7
    assert all(_truthy(x) for x in compared["category_agrees"])
    s = res.summary
    assert s["category_kappa"]["kappa"] == pytest.approx(1.0, abs=1e-12)
    assert s["category_weighted_kappa"]["kappa"] == pytest.approx(1.0, abs=1e-12)
    assert s["category_kappa"]["observed_agreement"] == 1.0
    for key in ("volume_bland_altman", "percent_change_bland_altman"):
        assert s[key]["bias"] == pytest.approx(0.0, abs=1e-12)
        assert s[key]["sd"] == pytest.approx(0.0, abs=1e-12)
    # identical sources: MSE = 0, so ICC = MSR / MSR = 1 by the formula, but F = MSR/MSE is
    # infinite and the CIs degenerate; the contract does not say which to report, so an ICC of
    # 1 or a null ("not estimable") is accepted
    for key in ("icc_a1", "icc_c1"):
        assert s["volume_icc"][key] is None or s["volume_icc"][key] == pytest.approx(1.0, abs=1e-12)
    assert s["responder_20pct"]["agreement"] == 1.0
    assert s["responder_20pct"]["mcnemar"]["b"] == 0 and s["responder_20pct"]["mcnemar"]["c"] == 0
    assert _value(s["rates"]["paired_difference"]["responder_20pct"]) == 0
    assert _value(s["rates"]["paired_difference"]["objective_response"]) == 0


@pytest.mark.slow
def test_agree_empty_masks_no_error(tmp_path):
    """A subject whose every mask is empty (and a single-scan subject with an empty mask) next to
    an ordinary one, against itself: no error, their scan rows have Dice 1, F1 1, volumes 0."""
    root = tmp_path / "in"
    root.mkdir()
    rows = []
    for subject, masks in (("A", [_ball(COHORT_GRID, MAIN, 10), _ball(COHORT_GRID, MAIN, 7)]),
                           ("E", [np.zeros(COHORT_GRID, bool)] * 2),
                           ("F", [np.zeros(COHORT_GRID, bool)])):
        for t, m in enumerate(masks):
            _save(root / f"{subject}{t}.nii.gz", m)
            rows.append((subject, TIMEPOINTS[t], DAYS[t], f"{subject}{t}.nii.gz"))
    manifest = root / "m.csv"
    pd.DataFrame(rows, columns=["subject_id", "timepoint", "days_from_baseline", "mask_path"]).to_csv(
        manifest, index=False)
    res = _cnsvol().agree(manifest, manifest, tmp_path / "out", jobs=1)
    scans = res.scans
    for subject, n in (("E", 2), ("F", 1)):
        sub = scans[(scans["subject_id"].astype(str) == subject) & (scans["region"] == "whole")]
        assert len(sub) == n, subject
        assert (sub["dice"] == 1.0).all() and (sub["lesion_f1"] == 1.0).all()
        assert (sub["reference_volume_mm3"] == 0).all() and (sub["test_volume_mm3"] == 0).all()
    a = res.timepoints[(res.timepoints["subject_id"].astype(str) == "A")
                       & res.timepoints["reference_category"].notna()]
    assert a["reference_category"].tolist() == ["PR"] and a["test_category"].tolist() == ["PR"]


@pytest.mark.slow
def test_cli_agree_with_pfs(flip_cohort, tmp_path):
    """`cnsvol agree --reference A --test B --out DIR --pfs FILE`: exit 0, the tables, the report,
    at least three figures (Bland-Altman, confusion matrix, waterfall), the same scan table and
    kappa as the library call, and a non-null pfs section."""
    pfs = tmp_path / "pfs.csv"
    pd.DataFrame({
        "subject_id": list(COHORT),
        "pfs_days": [300, 250, 200, 120, 400, 180, 90, 60],
        "pfs_event": [0, 1, 1, 1, 0, 1, 1, 1],
    }).to_csv(pfs, index=False)
    out = tmp_path / "cli_out"
    proc = subprocess.run(
        [str(CNSVOL_BIN), "agree", "--reference", str(flip_cohort["ref"]), "--test",
         str(flip_cohort["test"]), "--out", str(out), "--pfs", str(pfs), "--criteria", "lin2009"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("agreement_scans.csv", "agreement_timepoints.csv", "agreement.json"):
        assert (out / name).is_file(), name
    assert (out / "report.html").is_file() or (out / "agreement.html").is_file()
    # the agreement figures sit beside the report (DIR or DIR/figures, as for `cnsvol run`); the
    # per-source runs' own figures (QC pictures, spider plots) in subfolders do not count
    figures = {p.stem for folder in (out, out / "figures") if folder.is_dir()
               for p in folder.iterdir() if p.suffix.lower() in (".png", ".svg")}
    assert len(figures) >= 3, sorted(figures)
    summary = json.loads((out / "agreement.json").read_text())
    assert summary["category_kappa"]["kappa"] == pytest.approx(0.6, abs=1e-12)
    assert summary["category_weighted_kappa"]["kappa"] == pytest.approx(38 / 52, abs=1e-12)
    assert summary["pfs"] is not None and len(summary["pfs"]) > 0
    cli_scans = pd.read_csv(out / "agreement_scans.csv")
    api_scans = flip_cohort["result"].scans
    key = ["subject_id", "timepoint", "region"]
    merged = cli_scans.astype({"subject_id": str}).merge(
        api_scans.astype({"subject_id": str}), on=key, suffixes=("_cli", "_api"))
    assert len(merged) == len(api_scans) == len(cli_scans)
    assert np.allclose(merged["dice_cli"], merged["dice_api"], rtol=0, atol=1e-12)
