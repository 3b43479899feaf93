"""Agreement between two sources of masks: the statistics against hand computations and
statsmodels, voxel and lesion counts on constructed masks, and `agree` on cohorts whose test
source misses a lesion, adds a speck or over-segments, and on a cohort compared with itself."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

import cnsvol
from cnsvol.agreement import (
    bland_altman, icc, kappa, mcnemar, paired_rate_difference, scan_agreement,
)
from cnsvol.errors import ManifestError

SHAPE = (60, 60, 40)


def _balls(path, balls, extra=()):
    """A 1 mm uint8 mask with spheres ``(centre ijk, radius, label)`` and single voxels."""
    ijk = np.indices(SHAPE)
    data = np.zeros(SHAPE, dtype=np.uint8)
    for c, r, lab in balls:
        data[sum((ijk[a] - c[a]) ** 2 for a in range(3)) <= r * r] = lab
    for v in extra:
        data[v] = 1
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path, data


def test_bland_altman_by_hand():
    """a = 10, 12, 14, 16; b = 11, 12, 16, 15: d = 1, 0, 2, -1; mean 0.5; SD = sqrt(((0.5)^2 +
    (0.5)^2 + 1.5^2 + 1.5^2) / 3) = sqrt(5/3); limits 0.5 -/+ 1.96 SD; bias CI 0.5 -/+
    t(0.975, 3) SD / 2; limit CIs -/+ t SD sqrt(3/4)."""
    from scipy.stats import t

    r = bland_altman([10, 12, 14, 16], [11, 12, 16, 15])
    sd = np.sqrt(5 / 3)
    q = t.ppf(0.975, 3)
    assert r["n"] == 4 and r["bias"] == pytest.approx(0.5) and r["sd"] == pytest.approx(sd)
    assert r["loa_lower"] == pytest.approx(0.5 - 1.96 * sd)
    assert r["bias_ci"] == pytest.approx([0.5 - q * sd / 2, 0.5 + q * sd / 2])
    assert r["loa_upper_ci"] == pytest.approx([0.5 + 1.96 * sd - q * sd * np.sqrt(0.75),
                                               0.5 + 1.96 * sd + q * sd * np.sqrt(0.75)])
    assert bland_altman([1.0, None], [2.0, 3.0])["n"] == 1  # a missing value leaves its pair out


def test_icc_from_the_two_way_anova_by_hand():
    """Five items, two raters: the mean squares from their definitions (rows = items,
    columns = raters), then ICC(C,1) = (MSR - MSE) / (MSR + MSE) and ICC(A,1) = (MSR - MSE) /
    (MSR + MSE + 2 (MSC - MSE) / n); adding a constant to one rater leaves ICC(C,1) unchanged
    and lowers ICC(A,1)."""
    a = np.array([9.0, 6.0, 8.0, 7.0, 10.0])
    b = np.array([10.0, 6.5, 9.0, 6.0, 11.0])
    y = np.column_stack([a, b])
    n, g = 5, y.mean()
    msr = 2 * ((y.mean(1) - g) ** 2).sum() / (n - 1)
    msc = n * ((y.mean(0) - g) ** 2).sum() / 1
    mse = (((y - g) ** 2).sum() - msr * (n - 1) - msc) / (n - 1)
    r = icc(a, b)
    assert r["icc_c1"] == pytest.approx((msr - mse) / (msr + mse))
    assert r["icc_a1"] == pytest.approx((msr - mse) / (msr + mse + 2 * (msc - mse) / n))
    lo, hi = r["icc_c1_ci"]
    assert lo < r["icc_c1"] < hi and lo < r["icc_a1_ci"][1]
    shifted = icc(a, b + 5)
    assert shifted["icc_c1"] == pytest.approx(r["icc_c1"]) and shifted["icc_a1"] < r["icc_a1"]
    same = icc(a, a)
    assert same["icc_a1"] == same["icc_c1"] == 1.0 and same["icc_a1_ci"] == [1.0, 1.0]


def test_kappa_and_weighted_kappa_equal_statsmodels_and_a_hand_table():
    """Hand 2-category check: table [[20, 5], [10, 15]] (n 50): po = 0.7, pe = (25 x 30 + 25 x
    20) / 2500 = 0.5, kappa = 0.4. On CR/PR/SD/PD, values equal statsmodels' cohens_kappa."""
    from statsmodels.stats.inter_rater import cohens_kappa

    two = kappa(["PR"] * 25 + ["SD"] * 25, ["PR"] * 20 + ["SD"] * 5 + ["PR"] * 10 + ["SD"] * 15,
                categories=("PR", "SD"))
    assert two["kappa"] == pytest.approx(0.4) and two["confusion"] == [[20, 5], [10, 15]]
    ref = ["CR"] * 6 + ["PR"] * 10 + ["SD"] * 12 + ["PD"] * 8 + ["NE"]
    test = (["CR"] * 5 + ["PR"] + ["PR"] * 8 + ["SD"] * 2 + ["SD"] * 10 + ["PD"] * 2
            + ["PD"] * 7 + ["SD"] + ["PD"])
    for weights in (None, "linear"):
        got = kappa(ref, test, weights=weights)
        table = np.array(got["confusion"])
        assert table.sum() == 36  # the NE pair is left out
        want = cohens_kappa(table, wt=weights) if weights else cohens_kappa(table)
        assert got["kappa"] == pytest.approx(want.kappa)
        assert got["se"] == pytest.approx(want.std_kappa)
        assert got["ci"] == pytest.approx([want.kappa_low, want.kappa_upp])
    assert kappa(["SD", "SD"], ["SD", "SD"])["kappa"] == 1.0  # one category, all agree


