"""Scenes behind a pasted product: packaged photographs, procedural surfaces, clutter, shelves, a hand.

The cross-domain augmenter (:mod:`.augment`) pastes a catalog product onto one of these so that
the saliency branch learns "the product" rather than "the thing in the middle of a synthetic
backdrop". Every function draws from the ``numpy.random.Generator`` it is given (the order of the
draws is part of a seed's result) and works on float32 RGB canvases of side ``size``; ``xx`` /
``yy`` are the augmenter's normalised pixel grids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

_BACKGROUND_SIDE = 640  # packaged photographs are kept at most this large
P_STUDIO = 0.3  # of the procedural scenes, a light wall or paper backdrop (see studio_backdrop)

# Photographs inside installed wheels: (package, file inside it). Real scenes (a temple, a flower,
# a portrait) are the kind of clutter the demo's synthetic backdrops lack.
_PACKAGED_PHOTOS = (
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)
# scikit-image ships these in its wheel (others in skimage.data are downloaded on first use: not those).
# Pictures with lettering (page.png, text.png, logo.png) are left out: their text is not in any mask,
# and a background's unmarked text would teach the text branch to ignore text.
_SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                   "hubble_deep_field.jpg", "coins.png", "ihc.png", "brick.png", "grass.png", "gravel.png",
                   "camera.png", "retina.jpg")


def _package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it (importing matplotlib is slow)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


@lru_cache(maxsize=1)
def photo_backgrounds() -> tuple[np.ndarray, ...]:
    """Photographs that ship inside installed packages, as ``uint8`` RGB (longest side at most 640 px).

    scikit-learn's two sample images are always there (it is a dependency); matplotlib's sample
    portrait and scikit-image's bundled pictures are added when those packages are installed. Nothing
    is downloaded. Unreadable files are skipped.
    """
    files = [(_package_dir(pkg), rel) for pkg, rel in _PACKAGED_PHOTOS]
    files += [(_package_dir("skimage"), f"data/{name}") for name in _SKIMAGE_PHOTOS]
    out = []
    for folder, rel in files:
        if folder is None or not (folder / rel).is_file():
            continue
        image = cv2.imread(str(folder / rel), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < 64:
            continue
        f = min(1.0, _BACKGROUND_SIDE / max(image.shape[:2]))
        if f < 1.0:
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(image[:, :, ::-1]))
    logger.debug("%d packaged photographs for backgrounds", len(out))
    return tuple(out)


def hsv_colour(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    """A random colour of any hue with saturation and value drawn from the given ranges (RGB, 0..255)."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*s) * 255, rng.uniform(*v) * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def as_rgba(product: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a distractor into RGB and float alpha; an RGB catalog image's near-white is transparent."""
    arr = np.asarray(product)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4, 5) or arr.dtype != np.uint8:
        raise ValueError(f"distractors must be uint8 RGB, RGBA or RGBA+text arrays, got {arr.dtype} {arr.shape}")
    rgb = np.ascontiguousarray(arr[..., :3])
    if arr.shape[2] >= 4:
        return rgb, arr[..., 3].astype(np.float32) * np.float32(1 / 255)
    return rgb, (arr.min(axis=2) < 235).astype(np.float32)


def text_channel(product: np.ndarray) -> np.ndarray | None:
    """A distractor's text mask (float, 0..1) when it carries one as a fifth channel, else None."""
    arr = np.asarray(product)
    return arr[..., 4].astype(np.float32) * np.float32(1 / 255) if arr.ndim == 3 and arr.shape[2] == 5 else None


def _cover_text(text: np.ndarray | None, layer: np.ndarray, layer_text: np.ndarray | None = None) -> None:
    """Update a scene's text mask in place for a layer painted over it (with its own text, if any)."""
    if text is None:
        return
    layer = layer[..., 0] if layer.ndim == 3 else layer
    text *= 1.0 - layer
    if layer_text is not None:
        text += layer_text * layer


def unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(yy, xx): each pixel's row and column divided by `size`, as float32 (size, size) arrays."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / np.float32(size)
    return yy, xx


# ------------------------------------------------------------------------- backgrounds
def picture_background(backgrounds: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    s = size
    bg = backgrounds[int(rng.integers(len(backgrounds)))]
    h, w = bg.shape[:2]
    side = max(1, int(min(h, w) * rng.uniform(0.5, 1.0)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(bg[y:y + side, x:x + side], (s, s), interpolation=cv2.INTER_AREA if side > s
                      else cv2.INTER_LINEAR).astype(np.float32)
    if rng.random() < 0.4:  # the background out of focus behind a close-up product
        crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(1.0, 0.02 * s + 1.0))
    crop *= rng.uniform(0.8, 1.2, 3).astype(np.float32)  # another white balance than the photo's
    np.clip(crop, 0, 255, out=crop)
    return crop[:, ::-1].copy() if rng.random() < 0.5 else crop  # mirroring a table top is harmless


def studio_backdrop(size: int, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light wall or paper sweep, often with a table edge: the backdrop of many real product photos.

    Off-white, grey or beige with soft light falloff, never the catalog's flat pure white: a photo
    shot against a bright wall must not look like a catalog image, and the product on it, not the
    bright empty wall, is what is salient.
    """
    wall = hsv_colour(rng, (0.0, 0.15), (0.6, 0.88))
    th = rng.uniform(0, 2 * np.pi)
    ramp = (xx - 0.5) * np.cos(th) + (yy - 0.5) * np.sin(th)
    cx, cy = rng.uniform(0.2, 0.8, 2)
    falloff = 1.0 - rng.uniform(0.05, 0.3) * np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    light = (falloff + rng.uniform(0.0, 0.15) * ramp).astype(np.float32)[..., None]
    bg = wall * light
    if rng.random() < 0.6:  # the table the product stands on, below a horizon line
        horizon = rng.uniform(0.45, 0.9)
        table = hsv_colour(rng, (0.0, 0.4), (0.35, 0.9))
        below = (yy > horizon + 0.03 * np.sin(xx * rng.uniform(0, 3)))[..., None]
        bg = np.where(below, table * (0.85 + 0.3 * (yy[..., None] - horizon)), bg)
    noise = cv2.GaussianBlur(rng.standard_normal((size, size), dtype=np.float32), (0, 0), 1.0)
    return np.clip(bg + noise[..., None] * rng.uniform(0.0, 4.0), 0, 250).astype(np.float32)


def procedural_background(size: int, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A surface that is never plain white: a light backdrop, clouds, stripes, gradient, wood, tiles or noise."""
    s, yy, xx = size, yy, xx
    if rng.random() < P_STUDIO:
        return studio_backdrop(size, yy, xx, rng)
    # Mid-range values: a white backdrop is exactly the catalog cue the samples must not carry.
    c0 = hsv_colour(rng, (0.05, 0.8), (0.12, 0.85))
    c1 = hsv_colour(rng, (0.05, 0.8), (0.12, 0.85))
    k = int(rng.integers(3, 9))
    clouds = cv2.resize(rng.random((k, k), dtype=np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
    style = int(rng.integers(8))
    if style == 0:
        t = clouds
    elif style == 1:
        th = rng.uniform(0, np.pi)
        phase = (xx * np.cos(th) + yy * np.sin(th)) * rng.uniform(12, 70) + rng.uniform(0, 6.3)
        t = 0.5 + 0.5 * np.sin(phase)
    elif style == 2:
        if rng.random() < 0.5:
            th = rng.uniform(0, 2 * np.pi)
            t = (xx - 0.5) * np.cos(th) + (yy - 0.5) * np.sin(th) + 0.5
        else:
            cx, cy = rng.uniform(0, 1, 2)
            t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) * rng.uniform(0.8, 1.6)
    elif style == 3:  # wood grain: bent parallel rings
        phase = (yy + 0.15 * clouds) * rng.uniform(25, 90) + 3 * np.sin(xx * rng.uniform(2, 6))
        t = 0.5 + 0.5 * np.sin(phase)
    elif style == 4:  # tiles or a chequered cloth
        n = rng.uniform(3, 12)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2) * 0.7 + 0.3 * clouds
    elif style == 5:
        fine = cv2.GaussianBlur(rng.random((s, s), dtype=np.float32), (0, 0), rng.uniform(0.8, 3.0))
        t = 0.5 * clouds + (fine - 0.5) * 2.0 + 0.5
    elif style == 6:  # marble: veins along a turbulent phase
        turb = cv2.resize(rng.random((k * 3, k * 3), dtype=np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
        phase = (xx + yy * rng.uniform(-1, 1)) * rng.uniform(4, 12) + 4.0 * turb + 2.0 * clouds
        t = np.abs(np.sin(phase * np.pi)) ** rng.uniform(0.2, 0.6)
    else:  # an out-of-focus room: soft discs of light on a gradient
        t = 0.6 * clouds + 0.4 * yy
        discs = np.zeros((s, s), np.float32)
        for _ in range(int(rng.integers(5, 25))):
            cv2.circle(discs, (int(rng.integers(0, s)), int(rng.integers(0, s))),
                       int(rng.uniform(0.02, 0.12) * s), float(rng.uniform(0.3, 1.0)), -1, cv2.LINE_AA)
        t = t + cv2.GaussianBlur(discs, (0, 0), rng.uniform(1.0, 4.0))
    t = np.clip(t, 0.0, 1.0).astype(np.float32)[..., None]
    bg = c0 * (1.0 - t) + c1 * t
    for _ in range(int(rng.integers(0, 7))):  # stray objects
        centre = (int(rng.integers(0, s)), int(rng.integers(0, s)))
        axes = (int(rng.uniform(0.03, 0.25) * s), int(rng.uniform(0.03, 0.25) * s))
        colour = tuple(float(v) for v in hsv_colour(rng, (0.0, 0.9), (0.1, 0.95)))
        if rng.random() < 0.7:
            cv2.ellipse(bg, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(bg, centre, (centre[0] + axes[0], centre[1] + axes[1]), colour, -1)
    return bg


def paste_distractor(canvas: np.ndarray, distractors: Sequence[np.ndarray], size: int,
                     rng: np.random.Generator, text: np.ndarray | None = None) -> np.ndarray:
    """Another product lying around: any rotation, often cut by the frame's edge.

    `text`, when given, is the scene's text mask, updated in place: the distractor hides what it
    covers and adds its own lettering when it carries a text channel (see :func:`text_channel`).
    """
    s = size
    product = distractors[int(rng.integers(len(distractors)))]
    rgb, a = as_rgba(product)
    h, w = a.shape
    scale = rng.uniform(0.3, 0.7) * s / max(h, w)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-180, 180)), scale)
    m[:, 2] += rng.uniform(-0.1, 1.1, 2) * s - np.array([w / 2, h / 2])
    warp = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
    layer = cv2.warpAffine(rgb, m, (s, s), **warp).astype(np.float32)
    la = cv2.warpAffine(a, m, (s, s), **warp)[..., None]
    lettering = text_channel(product)
    if text is not None:
        _cover_text(text, la, None if lettering is None else cv2.warpAffine(lettering, m, (s, s), **warp))
    return canvas * (1.0 - la) + layer * la


def paste_shape(canvas: np.ndarray, size: int, xx: np.ndarray, rng: np.random.Generator,
                text: np.ndarray | None = None) -> np.ndarray:
    """A product-like object that is not in the catalog: a bottle, tube, jar or box in flat colours.

    `text`, when given, is the scene's text mask: the shape hides the lettering it covers (in place).
    """
    s = size
    w, h = rng.uniform(0.06, 0.3, 2) * s
    layer = np.zeros((s, s), np.float32)
    colour = hsv_colour(rng, (0.0, 0.9), (0.15, 0.95))
    x, y = rng.uniform(-0.1, 1.0, 2) * s
    kind = int(rng.integers(3))
    body = (int(x), int(y + 0.25 * h), int(x + w), int(y + h))
    if kind == 0:  # bottle: body, shoulders and a cap
        cv2.rectangle(layer, body[:2], body[2:], 1.0, -1)
        cv2.ellipse(layer, (int(x + w / 2), int(y + 0.25 * h)), (int(w / 2), int(0.12 * h)), 0, 180, 360, 1.0, -1)
        cv2.rectangle(layer, (int(x + 0.35 * w), int(y)), (int(x + 0.65 * w), int(y + 0.2 * h)), 1.0, -1)
    elif kind == 1:  # jar or round compact
        cv2.ellipse(layer, (int(x + w / 2), int(y + h / 2)), (int(w / 2), int(h / 3)), 0, 0, 360, 1.0, -1)
    else:  # box
        cv2.rectangle(layer, (int(x), int(y)), (int(x + w), int(y + h)), 1.0, -1)
    m = cv2.getRotationMatrix2D((float(x + w / 2), float(y + h / 2)), float(rng.uniform(-40, 40)), 1.0)
    layer = cv2.warpAffine(layer, m, (s, s))[..., None]
    _cover_text(text, layer)
    shade = 0.75 + 0.35 * (0.5 + 0.5 * np.sin((xx - x / s) * rng.uniform(6, 20)))[..., None]
    return canvas * (1.0 - layer) + colour * shade * layer


def shelf(canvas: np.ndarray, distractors: Sequence[np.ndarray], size: int,
          rng: np.random.Generator, text: np.ndarray | None = None) -> np.ndarray:
    """Shelf boards with rows of other products standing on them (behind the pasted product).

    `text`, when given, is the scene's text mask, updated in place with the standing products' lettering.
    """
    s = size
    board = hsv_colour(rng, (0.0, 0.5), (0.3, 0.95))
    rows = int(rng.integers(2, 4))
    pitch = s / rows
    offset = rng.uniform(0, pitch)
    for r in range(rows + 1):
        y = int(offset + r * pitch - pitch)
        if y + 4 < 0 or y >= s:
            continue
        thick = max(3, int(rng.uniform(0.03, 0.07) * s))
        canvas[max(0, y):min(s, y + thick)] = board
        if text is not None:
            text[max(0, y):min(s, y + thick)] = 0.0
        canvas[max(0, y + thick):min(s, y + thick + 2)] *= 0.6  # the board's edge shadow
        # Products standing on the board above this one's top edge.
        x = rng.uniform(-0.1, 0.1) * s
        while x < s:
            w = rng.uniform(0.08, 0.2) * s
            h = min(pitch * rng.uniform(0.5, 0.9), 0.95 * pitch)
            if len(distractors) and rng.random() < 0.6:
                product = distractors[int(rng.integers(len(distractors)))]
                rgb, a = as_rgba(product)
                lettering = text_channel(product)
                f = min(w / a.shape[1], h / a.shape[0])
                pw, ph = max(1, int(a.shape[1] * f)), max(1, int(a.shape[0] * f))
                x0, y0 = int(x), int(y - ph)
                xs0, ys0, xs1, ys1 = max(0, x0), max(0, y0), min(s, x0 + pw), min(s, y0 + ph)
                if xs1 > xs0 and ys1 > ys0:
                    prgb = cv2.resize(rgb, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
                    pa = cv2.resize(a, (pw, ph), interpolation=cv2.INTER_LINEAR)[..., None]
                    crop = (slice(ys0 - y0, ys1 - y0), slice(xs0 - x0, xs1 - x0))
                    region = canvas[ys0:ys1, xs0:xs1]
                    canvas[ys0:ys1, xs0:xs1] = region * (1 - pa[crop]) + prgb[crop] * pa[crop]
                    if text is not None:
                        pt = None if lettering is None else cv2.resize(lettering, (pw, ph), interpolation=cv2.INTER_LINEAR)
                        _cover_text(text[ys0:ys1, xs0:xs1], pa[crop], None if pt is None else pt[crop])
            else:
                colour = hsv_colour(rng, (0.0, 0.9), (0.15, 0.95))
                x0, y0 = int(x), int(y - h)
                cv2.rectangle(canvas, (x0, y0), (int(x + w), y), tuple(float(c) for c in colour), -1)
                if text is not None:
                    text[max(0, y0):max(0, y), max(0, x0):max(0, int(x + w))] = 0.0
                cv2.rectangle(canvas, (int(x + 0.3 * w), y0 - int(0.08 * h)), (int(x + 0.7 * w), y0),
                              tuple(float(c) * 0.6 for c in colour), -1)
            x += w + rng.uniform(0.0, 0.05) * s
    return canvas


def hand(canvas: np.ndarray, alpha: np.ndarray, size: int,
         rng: np.random.Generator, text: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A hand holding the product: a palm behind one side and fingers wrapped over the product.

    Returns the canvas and the hand's coverage; only the fingers (drawn over the product) hide it.
    `text`, when given, is the scene's text mask: the whole hand hides the lettering it covers (in place).
    """
    s = size
    cover = np.zeros((s, s), np.float32)
    ys, xs = np.nonzero(alpha > 0.5)
    if xs.size == 0:
        return canvas, cover
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    bw, bh = max(1, x1 - x0), max(1, y1 - y0)
    tone = hsv_colour(rng, (0.2, 0.6), (0.3, 0.95))
    tone[:] = np.sort(tone)[::-1]  # R >= G >= B: a skin tone from pale to dark
    from_left = rng.random() < 0.5
    edge_x = x0 if from_left else x1
    cy = rng.uniform(y0 + 0.3 * bh, y1 - 0.1 * bh)
    finger_w = max(2, int(rng.uniform(0.05, 0.09) * s))
    palm_w = int(rng.uniform(1.0, 1.6) * 4 * finger_w)
    behind = np.zeros((s, s), np.float32)
    # Palm and wrist: beside the product, reaching out of the frame.
    pc = (int(edge_x + (-1 if from_left else 1) * 0.6 * palm_w), int(cy))
    cv2.ellipse(behind, pc, (int(0.6 * palm_w), int(0.55 * palm_w)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    wrist_end = (0 if from_left else s - 1, int(cy + rng.uniform(0.2, 0.8) * s))
    cv2.line(behind, pc, wrist_end, 1.0, int(0.8 * palm_w), cv2.LINE_AA)
    # Fingers: capsules from the palm across the product's edge, one above the other.
    n = int(rng.integers(2, 5))
    reach = rng.uniform(0.15, 0.45) * bw
    for i in range(n):
        fy = int(cy - 0.5 * palm_w + (i + 0.5) * palm_w / n)
        start = (pc[0], fy)
        end = (int(edge_x + (1 if from_left else -1) * reach * rng.uniform(0.7, 1.0)), fy)
        cv2.line(cover, start, end, 1.0, finger_w, cv2.LINE_AA)
    # The thumb on the near side, shorter.
    thumb_y = int(cy - 0.6 * palm_w)
    cv2.line(cover, (pc[0], int(cy)), (int(edge_x + (1 if from_left else -1) * 0.5 * reach), thumb_y),
             1.0, int(1.1 * finger_w), cv2.LINE_AA)
    behind = np.maximum(behind * (1.0 - alpha), cover)  # the palm is behind the product, the fingers in front
    shade = (0.8 + 0.25 * cv2.GaussianBlur(behind, (0, 0), max(1.0, finger_w / 2)))[..., None]
    h3 = behind[..., None]
    _cover_text(text, behind)
    return canvas * (1.0 - h3) + tone * shade * h3, cover
