"""Figures and the HTML report, from a synthetic results folder with hostile ids.

The folder follows docs/outputs.md: subjects.csv / timepoints.csv / tracks.csv written with
cnsvol's own CSV writer (so the spreadsheet-formula guard is applied as in a real run),
cohort.json with rates, an arm comparison and a PFS section whose KM curves are computed here by
a plain product-limit loop (see :func:`km`), provenance.json with the lin2009 criteria.
"""

from __future__ import annotations

import html
import json
import os
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import cnsvol
from cnsvol import PRESETS, SCHEMAS, ResultsError, build_report, write_cohort_figures
from cnsvol.cohort.stats import PfsAnalysis
from cnsvol.report import display_slice, km_plot, qc_picture, safe_filename, spider, waterfall
from cnsvol.report.km import at_risk
from cnsvol.results import read_table, write_table

HOSTILE = [
    "<script>alert(1)</script>",
    'a"b',
    "=cmd|' /C calc'!A0",
    "x,y",
    "Müller-ß",
]
FAILED_ID = "bad<i>id</i>"
ERROR = "mask <b>broken</b>.nii.gz: file not found. Fix: check the path"


def km(times: list[float], events: list[bool]) -> dict:
    """A KM dict of docs/outputs.md by the product-limit definition, one curve row per distinct
    time (events and censorings): S(t) = prod(1 - d_i / n_i), at_risk = n_i (still followed
    just before t_i)."""
    t = np.asarray(times, dtype=float)
    e = np.asarray(events, dtype=bool)
    curve = {"time": [0.0], "survival": [1.0], "at_risk": [len(t)], "events": [0], "censored": [0]}
    s = 1.0
    median = None
    for u in sorted(set(t.tolist())):
        n = int((t >= u).sum())
        d = int(((t == u) & e).sum())
        c = int(((t == u) & ~e).sum())
        s *= 1 - d / n
        if median is None and s <= 0.5:
            median = u
        for k, v in zip(curve, (u, s, n, d, c)):
            curve[k].append(v)
    return {"n": len(t), "events": int(e.sum()), "median_days": median, "median_ci_low": None,
            "median_ci_high": None, "survival_at": [], "curve": curve}


