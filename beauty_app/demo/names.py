"""Who the synthetic products are: kinds, brands, product lines, colours, and the titles listings give them.

Each product is a kind (lipstick, tube, jar, ...) plus its own proportions, colours and printed
label; :func:`describe` writes a Perfect-500K style title for one of its catalog views. All
randomness comes from ``numpy.random.Generator`` streams the caller seeds.
"""

from __future__ import annotations


import colorsys
from collections.abc import Sequence
from dataclasses import dataclass, replace


import numpy as np

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


def hsv(h: float, s: float, v: float) -> RGB:
    """An 8-bit RGB colour from hue (wrapping), saturation and value in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def random_colour(rng: np.random.Generator) -> RGB:
    """A packaging colour: mostly saturated, sometimes white or cream."""
    if rng.random() < 0.18:  # white/cream packaging is common and makes saliency harder
        return hsv(rng.random(), rng.uniform(0, 0.12), rng.uniform(0.88, 0.97))
    return hsv(rng.random(), rng.uniform(0.25, 0.9), rng.uniform(0.3, 0.95))


def ink_on(c: Sequence[int]) -> RGB:
    """A text colour readable on ``c``."""
    return (20, 20, 24) if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 else (245, 245, 240)


def _word(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))
    return ("".join(str(rng.choice(_ONSETS)) + "aeiou"[rng.integers(5)] for _ in range(n))
            + str(rng.choice(_CODAS))).capitalize()


def new_product(index: int, kind: str, rng: np.random.Generator) -> Product:
    """A product of ``kind`` with random brand, line, colours and proportions drawn from ``rng``."""
    body = random_colour(rng)
    label = random_colour(rng) if rng.random() < 0.5 else (246, 244, 238)
    cap = _METALS[int(rng.integers(len(_METALS)))] if rng.random() < 0.6 else random_colour(rng)
    words = rng.choice(_LINE_WORDS, size=int(rng.integers(1, 3)), replace=False)
    return Product(
        index=index, kind=kind, brand=_word(rng), line=" ".join(words),
        detail=str(rng.choice(_KIND_TEXT[kind][1])), body=body, cap=cap,
        trim=_METALS[int(rng.integers(len(_METALS)))], label=label, ink=ink_on(label),
        accent=hsv(rng.random(), rng.uniform(0.45, 0.95), rng.uniform(0.35, 0.9)),
        shades=tuple(random_colour(rng) for _ in range(18)),
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
        p = new_product(i, kind, rng)
        if i >= len(kinds) and rng.random() < 0.3:
            base = products[i - len(kinds) * int(rng.integers(1, 1 + i // len(kinds)))]
            siblings = [q.body for q in products if q.brand == base.brand and q.kind == kind]
            body = p.body
            for _ in range(30):  # a shade one can tell apart from every sibling
                if min(sum(abs(u - v) for u, v in zip(body, sib, strict=True)) for sib in siblings) >= 120:
                    break
                body = random_colour(rng)
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
