"""Pseudo saliency/text masks: quality against the demo's ground truth, failure marking, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from beauty_app.demo.products import generate_demo
from beauty_app.errors import UserError
from beauty_app.imaging import load_image
from beauty_app.jobs import Cancelled, JobControl
from beauty_app.training import mask_cache, masks, text_detection
from beauty_app.training.mask_cache import build_mask_cache, load_cached_masks, mask_stem
from beauty_app.training.mask_preview import mask_contact_sheet
from beauty_app.training.masks import (
    MaskResult,
    compute_masks,
    estimate_saliency_mask,
    estimate_text_mask,
)


TEXT_SOURCES = ["heuristic", pytest.param("detector", marks=pytest.mark.skipif(
    not text_detection.available(), reason="PP-OCR text detector not installed"))]


@pytest.fixture(params=TEXT_SOURCES)
def text_source(request, monkeypatch) -> str:
    """Runs a text-mask test with each source: the OpenCV heuristic, and PP-OCR where installed."""
    if request.param == "heuristic":
        monkeypatch.setattr(masks, "_mask_detector", lambda: None)
    return request.param


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("masks_demo"), n_products=20, seed=0, save_masks=True)


@pytest.fixture(scope="module")
def catalog(demo) -> list[tuple[str, Path, np.ndarray, np.ndarray]]:
    """(id, path, image, ground-truth mask) of every demo catalog image."""
    out = []
    for path in sorted((demo.root / "catalog").glob("*.jpg")):
        img = np.asarray(load_image(path, max_side=256))
        gt = np.asarray(Image.open(demo.masks_dir / f"{path.stem}.png")) > 0
        out.append((path.stem, path, img, gt))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


# ----------------------------------------------------------------------------- saliency
def test_saliency_matches_ground_truth_on_catalog_images(catalog) -> None:
    ious, failed = [], []
    for item_id, _, img, gt in catalog:
        mask, status = estimate_saliency_mask(img)
        if mask is None:
            failed.append((item_id, status))
            continue
        assert mask.shape == gt.shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        ious.append(_iou(mask > 0, gt))
    assert len(catalog) >= 20
    assert len(failed) <= 0.1 * len(catalog), failed
    assert np.mean(ious) >= 0.85, sorted(ious)[:5]


@pytest.mark.parametrize("query", range(6))
def test_real_photos_are_marked_failed_not_given_a_mask(demo, query) -> None:
    img = np.asarray(load_image(demo.queries_dir / f"q{query:06d}.jpg"))
    mask, status = estimate_saliency_mask(img)
    assert mask is None
    assert status == masks.STATUS_NOT_UNIFORM


def test_failure_reasons() -> None:
    rng = np.random.default_rng(0)
    assert estimate_saliency_mask(rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)) == (
        None, masks.STATUS_NOT_UNIFORM)
    assert estimate_saliency_mask(np.full((100, 100, 3), 250, np.uint8)) == (None, masks.STATUS_NOTHING)
    assert estimate_saliency_mask(np.full((10, 10, 3), 250, np.uint8)) == (None, masks.STATUS_TOO_SMALL)


def test_object_filling_the_frame_is_rejected(monkeypatch) -> None:
    img = np.full((200, 200, 3), 255, np.uint8)
    img[20:180, 20:180] = (200, 40, 40)
    mask, status = estimate_saliency_mask(img)
    assert status == masks.STATUS_OK and abs((mask > 0).mean() - 0.64) < 0.02
    monkeypatch.setattr(masks, "_MAX_COVER", 0.5)
    assert estimate_saliency_mask(img) == (None, masks.STATUS_FILLS_FRAME)


def test_product_cut_by_the_border_and_pale_packaging_are_filled() -> None:
    # A light grey box with a faint outline running off the bottom edge, on white.
    img = np.full((160, 160, 3), 255, np.uint8)
    img[60:, 40:120] = (236, 236, 232)
    cv2.rectangle(img, (40, 60), (119, 170), (200, 200, 200), 1)
    mask, status = estimate_saliency_mask(img)
    truth = np.zeros((160, 160), bool)
    truth[60:, 40:120] = True
    assert status == masks.STATUS_OK and _iou(mask > 0, truth) > 0.95


def test_large_images_get_a_full_size_mask(catalog) -> None:
    _, _, img, gt = catalog[0]
    big = cv2.resize(img, (512, 512), interpolation=cv2.INTER_CUBIC)
    mask, _ = estimate_saliency_mask(big)
    assert mask.shape == (512, 512)
    small = cv2.resize(mask, gt.shape[::-1], interpolation=cv2.INTER_AREA) > 127
    assert _iou(small, gt) > 0.85


def test_bad_arrays_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        estimate_saliency_mask(np.zeros((50, 50), np.uint8))
    with pytest.raises(ValueError):
        estimate_saliency_mask(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError):
        estimate_text_mask(np.zeros((50, 50, 3), np.uint8), np.zeros((40, 40), np.uint8))


# ----------------------------------------------------------------------------- text
def test_text_masks_land_on_the_products(catalog, text_source) -> None:
    found, inside, total = 0, 0, 0
    for _, _, img, gt in catalog:
        res = compute_masks(img)
        assert isinstance(res, MaskResult) and res.text.shape == gt.shape and res.text.dtype == np.uint8
        on = res.text > 0
        found += bool(on.any())
        inside += int((on & gt).sum())
        total += int(on.sum())
        if res.saliency is not None:  # kept only on the product when the product is known
            assert not (on & (res.saliency == 0)).any()
        # Labels are small: text boxes never cover most of the product.
        assert on.sum() < 0.5 * gt.sum()
    assert found >= 0.8 * len(catalog)
    assert inside >= 0.95 * total


def test_text_lines_are_found_and_plain_shapes_are_not(text_source) -> None:
    img = Image.new("RGB", (256, 256), "white")
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(img)
    draw.rectangle((40, 40, 215, 215), fill=(60, 120, 200))
    draw.ellipse((60, 150, 110, 200), outline=(250, 250, 250), width=3)  # a ring, not text
    draw.line((60, 130, 200, 130), fill=(250, 250, 250), width=2)  # a trim line, not text
    font = ImageFont.load_default(size=20)
    draw.text((128, 90), "HYDRA GLOW", font=font, fill=(255, 255, 255), anchor="mm")
    arr = np.asarray(img)
    sal, _ = estimate_saliency_mask(arr)
    text = estimate_text_mask(arr, sal)
    ys, xs = np.nonzero(text)
    assert ys.size > 0
    assert ys.min() >= 70 and ys.max() <= 110
    assert xs.min() >= 50 and xs.max() <= 210
    assert estimate_text_mask(np.full((64, 64, 3), 255, np.uint8)).max() == 0


# ----------------------------------------------------------------------------- cache
def _items(catalog, n: int) -> list[tuple[str, Path]]:
    return [(item_id, path) for item_id, path, _, _ in catalog[:n]]


def test_cache_round_trips_and_is_resumable(catalog, demo, tmp_path, monkeypatch) -> None:
    items = _items(catalog, 6)
    items.append(("photo", demo.queries_dir / "q000000.jpg"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    items.append(("broken", broken))
    cache = tmp_path / "cache"
    events = []
    statuses = build_mask_cache(items, cache, workers=2, job=JobControl(events.append, min_interval_s=0))
    assert statuses["photo"] == masks.STATUS_NOT_UNIFORM
    assert statuses["broken"] == masks.STATUS_UNREADABLE
    assert all(statuses[i] == masks.STATUS_OK for i, _ in items[:6])
    assert events[-1].done == events[-1].total == len(items)

    for item_id, path in items[:6]:
        sal, txt = load_cached_masks(cache, item_id)
        ref = compute_masks(np.asarray(load_image(path, max_side=256)))
        np.testing.assert_array_equal(sal, ref.saliency)
        np.testing.assert_array_equal(txt, ref.text)
    assert load_cached_masks(cache, "photo") == (None, None)
    assert load_cached_masks(cache, "never-seen") == (None, None)
    index = json.loads((cache / "index.json").read_text())
    assert index["size"] == 256 and index["items"]["photo"]["status"] == masks.STATUS_NOT_UNIFORM

    # A second run computes nothing but retries the unreadable file.
    calls = []
    real = masks.compute_masks
    monkeypatch.setattr(mask_cache, "compute_masks", lambda img, **kw: calls.append(1) or real(img, **kw))
    again = build_mask_cache(items + _items(catalog, 8)[6:], cache, workers=1)
    assert len(calls) == 2  # only the two new catalog images; the broken file fails before estimation
    assert again == {**statuses, **{i: masks.STATUS_OK for i, _ in _items(catalog, 8)[6:]}}


def test_cancelled_cache_build_keeps_its_progress(catalog, tmp_path) -> None:
    items = _items(catalog, 8)
    cache = tmp_path / "cache"
    job = JobControl(min_interval_s=0)
    seen = []

    def on_progress(event) -> None:
        seen.append(event.done)
        if event.done >= 3:
            job.cancel()

    job._on_progress = on_progress
    with pytest.raises(Cancelled):
        build_mask_cache(items, cache, workers=1, job=job)
    done_before = set(json.loads((cache / "index.json").read_text())["items"])
    assert 3 <= len(done_before) < len(items)
    events = []
    build_mask_cache(items, cache, workers=2, job=JobControl(events.append, min_interval_s=0))
    assert events[0].done == len(done_before)  # resumed, not restarted
    assert set(json.loads((cache / "index.json").read_text())["items"]) == {i for i, _ in items}


def test_cache_made_at_another_size_is_recomputed(catalog, tmp_path) -> None:
    items = _items(catalog, 2)
    build_mask_cache(items, tmp_path, size=128, workers=1)
    assert load_cached_masks(tmp_path, items[0][0])[0].shape == (128, 128)
    build_mask_cache(items, tmp_path, size=256, workers=1)
    assert load_cached_masks(tmp_path, items[0][0])[0].shape == (256, 256)


def test_unsafe_ids_get_distinct_safe_file_names(catalog, tmp_path) -> None:
    ids = ["../evil", "A", "a", "x/y", ".hidden", "ok-id_1.2"]
    stems = [mask_stem(i) for i in ids]
    assert len(set(stems)) == len(ids)
    assert stems[-1] == "ok-id_1.2"
    for stem in stems:
        assert "/" not in stem and not stem.startswith(".")
    path = catalog[0][1]
    build_mask_cache([(i, path) for i in ids[:4]], tmp_path, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == sorted(
        f"{mask_stem(i)}.{kind}.png" for i in ids[:4] for kind in ("sal", "txt"))
    assert load_cached_masks(tmp_path, "A")[0] is not None


# ----------------------------------------------------------------------------- contact sheet
def test_contact_sheet_has_the_expected_size_and_shows_masks(catalog, demo, tmp_path) -> None:
    items = [*_items(catalog, 7), ("photo", demo.queries_dir / "q000001.jpg")]
    build_mask_cache(items, tmp_path / "cache", workers=1)
    out = mask_contact_sheet(items, tmp_path / "cache", tmp_path / "sheet.png", columns=3, thumb=96)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (3 * (96 + 16), 3 * 96, 3)
    first = sheet[:96, :96].astype(int)
    assert ((first[..., 1] - first[..., 0]) > 60).sum() > 200  # green saliency tint on the product
    with pytest.raises(UserError):
        mask_contact_sheet([], tmp_path / "cache", tmp_path / "empty.png")
    limited = mask_contact_sheet(items, tmp_path / "cache", tmp_path / "two.png", columns=6, thumb=64,
                                 limit=2)
    assert Image.open(limited).size == (2 * 64, 64 + 16)


def test_text_masks_come_from_one_replaceable_source(monkeypatch) -> None:
    # A learned text detector plugs in by replacing detect_text_lines: both entry points must use it.
    img = np.full((300, 200, 3), 255, np.uint8)
    img[60:240, 50:150] = (180, 40, 60)
    seen = []

    def stub(small, saliency):
        seen.append((small.shape, None if saliency is None else saliency.shape))
        out = np.zeros(small.shape[:2], np.uint8)
        out[: small.shape[0] // 2] = 255
        return out

    monkeypatch.setattr(masks, "detect_text_lines", stub)
    text = estimate_text_mask(img)
    assert text.shape == (300, 200) and text[:140].all() and not text[160:].any()
    result = compute_masks(img)
    assert result.ok and result.text.shape == (300, 200) and result.text[:140].all()
    # Both calls ran at the working resolution (longest side 256), the second with the product mask.
    assert seen == [((256, 171, 3), None), ((256, 171, 3), (256, 171))]


class _StubDetector:
    """Returns fixed boxes, as PP-OCR's detector would."""

    model = Path("stub.onnx")

    def __init__(self, boxes):
        self.boxes = [text_detection.TextBox(np.float32(points), score) for points, score in boxes]

    def detect(self, image):
        return text_detection.TextDetection(np.zeros(image.shape[:2], np.float32), self.boxes)


