"""Drawing a synthetic product: its packaging per kind, printed label and fake 3-D shading, as an RGBA sprite.

Shapes are drawn in unit coordinates on a square transparent canvas (:class:`_Pen`); one drawer
per kind reads the product's proportions, colours and style.
"""

from __future__ import annotations


import functools
from collections.abc import Callable, Sequence


import numpy as np
from PIL import Image, ImageDraw, ImageFont


from beauty_app.demo.names import KINDS, Product, ink_on


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
    pen.text(0.5 - w / 2, yb + 0.03, 0.5 + w / 2, 0.88, _brand_text(p), ink_on(p.body), vertical=True)


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
    ink = p.ink if p.variant == 1 else ink_on(p.body)
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
    pen.text(x0 + 0.05, y0 + 0.015, x0 + w - 0.05, y0 + 0.085, _brand_text(p), ink_on(p.body))
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
    pen.text(0.5 - hw / 2, 0.33, 0.5 + hw / 2, grip - 0.01, _brand_text(p), ink_on(p.body), vertical=True)


def _sheet_mask(pen: _Pen, p: Product) -> None:
    a, b, _, _ = p.geom
    w, h = _lerp(0.5, 0.62, a), _lerp(0.7, 0.8, b)
    x0, y0, x1, y1 = 0.5 - w / 2, 0.5 - h / 2, 0.5 + w / 2, 0.5 + h / 2
    top = [(x0 + w * k / 14, y0 + 0.012 * (k % 2)) for k in range(15)]  # serrated sachet seals
    bottom = [(x1 - w * k / 14, y1 - 0.012 * (k % 2)) for k in range(15)]
    pen.poly(top + bottom, p.body)
    ink = ink_on(p.body)
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
    pen.text(0.3, y0 + bh * 0.35, 0.66, y1 - bh * 0.2, _brand_text(p), ink_on(p.body))
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
    pen.text(0.5 - w * 0.2, y0 + h * 0.08, 0.5 + w * 0.2, y0 + h * 0.3, _brand_text(p), ink_on(p.body))


def _jar(pen: _Pen, p: Product) -> None:
    a, b, c, _ = p.geom
    w, lh, bh = _lerp(0.5, 0.66, a), _lerp(0.13, 0.2, b), _lerp(0.22, 0.32, c)
    yb = 0.5 + (lh + bh) / 2
    yl = yb - bh  # where the lid meets the jar
    pen.col(w, yl, yb, p.body, r=0.03)
    pen.col(w * 1.06, yl - lh, yl + 0.01, p.cap, r=0.015 + 0.02 * p.variant)
    pen.text(0.5 - w * 0.45, yl - lh * 0.85, 0.5 + w * 0.45, yl - lh * 0.15, _brand_text(p), ink_on(p.cap))
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
    pen.text(0.5 - w * 0.4, y0 + h * 0.35, 0.5 + w * 0.4, y0 + h * 0.62, _brand_text(p), ink_on(p.accent))


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
    pen.text(0.5 - w / 2, 0.15, 0.5 + w / 2, split - 0.03, _brand_text(p), ink_on(p.cap), vertical=True)
    pen.text(0.5 - w / 2, split + 0.05, 0.5 + w / 2, 0.87, p.detail.upper(), ink_on(p.body), vertical=True)


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


def product_sprite(product: Product, size: int) -> np.ndarray:
    """The product alone on a transparent square canvas, as an RGBA uint8 array."""
    pen = _Pen(size)
    draw, mode = _DRAWERS[product.kind]
    draw(pen, product)
    rgba = np.array(pen.img)
    _shade(rgba, mode)
    return rgba


def box_sprite(product: Product, size: int) -> np.ndarray:
    """The product's retail box in three-quarter view."""
    w, h, dx = _lerp(0.4, 0.5, product.geom[0]), _lerp(0.6, 0.75, product.geom[1]), 0.12
    x0, y0, x1, y1 = 0.5 - (w + dx) / 2, 0.5 - h / 2 + dx / 2, 0.5 + (w - dx) / 2, 0.5 + h / 2 + dx / 2
    pen, dark = _Pen(size), tuple(int(v * 0.7) for v in product.label)
    pen.poly([(x0, y0), (x0 + dx, y0 - dx / 2), (x1 + dx, y0 - dx / 2), (x1, y0)], product.label)
    pen.poly([(x1, y0), (x1 + dx, y0 - dx / 2), (x1 + dx, y1 - dx / 2), (x1, y1)], dark)
    pen.rect(x0, y0, x1, y1, product.body)
    pen.label(x0 + 0.03, y0 + h * 0.15, x1 - 0.03, y0 + h * 0.6, product)
    return np.asarray(pen.img)
