"""Printed text drawn into training photos: the mask covers exactly what was drawn, everywhere it lands."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import ImageFont

from beauty_app.training.augment import CrossDomainAugmenter, cutout
from beauty_app.training.scene_text import draw_text, font_files, random_words

SIZE = 128


def _product() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = np.full((200, 160, 3), 255, np.uint8)
    mask = np.zeros((200, 160), np.uint8)
    cv2.rectangle(mask, (40, 40), (120, 180), 255, -1)
    img[mask > 0] = (200, 40, 40)
    return img, mask, np.zeros_like(mask)  # a product without lettering: any text target is scene text


def test_every_drawn_pixel_is_inside_the_returned_line_mask() -> None:
    rng = np.random.default_rng(0)
    drawn_lines = 0
    for _ in range(40):
        canvas = np.full((SIZE, SIZE, 3), rng.uniform(0, 255), np.float32)
        out, line = draw_text(canvas.copy(), SIZE, rng)
        changed = np.abs(out - canvas).max(axis=2) > 8
        if not changed.any():
            continue
        drawn_lines += 1
        near = cv2.dilate((line > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert (changed & ~near).sum() <= 0.02 * changed.sum()
        # A line's box, not a whole frame: the mask is mostly where the glyphs are.
        assert 0 < (line > 0.5).mean() < 0.6
    assert drawn_lines >= 30


def test_text_on_a_region_is_centred_on_it() -> None:
    rng = np.random.default_rng(1)
    region = np.zeros((SIZE, SIZE), np.float32)
    region[80:120, 10:50] = 1.0
    for _ in range(20):
        _, line = draw_text(np.full((SIZE, SIZE, 3), 128, np.float32), SIZE, rng, region=region)
        ys, xs = np.nonzero(line > 0.5)
        box_centre = ((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2)
        assert 8 <= box_centre[0] <= 52 and 78 <= box_centre[1] <= 122


def test_fonts_draw_letters_and_words_vary() -> None:
    fonts = font_files()
    assert len(fonts) >= 5  # matplotlib (a dev dependency) ships DejaVu and STIX families
    for path in fonts:
        font = ImageFont.truetype(path, 24)
        assert bytes(font.getmask("A")) != bytes(font.getmask("\ue000")), path
    rng = np.random.default_rng(2)
    assert len({random_words(rng) for _ in range(50)}) > 40


def test_photo_samples_mark_drawn_text_around_the_product() -> None:
    img, mask, text = _product()
    aug = CrossDomainAugmenter(size=SIZE, p_photo=1.0, p_scene_text=1.0, backgrounds=())
    outside = on_product = 0
    for seed in range(20):
        s = aug(img, mask, text, np.random.default_rng(seed))
        lettering = s.text > 0.5
        assert lettering.any()
        outside += int((lettering & (s.saliency < 0.5)).sum() > 20)
        on_product += int((lettering & (s.saliency > 0.5)).sum() > 20)
        assert (s.saliency <= 1.0).all()  # drawn text never changes what is product
    assert outside >= 8 and on_product >= 8


def test_distractor_lettering_is_text_and_hidden_lettering_is_not() -> None:
    img, mask, text = _product()
    other = np.full((120, 120, 3), 60, np.uint8)
    other_mask = np.full((120, 120), 255, np.uint8)
    other_text = np.full((120, 120), 255, np.uint8)  # lettering all over the distractor
    with_text = [cutout(other, other_mask, other_text)]
    without = [cutout(other, other_mask)]
    assert with_text[0].shape[2] == 5 and without[0].shape[2] == 4
    aug = CrossDomainAugmenter(size=SIZE, p_photo=1.0, p_scene_text=0.0, backgrounds=())
    marked = 0
    for seed in range(20):
        a = aug(img, mask, text, np.random.default_rng(seed), distractors=with_text)
        b = aug(img, mask, text, np.random.default_rng(seed), distractors=without)
        np.testing.assert_array_equal(a.image, b.image)  # the text channel changes targets, not pixels
        assert b.text.max() == 0.0  # no lettering anywhere: no text target
        # The distractor's lettering is text where it is seen, never where the product covers it.
        assert a.text[a.saliency > 0.99].max(initial=0.0) < 0.02
        marked += int((a.text > 0.5).sum() > 50)
    assert marked >= 5
