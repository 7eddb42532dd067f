"""PP-OCR text detection through onnxruntime: boxes on drawn words, fallback flag, post-processing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from beauty_app.training import text_detection as td

needs_detector = pytest.mark.skipif(not td.available(), reason=td.unavailable_reason() or "detector available")

WORDS = (("LUMIERE", (60, 70)), ("SERUM 30ml", (60, 190)))


def _label_with_words() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A light label on a mid-grey scene with large dark words; returns the image and each word's box."""
    img = Image.new("RGB", (640, 360), (150, 150, 150))
    draw = ImageDraw.Draw(img)
    draw.rectangle((30, 40, 610, 320), fill=(245, 240, 228))
    font = ImageFont.load_default(size=72)
    boxes = []
    for word, (x, y) in WORDS:
        draw.text((x, y), word, fill=(25, 25, 35), font=font)
        boxes.append(draw.textbbox((x, y), word, font=font))
    return np.asarray(img), boxes


def _fraction_inside(mask: np.ndarray, box) -> float:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return float(mask[y0:y1, x0:x1].mean())


@needs_detector
def test_detector_boxes_cover_the_drawn_words_and_hold_the_probability_mass():
    image, words = _label_with_words()
    found = td.detect_text(image)

    assert found.probability.shape == image.shape[:2]
    assert found.probability.dtype == np.float32
    assert 0.0 <= found.probability.min() and found.probability.max() <= 1.0
    detected = found.mask() > 0
    for word in words:  # each word lies (almost) entirely inside the detected boxes
        assert _fraction_inside(detected, word) > 0.9
    # and the boxes are text lines, not the whole label
    assert detected.mean() < 2.5 * sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in words) / detected.size

    mask = td.text_mask(image)  # the drop-in for masks.estimate_text_mask: same dtype and values
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}

    word_area = np.zeros(image.shape[:2], bool)
    for x0, y0, x1, y1 in words:
        word_area[max(0, y0 - 8):y1 + 8, max(0, x0 - 8):x1 + 8] = True
    mass = found.probability.sum()
    assert mass > 0
    assert found.probability[word_area].sum() / mass > 0.8


@needs_detector
def test_plain_label_without_words_gives_no_boxes():
    img = Image.new("RGB", (400, 300), (150, 150, 150))
    ImageDraw.Draw(img).rectangle((40, 40, 360, 260), fill=(245, 240, 228))
    found = td.detect_text(np.asarray(img))
    assert found.boxes == []
    assert not found.mask().any()


@needs_detector
def test_detection_is_at_image_resolution_for_odd_sizes():
    image, _ = _label_with_words()
    odd = np.ascontiguousarray(image[:347, :611])
    found = td.detect_text(odd)
    assert found.probability.shape == (347, 611)
    for box in found.boxes:
        x0, y0, x1, y1 = box.bounds
        assert 0 <= x0 < x1 <= 611 and 0 <= y0 < y1 <= 347


def test_missing_model_is_reported_and_not_available(monkeypatch, tmp_path):
    monkeypatch.setenv(td.MODEL_ENV, str(tmp_path / "nowhere.onnx"))
    assert td.model_path() is None
    assert not td.available()
    assert td.unavailable_reason()
    with pytest.raises(RuntimeError):
        td.TextDetector()


def test_input_size_enlarges_small_images_keeps_medium_ones_and_caps_large_ones_in_multiples_of_32():
    assert td._input_size(100, 200, 736, 2000) == (736, 1472)
    assert td._input_size(1024, 800, 736, 2000) == (1024, 800)
    h, w = td._input_size(4032, 3024, 736, 2000)
    assert h % 32 == 0 and w % 32 == 0 and max(h, w) <= 2000 + 16 and min(h, w) >= 1400


def test_post_processing_finds_one_grown_box_per_blob():
    probability = np.zeros((200, 300), np.float32)
    probability[50:70, 40:200] = 0.9  # a text line 160 x 20
    probability[130:150, 100:140] = 0.2  # below the binary threshold: no box
    boxes = td.boxes_from_probability(probability, scale=(2.0, 2.0))
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0].bounds
    # unclip distance = area * 1.6 / perimeter = 160*20*1.6/360 ~ 14 px on each side, then x2
    grow = 160 * 20 * 1.6 / 360
    assert x0 == pytest.approx(2 * (40 - grow), abs=4) and x1 == pytest.approx(2 * (200 + grow), abs=4)
    assert y0 == pytest.approx(2 * (50 - grow), abs=4) and y1 == pytest.approx(2 * (70 + grow), abs=4)
    assert 0.8 < boxes[0].score <= 0.9  # the mean inside the (dilated) line, as PP-OCR scores it
