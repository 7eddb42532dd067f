"""Synthetic beauty products: an offline stand-in for Perfect-500K.

Each product is a kind (lipstick, tube, jar, ...) plus its own proportions, colours and printed
label. The catalog domain shows it on a white e-commerce background (1-3 views, each with a
Perfect-500K style title); the query domain shows it as a "real photo": cluttered background,
rotation, perspective, re-lighting, occlusion, blur, sensor noise and JPEG artefacts.

All randomness comes from ``numpy.random.Generator`` streams seeded by ``(seed, stream, index)``,
so the same arguments give byte-identical files, with or without worker processes.
"""

from __future__ import annotations

import colorsys
import csv
import functools
import io
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from beauty_app.errors import UserError

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]

# kind -> (words sellers use for it, sizes/shades printed under the product line)
_KIND_TEXT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lipstick": (("Lipstick", "Lip Stick", "Matte Lipstick", "Lip Color"), ("No. 101", "No. 214", "No. 520")),
    "facial_cleanser": (("Facial Cleanser", "Face Wash", "Foaming Cleanser", "Cleansing Foam"),
                        ("100 ml", "150 ml", "200 ml")),
    "sunscreen": (("Sunscreen", "Sun Screen", "Sunblock Lotion", "Sun Cream"),
                  ("SPF 15", "SPF 30", "SPF 50+")),
    "eye_shadow": (("Eyeshadow Palette", "Eye Shadow Palette", "Eye Shadow"), ("9 Shades", "12 Shades")),
    "razor": (("Razor", "Shaving Razor", "Razor for Women"), ("3 Blades", "5 Blades", "Sensitive")),
    "face_mask": (("Sheet Mask", "Face Mask", "Facial Mask"), ("1 Sheet", "25 ml", "5 Pack")),
    "hair_dryer": (("Hair Dryer", "Hairdryer", "Blow Dryer", "Ionic Hair Dryer"),
                   ("1800 W", "2000 W", "2200 W")),
    "eye_mask": (("Eye Mask", "Sleep Mask", "Sleeping Eye Mask"), ("100% Silk", "Cooling", "3D Contour")),
    "moisturizer": (("Moisturizer", "Moisturiser", "Face Cream", "Moisturizing Cream"),
                    ("30 ml", "50 ml", "75 ml")),
    "spray": (("Spray", "Setting Spray", "Hair Spray", "Body Mist Spray"), ("100 ml", "150 ml", "250 ml")),
    "nail_polish": (("Nail Polish", "Nail Lacquer", "Nail Varnish"), ("No. 12", "No. 48", "15 ml")),
    "perfume": (("Perfume", "Eau de Parfum", "Eau de Toilette", "Fragrance"),
                ("50 ml", "100 ml", "Gift Size")),
    "mascara": (("Mascara", "Volumizing Mascara", "Lash Mascara"), ("Volume", "Waterproof", "Length")),
    "shampoo": (("Shampoo", "Hair Shampoo", "Clarifying Shampoo"), ("250 ml", "400 ml", "500 ml")),
}
KINDS: tuple[str, ...] = tuple(_KIND_TEXT)
KIND_SYNONYMS: dict[str, tuple[str, ...]] = {k: v[0] for k, v in _KIND_TEXT.items()}
_LINE_WORDS = ("HYDRA", "GLOW", "VELVET", "PURE", "AQUA", "SILK", "RADIANT", "MATTE", "BLOOM", "NUDE",
               "ROSE", "LUXE", "DAILY", "ULTRA", "SOFT", "FRESH", "GOLD", "VITAL", "CLEAR", "DEEP",
               "CALM", "REPAIR", "BRIGHT", "SMOOTH", "NIGHT", "DEW", "PRO", "CITRUS")
_FILLERS = ("for Dry Skin", "Paraben Free", "Cruelty Free", "Long Lasting", "for All Skin Types",
            "Travel Size", "Vegan", "Dermatologist Tested", "Fragrance Free", "Lightweight",
            "Pack of 2", "1 Count", "New", "Best Seller", "for Women", "Unisex", "Gift Idea")
_METALS: tuple[RGB, ...] = ((205, 170, 90), (192, 192, 198), (28, 28, 32), (238, 238, 236), (150, 110, 80))
_ONSETS = ("b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "cl", "fl", "gr", "pr", "st", "tr")
_CODAS = ("", "", "n", "r", "s", "l")


@dataclass(frozen=True)
class Product:
    """One synthetic product: its kind, printed text, colours and kind-specific proportions."""

    index: int
    kind: str
    brand: str
    line: str  # product line, printed in capitals: "HYDRA GLOW"
    detail: str  # size or shade as a listing writes it: "50 ml", "SPF 30", "No. 214"
    body: RGB
    cap: RGB
    trim: RGB  # metal rings, handles' inlays
    label: RGB
    ink: RGB  # text colour on the label
    accent: RGB  # lipstick bullet, polish, grips
    shades: tuple[RGB, ...]  # palette pans
    geom: tuple[float, float, float, float]  # proportions in [0, 1], read by the kind's drawer
    variant: int  # discrete style (cap type, bottle shape, pan layout), 0..2
    style: int  # brand lettering: 0 upper case, 1 title case, 2 spaced capitals


@dataclass
class DemoDataset:
    """Where ``generate_demo`` put the files, and how many of each it wrote."""

    root: Path
    catalog_csv: Path
    queries_dir: Path
    truth_csv: Path
    masks_dir: Path | None
    n_products: int
    n_catalog: int
    n_queries: int


# ----------------------------------------------------------------------------- products and text
def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _colour(rng: np.random.Generator) -> RGB:
    if rng.random() < 0.18:  # white/cream packaging is common and makes saliency harder
        return _hsv(rng.random(), rng.uniform(0, 0.12), rng.uniform(0.88, 0.97))
    return _hsv(rng.random(), rng.uniform(0.25, 0.9), rng.uniform(0.3, 0.95))


def _on(c: Sequence[int]) -> RGB:
    """A text colour readable on ``c``."""
    return (20, 20, 24) if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 else (245, 245, 240)


def _word(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))
    return ("".join(str(rng.choice(_ONSETS)) + "aeiou"[rng.integers(5)] for _ in range(n))
            + str(rng.choice(_CODAS))).capitalize()


