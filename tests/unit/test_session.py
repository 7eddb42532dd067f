"""retrieval/session.py: every extractor for an existing index makes vectors the way the index holds them."""

from __future__ import annotations

import numpy as np
import pytest

from beauty_app.catalog_io import read_catalog
from beauty_app.errors import IndexStoreError
from beauty_app.models.checkpoint import load_model
from beauty_app.retrieval.build import add_to_index
from beauty_app.retrieval.index import CatalogIndex
from beauty_app.retrieval.search import SearchSession
from beauty_app.retrieval.session import add_catalog, build_catalog, extractor_for_index, new_extractor

SCALES = (1.0, 0.707)
INPUT_SIZE = 128  # the tiny test model's own is 96


@pytest.fixture()
def shop(tmp_path, demo_data):
    """A folder catalog of 4 images, the 3 images added later, and the 7 together."""
    files = sorted(demo_data.catalog_csv.parent.glob("catalog/*.jpg"))[:7]
    folder = tmp_path / "catalog"
    folder.mkdir()
    for path in files[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder, files


def _multi_scale(checkpoint):
    return new_extractor(str(checkpoint), "srmac", scales=SCALES, input_size=INPUT_SIZE, batch_size=4, use_amp=False)


def _stored(index_dir, ids) -> np.ndarray:
    with CatalogIndex.open(index_dir) as index:
        return index.raw_vectors(ids)


def test_added_rows_equal_a_fresh_build_with_the_index_settings(tmp_path, tiny_checkpoint, shop):
    folder, files = shop
    build_catalog(folder, tmp_path / "idx", _multi_scale(tiny_checkpoint))
    for path in files[4:]:
        (folder / path.name).write_bytes(path.read_bytes())

    summary = add_catalog(tmp_path / "idx", folder, use_amp=False, batch_size=4)
    assert summary.indexed == 3 and summary.already_done == 4

    build_catalog(folder, tmp_path / "fresh", _multi_scale(tiny_checkpoint))
    added = [path.stem for path in files[4:]]
    np.testing.assert_allclose(_stored(tmp_path / "idx", added), _stored(tmp_path / "fresh", added), atol=1e-5)
    # The bug this guards against: rows at scale 1 and the model's input size are far from those.
    plain = new_extractor(str(tiny_checkpoint), "srmac", use_amp=False).extract_paths(files[4:])[0]
    assert not np.allclose(plain, _stored(tmp_path / "fresh", added), atol=1e-2)


def test_extractor_for_index_reads_the_index_settings(tmp_path, tiny_checkpoint, shop):
    folder, _ = shop
    build_catalog(folder, tmp_path / "idx", _multi_scale(tiny_checkpoint))
    extractor = extractor_for_index(tmp_path / "idx")
    assert (extractor.pooling, extractor.scales, extractor.input_size) == ("srmac", SCALES, INPUT_SIZE)
    with SearchSession(tmp_path / "idx") as session:
        assert (session.extractor.scales, session.extractor.input_size) == (SCALES, INPUT_SIZE)


@pytest.mark.parametrize("mismatch, named", [
    ({"scales": (1.0,)}, "scales [1.0, 0.707], not scales [1.0]"),
    ({"input_size": 96}, "input size 128, not input size 96"),
    ({"pooling": "rmac"}, "pooling srmac, not pooling rmac"),
])
def test_add_with_an_extractor_made_another_way_is_refused(tmp_path, tiny_checkpoint, shop, mismatch, named):
    folder, files = shop
    build_catalog(folder, tmp_path / "idx", _multi_scale(tiny_checkpoint))
    (folder / files[5].name).write_bytes(files[5].read_bytes())
    settings = {"scales": SCALES, "input_size": INPUT_SIZE, "pooling": "srmac", **mismatch}
    pooling = settings.pop("pooling")
    extractor = new_extractor(load_model(str(tiny_checkpoint)), pooling, use_amp=False, **settings)
    with pytest.raises(IndexStoreError) as refused:
        add_to_index(read_catalog(folder), extractor, tmp_path / "idx")
    assert named in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    with CatalogIndex.open(tmp_path / "idx") as index:
        assert index.count() == 4  # nothing was added