def test_mcnemar_and_the_paired_rate_difference():
    """b = 2 (reference yes, test no), c = 7: exact binomial p = 2 P(X <= 2 | 9, 1/2) =
    2 x 46/512 = 0.1797; the test rate is 5/n higher."""
    from statsmodels.stats.contingency_tables import mcnemar as sm

    ref = [True] * 10 + [True] * 2 + [False] * 7 + [False] * 6
    test = [True] * 10 + [False] * 2 + [True] * 7 + [False] * 6
    m = mcnemar(ref, test)
    assert (m["b"], m["c"], m["exact"]) == (2, 7, True)
    assert m["p_value"] == pytest.approx(2 * 46 / 512)
    assert m["p_value"] == pytest.approx(sm(np.array([[10, 2], [7, 6]]), exact=True).pvalue)
    d = paired_rate_difference(ref, test)
    assert d["difference"] == pytest.approx(5 / 25)
    assert d["ci"][0] < 5 / 25 < d["ci"][1] and -1 <= d["ci"][0] and d["ci"][1] <= 1
    same = paired_rate_difference(ref, ref)
    assert same["difference"] == 0 and same["ci"][0] < 0 < same["ci"][1]


def test_scan_agreement_counts_a_missed_lesion_a_speck_and_an_over_segmentation(tmp_path):
    """Reference: lesions A (r 7), B (r 6), C (r 5). Test: A grown by 1 mm (r 8), B missed,
    C exact, and a single-voxel speck. Lesions: TP 2 (A, C), FN 1 (B), FP 1 (the speck; not
    measurable, so no measurable FP). Voxels: TP = |A| + |C|, FP = |A8| - |A| + 1, FN = |B|."""
    a, c, b = ((15, 15, 15), (40, 40, 20), (15, 45, 25))
    ref_path, ref = _balls(tmp_path / "r.nii.gz", [(a, 7, 1), (b, 6, 1), (c, 5, 1)])
    test_path, tst = _balls(tmp_path / "t.nii.gz", [(a, 8, 1), (c, 5, 1)],
                            extra=[(50, 5, 5)])
    [whole, lab] = scan_agreement(ref_path, test_path)
    tp = int(np.count_nonzero((ref > 0) & (tst > 0)))
    assert (whole["tp_voxels"], whole["fp_voxels"], whole["fn_voxels"]) == (
        tp, int(np.count_nonzero(tst > 0)) - tp, int(np.count_nonzero(ref > 0)) - tp)
    assert whole["dice"] == pytest.approx(2 * tp / (np.count_nonzero(ref) + np.count_nonzero(tst)))
    assert (whole["lesions_tp"], whole["lesions_fn"], whole["lesions_fp"]) == (2, 1, 1)
    assert whole["lesion_f1"] == pytest.approx(4 / 6)
    assert (whole["measurable_lesions_tp"], whole["measurable_lesions_fn"],
            whole["measurable_lesions_fp"]) == (2, 1, 0)
    assert lab["region"] == "label_1" and lab["dice"] == whole["dice"]
    empty, _ = _balls(tmp_path / "e.nii.gz", [])
    [both_empty] = scan_agreement(empty, empty)
    assert both_empty["dice"] == 1.0 and both_empty["lesion_f1"] == 1.0


