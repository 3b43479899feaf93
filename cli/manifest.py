"""``cnsvol manifest``: write a cohort manifest from a BIDS derivatives tree
(:func:`cnsvol.bids_manifest`, :func:`cnsvol.write_manifest`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .options import EXIT_OK

_EPILOG = """\
searched: sub-<label>/ses-<label>/anat/*_mask.nii[.gz] and *_dseg.nii[.gz]; subjects without
ses-* folders: sub-<label>/anat/ (one timepoint). subject_id and timepoint are the sub-/ses-
labels. Dates: acq_time of sub-<label>/sub-<label>_sessions.tsv (in --bids, else in --raw).
A session with several candidate masks is an error naming the option that picks one.
exit codes: 0 written, 1 invalid input (nothing written), 2 bad invocation."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``manifest`` subcommand to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "manifest",
        help="write a cohort manifest from a BIDS derivatives tree",
        description=(
            "Find one lesion mask per subject x session in a BIDS derivatives tree, date the "
            "sessions from sessions.tsv and write a manifest CSV for cnsvol run (paths relative "
            "to the manifest's folder)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bids", required=True, metavar="DIR",
                   help="BIDS derivatives folder holding sub-*/ folders")
    p.add_argument("--out", required=True, metavar="MANIFEST.csv", help="manifest to write")
    p.add_argument("--raw", metavar="DIR",
                   help="raw BIDS folder: fills image_path with the session's scan, and is "
                   "searched for sessions.tsv files missing from --bids")
    p.add_argument("--desc", metavar="VALUE", help="keep masks with desc-VALUE (e.g. tumor)")
    p.add_argument("--label", metavar="VALUE", help="keep masks with label-VALUE (e.g. ET)")
    p.add_argument("--space", metavar="VALUE", help="keep masks with space-VALUE")
    p.add_argument("--suffix", choices=("mask", "dseg"), help="keep only _mask or _dseg files")
    p.add_argument("--entity", action="append", default=[], type=_entity, metavar="KEY=VALUE",
                   help="keep masks with KEY-VALUE in their name (any entity; repeatable)")
    p.add_argument("--image-suffix", default="T1w,FLAIR,T2w", metavar="S1,S2,...",
                   help="raw image suffixes, in order of preference (default: T1w,FLAIR,T2w)")
    p.add_argument("--allow-undated", action="store_true",
                   help="write subjects whose sessions lack acq_time, in session-label order "
                   "with empty dates to fill in by hand (default: refuse)")
    p.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    p.set_defaults(func=command)
    return p


def _entity(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. run=1), got {text!r}")
    return key.strip(), value.strip()


def command(args: argparse.Namespace) -> tuple[str, int]:
    """Build and write the manifest; returns ``(summary, exit code)``, raises on bad input.

    Warnings are printed to stderr as they are found.
    """
    from cnsvol import bids_manifest, write_manifest

    def warn(message: str) -> None:
        print(f"cnsvol manifest: warning: {message}", file=sys.stderr)

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ValueError(
            f"{out}: already exists (it may hold hand-edited columns). Fix: choose another "
            "--out, or add --force to overwrite it"
        )
    suffixes = tuple(s.strip() for s in str(args.image_suffix).split(",") if s.strip())
    if not suffixes:
        raise ValueError("--image-suffix: give at least one suffix, e.g. T1w")
    rows = bids_manifest(
        args.bids, desc=args.desc, label=args.label, space=args.space, suffix=args.suffix,
        entities=dict(args.entity or []), raw=args.raw, image_suffixes=suffixes,
        allow_undated=args.allow_undated, on_warning=warn,
    )
    path = write_manifest(rows, args.out, overwrite=args.force)
    subjects = {r["subject_id"] for r in rows}
    dated = sum(bool(r["scan_date"]) for r in rows)
    images = sum(r["image_path"] is not None for r in rows)
    undated = [r for r in rows if not r["scan_date"] and r["days_from_baseline"] == ""]
    lines = [
        f"wrote {path}: {len(subjects)} subject(s), {len(rows)} scan(s), {dated} dated from "
        f"sessions.tsv" + (f", {images} with image_path" if args.raw else ""),
    ]
    if undated:
        lines.append(f"fill scan_date or days_from_baseline in {len(undated)} row(s), then:")
    else:
        lines.append("next:")
    lines.append(f"  cnsvol run {path} --out RESULTS_DIR")
    return "\n".join(lines), EXIT_OK
