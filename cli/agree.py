"""``cnsvol agree``: two sources of masks for one cohort, compared up to the cohort results."""

from __future__ import annotations

import argparse
from typing import Any

from .options import (
    EXIT_OK, EXIT_PARTIAL, UNITS, add_criteria_option, add_mask_options, add_register_options,
    measure_options,
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "agree",
        help="compare two sources of masks (reader vs model, reader vs reader) for one cohort",
        description=(
            "Run two manifests that list the same subjects and timepoints with masks from two "
            "sources, with identical parameters, and write their agreement: per scan and "
            "label (volumes, Dice, voxel and lesion detection), per follow-up (percent change "
            "and category side by side) and for the cohort (Bland-Altman, ICC, kappa, "
            "McNemar, responder and objective response rates with exact CIs, PFS under each "
            "source), with a report."),
        epilog=UNITS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--reference", required=True, metavar="MANIFEST",
                   help="manifest of the reference source (e.g. the reader's masks)")
    p.add_argument("--test", required=True, metavar="MANIFEST",
                   help="manifest of the test source (e.g. the model's masks)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="results folder: agreement_scans.csv, agreement_timepoints.csv, "
                   "agreement.json, agreement.html; each source's run in reference/ and test/")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes for each run (default: the CPUs available)")
    p.add_argument("--force", action="store_true", help="recompute every subject")
    p.add_argument("--skip-missing", action="store_true",
                   help="report subjects whose files are missing as failed instead of stopping")
    p.add_argument("--no-qc", action="store_true", help="do not draw per-subject QC pictures")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    from .run import _add_pfs_options

    _add_pfs_options(p)
    add_criteria_option(p)
    add_mask_options(p)
    add_register_options(p, "the manifests' image_path")
    p.set_defaults(func=command)
    return p


def command(args: argparse.Namespace) -> tuple[str, int]:
    from cnsvol import RunConfig
    from cnsvol.agreement import agree

    from .progress import Progress

    from cnsvol import read_manifest

    config = RunConfig(args.criteria, measure_options(args), qc=not args.no_qc)
    reference, test = (read_manifest(m, skip_missing=args.skip_missing, delimiter=args.delimiter,
                                     decimal=args.decimal) for m in (args.reference, args.test))
    from .run import pfs_from_args

    pfs = pfs_from_args(args, "agree")
    result = agree(reference, test, args.out, pfs=pfs, config=config,
                   landmark_days=args.landmark_days,
                   jobs=args.jobs, force=args.force,
                   progress=None if args.quiet else Progress())
    s = result.summary
    k, ba = s["category_kappa"], s["volume_bland_altman"]
    failed = int(s["n_scans_not_compared"])
    lines = [
        f"{s['n_subjects']} subject(s), {s['n_scans']} scan(s) compared "
        f"({failed} could not be), {s['n_followups_compared']} follow-up(s) under both sources",
        f"Dice (whole mask) median {_f(s['dice_whole']['median'])}; volume bias "
        f"{_f(ba['bias'])} mm3 (95% limits {_f(ba['loa_lower'])} to {_f(ba['loa_upper'])})",
        f"category kappa {_f(k['kappa'])} (95% CI {_f((k['ci'] or [None])[0])} to "
        f"{_f((k['ci'] or [None, None])[1])}); {sum(not a for a in result.timepoints['category_agrees'])}"
        " follow-up(s) change category",
        *(f"  not evaluated in the {name} run: {sid}: {err}"
          for name, errs in s["not_evaluated"].items() for sid, err in sorted(errs.items())),
        *([f"  {len(s['single_scan_subjects'])} single-scan subject(s): scan rows only"]
          if s["single_scan_subjects"] else []),
        f"results: {result.out_dir}",
        f"report:  {result.report}",
    ]
    partial = failed or any(s["not_evaluated"].values())
    return "\n".join(lines), (EXIT_PARTIAL if partial else EXIT_OK)


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3g}"
