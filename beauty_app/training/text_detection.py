"""Printed-text detection with PP-OCR's DB text detector, run offline through onnxruntime.

Where the model comes from: the ``rapidocr-onnxruntime`` wheel (PyPI) ships PP-OCRv4's detection
network as ``rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx`` (4.7 MB, Apache-2.0).
That package declares the non-headless ``opencv-python``, which installs a second ``cv2`` over
our ``opencv-python-headless`` and clashes with PySide6's Qt plugins, so it is installed *without
its dependencies* (``pip install --no-deps rapidocr-onnxruntime``, the ``make setup`` step) and
never imported: :func:`model_path` finds the file with ``importlib.util.find_spec``, which locates
a package without running its ``__init__``. Only ``onnxruntime`` (the ``ocr`` extra) is imported.
A model file elsewhere (an installer bundle) can be named with ``BEAUTY_APP_TEXT_DET_MODEL``.

When either is missing, :func:`available` is False and callers keep the OpenCV heuristic
(:func:`beauty_app.training.masks.estimate_text_mask`); :func:`unavailable_reason` says why.

The pipeline is PP-OCR's own, kept short:

* preprocess: BGR channel order (Paddle's training order), a shorter side below ``limit_side``
  enlarged to it (736, PP-OCR's ``limit_type: min``), a longer side above ``max_side`` (2000,
  rapidocr's ``max_side_len``) reduced to it, both rounded to multiples of 32 (the network's
  stride), ``(x / 255 - 0.5) / 0.5``; callers bound CPU time by what they pass in (the app's maps
  and the bench use photos decoded at 1024 px);
* the network gives a text probability map at the input resolution;
* DB post-processing: threshold 0.3, a 2x2 dilation, external contours (cv2), each contour's
  minimum-area rectangle scored by the mean probability inside it (kept from 0.5), then "unclipped"
  (grown by ``area * 1.6 / perimeter`` on every side: the DB shrink ratio inverted). PP-OCR grows the
  polygon with pyclipper and takes the minimum-area rectangle of the result; for a rectangle that
  is the same rectangle with each side moved out by the distance, which is computed directly here.

No Qt here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

MODEL_ENV = "BEAUTY_APP_TEXT_DET_MODEL"
_MODEL_PACKAGE = "rapidocr_onnxruntime"
_MODEL_FILE = Path("models") / "ch_PP-OCRv4_det_infer.onnx"

#: PP-OCR's detection defaults (rapidocr's config.yaml, PaddleOCR's det_db_* options).
LIMIT_SIDE = 736
MAX_SIDE = 2000
BINARY_THRESHOLD = 0.3
BOX_THRESHOLD = 0.5
UNCLIP_RATIO = 1.6
_MIN_BOX_SIDE = 3
_MAX_CANDIDATES = 1000


def model_path() -> Path | None:
    """The PP-OCR detection model file: ``$BEAUTY_APP_TEXT_DET_MODEL`` or the one in rapidocr's wheel."""
    override = os.environ.get(MODEL_ENV)
    if override:
        path = Path(override).expanduser()
        return path if path.is_file() else None
    try:
        spec = importlib.util.find_spec(_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / _MODEL_FILE
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def _onnxruntime_problem() -> str:
    """Empty when onnxruntime imports; otherwise why not (a broken install counts as missing)."""
    try:
        import onnxruntime  # noqa: F401 - the optional extra
    except ImportError:
        return "onnxruntime is not installed (pip install 'beauty_app[ocr]')."
    except Exception as exc:  # noqa: BLE001 - a wheel that cannot load its native library
        return f"onnxruntime cannot be loaded ({exc})."
    return ""


def unavailable_reason() -> str:
    """Why the detector cannot run, in one sentence; empty when it can."""
    if _onnxruntime_problem():
        return _onnxruntime_problem()
    if model_path() is None:
        if os.environ.get(MODEL_ENV):
            return f"The text detection model named by {MODEL_ENV} does not exist."
        return ("The PP-OCR text detection model is not installed "
                "(pip install --no-deps rapidocr-onnxruntime, or make setup).")
    return ""


def available() -> bool:
    """True when the real text detector can run; otherwise use ``masks.estimate_text_mask``."""
    return not unavailable_reason()


@dataclass(frozen=True)
class TextBox:
    """One detected text line: a rotated rectangle in image pixels and its mean text probability."""

    points: np.ndarray  # (4, 2) float32 corners (x, y), clockwise from the top-left
    score: float

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Axis-aligned (x0, y0, x1, y1) around the corners."""
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


@dataclass
class TextDetection:
    """The detector's output for one image, at the image's resolution."""

    probability: np.ndarray  # (H, W) float32 in [0, 1]
    boxes: list[TextBox] = field(default_factory=list)

    def mask(self) -> np.ndarray:
        """``uint8`` {0, 255} mask of the filled text boxes (the contract of ``masks.estimate_text_mask``)."""
        out = np.zeros(self.probability.shape, np.uint8)
        if self.boxes:
            polygons = [np.round(box.points).astype(np.int32) for box in self.boxes]
            cv2.fillPoly(out, polygons, 255)
        return out


def _input_size(height: int, width: int, limit_side: int, max_side: int) -> tuple[int, int]:
    """Network input (height, width): shorter side at least ``limit_side``, longer at most ``max_side``, x32."""
    ratio = max(1.0, limit_side / min(height, width))  # PP-OCR enlarges small images, never shrinks large ones...
    ratio = min(ratio, max_side / max(height, width))  # ...up to its overall size limit
    return (max(32, int(round(height * ratio / 32)) * 32),
            max(32, int(round(width * ratio / 32)) * 32))


def _min_area_box(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Corners of the minimum-area rectangle around ``points`` (clockwise from top-left) and its short side."""
    rect = cv2.minAreaRect(points.astype(np.float32))
    return _order_corners(cv2.boxPoints(rect)), float(min(rect[1]))


def _order_corners(corners: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left (PP-OCR's order, for any rotation)."""
    by_x = corners[np.argsort(corners[:, 0])]
    left = by_x[:2][np.argsort(by_x[:2, 1])]
    right = by_x[2:][np.argsort(by_x[2:, 1])]
    return np.array([left[0], right[0], right[1], left[1]], np.float32)


def _box_score(probability: np.ndarray, corners: np.ndarray) -> float:
    """Mean probability inside the rectangle (PP-OCR's "fast" score)."""
    h, w = probability.shape
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, (w - 1, h - 1))
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, (w - 1, h - 1))
    inside = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(inside, [(corners - (x0, y0)).astype(np.int32)], 1)  # truncated, as PP-OCR does
    return float(cv2.mean(probability[y0:y1 + 1, x0:x1 + 1], inside)[0])


def _unclip(corners: np.ndarray, ratio: float) -> np.ndarray:
    """Grow a rectangle by ``area * ratio / perimeter`` on every side (DB's inverse shrink)."""
    (cx, cy), (w, h), angle = cv2.minAreaRect(corners.astype(np.float32))
    distance = w * h * ratio / max(2.0 * (w + h), 1e-6)
    return cv2.boxPoints(((cx, cy), (w + 2 * distance, h + 2 * distance), angle))


def boxes_from_probability(probability: np.ndarray, *, threshold: float = BINARY_THRESHOLD,
                           box_threshold: float = BOX_THRESHOLD, unclip_ratio: float = UNCLIP_RATIO,
                           scale: tuple[float, float] = (1.0, 1.0),
                           image_size: tuple[int, int] | None = None) -> list[TextBox]:
    """DB post-processing: text boxes from a probability map.

    Args:
        probability: (h, w) text probability.
        scale: (x, y) factors from map pixels to image pixels.
        image_size: (width, height) to clip the boxes to (default the map's own size times ``scale``).
    """
    h, w = probability.shape
    width, height = image_size or (w * scale[0], h * scale[1])
    bitmap = cv2.dilate((probability > threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours[:_MAX_CANDIDATES]:
        corners, short = _min_area_box(contour.reshape(-1, 2))
        if short < _MIN_BOX_SIDE:
            continue
        score = _box_score(probability, corners)
        if score < box_threshold:
            continue
        corners, short = _min_area_box(_unclip(corners, unclip_ratio))
        if short < _MIN_BOX_SIDE + 2:
            continue
        corners = corners * np.array(scale, np.float32)
        corners[:, 0] = corners[:, 0].clip(0, width)
        corners[:, 1] = corners[:, 1].clip(0, height)
        if min(np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[0] - corners[3])) < _MIN_BOX_SIDE + 1:
            continue  # a sliver in image pixels (PP-OCR drops these after scaling too)
        boxes.append(TextBox(corners, score))
    return boxes


class TextDetector:
    """PP-OCR's DB text detector on one onnxruntime CPU session.

    Args:
        model: the ONNX file (default :func:`model_path`).
        limit_side: a shorter side below this is enlarged to it (PP-OCR: 736).
        max_side: a longer side above this is reduced to it (bounds CPU time on large photos).
        threads: onnxruntime intra-op threads (0: its default, all cores).

    Raises:
        RuntimeError: onnxruntime or the model is missing (check :func:`available` first).
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, limit_side: int = LIMIT_SIDE,
                 max_side: int = MAX_SIDE, threads: int = 0):
        reason = unavailable_reason()
        if reason and not (model and not _onnxruntime_problem()):
            raise RuntimeError(reason)
        import onnxruntime as ort  # the optional extra: imported only when a detector is built

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # its warnings about unused initialisers are noise here
        self.model = Path(model) if model else model_path()
        self.session = ort.InferenceSession(str(self.model), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.limit_side = int(limit_side)
        self.max_side = int(max_side)

    def probability(self, image_rgb: np.ndarray) -> np.ndarray:
        """Text probability at the network's input resolution ((h, w) float32, multiples of 32)."""
        image = _check_rgb(image_rgb)
        height, width = image.shape[:2]
        in_h, in_w = _input_size(height, width, self.limit_side, self.max_side)
        resized = cv2.resize(image[:, :, ::-1], (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        tensor = ((resized.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        return self.session.run(None, {self.input_name: np.ascontiguousarray(tensor)})[0][0, 0]

    def detect(self, image_rgb: np.ndarray) -> TextDetection:
        """Text probability map and text boxes of an RGB image, both at the image's resolution."""
        image = _check_rgb(image_rgb)
        height, width = image.shape[:2]
        small = self.probability(image)
        scale = (width / small.shape[1], height / small.shape[0])
        boxes = boxes_from_probability(small, scale=scale, image_size=(width, height))
        full = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).clip(0, 1)
        return TextDetection(full.astype(np.float32), boxes)


def _check_rgb(image_rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(image_rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


@lru_cache(maxsize=1)
def default_detector() -> TextDetector:
    """One shared detector (the session costs ~0.2 s to build; it is safe to call from several threads)."""
    return TextDetector()


def detect_text(image_rgb: np.ndarray) -> TextDetection:
    """Probability map and text boxes of an RGB image with the shared detector."""
    return default_detector().detect(image_rgb)


def text_mask(image_rgb: np.ndarray) -> np.ndarray:
    """``uint8`` {0, 255} mask of the text boxes: a drop-in for ``masks.estimate_text_mask`` when available()."""
    return detect_text(image_rgb).mask()
