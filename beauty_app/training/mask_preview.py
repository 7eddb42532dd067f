"""A contact sheet of cached pseudo masks over their images (``beauty-app dataset masks --preview``)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from beauty_app.fileio import atomic_write_bytes
from beauty_app.errors import ImageLoadError, UserError
from beauty_app.imaging import load_image
from beauty_app.training.mask_cache import cached_statuses, load_cached_masks
from beauty_app.training.masks import STATUS_OK, STATUS_UNREADABLE, check_rgb_image, resize_mask

def overlay_masks(image_rgb: np.ndarray, saliency: np.ndarray | None, text: np.ndarray | None) -> np.ndarray:
    """Draw masks over an image: saliency as a green tint with its contour, text lines as red boxes."""
    out = check_rgb_image(image_rgb).copy()
    h, w = out.shape[:2]
    if saliency is not None:
        sal = resize_mask(np.where(saliency > 127, 255, 0).astype(np.uint8), w, h)
        on = sal > 0
        out[on] = (out[on] * 0.6 + np.array([0, 255, 0]) * 0.4).astype(np.uint8)
        contours, _ = cv2.findContours(sal, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (0, 200, 0), 1, cv2.LINE_AA)
    if text is not None:
        txt = resize_mask(np.where(text > 127, 255, 0).astype(np.uint8), w, h)
        contours, _ = cv2.findContours(txt, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            cv2.rectangle(out, (x, y), (x + bw - 1, y + bh - 1), (230, 0, 0), 1)
    return out


_CAPTION_H = 16


def mask_contact_sheet(items: Sequence[tuple[str, Path]], cache_dir: str | os.PathLike[str],
                       out_png: str | os.PathLike[str], *, columns: int = 6, thumb: int = 192,
                       limit: int = 48) -> Path:
    """Preview cached masks over their images as one PNG grid.

    Each cell is a ``thumb`` x ``thumb`` letterboxed image with the saliency mask (green) and text
    boxes (red), captioned with the id and, for failures, the reason. The sheet is
    ``min(columns, n) * thumb`` wide and ``rows * (thumb + 16)`` high for ``n = min(len(items), limit)``.

    Raises:
        UserError: there are no items, or the PNG cannot be written.
    """
    if columns < 1 or thumb < 16 or limit < 1:
        raise ValueError("columns and limit must be positive and thumb at least 16 pixels")
    chosen = list(items)[:limit]
    if not chosen:
        raise UserError("There are no images to put on the mask contact sheet.")
    cache_dir = Path(cache_dir)
    statuses = cached_statuses(cache_dir)
    cols = min(columns, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    cell_h = thumb + _CAPTION_H
    sheet = Image.new("RGB", (cols * thumb, rows * cell_h), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, (item_id, path) in enumerate(chosen):
        x0, y0 = (k % cols) * thumb, (k // cols) * cell_h
        status = statuses.get(item_id, "not cached")
        try:
            img = np.asarray(load_image(path, max_side=thumb))
        except ImageLoadError:
            img, status = None, STATUS_UNREADABLE
        if img is not None:
            sal, txt = load_cached_masks(cache_dir, item_id)
            tile = Image.fromarray(overlay_masks(img, sal, txt))
            sheet.paste(tile, (x0 + (thumb - tile.width) // 2, y0 + (thumb - tile.height) // 2))
        caption = item_id if status == STATUS_OK else f"{item_id}: {status}"
        colour = (220, 220, 220) if status == STATUS_OK else (255, 110, 110)
        draw.text((x0 + 3, y0 + thumb + 2), _fit(draw, caption, font, thumb - 6), fill=colour, font=font)
    out = Path(out_png)
    buf = _encode_png(sheet)
    try:
        atomic_write_bytes(out, buf)
    except OSError as exc:
        raise UserError(f'The contact sheet "{out}" cannot be written ({exc.strerror or exc}).') from None
    return out


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
