"""``cnsvol``: the command-line front end. Parse, call the library, format, exit.

Exit codes:
    0  success (for ``run``: every subject succeeded)
    1  an input could not be processed (bad mask, manifest, PFS table, criteria file, ...):
       nothing was written; the message on stderr names the file, the problem and the fix
    2  bad invocation (unknown option, missing argument): usage on stderr
    3  ``run`` finished but some subjects failed (listed on stderr, in subjects.csv and the report)
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from cnsvol import __version__
from cnsvol.response.criteria import PRESETS
from cnsvol.io.labelsets import LABEL_PRESETS

from . import formatting as F

EXIT_OK = 0
EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

_UNITS = """\
units: volumes in mm3 (voxel count x voxel volume from the header, float64), coordinates in
RAS+ mm (x to the patient's right, y anterior, z superior), diameters in mm."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnsvol",
        description=(
            "Volumetric response assessment of brain (CNS) lesions on MRI segmentation masks. "
            "Reads NIfTI-1/2 (.nii, .nii.gz), NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd)."
        ),
        epilog=_UNITS + "\n\nexit codes: 0 success, 1 an input could not be processed, "
        "2 bad invocation, 3 run finished with failed subjects.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cnsvol {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when an error occurs"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "volumes",
        help="find and measure the lesions of one or more masks",
        description="Find the lesions (connected components) of each mask and measure them.",
        epilog=_UNITS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("masks", nargs="+", metavar="MASK", help="mask file(s)")
    _add_mask_options(p)
    p.add_argument(
        "--format", choices=("table", "csv", "json"), default="table",
        help="output format (default: table)",
    )
    p.set_defaults(func=_cmd_volumes)

    p = sub.add_parser(
        "compare",
        help="compare a follow-up mask with its baseline",
        description=(
            "Measure the summed lesion volume at baseline and follow-up (each on its own grid), "
            "the change, the >=20%% volumetric reduction flag and the response category."
        ),
        epilog=_UNITS + "\n\npercent change = (follow-up - baseline) / baseline x 100; "
        "undefined (n/a) when the baseline total is 0.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("baseline", metavar="BASELINE", help="baseline mask file")
    p.add_argument("followup", metavar="FOLLOWUP", help="follow-up mask file")
    _add_criteria_option(p)
    _add_mask_options(p)
    p.add_argument(
        "--format", choices=("table", "json"), default="table",
        help="output format (default: table)",
    )
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "track",
        help="evaluate one subject's series of masks (baseline first)",
        description=(
            "Follow every lesion from baseline through each follow-up in world space and "
            "classify each timepoint and the subject (best overall response, >=20%% flag, "
            "time to response and to progression)."
        ),
        epilog=_UNITS + "\n\npercent changes are of the target sum (the lesions the criteria "
        "sum), vs baseline and vs nadir (the smallest earlier sum, baseline included). "
        "--format csv prints the timepoint table, a blank line, then the track table.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("masks", nargs="+", metavar="MASK", help="mask files, baseline first")
    p.add_argument(
        "--days", required=True, type=_float_list, metavar="D0,D1,...",
        help="days from baseline of each mask, e.g. 0,56,112 (needed for confirmation and "
        "times to response/progression)",
    )
    p.add_argument("--timepoints", type=_str_list, metavar="L0,L1,...",
                   help="timepoint labels (default: T0,T1,...)")
    p.add_argument("--steroid-dose-mg", type=_float_list, metavar="S0,S1,...",
                   help="dexamethasone-equivalent dose per timepoint, mg/day (optional; "
                   "leave an entry empty when not recorded)")
    p.add_argument("--neuro-status", type=_str_list, metavar="N0,N1,...",
                   help="improved, stable or worse per timepoint (optional)")
    p.add_argument("--extracns-progression", type=_str_list, metavar="E0,E1,...",
                   help="yes or no per timepoint (optional)")
    _add_criteria_option(p)
    _add_mask_options(p)
    p.add_argument(
        "--format", choices=("table", "json", "csv"), default="table",
        help="output format (default: table)",
    )
    p.set_defaults(func=_cmd_track)

    p = sub.add_parser(
        "run",
        help="evaluate a whole cohort from a manifest into one results folder",
        description=(
            "Evaluate every subject of MANIFEST (tracking + series), join the PFS records, "
            "compute the cohort statistics and write tables, figures, report.html and "
            "provenance.json into --out. A failed subject is reported and the others go on."
        ),
        epilog=_UNITS + "\n\nmanifest columns: subject_id, timepoint, mask_path, "
        "days_from_baseline or scan_date; optional image_path, steroid_dose_mg, neuro_status, "
        "extracns_progression. Relative paths are relative to the manifest's folder.\n"
        "exit codes: 0 every subject succeeded, 1 invalid input (nothing run), 2 bad "
        "invocation, 3 finished with failed subjects.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", metavar="MANIFEST", help="CSV/TSV manifest, one row per scan")
    p.add_argument("--out", required=True, metavar="DIR", help="results folder (created)")
    p.add_argument("--pfs", metavar="FILE", help="PFS table: CSV, TSV, .xlsx or Parquet")
    p.add_argument("--id-col", default="subject_id", help="PFS id column (default: subject_id)")
    p.add_argument("--pfs-time-col", default="pfs_days",
                   help="PFS time column (default: pfs_days)")
    p.add_argument("--pfs-event-col", default="pfs_event",
                   help="PFS event column: 1/0, true/false, progressed/censored... "
                   "(default: pfs_event)")
    p.add_argument("--arm-col", default="arm", help="treatment arm column (default: arm)")
    p.add_argument("--time-unit", choices=("days", "weeks", "months"), default="days",
                   help="unit of the PFS time column (default: days; months = 30.4375 days)")
    p.add_argument("--landmark-days", type=_non_negative, default=None, metavar="N",
                   help="landmark for the PFS analysis, days (default: median first "
                   "follow-up day)")
    where = p.add_argument_group("where subjects run")
    where.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="local worker processes (default: number of cores; 1 = this "
                       "process)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                       help="submit subjects to this Dask scheduler (needs cnsvol[dask]; "
                       "masks and --out must be reachable from its workers)")
    where.add_argument("--dask-local", type=int, metavar="N", default=None,
                       help="start a local Dask cluster of N workers for the run "
                       "(needs cnsvol[dask])")
    p.add_argument("--force", action="store_true",
                   help="recompute every subject, even those stored in --out by an earlier "
                   "run with the same inputs and parameters")
    p.add_argument("--skip-missing", action="store_true",
                   help="report subjects whose files are missing as failed instead of stopping")
    p.add_argument("--no-qc", action="store_true", help="do not draw per-subject QC pictures")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar or progress lines (failures are still listed at "
                   "the end; run.log in --out has a line per subject)")
    _add_criteria_option(p)
    _add_mask_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "report",
        help="rebuild the figures and report.html of a results folder from its tables",
        description="Rebuild figures/ and report.html in DIR from the tables written by run.",
    )
    p.add_argument("folder", metavar="DIR", help="a results folder written by cnsvol run")
    p.set_defaults(func=_cmd_report)

    from cnsvol_cli import manifest_cmd

    manifest_cmd.add_parser(sub)
    return parser


def _float_list(text: str) -> list[float | None]:
    out: list[float | None] = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(float(part) if part else None)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {part!r} in {text!r}") from None
    return out


def _str_list(text: str) -> list[str | None]:
    return [p.strip() or None for p in text.split(",")]


def _add_criteria_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--criteria", default="lin2009", metavar="PRESET|FILE.toml",
        help=f"response criteria: {', '.join(PRESETS)}, or a TOML criteria file "
        "(default: lin2009)",
    )


