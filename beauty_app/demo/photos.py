"""The two image domains: e-commerce catalog shots on white, and "real photos" of the same product.

A query photo puts the product on a cluttered background with rotation, perspective, re-lighting,
occlusion, blur, sensor noise and JPEG artefacts. Both return the product's mask as well.
"""

from __future__ import annotations


import functools
import io
from collections.abc import Sequence


import cv2
import numpy as np
from PIL import Image, ImageDraw


from beauty_app.demo.drawing import box_sprite, product_sprite
from beauty_app.demo.names import KINDS, Product, hsv, new_product, random_colour


def _place(sprite: np.ndarray, size: int, fill: float, centre: Sequence[float], angle: float = 0.0,
           persp: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Warp ``sprite`` so its bounding box's longer side is ``fill`` x size, centred at ``centre``."""
    ys, xs = np.nonzero(sprite[..., 3])
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    src = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    rel = (src - [(x0 + x1) / 2, (y0 + y1) / 2]) * (fill * size / max(x1 - x0, y1 - y0))
    dst = rel @ np.float32([[c, s], [-s, c]]) + np.float32(centre) * size
    if persp and rng is not None:  # corners move independently: a camera not square to the product
        dst += rng.uniform(-persp, persp, (4, 2)) * fill * size
    h = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    return cv2.warpPerspective(sprite, h, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))


