"""Hole masks for inpainting, drawn from a ``torch.Generator`` so that a seed fixes every mask.

Each function returns a float tensor [1, H, W] with 1 on missing pixels. Pixel quantities of the
published generators are given at 256 px and scaled by ``sqrt(H·W) / 256``, so a mask covers the
same fraction of a 64 px crop as of a 256 px image.

- :func:`free_form_mask`: DeepFill v2's brush strokes (Yu et al. 2019, arXiv:1806.03589, the
  authors' ``brush_stroke_mask``).
- :func:`box_mask`: one axis-aligned rectangle.
- :func:`lama_mask`: LaMa's strokes-or-boxes masks (Suvorov et al. 2022, arXiv:2109.07161, the
  authors' ``MixedMaskGenerator`` with the ``random_{thin,medium,thick}_256`` settings).

Lines are rasterised with PIL (a core dependency) rather than OpenCV; a stroke of width w is a
thick line plus discs of diameter w at its joints, which is how both reference generators look.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

REFERENCE_SIZE = 256  # the image size the published pixel quantities refer to


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high] (both ends included)."""
    return int(torch.randint(int(low), int(high) + 1, (), generator=generator))


def size_factor(height: int, width: int) -> float:
    return math.sqrt(height * width) / REFERENCE_SIZE


def _canvas(height: int, width: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    canvas = Image.new("L", (width, height), 0)
    return canvas, ImageDraw.Draw(canvas)


def _stroke(draw: ImageDraw.ImageDraw, vertices: list[tuple[float, float]], width: int) -> None:
    """A polyline of ``width`` px with round joints and ends."""
    if len(vertices) > 1:
        draw.line(vertices, fill=1, width=width)
    r = width / 2
    for x, y in vertices:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=1)


def _to_tensor(canvas: Image.Image) -> torch.Tensor:
    return torch.from_numpy((np.asarray(canvas) > 0).astype(np.float32))[None]


def free_form_mask(
    height: int,
    width: int,
    generator: torch.Generator,
    strokes: tuple[int, int] = (1, 3),
    vertices: tuple[int, int] = (4, 11),
    brush_width: tuple[float, float] = (12, 40),
) -> torch.Tensor:
    """DeepFill v2 free-form mask: ``strokes`` polylines, each of ``vertices`` vertices (ranges
    inclusive) and one ``brush_width`` (px at 256). Segments alternate direction around a mean
    angle of 2π/5 (spread ±2π/15 per stroke); segment lengths are N(r, r/2) clipped to [0, 2r] with
    r = diagonal / 8; the mask is then flipped left-right and top-bottom with probability ½ each.
    """
    mean_angle, angle_range = 2 * math.pi / 5, 2 * math.pi / 15
    radius = math.sqrt(height**2 + width**2) / 8
    scale = size_factor(height, width)
    canvas, draw = _canvas(height, width)
    for _ in range(randint(generator, *strokes)):
        n = randint(generator, *vertices)
        angle_min = mean_angle - uniform(generator, 0, angle_range)
        angle_max = mean_angle + uniform(generator, 0, angle_range)
        points = [(float(randint(generator, 0, width - 1)), float(randint(generator, 0, height - 1)))]
        for i in range(n):
            angle = uniform(generator, angle_min, angle_max)
            angle = 2 * math.pi - angle if i % 2 == 0 else angle
            length = min(max(radius + radius / 2 * torch.randn((), generator=generator).item(), 0.0), 2 * radius)
            x, y = points[-1]
            points.append(
                (
                    min(max(x + length * math.cos(angle), 0.0), width),
                    min(max(y + length * math.sin(angle), 0.0), height),
                )
            )
        _stroke(draw, points, max(1, round(uniform(generator, *brush_width) * scale)))
    mask = _to_tensor(canvas)
    # The reference meant to flip (its transposes are discarded); flipping makes left/right turns equally likely.
    if torch.rand((), generator=generator) < 0.5:
        mask = mask.flip(-1)
    if torch.rand((), generator=generator) < 0.5:
        mask = mask.flip(-2)
    return mask