def analysis(origin: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {
        "label": origin, "time_origin": origin,
        "groups": {
            "responder": km(np.round(rng.exponential(300, 8)).tolist(), (rng.random(8) < 0.6).tolist()),
            "non_responder": km(np.round(rng.exponential(120, 9)).tolist(), (rng.random(9) < 0.8).tolist()),
        },
        "logrank": {"statistic": 4.2, "p_value": 0.04, "df": 1},
        "cox_responder": {"hr": 0.45, "ci_low": 0.2, "ci_high": 0.98, "p_value": 0.045, "n": 17,
                          "events": 12, "unit": "responder vs non-responder"},
        "cox_percent_change": None,
    }
    if origin == "landmark":
        out.update(landmark_days=56, landmark_source="median first follow-up day", n_excluded=2)
    return out


def rate(n: int, events: int) -> dict:
    return {"n": n, "events": events, "rate": events / n if n else None, "ci_low": 0.05,
            "ci_high": 0.7, "method": "clopper-pearson", "alpha": 0.05}


def make_folder(out: Path, *, n_ok: int = 6, pfs: bool = True, arms=("A", "B"),
                failed: bool = True) -> dict:
    """Write a results folder; returns {"ids": [...]}."""
    rng = np.random.default_rng(7)
    ids = [*HOSTILE, *(f"S{i:02d}" for i in range(n_ok))] if n_ok else []
    subjects, timepoints, tracks = [], [], []
    cats = ["CR", "PR", "SD", "PD", "SD", "PR", "NE", "SD", "PD", "PR", "SD"]
    for i, sid in enumerate(ids):
        cat = cats[i % len(cats)]
        best = {"CR": -100.0, "PR": -62.5, "SD": -12.0, "PD": 250.0 if i == 3 else 45.0}.get(cat)
        subjects.append({
            "subject_id": sid, "status": "ok", "error": "", "n_timepoints": 3,
            "arm": arms[i % len(arms)], "best_response": cat, "best_percent_change": best,
            "responder_20pct": None if best is None else best <= -20,
            "objective_response": cat in ("CR", "PR"), "progression_days": 112 if cat == "PD" else None,
            "first_followup_days": 56, "new_lesions": 1 if i % 4 == 0 else 0,
            "has_pfs": i != 1, "pfs_days": None if i == 1 else int(rng.integers(60, 600)),
            "pfs_event": None if i == 1 else bool(i % 3),
        })
        for day, frac in ((0, 0.0), (56, 0.5), (112, 1.0)):
            pct = None if best is None else best * frac
            timepoints.append({
                "subject_id": sid, "timepoint": f"<tp>{day}", "days_from_baseline": day,
                "path": f"/data/{sid}/{day}.nii.gz", "percent_change_vs_baseline": pct,
                "category": "" if day == 0 else (cat if day == 112 else "SD"),
            })
            tracks.append({"subject_id": sid, "track_id": 1, "timepoint": f"<tp>{day}",
                           "days_from_baseline": day, "lesion_ids": "1 2", "status": "matched"})
    if failed:
        subjects.append({"subject_id": FAILED_ID, "status": "failed", "error": ERROR,
                         "n_timepoints": 2})
    subjects.sort(key=lambda r: r["subject_id"])
    for name, rows in (("subjects", subjects), ("timepoints", timepoints), ("tracks", tracks)):
        write_table(out / f"{name}.csv", SCHEMAS[name], rows)
    two_arms = len(set(arms)) >= 2
    cohort = {
        "criteria": "lin2009", "n_subjects": len(subjects), "n_failed": int(failed),
        "n_evaluable": sum(s.get("responder_20pct") is not None for s in subjects),
        "ids_without_pfs": [HOSTILE[1]] if ids else [], "ids_without_masks": ["<img src=x>"],
        "failed_ids": [FAILED_ID] if failed else [],
        "rates": {k: {"overall": rate(len(ids), len(ids) // 3),
                      "by_arm": {a: rate(len(ids) // 2, 1) for a in set(arms)}}
                  for k in ("responder_20pct", "objective_response")},
        "arm_comparison": {
            k: {"test": "fisher_exact", "p_value": 0.51, "odds_ratio": 1.8,
                "table": {a: [2, 4] for a in arms}}
            for k in ("responder_20pct", "objective_response")
        } if two_arms else None,
        "pfs": {"responder_col": "responder_20pct", "n": 17, "events": 12,
                "naive": analysis("baseline", 1), "landmark": analysis("landmark", 2)} if pfs else None,
    }
    (out / "cohort.json").write_text(json.dumps(cohort), encoding="utf-8")
    provenance = {
        "cnsvol_version": "0.1.0", "python": "3.12.0", "started_at": "2025-01-01T10:00:00+00:00",
        "finished_at": "2025-01-01T10:05:00+00:00",
        "command": ["cnsvol", "run", "manifest <x>.csv", "--out", "out"],
        "criteria": PRESETS["lin2009"].to_dict(),
        "inputs": {"/data/<script>.nii.gz": "ab" * 32},
        "subject_errors": {FAILED_ID: ERROR} if failed else {},
    }
    (out / "provenance.json").write_text(json.dumps(provenance), encoding="utf-8")
    return {"ids": ids}


class Checker(HTMLParser):
    """Collects tags, attributes and parse problems of an HTML document."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def parse(text: str) -> Checker:
    checker = Checker()
    checker.feed(text)
    checker.close()
    return checker


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    info = make_folder(out)
    # one QC picture, to check the link (the file content does not matter here)
    qc = out / "figures" / "qc" / f"{safe_filename(HOSTILE[0])}.png"
    qc.parent.mkdir(parents=True)
    qc.write_bytes(b"\x89PNG")
    write_cohort_figures(out)
    build_report(out)
    return out, info


def test_report_parses_balanced_and_self_contained(folder):
    out, _ = folder
    text = (out / "report.html").read_text(encoding="utf-8")
    checker = parse(text)
    assert checker.problems == []
    assert checker.stack == []
    for tag in ("html", "head", "body", "main", "table", "section"):
        assert tag in checker.tags
    # fully self-contained: images are data URIs, links are relative, no URL anywhere
    assert "http://" not in text and "https://" not in text
    for tag, name, value in checker.attrs:
        if name == "src":
            assert value.startswith("data:image/png;base64,"), (tag, value[:40])
        if name == "href":
            assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", value, re.I), value
    imgs = [v for t, n, v in checker.attrs if t == "img" and n == "src"]
    assert len(imgs) >= 5  # waterfall, by arm, spider, 2 x KM
    assert not any(t in ("script", "link", "iframe", "object") for t in checker.tags)


def test_report_escapes_every_value_from_the_folder(folder):
    out, info = folder
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "<b>" not in text and "<i>" not in text and "<img src=x>" not in text
    for sid in [*info["ids"], FAILED_ID, "<img src=x>"]:
        assert html.escape(sid, quote=True) in text, sid
    assert html.escape(ERROR, quote=True) in text
    # the CSV formula guard is undone: the id shows as in the manifest, not as '=cmd...
    assert html.escape("'=cmd", quote=True) not in text
    # criteria title and source, and the QC link (relative, safe file name)
    crit = PRESETS["lin2009"]
    assert html.escape(crit.title) in text and html.escape(crit.source) in text
    assert f'href="figures/qc/{safe_filename(HOSTILE[0])}.png"' in text
    assert "guarantee-time" in text and "landmark" in text.lower()


def test_cohort_figures_exist_and_svg_is_byte_stable(folder, tmp_path):
    out, _ = folder
    figs = out / "figures"
    for name in ("waterfall", "waterfall_by_arm", "spider", "km_naive", "km_landmark"):
        for ext in ("png", "svg"):
            assert (figs / f"{name}.{ext}").stat().st_size > 1000, name
    first = {p.name: p.read_bytes() for p in figs.glob("*.svg")}
    again = write_cohort_figures(out)
    assert {p.name: p.read_bytes() for p in figs.glob("*.svg")} == first
    assert all(p.exists() for paths in again.values() for p in paths)
    for data in first.values():  # hostile ids in tick labels still give valid XML
        ET.fromstring(data)


def test_report_without_pfs_single_arm_zero_successes_and_no_figures(tmp_path):
    make_folder(tmp_path, n_ok=0, pfs=False, arms=("A",))
    text = build_report(tmp_path).read_text(encoding="utf-8")
    assert parse(text).problems == []
    assert "figure not available" in text
    assert "No PFS table" in text and "fewer than two" in text
    assert html.escape(ERROR, quote=True) in text
    written = write_cohort_figures(tmp_path)
    assert set(written) == {"waterfall", "spider"}
    text = build_report(tmp_path).read_text(encoding="utf-8")
    assert parse(text).problems == [] and "data:image/png;base64," in text


def test_report_without_provenance_or_cohort_still_builds(tmp_path):
    make_folder(tmp_path, n_ok=3)
    (tmp_path / "provenance.json").unlink()
    (tmp_path / "cohort.json").unlink()
    text = build_report(tmp_path).read_text(encoding="utf-8")
    assert parse(text).problems == [] and "not available" in text
    with pytest.raises(ValueError, match="no criteria found"):
        write_cohort_figures(tmp_path)
    not_a_run = tmp_path / "elsewhere"
    not_a_run.mkdir()
    with pytest.raises(ResultsError, match="subjects.csv"):
        build_report(not_a_run)


def test_waterfall_and_spider_with_no_values(tmp_path):
    import pandas as pd

    crit = PRESETS["rano-bm-vol"]
    empty = pd.DataFrame(columns=["subject_id", "best_percent_change", "best_response"])
    assert all(p.exists() for p in waterfall(empty, crit, tmp_path / "w0"))
    nones = pd.DataFrame({"subject_id": ["a", "b"], "status": ["ok", "ok"],
                          "best_percent_change": [None, None], "best_response": [None, "NE"],
                          "arm": [None, ""]})
    for how in ("category", "arm"):
        assert all(p.exists() for p in waterfall(nones, crit, tmp_path / f"w1{how}", how))
    assert all(p.exists() for p in spider(pd.DataFrame(), nones, crit, tmp_path / "s0"))
    with pytest.raises(ValueError, match="color_by"):
        waterfall(nones, crit, tmp_path / "bad", color_by="colour")


def test_km_plot_and_numbers_at_risk(tmp_path):
    paths = km_plot(PfsAnalysis.from_dict(analysis("landmark", 3)), tmp_path / "km",
                    "PFS <by> $response$")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    import matplotlib.image

    h, w = matplotlib.image.imread(paths[0]).shape[:2]
    assert (w, h) == (1125, 930)
    # 5 subjects: events at 10 and 20, censored at 20 and 30, event at 40
    k = km([10, 20, 20, 30, 40], [True, True, False, False, True])
    c = {key: np.asarray(v, dtype=float) for key, v in k["curve"].items()}
    assert [at_risk(c, t) for t in (0, 5, 10, 15, 25, 35, 40, 45)] == [5, 5, 5, 4, 2, 1, 1, 0]
    # an analysis with nothing in it still draws
    empty = PfsAnalysis("empty", "baseline", {}, None, None, None)
    assert km_plot(empty, tmp_path / "empty", "empty")[0].exists()


# --------------------------------------------------------------------------------------------
# QC pictures

SPACING = (0.9, 1.1, 1.5)


def ball(shape, affine, centre_mm, radius_mm):
    ijk = np.stack(np.indices(shape), axis=-1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    return ((world - np.asarray(centre_mm)) ** 2).sum(-1) <= radius_mm**2


def series_with_grid_change():
    """3 timepoints, 2 lesions; the last scan on another (LPS-stored, other spacing) grid."""
    a = np.diag([*SPACING, 1.0])
    a[:3, 3] = (-30, -40, -20)
    b = np.diag([-1.2, -1.0, 1.4, 1.0])
    b[:3, 3] = (40, 35, -21)

    def mask(affine, shape, lesions):
        data = np.zeros(shape, np.uint8)
        for centre, r in lesions:
            data[ball(shape, affine, centre, r)] = 1
        return cnsvol.mask_from_array(data, affine)

    masks = [
        mask(a, (70, 60, 30), [((12, 10, 0), 8), ((-12, -15, 2), 5)]),
        mask(a, (70, 60, 30), [((12, 10, 0), 6), ((-12, -15, 2), 5)]),
        mask(b, (70, 75, 32), [((12, 10, 0), 4)]),
    ]
    return cnsvol.evaluate_series(masks, [0, 56, 112], timepoints=["base", "wk8", "<wk16>"]), a


def test_qc_picture_with_and_without_image(tmp_path):
    import matplotlib.image
    import nibabel as nib

    series, a = series_with_grid_change()
    assert series.timepoints[2].resampled_for_matching
    rng = np.random.default_rng(0)
    img = (100 * ball((70, 60, 30), a, (0, 0, 0), 30) + rng.normal(0, 5, (70, 60, 30)))
    nib.save(nib.Nifti1Image(img.astype(np.float32), a), tmp_path / "t0.nii.gz")
    nib.save(nib.Nifti1Image(img[:, :, :20].astype(np.float32), a), tmp_path / "t1_other.nii.gz")
    with_image = qc_picture(series, [tmp_path / "t0.nii.gz", tmp_path / "t1_other.nii.gz", None],
                            tmp_path / "qc" / "subj.with.dots", title="<b>$x$")
    without = qc_picture(series, None, tmp_path / "qc" / "plain", max_lesions=1)
    (tmp_path / "corrupt.nii.gz").write_bytes(b"not gzip")
    unreadable = qc_picture(series, [tmp_path / "corrupt.nii.gz", None, tmp_path / "missing.nii"],
                            tmp_path / "qc" / "unreadable")
    assert unreadable[0].exists()  # panels say "image unreadable" and show the mask
    assert with_image == [tmp_path / "qc" / "subj.with.dots.png"]
    h2, w2 = matplotlib.image.imread(with_image[0]).shape[:2]
    h1, w1 = matplotlib.image.imread(without[0]).shape[:2]
    assert w1 == w2 and 700 < w2 < 1000  # 3 timepoint columns
    assert 500 < h2 < 900 and h1 < h2  # 2 lesion rows vs 1
    with pytest.raises(ValueError, match="3 timepoints"):
        qc_picture(series, [None], tmp_path / "bad")


def test_a_qc_panel_window_keeps_a_bright_lesion_apart_from_its_tissue():
    """Tissue at ~600 and a small lesion at ~1100: in a window of the whole slice (percentiles
    1-99.5, the lesion a fraction of a percent of it) both are white; the panel's own window
    keeps them apart."""
    from cnsvol.report.qc import _panel_window
    from cnsvol.report.raster import Crop, crop_pixels, grey_image, window

    rng = np.random.default_rng(3)
    volume = 600 + rng.normal(0, 20, (160, 160, 3))
    yy, xx = np.mgrid[:160, :160]
    lesion = (yy - 60) ** 2 + (xx - 90) ** 2 < 16
    volume[lesion, 1] = 1100 + rng.normal(0, 20, lesion.sum())
    affine = np.eye(4)
    whole = window(volume[:, :, 1])
    assert whole[1] < 700  # the problem: the lesion is above the whole slice's window
    from cnsvol.report.orient import display_slice
    values, inside = crop_pixels(display_slice(volume, affine, 1),
                                 Crop(80.0, 80.0, 20.0, 20.0, 240))
    grey = grey_image(values, inside, _panel_window(values, inside, volume, affine, 1))[..., 0]
    bright = grey[values > 900]
    tissue = grey[(values > 0) & (values < 700)]
    assert bright.size and tissue.size
    assert np.median(bright) - np.median(tissue) > 100


def test_text_is_wrapped_to_the_picture_and_ids_stay_on_one_line(tmp_path):
    from cnsvol.report.names import one_line
    from cnsvol.report.raster import font, wrap

    text = "Outline colour = lesion track (same colour at every timepoint); thick = the row's"
    lines = wrap(text, 10, 200).split("\n")
    assert len(lines) > 1 and " ".join(lines) == text
    assert all(font(10).getlength(line) <= 200 for line in lines)
    assert wrap("a\nb", 10, 500) == "a\nb"
    assert one_line("S1\nrun ended\t\\") == "S1\\nrun ended\\t\\\\"
    series, _ = series_with_grid_change()
    out = qc_picture(series, None, tmp_path / "nl", title="S1\n2026-01-01\trun ended")
    assert out[0].stat().st_size > 0


def test_qc_picture_without_baseline_lesions(tmp_path):
    a = np.diag([*SPACING, 1.0])
    empty = cnsvol.mask_from_array(np.zeros((20, 20, 10), np.uint8), a)
    data = np.zeros((20, 20, 10), np.uint8)
    data[5:9, 5:9, 3:6] = 1
    series = cnsvol.evaluate_series([empty, cnsvol.mask_from_array(data, a)], [0, 60])
    assert qc_picture(series, [None, None], tmp_path / "new")[0].exists()
    assert qc_picture(cnsvol.evaluate_series([empty, empty], [0, 60]), None,
                      tmp_path / "none")[0].exists()


@pytest.mark.parametrize("flip", [(1, 1, 1), (-1, -1, 1), (-1, 1, -1)])
@pytest.mark.parametrize("perm", [(0, 1, 2), (1, 0, 2), (2, 0, 1)])
def test_display_is_radiological_whatever_the_storage(flip, perm):
    """A voxel at the patient's right-anterior shows in the upper-left quadrant (anterior up,
    patient's right on the viewer's left), for flipped and permuted voxel axes."""
    linear = np.zeros((3, 3))
    for world_axis, (voxel_axis, sign) in enumerate(zip(perm, flip)):
        linear[world_axis, voxel_axis] = sign * SPACING[voxel_axis]
    affine = np.eye(4)
    affine[:3, :3] = linear
    shape = (16, 18, 20)
    affine[:3, 3] = -linear @ (np.array(shape) - 1) / 2  # centre of the grid at the origin
    data = np.zeros(shape, np.uint8)
    target = np.rint(np.linalg.solve(linear, np.array([5.0, 6.0, 0.0]) - affine[:3, 3])).astype(int)
    data[tuple(target)] = 1
    k = target[[i for i in range(3) if abs(linear[2, i]) > 0][0]]
    view = display_slice(data, affine, k)
    rows, cols = np.nonzero(view)
    assert rows[0] < view.shape[0] / 2 and cols[0] < view.shape[1] / 2


def _realdata() -> Path:
    return Path(os.environ.get("CNSVOL_REALDATA",
                               Path(__file__).resolve().parents[2] / "shared" / "realdata"))


@pytest.mark.realdata
def test_qc_picture_on_a_real_lps_nrrd_with_its_mri(tmp_path):
    root = _realdata() / "pyradiomics"
    if not (root / "brain1_image.nrrd").is_file():
        pytest.skip(f"real data not found in {root} (set CNSVOL_REALDATA)")
    mask = cnsvol.read_mask(root / "brain1_label.nrrd")
    series = cnsvol.evaluate_series([mask, mask], [0, 42])
    out = qc_picture(series, [root / "brain1_image.nrrd", None], tmp_path / "brain1")
    assert out[0].stat().st_size > 10_000


# --------------------------------------------------------------------------------------------
# file names and tables


def test_safe_filename_properties():
    ids = [*HOSTILE, FAILED_ID, "pt-001", "PT-001", "Pt-001", "pt_001", "PT_001", "pt 001", "", ".", "..",
           "-rf", "con", "CON.txt", "a--b", "a_b", "x" * 300, "x" * 301, "ü", "u\u0308",
           "trailing.", "Müller_ß", "M_ller-__" + "--" + "0" * 12]
    names = [safe_filename(i) for i in ids]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    assert all(not n.startswith((".", "-")) and len(n) <= 100 for n in names)
    assert len({n.lower() for n in names}) == len(ids)  # distinct, even ignoring case
    assert names == [safe_filename(i) for i in ids]  # deterministic
    assert safe_filename("PT-001") == "PT-001" and safe_filename("pt-001") != "pt-001"


def test_reading_a_table_back_undoes_the_formula_guard(tmp_path):
    rows = [{"subject_id": s, "status": "ok", "n_timepoints": 1}
            for s in [*HOSTILE, "-5", "+x", "@y", "007"]]
    write_table(tmp_path / "subjects.csv", SCHEMAS["subjects"], rows)
    raw = (tmp_path / "subjects.csv").read_text(encoding="utf-8")
    assert "'=cmd" in raw and "'+x" in raw  # guarded on disk
    back = read_table(tmp_path / "subjects.csv", SCHEMAS["subjects"])
    assert list(back["subject_id"]) == [r["subject_id"] for r in rows]
    assert str(back["n_timepoints"].dtype) == "Int64" and back["n_timepoints"].tolist() == [1] * 9


def test_pfs_table_notes_are_shown_escaped(tmp_path):
    """PFS rows set aside (duplicate ids, negative times) are listed in the report, with the
    ids and rows as cohort.json has them, escaped like every other value."""
    make_folder(tmp_path, pfs=False)
    cohort = json.loads((tmp_path / "cohort.json").read_text(encoding="utf-8"))
    note = ("pfs.csv: 2 subject id(s) set aside, analysed without PFS: duplicate subject id(s) "
            "<b>X</b> (rows 3, 5); negative pfs_days: Y=-30 (row 6). Fix these rows")
    cohort["pfs_table"] = {"path": "pfs.csv", "notes": [note]}
    (tmp_path / "cohort.json").write_text(json.dumps(cohort), encoding="utf-8")
    text = build_report(tmp_path).read_text(encoding="utf-8")
    assert "PFS table notes" in text and html.escape(note, quote=True) in text
    assert "<b>X</b>" not in text
    assert parse(text).problems == []


# --------------------------------------------------------------------------------------------
# Kaplan-Meier medians as cohort.json has them


def test_fmt_days_is_the_stored_value_unrounded():
    from cnsvol.report.fmt import NA, fmt_days

    assert fmt_days(250.5) == "250.5"
    assert fmt_days(250.0) == "250" and fmt_days(250) == "250"
    assert fmt_days(183.25) == "183.25"
    assert fmt_days(0.1 + 0.2) == "0.30000000000000004"  # what json.dumps writes
    assert float(fmt_days(1234.5678)) == 1234.5678
    assert fmt_days(None) == NA and fmt_days(float("nan")) == NA


def test_median_midpoint_read_off_the_curve():
    """4 progressions at 100, 224, 277, 300: S = 0.75, 0.5, 0.25, 0; S is exactly 0.5 from day
    224 to 277, so the median is (224 + 277) / 2 = 250.5 (midpoint rule). 3 progressions at
    30.5, 183.25, 200.75: S = 2/3, 1/3, 0, the median is the first day with S <= 0.5."""
    from cnsvol.cohort.stats import KaplanMeier
    from cnsvol.report.fmt import median_midpoint

    mid = KaplanMeier.from_dict({**km([100, 224, 277, 300], [True] * 4), "median_days": 250.5})
    assert median_midpoint(mid) == (224.0, 277.0)
    first = KaplanMeier.from_dict(km([30.5, 183.25, 200.75], [True] * 3))
    assert first.median_days == 183.25 and median_midpoint(first) is None
    # a median that is not the midpoint of the plateau is not called one
    assert median_midpoint(KaplanMeier.from_dict(km([100, 224, 277, 300], [True] * 4))) is None
    assert median_midpoint(KaplanMeier.from_dict(km([10, 20], [True, False]))) is None


def _medians_folder(out: Path) -> None:
    """make_folder, with the naive responders' median 250.5 (midpoint rule, CI 100-NR) and the
    landmark non-responders' median 183.25 (first day with S <= 0.5, CI 30.5-200.75)."""
    make_folder(out)
    cohort = json.loads((out / "cohort.json").read_text(encoding="utf-8"))
    cohort["pfs"]["naive"]["groups"]["responder"] = {
        **km([100, 224, 277, 300], [True] * 4), "median_days": 250.5, "median_ci_low": 100.0,
        "median_ci_high": None}
    cohort["pfs"]["landmark"]["groups"]["non_responder"] = {
        **km([30.5, 183.25, 200.75], [True] * 3), "median_ci_low": 30.5,
        "median_ci_high": 200.75}
    (out / "cohort.json").write_text(json.dumps(cohort), encoding="utf-8")


def test_report_prints_km_median_exactly_and_its_rule(tmp_path):
    """250.5 is printed as 250.5 (it used to be "250"), marked as given by the midpoint rule,
    with the two days; 183.25 as 183.25; the rule and the Cox tie method are stated."""
    _medians_folder(tmp_path)
    text = build_report(tmp_path).read_text(encoding="utf-8")
    assert parse(text).problems == []
    cells = re.findall(r"<td>([^<]*)</td>", text)
    assert "250.5\u2020 (100\u2013NR)" in cells
    assert "183.25 (30.5\u2013200.75)" in cells
    assert not any(c.startswith(("250 ", "250\u2020", "183 ")) for c in cells)
    plain_text = html.unescape(re.sub(r"<[^>]+>", "", text))
    assert "first day t with S(t) \u2264 0.5" in plain_text
    assert "exactly 0.5" in plain_text and "midpoint" in plain_text
    assert ("\u2020 naive (biased), responders: S(t) = 0.5 from day 224 to day 277, median "
            "(224 + 277) / 2 = 250.5.") in plain_text
    assert plain_text.count("\u2020") == 3  # the rule, the cell and its note; 183.25 unmarked
    assert "Efron's handling of tied event times" in plain_text
    assert "Breslow" not in plain_text


def test_km_figure_median_exact_and_title_inside(tmp_path, monkeypatch):
    """The legend gives the median as stored (250.5 d); the long naive title (objective
    response: the longest responder words) is wrapped and ends inside the figure."""
    from cnsvol.report import km as km_module

    drawn = []

    def keep(fig, stem, formats):
        fig.canvas.draw()
        drawn.append(fig)
        return []

    monkeypatch.setattr(km_module, "save", keep)
    data = analysis("baseline", 1)
    data["groups"]["responder"] = {**km([100, 224, 277, 300], [True] * 4), "median_days": 250.5,
                                   "median_ci_low": 100.0, "median_ci_high": None}
    title = ("PFS by objective response (CR or PR), from baseline (naive analysis: "
             "guarantee-time biased)")
    km_plot(PfsAnalysis.from_dict(data), tmp_path / "km", title)
    fig = drawn[0]
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("median 250.5 d, 95% CI 100\u2013NR" in t for t in labels), labels
    from matplotlib.text import Text

    shown = ax.get_title(loc="left")
    assert shown.replace("\n", " ") == title and "\n" in shown
    (artist,) = [t for t in fig.findobj(Text) if t.get_text() == shown]
    box = artist.get_window_extent(fig.canvas.get_renderer())
    assert box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1 and box.x0 >= fig.bbox.x0
    # a short title stays on one line
    km_plot(PfsAnalysis.from_dict(data), tmp_path / "km2", "PFS")
    assert drawn[1].axes[0].get_title(loc="left") == "PFS"


def test_every_criteria_field_has_a_meaning_in_the_report():
    from dataclasses import fields

    from cnsvol.report.sections_subjects import _CRITERIA_HELP
    from cnsvol.response.criteria import Criteria

    assert [f.name for f in fields(Criteria) if not _CRITERIA_HELP.get(f.name)] == []


def test_waterfall_marks_equivocal_only_new_lesions_apart():
    from cnsvol.report.waterfall_plot import _new_kind

    assert _new_kind({"new_lesions": 0, "equivocal_new_lesions": 0}) == ""
    assert _new_kind({"new_lesions": 1, "equivocal_new_lesions": 1}) == "equivocal"
    assert _new_kind({"new_lesions": 2, "equivocal_new_lesions": 1}) == "unequivocal"
    assert _new_kind({"new_lesions": 1}) == "unequivocal"  # older tables: no equivocal column


def test_subjects_table_says_what_made_the_first_pd_and_lists_equivocal_lesions():
    from cnsvol.report.sections_subjects import _short_reason, _subject_cells

    row = {"subject_id": "S1", "status": "ok", "best_response": "SD", "progression_days": 112,
           "progression_reason": "target sum +63.8% vs nadir (5772.0 -> 9456.0 mm3) (within "
                                 "measurement error, +/-4896.0 mm3)",
           "equivocal_new_lesions": 1}
    cells = [str(c) for c in _subject_cells(Path("/nonexistent"), row)]
    assert "112<br><span class=\"muted\">target sum +63.8% vs nadir (within measurement " \
           "error)</span>" in cells
    assert "1 equivocal new lesion(s)" in cells[2]
    assert _short_reason("1 new lesion(s) (largest 14.1 mm); non-target progression: 1 "
                         "lesion(s) grew (5.7 -> 17.0 mm)") == (
        "1 new lesion(s); non-target progression: 1 lesion(s) grew (5.7 -> 17.0 mm)")
    # a folder written before these columns existed still renders
    old = [str(c) for c in _subject_cells(Path("/nonexistent"), {"subject_id": "S2",
                                                                   "progression_days": 56})]
    assert old[5] == "56"


def test_a_best_change_inside_the_band_is_marked_in_the_table_and_on_the_waterfall():
    import pandas as pd

    from cnsvol.report.sections_subjects import _subject_cells
    from cnsvol.report.waterfall_plot import _waterfall_rows

    row = {"subject_id": "S1", "status": "ok", "best_response": "PR", "best_percent_change": -52.0,
           "best_change_within_measurement_error": True}
    cells = [str(c) for c in _subject_cells(Path("/nonexistent"), row)]
    assert "within error" in cells[3]
    rows = _waterfall_rows(pd.DataFrame([row, {**row, "subject_id": "S2",
                                               "best_change_within_measurement_error": False}]))
    assert [r["within_error"] for r in rows] == [True, False]


def test_spider_marks_the_first_pd_once_and_scans_inside_the_band_hollow(tmp_path):
    import pandas as pd

    from cnsvol.report.spider_plot import _lines, spider
    from cnsvol.response.criteria import PRESETS

    tps = pd.DataFrame({
        "subject_id": ["A"] * 4, "days_from_baseline": [0.0, 56.0, 112.0, 168.0],
        "percent_change_vs_baseline": [0.0, 60.0, 400.0, 900.0],
        "category": [None, "PD", "PD", "PD"], "within_measurement_error": [None, True, False,
                                                                           False]})
    subs = pd.DataFrame({"subject_id": ["A"], "status": ["ok"], "best_response": ["PD"]})
    lines, _ = _lines(tps, subs)
    assert [err for *_, err in lines["A"]] == [False, True, False, False]
    paths = spider(tps, subs, PRESETS["lin2009"], tmp_path / "spider")
    svg = paths[1].read_text()
    assert "+1000%" in svg  # the log part of the axis reaches the +900% scan unclipped


def test_a_clinical_first_pd_is_told_apart_from_a_volumetric_one():
    from cnsvol.report.waterfall_plot import _clinical_pd

    assert _clinical_pd("steroid dose increased (4 -> 12 mg)")
    assert _clinical_pd("neurologic status worse; extra-CNS progression")
    assert not _clinical_pd("1 new lesion(s) (largest 14.1 mm); steroid dose increased (4 -> 8 mg)")
    assert not _clinical_pd("target sum +63.8% vs nadir (5772.0 -> 9456.0 mm3)")
    assert not _clinical_pd("")


def test_no_figure_is_drawn_up_to_its_edge(folder, tmp_path):
    """Nothing (a title, a legend, an axis label) is cut off: every cohort figure keeps a
    background border, checked by the same function as tools/report_screenshot.py. The check
    itself is shown to catch a title pushed off the picture."""
    import runpy

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    touches_edge = runpy.run_path(str(Path(__file__).resolve().parents[1] / "tools"
                                      / "report_screenshot.py"))["touches_edge"]
    out, _ = folder
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) >= 5
    assert {p.name: touches_edge(p) for p in pngs if touches_edge(p)} == {}
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("a title far too long to fit in a three-inch-wide figure, cut at the right",
                 loc="left")
    fig.savefig(tmp_path / "clipped.png")
    plt.close(fig)
    assert "right" in touches_edge(tmp_path / "clipped.png")


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_display_plane_is_a_view_equal_to_take(order):
    """QC pictures slice the mask ~100 times: each slice must be a view (np.take copies a
    column-major volume whole first)."""
    from cnsvol.report.orient import plane

    vol = np.asarray(np.random.default_rng(1).integers(0, 9, (6, 7, 8)), order=order)
    for axis in range(3):
        for k in (0, 3, vol.shape[axis] - 1):
            sl = plane(vol, k, axis)
            assert np.array_equal(sl, np.take(vol, k, axis=axis))
            assert np.shares_memory(sl, vol)


def test_the_qc_slice_of_a_track_is_found_from_sparse_voxels():
    from cnsvol.lesions import find_lesions
    from cnsvol.report.qc import _slice_with_track
    from cnsvol import mask_from_array

    data = np.zeros((20, 20, 12), np.uint8)
    data[2:6, 2:6, 3:5] = 1      # lesion 2 (16 x 2 = 32 voxels) on slices 3-4
    data[10:18, 10:18, 7:10] = 1  # lesion 1 (64 x 3 = 192) on slices 7-9
    data[10:12, 10:12, 8] = 1     # (inside lesion 1 already)
    ls = find_lesions(mask_from_array(np.asfortranarray(data), np.eye(4)))
    assert _slice_with_track(ls, 2, 8, [1]) == 8      # on the slice asked: kept
    assert _slice_with_track(ls, 2, 0, [2]) == 3      # elsewhere: its fullest slice (tie: first)
    assert _slice_with_track(ls, 2, 0, [1, 2]) == 7   # 64 voxels on each of 7-9: the first
    assert _slice_with_track(ls, 2, 5, [99]) == 5     # no voxel: the slice asked


def test_qc_rows_are_the_largest_baseline_tracks_and_the_largest_new_one():
    from types import SimpleNamespace as R

    from cnsvol.report.qc import _qc_tracks

    def row(v):
        return R(lesion_ids=(1,) if v else (), volume_mm3=float(v))

    states = {1: {0: row(900), 1: row(500)}, 2: {0: row(300), 1: row(0)},
              3: {0: row(100), 1: row(90)}, 4: {0: row(50), 1: row(60)},
              5: {1: row(40)}, 6: {1: row(800)}}  # 5 and 6 are new at the follow-up
    assert _qc_tracks(states, 3) == [1, 2, 3, 6]
    assert _qc_tracks({k: states[k] for k in (1, 2)}, 3) == [1, 2]  # nothing new: no row
    assert _qc_tracks({5: states[5], 6: states[6]}, 1) == [6]  # empty baseline