def _over(canvas: np.ndarray, layer: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    alpha = layer[..., 3:] * np.float32(opacity / 255.0)
    return canvas + (layer[..., :3] - canvas) * alpha


def _shadow(canvas: np.ndarray, layer: np.ndarray, strength: float, offset: int) -> np.ndarray:
    a = cv2.GaussianBlur(np.roll(layer[..., 3], offset, axis=0), (0, 0), max(1.0, offset * 0.8))
    return canvas * (1 - a[..., None] * np.float32(strength / 255))


def render_catalog_image(product: Product, view: int, size: int,
                         rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """Draw one e-commerce view: 0 front, 1 zoomed and offset, 2 with its box, >2 another front shot.

    Returns the RGB image and a boolean mask of the product (and its box) pixels.
    """
    sprite = product_sprite(product, size)
    canvas = np.full((size, size, 3), 255.0 if rng.random() < 0.6 else rng.uniform(244, 254), np.float32)
    if view == 2:
        box_centre = (rng.uniform(0.36, 0.42), 0.46)
        box = _place(box_sprite(product, size), size, rng.uniform(0.62, 0.7), box_centre)
        fg = _place(sprite, size, rng.uniform(0.56, 0.64), (rng.uniform(0.62, 0.68), 0.56))
        canvas = _over(_shadow(canvas, box, 0.1, size // 40), box)
        mask = (box[..., 3] > 127) | (fg[..., 3] > 127)
    else:
        fill = rng.uniform(0.86, 0.94) if view == 1 else rng.uniform(0.72, 0.82)
        jitter = rng.uniform(-0.04, 0.04, 2) if view == 1 else rng.uniform(-0.015, 0.015, 2)
        fg = _place(sprite, size, fill, 0.5 + jitter, rng.uniform(-5, 5) if view >= 1 else 0.0)
        mask = fg[..., 3] > 127
    canvas = _over(_shadow(canvas, fg, 0.12, size // 40), fg)
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8)), mask


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return yy, xx


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A cluttered surface (clouds, stripes, wood grain or tiles) with things and stray products on it."""
    c0, c1 = (np.float32(hsv(rng.random(), rng.uniform(0.1, 0.7), rng.uniform(0.15, 0.8))) for _ in range(2))
    yy, xx = _grid(size)
    clouds = cv2.resize(rng.random((6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    style = int(rng.integers(4))
    if style == 0:
        t = clouds
    elif style == 1:
        th = rng.uniform(0, np.pi)
        t = 0.5 + 0.5 * np.sin((xx * np.cos(th) + yy * np.sin(th)) * rng.uniform(15, 60))
    elif style == 2:
        t = 0.5 + 0.5 * np.sin((yy + 0.15 * clouds) * rng.uniform(30, 80) + 3 * np.sin(xx * 4))
    else:
        n = rng.uniform(4, 10)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2) * 0.7 + 0.3 * clouds
    img = Image.fromarray(np.clip(c0 + (c1 - c0) * t[..., None], 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 9))):  # round things and slabs (books, phones) on the table
        (x, y), r, th = rng.uniform(-0.1, 1.1, 2) * size, rng.uniform(0.03, 0.2) * size, rng.uniform(0, np.pi)
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=random_colour(rng))
        else:
            (ux, uy), (vx, vy) = (np.cos(th) * r, np.sin(th) * r), (-np.sin(th) * r / 2, np.cos(th) * r / 2)
            signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))
            draw.polygon([(x + i * ux + j * vx, y + i * uy + j * vy) for i, j in signs], fill=random_colour(rng))
    out = np.asarray(img).astype(np.float32)
    for _ in range(int(rng.integers(0, 3))):  # other products lying around
        other = product_sprite(new_product(-1, str(rng.choice(KINDS)), rng), size)
        layer = _place(other, size, rng.uniform(0.3, 0.6), rng.uniform(0, 1, 2), rng.uniform(-90, 90))
        out = _over(out, layer, rng.uniform(0.6, 1.0))
    # the table is out of focus behind the product
    return cv2.GaussianBlur(out, (0, 0), rng.uniform(0.6, 2.0) * size / 256)


def _occlude(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cover at most a quarter of the product with a finger-like or blob shape; return the visible mask."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return mask
    k, elong = int(rng.integers(xs.size)), rng.uniform(1.0, 3.0)
    a = np.sqrt(rng.uniform(0.05, 0.22) * xs.size * elong / np.pi)  # ellipse area <= 22 % of the product's
    if rng.random() < 0.5:
        colour = hsv(rng.uniform(0.02, 0.1), rng.uniform(0.2, 0.5), rng.uniform(0.5, 0.9))  # skin
    else:
        colour = random_colour(rng)
    centre, axes = (int(xs[k]), int(ys[k])), (max(1, int(a)), max(1, int(a / elong)))
    angle = rng.uniform(0, 180)
    cv2.ellipse(img, centre, axes, angle, 0, 360, tuple(float(v) for v in colour), -1, cv2.LINE_AA)
    occ = cv2.ellipse(np.zeros(mask.shape, np.uint8), centre, axes, angle, 0, 360, 255, -1)
    return mask & (occ == 0)


def query_photo_jpeg(product: Product, size: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """The JPEG bytes of a "real photo" of ``product`` and its visible-product mask."""
    canvas = _background(size, rng)
    fill = rng.uniform(0.45, 0.85)
    centre = 0.5 + rng.uniform(-0.4, 0.4, 2) * (1 - fill)
    fg = _place(product_sprite(product, size), size, fill, centre, rng.uniform(-30, 30), rng.uniform(0, 0.1), rng)
    canvas = _over(_shadow(canvas, fg, rng.uniform(0.2, 0.5), max(1, size // 50)), fg)
    mask = fg[..., 3] > 127
    if rng.random() < 0.6:
        mask = _occlude(canvas, mask, rng)
    yy, xx = _grid(size)
    th = rng.uniform(0, 2 * np.pi)  # light falling from one side
    ramp = 1 + np.float32(rng.uniform(0, 0.4)) * ((xx - 0.5) * np.cos(th) + (yy - 0.5) * np.sin(th))
    img = np.clip(canvas * ramp[..., None] + 0.5, 0, 255).astype(np.uint8)
    # colour cast, brightness, contrast and gamma folded into one per-channel lookup table
    v = np.linspace(0, 1, 256)[:, None] * rng.uniform(0.85, 1.15, 3) * rng.uniform(0.75, 1.2)
    v = np.clip((v - 0.45) * rng.uniform(0.7, 1.2) + 0.45, 0, 1) ** rng.uniform(0.7, 1.4)
    img = cv2.LUT(img, (v * 255 + 0.5).astype(np.uint8).reshape(1, 256, 3))
    if rng.random() < 0.2:  # camera shake: a short line kernel at a random angle
        k = np.zeros((7, 7), np.float32)
        k[3, : int(rng.integers(3, 8))] = 1
        k = cv2.warpAffine(k, cv2.getRotationMatrix2D((3, 3), rng.uniform(0, 180), 1), (7, 7))
        img = cv2.filter2D(img, -1, k / k.sum())
    else:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.4) * size / 256)
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(1.5, 8))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img + noise + 0.5, 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=int(rng.integers(40, 86)))
    return buf.getvalue(), mask


def render_query_photo(product: Product, size: int,
                       rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """Draw a "real photo" of ``product``: the JPEG-degraded RGB image and the visible-product mask."""
    data, mask = query_photo_jpeg(product, size, rng)
    return Image.open(io.BytesIO(data)).convert("RGB"), mask