def box_mask(
    height: int, width: int, generator: torch.Generator, size: tuple[float, float] = (0.25, 0.5)
) -> torch.Tensor:
    """One rectangle whose height and width are independent fractions ``size`` of the image's,
    placed uniformly inside it. Coverage lies in [size[0]², size[1]²] up to pixel rounding."""
    mask = torch.zeros(1, height, width)
    h = max(1, round(uniform(generator, *size) * height))
    w = max(1, round(uniform(generator, *size) * width))
    top, left = randint(generator, 0, height - h), randint(generator, 0, width - w)
    mask[:, top : top + h, left : left + w] = 1
    return mask


def lama_mask(
    height: int,
    width: int,
    generator: torch.Generator,
    irregular: dict,
    box: dict | None,
    box_proba: float,
    max_coverage: float = 0.5,
    attempts: int = 100,
) -> torch.Tensor:
    """A LaMa mask: strokes (``irregular``) with weight 1, boxes with weight ``box_proba`` (the
    reference renormalises its probabilities); masks that are empty or cover more than
    ``max_coverage`` are rejected and redrawn (the reference's ``max_tamper_area``)."""
    for _ in range(attempts):
        if box is not None and box_proba > 0 and torch.rand((), generator=generator) < box_proba / (1 + box_proba):
            mask = _lama_boxes(height, width, generator, **box)
        else:
            mask = _lama_strokes(height, width, generator, **irregular)
        coverage = mask.mean().item()
        if 0 < coverage <= max_coverage:
            return mask
    raise RuntimeError(
        f"no LaMa mask of {height}x{width} px with coverage in (0, {max_coverage}] in {attempts} draws; "
        "the stroke/box sizes do not fit this image size"
    )


def _lama_strokes(
    height: int,
    width: int,
    generator: torch.Generator,
    min_times: int,
    max_times: int,
    max_width: int,
    max_len: int,
    max_angle: int = 4,
) -> torch.Tensor:
    """``min_times``–``max_times`` strokes of 1–5 segments; each segment turns by an integer number
    of radians (+0.01) below ``max_angle``, mirrored on even strokes, is 10 + [0, max_len) px long
    and 5 + [0, max_width) px wide (px at 256)."""
    scale = size_factor(height, width)
    canvas, draw = _canvas(height, width)
    for i in range(randint(generator, min_times, max_times)):
        x, y = float(randint(generator, 0, width - 1)), float(randint(generator, 0, height - 1))
        for _ in range(1 + randint(generator, 0, 4)):
            angle = 0.01 + randint(generator, 0, max_angle - 1)
            angle = 2 * math.pi - angle if i % 2 == 0 else angle
            length = (10 + randint(generator, 0, max_len - 1)) * scale
            brush = max(1, round((5 + randint(generator, 0, max_width - 1)) * scale))
            end = (
                min(max(x + length * math.sin(angle), 0.0), width),
                min(max(y + length * math.cos(angle), 0.0), height),
            )
            _stroke(draw, [(x, y), end], brush)
            x, y = end
    return _to_tensor(canvas)


def _lama_boxes(
    height: int,
    width: int,
    generator: torch.Generator,
    margin: int,
    bbox_min_size: int,
    bbox_max_size: int,
    min_times: int,
    max_times: int,
) -> torch.Tensor:
    """``min_times``–``max_times`` rectangles with sides in [bbox_min_size, bbox_max_size) px at 256,
    at least ``margin`` px from the border."""
    scale = size_factor(height, width)
    margin = round(margin * scale)
    low = max(1, round(bbox_min_size * scale))
    high = min(round(bbox_max_size * scale), height - 2 * margin, width - 2 * margin)
    high = max(high, low + 1)
    mask = torch.zeros(1, height, width)
    for _ in range(randint(generator, min_times, max_times)):
        h, w = randint(generator, low, high - 1), randint(generator, low, high - 1)
        top = randint(generator, margin, max(margin, height - margin - h))
        left = randint(generator, margin, max(margin, width - margin - w))
        mask[:, top : top + h, left : left + w] = 1
    return mask
