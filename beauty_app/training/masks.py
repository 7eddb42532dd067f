# Kept in one module (about 500 lines): saliency and text estimation share the work image, border and
# component helpers; the cache and the contact sheet are already apart (mask_cache.py, mask_preview.py).
"""Pseudo saliency and text masks for catalog images, made with OpenCV.

The catalog has no annotated masks, but e-commerce images show one product on a plain backdrop,
so the product can be cut out by its difference to the backdrop colour (estimated from the image
border) plus its sharp outline. Images whose border is not a plain backdrop (lifestyle photos,
collages) or where the cut-out is implausibly small or large are *marked as failed* and left out
of saliency supervision; a wrong mask would teach the saliency branch the wrong thing.

Printed text (brand, product line, size) is found by :func:`detect_text_lines`, the one text-mask
source both :func:`estimate_text_mask` and :func:`compute_masks` call. It uses PP-OCR's text
detector (:mod:`beauty_app.training.text_detection`) when that is installed, keeping only boxes
that lie on the product; otherwise :func:`heuristic_text_lines`: runs of strong local contrast that
close into text lines, filtered by line geometry and kept only on the product.
:func:`text_mask_source` names the source in use, so that cached masks of another source are
not reused.

Masks are cached as PNGs next to the mined training set by :mod:`beauty_app.training.mask_cache`
and previewed as a contact sheet by :mod:`beauty_app.training.mask_preview`. No Qt here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_NOT_UNIFORM = "background not uniform"
STATUS_FILLS_FRAME = "object fills the frame"
STATUS_NOTHING = "nothing found"
STATUS_TOO_SMALL = "image too small"
STATUS_UNREADABLE = "image could not be loaded"

# Masks are estimated at this longest side; the cache stores 256-px images anyway and the
# thresholds below are tuned in pixels of this scale.
_WORK_SIDE = 256
MIN_SIDE = 16
"""Images with a shorter side below this many pixels get no masks."""
# Border band (fraction of the shorter side) from which the backdrop colour is estimated.
_BORDER_FRAC = 0.03
# A border pixel within this Lab distance of the backdrop median counts as backdrop...
_BORDER_TOL = 7.0
# ...and at least this share of the border must be backdrop. Zoomed catalog views touch the border
# with the product on one or two sides, real photos have almost no constant border at all.
_BORDER_MIN_SHARE = 0.6
# The median border distance is ~0 on a studio backdrop (JPEG noise included) but several Lab units
# on a photographed surface, even a plain-looking table or wall, because of texture, light fall-off
# and sensor noise.
_BORDER_MAX_SPREAD = 1.5
# Lab distance above which a pixel is product by colour alone. Drop shadows of catalog images darken
# white by up to ~12 % (about 10 Lab units), so this stays above them.
_COLOUR_THRESHOLD = 14.0
# Canny thresholds (8-bit scaled L*, a*, b*): a product's outline against the backdrop is a sharp
# step even for white packaging on white, whereas soft shadows and JPEG noise give weak gradients.
_CANNY_LOW, _CANNY_HIGH = 20, 40
# Pixels this close (Lab) to the backdrop colour are backdrop: below the difference of any printed
# colour, but above JPEG noise on a studio backdrop.
_BACKDROP_EPS = 2.0
# a*/b* edges count only on pixels at least this far from the backdrop (not on JPEG chroma ringing).
_CHROMA_EDGE_MIN = 5.0
# Drop shadows darken the backdrop without changing its hue (|a*|, |b*| change below this).
_SHADOW_CHROMA = 2.5
# Minimum morphological gradient (grey levels) of a printed letter's stroke edge.
_TEXT_CONTRAST = 40
_MIN_COVER, _MAX_COVER = 0.02, 0.95
# The detector sees the working image enlarged to this shorter side (PP-OCR's own 736 finds the same
# lines on 256 px catalog images at three times the cost).
_DETECTOR_SIDE = 480
# A detector box is kept when at least this share of it lies on the product: lettering on a label
# does, a box spanning product and backdrop (or backdrop clutter) does not.
_DETECTOR_MIN_ON_PRODUCT = 0.6
# Boxes the detector is less sure of than this are dropped: regular stripes (comb teeth, brush
# bristles, ribbing) give weak, patchy "text" probability, printed lines a solid one.
_DETECTOR_MIN_SCORE = 0.6
# A printed line is a thin band on its product. The detector also boxes whole grids of small, even
# shapes (an eye-shadow palette's pans) as one "text" block: a box covering more than this share of
# the product, or a squarish one (long side < _DETECTOR_MIN_ELONGATION x short side) covering more
# than _DETECTOR_MAX_BLOCK of it, is such a block, not a line.
_DETECTOR_MAX_LINE = 0.3
_DETECTOR_MAX_BLOCK = 0.08
_DETECTOR_MIN_ELONGATION = 1.5

TEXT_SOURCE_HEURISTIC = "opencv-heuristic"


@dataclass
class MaskResult:
    """Pseudo masks of one image, at the image's resolution.

    Attributes:
        saliency: ``uint8`` {0, 255} product mask, or ``None`` when estimation failed.
        text: ``uint8`` {0, 255} mask of printed-text lines (may be all zero).
        status: ``"ok"`` or a short reason why the saliency mask failed.
    """

    saliency: np.ndarray | None
    text: np.ndarray
    status: str

    @property
    def ok(self) -> bool:
        return self.saliency is not None


# ----------------------------------------------------------------------------- estimation
def check_rgb_image(image_rgb: np.ndarray) -> np.ndarray:
    """The image as a contiguous (H, W, 3) uint8 array; ValueError for anything else."""
    arr = np.asarray(image_rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def _work_image(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= _WORK_SIDE:
        return img
    s = _WORK_SIDE / max(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _border_pixels(a: np.ndarray, band: int) -> np.ndarray:
    c = a.shape[2]
    return np.concatenate([a[:band].reshape(-1, c), a[-band:].reshape(-1, c),
                           a[band:-band, :band].reshape(-1, c), a[band:-band, -band:].reshape(-1, c)])


def _fill_holes(mask: np.ndarray, outside: np.ndarray | None = None) -> np.ndarray:
    """Fill every unmasked region that is not connected to the outside.

    Args:
        mask: ``uint8`` {0, 255} mask.
        outside: Optional boolean map of pixels known to be backdrop; only regions containing one
            of them stay empty. By default every region touching the image border stays empty,
            which cannot fill a product cut off by the border.
    """
    n, labels = cv2.connectedComponents(np.where(mask > 0, 0, 255).astype(np.uint8), connectivity=4)
    is_outside = np.zeros(n, bool)
    if outside is None:
        for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
            is_outside[edge] = True
    else:
        is_outside[labels[outside & (mask == 0)]] = True
    is_outside[0] = False  # label 0 is the mask itself
    fill = np.where(is_outside, 0, 255).astype(np.uint8)
    fill[0] = 255
    return fill[labels]


def _keep_large_components(mask: np.ndarray, rel: float = 0.08, min_frac: float = 0.002) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep_min = max(rel * areas.max(), min_frac * mask.size)
    lut = np.zeros(n, np.uint8)
    lut[1:][areas >= keep_min] = 255
    return lut[labels]


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """A {0, 255} mask resized to width x height, thresholded back to {0, 255}."""
    if mask.shape == (height, width):
        return mask
    out = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.where(out >= 128, 255, 0).astype(np.uint8)


def _colour_edges(lab: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Canny edges of lightness, plus those of both colour axes away from the backdrop.

    Cream or tinted packaging often meets its own grey drop shadow with almost no lightness step;
    the step is in a*/b*. JPEG chroma ringing around saturated products also gives a*/b* edges,
    but on pixels that are still close to the backdrop colour, so colour edges must lie on pixels
    that differ from the backdrop.
    """
    edges = cv2.Canny(np.clip(lab[..., 0] * 2.55, 0, 255).astype(np.uint8), _CANNY_LOW, _CANNY_HIGH,
                      L2gradient=True)
    chroma = None
    for ch in (1, 2):
        plane = np.clip(lab[..., ch] * 2.5 + 128.0, 0, 255).astype(np.uint8)
        e = cv2.Canny(plane, _CANNY_LOW, _CANNY_HIGH, L2gradient=True)
        chroma = e if chroma is None else chroma | e
    chroma[dist < _CHROMA_EDGE_MIN] = 0
    return edges | chroma


