"""Cross-domain augmentation: shapes, exact mask alignment, clutter, determinism and sample rates."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from beauty_app.training.augment import CrossDomainAugmenter, Sample, cutout, photo_backgrounds

SIZE = 128


def _product(colour: tuple[int, int, int] = (220, 30, 30), label: tuple[int, int, int] | None = None,
             shape: tuple[int, int] = (200, 160)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat-coloured "bottle" (rectangle + round cap) on white, its exact mask and a label mask."""
    h, w = shape
    img = np.full((h, w, 3), 255, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    cv2.rectangle(mask, (40, 60), (120, 180), 255, -1)
    cv2.circle(mask, (80, 45), 25, 255, -1)
    img[mask > 0] = colour
    text = np.zeros((h, w), np.uint8)
    text[100:120, 50:110] = 255
    if label is not None:
        img[text > 0] = label
    return img, mask, text


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def test_photo_and_plain_samples_have_the_output_shapes_and_dtypes() -> None:
    img, mask, text = _product()
    for p_photo, synthetic in ((1.0, True), (0.0, False)):
        aug = CrossDomainAugmenter(size=SIZE, p_photo=p_photo)
        s = aug(img, mask, text, np.random.default_rng(1))
        assert isinstance(s, Sample) and s.synthetic is synthetic
        assert s.image.shape == (SIZE, SIZE, 3) and s.image.dtype == np.uint8
        for m in (s.saliency, s.text):
            assert m is not None and m.shape == (SIZE, SIZE) and m.dtype == np.float32
            assert m.min() >= 0.0 and m.max() <= 1.0
        assert s.saliency.max() > 0.99 and s.text.max() > 0.99


def _within(changed: np.ndarray, target: np.ndarray, tol: int = 2) -> tuple[float, float]:
    """Share of changed pixels near the target, and share of the target's core that changed."""
    t = (target > 0.5).astype(np.uint8)
    k = np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)
    near, core = cv2.dilate(t, k) > 0, cv2.erode(t, k) > 0
    precision = float((changed & near).sum()) / max(1, int(changed.sum()))
    return precision, float((changed & core).sum()) / max(1, int(core.sum()))


def test_saliency_target_covers_exactly_the_pasted_product() -> None:
    """Same random stream, product painted red or blue: the pixels that change are the product."""
    red, mask, text = _product((230, 20, 20))
    blue, _, _ = _product((20, 20, 230))
    # No drawn scene text: lettering printed over the product would hide the colour that tells it apart.
    aug = CrossDomainAugmenter(size=SIZE, p_photo=1.0, p_scene_text=0.0)
    ious = []
    for seed in range(12):
        a = aug(red, mask, text, np.random.default_rng(seed))
        b = aug(blue, mask, text, np.random.default_rng(seed))
        assert a.synthetic and b.synthetic
        np.testing.assert_array_equal(a.saliency, b.saliency)
        changed = np.abs(a.image.astype(int) - b.image.astype(int)).sum(axis=2) > 60
        # Blur and JPEG smear the product's edge a little (a hand-shake kernel is up to 7 px long, 3 px
        # each side), no more: a target shifted or warped differently from the picture would fail both.
        precision, _ = _within(changed, a.saliency, tol=3)
        _, recall = _within(changed, a.saliency)
        assert precision > 0.97 and recall > 0.99, (seed, precision, recall)
        # The product is scaled to 0.4-0.9 of the frame: the target cannot be a sliver.
        assert (a.saliency > 0.5).mean() > 0.03
        ious.append(_iou(changed, a.saliency > 0.5))
    assert np.mean(ious) > 0.8, ious


def test_text_target_follows_the_label_through_the_warp() -> None:
    a_img, mask, text = _product((230, 20, 20), label=(250, 250, 250))
    b_img, _, _ = _product((230, 20, 20), label=(10, 10, 10))
    aug = CrossDomainAugmenter(size=SIZE, p_photo=1.0, p_scene_text=0.0)  # the label is the only text
    for seed in range(10):
        a = aug(a_img, mask, text, np.random.default_rng(seed))
        b = aug(b_img, mask, text, np.random.default_rng(seed))
        changed = np.abs(a.image.astype(int) - b.image.astype(int)).sum(axis=2) > 90
        precision, recall = _within(changed, a.text)
        assert precision > 0.9 and recall > 0.95, (seed, precision, recall)
        # Text printed on the product lies inside the product target.
        on_text = a.text > 0.5
        assert (a.saliency[on_text] > 0.4).mean() > 0.98


