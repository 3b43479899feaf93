"""Screenshot a results folder's report.html in headless Chromium and check its figures.

    python tools/report_screenshot.py RESULTS_DIR [--out report.png] [--height 12000]

Writes a full-page PNG of the report (to look at before a change to the report is called done)
and checks every cohort figure in RESULTS_DIR/figures: nothing drawn touches the picture's edge
(a clipped title, legend or axis label would). Exit 1 when a figure fails the check, 2 when no
Chromium is found.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def touches_edge(png: Path, margin: int = 2) -> list[str]:
    """The edges of ``png`` on which something other than the background is drawn."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"), dtype=np.int16)
    background = int(np.median(np.r_[img[0], img[-1], img[:, 0], img[:, -1]]))
    ink = np.abs(img - background) > 40
    edges = {"top": ink[:margin], "bottom": ink[-margin:], "left": ink[:, :margin],
             "right": ink[:, -margin:]}
    return [name for name, band in edges.items() if band.any()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path("report.png"))
    parser.add_argument("--height", type=int, default=12000)
    parser.add_argument("--page", default="report.html",
                        help="the page of the folder to screenshot (e.g. agreement.html)")
    args = parser.parse_args()
    bad = {png.name: edges for png in sorted((args.results / "figures").glob("*.png"))
           if (edges := touches_edge(png))}
    for name, edges in bad.items():
        print(f"{name}: drawn up to the {', '.join(edges)} edge (clipped?)")
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    if browser is None:
        print("no Chromium found: the figures were checked, no screenshot taken")
        return 2 if not bad else 1
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size=1280,{args.height}",
                    f"--screenshot={args.out.resolve()}",
                    (args.results / args.page).resolve().as_uri()],
                   check=True, capture_output=True)
    print(f"screenshot: {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
