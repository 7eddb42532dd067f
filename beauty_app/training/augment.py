"""Cross-domain augmentation: catalog images turned into "real photo" training samples.

Queries are phone photos of a product on a table, a shelf or in a hand; the catalog shows it on
white. To bridge the two domains during training, the product is cut out with its (pseudo) saliency
mask and pasted, rotated, scaled and perspective-warped, onto a cluttered background (procedural
textures, given background pictures, other products), then re-lit, colour cast, blurred, noised and
JPEG-compressed. Because the paste is ours, the warped mask is the *exact* saliency target of the
sample, and the same warp carries the text mask. Other products pasted as clutter are not salient.

Scenes vary so that the saliency branch learns "the product" rather than "the thing in the middle
of a synthetic backdrop": photographs that ship inside installed packages (:func:`photo_backgrounds`:
scikit-learn's sample images, matplotlib's and scikit-image's where installed, no download at run
time), procedural surfaces (wood, tiles, marble, cloth, out-of-focus rooms), shelves with rows of
other products, a hand holding the product (its fingers in front of it leave the targets), products
placed off-centre, small or partly out of the frame, perspective, and the blur, noise, low
resolution and JPEG of a phone picture.

Plain catalog views are kept too (letterboxed on white with a light photometric jitter). There is
no horizontal flip: mirrored lettering is not what any query shows, and the text branch would
learn from it.

Everything is numpy/cv2 on whole arrays; all randomness comes from the ``numpy.random.Generator``
passed in, so a sample is reproducible from the generator's state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from beauty_app.imaging import letterbox_box

logger = logging.getLogger(__name__)

# Geometry of the pasted product.
SCALE_RANGE = (0.3, 0.9)  # longer side of the product's box, relative to the frame
MAX_ROTATION_DEG = 30.0
MAX_PERSPECTIVE = 0.12  # corner jitter, relative to the product's longer side
# Photometric ranges of the "photo" look.
JPEG_QUALITY = (30, 90)
MAX_NOISE = 0.03  # Gaussian noise sigma on the 0..1 scale
MAX_BLUR_SIGMA = 1.5

_MIN_BOX = 4  # products smaller than this (in pixels) are not pasted
P_OUT_OF_FRAME = 0.15  # a product partly cut by the frame's edge (up to a third of its box outside)
P_HAND = 0.3  # the product held in a hand
P_SHELF = 0.2  # the product among others on a shelf (of the samples not on a picture background)
_BACKGROUND_SIDE = 640  # packaged photographs are kept at most this large

# Photographs inside installed wheels: (package, file inside it). Real scenes (a temple, a flower,
# a portrait) are the kind of clutter the demo's synthetic backdrops lack.
_PACKAGED_PHOTOS = (
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)
# scikit-image ships these in its wheel (others in skimage.data are downloaded on first use: not those).
_SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                   "hubble_deep_field.jpg", "logo.png", "coins.png", "page.png", "immunohistochemistry.png")


@dataclass
class Sample:
    """One training sample at the augmenter's output size.

    Attributes:
        image: ``uint8`` RGB image of shape (size, size, 3).
        saliency: ``float32`` (size, size) product mask in [0, 1], or ``None`` when the source had none.
        text: ``float32`` (size, size) text mask in [0, 1], or ``None`` when the source had none.
        synthetic: ``True`` for a pasted "real photo", ``False`` for a plain catalog view.
    """

    image: np.ndarray
    saliency: np.ndarray | None
    text: np.ndarray | None
    synthetic: bool


def _check_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"{what} must be a uint8 array of shape (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


def _unit_mask(mask: np.ndarray | None, height: int, width: int, what: str) -> np.ndarray | None:
    """A mask as float32 in [0, 1] at the image's size (uint8 masks are read as 0..255)."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"{what} mask must be 2-D, got shape {m.shape}")
    if m.dtype == np.uint8:
        m = m.astype(np.float32) * np.float32(1 / 255)
    elif m.dtype == bool:
        m = m.astype(np.float32)
    else:
        m = np.clip(m.astype(np.float32), 0.0, 1.0)
    if m.shape != (height, width):
        # Cached masks are stored at 256 px and the image may be loaded at another size.
        m = cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)
    return m