def test_distractors_are_clutter_not_salient() -> None:
    img, mask, text = _product((230, 20, 20))
    green, _, _ = _product((20, 200, 20))
    magenta, _, _ = _product((200, 20, 200))
    d_green, d_magenta = cutout(green, mask), cutout(magenta, mask)
    aug = CrossDomainAugmenter(size=SIZE, p_photo=1.0, p_scene_text=0.0)  # drawn text takes its colour from the clutter
    pasted = 0
    for seed in range(16):
        a = aug(img, mask, text, np.random.default_rng(seed), distractors=[d_green])
        b = aug(img, mask, text, np.random.default_rng(seed), distractors=[d_magenta])
        np.testing.assert_array_equal(a.saliency, b.saliency)
        changed = np.abs(a.image.astype(int) - b.image.astype(int)).sum(axis=2) > 60
        if changed.sum() < 50:
            continue  # no distractor in this sample
        pasted += 1
        inside = cv2.erode((a.saliency > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert (changed & inside).sum() <= 0.05 * changed.sum()
    assert pasted >= 4


def test_photo_samples_do_not_keep_the_white_catalog_border() -> None:
    img, mask, text = _product()
    aug = CrossDomainAugmenter(size=SIZE, p_photo=1.0)
    rng = np.random.default_rng(7)
    for _ in range(30):
        s = aug(img, mask, text, rng)
        border = np.concatenate([s.image[:6].reshape(-1, 3), s.image[-6:].reshape(-1, 3),
                                 s.image[:, :6].reshape(-1, 3), s.image[:, -6:].reshape(-1, 3)])
        assert (border.min(axis=1) > 235).mean() < 0.5


def test_plain_view_is_letterboxed_on_white_with_aligned_masks() -> None:
    img, mask, text = _product(shape=(200, 160))
    s = CrossDomainAugmenter(size=SIZE, p_photo=0.0)(img, mask, text, np.random.default_rng(0))
    assert not s.synthetic
    # 200x160 -> 128x102: white bars of 13 px left and right, nothing salient there.
    assert s.image[:, :12].min() >= 235 and s.image[:, -12:].min() >= 235
    assert s.saliency[:, :13].max() == 0.0
    expected = cv2.resize(mask, (102, SIZE), interpolation=cv2.INTER_LINEAR) > 127
    assert _iou(s.saliency[:, 13:115] > 0.5, expected) > 0.97
    # Where the target says product, the picture is the product's red (no flip, no shift).
    on = s.saliency > 0.9
    assert (s.image[on][:, 0].astype(int) - s.image[on][:, 2].astype(int)).min() > 120


def test_same_generator_state_gives_the_same_sample() -> None:
    img, mask, text = _product()
    dis = [cutout(*_product((20, 200, 20))[:2])]
    aug = CrossDomainAugmenter(size=SIZE, p_photo=0.7)
    for seed in range(6):
        a = aug(img, mask, text, np.random.default_rng(seed), distractors=dis)
        b = aug(img, mask, text, np.random.default_rng(seed), distractors=dis)
        assert a.synthetic == b.synthetic
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.saliency, b.saliency)
        np.testing.assert_array_equal(a.text, b.text)
    x = aug(img, mask, text, np.random.default_rng(100))
    y = aug(img, mask, text, np.random.default_rng(101))
    assert not np.array_equal(x.image, y.image)


def test_seeded_augmenter_is_reproducible_without_an_explicit_generator() -> None:
    img, mask, text = _product()
    a = CrossDomainAugmenter(size=SIZE, p_photo=1.0, seed=3)
    b = CrossDomainAugmenter(size=SIZE, p_photo=1.0, seed=3)
    for _ in range(3):
        np.testing.assert_array_equal(a(img, mask, text).image, b(img, mask, text).image)


def test_plain_samples_are_kept_at_the_configured_rate() -> None:
    img, mask, _ = _product(shape=(96, 96))
    mask = cv2.resize(mask, (96, 96))
    img = cv2.resize(img, (96, 96))
    aug = CrossDomainAugmenter(size=64, p_photo=0.3)
    rng = np.random.default_rng(11)
    photos = sum(aug(img, mask, None, rng).synthetic for _ in range(400))
    assert abs(photos / 400 - 0.3) < 0.07
    # Without a saliency mask the product cannot be cut out: always a plain view, no target.
    s = [aug(img, None, None, rng) for _ in range(20)]
    assert not any(x.synthetic for x in s) and all(x.saliency is None and x.text is None for x in s)


def test_given_backgrounds_are_used() -> None:
    img, mask, _ = _product()
    bg = np.zeros((300, 400, 3), np.uint8)
    bg[..., 1] = 255  # pure green wall
    aug = CrossDomainAugmenter(size=SIZE, p_photo=1.0, backgrounds=[bg])
    rng = np.random.default_rng(5)
    greenish = 0
    for _ in range(20):
        s = aug(img, mask, None, rng)
        corner = s.image[:4, :4].reshape(-1, 3).astype(int).mean(axis=0)
        greenish += corner[1] > corner[0] + 60 and corner[1] > corner[2] + 60
    assert 3 <= greenish <= 18  # about half the samples, the others procedural


def test_masks_in_other_forms_and_sizes_are_accepted() -> None:
    img, mask, text = _product()
    half = cv2.resize(mask, (80, 100), interpolation=cv2.INTER_NEAREST)
    aug = CrossDomainAugmenter(size=SIZE, p_photo=0.0)
    ref = aug(img, mask, text, np.random.default_rng(0))
    for m in (mask > 0, mask.astype(np.float32) / 255, half):
        s = aug(img, m, text, np.random.default_rng(0))
        assert _iou(s.saliency > 0.5, ref.saliency > 0.5) > 0.95
    with pytest.raises(ValueError):
        aug(img.astype(np.float32), mask, text, np.random.default_rng(0))
    with pytest.raises(ValueError):
        CrossDomainAugmenter(p_photo=1.5)


def test_cutout_crops_to_the_mask_with_alpha() -> None:
    img, mask, _ = _product()
    rgba = cutout(img, mask)
    assert rgba.shape == (161, 81, 4)  # rows 20..180, columns 40..120 inclusive
    assert rgba[..., 3].max() == 255 and rgba[0, 0, 3] == 0
    with pytest.raises(ValueError):
        cutout(img, np.zeros_like(mask))


def test_pair_is_a_photo_and_a_catalog_view_of_the_same_image() -> None:
    img, mask, text = _product()
    aug = CrossDomainAugmenter(size=SIZE, p_photo=0.0)  # p_photo does not apply to pairs
    photo, view = aug.pair(img, mask, text, np.random.default_rng(3))
    assert photo.synthetic and not view.synthetic
    assert photo.image.shape == view.image.shape == (SIZE, SIZE, 3)
    assert view.image[0, 0].min() > 230  # the catalog view keeps its white background
    assert photo.saliency.max() > 0.99 and view.saliency.max() > 0.99
    # Without a mask the product cannot be cut out: two plain views, still of the same image.
    first, second = aug.pair(img, None, None, np.random.default_rng(3))
    assert not first.synthetic and not second.synthetic and first.saliency is None


def test_packaged_photographs_are_the_default_backgrounds() -> None:
    photos = photo_backgrounds()
    assert len(photos) >= 2  # scikit-learn (a dependency) ships two in its wheel
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 and max(p.shape[:2]) <= 640 for p in photos)
    assert len(CrossDomainAugmenter(size=SIZE).backgrounds) == len(photos)
    assert CrossDomainAugmenter(size=SIZE, backgrounds=()).backgrounds == []


