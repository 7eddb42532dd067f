"""Decoding for indexing in worker processes: same pixels, thumbnails and failures as on threads, in order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beauty_app.catalog_io import read_catalog
from beauty_app.models.checkpoint import load_model
from beauty_app.retrieval.build import build_index
from beauty_app.retrieval.extractor import FeatureExtractor
from beauty_app.retrieval.index import CatalogIndex
from beauty_app.retrieval.pipeline import DecodeStats, decode_stream, join_pixels, split_chunk


def _requests(demo_data, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = [str(entry.path) for entry in read_catalog(demo_data.catalog_csv).entries[:7]]
    requests = [(p, "") for p in paths[:3]] + [(str(broken), ""), ("", "known bad: refused")] + \
        [(p, "") for p in paths[3:]]
    return [requests[i:i + 3] for i in range(0, len(requests), 3)]


def test_processes_and_threads_decode_the_same(demo_data, tmp_path):
    chunks = _requests(demo_data, tmp_path)
    stats = DecodeStats()
    by_process = list(decode_stream(chunks, 64, workers=2, processes=True, stats=stats))
    by_thread = list(decode_stream(chunks, 64, workers=2, processes=False))
    assert stats.processes == 2 and stats.chunks == len(chunks)
    assert len(by_process) == len(by_thread) == len(chunks)
    for got, expected, chunk in zip(by_process, by_thread, chunks):
        assert got.errors == expected.errors and len(got.errors) == len(chunk)
        assert got.pixels.dtype == torch.uint8 and got.pixels.shape[1:] == (64, 64, 3)
        assert torch.equal(got.pixels, expected.pixels)
        assert got.thumbnails == expected.thumbnails
    errors = [e for chunk in by_process for e in chunk.errors]
    assert errors[3] and errors[4] == "known bad: refused" and sum(e is not None for e in errors) == 2


def test_a_build_decoded_in_processes_equals_one_decoded_on_threads(demo_data, tiny_checkpoint, tmp_path):
    catalog = read_catalog(demo_data.catalog_csv)
    bundle = load_model(str(tiny_checkpoint))
    summaries = {}
    for name, processes in (("threads", False), ("processes", True)):
        extractor = FeatureExtractor(bundle, "srmac", batch_size=5, use_amp=False, decode_processes=processes)
        summaries[name] = build_index(catalog, extractor, tmp_path / name)
    assert summaries["processes"].timings["decode_processes"] == 2
    assert summaries["threads"].timings["decode_processes"] == 0
    with CatalogIndex.open(tmp_path / "threads") as a, CatalogIndex.open(tmp_path / "processes") as b:
        ids = sorted(item["id"] for item in a.iter_items())
        assert sorted(item["id"] for item in b.iter_items()) == ids
        np.testing.assert_array_equal(a.raw_vectors(ids), b.raw_vectors(ids))


def test_a_chunk_is_decoded_in_pieces_one_per_worker_and_joined_in_order(demo_data, tmp_path):
    requests = [request for chunk in _requests(demo_data, tmp_path) for request in chunk]  # 9, 2 of them bad
    assert [len(piece) for piece in split_chunk(requests, 2)] == [4, 5]
    assert [len(piece) for piece in split_chunk(requests[:7], 2)] == [7]  # pieces of fewer than MIN_PIECE: one
    assert [len(piece) for piece in split_chunk(requests * 4, 3)] == [12, 12, 12]
    assert [r for piece in split_chunk(requests * 4, 3) for r in piece] == requests * 4
    chunks = [requests, requests[::-1]]
    by_process = list(decode_stream(chunks, 48, workers=2, processes=True))
    by_thread = list(decode_stream(chunks, 48, workers=2, processes=False))
    for got, expected, chunk in zip(by_process, by_thread, chunks, strict=True):
        assert got.errors == expected.errors and len(got.errors) == len(chunk) == 9
        assert torch.equal(got.pixels, expected.pixels) and got.pixels.shape[0] == 7
        assert got.thumbnails == expected.thumbnails


def test_joined_pixels_are_the_pieces_in_order():
    pieces = [torch.full((n, 2, 2, 3), n, dtype=torch.uint8) for n in (3, 1, 2)]
    joined = join_pixels(pieces)
    assert joined.shape == (6, 2, 2, 3) and joined[:, 0, 0, 0].tolist() == [3, 3, 3, 1, 2, 2]
    assert join_pixels(pieces[:1]) is pieces[0]  # one piece: no copy


def test_decoding_workers_are_forked_from_a_warm_server():
    import multiprocessing
    import subprocess
    import sys

    from beauty_app.retrieval.pipeline import _worker_context

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform (spawn)")
    _worker_context()
    from multiprocessing import forkserver

    assert "beauty_app.retrieval.decode_preload" in forkserver._forkserver._preload_modules
    # What that import leaves in the server: PIL's format plugins loaded, nothing left for a worker's first image.
    probe = ("import sys; import beauty_app.retrieval.decode_preload; "
             "print(all(m in sys.modules for m in ('PIL.JpegImagePlugin', 'PIL.PngImagePlugin', 'pi_heif')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
