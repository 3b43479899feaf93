"""``cnsvol run``: a whole cohort from a manifest into one results folder
(:func:`cnsvol.run_cohort`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .options import (
    EXIT_OK, EXIT_PARTIAL, UNITS, add_criteria_option, add_mask_options, add_register_options,
    measure_options,
    non_negative, positive,
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="evaluate a whole cohort from a manifest into one results folder",
        description=(
            "Evaluate every subject of MANIFEST (tracking + series), join the PFS records, "
            "compute the cohort statistics and write tables, figures, report.html and "
            "provenance.json into --out. A failed subject is reported and the others go on."
        ),
        epilog=UNITS + "\n\nmanifest columns: subject_id, timepoint, mask_path, "
        "days_from_baseline or scan_date; optional image_path, steroid_dose_mg, neuro_status, "
        "extracns_progression, radiotherapy_end_days. Relative paths are relative to the "
        "manifest's folder.\n"
        "exit codes: 0 every subject succeeded, 1 invalid input (nothing run), the folder in use "
        "by another run, or an I/O error that stopped the run (what was stored is kept), 2 bad "
        "invocation, 3 finished with failed subjects, 130 stopped by Ctrl-C (SIGINT), 143 "
        "stopped by SIGTERM (after either, run the same command again to go on).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", metavar="MANIFEST", help="CSV/TSV manifest, one row per scan")
    p.add_argument("--out", required=True, metavar="DIR", help="results folder (created)")
    _add_pfs_options(p)
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
    where.add_argument("--subject-timeout", type=_seconds_or_none, default=600.0,
                       metavar="SECONDS",
                       help="a subject still running after this long fails with that reason and "
                       "the run goes on (default: 600; 0 = no limit)")
    where.add_argument("--dask-worker-timeout", type=positive, default=300.0,
                       metavar="SECONDS",
                       help="a Dask run with no live worker for this long stops with an error, "
                       "keeping what was computed (> 0; default: 300)")
    p.add_argument("--force", action="store_true",
                   help="recompute every subject, even those stored in --out by an earlier "
                   "run with the same inputs and parameters")
    p.add_argument("--skip-missing", action="store_true",
                   help="report subjects whose files are missing as failed instead of stopping")
    p.add_argument("--no-qc", action="store_true", help="do not draw per-subject QC pictures")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar or progress lines (failures are still listed at "
                   "the end; run.log in --out has a line per subject)")
    add_criteria_option(p)
    add_mask_options(p)
    add_register_options(p, "the manifest's image_path")
    p.set_defaults(func=command)
    return p


def _add_pfs_options(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--delimiter", default=None, metavar="C", type=_delimiter,
                   help="CSV delimiter of the manifest and the PFS table: ',', ';' or tab "
                   "(default: detected from the header)")
    p.add_argument("--decimal", default=".", choices=(".", ","),
                   help="decimal mark of numbers in the manifest and the PFS table "
                   "(default: '.'; ',' reads 409,5 as 409.5, with --delimiter ';' or a "
                   "detected semicolon)")
    p.add_argument("--pfs-tolerance-days", type=non_negative, default=14.0, metavar="N",
                   help="days between an imaging progression and the PFS record that are not a "
                   "discrepancy (pfs_reconciliation.csv; default: 14)")
    p.add_argument("--landmark-days", type=non_negative, default=None, metavar="N",
                   help="landmark for the PFS analysis, days (default: median first "
                   "follow-up day)")


def command(args: argparse.Namespace) -> tuple[str, int]:
    from cnsvol import RunConfig, read_manifest, run_cohort
    from cnsvol.batch.limits import RunLimits

    from .progress import Progress

    config = RunConfig(args.criteria, measure_options(args), qc=not args.no_qc,
                       limits=RunLimits(args.subject_timeout, args.dask_worker_timeout))
    manifest = read_manifest(args.manifest, skip_missing=args.skip_missing,
                             delimiter=args.delimiter, decimal=args.decimal)
    pfs = pfs_from_args(args, "run")
    summary = run_cohort(
        manifest, args.out, config, pfs=pfs, landmark_days=args.landmark_days, jobs=args.jobs,
        scheduler=args.scheduler, dask_local=args.dask_local, force=args.force,
        progress=None if args.quiet else Progress(), command=["cnsvol", *args.argv],
    )
    lines = [
        f"{summary.n_subjects} subject(s), {summary.n_subjects - summary.n_failed} ok, "
        f"{summary.n_failed} failed; criteria {config.criteria.name}",
    ]
    if summary.n_from_earlier_run:
        lines.append(f"{summary.n_from_earlier_run} subject(s) taken from the earlier run "
                     "stored in the folder (same inputs and parameters; --force recomputes)")
    for sid, err in summary.failed.items():
        lines.append(f"  failed {sid}: {err}")
    lines += _registration_lines(summary.out_dir)
    if pfs is not None:
        lines.append(
            f"ids without PFS: {', '.join(summary.ids_without_pfs) or 'none'}; "
            f"PFS ids without masks: {', '.join(summary.ids_without_masks) or 'none'}"
        )
    lines.append(f"results: {summary.out_dir}")
    lines.append(f"report:  {summary.files['report']}")
    return "\n".join(lines), (EXIT_PARTIAL if summary.n_failed else EXIT_OK)


def pfs_from_args(args: argparse.Namespace, command: str) -> Any:
    """The PFS table the PFS options name (``None`` without ``--pfs``), its notes printed as
    warnings of ``command``."""
    if args.pfs is None and args.pfs_tolerance_days != 14.0:
        raise ValueError("--pfs-tolerance-days compares the imaging with a PFS table: give --pfs")
    if not args.pfs:
        return None
    from cnsvol import read_pfs

    pfs = read_pfs(args.pfs, id_col=args.id_col, time_col=args.pfs_time_col,
                   event_col=args.pfs_event_col, arm_col=args.arm_col,
                   time_unit=args.time_unit, delimiter=args.delimiter,
                   decimal=args.decimal, tolerance_days=args.pfs_tolerance_days)
    for note in pfs.notes:
        print(f"cnsvol {command}: warning: {note}", file=sys.stderr)
    return pfs


def _registration_lines(out: Any) -> list[str]:
    """A warning naming the follow-ups whose registration failed (their lesion correspondence
    is unregistered, the subjects still 'ok'), and those matched without an image."""
    from cnsvol.results import read_results

    tps = read_results(out).table("timepoints", columns=["subject_id", "registration"])
    lines = []
    for status, what in (("failed", "registration failed (lesion correspondence unregistered; "
                                     "category from the total volume)"),
                         ("no image", "not registered: no image (scanner coordinates)")):
        ids = sorted(set(tps.loc[tps["registration"] == status, "subject_id"].astype(str)))
        if ids:
            lines.append(f"warning: {what} for {len(ids)} subject(s): "
                         f"{', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}; see the "
                         "report's Registration section")
    return lines


def _seconds_or_none(text: str) -> float | None:
    try:
        value = non_negative(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (0 = no limit)") from None
    return None if value == 0 else value


def _delimiter(text: str) -> str:
    value = {"tab": "\t", "\\t": "\t"}.get(text, text)
    if value not in (",", ";", "\t"):
        raise argparse.ArgumentTypeError(f"must be ',', ';' or tab, got {text!r}")
    return value
