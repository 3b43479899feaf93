"""The drawing conventions shared by every figure: fixed colours and style, figures on their own
Agg canvas, byte-stable files, and the handling of values and text that come from the data.

Drawing never touches matplotlib's global state: figures are :class:`matplotlib.figure.Figure`
objects on the Agg canvas (no pyplot, no backend switch), the style is fixed inside a
``rc_context`` (so a user's matplotlibrc cannot change the output), and files are byte-stable:
the SVG id salt is fixed and no date is written. Text that comes from input files (subject ids,
arms, timepoint labels) is drawn literally (``$`` cannot start mathtext).

Colours are fixed: categories CR/PR/SD/PD/NE always have the same colour, and a lesion track has
the same outline colour in every panel of a QC picture (keyed by its track id).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..response.criteria import Criteria

__all__ = [
    "ARM_COLOURS",
    "CATEGORY_COLOURS",
    "CATEGORY_NAMES",
    "CLAMP_PCT",
    "DPI",
    "KM_COLOURS",
    "arm_colours",
    "category",
    "darker",
    "figure",
    "number",
    "plain",
    "save",
    "short",
    "style",
    "text",
    "threshold_lines",
    "track_colour",
    "warm_up",
]

CATEGORY_COLOURS = {  # Paul Tol's colour-blind safe scheme
    "CR": "#004488",
    "PR": "#6699CC",
    "SD": "#DDAA33",
    "PD": "#BB5566",
    "NE": "#BBBBBB",
}

CATEGORY_NAMES = {
    "CR": "CR (complete response)",
    "PR": "PR (partial response)",
    "SD": "SD (stable disease)",
    "PD": "PD (progressive disease)",
    "NE": "NE (not evaluable)",
}

ARM_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")

UNKNOWN_ARM_COLOUR = "#999999"

KM_COLOURS = {"responder": "#0072B2", "non_responder": "#D55E00"}

TRACK_COLOURS = ("#FF4040", "#33CCFF", "#FFD700", "#66FF66", "#FF66FF", "#FF9933", "#B0A0FF")

LINE_RESPONSE = "#004488"

LINE_PROGRESSION = "#BB5566"

LINE_RESPONDER = "#228833"

DPI = 150

CLAMP_PCT = 100.0  # bars / points above +100% are drawn at the limit, value annotated

_RC = {
    "svg.hashsalt": "cnsvol",  # fixed ids in SVG output: byte-stable files
    "svg.fonttype": "path",  # glyphs as paths: no font needed to view the SVG
    "font.family": "DejaVu Sans",  # ships with matplotlib: same glyphs everywhere
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
    "text.usetex": False,
}


def track_colour(track_id: int) -> str:
    """The outline colour of a lesion track (the same in every panel and every picture)."""
    return TRACK_COLOURS[(int(track_id) - 1) % len(TRACK_COLOURS)]


def threshold_lines(ax: Axes, criteria: Criteria) -> list[Any]:
    """The criteria's reference lines; returns their legend handles."""
    from matplotlib.lines import Line2D

    spec = [
        (-criteria.response_decrease_pct, LINE_RESPONSE, (0, (5, 3)),
         f"\u2212{criteria.response_decrease_pct:g}%: response threshold (PR)"),
        (criteria.progression_increase_pct, LINE_PROGRESSION, (0, (5, 3)),
         f"+{criteria.progression_increase_pct:g}%: progression threshold "
         f"(vs {criteria.progression_reference})"),
        (-criteria.responder_reduction_pct, LINE_RESPONDER, (0, (6, 2, 1, 2)),
         f"\u2212{criteria.responder_reduction_pct:g}%: responder "
         f"(\u2265{criteria.responder_reduction_pct:g}% reduction)"),
    ]
    handles = []
    for y, colour, style, label in spec:
        ax.axhline(y, color=colour, ls=style, lw=1.1, zorder=3)
        handles.append(Line2D([], [], color=colour, ls=style, lw=1.1, label=label))
    return handles


@contextmanager
def style() -> Iterator[None]:
    """A fixed style for drawing and saving, restored afterwards (no global state kept)."""
    import matplotlib as mpl
    import matplotlib.style

    with matplotlib.style.context("default"), mpl.rc_context(_RC):
        yield


def figure(
    width_in: float, height_in: float, dpi: int = DPI, axes: bool = True,
    layout: str | None = None,
) -> tuple[Figure, Axes | None]:
    """A figure on its own Agg canvas (no pyplot, no global figure registry)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig, (fig.add_subplot() if axes else None)


def save(fig: Figure, stem: str | Path, formats: Sequence[str], dpi: int = DPI) -> list[Path]:
    """Write ``<stem>.<fmt>`` for each format, atomically; no dates, so files are byte-stable."""
    stem = Path(stem)
    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        # SVG records a date by default; PNG (Agg) records none.
        meta = {"Date": None} if fmt == "svg" else {}
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta, facecolor="white")
        path = stem.with_name(f"{stem.name}.{fmt}")  # not with_suffix: ids may contain dots
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def arm_colours(arms: Sequence[str]) -> dict[str, str]:
    named = sorted({a for a in arms if a})
    out = {a: ARM_COLOURS[i % len(ARM_COLOURS)] for i, a in enumerate(named)}
    if any(not a for a in arms):
        out[""] = UNKNOWN_ARM_COLOUR
    return out


def plain(value: Any) -> str:
    """Text drawn literally: a ``$`` from an input file must not switch to mathtext."""
    return text(value).replace("$", r"\$")


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def darker(colour: str) -> str:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return "#{:02x}{:02x}{:02x}".format(*(int(255 * 0.7 * c) for c in (r, g, b)))


def warm_up() -> None:
    """Draw a tiny labelled figure in memory (PNG and SVG), loading matplotlib's fonts and
    renderers, so that the first real figure does not pay for it."""
    import io

    with style():
        fig, ax = figure(1.0, 1.0, layout="constrained")
        assert ax is not None
        ax.plot([0, 1], [0, 1])
        ax.set_title("x")
        for fmt in ("png", "svg"):
            fig.savefig(io.BytesIO(), format=fmt)


def number(value: Any) -> float | None:
    """A value of a typed table or result as a float; ``None`` when missing (None, NaN, NA)."""
    if value is None or isinstance(value, bool) or type(value).__name__ == "NAType":
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def text(value: Any) -> str:
    """A value as text; ``""`` when missing (None, NaN, NA)."""
    if value is None or type(value).__name__ == "NAType":
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def category(value: Any) -> str:
    """A best response or category for colouring: ``NE`` when missing or unknown."""
    t = text(value).strip().upper()
    return t if t in CATEGORY_COLOURS else "NE"
