"""Printed text drawn into training photos, with its exact mask (SynthText-style).

The catalog's own lettering teaches the text branch one generator's font at one size. Real photos
show brand names in many fonts and sizes, bottles with vertical lines, price tags and shelf labels
around the product. Text drawn here on the product and around it, with the mask of every line,
teaches the branch printed text as such. Fonts come from installed packages (matplotlib's, the
system's DejaVu) and Pillow's built-in font; nothing is downloaded.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

_SYSTEM_FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/share/fonts/opentype", "/Library/Fonts",
                     "C:/Windows/Fonts")
_MAX_FONTS = 60
# Font files whose glyphs are symbols, not letters.
_SYMBOL_FONTS = ("cmex", "cmsy", "cmmi", "stixsiz", "stixnonuni", "symbol", "webdings", "wingding",
                 "lastresort", "dejavumath", "dejavusansdisplay", "dejavuserifdisplay")
_CONSONANTS = "bcdfghjklmnprstvwxz"
_VOWELS = "aeiouy"
_TAGS = ("SPF {n}", "{n} ml", "{n} g", "{n}.{m} FL OZ", "{n}%", "NO. {n}", "${n}.99", "{n} HOURS")
_WORDS = ("cream", "serum", "matte", "gloss", "hydra", "repair", "night", "daily", "lotion", "color",
          "beauty", "paris", "natural", "intense", "volume", "care", "pure", "shine", "fresh", "lift")


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """TrueType/OpenType files of installed packages and the system (letter fonts only, sorted)."""
    dirs = [Path(d) for d in _SYSTEM_FONT_DIRS]
    try:
        import importlib.util

        spec = importlib.util.find_spec("matplotlib")
        if spec and spec.submodule_search_locations:
            dirs.append(Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf")
    except (ImportError, ValueError):
        pass
    found: dict[str, str] = {}  # file name -> path: the same font installed twice counts once
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            name = path.name.lower()
            if path.suffix.lower() in (".ttf", ".otf") and not name.startswith(_SYMBOL_FONTS) \
                    and _draws_letters(str(path)):
                found.setdefault(path.name, str(path))
    fonts = tuple(sorted(found.values())[:_MAX_FONTS])
    logger.debug("%d font files for scene text", len(fonts))
    return fonts


def _draws_letters(path: str) -> bool:
    """Whether a font has Latin letters (math and symbol fonts draw a placeholder box for them)."""
    try:
        font = ImageFont.truetype(path, 24)
    except OSError:
        return False
    missing = bytes(font.getmask("\ue000"))  # a private-use code point: the font's placeholder glyph
    return all(bytes(font.getmask(ch)) != missing for ch in "Aag")


@lru_cache(maxsize=2048)  # fonts x pixel sizes: a small cache would reload font files all the time
def _font(path: str | None, px: int) -> ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size=px)
    try:
        return ImageFont.truetype(path, px)
    except OSError:  # an unreadable font file: Pillow's own font instead
        return ImageFont.load_default(size=px)


def random_words(rng: np.random.Generator) -> str:
    """A brand-like made-up word, a product word, a size tag or a short phrase, in a random case."""
    kind = rng.random()
    if kind < 0.45:
        word = "".join(_CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(len(_VOWELS))]
                       for _ in range(int(rng.integers(2, 5))))
        if rng.random() < 0.3:
            word += " " + _WORDS[int(rng.integers(len(_WORDS)))]
    elif kind < 0.75:
        n = int(rng.integers(1, 4))
        word = " ".join(_WORDS[int(rng.integers(len(_WORDS)))] for _ in range(n))
    else:
        word = _TAGS[int(rng.integers(len(_TAGS)))].format(n=int(rng.integers(1, 100)), m=int(rng.integers(10)))
    case = rng.random()
    return word.upper() if case < 0.5 else word.title() if case < 0.8 else word


def _contrasting_colour(patch_mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A colour that reads on a surface of this mean colour: dark on light, light on dark."""
    light = float(patch_mean.mean()) > 128
    value = rng.uniform(0, 90) if light else rng.uniform(170, 255)
    tint = rng.uniform(-60, 60, 3) * (rng.random() < 0.5)
    return np.clip(value + tint, 0, 255).astype(np.float32)


def draw_text(canvas: np.ndarray, size: int, rng: np.random.Generator,
              region: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one line of text into `canvas` (float32 RGB, side `size`); returns it and the line's mask.

    Args:
        region: Optional float mask; when given, the line is centred on one of its pixels (text on
            the product's surface).

    The mask is the line's filled box (as a text detector marks a line), warped with the glyphs.
    """
    s = size
    fonts = font_files()
    path = fonts[int(rng.integers(len(fonts)))] if fonts and rng.random() < 0.85 else None
    px = int(np.clip(rng.lognormal(np.log(0.07 * s), 0.45), 7, 0.22 * s))
    font = _font(path, px)
    text = random_words(rng)
    left, top, right, bottom = font.getbbox(text)
    tw, th = max(1, right - left), max(1, bottom - top)
    pad = max(1, th // 6)
    glyphs = Image.new("L", (tw + 2 * pad, th + 2 * pad), 0)
    ImageDraw.Draw(glyphs).text((pad - left, pad - top), text, fill=255, font=font)
    ink = np.asarray(glyphs, np.float32) * np.float32(1 / 255)
    box = np.zeros_like(ink)
    box[max(0, pad // 2):ink.shape[0] - pad // 2, max(0, pad // 2):ink.shape[1] - pad // 2] = 1.0

    if region is not None and (region > 0.5).any():
        ys, xs = np.nonzero(region > 0.5)
        k = int(rng.integers(xs.size))
        cx, cy = float(xs[k]), float(ys[k])
    else:
        cx, cy = rng.uniform(0.05, 0.95, 2) * s
    angle = 90.0 * rng.choice((-1, 1)) if rng.random() < 0.15 else rng.normal(0, 8)
    fit = min(1.0, 0.9 * s / max(ink.shape))  # a line never longer than the frame
    m = cv2.getRotationMatrix2D((ink.shape[1] / 2, ink.shape[0] / 2), float(angle), fit)
    m[:, 2] += np.array([cx - ink.shape[1] / 2, cy - ink.shape[0] / 2])
    warp = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
    ink_w = cv2.warpAffine(ink, m, (s, s), **warp)
    box_w = cv2.warpAffine(box, m, (s, s), **warp)
    ys, xs = np.nonzero(box_w > 0.5)
    if xs.size == 0:
        return canvas, np.zeros((s, s), np.float32)
    patch = canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1].reshape(-1, 3)
    colour = _contrasting_colour(patch.mean(axis=0), rng)
    if rng.random() < 0.25:  # a label: the line printed on a plain band of its own
        band = _contrasting_colour(colour, rng)
        b3 = box_w[..., None]
        canvas = canvas * (1.0 - b3) + band * b3
    a3 = ink_w[..., None]
    return canvas * (1.0 - a3) + colour * a3, np.clip(box_w, 0.0, 1.0)