def _rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_detector_boxes_are_kept_only_as_text_lines_on_the_product() -> None:
    small = np.full((200, 200, 3), 255, np.uint8)
    product = np.zeros((200, 200), np.uint8)
    product[40:180, 40:160] = 255  # 140 x 120 px
    detector = _StubDetector([
        (_rect(60, 60, 140, 75), 0.9),  # a label line: kept
        (_rect(60, 90, 140, 100), 0.55),  # unsure (comb teeth, bristles): dropped
        (_rect(0, 100, 60, 115), 0.9),  # mostly on the backdrop: dropped
        (_rect(45, 110, 155, 175), 0.9),  # a block over a third of the product (a palette's pans): dropped
        (_rect(70, 120, 110, 150), 0.9),  # squarish and 7% of the product: a short word, kept
    ])
    out = masks.detector_text_lines(detector, small, product)
    assert out[60:75, 60:140].all() and out[120:150, 70:110].all()
    assert np.count_nonzero(out) == 81 * 16 + 41 * 31  # fillPoly includes both edges
    without_product = masks.detector_text_lines(detector, small, None)
    assert without_product[100:115, 0:60].all() and not without_product[90:100].any()


def test_the_cache_records_its_text_source_and_recomputes_for_another(catalog, tmp_path, monkeypatch) -> None:
    items = _items(catalog, 2)
    cache = tmp_path / "cache"
    monkeypatch.setattr(mask_cache, "text_mask_source", lambda: "source-a")
    build_mask_cache(items, cache, workers=1)
    assert json.loads((cache / "index.json").read_text())["text_source"] == "source-a"
    calls = []
    real = masks.compute_masks
    monkeypatch.setattr(mask_cache, "compute_masks", lambda img, **kw: calls.append(1) or real(img, **kw))
    build_mask_cache(items, cache, workers=1)
    assert calls == []  # same source: everything cached
    monkeypatch.setattr(mask_cache, "text_mask_source", lambda: "source-b")
    build_mask_cache(items, cache, workers=1)
    assert len(calls) == 2 and json.loads((cache / "index.json").read_text())["text_source"] == "source-b"


def test_text_mask_source_names_the_detector_when_installed(monkeypatch) -> None:
    monkeypatch.setattr(masks, "_mask_detector", lambda: None)
    assert masks.text_mask_source() == masks.TEXT_SOURCE_HEURISTIC
    monkeypatch.setattr(masks, "_mask_detector", lambda: _StubDetector([]))
    assert masks.text_mask_source().startswith("ppocr-det:stub.onnx")
