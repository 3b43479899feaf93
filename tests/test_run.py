"""`cnsvol run` end to end on the bundled demo cohort."""

from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cnsvol_cli.main import EXIT_INPUT_ERROR, EXIT_PARTIAL, main

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
TABLES = ("subjects.csv", "timepoints.csv", "tracks.csv", "lesions.csv")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    code = main([
        "run", str(DEMO / "manifest.csv"), "--out", str(out), "--pfs", str(DEMO / "pfs.csv"),
        "--jobs", "2", "--quiet",
    ])
    return code, out


@pytest.mark.slow
def test_every_output_is_present_and_consistent(demo_run):
    code, out = demo_run
    assert code == EXIT_PARTIAL  # S07 has a corrupt mask
    for name in (*TABLES, "cohort.json", "provenance.json", "report.html"):
        assert (out / name).is_file(), name
    for fig in ("waterfall", "spider", "km_naive", "km_landmark"):
        assert (out / "figures" / f"{fig}.png").is_file() and (out / "figures" / f"{fig}.svg").is_file()
    manifest_ids = sorted({r["subject_id"] for r in rows(DEMO / "manifest.csv")})
    subjects = rows(out / "subjects.csv")
    assert [s["subject_id"] for s in subjects] == manifest_ids
    failed = {s["subject_id"]: s for s in subjects if s["status"] == "failed"}
    assert list(failed) == ["S07"]
    assert "S07_v" in failed["S07"]["error"] and "truncated or corrupt" in failed["S07"]["error"]
    ok = [s for s in subjects if s["status"] == "ok"]
    assert {t["subject_id"] for t in rows(out / "timepoints.csv")} == {s["subject_id"] for s in ok}
    assert all((out / "figures" / "qc" / f"{s['subject_id']}.png").is_file() for s in ok)
    cohort = json.loads((out / "cohort.json").read_text())
    assert cohort["ids_without_pfs"] == ["S30"] and cohort["ids_without_masks"] == []
    assert cohort["failed_ids"] == ["S07"] and cohort["n_subjects"] == 30
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["criteria"]["name"] == "lin2009" and prov["subject_errors"].keys() == {"S07"}
    mask = str(DEMO / "masks" / "S01" / "S01_v0.nii.gz")
    assert len(prov["inputs"][mask]) == 64  # SHA-256 of every mask


@pytest.mark.slow
def test_rates_agree_with_the_tables(demo_run):
    _, out = demo_run
    subjects = [s for s in rows(out / "subjects.csv") if s["status"] == "ok"]
    cohort = json.loads((out / "cohort.json").read_text())
    r20 = cohort["rates"]["responder_20pct"]["overall"]
    assert r20["n"] == sum(s["responder_20pct"] in ("True", "False") for s in subjects)
    assert r20["events"] == sum(s["responder_20pct"] == "True" for s in subjects)
    from scipy.stats import binomtest

    ci = binomtest(r20["events"], r20["n"]).proportion_ci(method="exact")
    assert (r20["ci_low"], r20["ci_high"]) == pytest.approx((ci.low, ci.high))


@pytest.mark.slow
def test_landmark_logrank_agrees_with_scipy(demo_run):
    """Rebuild the landmark set from subjects.csv by hand and test it with scipy.stats.logrank,
    an implementation independent of the statsmodels one cnsvol uses."""
    from scipy.stats import CensoredData, logrank

    _, out = demo_run
    land = json.loads((out / "cohort.json").read_text())["pfs"]["landmark"]
    day = land["landmark_days"]
    groups: dict[bool, tuple[list[float], list[bool]]] = {True: ([], []), False: ([], [])}
    for s in rows(out / "subjects.csv"):
        if s["status"] != "ok" or s["has_pfs"] != "True" or s["responder_20pct"] == "":
            continue
        t, ev = float(s["pfs_days"]), s["pfs_event"] == "True"
        if t <= day:
            continue  # progressed or censored before the landmark
        resp = s["time_to_responder_20pct_days"] != "" and float(s["time_to_responder_20pct_days"]) <= day
        groups[resp][0].append(t - day)
        groups[resp][1].append(ev)

    def cd(times, events):
        times, events = np.array(times), np.array(events)
        return CensoredData.right_censored(times, ~events)

    res = logrank(cd(*groups[True]), cd(*groups[False]))
    assert land["logrank"]["p_value"] == pytest.approx(res.pvalue, rel=1e-6)
    assert land["groups"]["responder"]["n"] == len(groups[True][0])


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.srcs: list[str] = []

    def handle_data(self, data):
        self.text.append(data)

    def handle_starttag(self, tag, attrs):
        self.srcs += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.mark.slow
def test_report_is_self_contained_and_names_everyone(demo_run):
    _, out = demo_run
    html = (out / "report.html").read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(html)
    text = " ".join(parser.text)
    for sid in sorted({r["subject_id"] for r in rows(DEMO / "manifest.csv")}):
        assert sid in text
    assert not [s for s in parser.srcs if s.startswith(("http:", "https:", "//"))]
    assert "data:image/png;base64" in html
    assert "guarantee-time" in text


