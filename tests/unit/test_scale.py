"""Scale: memory-budget index choice, recall in the metadata, streamed finalising, shards, keyset paging."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from beauty_app.catalog_io import read_catalog
from beauty_app.cli import main
from beauty_app.errors import IndexStoreError, UserError
from beauty_app.models.checkpoint import load_model
from beauty_app.retrieval import ann
from beauty_app.retrieval.index import store as index_store, structures
from beauty_app.retrieval.build import build_index
from beauty_app.retrieval.extractor import FeatureExtractor
from beauty_app.retrieval.index import (
    DB_NAME,
    FAISS_NAME,
    CatalogIndex,
    ItemRecord,
    PCAWhitening,
    build_faiss_index,
    make_faiss_index,
)

DIM = 32
REPO = Path(__file__).resolve().parents[2]


def clustered(n: int, dim: int = DIM, seed: int = 0, clusters: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def settings(dim: int = DIM) -> dict:
    return {"model_spec": "m.pt", "model_fingerprint": "fp", "pooling": "srmac", "dim": dim}


def make_index(directory: Path, vectors: np.ndarray, **finalize) -> None:
    records = [ItemRecord(f"c{i:05d}", f"/cat/c{i}.jpg", f"product {i % 97}", "lipstick" if i % 3 else "perfume", v,
                          None, {"mac": v[::-1].copy()}) for i, v in enumerate(vectors)]
    with CatalogIndex.create(directory, settings(vectors.shape[1])) as index:
        for start in range(0, len(records), 500):
            index.add_items(records[start:start + 500])
        index.finalize(**finalize)


def search_ids(directory: Path, queries: np.ndarray, k: int = 7) -> list[list[str]]:
    with CatalogIndex.open(directory) as index:
        return [[hit.id for hit in hits] for hits in index.search(queries, k)]


# ---------------------------------------------------------------------------- choosing by budget
def test_the_budget_chooses_exact_search_then_ivf_then_compressed_codes():
    dim, n_small, n_large = 1280, 20_000, 500_000
    assert ann.plan_index("auto", n_small, dim).kind == "flat"  # small: exact, 100 MB fits 1 GiB
    assert ann.plan_index("auto", n_small, dim, memory_budget=50 << 20).kind == "sq8"  # floats do not fit
    assert ann.plan_index("auto", 100_000, dim).kind == "ivf"  # 0.5 GB of floats fit 1 GiB
    chosen = ann.plan_index("auto", n_large, dim, ann.parse_memory("1GiB"))
    assert chosen.kind == "ivfsq8" and chosen.tune  # 2.5 GB of floats do not; 8-bit codes (0.6 GB) do
    assert chosen.estimated_bytes() < 1 << 30 and chosen.nlist == 707
    pq = ann.plan_index("auto", n_large, dim, memory_budget=40 << 20)
    assert pq.kind == "ivfpq" and pq.estimated_bytes() <= 40 << 20 and dim % pq.pq_m == 0
    larger = min(m for m in ann._PQ_M if m > pq.pq_m and dim % m == 0)  # as many bytes as the budget allows
    assert ann.estimate_bytes("ivfpq", n_large, dim, pq.nlist, larger) > 40 << 20
    with pytest.raises(UserError, match="too small"):
        ann.plan_index("auto", n_large, dim, memory_budget=1 << 20)
    # Explicit types keep their fixed settings; too-small catalogs fall back to exact search.
    assert ann.plan_index("ivf", 10_000, 64).nprobe == 16 and ann.plan_index("ivf", 100, 64).kind == "flat"
    assert ann.plan_index("hnsw", 10, 64).ef_search == 128
    with pytest.raises(UserError, match="Unknown index type"):
        ann.plan_index("lsh", 10, 64)


@pytest.mark.parametrize("text, expected", [("1GiB", 1 << 30), ("800M", 800 << 20), ("1.5g", 3 << 29),
                                            ("4096", 4096), ("512 MB", 512 << 20), ("64k", 64 << 10)])
def test_memory_sizes_are_parsed(text, expected):
    assert ann.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0"])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(UserError, match="memory-budget"):
        ann.parse_memory(text)


def test_estimates_match_the_built_structures():
    vectors = clustered(4000, 64)
    for kind, extra in (("flat", {}), ("sq8", {}), ("ivf", {"nlist": 77}), ("ivfsq8", {"nlist": 77}),
                        ("ivfpq", {"nlist": 16, "pq_m": 8}), ("hnsw", {"hnsw_m": 16})):
        plan = ann.IndexPlan(kind, len(vectors), 64, nprobe=4 if "nlist" in extra else 0, **extra)
        builder = structures.IndexBuilder(plan, vectors[:3000])
        builder.add(vectors)
        size = len(structures.faiss_to_bytes(builder.finish()[0]))
        assert abs(size - plan.estimated_bytes()) < 0.1 * size + 4096, (kind, size, plan.estimated_bytes())


# ---------------------------------------------------------------------------- recall in the metadata
@pytest.fixture
def small_exact_threshold(monkeypatch):
    """Make 'large' mean a few thousand vectors, so IVF is chosen and tuned at test sizes."""
    monkeypatch.setattr(ann, "EXACT_WORK", 1000)


def test_auto_index_is_tuned_to_the_recall_target_and_records_it(tmp_path, small_exact_threshold):
    vectors = clustered(4000)
    make_index(tmp_path / "idx", vectors, index_type="auto", memory_budget=200_000, recall_target=0.9)
    with CatalogIndex.open(tmp_path / "idx") as index:
        info, stored = index.info(), index.settings()
        assert stored["index_plan"]["kind"] == "ivfsq8"  # 4000 x 32 floats (512 KB) exceed 200 KB; codes fit
        assert info["index_type"] == "auto" and info["structure"].startswith("IVF-SQ8, 63 lists, nprobe ")
        assert stored["recall_queries"] == ann.RECALL_QUERIES
        nprobe = stored["index_plan"]["nprobe"]
        # The recorded recall is what the index gives on the held-out vectors against exact search.
        held_out, _ = ann.split_sample(4000, ann.RECALL_QUERIES, ann.TRAIN_SAMPLE_MAX)
        queries = vectors[held_out]
        exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")
        exact = np.stack([[p for p in row if p != own][:7] for row, own in zip(exact[:, :9], held_out)])
        found = index.faiss_index().search(queries, 8)[1]
        measured = ann.recall(ann.without_self(found, held_out), exact)
        assert info["recall_at_7"] == pytest.approx(measured, abs=1e-4)
        assert ann.recall_bounds(ann.without_self(found, held_out), exact)[1] >= 0.9  # met with 95% confidence
        assert index.faiss_index().nprobe == nprobe
        steps = [p for p in ann.NPROBE_STEPS if p < 63] + [63]
        if nprobe > 1:  # the smallest nprobe that reaches the target was chosen
            index.faiss_index().nprobe = steps[steps.index(nprobe) - 1]
            found = ann.without_self(index.faiss_index().search(queries, 8)[1], held_out)
            assert ann.recall_bounds(found, exact)[1] < 0.9  # its lower confidence bound missed the target
    # ...and `catalog info` shows it.
    code = main(["catalog", "info", "--index", str(tmp_path / "idx"), "--json"])
    assert code == 0


def test_catalog_info_prints_the_recall(tmp_path, capsys, small_exact_threshold):
    make_index(tmp_path / "idx", clustered(3000), index_type="auto", memory_budget=1 << 30)
    assert main(["catalog", "info", "--index", str(tmp_path / "idx")]) == 0
    out = capsys.readouterr().out
    assert "structure: IVF-Flat" in out and "recall_at_7: " in out
    assert main(["catalog", "info", "--index", str(tmp_path / "idx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["recall_at_7"] >= 0.95 and info["index_size"].endswith("KiB")


def test_exact_indexes_record_recall_one_and_explicit_types_are_measured(tmp_path):
    make_index(tmp_path / "flat", clustered(300), index_type="auto")
    make_index(tmp_path / "hnsw", clustered(300), index_type="hnsw")
    with CatalogIndex.open(tmp_path / "flat") as flat, CatalogIndex.open(tmp_path / "hnsw") as hnsw:
        assert flat.info()["recall_at_7"] == 1.0 and flat.info()["structure"] == "exact (flat)"
        assert 0.9 <= hnsw.info()["recall_at_7"] <= 1.0 and hnsw.settings()["recall_queries"] == 299


def test_a_lost_faiss_file_is_rebuilt_into_the_same_approximate_index(tmp_path, small_exact_threshold):
    vectors = clustered(3000)
    make_index(tmp_path / "idx", vectors, index_type="auto", memory_budget=150_000)
    queries = vectors[:40] + 0.05
    before = search_ids(tmp_path / "idx", queries)
    (tmp_path / "idx" / FAISS_NAME).unlink()
    assert search_ids(tmp_path / "idx", queries) == before  # same sample, same training, same nprobe


# ---------------------------------------------------------------------------- streamed finalising
def old_content_digest(directory: Path) -> str:
    """The checksum as finalise computed it before streaming: one query over every row."""
    with sqlite3.connect(directory / DB_NAME) as db:
        digest = hashlib.sha256()

        def feed(value):
            data = value if isinstance(value, bytes) else repr(value).encode()
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)

        stored = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM settings")}
        feed(json.dumps({k: stored.get(k) for k in index_store._CHECKED_SETTINGS}, sort_keys=True))
        for row in db.execute("SELECT row, id, path, description, category, vector FROM items ORDER BY row"):
            for value in row:
                feed(value)
        for row in db.execute("SELECT key, value FROM blobs ORDER BY key"):
            for value in row:
                feed(value)
        return digest.hexdigest()


@pytest.mark.parametrize("index_type, whitening", [("flat", None), ("flat", 12), ("ivf", None), ("ivf", True)])
def test_chunked_finalize_equals_the_whole_catalog_result(tmp_path, monkeypatch, index_type, whitening):
    monkeypatch.setattr(index_store, "CHUNK_ROWS", 256)  # 256-row chunks: the 3000 rows take 12
    vectors = clustered(3000)
    make_index(tmp_path / "idx", vectors, index_type=index_type, whitening=whitening)
    # What finalising the whole catalog at once gives: whitening from all vectors, then the index.
    reference = PCAWhitening.learn(vectors, None if whitening is True else whitening) if whitening else None
    space = reference.apply(vectors) if reference else vectors
    expected = make_faiss_index(space, index_type)
    queries = vectors[::150] + 0.1 * np.random.default_rng(1).normal(size=(20, DIM)).astype(np.float32)
    with CatalogIndex.open(tmp_path / "idx") as index:
        prepared = index.prepare_queries(queries)
        want_scores, want = expected.search(reference.apply(queries) if reference else prepared, 7)
        got_scores, got = index.faiss_index().search(prepared, 7)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got_scores, want_scores, atol=1e-4)
        assert index.settings()["chunk_rows"] == 256 and index.verify() == 3000
        assert index._db.execute("SELECT count(*) FROM chunk_digests").fetchone()[0] == 12
        if reference is not None:  # the streamed covariance is the full one
            learned = index.whitening()
            np.testing.assert_allclose(learned.mean, reference.mean, atol=1e-6)
            np.testing.assert_allclose(np.abs(learned.projection), np.abs(reference.projection), rtol=1e-3, atol=1e-3)


def test_finalize_never_holds_every_vector(tmp_path, monkeypatch):
    monkeypatch.setattr(index_store, "CHUNK_ROWS", 1024)  # 1 MiB of 256-d vectors a chunk
    dim, n = 256, 30_000  # 30 MB of vectors
    rng = np.random.default_rng(0)
    with CatalogIndex.create(tmp_path / "idx", settings(dim)) as index:
        for start in range(0, n, 5000):
            block = rng.normal(size=(5000, dim)).astype(np.float32)
            index.add_items([ItemRecord(f"c{start + i}", "p.jpg", "", "", v) for i, v in enumerate(block)])
        tracemalloc.start()
        index.finalize("flat", True)  # whitening (a streamed covariance) + flat index + checksum
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 12 * 2**20, f"finalising took {peak / 2**20:.1f} MiB of Python memory for 30 MB of vectors"


def test_resumed_build_asks_the_database_chunk_by_chunk(tmp_path, tiny_checkpoint, demo_data, monkeypatch):
    from beauty_app.retrieval import build as build_module

    monkeypatch.setattr(build_module, "ENTRY_CHUNK", 7)
    catalog = read_catalog(demo_data.catalog_csv)
    extractor = FeatureExtractor(load_model(str(tiny_checkpoint)), "srmac", batch_size=4, use_amp=False)
    half = type(catalog)(catalog.root, catalog.entries[:15], catalog.skipped)
    build_index(half, extractor, tmp_path / "idx")
    monkeypatch.setattr(CatalogIndex, "known_items", None)  # the whole-catalog set is not used any more
    summary = build_index(catalog, extractor, tmp_path / "idx", resume=True)
    assert summary.already_done == 15 and summary.indexed == len(catalog.entries) - 15
    with CatalogIndex.open(tmp_path / "idx") as index:
        assert [item["id"] for item in index.iter_items()] == [entry.id for entry in catalog.entries]


# ---------------------------------------------------------------------------- keyset paging
def test_pages_continue_by_key_and_equal_the_whole_listing(tmp_path):
    make_index(tmp_path / "idx", clustered(1000), index_type="flat")
    with CatalogIndex.open(tmp_path / "idx", writable=True) as index:
        index.remove_items([f"c{i:05d}" for i in range(0, 1000, 3)])  # gaps in the row numbers
        index.finalize()
        for text in ("", "product 1", "lipstick"):
            whole = list(index.iter_items(text))
            paged, offset = [], 0
            while page := list(index.iter_items(text, limit=50, offset=offset)):
                paged += page
                offset += len(page)
            assert paged == whole and len(whole) > 50
            by_key, last = [], None
            while page := list(index.iter_items(text, limit=64, after_row=last)):
                by_key += page
                last = page[-1]["row"]
            assert by_key == whole
            assert index.count_items(text) == len(whole)  # the browser's scroll range
        # An offset that does not continue the previous page is still answered exactly.
        assert list(index.iter_items("", limit=5, offset=333)) == list(index.iter_items(""))[333:338]


def vm_steps(index: CatalogIndex, call) -> int:
    """SQLite virtual-machine instructions a call runs: a cost measure that does not depend on load."""
    steps = [0]

    def count():
        steps[0] += 1
        return 0

    index._db.set_progress_handler(count, 100)
    try:
        call()
    finally:
        index._db.set_progress_handler(None, 100)
    return steps[0] * 100


def test_deep_pages_cost_what_the_first_page_costs(tmp_path):
    n = 20_000
    with CatalogIndex.create(tmp_path / "idx", settings(4)) as index:
        vectors = np.ones((n, 4), np.float32)
        index.add_items([ItemRecord(f"c{i:06d}", f"/c/{i}.jpg", f"product {i}", "", v) for i, v in enumerate(vectors)])
        index.finalize("flat")
    with CatalogIndex.open(tmp_path / "idx") as index:
        index.verify()  # every chunk checked once now: the steps below are paging's alone
        first = vm_steps(index, lambda: list(index.iter_items(limit=200)))
        offset = 0
        while offset + 200 < n:  # scroll like the browser: each page continues the previous one
            list(index.iter_items(limit=200, offset=offset))
            offset += 200
        deep = vm_steps(index, lambda: list(index.iter_items(limit=200, offset=offset)))
        jump = vm_steps(index, lambda: list(index.iter_items(limit=200, offset=offset - 1)))  # not a continuation
        assert list(index.iter_items(limit=3, offset=offset - 1))[0]["id"] == f"c{offset - 1:06d}"
    assert deep < 2 * first
    assert jump < 2 * first  # rows without gaps: the row at any offset is known
    reader = CatalogIndex.open(tmp_path / "idx")  # an open browser, while another process edits the index
    assert next(reader.iter_items(limit=1, offset=100))["id"] == "c000100"
    with CatalogIndex.open(tmp_path / "idx", writable=True) as index:
        index.remove_items(["c000005"])  # a gap: a jump must walk with OFFSET again, and stay exact
        index.finalize()
        index.verify()
        assert next(reader.iter_items(limit=1, offset=100))["id"] == "c000101"
        reader.close()
        gapped = vm_steps(index, lambda: list(index.iter_items(limit=200, offset=offset - 1)))
        assert list(index.iter_items(limit=3, offset=offset - 1))[0]["id"] == f"c{offset:06d}"
    assert gapped > 20 * deep


# ---------------------------------------------------------------------------- shards and merging
def torchrun(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "beauty_app", *map(str, args)],
                          capture_output=True, text=True, timeout=240, cwd=cwd, env=env)


def test_two_process_shards_merge_into_the_single_process_index(tmp_path, tiny_checkpoint, demo_data, capsys):
    shop = tmp_path / "shop"
    shutil.copytree(demo_data.catalog_csv.parent / "catalog", shop / "catalog")
    lines = demo_data.catalog_csv.read_text().splitlines()
    (shop / "catalog" / "broken.jpg").write_bytes(b"not an image")
    lines += ["broken,catalog/broken.jpg,a broken file", "missing,catalog/missing.jpg,not there"]
    (shop / "catalog.csv").write_text("\n".join(lines) + "\n")
    common = ["--catalog", shop / "catalog.csv", "--model", tiny_checkpoint, "--fp32", "--batch-size", 3, "-q"]

    single = tmp_path / "single"
    assert main(["catalog", "build", *map(str, common), "--out", str(single)]) == 0
    done = torchrun("catalog", "build", *common, "--shard-out", tmp_path / "shards", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "All 2 shards written" in done.stdout
    capsys.readouterr()
    assert main(["catalog", "merge", "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "merged")]) == 0
    assert "Merged" in capsys.readouterr().out

    with CatalogIndex.open(single) as a, CatalogIndex.open(tmp_path / "merged") as b:
        items_a, items_b = list(a.iter_items()), list(b.iter_items())
        assert [i["id"] for i in items_b] == [i["id"] for i in items_a]  # catalog order, not shard order
        assert [(i["path"], i["description"]) for i in items_b] == [(i["path"], i["description"]) for i in items_a]
        np.testing.assert_allclose(b.raw_vectors(), a.raw_vectors(), rtol=0, atol=1e-5)
        assert b.skipped() == a.skipped() and {item for item, _ in a.skipped()} == {"broken", "missing"}
        assert b.alternate_poolings() == a.alternate_poolings()
        ids = [i["id"] for i in items_a]
        assert all(b.thumbnail(i) == a.thumbnail(i) for i in ids[:5])
        queries = a.raw_vectors(ids[::5])
        assert [[h.id for h in q] for q in b.search(queries)] == [[h.id for h in q] for q in a.search(queries)]
        pooling = a.alternate_poolings()[0]
        assert [[h.id for h in q] for q in b.search_alternate(pooling, queries)] == \
            [[h.id for h in q] for q in a.search_alternate(pooling, queries)]
        assert b.info()["count"] == a.info()["count"] and b.settings()["model_fingerprint"] == \
            a.settings()["model_fingerprint"]


def test_merge_refuses_incomplete_or_mismatched_shards(tmp_path, tiny_checkpoint, demo_data, capsys):
    common = ["catalog", "build", "--catalog", str(demo_data.catalog_csv), "--model", str(tiny_checkpoint), "-q",
              "--shard-out", str(tmp_path / "shards")]
    assert main([*common, "--shard", "0/2"]) == 0
    code = main(["catalog", "merge", "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Shard 1 of 2 is missing" in err and len(err.strip().splitlines()) == 1
    assert main([*common, "--shard", "1/3"]) == 0  # another split in the same folder
    assert main(["catalog", "merge", "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "out")]) == 2
    assert "different catalog or split" in capsys.readouterr().err
    assert main(["catalog", "build", "--catalog", str(demo_data.catalog_csv), "--model", str(tiny_checkpoint),
                 "--shard", "2/2", "--shard-out", str(tmp_path / "x")]) == 2
    assert main(["catalog", "build", "--catalog", str(demo_data.catalog_csv), "--model", str(tiny_checkpoint)]) == 2
    assert "--out" in capsys.readouterr().err


def test_a_shard_build_resumes_and_a_merge_can_be_run_again(tmp_path, tiny_checkpoint, demo_data, capsys):
    common = ["catalog", "build", "--catalog", str(demo_data.catalog_csv), "--model", str(tiny_checkpoint), "-q",
              "--shard-out", str(tmp_path / "shards"), "--fp32"]
    for rank in (0, 1):
        assert main([*common, "--shard", f"{rank}/2"]) == 0
    capsys.readouterr()
    assert main([*common, "--shard", "1/2"]) == 0  # again: nothing left to do
    assert "Indexed 0 images" in capsys.readouterr().out
    merge = ["catalog", "merge", "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "out"), "-q"]
    assert main(merge) == 0
    capsys.readouterr()
    assert main(merge) == 0
    assert "already merged" in capsys.readouterr().out
    with CatalogIndex.open(tmp_path / "out") as index:
        assert index.count() == len(read_catalog(demo_data.catalog_csv).entries)
    with pytest.raises(IndexStoreError, match="another index"):
        from beauty_app.retrieval.shards import merge_shards

        shutil.copytree(tmp_path / "shards" / "shard-00000-of-00002", tmp_path / "other" / "shard-00000-of-00001")
        with CatalogIndex.open(tmp_path / "other" / "shard-00000-of-00001", writable=True) as shard:
            shard.update_settings({"shard": {**shard.settings()["shard"], "world": 1}})
        merge_shards([tmp_path / "other"], tmp_path / "out")


def test_in_memory_build_matches_the_catalog_build(tmp_path, small_exact_threshold):
    vectors = clustered(3000)
    make_index(tmp_path / "idx", vectors, index_type="auto", memory_budget=150_000)
    index, plan, measured = build_faiss_index(vectors, "auto", memory_budget=150_000)
    assert plan.kind == "ivfsq8"
    with CatalogIndex.open(tmp_path / "idx") as stored:
        assert stored.settings()["index_plan"] == plan.as_dict()
        assert stored.info()["recall_at_7"] == pytest.approx(measured, abs=1e-4)
        queries = vectors[::100]
        np.testing.assert_array_equal(stored.faiss_index().search(queries, 7)[1], index.search(queries, 7)[1])


def test_updates_change_the_structure_in_place_and_replan_when_the_size_is_far_off(tmp_path, small_exact_threshold):
    vectors = clustered(12000)
    make_index(tmp_path / "idx", vectors[:3000], index_type="auto", memory_budget=170_000)
    with CatalogIndex.open(tmp_path / "idx", writable=True) as index:
        assert index.settings()["index_plan"]["n"] == 3000 and index.settings()["index_plan"]["kind"] == "ivfsq8"
        index.add_items([ItemRecord(f"n{i}", "n.jpg", "", "", v) for i, v in enumerate(vectors[3000:4000])], staged=True)
        index.commit_staged()
        index.finalize()  # keeps auto and the recorded budget; 63 lists would be planned, 55 are near enough
        stored = index.settings()
        assert stored["index_type"] == "auto" and stored["memory_budget"] == 170_000
        assert stored["index_plan"]["n"] == 4000 and stored["index_plan"]["nlist"] == 55  # not retrained
        assert "n200" in [hit.id for hit in index.search(vectors[3200:3201], 7)[0]]
        assert 0 < index.info()["recall_at_7"] <= 1
        index.add_items([ItemRecord(f"m{i}", "m.jpg", "", "", v) for i, v in enumerate(vectors[4000:])], staged=True)
        index.commit_staged()
        index.finalize()  # three times the size: the budget now calls for another structure, retrained
        stored = index.settings()
        assert stored["index_plan"]["n"] == 12000 and stored["index_plan"]["kind"] == "ivfpq"
        assert index.faiss_index().ntotal == 12000 and index.verify() == 12000


def test_catalog_build_reports_progress_as_json_lines(tmp_path, tiny_checkpoint, demo_data, capsys):
    code = main(["catalog", "build", "--catalog", str(demo_data.catalog_csv), "--model", str(tiny_checkpoint),
                 "--out", str(tmp_path / "idx"), "--progress", "jsonl", "--json"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    events, summary = lines[:-1], lines[-1]
    assert all(e["event"] == "progress" for e in events) and "event" not in summary
    stages = [e["stage"] for e in events]
    assert stages[0] == "read catalog" and stages[-1] == "finalize"
    assert stages.index("finalize") == stages.count("read catalog") + stages.count("index")
    read = [e for e in events if e["stage"] == "read catalog"]
    assert read[-1]["done"] == read[-1]["total"] == demo_data.catalog_csv.stat().st_size
    index_events = [e for e in events if e["stage"] == "index"]
    assert index_events[0]["done"] == 0 and index_events[-1]["done"] == index_events[-1]["total"] == summary["indexed"]
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)


def test_build_bench_samples_memory_through_a_real_build(tmp_path, tiny_checkpoint, demo_data):
    from beauty_app.evaluation.bench import write_report
    from beauty_app.evaluation.bench.build import BuildSettings, run_build_bench

    data = tmp_path / "demo"
    shutil.copytree(demo_data.root, data)
    settings = BuildSettings(images=20, data=str(data), model=str(tiny_checkpoint), pooling="srmac", batch_size=4,
                             device="cpu", interval_s=0.05)
    report = run_build_bench(tmp_path / "out", settings)
    results = report.results
    assert results["indexed"] == 20 and results["skipped"] == 0  # the first 20 rows of a longer catalog
    assert (data / "catalog-first-20.csv").read_text().count("\n") == 21
    samples = results["samples"]
    assert samples and {stage for *_, stage in samples} >= {"index"}
    assert max(rss for _, rss, *_ in samples) <= results["peak_rss_mib"] * 1.01  # the peak covers every sample
    assert results["peak_rss_mib"] > 100  # a Python process with torch loaded
    done = [d for _, _, d, _ in samples]
    assert done == sorted(done) and done[-1] <= 20
    measures = {row[0]: row[1] for row in report.tables[0].rows}
    assert measures["catalog images indexed"] == 20
    assert measures["peak RSS of the whole build (MiB)"] == results["peak_rss_mib"]
    assert [row[0] for row in report.tables[1].rows][1] == "0-10% (0-2)"
    assert not (tmp_path / "out" / "build-work" / "index").exists()  # the 100K index would take 3 GB
    assert (tmp_path / "out" / "build-memory.png").stat().st_size > 10_000
    json_path, md_path = write_report(report, tmp_path / "out")
    assert "Peak memory of a real 20-image catalog build" in md_path.read_text()
    assert json.loads(json_path.read_text())["results"]["indexed"] == 20


def test_scale_bench_runs_every_phase_in_its_own_process(tmp_path):
    from beauty_app.evaluation.bench.scale import ScaleSettings, run_scale_bench

    report = run_scale_bench(tmp_path, ScaleSettings(size=3000, dim=16, queries=20))
    measures = {row[0]: row[1] for row in report.tables[0].rows}
    assert measures["search structure"].startswith("exact") and measures["recall@7 at build time (held-out catalog vectors)"] == 1.0
    assert measures["recall@7 of 20 new queries against exact search"] == 1.0
    assert measures["finalise peak RSS (MiB)"] > measures["  of which the process before finalising (Python, torch, faiss imported)"] > 0
    paging = {row[0]: row[1] for row in report.tables[1].rows}
    assert len(paging) == 8 and all(isinstance(v, float) and v >= 0 for v in paging.values())
    waits = {row[0].strip(): row[1] for row in report.tables[2].rows}
    assert waits["added rows found at rank 1 (of 10)"] == 10 and report.results["filter_counts"]["rare"]["matches"] == 1
    assert report.results["filter_counts"]["common"]["matches"] == 3000 and report.results["filter_counts"]["text_index"]
    assert report.results["filter_counts"]["short"]["matches"] == 3000 and report.results["filter_counts"]["prepare_ms"] > 0
    again = run_scale_bench(tmp_path, ScaleSettings(size=3000, dim=16, queries=20))  # reuses the stored vectors
    assert "populate" not in again.results and again.results["database_bytes"] == report.results["database_bytes"]


def test_a_failing_measured_build_says_why_in_one_sentence(tmp_path, demo_data):
    from beauty_app.evaluation.bench.build import measure_build

    with pytest.raises(UserError, match=r"^The measured `catalog build` failed: .*no-such-model\.pt"):
        measure_build(demo_data.catalog_csv, tmp_path / "idx", str(tmp_path / "no-such-model.pt"), interval_s=0.05)