def _cast_shadow(lab: np.ndarray, bg: np.ndarray, dist: np.ndarray, edges: np.ndarray,
                 seeds: np.ndarray) -> np.ndarray:
    """Drop-shadow pixels: darker, same hue as the backdrop, reachable from it without crossing an edge.

    Shadows fade smoothly into the backdrop, so they have no Canny edge between them and it; a
    product part of the same grey is separated from its shadow by at least a faint outline.
    """
    delta = lab - bg
    neutral = (np.abs(delta[..., 1]) < _SHADOW_CHROMA) & (np.abs(delta[..., 2]) < _SHADOW_CHROMA)
    like = (neutral & (delta[..., 0] < 0) & (dist < _COLOUR_THRESHOLD)) | (dist < _BACKDROP_EPS)
    like &= cv2.dilate(edges, np.ones((3, 3), np.uint8)) == 0
    n, labels = cv2.connectedComponents(like.astype(np.uint8), connectivity=4)
    reached = np.zeros(n, bool)
    reached[labels[seeds & like]] = True
    reached[0] = False
    return reached[labels]


def _peel_boundary(mask: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Drop outline pixels that are closer to the backdrop than to the product next to them.

    Edges and closing put the outline on the outer, anti-aliased pixel; a pixel belongs to the
    product when it is at least half-way (in colour distance) from the backdrop to the interior.
    """
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
    rim = (mask > 0) & (inner == 0)
    inner_f = (inner > 0).astype(np.float32)
    num = cv2.boxFilter(dist * inner_f, -1, (5, 5), normalize=False)
    den = cv2.boxFilter(inner_f, -1, (5, 5), normalize=False)
    ref = num / np.maximum(den, 1.0)
    out = mask.copy()
    out[rim & (den > 0) & (dist < 0.5 * ref)] = 0
    return out


def _estimate_work(small: np.ndarray, refine: bool) -> tuple[np.ndarray | None, str]:
    """Saliency at working resolution: backdrop colour difference + sharp outline, filled."""
    h, w = small.shape[:2]
    lab = cv2.cvtColor(small.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    band = max(2, round(_BORDER_FRAC * min(h, w)))
    border = _border_pixels(lab, band)
    bg = np.median(border, axis=0)
    border_dist = np.linalg.norm(border - bg, axis=1)
    if np.mean(border_dist < _BORDER_TOL) < _BORDER_MIN_SHARE or np.median(border_dist) > _BORDER_MAX_SPREAD:
        return None, STATUS_NOT_UNIFORM

    dist = np.sqrt(((lab - bg) ** 2).sum(axis=2))
    mask = np.where(dist > _COLOUR_THRESHOLD, 255, 0).astype(np.uint8)
    edges = _colour_edges(lab, dist)
    mask |= edges

    # Outlines of pale packaging have gaps where the product meets its own drop shadow; a generous
    # closing bridges them so that the interior can be filled. Only regions reached from backdrop
    # pixels on the image border stay empty, so products cut off by the border are filled too.
    k = max(3, round(0.035 * max(h, w)) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    frame = np.zeros((h, w), bool)
    frame[0], frame[-1], frame[:, 0], frame[:, -1] = True, True, True, True
    backdrop = dist < _BACKDROP_EPS
    mask = _fill_holes(mask, frame & backdrop)
    # The closing also bridged concavities (between a razor's head and handle, say): take back what
    # is exactly backdrop colour, then fill what that opened inside the product again.
    mask[backdrop] = 0
    mask[_cast_shadow(lab, bg, dist, edges, frame & backdrop)] = 0
    mask = _fill_holes(mask, frame & backdrop)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    mask = _keep_large_components(mask)
    mask = _peel_boundary(mask, dist)
    if refine:
        mask = _grabcut_refine(small, mask)

    cover = float(np.count_nonzero(mask)) / mask.size
    if cover < _MIN_COVER:
        return None, STATUS_NOTHING
    if cover > _MAX_COVER:
        return None, STATUS_FILLS_FRAME
    return mask, STATUS_OK


def _grabcut_refine(small: np.ndarray, mask: np.ndarray, side: int = 128, iterations: int = 2) -> np.ndarray:
    """A few GrabCut iterations on a downscaled copy, started from ``mask`` as probable fg/bg."""
    h, w = mask.shape
    s = min(1.0, side / max(h, w))
    sw, sh = max(8, round(w * s)), max(8, round(h * s))
    img = cv2.resize(small, (sw, sh), interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_NEAREST)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    gc = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    gc[cv2.dilate(m, kernel, iterations=2) > 0] = cv2.GC_PR_BGD
    gc[m > 0] = cv2.GC_PR_FGD
    gc[cv2.erode(m, kernel, iterations=2) > 0] = cv2.GC_FGD
    if not (gc == cv2.GC_FGD).any() or not (gc == cv2.GC_BGD).any():
        return mask
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        cv2.grabCut(bgr, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate colour models (e.g. a single colour); keep the unrefined mask
        return mask
    out = np.where((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    return _fill_holes(resize_mask(out, w, h))


def estimate_saliency_mask(image_rgb: np.ndarray, *, refine: bool = False) -> tuple[np.ndarray | None, str]:
    """Cut the product out of a catalog image on a plain backdrop.

    The backdrop colour is the median of a thin border band, which must be mostly uniform;
    pixels far from it in Lab, plus sharp outlines (for white packaging on white), are closed,
    hole-filled and reduced to their large connected components.

    Args:
        image_rgb: ``uint8`` RGB image of shape (H, W, 3).
        refine: Run a short GrabCut from the mask (slower; rarely needed on clean catalog images).

    Returns:
        ``(mask, "ok")`` with a ``uint8`` {0, 255} mask of shape (H, W), or ``(None, reason)``
        when the image does not look like a product on a plain backdrop.
    """
    img = check_rgb_image(image_rgb)
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        return None, STATUS_TOO_SMALL
    small = _work_image(img)
    mask, status = _estimate_work(small, refine)
    if mask is None:
        return None, status
    return resize_mask(mask, w, h), status


def _crossings(strokes: np.ndarray) -> int:
    """Most stroke entries along any row of the middle half of a (horizontal) line box."""
    h = strokes.shape[0]
    mid = strokes[h // 4: max(h // 4 + 1, (3 * h + 3) // 4)] > 0
    mid = np.pad(mid, ((0, 0), (1, 0)))
    return int((mid[:, 1:] & ~mid[:, :-1]).sum(axis=1).max())


def _glyph_like(strokes: np.ndarray, max_thick: int, max_line: int) -> np.ndarray:
    """Keep stroke blobs that could be letters or words.

    Outlines of shapes (a face on a sheet mask, a pan in a palette) are larger than a text line in
    both directions, and the edges of trims and labels are long one- to three-pixel lines; either
    would otherwise be closed together with nearby lettering into one large non-text component.
    """
    _, labels, stats, _ = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    short, long_ = np.minimum(bw, bh), np.maximum(bw, bh)
    keep = (short <= max_thick) & ~((short <= 3) & (long_ > max_line))
    keep[0] = False
    return np.where(keep[labels], 255, 0).astype(np.uint8)


@lru_cache(maxsize=1)
def _mask_detector():
    """The PP-OCR detector for masks, or None: one thread per call, since the mask cache runs several."""
    from . import text_detection

    if not text_detection.available():
        logger.info("Text masks from the OpenCV heuristic: %s", text_detection.unavailable_reason())
        return None
    return text_detection.TextDetector(limit_side=_DETECTOR_SIDE, threads=1)


def text_mask_source() -> str:
    """Which source makes text masks here: ``"ppocr-det:<model file>"`` or ``"opencv-heuristic"``."""
    detector = _mask_detector()
    if detector is None:
        return TEXT_SOURCE_HEURISTIC
    rules = (_DETECTOR_SIDE, _DETECTOR_MIN_ON_PRODUCT, _DETECTOR_MIN_SCORE, _DETECTOR_MAX_LINE, _DETECTOR_MAX_BLOCK,
             _DETECTOR_MIN_ELONGATION)
    return f"ppocr-det:{detector.model.name}:" + ",".join(str(v) for v in rules)


def detect_text_lines(small: np.ndarray, saliency: np.ndarray | None) -> np.ndarray:
    """The text-mask source: printed text lines as filled boxes (PP-OCR when installed, else OpenCV).

    Its callers resize to and from the working resolution and check the inputs.

    Args:
        small: ``uint8`` RGB image at working resolution (longest side at most 256 px).
        saliency: Optional ``uint8`` {0, 255} product mask of the same size; text is then kept
            only on the product.

    Returns:
        ``uint8`` {0, 255} mask of the same height and width; all zero when no text was found.
    """
    detector = _mask_detector()
    if detector is None:
        return heuristic_text_lines(small, saliency)
    return detector_text_lines(detector, small, saliency)


def detector_text_lines(detector, small: np.ndarray, saliency: np.ndarray | None) -> np.ndarray:
    """Text boxes of a :class:`~beauty_app.training.text_detection.TextDetector`, restricted to the product.

    A box is kept when its score is at least :data:`_DETECTOR_MIN_SCORE` and, given a product mask,
    when most of it lies on the product and it is shaped like a line of text rather than a block
    covering the product; the kept boxes are then cut to the product.
    """
    found = detector.detect(small)
    out = np.zeros(small.shape[:2], np.uint8)
    product_area = np.count_nonzero(saliency) if saliency is not None else 0
    for box in found.boxes:
        if box.score < _DETECTOR_MIN_SCORE:
            continue
        filled = np.zeros_like(out)
        cv2.fillPoly(filled, [np.round(box.points).astype(np.int32)], 255)
        area = np.count_nonzero(filled)
        if area == 0:
            continue
        if saliency is not None:
            if np.count_nonzero(filled & saliency) < _DETECTOR_MIN_ON_PRODUCT * area:
                continue
            sides = sorted((float(np.linalg.norm(box.points[0] - box.points[1])),
                            float(np.linalg.norm(box.points[1] - box.points[2]))))
            squarish = sides[1] < _DETECTOR_MIN_ELONGATION * max(sides[0], 1e-6)
            if area > _DETECTOR_MAX_LINE * product_area or (squarish and area > _DETECTOR_MAX_BLOCK * product_area):
                continue
        out |= filled
    if saliency is not None:
        out &= saliency
    return out


def heuristic_text_lines(small: np.ndarray, saliency: np.ndarray | None) -> np.ndarray:
    """Printed text lines as filled boxes, by an OpenCV heuristic (the fallback text-mask source).

    Args:
        small: ``uint8`` RGB image at working resolution (longest side at most 256 px; the
            thresholds are tuned in pixels of that scale).
        saliency: Optional ``uint8`` {0, 255} product mask of the same size; text is then kept
            only on the product, away from its outline.

    Returns:
        ``uint8`` {0, 255} mask of the same height and width; all zero when no text was found.
    """
    h, w = small.shape[:2]
    side = max(h, w)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    strokes = np.where(grad >= _TEXT_CONTRAST, 255, 0).astype(np.uint8)
    region = None
    if saliency is not None:
        # The product's own outline is the strongest gradient of all; drop a band around it.
        region = cv2.erode(saliency, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
        strokes &= region
    out = np.zeros((h, w), np.uint8)
    # Letter gaps (also of spaced capitals) close, the space between two printed lines does not.
    gap = max(3, round(0.03 * side))
    min_h, max_h = max(4, round(0.016 * side)), round(0.12 * side)
    strokes = _glyph_like(strokes, max_h, round(0.06 * side))
    for vertical in (False, True):
        kernel = np.ones((gap, 1) if vertical else (1, gap), np.uint8)
        lines = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, kernel)
        stats = cv2.connectedComponentsWithStats(lines, connectivity=8)[2]
        for x, y, bw, bh, _area in stats[1:]:
            length, thick = (bh, bw) if vertical else (bw, bh)
            if not (min_h <= thick <= max_h) or length < 1.5 * thick or length > 0.9 * side:
                continue
            box = strokes[y:y + bh, x:x + bw]
            fill = float(np.count_nonzero(box)) / (bw * bh)
            if not 0.2 <= fill <= 0.85:  # solid bands and sparse frames or rings are not text
                continue
            # Letters cut a line through the middle of the box many times; stripes and edges do not.
            if _crossings(box.T if vertical else box) < max(3, length // (2 * thick)):
                continue
            if region is not None and np.count_nonzero(region[y:y + bh, x:x + bw]) < 0.9 * bw * bh:
                continue
            out[y:y + bh, x:x + bw] = 255
    if saliency is not None:
        out &= saliency  # a box may overhang a curved product edge by a pixel or two
    return out


def estimate_text_mask(image_rgb: np.ndarray, saliency: np.ndarray | None = None) -> np.ndarray:
    """Find printed text lines (brand, product line, size) as filled boxes.

    Strong local contrast (a morphological gradient) is closed along rows and along columns
    (vertical lettering on lipsticks and razors) into line candidates, which are kept when their
    thickness, length, stroke density and number of glyphs look like text.

    Args:
        image_rgb: ``uint8`` RGB image of shape (H, W, 3).
        saliency: Optional product mask of the same size; text is then kept only on the product.

    Returns:
        ``uint8`` {0, 255} mask of shape (H, W); all zero when no text was found.
    """
    img = check_rgb_image(image_rgb)
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        return np.zeros((h, w), np.uint8)
    small = _work_image(img)
    sal = None
    if saliency is not None:
        sal_arr = np.asarray(saliency)
        if sal_arr.shape != (h, w):
            raise ValueError(f"saliency mask of shape {sal_arr.shape} does not match the image {h}x{w}")
        sal = resize_mask(np.where(sal_arr > 0, 255, 0).astype(np.uint8), small.shape[1], small.shape[0])
    return resize_mask(detect_text_lines(small, sal), w, h)


def compute_masks(image_rgb: np.ndarray, *, refine: bool = False) -> MaskResult:
    """Saliency and text masks of one catalog image.

    When the saliency estimate fails, the text mask is searched over the whole image (useful for
    previews); :func:`build_mask_cache` does not store it, because without the product region the
    detector also fires on background clutter.
    """
    img = check_rgb_image(image_rgb)
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        return MaskResult(None, np.zeros((h, w), np.uint8), STATUS_TOO_SMALL)
    small = _work_image(img)
    sal_small, status = _estimate_work(small, refine)
    text = resize_mask(detect_text_lines(small, sal_small), w, h)
    sal = None if sal_small is None else resize_mask(sal_small, w, h)
    return MaskResult(sal, text, status)