def test_two_masks_on_different_grids_are_refused(tmp_path):
    ref, _ = _balls(tmp_path / "r.nii.gz", [((20, 20, 20), 5, 1)])
    data = np.asarray(nib.load(ref).dataobj)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "t.nii.gz")
    with pytest.raises(cnsvol.MaskError, match="is not on the grid of the reference mask"):
        scan_agreement(ref, tmp_path / "t.nii.gz")


def _cohort(tmp_path, name, follow_radius):
    """Three subjects: baseline a lesion of radius 8; follow-up radius ``follow_radius[s]``
    (0 = gone); subject S3 has a single scan."""
    rows = ["subject_id,timepoint,days_from_baseline,mask_path"]
    for sid, r in follow_radius.items():
        base, _ = _balls(tmp_path / f"{name}_{sid}_0.nii.gz", [((30, 30, 20), 8, 1)])
        rows.append(f"{sid},baseline,0,{base}")
        if r is None:
            continue
        fu, _ = _balls(tmp_path / f"{name}_{sid}_1.nii.gz", [((30, 30, 20), r, 1)] if r else [])
        rows.append(f"{sid},week8,56,{fu}")
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_agree_finds_the_flip_an_over_segmentation_makes(tmp_path):
    """Reference: S1 shrinks from r 8 to r 5 (volume about -75%: PR under lin2009, which
    asks >= 50%), S2 resolves (CR). Test: S1's follow-up over-segmented to r 7 (about -33%:
    SD, still a >=20% responder), S2 the same CR. S3 has a baseline only."""
    ref = _cohort(tmp_path, "ref", {"S1": 5, "S2": 0, "S3": None})
    test = _cohort(tmp_path, "test", {"S1": 7, "S2": 0, "S3": None})
    res = cnsvol.agree(ref, test, tmp_path / "out", config="lin2009", jobs=1)
    tps = res.timepoints.set_index("subject_id")
    assert list(tps.index) == ["S1", "S2"]  # S3: scan rows only
    assert (tps.loc["S1", "reference_category"], tps.loc["S1", "test_category"]) == ("PR", "SD")
    assert tps.loc["S2", "category_agrees"]
    assert set(res.scans["subject_id"]) == {"S1", "S2", "S3"}
    s = res.summary
    assert s["category_kappa"]["confusion"][1][2] == 1  # PR -> SD
    assert s["rates"]["reference"]["objective_response"]["rate"] == pytest.approx(1.0)
    assert s["rates"]["test"]["objective_response"]["rate"] == pytest.approx(0.5)
    assert s["rates"]["paired_difference"]["objective_response"]["difference"] == \
        pytest.approx(-0.5)
    assert s["responder_20pct"]["mcnemar"]["b"] == 0  # both still >= 20% responders
    doc = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert doc["n_followups_compared"] == 2 and (tmp_path / "out" / "agreement.html").is_file()


