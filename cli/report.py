"""``cnsvol report``: rebuild the figures and ``report.html`` of a results folder
(:func:`cnsvol.rebuild_report`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="rebuild the figures and report.html of a results folder from its tables",
        description="Rebuild figures/ and report.html in DIR from the tables written by run.",
    )
    p.add_argument("folder", metavar="DIR", help="a results folder written by cnsvol run")
    p.set_defaults(func=command)
    return p


def command(args: argparse.Namespace) -> str:
    from cnsvol import rebuild_report

    return f"report: {rebuild_report(args.folder)}"