def _add_mask_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--labels", default=None, metavar="SPEC",
        help="label values that form the lesion region: comma-separated values (e.g. 1,3) or a "
        f"preset ({', '.join(LABEL_PRESETS)}); default: every non-zero label",
    )
    p.add_argument(
        "--connectivity", type=int, choices=(6, 18, 26), default=26,
        help="voxel connectivity of a lesion: 6 (faces), 18 (+edges), 26 (+corners); "
        "default: 26",
    )
    p.add_argument(
        "--min-volume-mm3", type=_non_negative, default=0.0, metavar="X",
        help="drop lesions smaller than X mm3 (default: 0, keep all)",
    )
    p.add_argument(
        "--threshold", type=float, default=0.5, metavar="T",
        help="foreground threshold for fractional float masks, value >= T (default: 0.5); "
        "float masks holding whole-number labels are rounded instead",
    )
    p.add_argument(
        "--instance-labels", action="store_true",
        help="the mask is already instance-labelled: each label value is one lesion",
    )
    p.add_argument(
        "--max-gib", type=float, default=4.0, metavar="G",
        help="refuse a mask whose decoded data would exceed G GiB (default: 4)",
    )


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _options(args: argparse.Namespace) -> Any:
    from cnsvol.pipeline import MeasureOptions

    return MeasureOptions(
        labels=args.labels,
        threshold=args.threshold,
        connectivity=args.connectivity,
        min_volume_mm3=args.min_volume_mm3,
        instance_labels=args.instance_labels,
        max_bytes=int(args.max_gib * 1024**3),
    )