@pytest.mark.slow
def test_results_do_not_depend_on_jobs_or_row_order(demo_run, tmp_path):
    _, out = demo_run
    shuffled = tmp_path / "demo"
    shutil.copytree(DEMO, shuffled)
    lines = (shuffled / "manifest.csv").read_text().splitlines()
    rng = np.random.default_rng(7)
    body = lines[1:]
    rng.shuffle(body)
    (shuffled / "manifest.csv").write_text("\n".join([lines[0], *body]) + "\n")
    out2 = tmp_path / "out"
    code = main(["run", str(shuffled / "manifest.csv"), "--out", str(out2), "--pfs",
                 str(shuffled / "pfs.csv"), "--jobs", "1", "--quiet", "--no-qc"])
    assert code == EXIT_PARTIAL
    for name in TABLES:
        a = (out / name).read_text().replace(str(DEMO), "<root>")
        b = (out2 / name).read_text().replace(str(shuffled), "<root>")
        assert a == b, name
    ca = json.loads((out / "cohort.json").read_text())
    cb = json.loads((out2 / "cohort.json").read_text())
    ca.pop("pfs_table"), cb.pop("pfs_table")
    assert ca == cb


def test_invalid_manifest_stops_before_any_work(tmp_path, capsys):
    man = tmp_path / "m.csv"
    man.write_text("subject_id,timepoint,days_from_baseline,mask_path\nA,b,0,nope.nii.gz\n")
    code = main(["run", str(man), "--out", str(tmp_path / "out")])
    assert code == EXIT_INPUT_ERROR
    assert "nope.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_report_command_rebuilds_from_the_tables(demo_run, tmp_path, capsys):
    _, out = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "report.html").unlink()
    shutil.rmtree(copy / "figures" / "qc")
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.html").is_file() and (copy / "figures" / "waterfall.png").is_file()


@pytest.mark.slow
def test_landmark_km_median_agrees_with_scipy(demo_run):
    """The responders' landmark KM median, recomputed with scipy.stats.ecdf (independent of
    statsmodels): the first time the survival function drops to 0.5 or below."""
    from scipy.stats import CensoredData, ecdf

    _, out = demo_run
    land = json.loads((out / "cohort.json").read_text())["pfs"]["landmark"]
    day = land["landmark_days"]
    times, censored = [], []
    for s in rows(out / "subjects.csv"):
        if s["status"] != "ok" or s["has_pfs"] != "True" or float(s["pfs_days"]) <= day:
            continue
        t20 = s["time_to_responder_20pct_days"]
        if s["responder_20pct"] == "True" and t20 != "" and float(t20) <= day:
            times.append(float(s["pfs_days"]) - day)
            censored.append(s["pfs_event"] != "True")
    sf = ecdf(CensoredData.right_censored(np.array(times), np.array(censored))).sf
    below = sf.quantiles[sf.probabilities <= 0.5]
    expected = float(below[0]) if len(below) else None
    assert land["groups"]["responder"]["median_days"] == pytest.approx(expected)


@pytest.mark.slow
def test_a_criteria_file_is_hashed_and_its_fields_recorded(tmp_path):
    """RunConfig with a TOML path: the file is an input of the run (hashed in provenance) and
    the criteria it defines are the ones recorded and applied."""
    import hashlib

    import cnsvol

    toml = tmp_path / "strict.toml"
    toml.write_text('extends = "lin2009"\nresponse_decrease_pct = 30\n')
    config = cnsvol.RunConfig(toml, qc=False)
    assert config.criteria_file == toml and config.criteria.name == "strict"
    out = tmp_path / "out"
    plans = cnsvol.read_manifest(DEMO / "manifest.csv").plans[:3]
    cnsvol.run_cohort(plans, out, config, jobs=1)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["inputs"][str(toml)] == hashlib.sha256(toml.read_bytes()).hexdigest()
    assert prov["criteria"]["response_decrease_pct"] == 30
    assert prov["parameters"]["criteria_file"] == str(toml)
    assert cnsvol.read_results(out).criteria == config.criteria


def test_a_failed_warm_up_is_noted_in_the_run_log(tmp_path, monkeypatch):
    """The run process's warm-up (loading the figure modules while workers compute) never
    hides a failure: the run goes on and run.log says what failed."""
    import cnsvol.report.style as style
    from cnsvol.batch.run import _WarmUp

    def broken():
        raise RuntimeError("no fonts here")

    monkeypatch.setattr(style, "warm_up", broken)
    log_path = tmp_path / "run.log"
    from cnsvol.batch.runlog import RunLog

    log = RunLog(log_path)
    warm = _WarmUp()
    warm.start()
    warm.finish(log)
    log.close()
    text = log_path.read_text()
    assert "warm-up failed (RuntimeError: no fonts here)" in text


def test_out_that_is_a_file_is_refused_with_the_fix(tmp_path, capsys):
    target = tmp_path / "results.csv"
    target.write_text("keep me\n")
    code = main(["run", str(DEMO / "manifest.csv"), "--out", str(target), "--jobs", "1"])
    assert code == EXIT_INPUT_ERROR
    err = capsys.readouterr().err
    assert str(target) in err and "is a file, not a folder" in err and "Fix:" in err
    assert target.read_text() == "keep me\n"
