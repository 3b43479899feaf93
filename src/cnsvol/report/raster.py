"""Pictures drawn as pixel arrays (numpy) with text by Pillow: the per-subject QC pictures.

A QC picture is a grid of image crops with outlines; drawing it with matplotlib costs more than
measuring the subject (text layout and PNG rendering of every artist, ~0.1 s a picture). Here a
panel is the crop of one slice resampled by nearest neighbour onto a fixed square of pixels (a
voxel stays a crisp block, as a reader checking a segmentation wants), outlines are the boundary
pixels of each lesion's region in that crop, and Pillow draws the text with the DejaVu Sans font
that ships with matplotlib. PNG files carry no date or metadata: the same picture gives the same
bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes

__all__ = ["Canvas", "Crop", "crop_pixels", "outline", "png_bytes", "rgb"]

OUTSIDE = (0, 0, 0)  # beyond the scan's field of view
MASK_GREY = 116  # a mask shown as background (no image): lesion voxels in mid grey


def rgb(colour: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` as an (r, g, b) tuple."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@dataclass(frozen=True)
class Crop:
    """A square window of a 2D slice: its centre (row, column, fractional voxel indices of the
    slice), its half-size in voxels along rows and columns (a square in millimetres on an
    anisotropic grid), and the side of the picture it is drawn into, in pixels."""

    row: float
    col: float
    half_rows: float
    half_cols: float
    size: int

    def indices(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row index per pixel row, column index per pixel column, inside-the-slice mask of
        the picture): the voxel whose cell ``[i - 0.5, i + 0.5]`` holds each pixel centre."""
        t = (np.arange(self.size) + 0.5) / self.size * 2.0 - 1.0
        rows = np.floor(self.row + t * self.half_rows + 0.5).astype(np.int64)
        cols = np.floor(self.col + t * self.half_cols + 0.5).astype(np.int64)
        ok_r = (rows >= 0) & (rows < shape[0])
        ok_c = (cols >= 0) & (cols < shape[1])
        inside = ok_r[:, None] & ok_c[None, :]
        return np.clip(rows, 0, shape[0] - 1), np.clip(cols, 0, shape[1] - 1), inside


def crop_pixels(slice2d: np.ndarray, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
    """The crop of ``slice2d`` sampled onto ``crop.size`` x ``crop.size`` pixels, and the mask of
    pixels inside the slice. Only the pixels' voxels are read (a view of a large slice is never
    copied whole)."""
    rows, cols, inside = crop.indices(slice2d.shape)
    # the window's own voxels first (a few thousand), then repeated onto the pixels
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    window_voxels = np.asarray(slice2d[r0:r1, c0:c1])
    return window_voxels[rows - r0][:, cols - c0], inside  # rows, then columns: 7x faster


def grey_image(values: np.ndarray, inside: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Image values as grey levels (``window`` = the values shown black and white)."""
    lo, hi = window
    v = np.asarray(values, dtype=np.float64)
    g = np.clip((v - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255.0
    g = np.where(np.isfinite(g), g, 0.0)
    out = np.rint(g).astype(np.uint8)
    return _rgb(out, inside)


def grey_mask(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """A mask as background: its voxels mid grey, the rest black."""
    return _rgb(np.where(values > 0, MASK_GREY, 0).astype(np.uint8), inside)


def _rgb(grey: np.ndarray, inside: np.ndarray) -> np.ndarray:
    out = np.repeat(grey[:, :, None], 3, axis=2)
    out[~inside] = OUTSIDE
    return out


def window(slice2d: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.5) -> tuple[float, float]:
    """The display window of image values (a slice, or the pixels of a panel): percentiles of
    the finite non-zero values (zero is the background of skull-stripped images), from at
    most ~256 x 256 of a slice's voxels."""
    if slice2d.ndim == 2:
        step = max(1, int(np.ceil(max(slice2d.shape) / 256)))
        slice2d = slice2d[::step, ::step]
    sample = np.asarray(slice2d, dtype=np.float64)
    finite = sample[np.isfinite(sample)]
    vals = finite[finite != 0] if np.any(finite != 0) else finite
    if not vals.size:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [low_pct, high_pct])
    return float(lo), float(max(hi, lo + 1e-6))


def outline(region: np.ndarray, width: int = 1) -> np.ndarray:
    """The boundary pixels of a boolean region (pixels of it with a 4-neighbour outside it),
    thickened inwards and outwards to ``width`` pixels."""
    padded = np.pad(region, 1, constant_values=False)
    core = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
            & padded[1:-1, :-2] & padded[1:-1, 2:])
    edge = region & ~core
    for _ in range(max(width, 1) - 1):
        p = np.pad(edge, 1, constant_values=False)
        edge = (p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
                | p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:])
    return edge


@lru_cache(maxsize=64)
def wrap(text: str, size: int, width: float, bold: bool = False) -> str:
    """``text`` broken at spaces into lines no wider than ``width`` pixels at ``size`` (a
    word longer than the width stays whole on its line)."""
    f = font(size, bold)
    lines: list[str] = []
    for paragraph in text.split("\n"):  # a line break given is kept
        start = len(lines)
        for word in paragraph.split(" "):
            if len(lines) > start and f.getlength(lines[-1] + " " + word) <= width:
                lines[-1] += " " + word
            else:
                lines.append(word)
    return "\n".join(lines)


