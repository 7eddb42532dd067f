"""Crafted checkpoints, index settings and faiss files: exit 2 or success, never a traceback, bounded memory.

Each property runs its crafted files through the real command line in one child process, so that
the child's peak resident memory (its own high-water mark, VmHWM) covers every case; the fast runs
take well under a minute, the long ones are marked slow.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beauty_app.retrieval.index import structures
from tests.conftest import make_tiny_checkpoint

#: Peak resident memory a child may reach over all its crafted files (torch and a tiny model: ~0.5 GiB).
PEAK_MIB = 1200

# Runs `beauty-app ARGS` once per line of the case file (a JSON list of argument lists) and reports
# each exit status and stderr, plus the peak memory of the whole run.
_CHILD = r"""
import contextlib, io, json, resource, sys, traceback
from beauty_app.cli import main
results = []
for args in json.load(open(sys.argv[1])):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            code, err = "escaped", io.StringIO(traceback.format_exc())
    results.append({"args": args, "code": code, "stderr": err.getvalue()})

def peak_mib():
    # VmHWM is this process image's own high-water mark. ru_maxrss would do on a small parent, but
    # Linux carries the parent's peak over fork and exec, and a long pytest run's parent is large.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

print(json.dumps({"results": results, "peak_mib": peak_mib()}))
"""


def run_child(cases: list[list[str]], tmp_path: Path) -> dict:
    case_file = tmp_path / "cases.json"
    case_file.write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(case_file)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_exit_2_or_success(report: dict) -> None:
    for result in report["results"]:
        lines = [line for line in result["stderr"].splitlines() if "error" in line or "Traceback" in line]
        assert result["code"] in (0, 2), result
        assert "Traceback" not in result["stderr"], result
        if result["code"] == 2:
            assert len(lines) == 1, result
    assert report["peak_mib"] < PEAK_MIB, report["peak_mib"]


# -- crafted checkpoints ----------------------------------------------------------------------------

_EVIL_VALUES = st.one_of(
    st.sampled_from([0, -1, 1, 3, 2**31, 2**63 - 1, 3_000_000, 60_000, 2e9, math.nan, math.inf, -0.0, True, None,
                     "", "224", "both", [], [0.0, 0.0, 0.0], [math.nan] * 3, [1.0], [0.5, 0.5, 0.5, 0.5]]),
    st.integers(-2**40, 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
)
_CHECKPOINT_KEYS = ["num_classes", "class_names", "input_size", "mean", "std", "attention", "backbone",
                    "external_saliency", "feature_dim", "state_dict", "format_version"]
_CHECKPOINT_EDITS = st.lists(st.tuples(st.sampled_from(_CHECKPOINT_KEYS), st.one_of(st.just("<delete>"), _EVIL_VALUES)),
                             min_size=1, max_size=3)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> dict:
    return torch.load(make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "good.pt"), weights_only=True)


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory, demo_data) -> Path:
    """Two images of the demo catalog: enough to build an index, cheap enough to build dozens."""
    lines = demo_data.catalog_csv.read_text().splitlines()
    path = demo_data.catalog_csv.parent / "two_rows.csv"
    path.write_text("\n".join(lines[:3]) + "\n")
    return path


def _crafted_checkpoint_cases(good: dict, edit_lists, folder: Path, catalog: Path) -> list[list[str]]:
    cases = []
    for number, edits in enumerate(edit_lists):
        payload = {**good, "state_dict": dict(good["state_dict"])}
        for key, value in edits:
            if value == "<delete>":
                payload.pop(key, None)
            else:
                payload[key] = value
        path = folder / f"crafted{number}.pt"
        torch.save(payload, path)
        cases.append(["catalog", "build", "--catalog", str(catalog), "--model", str(path),
                      "--out", str(folder / f"index{number}"), "-q", "--device", "cpu"])
    return cases


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.data_too_large])
@given(edit_lists=st.lists(_CHECKPOINT_EDITS, min_size=12, max_size=12))
def test_crafted_checkpoints_exit_2_or_succeed_with_bounded_memory(edit_lists, good_checkpoint, small_catalog,
                                                                   tmp_path_factory):
    folder = tmp_path_factory.mktemp("crafted")
    cases = _crafted_checkpoint_cases(good_checkpoint, edit_lists, folder, small_catalog)
    assert_exit_2_or_success(run_child(cases, folder))


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.data_too_large])
@given(edit_lists=st.lists(_CHECKPOINT_EDITS, min_size=25, max_size=25))
def test_many_crafted_checkpoints(edit_lists, good_checkpoint, small_catalog, tmp_path_factory):
    folder = tmp_path_factory.mktemp("crafted")
    cases = _crafted_checkpoint_cases(good_checkpoint, edit_lists, folder, small_catalog)
    assert_exit_2_or_success(run_child(cases, folder))


# -- crafted index settings -------------------------------------------------------------------------

_SETTING_KEYS = ["input_size", "scales", "dim", "pooling", "revision", "count", "index_type", "model_spec"]


def _crafted_index_cases(built_index: Path, edit_lists, folder: Path, query: Path) -> list[list[str]]:
    cases = []
    for number, (edits, drop_checksum) in enumerate(edit_lists):
        copy = folder / f"idx{number}"
        shutil.copytree(built_index, copy)
        with sqlite3.connect(copy / "catalog.sqlite") as db:
            for key, value in edits:
                db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES(?, ?)", (key, json.dumps(value)))
            if drop_checksum:  # the way round the content checksum the issue found
                db.execute("DELETE FROM settings WHERE key = 'content_sha256'")
        cases.append(["search", "--index", str(copy), str(query), "--json", "--device", "cpu"])
    return cases


_INDEX_EDITS = st.tuples(st.lists(st.tuples(st.sampled_from(_SETTING_KEYS), _EVIL_VALUES.filter(
    lambda v: not (isinstance(v, float) and not math.isfinite(v)) and not (
        isinstance(v, list) and any(isinstance(x, float) and not math.isfinite(x) for x in v)))),
    min_size=1, max_size=2), st.booleans())


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.data_too_large])
@given(edit_lists=st.lists(_INDEX_EDITS, min_size=10, max_size=10))
def test_crafted_index_settings_exit_2_or_succeed_with_bounded_memory(edit_lists, built_index, demo_data,
                                                                      tmp_path_factory):
    folder = tmp_path_factory.mktemp("settings")
    query = next(demo_data.queries_dir.iterdir())
    assert_exit_2_or_success(run_child(_crafted_index_cases(built_index, edit_lists, folder, query), folder))


def test_an_index_whose_settings_say_input_size_60000_is_refused(built_index, demo_data, tmp_path):
    """Before: every query allocated for a 60000-pixel input until the system killed the process."""
    query = next(demo_data.queries_dir.iterdir())
    cases = _crafted_index_cases(built_index, [([("input_size", 60000)], True), ([("scales", [1e6])], True)],
                                 tmp_path, query)
    report = run_child(cases, tmp_path)
    assert_exit_2_or_success(report)
    assert [r["code"] for r in report["results"]] == [2, 2]


# -- crafted faiss files ----------------------------------------------------------------------------


def test_a_77_byte_faiss_file_declaring_1_5e9_vectors_is_refused_before_faiss_reads_it(tmp_path, monkeypatch):
    path = tmp_path / "index.faiss"
    header = struct.pack("<4siq", b"IxFI", 1280, 1_500_000_000)
    path.write_bytes(header + b"\0" * (77 - len(header)))
    settings_ = {"faiss_revision": 3, "revision": 3, "faiss_sha256": structures.file_sha256(path)}

    def no_read(*args, **kwargs):
        raise AssertionError("faiss read a file whose header was not checked")

    monkeypatch.setattr(structures.faiss, "read_index", no_read)
    index, problem = structures.read_structure_file(path, settings_, 1_500_000_000)
    assert index is None and "shorter than the vectors its header declares" in problem
    index, problem = structures.read_structure_file(path, settings_, 26)
    assert index is None and problem == "does not match the database"
    path.write_bytes(struct.pack("<4siq", b"IxFI", -5, 3) + b"\0" * 60)
    assert "impossible header" in structures.check_structure_header(path, 3)


@pytest.mark.parametrize("factory", ["Flat", "SQ8", "HNSW8", "IVF4,Flat", "IVF4,SQ8", "IVF4,PQ4"])
def test_real_faiss_files_pass_the_header_check(factory, tmp_path):
    import numpy as np

    vectors = np.random.default_rng(0).standard_normal((400, 16)).astype("float32")
    index = structures.faiss.index_factory(16, factory, structures.faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    structures.faiss.write_index(index, str(tmp_path / "x.faiss"))
    assert structures.check_structure_header(tmp_path / "x.faiss", 400) is None


# -- eval: two query images with one id ---------------------------------------------------------------


def test_two_query_images_with_one_id_are_refused_not_dropped(built_index, demo_data, tmp_path, capsys):
    """Before: q.jpg and q.png were both the query "q" and one of them was silently left out."""
    from beauty_app.cli import main

    queries = tmp_path / "queries"
    shutil.copytree(demo_data.queries_dir, queries)
    first = sorted(queries.iterdir())[0]
    shutil.copy(first, first.with_suffix(".png"))
    code = main(["eval", "--index", str(built_index), "--queries", str(queries), "--truth", str(demo_data.truth_csv),
                 "-q"])
    err = capsys.readouterr().err
    assert code == 2 and f"{first.name} and {first.stem}.png" in err and len(err.strip().splitlines()) == 1
