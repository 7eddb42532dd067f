"""Decoding for indexing in worker processes: same pixels, thumbnails and failures as on threads, in order."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from beauty_app.catalog_io import read_catalog
from beauty_app.models.checkpoint import load_model
from beauty_app.retrieval.build import build_index
from beauty_app.retrieval.extractor import FeatureExtractor
from beauty_app.retrieval.index import CatalogIndex
from beauty_app.retrieval.pipeline import (
    DecodeStats,
    _ChunkRing,
    _PieceSampler,
    decode_stream,
    gather_rows,
    split_chunk,
)


def _requests(demo_data, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = [str(entry.path) for entry in read_catalog(demo_data.catalog_csv).entries[:7]]
    requests = [(p, "") for p in paths[:3]] + [(str(broken), ""), ("", "known bad: refused")] + \
        [(p, "") for p in paths[3:]]
    return [requests[i:i + 3] for i in range(0, len(requests), 3)]


def _kept(stream):
    """The stream's chunks with pixels of their own: a process stream's pixels live in a reused ring."""
    return [replace(chunk, pixels=chunk.pixels.clone()) for chunk in stream]


def test_processes_and_threads_decode_the_same(demo_data, tmp_path):
    chunks = _requests(demo_data, tmp_path)
    stats = DecodeStats()
    by_process = _kept(decode_stream(chunks, 64, workers=2, processes=True, stats=stats))
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
    by_process = _kept(decode_stream(chunks, 48, workers=2, processes=True))
    by_thread = list(decode_stream(chunks, 48, workers=2, processes=False))
    for got, expected, chunk in zip(by_process, by_thread, chunks, strict=True):
        assert got.errors == expected.errors and len(got.errors) == len(chunk) == 9
        assert torch.equal(got.pixels, expected.pixels) and got.pixels.shape[0] == 7
        assert got.thumbnails == expected.thumbnails


def test_gathered_rows_are_the_spans_in_order_and_a_view_when_contiguous():
    rows = torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 2, 2, 3).contiguous()
    contiguous = gather_rows(rows, [(0, 3), (3, 2)])
    assert contiguous.data_ptr() == rows.data_ptr() and contiguous[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]
    # Pieces from rows 0, 4 and 6, short of 1, 1 and 0 rows by unreadable files: moved up in place.
    gathered = gather_rows(rows, [(0, 3), (4, 1), (6, 2)])
    assert gathered.shape == (6, 2, 2, 3) and gathered[:, 0, 0, 0].tolist() == [0, 1, 2, 4, 6, 7]
    assert torch.equal(gathered[:, 1, 1], gathered[:, 0, 0])
    assert gather_rows(rows, [(0, 0), (4, 0)]).shape == (0, 2, 2, 3)


def test_the_ring_is_never_handed_out_past_the_chunk_the_consumer_holds():
    ring = _ChunkRing(slots=2, rows=4, input_size=2)
    pieces = [[(("a", ""),), (("b", ""),)], [(("c", ""),)], [(("d", ""),)]]
    progress = [0]
    tasks = iter(_PieceSampler(pieces, ring, progress))
    assert [next(tasks), next(tasks), next(tasks)] == [(0, 0, (("a", ""),)), (0, 1, (("b", ""),)), (1, 0, (("c", ""),))]
    with pytest.raises(RuntimeError, match="overwrite chunk 0"):
        next(tasks)  # chunk 2 goes to slot 0, which chunk 0's consumer still reads
    progress[0] = 1
    assert list(_PieceSampler(pieces, ring, progress))[-1] == (0, 0, (("d", ""),))
    assert _ChunkRing(slots=1, rows=0, input_size=8).buffer.shape == (1, 0, 8, 8, 3)  # chunks without files


def _many_requests(demo_data, tmp_path, size=9):
    """Chunks of `size` files over the demo images, more chunks than any ring has slots, a bad file
    and a refused one in the middle, and a last chunk that is short."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = [str(entry.path) for entry in read_catalog(demo_data.catalog_csv).entries]
    requests = [(p, "") for p in paths * 3][:76]
    requests[40:40] = [(str(broken), ""), ("", "known bad: refused")]
    return [requests[i:i + size] for i in range(0, len(requests), size)]


# Chunks of 9: two pieces with 2 workers; chunks of 5: one piece each, so the loader's 4 pieces in
# flight are 4 chunks ahead of the consumer's, the most the ring must hold.
@pytest.mark.parametrize(("workers", "size"), [(1, 9), (2, 9), (2, 5)])
def test_ring_pixels_equal_the_threads_bit_for_bit_while_the_consumer_holds_them(demo_data, tmp_path, workers,
                                                                                 size):
    chunks = _many_requests(demo_data, tmp_path, size)
    assert len(chunks) > 2 * workers + 1 and len(chunks[-1]) < len(chunks[0])
    expected = list(decode_stream(chunks, 40, workers=workers, processes=False))
    stats = DecodeStats()
    received = 0
    for got, want, chunk in zip(decode_stream(chunks, 40, workers=workers, processes=True, stats=stats),
                                expected, chunks, strict=True):
        assert got.errors == want.errors and len(got.errors) == len(chunk)
        assert got.thumbnails == want.thumbnails
        assert got.pixels.shape == want.pixels.shape and torch.equal(got.pixels, want.pixels)
        time.sleep(0.05)  # the workers fill every slot they may: none of them is this chunk's
        assert torch.equal(got.pixels, want.pixels)
        received += 1
    assert received == len(chunks) and stats.processes == workers
    errors = [error for chunk in expected for error in chunk.errors]
    assert errors[40] and errors[41] == "known bad: refused" and sum(e is not None for e in errors) == 2


def test_a_consumer_that_stops_after_one_chunk_leaves_no_worker_behind(demo_data, tmp_path):
    chunks = _many_requests(demo_data, tmp_path)
    before = set(multiprocessing.active_children())
    stream = decode_stream(chunks, 40, workers=2, processes=True)
    for chunk in stream:
        workers = [p for p in multiprocessing.active_children() if p not in before]
        assert len(workers) == 2 and chunk.pixels.shape[0] == 9
        break
    stream.close()  # as the extractor does when a build is cancelled
    assert not any(worker.is_alive() for worker in workers)
    assert not [p for p in multiprocessing.active_children() if p not in before]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="page-locked memory needs CUDA")
def test_pinned_pixels_equal_the_threads(demo_data, tmp_path):
    chunks = _many_requests(demo_data, tmp_path)
    expected = list(decode_stream(chunks, 40, workers=2, processes=False))
    for got, want in zip(decode_stream(chunks, 40, workers=2, processes=True, pin_memory=True), expected, strict=True):
        assert got.pixels.is_pinned() and torch.equal(got.pixels, want.pixels)


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