def _cmd_volumes(args: argparse.Namespace) -> str:
    from cnsvol.lesions import LESION_COLUMNS
    from cnsvol.pipeline import measure

    opts = _options(args)
    sets = [measure(path, opts) for path in args.masks]
    if args.format == "json":
        docs = [ls.to_dict() for ls in sets]
        return F.to_json(docs[0] if len(docs) == 1 else docs)
    if args.format == "csv":
        rows = [
            {"path": ls.mask.name, **les.to_row()} for ls in sets for les in ls.lesions
        ]
        return F.to_csv(rows, ["path", *(c.name for c in LESION_COLUMNS)]).rstrip("\n")
    blocks = []
    for ls in sets:
        m = ls.mask
        sx, sy, sz = m.spacing_mm
        head = [
            m.name,
            f"  grid {'x'.join(map(str, m.shape))}, spacing {sx:.3f} x {sy:.3f} x {sz:.3f} mm, "
            f"voxel {m.voxel_volume_mm3:.4f} mm3, {m.source_format}, {m.storage} storage",
            f"  {ls.lesion_count} lesion(s), total {ls.total_volume_mm3:.2f} mm3 "
            f"({ls.connectivity or 'instance'}-connected)",
        ]
        head += [f"  note: {n}" for n in (*m.notes, *ls.notes)]
        rows = [
            (
                les.lesion_id, les.voxel_count, les.volume_mm3, les.centroid_ras_mm,
                les.longest_diameter_mm, les.max_diameter_3d_mm, les.measurable,
            )
            for les in ls.lesions
        ]
        header = (
            "lesion", "voxels", "volume_mm3", "centroid_ras_mm (x, y, z)",
            "longest_axial_mm", "max_3d_mm", "measurable",
        )
        blocks.append("\n".join(head + ([F.table(rows, header)] if rows else [])))
    return "\n\n".join(blocks)


def _cmd_compare(args: argparse.Namespace) -> str:
    from cnsvol.pipeline import compare

    result = compare(args.baseline, args.followup, criteria=args.criteria, options=_options(args))
    if args.format == "json":
        return F.to_json(result.to_dict())
    d = result.to_dict()
    b, f = d["baseline"], d["followup"]
    grids = (
        "same grid" if d["same_grid"] else "different grids (each measured on its own grid)"
    )
    lines = [
        f"criteria          {result.criteria.name}: {result.criteria.title}",
        f"baseline          {b['path']}",
        f"                  {b['total_volume_mm3']:.2f} mm3 in {b['lesion_count']} lesion(s), "
        f"{b['measurable_lesion_count']} measurable",
        f"follow-up         {f['path']}",
        f"                  {f['total_volume_mm3']:.2f} mm3 in {f['lesion_count']} lesion(s)",
        f"change            {d['absolute_change_mm3']:+.2f} mm3, {F.pct(d['percent_change'])}",
        f">=20% reduction   {F.fmt(d['responder_20pct'])}",
        f"category          {d['category']}: {d['reason']}",
        f"grids             {grids}",
        "",
        "tracks",
        F.table(
            [
                (
                    t["track_id"], t["status"], " ".join(map(str, t["baseline_lesion_ids"])),
                    " ".join(map(str, t["followup_lesion_ids"])), t["baseline_volume_mm3"],
                    t["followup_volume_mm3"], F.pct(t["percent_change"]),
                    t["within_measurement_error"], t["is_target"],
                )
                for t in d["tracks"]
            ],
            ("track", "status", "baseline ids", "follow-up ids", "baseline_mm3",
             "follow-up_mm3", "change", "within error", "target"),
        ),
    ]
    return "\n".join(lines)


