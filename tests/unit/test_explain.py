"""Why this match: region-pair contributions add up to the score the index returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beauty_app.imaging import load_image
from beauty_app.retrieval import pooling as pooling_ops
from beauty_app.retrieval.explain import OFFSET, explain_match, explain_pair, image_terms


@pytest.mark.parametrize("name", sorted(pooling_ops.POOLINGS))
def test_pooling_terms_sum_to_the_pooled_vector(name):
    torch.manual_seed(0)
    x = torch.rand(2, 16, 7, 9)
    saliency = torch.rand(2, 1, 7, 9) ** 3
    terms = pooling_ops.POOLING_TERMS[name](x, saliency)
    expected = pooling_ops.POOLINGS[name](x, saliency)
    assert terms.shape[0] == 2 and terms.shape[-1] == 16
    if name in pooling_ops.REGIONAL_POOLINGS:
        assert terms.shape[1] == 1 + len(pooling_ops.rmac_regions(7, 9))
    total = terms.sum(dim=1)
    assert torch.allclose(total / total.norm(dim=1, keepdim=True), expected, atol=1e-5)


def test_srmac_terms_of_dropped_regions_are_zero():
    x = torch.rand(1, 8, 7, 7)
    saliency = torch.zeros(1, 1, 7, 7)
    saliency[..., :3, :3] = 1.0  # only the top-left corner is salient
    terms = pooling_ops.srmac_terms(x, saliency)
    kept = [k for *_, k in pooling_ops.srmac_region_weights(saliency, 7, 7)[0]]
    assert not all(kept) and any(kept)
    for region_terms, was_kept in zip(terms[0, 1:], kept):
        assert bool(region_terms.abs().sum() > 0) == was_kept


@pytest.fixture(scope="module")
def exact_index(tmp_path_factory, tiny_checkpoint, demo_data):
    """A flat index built in fp32, so stored vectors equal recomputed ones to float rounding."""
    from beauty_app.catalog_io import read_catalog
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.build import build_index
    from beauty_app.retrieval.extractor import FeatureExtractor

    out = tmp_path_factory.mktemp("explain") / "idx"
    extractor = FeatureExtractor(load_model(str(tiny_checkpoint)), "srmac", batch_size=8, use_amp=False)
    build_index(read_catalog(demo_data.catalog_csv), extractor, out, index_type="flat", whitening=True)
    return out


def test_contributions_sum_to_the_index_score_with_whitening(exact_index, demo_data):
    from beauty_app.retrieval.search import SearchSession

    query = load_image(sorted(demo_data.queries_dir.iterdir())[0])
    with SearchSession(exact_index, use_amp=False) as session:
        assert session.index.whitening() is not None
        result = session.search_image(query, k=4)
        for hit in result.hits:
            explanation = explain_match(session, query, hit)
            assert explanation.score == pytest.approx(hit.score, abs=1e-4)
            assert explanation.stored_score == pytest.approx(hit.score, abs=1e-4)
            pairs = explanation.pairs()
            assert sum(p.value for p in pairs) == pytest.approx(hit.score, abs=1e-4)
            assert sum(p.share for p in pairs) == pytest.approx(1.0, abs=1e-3)
            assert explanation.whitened and abs(explanation.offset_total()) > 0
            assert any("whitens" in note for note in explanation.notes)
            # the catalog image is the decoded file, not the 160 px thumbnail
            assert explanation.catalog_image.size == load_image(hit.path).size


def test_top_pairs_name_regions_inside_both_images(exact_index, demo_data):
    from beauty_app.retrieval.search import SearchSession

    query = load_image(sorted(demo_data.queries_dir.iterdir())[1])
    with SearchSession(exact_index, use_amp=False) as session:
        hit = session.search_image(query, k=1).hits[0]
        explanation = explain_match(session, query, hit)
    top = explanation.top_pairs(5)
    assert len(top) == 5 and [p.value for p in top] == sorted((p.value for p in top), reverse=True)
    for pair in top:
        assert OFFSET not in (pair.query, pair.catalog)
        for terms, index in ((explanation.query, pair.query), (explanation.catalog, pair.catalog)):
            left, top_px, width, height = terms.terms[index].box
            assert 0 <= left and 0 <= top_px and width > 0 and height > 0
            assert left + width <= terms.image_size[0] and top_px + height <= terms.image_size[1]
    offsets = {"query": explanation.contributions[-1, :].sum(), "catalog": explanation.contributions[:, -1].sum()}
    for side, terms in (("query", explanation.query), ("catalog", explanation.catalog)):
        totals = explanation.region_totals(side)
        assert len(totals) == len(terms.terms)
        # each side's region totals plus its own whitening offset's pairs make the whole score
        assert sum(t for _, t in totals) + offsets[side] == pytest.approx(explanation.score, abs=1e-6)
    # Pairs with a dropped SR-MAC region carry nothing.
    for i, term in enumerate(explanation.query.terms):
        if term.weight == 0.0:
            assert np.allclose(explanation.contributions[i], 0.0)


def test_multi_scale_terms_rebuild_the_extractor_vector(tiny_checkpoint, demo_data):
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.extractor import FeatureExtractor
    from beauty_app.retrieval.index.whitening import PCAWhitening

    extractor = FeatureExtractor(load_model(str(tiny_checkpoint)), "srmac", use_amp=False, scales=(1.0, 0.75))
    images = [load_image(p) for p in sorted(demo_data.queries_dir.iterdir())[:2]]
    for image in images:
        terms = image_terms(extractor, image)
        assert len({t.scale for t in terms.terms}) == 2
        assert np.allclose(terms.vector, extractor.analyze(image).vector, atol=1e-5)
    explanation = explain_pair(extractor, *images)
    vectors = [extractor.analyze(image).vector for image in images]
    assert explanation.score == pytest.approx(float(np.dot(*vectors)), abs=1e-5)
    whitening = PCAWhitening(np.full(extractor.dim, 0.01, np.float32),
                             np.random.default_rng(0).normal(size=(extractor.dim, extractor.dim)).astype(np.float32))
    whitened = explain_pair(extractor, *images, whitening=whitening)
    assert whitened.score == pytest.approx(float(np.dot(*whitening.apply(np.stack(vectors)))), abs=1e-4)


def test_whole_photo_pooling_has_a_single_term(tiny_checkpoint, demo_data):
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.extractor import FeatureExtractor

    extractor = FeatureExtractor(load_model(str(tiny_checkpoint)), "mac", use_amp=False)
    images = [load_image(p) for p in sorted(demo_data.queries_dir.iterdir())[:2]]
    explanation = explain_pair(extractor, *images)
    assert explanation.contributions.shape == (2, 2)
    assert explanation.query.terms[0].whole_image