@lru_cache(maxsize=16)
def font(size: int, bold: bool = False) -> Any:
    """DejaVu Sans (matplotlib's own copy, so every machine draws the same glyphs) at ``size``
    pixels; Pillow's built-in font when it cannot be found."""
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = _font_dir() / name
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def _font_dir() -> Path:
    """matplotlib's bundled fonts, found without importing matplotlib."""
    from importlib.util import find_spec

    spec = find_spec("matplotlib")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0] if locations else ".") / "mpl-data" / "fonts" / "ttf"


class Canvas:
    """A white RGB picture: pixel blocks pasted in with numpy, then frames and text drawn with
    Pillow; :meth:`save` writes it as PNG, atomically."""

    def __init__(self, width: int, height: int) -> None:
        self.pixels = np.full((int(height), int(width), 3), 255, dtype=np.uint8)
        self._image: Any = None
        self._draw: Any = None

    def paste(self, top: int, left: int, block: np.ndarray) -> None:
        if self._image is not None:
            raise RuntimeError("paste pixel blocks before drawing text")
        h, w = block.shape[:2]
        self.pixels[top:top + h, left:left + w] = block

    def _pen(self) -> Any:
        if self._draw is None:
            from PIL import Image, ImageDraw

            self._image = Image.fromarray(self.pixels, "RGB")
            self._draw = ImageDraw.Draw(self._image)
        return self._draw

    def frame(self, left: int, top: int, size: int, colour: str, width: int = 2) -> None:
        """A square frame drawn over the edge of a ``size`` x ``size`` block."""
        self._pen().rectangle([left, top, left + size - 1, top + size - 1], outline=rgb(colour),
                              width=width)

    def text(self, xy: tuple[float, float], text: str, size: int, colour: str = "#000000", *,
             bold: bool = False, anchor: str = "la") -> None:
        """``text`` at ``xy`` (Pillow anchors: ``"la"`` left-top, ``"mm"`` centre...); drawn
        literally, one line per ``\\n``."""
        self._pen().multiline_text(xy, text, fill=rgb(colour), font=font(size, bold),
                                   anchor=anchor, spacing=2)

    def vertical_text(self, centre: tuple[float, float], text: str, size: int, colour: str, *,
                      bold: bool = False) -> None:
        """``text`` rotated to read bottom to top, centred on ``centre``."""
        strip = _text_mask(text, size, bold, True)
        x = int(round(centre[0] - strip.width / 2))
        y = int(round(centre[1] - strip.height / 2))
        self._pen()
        self._image.paste(rgb(colour), (x, y, x + strip.width, y + strip.height), strip)

    def block(self, left_bottom: tuple[float, float], text: str, size: int,
              colour: str = "#000000") -> None:
        """Lines of text (one per ``\\n``) with their bottom-left corner at ``left_bottom``,
        rendered once per run (the footnote of every picture of a cohort is the same)."""
        mask = _text_mask(text, size, False, False)
        x, y = int(round(left_bottom[0])), int(round(left_bottom[1])) - mask.height
        self._pen()
        self._image.paste(rgb(colour), (x, y, x + mask.width, y + mask.height), mask)

    def stamp(self, centre: tuple[float, float], text: str, size: int, colour: str) -> None:
        """A short label (a letter) centred on ``centre`` with a dark rim, its glyphs
        rendered once per run (a picture repeats the same few labels in every panel)."""
        self._pen()
        mask = _stamp(text, size)
        x = int(round(centre[0] - mask.width / 2))
        y = int(round(centre[1] - mask.height / 2))
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):  # a dark rim: legible on white too
            self._image.paste((0, 0, 0), (x + dx, y + dy, x + dx + mask.width,
                                          y + dy + mask.height), mask)
        self._image.paste(rgb(colour), (x, y, x + mask.width, y + mask.height), mask)

    def save(self, path: Path) -> Path:
        """Write the picture as PNG, atomically but without fsync: a picture a power cut left
        empty is drawn again by the next run."""
        pixels = np.asarray(self._image) if self._image is not None else self.pixels
        atomic_write_bytes(path, png_bytes(pixels), durable=False)
        return path


@lru_cache(maxsize=64)
def _stamp(text: str, size: int) -> Any:
    return _text_mask(text, size, False, False)


@lru_cache(maxsize=64)
def _text_mask(text: str, size: int, bold: bool, vertical: bool) -> Any:
    """``text`` (lines split at ``\\n``) as a Pillow "L" mask, rotated to read bottom to top
    when ``vertical``."""
    from PIL import Image, ImageDraw

    f = font(size, bold)
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=f, spacing=2)
    mask = Image.new("L", (int(right - left) + 2, int(bottom - top) + 2), 0)
    ImageDraw.Draw(mask).multiline_text((1 - left, 1 - top), text, fill=255, font=f, spacing=2)
    return mask.rotate(90, expand=True) if vertical else mask


def png_bytes(pixels: np.ndarray) -> bytes:
    """An RGB uint8 array (rows, columns, 3) as a PNG file: 8-bit truecolour, every row but the
    first with the "Up" filter (difference from the row above: flat pictures compress well),
    deflated by zlib-ng at level 3 (several times faster than Pillow's encoder at the same
    size), no metadata."""
    import struct
    import zlib

    from ..io.nifti import zlib_module

    h, w, _ = pixels.shape
    flat = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(h, w * 3)
    rows = np.empty((h, w * 3 + 1), np.uint8)
    rows[:, 0] = 2  # Up
    rows[0, 0] = 0  # None: the first row has no row above
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])  # modulo 256, as PNG defines it
    data = zlib_module().compress(rows.tobytes(), 3)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
