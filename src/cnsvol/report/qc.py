"""Per-subject QC pictures: slices through the largest lesions at every timepoint, outlines
coloured by track, over the MRI when it is on the mask's grid (else over the mask)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CnsvolError
from ..io.read import read_image
from .orient import display_point, display_slice, layout, plane
from .style import QC_DPI, darker, figure, plain, save, short, style, track_colour

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..response.evaluation import SeriesResult

__all__ = ["qc_picture"]


def qc_picture(
    series: SeriesResult,
    images: Sequence[str | Path | None] | None,
    stem: str | Path,
    max_lesions: int = 3,
    *,
    title: str | None = None,
) -> list[Path]:
    """Slices through the largest lesions at every timepoint, outlines coloured by track.

    Rows are the largest baseline tracks (at most ``max_lesions``; the largest tracks at any
    timepoint when the baseline has no lesion), columns the timepoints. Each panel is the axial
    slice (perpendicular to :func:`cnsvol.geometry.axial_axis` of that scan's grid) through the
    track's centroid; where the track is absent, the slice nearest the world position of its
    last (else next) centroid. The background is the MRI image when one is given on the same
    grid as the mask, else the mask in grey (the panel title says why). Every lesion in the
    panel is outlined in its track's colour (:func:`track_colour`); the row's track is drawn
    thicker and frames the panel.

    Orientation (radiological convention): anterior up, the patient's right on the viewer's
    left; the flips are derived from each scan's affine, so LPS- or RAS-stored grids look alike.

    Writes ``<stem>.png`` only (an SVG of images is heavy) and returns ``[png]``.
    """
    labels = [tp.timepoint for tp in series.timepoints]
    n_t = len(labels)
    imgs = list(images) if images is not None else [None] * n_t
    if len(imgs) != n_t:
        raise ValueError(f"got {len(imgs)} images for {n_t} timepoints: give one (or None) per timepoint")
    index = {lab: t for t, lab in enumerate(labels)}
    states: dict[int, dict[int, Any]] = {}  # track id -> timepoint index -> TrackRow
    for r in series.tracks:
        states.setdefault(r.track_id, {})[index[r.timepoint]] = r
    lesion_track = [dict() for _ in range(n_t)]  # per timepoint: lesion id -> track id
    for tid, per_t in states.items():
        for t, r in per_t.items():
            for lid in r.lesion_ids:
                lesion_track[t][lid] = tid
    chosen = _qc_tracks(states, max_lesions)
    positions = {tid: _track_positions(series, states[tid]) for tid in chosen}
    half_mm = {tid: _half_window_mm(series, states[tid]) for tid in chosen}

    n_rows = max(len(chosen), 1)
    with style():
        fig = figure(2.35 * n_t + 0.5, 2.75 * n_rows + 1.0, dpi=QC_DPI, axes=False)[0]
        axes = fig.subplots(n_rows, n_t, squeeze=False)
        fig.subplots_adjust(left=0.5 / (2.35 * n_t + 0.5), right=0.99, wspace=0.06,
                            top=1 - 0.75 / (2.75 * n_rows + 1.0),
                            bottom=0.45 / (2.75 * n_rows + 1.0), hspace=0.42)
        for t in range(n_t):  # one column at a time: one image volume in memory at once
            background, note = _qc_background(series.lesion_sets[t], imgs[t])
            for row in range(n_rows):
                tid = chosen[row] if chosen else None
                _qc_panel(axes[row][t], series, t, tid, states.get(tid, {}) if tid else {},
                          positions.get(tid), half_mm.get(tid, 30.0), lesion_track[t],
                          background, note)
            del background
        for row in range(n_rows):
            tid = chosen[row] if chosen else None
            ax0 = axes[row][0]
            ax0.set_ylabel("no lesion" if tid is None else f"track {tid}", fontsize=9,
                           color="black" if tid is None else darker(track_colour(tid)),
                           fontweight="bold")
        head = "QC: " + plain(short(title, 60)) if title else "QC"
        fig.suptitle(
            f"{head} \u2014 {series.criteria.name}; axial slices, radiological view "
            "(patient's right on the left, anterior up)",
            x=0.01, ha="left", fontsize=9,
        )
        fig.text(0.01, 0.01, "Outline colour = lesion track (same colour at every timepoint); "
                 "thick outline and frame = the row's track; mm\u00b3 = track volume.",
                 fontsize=7, color="#444444")
        return save(fig, stem, ("png",), dpi=QC_DPI)


def _qc_tracks(states: dict[int, dict[int, Any]], max_lesions: int) -> list[int]:
    """Largest baseline tracks; if the baseline is empty, the largest tracks at any time."""
    base = [(r.volume_mm3, tid) for tid, per_t in states.items()
            for t, r in per_t.items() if t == 0 and r.lesion_ids]
    if not base:
        base = [(max(r.volume_mm3 for r in per_t.values()), tid)
                for tid, per_t in states.items() if any(r.lesion_ids for r in per_t.values())]
    base.sort(key=lambda vt: (-vt[0], vt[1]))
    return [tid for _, tid in base[: max(int(max_lesions), 0)]]


def _track_centroid(series: SeriesResult, t: int, lesion_ids: Sequence[int]) -> np.ndarray | None:
    """Volume-weighted centroid (RAS mm) of a track's lesions at timepoint t."""
    by_id = series.lesion_sets[t].by_id()
    les = [by_id[i] for i in lesion_ids if i in by_id]
    w = np.array([x.volume_mm3 for x in les], dtype=np.float64)
    if not les or w.sum() <= 0:
        return None
    pts = np.array([x.centroid_ras_mm for x in les], dtype=np.float64)
    return (pts * w[:, None]).sum(axis=0) / w.sum()


def _track_positions(series: SeriesResult, per_t: dict[int, Any]) -> list[tuple[np.ndarray, bool]]:
    """Per timepoint: (world position, present). Absent: the last centroid, else the next."""
    n_t = len(series.timepoints)
    own: dict[int, np.ndarray] = {}
    for t, r in per_t.items():
        c = _track_centroid(series, t, r.lesion_ids) if r.lesion_ids else None
        if c is not None:
            own[t] = c
    out = []
    for t in range(n_t):
        if t in own:
            out.append((own[t], True))
            continue
        before = [u for u in own if u < t]
        after = [u for u in own if u > t]
        ref = own[max(before)] if before else own[min(after)] if after else None
        out.append((ref, False))
    return out


def _half_window_mm(series: SeriesResult, per_t: dict[int, Any]) -> float:
    """Half the side of the square shown around a track: 1.3 x its largest 3D diameter, >= 25 mm."""
    biggest = 0.0
    for t, r in per_t.items():
        by_id = series.lesion_sets[t].by_id()
        for lid in r.lesion_ids:
            if lid in by_id:
                biggest = max(biggest, by_id[lid].max_diameter_3d_mm)
    return max(25.0, 1.3 * biggest)


def _qc_background(ls: Any, path: str | Path | None) -> tuple[tuple[str, np.ndarray], str]:
    """("image" | "mask", volume) for one timepoint, and a note for its panel titles."""
    mask = ls.mask
    if path is None or str(path) == "":
        return ("mask", mask.data), ""
    try:
        raw, affine = read_image(Path(path))
        data = np.asarray(raw)
        affine = np.asarray(affine, dtype=np.float64)
    except (CnsvolError, OSError) as exc:
        return ("mask", mask.data), f"image unreadable ({type(exc).__name__}): mask shown"
    if data.shape == mask.shape and bool(np.all(np.abs(affine - mask.affine) <= 1e-3)):
        return ("image", data), ""
    # never resample behind the user's back: show the mask and say why
    return ("mask", mask.data), "image grid \u2260 mask grid: mask shown"


def _qc_panel(
    ax: Axes,
    series: SeriesResult,
    t: int,
    tid: int | None,
    per_t: dict[int, Any],
    position: list[tuple[np.ndarray | None, bool]] | None,
    half_mm: float,
    lesion_track: dict[int, int],
    background: tuple[str, np.ndarray],
    note: str,
) -> None:
    ls = series.lesion_sets[t]
    tp = series.timepoints[t]
    mask = ls.mask
    affine = mask.affine
    shape = mask.shape
    ax_i, v, h, _, _ = layout(affine)
    inv = np.linalg.inv(affine)
    world, present = position[t] if position else (None, False)
    outside = False
    if world is not None:
        ijk = (inv @ np.append(world, 1.0))[:3]
        k = int(np.rint(ijk[ax_i]))
        outside = not (0 <= k < shape[ax_i])
        k = int(np.clip(k, 0, shape[ax_i] - 1))
        row_ids = per_t[t].lesion_ids if t in per_t else ()
        if present and row_ids:
            k = _slice_with_track(ls, ax_i, k, row_ids)
    else:
        ijk = (np.array(shape, dtype=np.float64) - 1) / 2
        k = shape[ax_i] // 2
    ax.set_facecolor("black")  # outside the scan's field of view
    kind, volume = background
    base = display_slice(volume, affine, k)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    aspect = float(spacing[v] / spacing[h])
    if kind == "image":
        finite = base[np.isfinite(base)]
        vals = finite[finite != 0] if np.any(finite != 0) else finite
        lo, hi = (np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0))
        ax.imshow(base, cmap="gray", vmin=float(lo), vmax=float(max(hi, lo + 1e-6)),
                  aspect=aspect, origin="upper")
    else:
        ax.imshow((base > 0).astype(np.float32), cmap="gray", vmin=0.0, vmax=2.2,
                  aspect=aspect, origin="upper")
    labels2d = display_slice(ls.label_image, affine, k)
    row_c, col_c = display_point(ijk, shape, affine)
    hr, hc = half_mm / spacing[v], half_mm / spacing[h]
    r0, r1 = max(int(np.floor(row_c - hr)) - 1, 0), min(int(np.ceil(row_c + hr)) + 2, labels2d.shape[0])
    c0, c1 = max(int(np.floor(col_c - hc)) - 1, 0), min(int(np.ceil(col_c + hc)) + 2, labels2d.shape[1])
    sub = labels2d[r0:r1, c0:c1]
    for lid_track in sorted({lesion_track.get(int(i)) for i in np.unique(sub) if i} - {None}):
        ids = [lid for lid, tr in lesion_track.items() if tr == lid_track]
        inside = np.isin(sub, ids)
        if inside.any() and min(sub.shape) >= 2:
            ax.contour(np.arange(c0, c1), np.arange(r0, r1), inside.astype(np.float32),
                       levels=[0.5], colors=[track_colour(lid_track)],
                       linewidths=2.0 if lid_track == tid else 1.0)
    ax.set_xlim(col_c - hc, col_c + hc)
    ax.set_ylim(row_c + hr, row_c - hr)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(track_colour(tid) if tid else "#444444")
        spine.set_linewidth(2.0)
    for x, y, s in ((0.03, 0.5, "R"), (0.97, 0.5, "L"), (0.5, 0.97, "A"), (0.5, 0.03, "P")):
        ax.text(x, y, s, transform=ax.transAxes, color="white", fontsize=7, ha="center",
                va="center", alpha=0.8)
    ax.set_title(_panel_title(tp, k, tid, t, per_t, outside, note), fontsize=7.5, loc="left")


