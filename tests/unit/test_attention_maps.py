"""Map scoring against boxes: synthetic maps with known answers, the box file, the bench end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from beauty_app.errors import UserError
from beauty_app.evaluation import attention_maps as am

SIZE = (200, 100)  # (width, height)
BOX = (0.25, 0.2, 0.55, 0.7)
DATA = Path(__file__).resolve().parents[1] / "data"


def test_a_map_that_is_one_inside_the_box_scores_all_its_mass_and_the_pointing_game():
    inside = am.box_mask([BOX], SIZE)
    score = am.score_map(inside.astype(np.float32), inside)
    area = (0.55 - 0.25) * (0.7 - 0.2)
    assert score.mass_inside == pytest.approx(1.0)
    assert score.area_share == pytest.approx(area, abs=1e-3)
    assert score.ratio == pytest.approx(1 / area, rel=1e-2)
    assert score.pointing is True
    assert score.peak == 1.0
    assert (score.centre_x, score.centre_y) == (pytest.approx(0.40, abs=0.01), pytest.approx(0.45, abs=0.01))


def test_a_map_outside_the_box_scores_nothing_and_misses():
    inside = am.box_mask([BOX], SIZE)
    score = am.score_map((~inside).astype(np.float32), inside)
    assert score.mass_inside == pytest.approx(0.0)
    assert score.ratio == pytest.approx(0.0)
    assert score.pointing is False


def test_a_flat_map_scores_the_area_share_and_ratio_one():
    inside = am.box_mask([BOX, (0.7, 0.1, 0.9, 0.3)], SIZE)
    score = am.score_map(np.full((7, 7), 0.3, np.float32), inside)
    assert score.mass_inside == pytest.approx(inside.mean())
    assert score.ratio == pytest.approx(1.0)
    assert (score.centre_x, score.centre_y) == (pytest.approx(0.5), pytest.approx(0.5))


def _truncated_gaussian_share(half_width: float, sigma: float) -> float:
    """Mass of a centred Gaussian within ±half_width of the centre, over its mass within the image (±0.5)."""
    return math.erf(half_width / (sigma * math.sqrt(2))) / math.erf(0.5 / (sigma * math.sqrt(2)))


def test_the_centre_gaussian_gets_the_gaussians_number():
    box = (0.3, 0.4, 0.7, 0.6)  # centred: half widths 0.2 (x) and 0.1 (y)
    size = (400, 300)
    score = am.score_map(am.centre_gaussian(size), am.box_mask([box], size))
    expected = _truncated_gaussian_share(0.2, am.CENTRE_SIGMA) * _truncated_gaussian_share(0.1, am.CENTRE_SIGMA)
    assert score.mass_inside == pytest.approx(expected, abs=2e-3)
    assert score.pointing is True
    assert (score.centre_x, score.centre_y) == (pytest.approx(0.5, abs=1e-3), pytest.approx(0.5, abs=1e-3))


def test_a_coarse_map_is_upsampled_to_the_photo():
    coarse = np.zeros((4, 4), np.float32)
    coarse[:, :2] = 1.0  # the left half
    left_half = am.box_mask([(0.0, 0.0, 0.5, 1.0)], SIZE)
    score = am.score_map(coarse, left_half)
    assert score.mass_inside > 0.9  # bilinear upsampling bleeds at most half a coarse cell
    assert score.pointing is True and score.centre_x < 0.3


def test_an_empty_map_has_no_mass_to_share():
    inside = am.box_mask([BOX], SIZE)
    score = am.score_map(np.zeros((10, 10), np.float32), inside)
    assert math.isnan(score.mass_inside) and math.isnan(score.ratio) and score.pointing is False


def test_summary_means_and_standard_errors():
    full = am.MapScore(1.0, 0.5, 2.0, True, 0.9, 0.5, 0.5)
    half = am.MapScore(0.5, 0.5, 1.0, False, 0.1, 0.3, 0.7)
    s = am.summarise_scores([full, half])
    assert s["mass_inside"]["mean"] == pytest.approx(0.75)
    assert s["mass_inside"]["se"] == pytest.approx(0.25)  # sd (ddof 1) 0.354 / sqrt(2)
    assert s["pointing"]["mean"] == pytest.approx(0.5)
    assert s["ratio_of_means"] == pytest.approx(1.5)
    assert s["centre_of_mass"]["x"]["min"] == pytest.approx(0.3)
    assert s["centre_of_mass"]["y"]["max"] == pytest.approx(0.7)


def _photo_with(product_centre, saliency_centre):
    score = am.MapScore(0.5, 0.2, 2.5, True, 1.0, *saliency_centre)
    return am.PhotoMaps("p.jpg", (10, 10), 1, 0, saliency=score, product_centre=product_centre)


def test_a_map_that_moves_with_the_product_has_slope_one_and_a_fixed_one_slope_zero():
    centres = [(0.2, 0.3), (0.5, 0.5), (0.8, 0.6), (0.35, 0.7)]
    moving = am.following([_photo_with(c, c) for c in centres])
    assert moving["photos"] == 4
    assert moving["x"]["slope"] == pytest.approx(1.0) and moving["y"]["correlation"] == pytest.approx(1.0)
    fixed = am.following([_photo_with(c, (0.5, 0.5)) for c in centres])
    assert fixed["x"]["slope"] == pytest.approx(0.0, abs=1e-9) and fixed["y"]["slope"] == pytest.approx(0.0, abs=1e-9)


def test_read_boxes_and_its_errors(tmp_path):
    good = tmp_path / "boxes.csv"
    good.write_text("photo,x0,y0,x1,y1\na.jpg,0.1,0.2,0.3,0.4\na.jpg,0.5,0.5,1,1\nb.jpg,0,0,1,1\n")
    assert am.read_boxes(good) == {"a.jpg": [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 1.0, 1.0)], "b.jpg": [(0, 0, 1, 1)]}
    for text in ("photo,x0,y0\na.jpg,0,0\n", "photo,x0,y0,x1,y1\na.jpg,0.5,0,0.2,1\n",
                 "photo,x0,y0,x1,y1\na.jpg,0,0,1,1.5\n", "photo,x0,y0,x1,y1\na.jpg,zero,0,1,1\n"):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(UserError):
            am.read_boxes(bad)
    with pytest.raises(UserError):
        am.read_boxes(tmp_path / "missing.csv")


def test_the_shipped_real_photo_boxes_are_valid_and_cover_the_fifty_photos():
    boxes = am.read_boxes(DATA / "real_photo_boxes.csv")
    assert sorted(boxes) == [f"v{n:06d}.jpg" for n in range(151, 201)]
    with open(DATA / "real_photo_boxes.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["photo", "x0", "y0", "x1", "y1"]


class _FakeDetector:
    """Finds one text box at a fixed relative place (stands in for PP-OCR in a model-free test)."""

    model = "fake"

    def __init__(self, box):
        self.box = box

    def detect(self, rgb):
        from beauty_app.training.text_detection import TextBox, TextDetection

        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = self.box
        corners = np.array([[x0 * w, y0 * h], [x1 * w, y0 * h], [x1 * w, y1 * h], [x0 * w, y1 * h]], np.float32)
        return TextDetection(np.zeros((h, w), np.float32), [TextBox(corners, 0.9)])


def test_the_bench_scores_the_apps_maps_and_writes_its_files(tmp_path, tiny_checkpoint):
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.extractor import FeatureExtractor

    photos = []
    for name, size in (("wide.jpg", (160, 96)), ("tall.png", (80, 120))):
        path = tmp_path / name
        Image.new("RGB", size, (200, 120, 90)).save(path)
        photos.append(path)
    extractor = FeatureExtractor(load_model(str(tiny_checkpoint)), "srmac", use_amp=False)
    boxes = {"wide.jpg": [(0.1, 0.1, 0.5, 0.9)]}  # the tall photo has no product boxes
    result = am.run_maps_bench(extractor, photos, boxes, tmp_path / "out", detector=_FakeDetector((0.2, 0.2, 0.6, 0.4)))

    wide, tall = result.photos
    assert wide.size == (160, 96) and tall.size == (80, 120)
    assert wide.saliency is not None and wide.saliency_centre is not None and tall.saliency is None
    assert wide.text is not None and wide.text_boxes == 1
    # the same maps the app shows for this image
    analysis = extractor.analyze(Image.open(photos[0]).convert("RGB"))
    inside = am.box_mask(boxes["wide.jpg"], wide.size)
    assert wide.saliency.mass_inside == pytest.approx(am.score_map(analysis.saliency, inside).mass_inside, abs=1e-4)
    assert wide.saliency_peak == pytest.approx(float(analysis.saliency.max()), abs=1e-4)
    assert wide.product_centre == (pytest.approx(0.3, abs=0.01), pytest.approx(0.5, abs=0.01))

    summary = json.loads(result.files["summary"].read_text())
    assert summary["photos"] == 2 and summary["saliency"]["photos"] == 1 and summary["text"]["photos"] == 2
    rows = list(csv.DictReader(result.files["per_photo"].open()))
    assert [r["photo"] for r in rows] == ["wide.jpg", "tall.png"]
    sheet = Image.open(result.files["sheet"])
    assert sheet.size[0] == 2 * 4 * 170 and sheet.size[1] > 170
    assert "saliency vs products" in am.format_summary(result.summary)


def test_the_command_line_reports_a_missing_photo_folder_in_one_sentence(tmp_path, capsys):
    from beauty_app.cli.main import main

    code = main(["bench", "maps", "--photos", str(tmp_path / "none"), "--model", "x.pt", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("beauty-app: error: ") and "\n" not in err


def test_bench_maps_command_scores_a_folder_and_writes_the_sheet(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    from beauty_app.cli.main import main
    from beauty_app.training import text_detection

    monkeypatch.setattr(text_detection, "available", lambda: False)  # keep the test fast: no OCR
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (120, 90), (200, 120, 90)).save(photos / "a.jpg")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("photo,x0,y0,x1,y1\na.jpg,0.1,0.1,0.5,0.9\n")
    out = tmp_path / "out"
    code = main(["bench", "maps", "--photos", str(photos), "--boxes", str(boxes), "--model", str(tiny_checkpoint),
                 "--out", str(out), "--device", "cpu", "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "saliency vs products" in printed and str(out / "maps_sheet.png") in printed
    summary = json.loads((out / "maps.json").read_text())
    assert summary["photos"] == 1 and summary["saliency"]["photos"] == 1 and summary["model"] == str(tiny_checkpoint)


def test_bench_maps_draws_the_named_photos_into_a_figure(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    from beauty_app.cli.main import main
    from beauty_app.training import text_detection

    monkeypatch.setattr(text_detection, "available", lambda: False)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (120, 90), (200, 120, 90)).save(photos / name)
    out = tmp_path / "out"
    args = ["bench", "maps", "--photos", str(photos), "--model", str(tiny_checkpoint), "--out", str(out),
            "--device", "cpu", "-q"]
    assert main([*args, "--figure", "c.jpg,a.jpg"]) == 0
    assert str(out / "maps_figure.png") in capsys.readouterr().out
    figure = Image.open(out / "maps_figure.png")
    # Two rows (photo, saliency, text) and the colour scale under them.
    assert figure.size[0] == 3 * am._FIGURE_PANEL and figure.size[1] > 2 * am._FIGURE_PANEL
    # The photo panel of the first row is the photo itself (its colour), not a heatmap.
    middle = figure.getpixel((am._FIGURE_PANEL // 2, am._FIGURE_PANEL // 2))
    assert max(abs(a - b) for a, b in zip(middle, (200, 120, 90))) < 12

    assert main([*args, "--figure", "missing.jpg"]) == 2
    assert "missing.jpg" in capsys.readouterr().err
