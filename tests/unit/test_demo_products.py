"""Tests of the synthetic beauty-product generator (catalog and query domains)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from beauty_app.demo import photos
from beauty_app.demo import products as demo
from beauty_app.demo.names import KIND_SYNONYMS, KINDS, describe, make_products
from beauty_app.demo.photos import render_catalog_image, render_query_photo
from beauty_app.demo.products import generate_demo
from beauty_app.errors import UserError

SIZE = 96


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_catalog(ds) -> list[dict[str, str]]:
    with ds.catalog_csv.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _read_truth(ds) -> tuple[list[str], list[list[str]]]:
    with ds.truth_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return generate_demo(root, n_products=20, image_size=SIZE, seed=3, save_masks=True)


def test_kinds_cover_the_paper_categories():
    assert len(KINDS) >= 12
    for kind in ("lipstick", "facial_cleanser", "sunscreen", "eye_shadow", "razor", "face_mask", "hair_dryer",
                 "eye_mask", "moisturizer", "spray"):
        assert kind in KINDS


def test_same_arguments_give_identical_files_with_and_without_workers(tmp_path, caplog):
    kwargs = {"n_products": 8, "image_size": SIZE, "seed": 11, "save_masks": True}
    a = _files(generate_demo(tmp_path / "a", **kwargs).root)
    b = _files(generate_demo(tmp_path / "b", **kwargs).root)
    c = _files(generate_demo(tmp_path / "c", workers=2, **kwargs).root)
    assert len(a) > 10 and a == b == c
    assert "failed to start" not in caplog.text  # the worker pool really ran
    other = _files(generate_demo(tmp_path / "d", **{**kwargs, "seed": 12}).root)
    assert other["catalog/c000000.jpg"] != a["catalog/c000000.jpg"]


def test_catalog_csv_and_truth_are_consistent(small):
    rows = _read_catalog(small)
    assert list(rows[0]) == ["id", "path", "description", "category"]
    assert len(rows) == small.n_catalog
    ids = {r["id"] for r in rows}
    assert len(ids) == len(rows)
    for r in rows:
        assert re.fullmatch(r"c\d{6}", r["id"])
        assert (small.root / r["path"]).is_file()
        assert r["category"] in KINDS and len(r["description"].split()) >= 3
    # 20 products with 1-3 views each, half of them queried once
    assert 20 <= small.n_catalog <= 60 and small.n_queries == 10

    header, truth = _read_truth(small)
    assert header == ["Validation Image ID", "Training Image ID"]
    assert len(truth) == small.n_queries
    category = {r["id"]: r["category"] for r in rows}
    relevant = set()
    for row in truth:
        assert re.fullmatch(r"q\d{6}", row[0])
        assert (small.queries_dir / f"{row[0]}.jpg").is_file()
        assert 1 <= len(row) - 1 <= 3 and set(row[1:]) <= ids
        assert len({category[c] for c in row[1:]}) == 1  # all views show one product
        relevant.update(row[1:])
    assert len(relevant) < len(ids)  # unqueried products remain as distractors
    assert len(list(small.queries_dir.glob("*.jpg"))) == small.n_queries


def test_descriptions_mostly_name_the_kind_with_synonyms(small):
    rows = _read_catalog(small)
    named = [any(s.lower() in r["description"].lower() for s in KIND_SYNONYMS[r["category"]]) for r in rows]
    assert sum(named) >= 0.75 * len(rows)
    rng = np.random.default_rng(0)
    titles = [describe(p, 0, rng) for p in make_products(8 * len(KINDS))]
    for kind in ("facial_cleanser", "hair_dryer", "lipstick"):
        used = {kw for t in titles for kw in KIND_SYNONYMS[kind] if kw in t}
        assert len(used) >= 2, (kind, used)  # synonyms, not only one canonical name


def test_masks_cover_the_product_and_nothing_else(small):
    assert small.masks_dir is not None
    for r in _read_catalog(small):
        mask = np.asarray(Image.open(small.masks_dir / f"{r['id']}.png")) > 0
        img = np.asarray(Image.open(small.root / r["path"]).convert("L"), dtype=np.float32)
        assert 0.03 < mask.mean() < 0.85
        assert img[~mask].mean() > 225  # outside the product: white background (and a faint shadow)


def test_catalog_borders_are_white_and_query_borders_are_not(small):
    def white_border_fraction(path: Path) -> float:
        a = np.asarray(Image.open(path).convert("RGB")).astype(int)
        border = np.concatenate([a[:3].reshape(-1, 3), a[-3:].reshape(-1, 3), a[:, :3].reshape(-1, 3),
                                 a[:, -3:].reshape(-1, 3)])
        return float((border.min(axis=1) > 235).mean())

    cat = [white_border_fraction(p) for p in (small.root / "catalog").glob("*.jpg")]
    qry = [white_border_fraction(p) for p in small.queries_dir.glob("*.jpg")]
    assert min(cat) > 0.9
    assert np.mean(qry) < 0.2 and max(qry) < 0.6


def test_products_of_one_kind_differ_but_keep_their_shape_family():
    products = make_products(4 * len(KINDS), seed=5)
    for kind in KINDS:
        same = [p for p in products if p.kind == kind]
        assert len(same) == 4
        shots = [render_catalog_image(p, 0, SIZE, np.random.default_rng(0)) for p in same]
        for i in range(len(shots)):
            for j in range(i + 1, len(shots)):
                assert same[i] != same[j]
                (a, ma), (b, mb) = shots[i], shots[j]
                union = ma | mb
                diff = np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean(axis=2)
                diff = diff[union].mean()
                assert diff > 8.0, (kind, i, j, diff)
                assert (ma & mb).sum() > 0.3 * union.sum()  # same kind, similar silhouette


def test_query_photo_has_a_visible_product_and_varies(small):
    p = make_products(3)[2]
    img1, mask1 = render_query_photo(p, SIZE, np.random.default_rng(1))
    img2, _ = render_query_photo(p, SIZE, np.random.default_rng(2))
    assert img1.size == (SIZE, SIZE) and img1.mode == "RGB"
    assert mask1.shape == (SIZE, SIZE) and 0.02 < mask1.mean() < 0.9
    assert np.abs(np.asarray(img1, np.float32) - np.asarray(img2, np.float32)).mean() > 10


def test_occluder_hides_at_most_a_quarter_of_the_product():
    mask = np.zeros((128, 128), bool)
    mask[30:100, 40:90] = True
    for k in range(50):
        img = np.zeros((128, 128, 3), np.float32)
        visible = photos._occlude(img, mask, np.random.default_rng(k))
        assert not (visible & ~mask).any()
        assert visible.sum() >= 0.75 * mask.sum()


def test_catalog_views_differ_from_each_other():
    p = make_products(1)[0]
    views = [np.asarray(render_catalog_image(p, v, SIZE, np.random.default_rng(0))[0], np.float32)
             for v in range(3)]
    assert np.abs(views[0] - views[1]).mean() > 3 and np.abs(views[0] - views[2]).mean() > 3


def test_broken_worker_pool_falls_back_to_identical_serial_output(tmp_path, monkeypatch):
    class BrokenPool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise demo.BrokenProcessPool("workers could not start")

        def __exit__(self, *exc):
            return False

    kwargs = {"n_products": 4, "image_size": 64, "seed": 2}
    serial = _files(generate_demo(tmp_path / "a", **kwargs).root)
    monkeypatch.setattr(demo, "ProcessPoolExecutor", BrokenPool)
    assert _files(generate_demo(tmp_path / "b", workers=3, **kwargs).root) == serial


def test_kinds_subset_and_progress(tmp_path):
    calls = []
    ds = generate_demo(tmp_path, n_products=40, kinds=["lipstick", "perfume"], views_per_product=(1, 1),
                       query_fraction=0.25, queries_per_product=2, progress=lambda d, t: calls.append((d, t)))
    assert {r["category"] for r in _read_catalog(ds)} == {"lipstick", "perfume"}
    assert ds.n_catalog == 40 and ds.n_queries == 20 and ds.masks_dir is None
    assert calls[-1] == (60, 60) and [d for d, _ in calls] == list(range(1, 61))


@pytest.mark.parametrize("kwargs", [{"n_products": 0}, {"kinds": ["lipstick", "toaster"]},
                                    {"views_per_product": (2, 1)}, {"query_fraction": 1.5},
                                    {"image_size": 16}])
def test_bad_arguments_raise_user_errors(tmp_path, kwargs):
    with pytest.raises(UserError):
        generate_demo(tmp_path, **kwargs)


def test_unwritable_output_folder_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="Cannot create the demo folder"):
        generate_demo(blocker / "demo", n_products=1)
