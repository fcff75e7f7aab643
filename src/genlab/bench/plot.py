"""One labelled line plot drawn with Pillow, for the benches that write a curve beside their table.

Pillow is already installed with torchvision; matplotlib is not a genlab dependency, and one scatter
of a handful of points does not justify a new extra (and its font cache) for a bench that runs
offline on a CPU box. Markers are drawn without anti-aliasing in one colour, so a test can find each
point in the PNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

MARKER = (31, 119, 180)  # the points; nothing else on the canvas has this colour
LINE = (170, 170, 170)  # the path joining the points in the order given
INK = (0, 0, 0)  # axes, ticks, labels
RADIUS = 5  # marker radius, px


def ticks(lo: float, hi: float, count: int = 5) -> list[tuple[float, str]]:
    """About ``count`` round ticks (1, 2 or 5 × 10^k apart) covering [lo, hi], as (value, label) with as
    many decimals as the step needs (0.05 apart: 0.10, 0.15, ...)."""
    raw = (hi - lo) / max(1, count)
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = math.ceil(lo / step) * step
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [(v, f"{v:.{decimals}f}") for v in (first + i * step for i in range(int((hi - first) / step + 1e-9) + 1))]


def padded(values: Sequence[float], fraction: float = 0.1) -> tuple[float, float]:
    """[min, max] of ``values`` widened by ``fraction`` of the range on each side (a point never sits
    on the frame); a single value gets a range of its own size."""
    lo, hi = min(values), max(values)
    span = hi - lo or abs(hi) or 1.0
    return lo - fraction * span, hi + fraction * span


def line_plot(
    path: str | Path,
    points: Sequence[tuple[float, float]],
    labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    size: tuple[int, int] = (720, 520),
) -> Path:
    """Write a PNG of ``points`` (x, y), joined in order, each marked and labelled; returns its path."""
    if not points or len(points) != len(labels):
        raise ValueError(f"need one label per point, got {len(points)} points and {len(labels)} labels")
    if not all(math.isfinite(v) for point in points for v in point):
        raise ValueError(f"cannot plot non-finite values: {list(points)}")
    width, height = size
    left, right, top, bottom = 100, 30, 40, 60  # margins for tick labels, title and axis labels
    (x0, x1), (y0, y1) = padded([p[0] for p in points]), padded([p[1] for p in points])

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - x0) / (x1 - x0) * (width - left - right),
            height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom),
        )

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    vertical = Image.new("RGB", (height, 20), "white")
    ImageDraw.Draw(vertical).text((height / 2, 10), ylabel, fill=INK, font=font, anchor="mm")
    image.paste(vertical.rotate(90, expand=True), (4, 0))
    draw.rectangle([left, top, width - right, height - bottom], outline=INK)
    for value, label in ticks(x0, x1):
        px, _ = to_pixel(value, y0)
        draw.line([px, height - bottom, px, height - bottom + 5], fill=INK)
        draw.text((px, height - bottom + 8), label, fill=INK, font=font, anchor="mt")
    for value, label in ticks(y0, y1):
        _, py = to_pixel(x0, value)
        draw.line([left - 5, py, left, py], fill=INK)
        draw.text((left - 8, py), label, fill=INK, font=font, anchor="rm")
    draw.text((width / 2, 12), title, fill=INK, font=font, anchor="mt")
    draw.text(((left + width - right) / 2, height - 22), xlabel, fill=INK, font=font, anchor="mt")
    pixels = [to_pixel(x, y) for x, y in points]
    if len(pixels) > 1:
        draw.line(pixels, fill=LINE, width=2)
    for (px, py), label in zip(pixels, labels):
        draw.ellipse([px - RADIUS, py - RADIUS, px + RADIUS, py + RADIUS], fill=MARKER)
        draw.text((px + RADIUS + 4, py - RADIUS - 4), label, fill=INK, font=font, anchor="lb")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
