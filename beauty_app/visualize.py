"""Heatmap overlays and region drawings for explanations (numpy/OpenCV; used by the GUI and exports)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

COLORMAPS = {
    "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
}


def colorize(heat: np.ndarray, colormap: str = "turbo") -> np.ndarray:
    """(H,W) values in [0,1] -> (H,W,3) uint8 RGB colours."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colour map {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    scaled = np.clip(np.nan_to_num(heat, nan=0.0) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


def combine_maps(saliency: np.ndarray | None, text: np.ndarray | None, which: str) -> np.ndarray | None:
    """The map to show: "saliency", "text", "both" (pixel-wise max) or "none"."""
    if which == "saliency":
        return saliency
    if which == "text":
        return text
    if which == "both":
        present = [m for m in (saliency, text) if m is not None]
        return np.maximum.reduce(present) if present else None
    return None


def overlay(image_rgb: np.ndarray, heat: np.ndarray | None, opacity: float = 0.5, colormap: str = "turbo") -> np.ndarray:
    """Blend a colourised heatmap over an image; strong attention shows more colour than weak."""
    image_rgb = np.asarray(image_rgb, dtype=np.uint8)
    if heat is None or opacity <= 0:
        return image_rgb.copy()
    if heat.shape != image_rgb.shape[:2]:
        heat = cv2.resize(heat.astype(np.float32), (image_rgb.shape[1], image_rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = colorize(heat, colormap).astype(np.float32)
    # Weight the colour by the attention itself so unattended areas keep the photo visible.
    alpha = (float(opacity) * (0.35 + 0.65 * np.clip(heat, 0, 1)))[..., None]
    blended = image_rgb.astype(np.float32) * (1 - alpha) + colours * alpha
    return np.clip(blended, 0, 255).astype(np.uint8)


#: A map whose peak is below this is "nearly empty": the overlay would be a flat tint, so the app says so.
NEARLY_EMPTY_PEAK = 0.1
#: Region boxes covering at least this share of the photo are not drawn: a frame around everything says nothing.
WHOLE_IMAGE_SHARE = 0.85


@dataclass(frozen=True)
class MapSummary:
    """What the legend says about a heatmap: its true peak and mean, and whether it is nearly empty."""

    peak: float
    mean: float

    @property
    def nearly_empty(self) -> bool:
        return self.peak < NEARLY_EMPTY_PEAK


def summarize_map(heat: np.ndarray | None) -> MapSummary | None:
    """Peak and mean of a [0, 1] map (None for no map)."""
    if heat is None:
        return None
    values = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0)
    return MapSummary(float(values.max(initial=0.0)), float(values.mean()) if values.size else 0.0)


def stretch_map(heat: np.ndarray | None) -> np.ndarray | None:
    """The map divided by its peak, so a weak map uses the whole colour scale (an all-zero map stays zero)."""
    if heat is None:
        return None
    peak = float(np.max(heat, initial=0.0))
    return heat if peak <= 1e-6 else np.clip(heat / peak, 0.0, 1.0)


def colour_bar(width: int, height: int, colormap: str = "turbo") -> np.ndarray:
    """(height, width, 3) RGB strip of the colour map from 0 (left) to 1 (right), for legends."""
    ramp = np.tile(np.linspace(0.0, 1.0, max(width, 1), dtype=np.float32), (max(height, 1), 1))
    return colorize(ramp, colormap)


def visible_regions(regions: Sequence[tuple[int, int, int, int, float, bool]], image_size: tuple[int, int]
                    ) -> list[tuple[int, int, int, int, float, bool]]:
    """Kept regions with weight that do not frame (nearly) the whole photo, clipped to it.

    ``image_size`` is (width, height). Boxes that cover the photo (R-MAC's first level does) or
    carry no weight are left out: drawn, they would frame the background too and say nothing.
    """
    width, height = image_size
    shown = []
    for top, left, box_h, box_w, weight, kept in regions:
        x0, y0 = max(int(left), 0), max(int(top), 0)
        x1, y1 = min(int(left + box_w), width), min(int(top + box_h), height)
        if not kept or weight <= 0 or x1 <= x0 or y1 <= y0:
            continue
        if (x1 - x0) * (y1 - y0) >= WHOLE_IMAGE_SHARE * width * height:
            continue
        shown.append((y0, x0, y1 - y0, x1 - x0, weight, kept))
    return shown


def draw_pairs(image_rgb: np.ndarray, boxes: Sequence[tuple[str, int, tuple[int, int, int, int]]]) -> np.ndarray:
    """Labelled boxes (label, colour number from 1, (left, top, width, height)): a region pair gets the same
    label and colour on both of its images."""
    canvas = np.ascontiguousarray(image_rgb, dtype=np.uint8).copy()
    scale = max(canvas.shape[:2]) / 400.0
    thickness = max(2, int(round(2.5 * scale)))
    for label, number, (left, top, width, height) in boxes:
        colour = PAIR_COLOURS[(number - 1) % len(PAIR_COLOURS)]
        cv2.rectangle(canvas, (int(left), int(top)), (int(left + width - 1), int(top + height - 1)), colour, thickness)
        font_scale = 0.6 * max(scale, 0.6)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        x, y = int(left) + thickness, int(top) + thickness
        cv2.rectangle(canvas, (x, y), (x + tw + 4, y + th + 6), colour, -1)
        cv2.putText(canvas, label, (x + 2, y + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
                    max(1, thickness // 2), cv2.LINE_AA)
    return canvas


#: Pair colours (RGB): distinct hues that stay readable over photos and the heatmap colours.
PAIR_COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                (70, 240, 240), (240, 50, 230), (128, 128, 0))


def draw_regions(image_rgb: np.ndarray, regions: Sequence[tuple[int, int, int, int, float, bool]],
                 show_dropped: bool = False) -> np.ndarray:
    """Draw SR-MAC regions (top, left, h, w, weight, kept): kept ones in green, thicker with more weight.

    Only regions that carry weight and do not frame the whole photo are drawn (:func:`visible_regions`);
    `show_dropped` adds the dropped ones in red.
    """
    canvas = np.ascontiguousarray(image_rgb, dtype=np.uint8).copy()
    scale = max(canvas.shape[:2]) / 400.0
    weights = [w for *_, w, kept in regions if kept]
    top_weight = max(weights) if weights else 1.0
    shown = visible_regions(regions, (canvas.shape[1], canvas.shape[0]))
    if show_dropped:
        shown += [r for r in regions if not r[5]]
    for top, left, height, width, weight, kept in sorted(shown, key=lambda r: r[4]):
        colour = (40, 220, 90) if kept else (200, 60, 60)
        thickness = max(1, int(round(scale * (1 + 3 * weight / max(top_weight, 1e-6))))) if kept else max(1, int(scale))
        cv2.rectangle(canvas, (int(left), int(top)), (int(left + width - 1), int(top + height - 1)), colour, thickness)
    return canvas
