"""Catalog build -> search -> eval with the tiny model on the synthetic catalog."""

from __future__ import annotations

import numpy as np
import pytest

from beauty_app.catalog_io import read_catalog
from beauty_app.errors import IndexStoreError, UserError
from beauty_app.imaging import load_image
from beauty_app.jobs import Cancelled, JobControl
from beauty_app.models.checkpoint import load_model
from beauty_app.retrieval.build import add_to_index, build_index
from beauty_app.retrieval.extractor import FeatureExtractor
from beauty_app.retrieval.index import CatalogIndex
from beauty_app.retrieval.search import SearchSession
from tests.conftest import make_tiny_checkpoint


def _extractor(checkpoint, pooling="srmac", batch_size=4):
    return FeatureExtractor(load_model(str(checkpoint)), pooling, batch_size=batch_size)


def test_catalog_image_finds_itself_first(built_index, demo_data):
    catalog = read_catalog(demo_data.catalog_csv)
    with SearchSession(built_index) as session:
        for entry in catalog.entries[:5]:
            result = session.search_image(entry.path, k=3)
            assert result.hits[0].id == entry.id
            assert result.hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_query_analysis_has_maps_over_the_image_and_regions(built_index, demo_data):
    query = sorted(demo_data.queries_dir.iterdir())[0]
    image = load_image(query)
    with SearchSession(built_index) as session:
        result = session.search_image(image, k=7)
    analysis = result.analysis
    assert analysis.saliency.shape == (image.height, image.width)
    assert analysis.text.shape == (image.height, image.width)
    assert 0 <= analysis.saliency.min() and analysis.saliency.max() <= 1
    assert len(analysis.top_classes) == 3 and abs(sum(p for _, p in analysis.top_classes)) <= 1.0001
    assert analysis.regions and any(kept for *_, kept in analysis.regions)
    assert len(result.hits) == 7


def test_interrupted_build_resumes_to_the_same_index(tmp_path, tiny_checkpoint, demo_data):
    catalog = read_catalog(demo_data.catalog_csv)
    reference = tmp_path / "reference"
    build_index(catalog, _extractor(tiny_checkpoint), reference)

    seen = []

    def stop_after_two_batches(event):
        seen.append(event.done)
        if event.stage == "index" and event.done >= 8:
            job.cancel()

    job = JobControl(stop_after_two_batches, min_interval_s=0)
    partial = tmp_path / "partial"
    with pytest.raises(Cancelled):
        build_index(catalog, _extractor(tiny_checkpoint), partial, job=job)
    with CatalogIndex.open(partial) as index:
        done_before = index.count()
    assert 0 < done_before < len(catalog.entries)
    with pytest.raises(IndexStoreError, match="--resume"):
        build_index(catalog, _extractor(tiny_checkpoint), partial)
    summary = build_index(catalog, _extractor(tiny_checkpoint), partial, resume=True)
    assert summary.already_done == done_before
    assert summary.indexed == len(catalog.entries) - done_before
    with CatalogIndex.open(reference) as a, CatalogIndex.open(partial) as b:
        ids = [item["id"] for item in a.iter_items()]
        assert sorted(ids) == sorted(item["id"] for item in b.iter_items())
        np.testing.assert_allclose(a.raw_vectors(ids), b.raw_vectors(ids), atol=1e-5)


def test_bad_files_are_skipped_with_reasons(tmp_path, tiny_checkpoint, demo_data):
    folder = tmp_path / "catalog"
    folder.mkdir()
    good = sorted(demo_data.catalog_csv.parent.glob("catalog/*.jpg"))[:3]
    for path in good:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    (folder / "cut.jpg").write_bytes(good[0].read_bytes()[:300])
    summary = build_index(read_catalog(folder), _extractor(tiny_checkpoint), tmp_path / "idx")
    assert summary.indexed == 3
    reasons = dict(summary.skipped)
    assert set(reasons) == {"empty", "notes", "cut"}
    assert all(reason for reason in reasons.values())
    with CatalogIndex.open(tmp_path / "idx") as index:
        assert dict(index.skipped()) == reasons


