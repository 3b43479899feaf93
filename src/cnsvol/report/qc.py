"""Per-subject QC pictures: slices through the largest lesions at every timepoint, outlines
coloured by track, over the MRI when it is on the mask's grid (else over the mask)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CnsvolError, MaskTooLargeError
from ..io.files import DEFAULT_MAX_BYTES
from ..io.read import read_image
from .names import one_line
from .orient import display_point, display_slice, layout, plane
from .raster import (
    Canvas, Crop, crop_pixels, grey_image, grey_mask, outline, rgb, window, wrap,
)
from .style import darker, short, track_colour

if TYPE_CHECKING:  # pragma: no cover
    from ..response.evaluation import SeriesResult

__all__ = ["qc_picture"]


def qc_picture(
    series: SeriesResult,
    images: Sequence[str | Path | None] | None,
    stem: str | Path,
    max_lesions: int = 3,
    *,
    title: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    notes: list[str] | None = None,
) -> list[Path]:
    """Slices through the largest lesions at every timepoint, outlines coloured by track.

    Rows are the largest baseline tracks (at most ``max_lesions``) and the largest new track
    (:func:`_qc_tracks`), columns the timepoints. Each panel is the axial
    slice (perpendicular to :func:`cnsvol.geometry.axial_axis` of that scan's grid) through the
    track's centroid; where the track is absent, the slice nearest the world position of its
    last (else next) centroid. The background is the MRI image when one is given on the same
    grid as the mask, else the mask in grey (the panel title says why). Every lesion in the
    panel is outlined in its track's colour (:func:`track_colour`); the row's track is drawn
    thicker and frames the panel.

    Orientation (radiological convention): anterior up, the patient's right on the viewer's
    left; the flips are derived from each scan's affine, so LPS- or RAS-stored grids look alike.

    Images are read under ``max_bytes`` (:func:`cnsvol.read_image`), one at a time; an image not
    shown is noted in ``notes`` (given), with why. Writes ``<stem>.png`` only; returns ``[png]``.
    """
    labels = [tp.timepoint for tp in series.timepoints]
    n_t = len(labels)
    imgs = list(images) if images is not None else [None] * n_t
    if len(imgs) != n_t:
        raise ValueError(f"got {len(imgs)} images for {n_t} timepoints: give one (or None) per timepoint")
    states, lesion_track = _track_maps(series)
    chosen = _qc_tracks(states, max_lesions)
    frames = _frames(series)
    positions = {tid: _track_positions(series, states[tid], frames) for tid in chosen}
    half_mm = {tid: _half_window_mm(series, states[tid]) for tid in chosen}
    extra = [t for t, reg in enumerate(series.registrations)
             if t and reg is not None and not reg.skipped]

    n_rows = max(len(chosen), 1)
    width = _LEFT + (n_t + len(extra)) * (_PANEL + _GAP) - _GAP + _RIGHT
    head = "QC: " + short(one_line(title), 60) if title else "QC"
    head = wrap(f"{head} \u2014 {series.criteria.name}", 13, width - 20)
    top = _TOP + 17 * head.count("\n")
    foot = _footnote(series, width, bool(extra))
    canvas = Canvas(width, top + n_rows * (_TITLE + _PANEL + _GAP) + 14 * foot.count("\n")
                    + _FOOTER)
    titles = []
    for t in range(n_t):  # one column at a time: one image volume in memory at once
        background, note = _qc_background(series.lesion_sets[t], imgs[t], max_bytes)
        if note and notes is not None:
            notes.append(f"{labels[t]}: {note}")
        for row in range(n_rows):
            tid = chosen[row] if chosen else None
            left, y = _panel_origin(row, t, top)
            pixels, caption = _qc_panel(series, t, tid, states.get(tid, {}) if tid else {},
                                        positions.get(tid), half_mm.get(tid, 30.0),
                                        lesion_track[t], background, note)
            canvas.paste(y, left, pixels)
            titles.append((left, y, tid, caption))
        if t == 0 and extra:
            base_background = background
        del background
    for j, t in enumerate(extra):  # each registered follow-up's lesions on the baseline
        mapped = _mapped(series.lesion_sets[t], series.lesion_sets[0], frames[t])
        for row in range(n_rows):
            tid = chosen[row] if chosen else None
            left, y = _panel_origin(row, n_t + j, top)
            pixels, _ = _qc_panel(series, 0, tid, states.get(tid, {}) if tid else {},
                                  positions.get(tid), half_mm.get(tid, 30.0), lesion_track[0],
                                  base_background, "", overlay=mapped)
            canvas.paste(y, left, pixels)
            titles.append((left, y, tid, _registered_title(series, t)))
        del mapped
    _decorate(canvas, titles, chosen, n_rows, top)
    canvas.text((10, 10), head, 13)
    canvas.block((10, canvas.pixels.shape[0] - 6), foot, 10, "#444444")
    stem = Path(stem)
    return [canvas.save(stem.with_name(stem.name + ".png"))]  # ids may contain dots


def _track_maps(series: SeriesResult) -> tuple[dict[int, dict[int, Any]], list[dict[int, int]]]:
    """(track id -> timepoint index -> TrackRow, per timepoint: lesion id -> track id)."""
    index = {tp.timepoint: t for t, tp in enumerate(series.timepoints)}
    states: dict[int, dict[int, Any]] = {}
    for r in series.tracks:
        states.setdefault(r.track_id, {})[index[r.timepoint]] = r
    lesion_track: list[dict[int, int]] = [dict() for _ in series.timepoints]
    for tid, per_t in states.items():
        for t, r in per_t.items():
            for lid in r.lesion_ids:
                lesion_track[t][lid] = tid
    return states, lesion_track


def _decorate(canvas: Canvas, titles: list[tuple[int, int, Any, str]], chosen: list[int],
              n_rows: int, top: int) -> None:
    """Panel frames, titles and orientation letters; the row labels."""
    for left, y0, tid, caption in titles:
        canvas.frame(left, y0, _PANEL, track_colour(tid) if tid else "#444444", width=3)
        canvas.text((left, y0 - 4), caption, 11, anchor="ld")
        for x, y, s in ((0.03, 0.5, "R"), (0.97, 0.5, "L"), (0.5, 0.04, "A"), (0.5, 0.96, "P")):
            canvas.stamp((left + x * _PANEL, y0 + y * _PANEL), s, 10, "#DDDDDD")
    for row in range(n_rows):
        tid = chosen[row] if chosen else None
        _, y = _panel_origin(row, 0, top)
        canvas.vertical_text((_LEFT / 2, y + _PANEL / 2),
                             "no lesion" if tid is None else f"track {tid}", 13,
                             "#000000" if tid is None else darker(track_colour(tid)), bold=True)


def _footnote(series: SeriesResult, width: int, registered: bool) -> str:
    dicom = any(ls.mask.source_format.startswith("dicom") for ls in series.lesion_sets)
    return wrap("Axial slices, radiological view (the patient's right on the left, anterior "
                "up). Outline colour = lesion track (same colour at every timepoint); thick "
                "outline and frame = the row's track; mm\u00b3 = track volume; slice = the index "
                "in the " + ("mask's grid (DICOM: slices by position, from 0 at the first slice the "
                             "mask spans)."
                             if dicom else "mask file.")
                + (" Last column(s): a follow-up's lesions (white) on the baseline slice, "
                   "through the registration its lesions were matched with (scanner "
                   "coordinates where it failed: the lesions should then be expected to miss)."
                   if registered else ""), 10, width - 20)


_PANEL = 240  # side of a panel, pixels
_GAP = 18  # between panels
_LEFT, _RIGHT, _TOP, _FOOTER = 40, 10, 34, 26  # margins: row labels, title, footnote
_TITLE = 46  # panel title (up to three lines) above each panel


def _panel_origin(row: int, t: int, top: int = _TOP) -> tuple[int, int]:
    """(left, top) pixel of the panel of ``row`` at timepoint ``t`` (``top``: the height of
    the picture's title)."""
    return (_LEFT + t * (_PANEL + _GAP),
            top + _TITLE + row * (_TITLE + _PANEL + _GAP))


def _qc_tracks(states: dict[int, dict[int, Any]], max_lesions: int) -> list[int]:
    """Largest baseline tracks, then the largest new track (absent at baseline: a new lesion
    can make the response PD, so a reviewer must see it); if the baseline is empty, the
    largest tracks at any time."""
    def ranked(items: list[tuple[float, int]]) -> list[int]:  # largest first, then by id
        return [tid for _, tid in sorted(items, key=lambda vt: (-vt[0], vt[1]))]

    n = max(int(max_lesions), 0)
    base = [(per_t[0].volume_mm3, tid) for tid, per_t in states.items()
            if 0 in per_t and per_t[0].lesion_ids]
    later = [(max(r.volume_mm3 for r in per_t.values()), tid) for tid, per_t in states.items()
             if any(r.lesion_ids for r in per_t.values())]
    if not base:
        return ranked(later)[:n]
    new = [(v, tid) for v, tid in later if tid not in {t for _, t in base}]
    return ranked(base)[:n] + (ranked(new)[:1] if n else [])


def _track_centroid(series: SeriesResult, t: int, lesion_ids: Sequence[int]) -> np.ndarray | None:
    """Volume-weighted centroid (RAS mm) of a track's lesions at timepoint t."""
    by_id = series.lesion_sets[t].by_id()
    les = [by_id[i] for i in lesion_ids if i in by_id]
    w = np.array([x.volume_mm3 for x in les], dtype=np.float64)
    if not les or w.sum() <= 0:
        return None
    pts = np.array([x.centroid_ras_mm for x in les], dtype=np.float64)
    return (pts * w[:, None]).sum(axis=0) / w.sum()


def _track_positions(series: SeriesResult, per_t: dict[int, Any], frames: list[np.ndarray]
                     ) -> list[tuple[np.ndarray, bool]]:
    """Per timepoint: (world position, present), in that timepoint's world. Absent: the last
    centroid, else the next, carried through the registrations (``frames``: each timepoint's
    world -> the baseline's)."""
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
        u = max(before) if before else min(after) if after else None
        if u is None:
            out.append((None, False))
            continue
        to_t = np.linalg.inv(frames[t]) @ frames[u]
        out.append((to_t[:3, :3] @ own[u] + to_t[:3, 3], False))
    return out


def _frames(series: SeriesResult) -> list[np.ndarray]:
    """Per timepoint, its world -> the baseline's as lesions were matched (identity where
    scanner coordinates were used)."""
    from ..response.registered import used_frame

    regs = list(series.registrations) or [None] * len(series.timepoints)
    return [f if (f := used_frame(r)) is not None else np.eye(4) for r in regs]


def _mapped(fu: Any, base: Any, frame: np.ndarray) -> np.ndarray:
    """The follow-up's lesion voxels on the baseline's grid through ``frame`` (follow-up world
    -> baseline world): each voxel sampled at up to 4 points per axis where it is larger than
    the baseline's, nearest baseline voxel; for display only."""
    out = np.zeros(base.mask.shape, dtype=bool)
    if not len(fu.voxel_index):
        return out
    ijk = np.stack(np.unravel_index(fu.voxel_index, fu.mask.shape, order=fu.index_order), 1)
    to_base = np.linalg.inv(base.mask.affine) @ frame @ fu.mask.affine
    ratio = np.linalg.norm(fu.mask.affine[:3, :3], axis=0) / np.linalg.norm(
        base.mask.affine[:3, :3], axis=0)
    steps = [np.linspace(-0.5, 0.5, n + 2)[1:-1] for n in np.clip(np.ceil(ratio), 1, 4).astype(int)]
    for off in np.stack(np.meshgrid(*steps, indexing="ij"), -1).reshape(-1, 3):
        b = np.rint((ijk + off) @ to_base[:3, :3].T + to_base[:3, 3]).astype(np.int64)
        keep = np.all((b >= 0) & (b < np.asarray(base.mask.shape)), axis=1)
        out[tuple(b[keep].T)] = True
    return out


def _registered_title(series: SeriesResult, t: int) -> str:
    """Title of the panel showing timepoint ``t``'s lesions (white) on the baseline."""
    reg = series.registrations[t]
    labels = [tp.timepoint for tp in series.timepoints]
    head = f"{short(one_line(labels[t]), 12)} (white) on {short(one_line(labels[0]), 12)}"
    if not reg.reliable:
        return f"{head}\nregistration FAILED: scanner\ncoordinates, unregistered"
    if not reg.used and reg.frame_ras is None:
        return f"{head}\naligned (< tolerance):\nscanner coordinates"
    moved = reg.misalignment_before_mm
    return (f"{head}\nregistered: {reg.rotation_deg:.1f}\u00b0"
            + ("" if moved is None else f", lesions moved\nup to {moved:.1f} mm"))


def _half_window_mm(series: SeriesResult, per_t: dict[int, Any]) -> float:
    """Half the side of the square shown around a track: 1.3 x its largest 3D diameter, >= 25 mm."""
    biggest = 0.0
    for t, r in per_t.items():
        by_id = series.lesion_sets[t].by_id()
        for lid in r.lesion_ids:
            if lid in by_id:
                biggest = max(biggest, by_id[lid].max_diameter_3d_mm)
    return max(25.0, 1.3 * biggest)


def _qc_background(ls: Any, path: str | Path | None,
                   max_bytes: int) -> tuple[tuple[str, np.ndarray], str]:
    """("image" | "mask", volume) for one timepoint, and a note for its panel titles."""
    mask = ls.mask
    if path is None or str(path) == "":
        return ("mask", mask.data), ""
    try:
        raw, affine = read_image(Path(path), max_bytes=max_bytes)
        data = np.asarray(raw)
        affine = np.asarray(affine, dtype=np.float64)
    except MaskTooLargeError:
        return ("mask", mask.data), "mask shown: image over --max-gib"
    except (CnsvolError, OSError) as exc:
        return ("mask", mask.data), f"mask shown: image unreadable ({_short(exc)})"
    if data.shape == mask.shape and bool(np.all(np.abs(affine - mask.affine) <= 1e-3)):
        return ("image", data), ""
    block = _sub_block(data, affine, mask)
    if block is not None:  # the mask's grid is part of the image's (a SEG without empty frames)
        return ("image", block), ""
    # never resample behind the user's back: show the mask and say why
    how = ("same size, placed elsewhere" if data.shape == mask.shape else
           f"{'x'.join(map(str, data.shape))} vs {'x'.join(map(str, mask.shape))}")
    return ("mask", mask.data), f"mask shown: image grid \u2260 mask grid ({how})"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _sub_block(data: np.ndarray, affine: np.ndarray, mask: Any) -> np.ndarray | None:
    """The image voxels under the mask when the mask's grid is a block of the image's (same
    voxel axes, whole-voxel offset, inside it), else ``None``."""
    if data.ndim != 3 or not np.all(np.abs(affine[:3, :3] - mask.affine[:3, :3]) <= 1e-3):
        return None
    offset = np.linalg.solve(affine[:3, :3], mask.affine[:3, 3] - affine[:3, 3])
    start = np.rint(offset)
    if np.abs(offset - start).max() > 1e-2 or (start < 0).any():
        return None
    lo = start.astype(int)
    hi = lo + np.asarray(mask.shape)
    if (hi > np.asarray(data.shape)).any():
        return None
    return data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]


def _qc_panel(
    series: SeriesResult,
    t: int,
    tid: int | None,
    per_t: dict[int, Any],
    position: list[tuple[np.ndarray | None, bool]] | None,
    half_mm: float,
    lesion_track: dict[int, int],
    background: tuple[str, np.ndarray],
    note: str,
    overlay: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """The pixels of one panel (the window around the track on its slice, outlines drawn, and
    ``overlay``'s in white) and its title."""
    ls = series.lesion_sets[t]
    affine, shape = ls.mask.affine, ls.mask.shape
    ax_i, v, h, _, _ = layout(affine)
    world, present = position[t] if position else (None, False)
    outside = False
    if world is not None:
        ijk = (np.linalg.inv(affine) @ np.append(world, 1.0))[:3]
        k = int(np.rint(ijk[ax_i]))
        outside = not (0 <= k < shape[ax_i])
        k = int(np.clip(k, 0, shape[ax_i] - 1))
        row_ids = per_t[t].lesion_ids if t in per_t else ()
        if present and row_ids:
            k = _slice_with_track(ls, ax_i, k, row_ids)
    else:
        ijk = (np.array(shape, dtype=np.float64) - 1) / 2
        k = shape[ax_i] // 2
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    row_c, col_c = display_point(ijk, shape, affine)
    crop = Crop(row_c, col_c, half_mm / spacing[v], half_mm / spacing[h], _PANEL)
    kind, volume = background
    values, inside = crop_pixels(display_slice(volume, affine, k), crop)
    if kind == "image":
        pixels = grey_image(values, inside, _panel_window(values, inside, volume, affine, k))
    else:
        pixels = grey_mask(values, inside)
    labels, _ = crop_pixels(display_slice(ls.label_image, affine, k), crop)
    labels = np.where(inside, labels, 0)
    ids_here = {int(i) for i in np.unique(labels[labels > 0])}
    for track in sorted({lesion_track.get(i) for i in ids_here} - {None}):
        ids = [lid for lid, tr in lesion_track.items() if tr == track and lid in ids_here]
        pixels[outline(np.isin(labels, ids), 2 if track == tid else 1)] = rgb(track_colour(track))
    if overlay is not None:  # a registered follow-up's lesions, mapped onto this grid
        mapped, _ = crop_pixels(display_slice(overlay, affine, k), crop)
        region = np.where(inside, mapped, False)
        pixels[outline(region, 3)] = rgb("#000000")  # a dark edge: visible on bright lesions
        pixels[outline(region, 1)] = rgb("#FFFFFF")
    return pixels, _panel_title(series.timepoints[t], k, tid, t, per_t, outside, note)


def _panel_window(values: np.ndarray, inside: np.ndarray, volume: np.ndarray,
                  affine: np.ndarray, k: int) -> tuple[float, float]:
    """The grey window of a panel: from the pixels it shows (a lesion brighter than the
    tissue around it stays distinguishable, as it would not in a window of the whole slice,
    where the lesion is a fraction of a percent); the whole slice when the panel shows fewer
    than 64 non-zero pixels."""
    shown = values[inside]
    if np.count_nonzero(np.isfinite(shown) & (shown != 0)) >= 64:
        return window(shown)
    return window(display_slice(volume, affine, k))


def _panel_title(tp: Any, k: int, tid: int | None, t: int, per_t: dict[int, Any],
                 outside: bool, note: str) -> str:
    day = "day ?" if tp.days_from_baseline is None else f"day {tp.days_from_baseline:g}"
    lines = [f"{short(one_line(tp.timepoint), 18)} \u00b7 {day} \u00b7 slice {k}"]
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
