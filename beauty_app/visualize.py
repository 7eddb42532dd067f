"""Heatmap overlays and region drawings for explanations (numpy/OpenCV; used by the GUI and exports)."""

from __future__ import annotations

from collections.abc import Sequence

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


def draw_regions(image_rgb: np.ndarray, regions: Sequence[tuple[int, int, int, int, float, bool]],
                 show_dropped: bool = False) -> np.ndarray:
    """Draw SR-MAC regions (top, left, h, w, weight, kept): kept ones in green, thicker with more weight."""
    canvas = np.ascontiguousarray(image_rgb, dtype=np.uint8).copy()
    scale = max(canvas.shape[:2]) / 400.0
    weights = [w for *_, w, kept in regions if kept]
    top_weight = max(weights) if weights else 1.0
    for top, left, height, width, weight, kept in sorted(regions, key=lambda r: r[4]):
        if not kept and not show_dropped:
            continue
        colour = (40, 220, 90) if kept else (200, 60, 60)
        thickness = max(1, int(round(scale * (1 + 3 * weight / max(top_weight, 1e-6))))) if kept else max(1, int(scale))
        cv2.rectangle(canvas, (int(left), int(top)), (int(left + width - 1), int(top + height - 1)), colour, thickness)
    return canvas
