"""Cross-domain augmentation: catalog images turned into "real photo" training samples.

Queries are phone photos of a product on a table, a shelf or in a hand; the catalog shows it on
white. To bridge the two domains during training, the product is cut out with its (pseudo) saliency
mask and pasted, rotated, scaled and perspective-warped, onto a cluttered background (procedural
textures, given background pictures, other products), then re-lit, colour cast, blurred, noised and
JPEG-compressed. Because the paste is ours, the warped mask is the *exact* saliency target of the
sample, and the same warp carries the text mask. Other products pasted as clutter are not salient;
their lettering, and lines of text printed in many fonts on and around the product
(:mod:`.scene_text`), are in the text target, as a text detector would mark them.

Scenes vary so that the saliency branch learns "the product" rather than "the thing in the middle
of a synthetic backdrop": photographs that ship inside installed packages (:func:`photo_backgrounds`:
scikit-learn's sample images, matplotlib's and scikit-image's where installed, no download at run
time), procedural surfaces (wood, tiles, marble, cloth, out-of-focus rooms), shelves with rows of
other products, a hand holding the product (its fingers in front of it leave the targets), products
placed off-centre, small or partly out of the frame, perspective, and the blur, noise, low
resolution and JPEG of a phone picture.

The scenes themselves (backgrounds, clutter, shelves, the hand) are drawn by :mod:`.scenes`.

Plain catalog views are kept too (letterboxed on white with a light photometric jitter). There is
no horizontal flip: mirrored lettering is not what any query shows, and the text branch would
learn from it.

Everything is numpy/cv2 on whole arrays; all randomness comes from the ``numpy.random.Generator``
passed in, so a sample is reproducible from the generator's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from beauty_app.imaging import letterbox_box

from .scene_text import draw_text
from .scenes import (
    hand,
    hsv_colour,
    paste_distractor,
    paste_shape,
    photo_backgrounds,
    picture_background,
    procedural_background,
    shelf,
    unit_grid,
)


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
P_SCENE_TEXT = 0.6  # printed lines drawn on and around the product (when its text mask is known)



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


def cutout(image_rgb: np.ndarray, saliency: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
    """Crop a product to its mask's bounding box as an RGBA array (alpha = mask).

    This is the form :class:`CrossDomainAugmenter` expects for ``distractors``. With a `text` mask
    the array has a fifth channel, the product's lettering, so that a scene's text target covers it.

    Raises:
        ValueError: the mask is empty.
    """
    img = _check_rgb(image_rgb)
    m = _unit_mask(saliency, img.shape[0], img.shape[1], "saliency")
    ys, xs = np.nonzero(m > 0.5)
    if xs.size == 0:
        raise ValueError("cannot cut out a product from an empty mask")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    channels = [img[y0:y1, x0:x1], _byte_mask(m[y0:y1, x0:x1])]
    t = _unit_mask(text, img.shape[0], img.shape[1], "text")
    if t is not None:
        channels.append(_byte_mask(t[y0:y1, x0:x1]))
    return np.dstack(channels)


def _byte_mask(mask: np.ndarray) -> np.ndarray:
    return np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8)


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
        p_scene_text: Probability that a photo sample gets lines of printed text drawn on and around
            the product (:mod:`.scene_text`); they are in its text target.
    """

    def __init__(self, size: int = 224, p_photo: float = 0.5, backgrounds: Sequence[np.ndarray] | None = None,
                 seed: int | None = None, p_scene_text: float = P_SCENE_TEXT) -> None:
        if size < 32:
            raise ValueError(f"size must be at least 32 pixels, got {size}")
        if not 0.0 <= p_photo <= 1.0:
            raise ValueError(f"p_photo must be in [0, 1], got {p_photo}")
        self.size = int(size)
        self.p_photo = float(p_photo)
        if not 0.0 <= p_scene_text <= 1.0:
            raise ValueError(f"p_scene_text must be in [0, 1], got {p_scene_text}")
        self.p_scene_text = float(p_scene_text)
        if backgrounds is None:
            backgrounds = photo_backgrounds()
        self.backgrounds = [_check_rgb(b, "background") for b in backgrounds]
        self._rng = np.random.default_rng(seed)
        self._yy, self._xx = unit_grid(self.size)

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
        # Lettering around the product (other products' labels, printed lines) is text too: the
        # text target covers all of it, as a text detector would, and none of it is salient.
        scene_text = np.zeros((s, s), np.float32)
        if rng.random() < P_SHELF:
            canvas = shelf(canvas, distractors, self.size, rng, text=scene_text)
        for _ in range(int(rng.integers(0, 4)) if len(distractors) else 0):
            canvas = paste_distractor(canvas, distractors, self.size, rng, text=scene_text)
        for _ in range(int(rng.integers(0, 3))):
            canvas = paste_shape(canvas, self.size, self._xx, rng, text=scene_text)
        canvas = self._shadow(canvas, alpha, rng)
        a3 = alpha[..., None]
        canvas = canvas * (1.0 - a3) + fg * a3
        scene_text *= 1.0 - alpha

        # Something in front of the product (a hand holding it, a finger, another product): the
        # hidden part is not a visible product pixel, so it leaves the saliency and text targets.
        visible = np.ones((s, s), np.float32)
        if rng.random() < P_HAND:
            canvas, cover = hand(canvas, alpha, self.size, rng, text=scene_text)
            visible = np.minimum(visible, 1.0 - cover)
        if rng.random() < 0.2:
            canvas, cover = self._occlude(canvas, alpha, rng)
            visible = np.minimum(visible, 1.0 - cover)
            scene_text *= 1.0 - cover
        sal_t = alpha * visible
        if text_w is not None:
            text_w = np.maximum(text_w * visible, scene_text)
            # Printed lines in many fonts and sizes, on the product and around it (see scene_text).
            # Only where the product's own text mask is known: elsewhere the target would be partial.
            if rng.random() < self.p_scene_text:
                for _ in range(int(rng.integers(1, 5))):
                    on_product = rng.random() < 0.5
                    canvas, line = draw_text(canvas, s, rng, region=sal_t if on_product else None)
                    text_w = np.maximum(text_w, line)
        canvas = self._photometric(canvas, rng)
        return Sample(canvas, sal_t, text_w, synthetic=True)

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
            return picture_background(self.backgrounds, self.size, rng)
        return procedural_background(self.size, self._yy, self._xx, rng)


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
            colour = hsv_colour(rng, (0.25, 0.55), (0.45, 0.9))
            colour[:] = np.sort(colour)[::-1]  # R >= G >= B: a warm skin tone whatever the hue drawn
        else:
            colour = hsv_colour(rng, (0.0, 0.9), (0.1, 0.95))
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