def _clinical_records(args: argparse.Namespace, n: int) -> list[dict[str, Any]] | None:
    columns = {
        "steroid_dose_mg": args.steroid_dose_mg,
        "neuro_status": args.neuro_status,
        "extracns_progression": args.extracns_progression,
    }
    if all(v is None for v in columns.values()):
        return None
    records: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, values in columns.items():
        if values is None:
            continue
        if len(values) != n:
            raise ValueError(f"--{key.replace('_', '-')} has {len(values)} values for {n} masks")
        for rec, value in zip(records, values):
            if key == "extracns_progression" and value is not None:
                if value.lower() not in ("yes", "no", "true", "false", "1", "0"):
                    raise ValueError(f"--extracns-progression: expected yes or no, got {value!r}")
                value = value.lower() in ("yes", "true", "1")
            rec[key] = value
    return records


def _cmd_track(args: argparse.Namespace) -> str:
    from cnsvol.pipeline import evaluate_series

    if len(args.masks) < 2:
        raise ValueError("track needs at least two masks: the baseline and a follow-up")
    if len(args.days) != len(args.masks):
        raise ValueError(f"--days has {len(args.days)} values for {len(args.masks)} masks")
    result = evaluate_series(
        args.masks, args.days, timepoints=args.timepoints,
        clinical=_clinical_records(args, len(args.masks)),
        criteria=args.criteria, options=_options(args),
    )
    if args.format == "json":
        return F.to_json(result.to_dict())
    tp_cols = [
        "timepoint", "days_from_baseline", "total_volume_mm3", "target_volume_mm3",
        "percent_change_vs_baseline", "percent_change_vs_nadir", "new_lesions", "category",
        "confirmed", "within_measurement_error", "reason",
    ]
    tr_cols = [
        "track_id", "timepoint", "days_from_baseline", "lesion_ids", "status", "volume_mm3",
        "percent_change_vs_baseline", "within_measurement_error", "is_target",
    ]
    tps = [t.to_dict() for t in result.timepoints]
    trs = [r.to_dict() for r in result.tracks]
    for r in trs:
        r["lesion_ids"] = " ".join(map(str, r["lesion_ids"]))
    if args.format == "csv":
        return F.to_csv(tps, tp_cols) + "\n" + F.to_csv(trs, tr_cols).rstrip("\n")
    sub = result.subject
    lines = [
        f"criteria   {result.criteria.name}: {result.criteria.title}",
        "",
        "timepoints",
        F.table(
            [(t["timepoint"], t["days_from_baseline"], t["total_volume_mm3"],
              t["target_volume_mm3"], F.pct(t["percent_change_vs_baseline"]) if t["timepoint"]
              != tps[0]["timepoint"] else "", F.pct(t["percent_change_vs_nadir"])
              if t["percent_change_vs_nadir"] is not None else "", t["new_lesions"],
              t["category"]) for t in tps],
            ("timepoint", "day", "total_mm3", "target_mm3", "vs baseline", "vs nadir", "new",
             "category"),
        ),
        "",
        *[f"  {t['timepoint']}: {t['reason']}" for t in tps[1:]],
        "",
        "tracks",
        F.table(
            [(r["track_id"], r["timepoint"], r["lesion_ids"], r["status"], r["volume_mm3"],
              F.pct(r["percent_change_vs_baseline"]) if r["percent_change_vs_baseline"]
              is not None else "n/a", r["within_measurement_error"], r["is_target"])
             for r in trs],
            ("track", "timepoint", "lesions", "status", "volume_mm3", "vs baseline",
             "within error", "target"),
        ),
        "",
        f"best overall response   {sub.best_response}",
        f"best percent change     {F.pct(sub.best_percent_change)}",
        f">=20% reduction         {F.fmt(sub.responder_20pct)}",
        f"objective response      {F.fmt(sub.objective_response)}",
        f"time to response        {F.days(sub.time_to_response_days)}",
        f"progression             {F.days(sub.progression_days)}",
    ]
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace) -> tuple[str, int]:
    from pathlib import Path

    from cnsvol.batch.run import RunConfig, run_cohort
    from cnsvol.cohort.pfs import read_pfs
    from cnsvol.response.criteria import get_criteria
    from cnsvol.cohort.manifest import read_manifest

    from cnsvol.batch.executors import make_executor

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.dask_local is not None and args.dask_local < 1:
        raise ValueError(f"--dask-local must be >= 1, got {args.dask_local}")
    criteria = get_criteria(args.criteria)
    plans = read_manifest(args.manifest, skip_missing=args.skip_missing)
    pfs = None
    if args.pfs:
        pfs = read_pfs(
            args.pfs, id_col=args.id_col, time_col=args.pfs_time_col,
            event_col=args.pfs_event_col, arm_col=args.arm_col, time_unit=args.time_unit,
        )
        for note in pfs.notes:
            print(f"cnsvol run: warning: {note}", file=sys.stderr)
    inputs = [Path(args.manifest)] + ([Path(args.pfs)] if args.pfs else [])
    if str(args.criteria).lower().endswith(".toml"):
        inputs.append(Path(args.criteria))

    from cnsvol_cli.progress import Progress

    executor = make_executor(args.jobs, args.scheduler, args.dask_local)
    try:
        summary = run_cohort(
            plans, args.out, RunConfig(criteria, _options(args), qc=not args.no_qc),
            pfs=pfs, landmark_days=args.landmark_days, executor=executor, force=args.force,
            inputs=inputs,
            parameters={"command": ["cnsvol", *sys.argv[1:]], **{
                k: v for k, v in vars(args).items() if k not in ("func", "force")
            }},
            progress=None if args.quiet else Progress(),
        )
    finally:
        executor.close()
    lines = [
        f"{summary.n_subjects} subject(s), {summary.n_subjects - summary.n_failed} ok, "
        f"{summary.n_failed} failed; criteria {criteria.name}",
    ]
    if summary.n_from_earlier_run:
        lines.append(f"{summary.n_from_earlier_run} subject(s) taken from the earlier run "
                     "stored in the folder (same inputs and parameters; --force recomputes)")
    for sid, err in summary.failed.items():
        lines.append(f"  failed {sid}: {err}")
    if pfs is not None:
        lines.append(
            f"ids without PFS: {', '.join(summary.ids_without_pfs) or 'none'}; "
            f"PFS ids without masks: {', '.join(summary.ids_without_masks) or 'none'}"
        )
    lines.append(f"results: {summary.out_dir}")
    lines.append(f"report:  {summary.files['report']}")
    return "\n".join(lines), (EXIT_PARTIAL if summary.n_failed else EXIT_OK)


def _cmd_report(args: argparse.Namespace) -> str:
    from pathlib import Path

    from cnsvol.report.html import build_report, write_cohort_figures

    folder = Path(args.folder)
    if not (folder / "subjects.csv").is_file():
        raise ValueError(f"{folder}: no subjects.csv here; give a folder written by cnsvol run")
    write_cohort_figures(folder)
    return f"report: {build_report(folder)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (tests call this in-process)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 0 for --help/--version and 2 for usage errors
        return int(exc.code or 0)
    from cnsvol.errors import CnsvolError
    from cnsvol.batch.executors import DaskNotInstalled

    try:
        out = args.func(args)
    except (CnsvolError, OSError, ValueError, DaskNotInstalled) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"cnsvol {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    code = EXIT_OK
    if isinstance(out, tuple):
        out, code = out
    print(out)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