def _new_product(index: int, kind: str, rng: np.random.Generator) -> Product:
    body = _colour(rng)
    label = _colour(rng) if rng.random() < 0.5 else (246, 244, 238)
    cap = _METALS[int(rng.integers(len(_METALS)))] if rng.random() < 0.6 else _colour(rng)
    words = rng.choice(_LINE_WORDS, size=int(rng.integers(1, 3)), replace=False)
    return Product(
        index=index, kind=kind, brand=_word(rng), line=" ".join(words),
        detail=str(rng.choice(_KIND_TEXT[kind][1])), body=body, cap=cap,
        trim=_METALS[int(rng.integers(len(_METALS)))], label=label, ink=_on(label),
        accent=_hsv(rng.random(), rng.uniform(0.45, 0.95), rng.uniform(0.35, 0.9)),
        shades=tuple(_colour(rng) for _ in range(18)),
        geom=tuple(float(x) for x in rng.random(4)),  # type: ignore[arg-type]
        variant=int(rng.integers(3)), style=int(rng.integers(3)))


def make_products(n: int, seed: int = 0, kinds: Sequence[str] | None = None) -> list[Product]:
    """Make ``n`` products, kinds assigned round-robin; product ``i`` depends only on (seed, i).

    About 30 % of them are shade variants of an earlier product of the same kind (same brand
    and shape, other colours and shade text), the hard negatives that make retrieval non-trivial.
    """
    kinds = tuple(kinds or KINDS)
    products: list[Product] = []
    for i in range(n):
        rng = np.random.default_rng([seed, 0, i])
        kind = kinds[i % len(kinds)]
        p = _new_product(i, kind, rng)
        if i >= len(kinds) and rng.random() < 0.3:
            base = products[i - len(kinds) * int(rng.integers(1, 1 + i // len(kinds)))]
            siblings = [q.body for q in products if q.brand == base.brand and q.kind == kind]
            body = p.body
            for _ in range(30):  # a shade one can tell apart from every sibling
                if min(sum(abs(u - v) for u, v in zip(body, sib, strict=True)) for sib in siblings) >= 120:
                    break
                body = _colour(rng)
            p = replace(base, index=i, body=body, accent=p.accent, shades=p.shades, detail=p.detail,
                        label=p.label, ink=p.ink)
        products.append(p)
    return products


def describe(product: Product, view: int, rng: np.random.Generator) -> str:
    """A Perfect-500K style title: brand, product words, a kind synonym, size and filler words."""
    line = product.line.title()
    keyword = str(rng.choice(KIND_SYNONYMS[product.kind]))
    if rng.random() < 0.07:  # real listings sometimes never name the product type
        keyword = str(rng.choice(("Beauty Essentials", "Makeup", "Skin Care", "Gift")))
    if rng.random() < 0.8:
        head = f"{product.brand} {line} {keyword}"
    else:
        head = f"{keyword} by {product.brand} {line}"
    detail = product.detail.replace(" ml", "ml") if rng.random() < 0.5 else product.detail
    words = [head + (f" {detail}" if rng.random() < 0.7 and detail.lower() not in head.lower() else "")]
    words += [str(w) for w in rng.choice(_FILLERS, size=int(rng.integers(1, 4)), replace=False)]
    if view == 2:
        words.append("with Gift Box")
    return ", ".join(words)


# ----------------------------------------------------------------------------- drawing
@functools.lru_cache(maxsize=128)
def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=px)  # type: ignore[return-value]


def _lerp(lo: float, hi: float, t: float) -> float:
    return lo + (hi - lo) * t


def _brand_text(p: Product) -> str:
    return (p.brand.upper(), p.brand, " ".join(p.brand.upper()))[p.style]


class _Pen:
    """ImageDraw in unit coordinates: (0, 0) top-left, (1, 1) bottom-right of a square canvas."""

    def __init__(self, size: int) -> None:
        self.s = size
        self.img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        self.d = ImageDraw.Draw(self.img)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill, r: float = 0.0, outline=None) -> None:
        s, r = self.s, min(r, (x1 - x0) / 2, (y1 - y0) / 2) * self.s
        self.d.rounded_rectangle((x0 * s, y0 * s, x1 * s, y1 * s), radius=r, fill=fill, outline=outline,
                                 width=max(1, s // 128) if outline else 0)

    def col(self, w: float, y0: float, y1: float, fill, r: float = 0.0) -> None:
        """A rectangle of width ``w`` centred on the vertical axis (most products stand upright)."""
        self.rect(0.5 - w / 2, y0, 0.5 + w / 2, y1, fill, r)

    def trap(self, w0: float, y0: float, w1: float, y1: float, fill) -> None:
        """A centred trapezoid, ``w0`` wide at ``y0`` and ``w1`` wide at ``y1``."""
        self.poly([(0.5 - w0 / 2, y0), (0.5 + w0 / 2, y0), (0.5 + w1 / 2, y1), (0.5 - w1 / 2, y1)], fill)

    def oval(self, x0: float, y0: float, x1: float, y1: float, fill, outline=None) -> None:
        s = self.s
        self.d.ellipse((x0 * s, y0 * s, x1 * s, y1 * s), fill=fill, outline=outline, width=max(1, s // 128))

    def poly(self, pts: Sequence[tuple[float, float]], fill) -> None:
        self.d.polygon([(x * self.s, y * self.s) for x, y in pts], fill=fill)

    def line(self, pts: Sequence[tuple[float, float]], fill, width: float) -> None:
        self.d.line([(x * self.s, y * self.s) for x, y in pts], fill=fill, width=max(1, int(width * self.s)))

    def text(self, x0: float, y0: float, x1: float, y1: float, txt: str, ink, vertical: bool = False) -> None:
        """Write ``txt`` as large as fits in the box, centred; ``vertical`` reads bottom to top."""
        s = self.s
        w, h = ((y1 - y0) * s, (x1 - x0) * s) if vertical else ((x1 - x0) * s, (y1 - y0) * s)
        px = max(5, int(h * 0.8))
        length = _font(px).getlength(txt)
        if length > w * 0.92:
            px = max(5, int(px * w * 0.92 / length))
        if not vertical:
            self.d.text(((x0 + x1) * s / 2, (y0 + y1) * s / 2), txt, font=_font(px), fill=ink, anchor="mm")
            return
        tile = Image.new("RGBA", (max(1, int(w)), max(1, int(h))), (0, 0, 0, 0))
        ImageDraw.Draw(tile).text((w / 2, h / 2), txt, font=_font(px), fill=ink, anchor="mm")
        self.img.alpha_composite(tile.transpose(Image.Transpose.ROTATE_90), (int(x0 * s), int(y0 * s)))

    def label(self, x0: float, y0: float, x1: float, y1: float, p: Product,
              texts: Sequence[str] | None = None) -> None:
        """A printed label: brand, product line and detail (or ``texts``) stacked in the box."""
        self.rect(x0, y0, x1, y1, p.label, r=0.01)
        texts = texts or [_brand_text(p), p.line, p.detail.upper()]
        step = (y1 - y0) / (len(texts) + 0.6)
        for k, t in enumerate(texts):  # the first row (brand) is set larger than the others
            top = y0 + step * (0.3 + k + (0.15 if k else 0))
            self.text(x0 + 0.01, top, x1 - 0.01, top + step * (0.7 if k else 1.0), t, p.ink)


def _lipstick(pen: _Pen, p: Product) -> None:
    a, b, c, d = p.geom
    w, yb = _lerp(0.15, 0.21, a), 0.9 - _lerp(0.3, 0.4, b)
    pen.col(w, yb, 0.9, p.body, r=0.012)
    pen.col(w + 0.01, yb - 0.03, yb, p.trim, r=0.005)
    ys = yb - 0.03 - _lerp(0.08, 0.13, c)
    pen.col(w * 0.84, ys, yb - 0.03, p.trim)
    bw, yt = w * 0.64, ys - _lerp(0.15, 0.22, d)
    if p.variant == 2:  # rounded bullet instead of the slanted cut
        pen.oval(0.5 - bw / 2, yt - bw / 2, 0.5 + bw / 2, yt + bw / 2, p.accent)
    slant = 0.06 if p.variant < 2 else 0.0
    left, right = 0.5 - bw / 2, 0.5 + bw / 2
    pen.poly([(left, ys), (right, ys), (right, yt + slant), (left, yt)], p.accent)
    pen.text(0.5 - w / 2, yb + 0.03, 0.5 + w / 2, 0.88, _brand_text(p), _on(p.body), vertical=True)


def _tube(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    wt, wn, yneck = _lerp(0.34, 0.44, a), _lerp(0.13, 0.18, b), _lerp(0.7, 0.76, c)
    pen.col(wt, 0.1, 0.15, p.body)
    for k in range(1, 4):  # crimp lines of the sealed end
        pen.line([(0.5 - wt / 2, 0.1 + 0.0125 * k), (0.5 + wt / 2, 0.1 + 0.0125 * k)], p.trim, 0.004)
    pen.poly([(0.5 - wt / 2, 0.15), (0.5 + wt / 2, 0.15), (0.5 + wt * 0.47, 0.4),
              (0.5 + wn / 2, yneck), (0.5 - wn / 2, yneck), (0.5 - wt * 0.47, 0.4)], p.body)
    pen.col(wn * 1.3, yneck, 0.9, p.cap, r=0.02 if p.variant else 0.005)
    if p.variant == 1:
        pen.col(wt * 0.8, 0.2, 0.5, p.label, r=0.01)
    ink = p.ink if p.variant == 1 else _on(p.body)
    pen.text(0.5 - wt * 0.4, 0.21, 0.5 + wt * 0.4, 0.3, _brand_text(p), ink)
    pen.text(0.5 - wt * 0.36, 0.32, 0.5 + wt * 0.36, 0.38, p.line, ink)
    pen.text(0.5 - wt * 0.3, 0.41, 0.5 + wt * 0.3, 0.46, p.detail.upper(), ink)


def _sunscreen(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    w, h, ch = _lerp(0.3, 0.4, a), _lerp(0.48, 0.58, b), 0.12
    up = p.variant != 1  # variant 1 stands on its flip cap
    y0 = 0.9 - h if up else 0.9 - h - ch
    pen.col(w, y0, y0 + h, p.body, r=w * 0.45)
    cy = y0 - ch + 0.01 if up else y0 + h - 0.01
    pen.col(w * _lerp(0.5, 0.7, c), cy, cy + ch, p.cap, r=0.02)
    pen.label(0.5 - w * 0.42, y0 + h * 0.3, 0.5 + w * 0.42, y0 + h * 0.75, p,
              [_brand_text(p), p.detail.upper(), p.line])


def _palette(pen: _Pen, p: Product) -> None:
    a, b, c, d = p.geom
    w, h = _lerp(0.66, 0.8, a), _lerp(0.44, 0.58, b)
    x0, y0 = 0.5 - w / 2, 0.5 - h / 2
    pen.rect(x0, y0, x0 + w, y0 + h, p.body, r=0.03)
    pen.text(x0 + 0.05, y0 + 0.015, x0 + w - 0.05, y0 + 0.085, _brand_text(p), _on(p.body))
    rows, cols = p.variant + 1, int(_lerp(3, 6.99, c))
    gx0, gy0, gx1, gy1 = x0 + 0.04, y0 + 0.1, x0 + w - 0.04, y0 + h - 0.04
    pen.rect(gx0, gy0, gx1, gy1, p.cap, r=0.015)
    cw, rh = (gx1 - gx0) / cols, (gy1 - gy0) / rows
    r = min(cw, rh) * 0.4
    for k in range(rows * cols):  # round or square pans
        cx, cy = gx0 + cw * (k % cols + 0.5), gy0 + rh * (k // cols + 0.5)
        pen.rect(cx - r, cy - r, cx + r, cy + r, p.shades[k % len(p.shades)], r=r if d < 0.5 else 0.006)


def _razor(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    hw, head, grip = _lerp(0.07, 0.1, a), _lerp(0.3, 0.42, b), _lerp(0.55, 0.65, c)
    pen.trap(hw, 0.3, hw * 1.3, 0.9, p.body)
    pen.oval(0.5 - hw * 0.65, 0.87, 0.5 + hw * 0.65, 0.93, p.body)
    pen.col(hw * 0.6, grip, 0.86, p.accent, r=0.02)
    pen.trap(hw * 0.6, 0.23, hw, 0.31, p.trim)
    pen.col(head, 0.12, 0.24, p.cap, r=0.02 + 0.02 * p.variant)
    for k in range(3 + p.variant):  # blades
        y = 0.15 + 0.065 * k / (2 + p.variant)
        pen.line([(0.5 - head * 0.42, y), (0.5 + head * 0.42, y)], (200, 202, 208), 0.006)
    pen.col(head * 0.88, 0.215, 0.232, p.accent)
    pen.text(0.5 - hw / 2, 0.33, 0.5 + hw / 2, grip - 0.01, _brand_text(p), _on(p.body), vertical=True)


def _sheet_mask(pen: _Pen, p: Product) -> None:
    a, b, _, _ = p.geom
    w, h = _lerp(0.5, 0.62, a), _lerp(0.7, 0.8, b)
    x0, y0, x1, y1 = 0.5 - w / 2, 0.5 - h / 2, 0.5 + w / 2, 0.5 + h / 2
    top = [(x0 + w * k / 14, y0 + 0.012 * (k % 2)) for k in range(15)]  # serrated sachet seals
    bottom = [(x1 - w * k / 14, y1 - 0.012 * (k % 2)) for k in range(15)]
    pen.poly(top + bottom, p.body)
    ink = _on(p.body)
    pen.text(x0 + 0.04, y0 + 0.04, x1 - 0.04, y0 + 0.12, _brand_text(p), ink)
    fy, fr = y0 + h * 0.47, w * 0.28
    pen.oval(0.5 - fr, fy - fr * 1.2, 0.5 + fr, fy + fr * 1.2, p.label)
    for ex in (-0.4, 0.4):  # eye holes and mouth of the sheet printed on the sachet
        pen.oval(0.5 + (ex - 0.18) * fr, fy - fr * 0.35, 0.5 + (ex + 0.18) * fr, fy - fr * 0.15, p.body)
    pen.oval(0.5 - fr * 0.3, fy + fr * 0.45, 0.5 + fr * 0.3, fy + fr * 0.62, p.body)
    pen.text(x0 + 0.04, y1 - 0.2, x1 - 0.04, y1 - 0.13, p.line + " MASK", ink)
    pen.text(x0 + 0.08, y1 - 0.12, x1 - 0.08, y1 - 0.07, p.detail.upper(), ink)


def _dryer(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    bh, nl, rake = _lerp(0.16, 0.22, a), _lerp(0.08, 0.16, b), _lerp(-0.06, 0.1, c)
    y0, y1 = 0.3 - bh / 2, 0.3 + bh / 2
    pen.poly([(0.4, y1 - 0.02), (0.54, y1 - 0.02), (0.54 + rake, 0.88), (0.42 + rake, 0.88)], p.body)
    pen.rect(0.46 + rake * 0.5, 0.5, 0.5 + rake * 0.5, 0.56, p.accent, r=0.01)  # switches
    pen.rect(0.46 + rake * 0.6, 0.6, 0.5 + rake * 0.6, 0.64, p.trim, r=0.01)
    nx = 0.74 + nl  # nozzle tip
    pen.poly([(0.74, y0 + 0.02), (nx, y0 + bh / 4), (nx, y1 - bh / 4), (0.74, y1 - 0.02)], p.cap)
    pen.rect(0.14, y0, 0.78, y1, p.body, r=bh / 2)
    pen.oval(0.1, y0 - 0.01, 0.1 + bh * 0.5, y1 + 0.01, p.cap)  # air intake
    pen.line([(0.2, y0 + bh * 0.22), (0.7, y0 + bh * 0.22)], (255, 255, 255), 0.012)  # gloss
    pen.text(0.3, y0 + bh * 0.35, 0.66, y1 - bh * 0.2, _brand_text(p), _on(p.body))
    pen.line([(0.48 + rake, 0.88), (0.5 + rake, 0.94), (0.6, 0.95)], (30, 30, 30), 0.012)  # cord


def _eye_mask(pen: _Pen, p: Product) -> None:
    a, b, _, _ = p.geom
    w, h = _lerp(0.68, 0.82, a), _lerp(0.3, 0.4, b)
    x0, y0 = 0.5 - w / 2, 0.5 - h / 2
    pen.rect(0.02, 0.47, 0.98, 0.53, p.trim, r=0.02)  # strap
    pen.oval(x0, y0, x0 + w * 0.56, y0 + h, p.body, outline=p.cap)
    pen.oval(x0 + w * 0.44, y0, x0 + w, y0 + h, p.body, outline=p.cap)
    pen.rect(x0 + w * 0.25, y0, x0 + w * 0.75, y0 + h * 0.7, p.body)
    pen.oval(0.5 - w * 0.09, y0 + h * 0.72, 0.5 + w * 0.09, y0 + h * 1.1, (0, 0, 0, 0))  # nose notch
    if p.variant == 1:  # embroidered closed eyes
        for ex in (0.28, 0.72):
            box = (x0 + w * (ex - 0.12), y0 + h * 0.2, x0 + w * (ex + 0.12), y0 + h * 0.6)
            pen.d.arc([v * pen.s for v in box], 20, 160, fill=p.accent, width=max(1, pen.s // 80))
    pen.text(0.5 - w * 0.2, y0 + h * 0.08, 0.5 + w * 0.2, y0 + h * 0.3, _brand_text(p), _on(p.body))


def _jar(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    w, lh, bh = _lerp(0.5, 0.66, a), _lerp(0.13, 0.2, b), _lerp(0.22, 0.32, c)
    yb = 0.5 + (lh + bh) / 2
    yl = yb - bh  # where the lid meets the jar
    pen.col(w, yl, yb, p.body, r=0.03)
    pen.col(w * 1.06, yl - lh, yl + 0.01, p.cap, r=0.015 + 0.02 * p.variant)
    pen.text(0.5 - w * 0.45, yl - lh * 0.85, 0.5 + w * 0.45, yl - lh * 0.15, _brand_text(p), _on(p.cap))
    pen.label(0.5 - w * 0.42, yb - bh * 0.85, 0.5 + w * 0.42, yb - bh * 0.12, p, [p.line, p.detail.upper()])


def _can(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    w, top, ch = _lerp(0.2, 0.27, a), _lerp(0.28, 0.34, b), _lerp(0.14, 0.2, c)
    pen.col(w * 0.8, top - ch, top, p.cap, r=0.02 + 0.03 * (p.variant == 1))
    pen.rect(0.5 + w * 0.1, top - ch * 0.85, 0.5 + w * 0.2, top - 0.1, (40, 40, 40))  # nozzle
    pen.oval(0.5 - w / 2, top - 0.03, 0.5 + w / 2, top + 0.05, p.trim)  # domed shoulder
    pen.col(w, top + 0.01, 0.9, p.body, r=0.01)
    pen.label(0.5 - w / 2, top + 0.18, 0.5 + w / 2, top + 0.42, p)


def _nail_polish(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    w, h, y0 = _lerp(0.26, 0.36, a), _lerp(0.22, 0.3, b), 0.9 - _lerp(0.22, 0.3, b)
    r = 0.03 + 0.04 * (p.variant == 1)
    pen.col(w, y0, 0.9, (235, 238, 240), r=r)  # thick clear glass around the lacquer
    pen.col(w - 0.024, y0 + 0.012, 0.888, p.accent, r=r - 0.01)
    cap_r = 0.01 + 0.02 * (p.variant == 2)
    pen.col(_lerp(0.12, 0.17, c), y0 - _lerp(0.3, 0.38, b), y0 + 0.005, p.cap, r=cap_r)
    pen.text(0.5 - w * 0.4, y0 + h * 0.35, 0.5 + w * 0.4, y0 + h * 0.62, _brand_text(p), _on(p.accent))


def _perfume(pen: _Pen, p: Product) -> None:
    a, b, c, d = p.geom
    w, h = _lerp(0.38, 0.52, a), _lerp(0.34, 0.46, b)
    x0, y0, x1, y1 = 0.5 - w / 2, 0.9 - h, 0.5 + w / 2, 0.9
    glass = tuple(int(v * 0.45 + 140) for v in p.body)
    if p.variant == 0:
        pen.rect(x0, y0, x1, y1, glass, r=0.02)
        pen.rect(x0 + 0.025, y0 + 0.04, x1 - 0.025, y1 - 0.025, p.body, r=0.015)
    elif p.variant == 1:
        pen.oval(x0, y0, x1, y1, glass)
        pen.oval(x0 + 0.03, y0 + 0.05, x1 - 0.03, y1 - 0.03, p.body)
    else:  # faceted
        pen.poly([(x0 + 0.06, y0), (x1 - 0.06, y0), (x1, y0 + h * 0.3), (x1 - 0.03, y1), (x0 + 0.03, y1),
                  (x0, y0 + h * 0.3)], glass)
        pen.poly([(x0 + 0.08, y0 + 0.04), (x1 - 0.08, y0 + 0.04), (x1 - 0.03, y0 + h * 0.32),
                  (x1 - 0.05, y1 - 0.03), (x0 + 0.05, y1 - 0.03), (x0 + 0.03, y0 + h * 0.32)], p.body)
    pen.col(0.06, y0 - 0.04, y0 + 0.005, p.trim)
    cw, ch = _lerp(0.12, 0.24, c), _lerp(0.1, 0.17, d)
    if d < 0.4:
        pen.oval(0.5 - cw / 2, y0 - 0.04 - ch, 0.5 + cw / 2, y0 - 0.03, p.cap)
    else:
        pen.col(cw, y0 - 0.04 - ch, y0 - 0.035, p.cap, r=0.01)
    pen.label(0.5 - w * 0.3, y0 + h * 0.35, 0.5 + w * 0.3, y0 + h * 0.7, p, [_brand_text(p), p.line])


def _mascara(pen: _Pen, p: Product) -> None:
    a, b, _, _ = p.geom
    w, split, taper = _lerp(0.085, 0.12, a), _lerp(0.45, 0.58, b), 0.012 * p.variant
    pen.col(w, 0.12, split, p.cap, r=0.02)
    pen.col(w + 0.008, split - 0.005, split + 0.02, p.trim)
    pen.trap(w, split + 0.02, w - 2 * taper, 0.9, p.body)
    pen.text(0.5 - w / 2, 0.15, 0.5 + w / 2, split - 0.03, _brand_text(p), _on(p.cap), vertical=True)
    pen.text(0.5 - w / 2, split + 0.05, 0.5 + w / 2, 0.87, p.detail.upper(), _on(p.body), vertical=True)


def _shampoo(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    w, h = _lerp(0.28, 0.36, a), _lerp(0.5, 0.6, b)
    y0, sh = 0.9 - h, _lerp(0.04, 0.1, c)
    pen.oval(0.5 - w / 2, y0, 0.5 + w / 2, y0 + 2 * sh + 0.02, p.body)  # rounded shoulders
    pen.col(w, y0 + sh, 0.9, p.body, r=0.02)
    if p.variant == 1:  # pump dispenser
        pen.col(0.03, y0 - 0.12, y0 + 0.01, p.cap)
        pen.col(0.12, y0 - 0.16, y0 - 0.11, p.cap, r=0.01)
        pen.rect(0.56, y0 - 0.15, 0.64, y0 - 0.13, p.cap)
    else:
        ch = 0.05 if p.variant == 0 else 0.1
        pen.col(w * 0.6, y0 - ch + 0.01, y0 + 0.015, p.cap, r=0.01 + 0.01 * p.variant)
    pen.label(0.5 - w * 0.42, y0 + h * 0.3, 0.5 + w * 0.42, y0 + h * 0.8, p)


# kind -> (drawer, shading): "cyl" for round bodies lit from the front-left, "flat" for the others
_DRAWERS: dict[str, tuple[Callable[[_Pen, Product], None], str]] = {
    "lipstick": (_lipstick, "cyl"), "facial_cleanser": (_tube, "cyl"), "sunscreen": (_sunscreen, "cyl"),
    "eye_shadow": (_palette, "flat"), "razor": (_razor, "cyl"), "face_mask": (_sheet_mask, "flat"),
    "hair_dryer": (_dryer, "flat"), "eye_mask": (_eye_mask, "flat"), "moisturizer": (_jar, "cyl"),
    "spray": (_can, "cyl"), "nail_polish": (_nail_polish, "cyl"), "perfume": (_perfume, "flat"),
    "mascara": (_mascara, "cyl"), "shampoo": (_shampoo, "cyl"),
}
assert set(_DRAWERS) == set(KINDS)


def _shade(rgba: np.ndarray, mode: str) -> None:
    """Fake 3-D lighting across the product's width, in place: darker rims and a specular stripe."""
    cols, rows = np.flatnonzero(rgba[..., 3].any(0)), np.flatnonzero(rgba[..., 3].any(1))
    if cols.size == 0:
        return
    t = np.linspace(0, 1, cols[-1] + 1 - cols[0], dtype=np.float32)
    if mode == "cyl":
        gain, spec = 0.7 + 0.34 * np.sqrt(np.abs(np.sin(np.pi * t))), 0.4 * np.exp(-(((t - 0.3) / 0.05) ** 2))
    else:
        gain, spec = 1.04 - 0.12 * t, 0.12 * np.exp(-(((t - 0.25) / 0.12) ** 2))
    crop = rgba[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1, :3]
    rgb = crop * (gain * (1 - spec))[None, :, None] + (255 * spec)[None, :, None]
    crop[...] = np.clip(rgb, 0, 255).astype(np.uint8)


def _sprite(product: Product, size: int) -> np.ndarray:
    """The product alone on a transparent square canvas, as an RGBA uint8 array."""
    pen = _Pen(size)
    draw, mode = _DRAWERS[product.kind]
    draw(pen, product)
    rgba = np.array(pen.img)
    _shade(rgba, mode)
    return rgba


def _box_sprite(product: Product, size: int) -> np.ndarray:
    """The product's retail box in three-quarter view."""
    w, h, dx = _lerp(0.4, 0.5, product.geom[0]), _lerp(0.6, 0.75, product.geom[1]), 0.12
    x0, y0, x1, y1 = 0.5 - (w + dx) / 2, 0.5 - h / 2 + dx / 2, 0.5 + (w - dx) / 2, 0.5 + h / 2 + dx / 2
    pen, dark = _Pen(size), tuple(int(v * 0.7) for v in product.label)
    pen.poly([(x0, y0), (x0 + dx, y0 - dx / 2), (x1 + dx, y0 - dx / 2), (x1, y0)], product.label)
    pen.poly([(x1, y0), (x1 + dx, y0 - dx / 2), (x1 + dx, y1 - dx / 2), (x1, y1)], dark)
    pen.rect(x0, y0, x1, y1, product.body)
    pen.label(x0 + 0.03, y0 + h * 0.15, x1 - 0.03, y0 + h * 0.6, product)
    return np.asarray(pen.img)


# ----------------------------------------------------------------------------- composition
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
    sprite = _sprite(product, size)
    canvas = np.full((size, size, 3), 255.0 if rng.random() < 0.6 else rng.uniform(244, 254), np.float32)
    if view == 2:
        box_centre = (rng.uniform(0.36, 0.42), 0.46)
        box = _place(_box_sprite(product, size), size, rng.uniform(0.62, 0.7), box_centre)
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
    c0, c1 = (np.float32(_hsv(rng.random(), rng.uniform(0.1, 0.7), rng.uniform(0.15, 0.8))) for _ in range(2))
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
            draw.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=_colour(rng))
        else:
            (ux, uy), (vx, vy) = (np.cos(th) * r, np.sin(th) * r), (-np.sin(th) * r / 2, np.cos(th) * r / 2)
            signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))
            draw.polygon([(x + i * ux + j * vx, y + i * uy + j * vy) for i, j in signs], fill=_colour(rng))
    out = np.asarray(img).astype(np.float32)
    for _ in range(int(rng.integers(0, 3))):  # other products lying around
        other = _sprite(_new_product(-1, str(rng.choice(KINDS)), rng), size)
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
        colour = _hsv(rng.uniform(0.02, 0.1), rng.uniform(0.2, 0.5), rng.uniform(0.5, 0.9))  # skin
    else:
        colour = _colour(rng)
    centre, axes = (int(xs[k]), int(ys[k])), (max(1, int(a)), max(1, int(a / elong)))
    angle = rng.uniform(0, 180)
    cv2.ellipse(img, centre, axes, angle, 0, 360, tuple(float(v) for v in colour), -1, cv2.LINE_AA)
    occ = cv2.ellipse(np.zeros(mask.shape, np.uint8), centre, axes, angle, 0, 360, 255, -1)
    return mask & (occ == 0)


def _query_photo(product: Product, size: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """The JPEG bytes of a "real photo" of ``product`` and its visible-product mask."""
    canvas = _background(size, rng)
    fill = rng.uniform(0.45, 0.85)
    centre = 0.5 + rng.uniform(-0.4, 0.4, 2) * (1 - fill)
    fg = _place(_sprite(product, size), size, fill, centre, rng.uniform(-30, 30), rng.uniform(0, 0.1), rng)
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
    data, mask = _query_photo(product, size, rng)
    return Image.open(io.BytesIO(data)).convert("RGB"), mask


# ----------------------------------------------------------------------------- dataset
def _render_job(job: tuple) -> None:
    """Render and write one file; top-level so that worker processes can run it."""
    what, idx, product, view, size, seed, path, mask_path = job
    if what == "c":
        img, mask = render_catalog_image(product, view, size, np.random.default_rng([seed, 1, idx]))
        img.save(path, "JPEG", quality=92)
        if mask_path is not None:
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path, "PNG")
    else:  # the photo's JPEG bytes are written as they are, not re-encoded
        data, _ = _query_photo(product, size, np.random.default_rng([seed, 2, idx]))
        Path(path).write_bytes(data)


def _run_jobs(jobs: list[tuple], workers: int, progress: Callable[[int, int], None] | None) -> None:
    if workers > 1:
        # spawn, not fork: the caller may hold torch threads or a Qt application. A pool that cannot
        # start (e.g. the main script is stdin) breaks instead of hanging, and output does not depend
        # on where a job ran, so we then simply render everything here.
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for done, _ in enumerate(pool.map(_render_job, jobs, chunksize=8), 1):
                    if progress:
                        progress(done, len(jobs))
            return
        except BrokenProcessPool:
            log.warning("demo: worker processes failed to start; rendering in this process instead")
    for done, job in enumerate(jobs, 1):
        _render_job(job)
        if progress:
            progress(done, len(jobs))


def generate_demo(out_dir: str | Path, *, n_products: int = 60, views_per_product: tuple[int, int] = (1, 3),
                  query_fraction: float = 0.5, queries_per_product: int = 1, image_size: int = 256,
                  seed: int = 0, kinds: Sequence[str] | None = None, save_masks: bool = False,
                  workers: int = 1, progress: Callable[[int, int], None] | None = None) -> DemoDataset:
    """Write a synthetic catalog, query photos and challenge-format truth under ``out_dir``.

    Catalog ids ("c000000") are shuffled so they do not reveal which views belong together.
    Products without queries stay in the catalog as distractors. Files of the same names are
    overwritten. The same arguments give byte-identical files for any number of ``workers``.

    Raises:
        UserError: when an argument is out of range, a kind is unknown or ``out_dir`` cannot be made.
    """
    lo, hi = views_per_product
    kinds = tuple(kinds) if kinds else KINDS
    if n_products < 1 or not 1 <= lo <= hi or queries_per_product < 0 or not 0.0 <= query_fraction <= 1.0:
        raise UserError("The demo needs at least one product, 1 <= min views <= max views "
                        "and a query fraction between 0 and 1.")
    if image_size < 64:
        raise UserError(f"The demo image size must be at least 64 pixels, not {image_size}.")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise UserError(f"Unknown product kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}.")

    root = Path(out_dir)
    cat_dir, q_dir = root / "catalog", root / "queries"
    masks_dir = root / "masks" if save_masks else None
    try:
        for d in filter(None, (cat_dir, q_dir, masks_dir)):
            d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot create the demo folder {root}: {exc.strerror or exc}.") from exc

    products = make_products(n_products, seed, kinds)
    rng = np.random.default_rng([seed, 3])
    n_views = rng.integers(lo, hi + 1, size=n_products)
    shots = [(pi, v) for pi in range(n_products) for v in range(int(n_views[pi]))]
    shots = [shots[k] for k in rng.permutation(len(shots))]
    n_asked = round(query_fraction * n_products)
    asked = sorted(int(i) for i in rng.choice(n_products, size=n_asked, replace=False))
    queries = [pi for pi in asked for _ in range(queries_per_product)]
    queries = [queries[k] for k in rng.permutation(len(queries))]

    jobs, rows, views_of = [], [], {}
    for k, (pi, v) in enumerate(shots):
        cid, p = f"c{k:06d}", products[pi]
        views_of.setdefault(pi, []).append(cid)
        rows.append((cid, f"catalog/{cid}.jpg", describe(p, v, np.random.default_rng([seed, 4, k])), p.kind))
        jobs.append(("c", k, p, v, image_size, seed, str(cat_dir / f"{cid}.jpg"),
                     str(masks_dir / f"{cid}.png") if masks_dir else None))
    for k, pi in enumerate(queries):
        jobs.append(("q", k, products[pi], 0, image_size, seed, str(q_dir / f"q{k:06d}.jpg"), None))

    _run_jobs(jobs, workers, progress)

    catalog_csv, truth_csv = root / "catalog.csv", root / "truth.csv"
    with catalog_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("id", "path", "description", "category"))
        writer.writerows(rows)
    with truth_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("Validation Image ID", "Training Image ID"))
        writer.writerows([f"q{k:06d}", *sorted(views_of[pi])] for k, pi in enumerate(queries))
    log.info("demo: %d products, %d catalog images, %d queries in %s",
             n_products, len(shots), len(queries), root)
    return DemoDataset(root=root, catalog_csv=catalog_csv, queries_dir=q_dir, truth_csv=truth_csv,
                       masks_dir=masks_dir, n_products=n_products, n_catalog=len(shots),
                       n_queries=len(queries))