def test_hands_shelves_and_framing_keep_the_targets_on_the_visible_product() -> None:
    img = np.full((200, 160, 3), 255, np.uint8)
    mask = np.zeros((200, 160), np.uint8)
    mask[40:180, 40:120] = 255  # a box: convex, so a hole in its hull is something in front of it
    img[mask > 0] = (220, 30, 30)
    text = np.zeros_like(mask)
    text[100:120, 50:110] = 255
    # Without drawn scene text, so that the only text is the product's (test_scene_text covers the rest).
    aug = CrossDomainAugmenter(size=SIZE, p_photo=1.0, p_scene_text=0.0)
    centres, hidden = [], 0
    for seed in range(40):
        s = aug(img, mask, text, np.random.default_rng(seed))
        assert s.synthetic and s.saliency.max() <= 1 and (s.text <= s.saliency + 1e-4).all()
        ys, xs = np.nonzero(s.saliency > 0.5)
        centres.append((xs.mean() / SIZE, ys.mean() / SIZE))
        # A hand or another occluder in front of the product leaves a hole inside the product's hull.
        hull = cv2.fillConvexPoly(np.zeros((SIZE, SIZE), np.uint8),
                                  cv2.convexHull(np.stack([xs, ys], 1).astype(np.int32)), 1)
        hidden += (hull.sum() - (s.saliency > 0.5).sum()) > 0.08 * hull.sum()  # warping alone: < 0.05
    centres = np.asarray(centres)
    # Products land all over the frame, not in the middle only.
    assert centres.std(axis=0).min() > 0.08 and (np.abs(centres - 0.5) > 0.15).any(axis=1).mean() > 0.2
    assert 5 <= hidden <= 30  # about 44% of samples have a hand or another occluder in front