@pytest.mark.slow
def test_a_cohort_agrees_with_itself_perfectly_even_with_an_empty_mask(tmp_path):
    ref = _cohort(tmp_path, "ref", {"S1": 5, "S2": 0, "S3": None})
    res = cnsvol.agree(ref, ref, tmp_path / "out", jobs=1)
    s = res.summary
    assert s["category_kappa"]["kappa"] == 1.0 and s["volume_bland_altman"]["bias"] == 0.0
    assert (res.scans["dice"] == 1.0).all() and s["n_scans_not_compared"] == 0
    assert s["responder_20pct"]["agreement"] == 1.0


def test_manifests_that_do_not_list_the_same_scans_are_refused(tmp_path):
    ref = _cohort(tmp_path, "ref", {"S1": 5, "S2": 0})
    test = _cohort(tmp_path, "test", {"S1": 5, "S2": None})
    with pytest.raises(ManifestError, match=r"only in the reference: S2 week8"):
        cnsvol.agree(ref, test, tmp_path / "out")
    moved = tmp_path / "moved.csv"
    moved.write_text(ref.read_text().replace(",56,", ",84,"))
    with pytest.raises(ManifestError, match=r"S1 week8: day 56 in the reference, 84 in the test"):
        cnsvol.agree(ref, moved, tmp_path / "out")


def test_the_paired_difference_interval_is_newcombes_method_10():
    """Newcombe 1998, method 10, with its continuity-corrected phi: on the paired table
    (both yes 12, reference only 2, test only 0, neither 15) the interval of test - reference
    is (-0.1748, 0.0415), and on perfect agreement of 10 of 29 it is -/+ 0.0732: the values of
    R's contingencytables and biostatUZH::confIntPairedProportion on the same tables."""
    ref = [True] * 14 + [False] * 15
    test = [True] * 12 + [False] * 2 + [False] * 15
    assert paired_rate_difference(ref, test)["ci"] == pytest.approx([-0.1748, 0.0415],
                                                                    abs=1e-4)
    same = [True] * 10 + [False] * 19
    assert paired_rate_difference(same, same)["ci"] == pytest.approx([-0.0732, 0.0732],
                                                                    abs=1e-4)


@pytest.mark.slow
@pytest.mark.realdata
def test_with_compartments_the_whole_region_is_what_the_response_measures(realdata, tmp_path):
    """AUDIT's convention (1 ENH, 2 NEC, 3 EDE): the response measures the tumour core
    (ENH + NEC), so the `whole` row compares labels 1 and 2, not the oedema; the label rows are
    named by compartment. SSA-00002 ground truth: core 21524 + 6603 = 28127 voxels; SegResNet
    19860 + 6990 = 26850 (1 mm voxels)."""
    case = realdata / "audit_brats2024" / "SSA" / "BraTS2024_SSA-00002-000"
    gt = case / "BraTS2024_SSA-00002-000_seg.nii.gz"
    pred = case / "SegResNet" / "BraTS2024_SSA-00002-000_pred.nii.gz"
    rows = []
    for name, mask in (("ref", gt), ("test", pred)):
        path = tmp_path / f"{name}.csv"
        path.write_text(f"subject_id,timepoint,days_from_baseline,mask_path\nSSA2,baseline,0,{mask}\n")
        rows.append(path)
    config = cnsvol.RunConfig(options=cnsvol.MeasureOptions(compartments="audit"))
    res = cnsvol.agree(*rows, tmp_path / "out", config=config, jobs=1)
    by = res.scans.set_index("region")
    assert by.loc["whole", "reference_volume_mm3"] == 28127.0
    assert by.loc["whole", "test_volume_mm3"] == 26850.0
    assert {"enhancing", "nonenhancing", "edema"} <= set(by.index)
    assert res.summary["single_scan_subjects"] == ["SSA2"]