def test_add_new_images_to_an_existing_index(tmp_path, tiny_checkpoint, demo_data):
    all_files = sorted(demo_data.catalog_csv.parent.glob("catalog/*.jpg"))
    folder = tmp_path / "catalog"
    folder.mkdir()
    for path in all_files[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    build_index(read_catalog(folder), _extractor(tiny_checkpoint), tmp_path / "idx")
    for path in all_files[4:7]:
        (folder / path.name).write_bytes(path.read_bytes())
    summary = add_to_index(read_catalog(folder), _extractor(tiny_checkpoint), tmp_path / "idx")
    assert summary.indexed == 3 and summary.already_done == 4
    with SearchSession(tmp_path / "idx") as session:
        assert session.index.count() == 7
        assert session.search_image(all_files[5], k=1).hits[0].id == all_files[5].stem


def test_search_with_another_model_is_refused(tmp_path, built_index):
    other = make_tiny_checkpoint(tmp_path / "other.pt", seed=1)
    with pytest.raises(UserError, match="built with model"):
        SearchSession(built_index, str(other))


def test_srmac_needs_a_saliency_branch(tmp_path):
    no_saliency = make_tiny_checkpoint(tmp_path / "text_only.pt", attention="text")
    with pytest.raises(UserError, match="saliency branch"):
        _extractor(no_saliency, "srmac")
    assert _extractor(no_saliency, "rmac").dim > 0


def test_multiscale_vectors_are_unit_norm(tiny_checkpoint, demo_data):
    bundle = load_model(str(tiny_checkpoint))
    extractor = FeatureExtractor(bundle, "srmac", scales=(1.0, 0.75, 1.25))
    paths = sorted(demo_data.queries_dir.iterdir())[:3]
    vectors, failures = extractor.extract_paths(paths)
    assert not failures and vectors.shape == (3, extractor.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("scales", [(1.0,), (1.0, 0.75, 1.25), (0.75, 1.25)])
def test_query_analysis_runs_one_forward_pass_per_scale(tiny_checkpoint, demo_data, scales):
    extractor = FeatureExtractor(load_model(str(tiny_checkpoint)), "srmac", scales=scales, use_amp=False)
    image = load_image(sorted(demo_data.queries_dir.iterdir())[0])
    expected = extractor.pooled(extractor.to_tensor(image).unsqueeze(0), ("srmac",))["srmac"][0]
    sides = []
    forward = extractor.bundle.model.forward
    extractor.bundle.model.forward = lambda batch, *a, **k: sides.append(batch.shape[-1]) or forward(batch, *a, **k)
    analysis = extractor.analyze(image)
    np.testing.assert_allclose(analysis.vector, expected, atol=1e-5)
    size = extractor.input_size
    # the scale-1 pass serves the vector and the maps; a scale list without 1 needs one more for the maps
    assert sorted(sides) == sorted([max(32, round(size * s)) for s in scales] + ([] if 1.0 in scales else [size]))
    assert analysis.saliency.shape == (image.height, image.width)


def test_pooling_comparison_uses_vectors_stored_at_build_time(built_index, demo_data):
    catalog = read_catalog(demo_data.catalog_csv)
    with SearchSession(built_index) as session:
        assert session.available_poolings() == ["srmac", "gap", "mac", "rmac"]
        for pooling in ("gap", "mac", "rmac"):
            hits = session.search_image(catalog.entries[2].path, k=3, pooling=pooling).hits
            assert hits[0].id == catalog.entries[2].id and hits[0].score == pytest.approx(1.0, abs=1e-3)
        query = sorted(demo_data.queries_dir.iterdir())[1]
        rankings = {p: [h.id for h in session.search_image(query, k=7, pooling=p).hits] for p in ("mac", "srmac")}
        assert rankings["mac"] != rankings["srmac"]