def _panel_title(tp: Any, k: int, tid: int | None, t: int, per_t: dict[int, Any],
                 outside: bool, note: str) -> str:
    day = "day ?" if tp.days_from_baseline is None else f"day {tp.days_from_baseline:g}"
    lines = [f"{plain(short(tp.timepoint, 18))} \u00b7 {day} \u00b7 slice {k}"]
    if tid is None:
        lines.append("no lesion")
    elif t in per_t and per_t[t].lesion_ids:
        lines.append(f"track {tid}: {per_t[t].volume_mm3:.1f} mm\u00b3")
    elif t in per_t:
        lines.append(f"track {tid}: {per_t[t].status} (0 mm\u00b3)")
    else:
        lines.append(f"track {tid}: absent" + (" (outside scan)" if outside else ""))
    if note:
        lines.append(note)
    return "\n".join(lines)


def _slice_with_track(ls: Any, axis: int, k: int, ids: Sequence[int]) -> int:
    """``k`` if the track has voxels on that slice, else its slice with the most voxels
    (counted from the lesion set's sparse voxels, never over the whole volume)."""
    if np.isin(plane(ls.label_image, k, axis), ids).any():
        return k
    mine = ls.voxel_index[np.isin(ls.voxel_lesion, ids)]
    if not len(mine):
        return k
    along = np.unravel_index(mine, ls.mask.shape, order=ls.index_order)[axis]
    return int(np.argmax(np.bincount(along, minlength=ls.mask.shape[axis])))