def cutout(image_rgb: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """Crop a product to its mask's bounding box as an RGBA array (alpha = mask).

    This is the form :class:`CrossDomainAugmenter` expects for ``distractors``.

    Raises:
        ValueError: the mask is empty.
    """
    img = _check_rgb(image_rgb)
    m = _unit_mask(saliency, img.shape[0], img.shape[1], "saliency")
    ys, xs = np.nonzero(m > 0.5)
    if xs.size == 0:
        raise ValueError("cannot cut out a product from an empty mask")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    alpha = np.clip(m[y0:y1, x0:x1] * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([img[y0:y1, x0:x1], alpha])


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


def _hsv_colour(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*s) * 255, rng.uniform(*v) * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


class CrossDomainAugmenter:
    """Makes training samples: pasted "real photos" with exact masks, or plain catalog views.

    Args:
        size: Side of the square output.
        p_photo: Probability of a pasted photo sample when the image has a saliency mask; images
            without one are always plain views (their product region is unknown).
        backgrounds: ``uint8`` RGB pictures of surfaces and rooms; half of the photo samples use a
            random crop of one of them, the other half a procedural scene. None (the default) takes
            :func:`photo_backgrounds`; an empty sequence uses procedural scenes only.
        seed: Seeds the generator used when a call passes no ``rng``.
    """

    def __init__(self, size: int = 224, p_photo: float = 0.5, backgrounds: Sequence[np.ndarray] | None = None,
                 seed: int | None = None) -> None:
        if size < 32:
            raise ValueError(f"size must be at least 32 pixels, got {size}")
        if not 0.0 <= p_photo <= 1.0:
            raise ValueError(f"p_photo must be in [0, 1], got {p_photo}")
        self.size = int(size)
        self.p_photo = float(p_photo)
        if backgrounds is None:
            backgrounds = photo_backgrounds()
        self.backgrounds = [_check_rgb(b, "background") for b in backgrounds]
        self._rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:self.size, 0:self.size].astype(np.float32) / np.float32(self.size)
        self._yy, self._xx = yy, xx

    # ------------------------------------------------------------------------- entry point
    def __call__(self, image_rgb: np.ndarray, saliency: np.ndarray | None, text: np.ndarray | None,
                 rng: np.random.Generator | None = None, distractors: Sequence[np.ndarray] = ()) -> Sample:
        """Make one sample from a catalog image and its masks.

        Args:
            image_rgb: ``uint8`` RGB catalog image (any size).
            saliency: Product mask (``uint8`` 0..255, bool or float in [0, 1]; resized to the image
                if needed), or ``None`` when estimation failed.
            text: Text mask in the same forms, or ``None``.
            rng: Random generator; the sample is a pure function of its state and the inputs.
            distractors: Other products as RGBA arrays (see :func:`cutout`), pasted as clutter;
                RGB arrays are accepted and their near-white pixels are treated as transparent.

        Returns:
            A :class:`Sample` of side ``size``.
        """
        rng = self._rng if rng is None else rng
        img = _check_rgb(image_rgb)
        h, w = img.shape[:2]
        sal = _unit_mask(saliency, h, w, "saliency")
        txt = _unit_mask(text, h, w, "text")
        want_photo = rng.random() < self.p_photo
        if want_photo and sal is not None:
            sample = self._photo(img, sal, txt, rng, distractors)
            if sample is not None:
                return sample
        return self._plain(img, sal, txt, rng)

    def pair(self, image_rgb: np.ndarray, saliency: np.ndarray | None, text: np.ndarray | None,
             rng: np.random.Generator | None = None, distractors: Sequence[np.ndarray] = ()) -> tuple[Sample, Sample]:
        """A (photo, catalog view) pair of one catalog image, for instance-level training.

        The first sample is always a pasted photo when the image has a usable saliency mask
        (``p_photo`` does not apply), else a second plain view; the second is a plain view.
        Arguments as for :meth:`__call__`.
        """
        rng = self._rng if rng is None else rng
        img = _check_rgb(image_rgb)
        h, w = img.shape[:2]
        sal = _unit_mask(saliency, h, w, "saliency")
        txt = _unit_mask(text, h, w, "text")
        photo = self._photo(img, sal, txt, rng, distractors) if sal is not None else None
        if photo is None:
            photo = self._plain(img, sal, txt, rng)
        return photo, self._plain(img, sal, txt, rng)

    # ------------------------------------------------------------------------- plain view
    def _plain(self, img: np.ndarray, sal: np.ndarray | None, txt: np.ndarray | None,
               rng: np.random.Generator) -> Sample:
        s = self.size
        h, w = img.shape[:2]
        left, top, nw, nh = letterbox_box(w, h, s)
        interp = cv2.INTER_AREA if max(h, w) > s else cv2.INTER_LINEAR
        canvas = np.full((s, s, 3), 255.0, np.float32)
        canvas[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh), interpolation=interp)
        # Light jitter only: exposure and white balance differ a little between catalog shots.
        gain = np.float32(rng.uniform(0.94, 1.06)) * rng.uniform(0.97, 1.03, 3).astype(np.float32)
        out = np.clip(canvas * gain + 0.5, 0, 255).astype(np.uint8)

        def fit(m: np.ndarray | None) -> np.ndarray | None:
            if m is None:
                return None
            box = np.zeros((s, s), np.float32)
            resized = cv2.resize(m, (nw, nh), interpolation=cv2.INTER_LINEAR)
            box[top:top + nh, left:left + nw] = np.clip(resized, 0, 1)
            return box

        return Sample(out, fit(sal), fit(txt), synthetic=False)

    # ------------------------------------------------------------------------- photo
    def _photo(self, img: np.ndarray, sal: np.ndarray, txt: np.ndarray | None, rng: np.random.Generator,
               distractors: Sequence[np.ndarray]) -> Sample | None:
        s = self.size
        h, w = img.shape[:2]
        if max(h, w) > s:
            # Shrink with area averaging first: warping straight from a large image would alias the
            # lettering that the text branch is meant to read.
            f = s / max(h, w)
            size = (max(1, round(w * f)), max(1, round(h * f)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            sal = cv2.resize(sal, size, interpolation=cv2.INTER_AREA)
            txt = None if txt is None else cv2.resize(txt, size, interpolation=cv2.INTER_AREA)
        ys, xs = np.nonzero(sal > 0.5)
        if xs.size == 0:
            return None
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        if min(x1 - x0, y1 - y0) < _MIN_BOX:
            return None

        hmat = self._placement(x0, y0, x1, y1, rng)
        warp = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        fg = cv2.warpPerspective(img, hmat, (s, s), **warp).astype(np.float32)
        alpha = np.clip(cv2.warpPerspective(sal, hmat, (s, s), **warp), 0.0, 1.0)
        text_w = None if txt is None else np.clip(cv2.warpPerspective(txt, hmat, (s, s), **warp), 0.0, 1.0)

        canvas = self._background(rng)
        if rng.random() < P_SHELF:
            canvas = self._shelf(canvas, distractors, alpha, rng)
        for _ in range(int(rng.integers(0, 4)) if len(distractors) else 0):
            canvas = self._paste_distractor(canvas, distractors, rng)
        for _ in range(int(rng.integers(0, 3))):
            canvas = self._paste_shape(canvas, rng)
        canvas = self._shadow(canvas, alpha, rng)
        a3 = alpha[..., None]
        canvas = canvas * (1.0 - a3) + fg * a3

        # Something in front of the product (a hand holding it, a finger, another product): the
        # hidden part is not a visible product pixel, so it leaves the saliency and text targets.
        visible = np.ones((s, s), np.float32)
        if rng.random() < P_HAND:
            canvas, cover = self._hand(canvas, alpha, rng)
            visible = np.minimum(visible, 1.0 - cover)
        if rng.random() < 0.2:
            canvas, cover = self._occlude(canvas, alpha, rng)
            visible = np.minimum(visible, 1.0 - cover)
        canvas = self._photometric(canvas, rng)

        sal_t = alpha * visible
        txt_t = None if text_w is None else text_w * visible
        return Sample(canvas, sal_t, txt_t, synthetic=True)

    def _placement(self, x0: int, y0: int, x1: int, y1: int, rng: np.random.Generator) -> np.ndarray:
        """Homography from the product's box to a rotated, scaled, perspective-warped place in the frame."""
        s = self.size
        src = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        long_side = float(max(x1 - x0, y1 - y0))
        scale = rng.uniform(*SCALE_RANGE) * s / long_side
        theta = np.radians(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
        c, si = np.cos(theta), np.sin(theta)
        rel = (src - np.float32([(x0 + x1) / 2, (y0 + y1) / 2])) * scale
        rot = rel @ np.float32([[c, si], [-si, c]])
        rot += rng.uniform(-MAX_PERSPECTIVE, MAX_PERSPECTIVE, (4, 2)).astype(np.float32) * (long_side * scale)
        # Keep the product inside the frame when it fits; otherwise centre it (it is cut a little).
        # Sometimes let up to a third of its box leave the frame: people crop their photos badly.
        slack = (rot.max(axis=0) - rot.min(axis=0)) / 3.0 if rng.random() < P_OUT_OF_FRAME else 0.0
        lo, hi = -rot.min(axis=0) - slack, s - rot.max(axis=0) + slack
        centre = np.where(lo <= hi, lo + (hi - lo) * rng.random(2), s / 2.0)
        dst = (rot + centre.astype(np.float32)).astype(np.float32)
        return cv2.getPerspectiveTransform(src, dst)

    # ------------------------------------------------------------------------- backgrounds
    def _background(self, rng: np.random.Generator) -> np.ndarray:
        if self.backgrounds and rng.random() < 0.5:
            return self._picture_background(rng)
        return self._procedural_background(rng)

    def _picture_background(self, rng: np.random.Generator) -> np.ndarray:
        s = self.size
        bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
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

    def _procedural_background(self, rng: np.random.Generator) -> np.ndarray:
        """A surface that is never plain white: clouds, stripes, gradient, wood, tiles or noise; blobs."""
        s, yy, xx = self.size, self._yy, self._xx
        # Mid-range values: a white backdrop is exactly the catalog cue the samples must not carry.
        c0 = _hsv_colour(rng, (0.05, 0.8), (0.12, 0.85))
        c1 = _hsv_colour(rng, (0.05, 0.8), (0.12, 0.85))
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
            colour = tuple(float(v) for v in _hsv_colour(rng, (0.0, 0.9), (0.1, 0.95)))
            if rng.random() < 0.7:
                cv2.ellipse(bg, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
            else:
                cv2.rectangle(bg, centre, (centre[0] + axes[0], centre[1] + axes[1]), colour, -1)
        return bg

    def _paste_distractor(self, canvas: np.ndarray, distractors: Sequence[np.ndarray],
                          rng: np.random.Generator) -> np.ndarray:
        """Another product lying around: any rotation, often cut by the frame's edge."""
        s = self.size
        rgb, a = _as_rgba(distractors[int(rng.integers(len(distractors)))])
        h, w = a.shape
        scale = rng.uniform(0.3, 0.7) * s / max(h, w)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-180, 180)), scale)
        m[:, 2] += rng.uniform(-0.1, 1.1, 2) * s - np.array([w / 2, h / 2])
        warp = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        layer = cv2.warpAffine(rgb, m, (s, s), **warp).astype(np.float32)
        la = cv2.warpAffine(a, m, (s, s), **warp)[..., None]
        return canvas * (1.0 - la) + layer * la

    def _paste_shape(self, canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A product-like object that is not in the catalog: a bottle, tube, jar or box in flat colours."""
        s = self.size
        w, h = rng.uniform(0.06, 0.3, 2) * s
        layer = np.zeros((s, s), np.float32)
        colour = _hsv_colour(rng, (0.0, 0.9), (0.15, 0.95))
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
        shade = 0.75 + 0.35 * (0.5 + 0.5 * np.sin((self._xx - x / s) * rng.uniform(6, 20)))[..., None]
        return canvas * (1.0 - layer) + colour * shade * layer

    def _shelf(self, canvas: np.ndarray, distractors: Sequence[np.ndarray], alpha: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """Shelf boards with rows of other products standing on them (behind the pasted product)."""
        s = self.size
        board = _hsv_colour(rng, (0.0, 0.5), (0.3, 0.95))
        rows = int(rng.integers(2, 4))
        pitch = s / rows
        offset = rng.uniform(0, pitch)
        for r in range(rows + 1):
            y = int(offset + r * pitch - pitch)
            if y + 4 < 0 or y >= s:
                continue
            thick = max(3, int(rng.uniform(0.03, 0.07) * s))
            canvas[max(0, y):min(s, y + thick)] = board
            canvas[max(0, y + thick):min(s, y + thick + 2)] *= 0.6  # the board's edge shadow
            # Products standing on the board above this one's top edge.
            x = rng.uniform(-0.1, 0.1) * s
            while x < s:
                w = rng.uniform(0.08, 0.2) * s
                h = min(pitch * rng.uniform(0.5, 0.9), 0.95 * pitch)
                if len(distractors) and rng.random() < 0.6:
                    rgb, a = _as_rgba(distractors[int(rng.integers(len(distractors)))])
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
                else:
                    colour = _hsv_colour(rng, (0.0, 0.9), (0.15, 0.95))
                    x0, y0 = int(x), int(y - h)
                    cv2.rectangle(canvas, (x0, y0), (int(x + w), y), tuple(float(c) for c in colour), -1)
                    cv2.rectangle(canvas, (int(x + 0.3 * w), y0 - int(0.08 * h)), (int(x + 0.7 * w), y0),
                                  tuple(float(c) * 0.6 for c in colour), -1)
                x += w + rng.uniform(0.0, 0.05) * s
        return canvas

    def _hand(self, canvas: np.ndarray, alpha: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A hand holding the product: a palm behind one side and fingers wrapped over the product.

        Returns the canvas and the hand's coverage; only the fingers (drawn over the product) hide it.
        """
        s = self.size
        cover = np.zeros((s, s), np.float32)
        ys, xs = np.nonzero(alpha > 0.5)
        if xs.size == 0:
            return canvas, cover
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        bw, bh = max(1, x1 - x0), max(1, y1 - y0)
        tone = _hsv_colour(rng, (0.2, 0.6), (0.3, 0.95))
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
        return canvas * (1.0 - h3) + tone * shade * h3, cover

    def _shadow(self, canvas: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.size
        dx, dy = (rng.uniform(-0.04, 0.04, 2) * s).astype(np.float32)
        m = np.float32([[1, 0, dx], [0, 1, abs(dy)]])
        sh = cv2.warpAffine(alpha, m, (s, s), borderValue=0)
        sh = cv2.GaussianBlur(sh, (0, 0), rng.uniform(1.5, 0.03 * s + 1.5))
        return canvas * (1.0 - np.float32(rng.uniform(0.1, 0.45)) * sh[..., None])

    def _occlude(self, canvas: np.ndarray, alpha: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Cover at most about a quarter of the product with a finger-like shape; returns its coverage."""
        s = self.size
        ys, xs = np.nonzero(alpha > 0.5)
        cover = np.zeros((s, s), np.float32)
        if xs.size == 0:
            return canvas, cover
        k = int(rng.integers(xs.size))
        area = rng.uniform(0.04, 0.2) * xs.size
        elong = rng.uniform(1.0, 3.0)
        ax = max(1, int(np.sqrt(area * elong / np.pi)))
        cv2.ellipse(cover, (int(xs[k]), int(ys[k])), (ax, max(1, int(ax / elong))),
                    float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
        if rng.random() < 0.5:  # skin
            colour = _hsv_colour(rng, (0.25, 0.55), (0.45, 0.9))
            colour[:] = np.sort(colour)[::-1]  # R >= G >= B: a warm skin tone whatever the hue drawn
        else:
            colour = _hsv_colour(rng, (0.0, 0.9), (0.1, 0.95))
        shade = 0.85 + 0.15 * self._xx[..., None]
        c3 = cover[..., None]
        return canvas * (1.0 - c3) + colour * shade * c3, cover

    def _photometric(self, canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Re-light, colour cast, blur, noise and JPEG: the look of a phone picture."""
        s = self.size
        x = canvas * np.float32(1 / 255)
        th = rng.uniform(0, 2 * np.pi)
        ramp = (self._xx - 0.5) * np.cos(th) + (self._yy - 0.5) * np.sin(th)
        ramp = 1.0 + np.float32(rng.uniform(0, 0.4)) * ramp
        x *= ramp[..., None]
        x *= (rng.uniform(0.85, 1.15, 3) * rng.uniform(0.7, 1.25)).astype(np.float32)  # cast and exposure
        # Contrast pivots on a fixed grey, not on the image mean, so it never depends on the content.
        x = (x - 0.5) * np.float32(rng.uniform(0.7, 1.25)) + 0.5
        np.clip(x, 0.0, 1.0, out=x)
        x **= np.float32(rng.uniform(0.7, 1.4))
        r = rng.random()
        if r < 0.15:  # hand shake
            n = int(rng.integers(3, 8))
            kern = np.zeros((n, n), np.float32)
            kern[n // 2] = 1.0 / n
            rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), float(rng.uniform(0, 180)), 1.0)
            kern = cv2.warpAffine(kern, rot, (n, n))
            x = cv2.filter2D(x, -1, kern / max(float(kern.sum()), 1e-6))
        elif r < 0.85:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, MAX_BLUR_SIGMA))
        if rng.random() < 0.2:  # a low-resolution or digitally zoomed picture
            f = rng.uniform(0.35, 0.8)
            small = cv2.resize(x, (max(8, int(s * f)), max(8, int(s * f))), interpolation=cv2.INTER_AREA)
            x = cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)
        x += rng.standard_normal((s, s, 3), dtype=np.float32) * np.float32(rng.uniform(0.0, MAX_NOISE))
        out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        bgr = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:  # pragma: no cover - encoding a uint8 image does not fail
            return out
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _as_rgba(product: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a distractor into RGB and float alpha; an RGB catalog image's near-white is transparent."""
    arr = np.asarray(product)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise ValueError(f"distractors must be uint8 RGBA or RGB arrays, got {arr.dtype} {arr.shape}")
    rgb = np.ascontiguousarray(arr[..., :3])
    if arr.shape[2] == 4:
        return rgb, arr[..., 3].astype(np.float32) * np.float32(1 / 255)
    return rgb, (arr.min(axis=2) < 235).astype(np.float32)
