"""The shipped model's saliency follows a product around the frame (composites with exact masks)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from beauty_app.demo.products import generate_demo
from beauty_app.evaluation.attention_maps import score_map
from beauty_app.imaging import load_image
from beauty_app.paths import demo_checkpoint
from beauty_app.training.augment import cutout
from beauty_app.training.scenes import procedural_background, unit_grid

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not demo_checkpoint().is_file(), reason="the shipped demo model is not in model_store")]

SIDE = 448
POSITIONS = [(cx, cy) for cx in (0.25, 0.5, 0.75) for cy in (0.3, 0.7)]


def _composite(product_rgba: np.ndarray, background: np.ndarray, cx: float, cy: float):
    """The product pasted with its centre at (cx, cy) (relative), 0.38 of the frame; returns photo and mask."""
    h, w = product_rgba.shape[:2]
    f = 0.38 * SIDE / max(h, w)
    small = cv2.resize(product_rgba, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    x0, y0 = int(cx * SIDE - sw / 2), int(cy * SIDE - sh / 2)
    alpha = small[..., 3:4].astype(np.float32) / 255
    canvas = background.astype(np.float32)
    canvas[y0:y0 + sh, x0:x0 + sw] = canvas[y0:y0 + sh, x0:x0 + sw] * (1 - alpha) + small[..., :3] * alpha
    mask = np.zeros((SIDE, SIDE), bool)
    mask[y0:y0 + sh, x0:x0 + sw] = alpha[..., 0] > 0.5
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)), mask


def test_the_saliency_centre_of_mass_moves_with_the_product(tmp_path):
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.extractor import FeatureExtractor

    demo = generate_demo(tmp_path / "demo", n_products=4, seed=5, save_masks=True)
    extractor = FeatureExtractor(load_model(str(demo_checkpoint())), "srmac", use_amp=False)
    grid = unit_grid(SIDE)  # procedural surfaces: no packaged photo needed
    placed, found, ratios = [], [], []
    for k, path in enumerate(sorted((demo.root / "catalog").glob("*.jpg"))[:2]):
        mask = np.asarray(Image.open(demo.masks_dir / f"{path.stem}.png"))
        product = cutout(np.asarray(load_image(path)), mask)
        background = procedural_background(SIDE, *grid, np.random.default_rng(k))
        for cx, cy in POSITIONS:
            photo, inside = _composite(product, background, cx, cy)
            score = score_map(extractor.analyze(photo).saliency, inside)
            placed.append((cx, cy))
            found.append((score.centre_x, score.centre_y))
            ratios.append(score.ratio)
    placed, found = np.asarray(placed), np.asarray(found)
    for axis in (0, 1):
        # 1: the map's centre of mass moves as far as the product; 0: it stays put (a centre prior).
        slope = np.polyfit(placed[:, axis], found[:, axis], 1)[0]
        assert slope > 0.4, (axis, slope)
    # And most of the map's mass lies on the product (a flat map scores 1).
    assert np.mean(ratios) > 2.5, ratios
