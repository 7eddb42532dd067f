"""Every command, given bad arguments or failing files and disks, exits 2 with one sentence and no traceback."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from beauty_app.cli import main
from beauty_app.cli.main import user_sentence
from tests.conftest import make_tiny_checkpoint


def run_cli(args, capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_sentence(code: int, err: str, fragment: str = "") -> None:
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert fragment.lower() in err.lower(), err


@pytest.fixture(scope="module")
def crafted_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints whose description lies: each must be refused before anything is built from it."""
    folder = tmp_path_factory.mktemp("crafted")
    good = torch.load(make_tiny_checkpoint(folder / "good.pt"), weights_only=True)
    edits = {
        "missing_keys": lambda p: [p.pop("num_classes"), p.pop("mean")],
        "wrong_types": lambda p: p.update(input_size="224", mean="red"),
        "zero_std": lambda p: p.update(std=[0.0, 0.2, 0.2]),
        "nan_mean": lambda p: p.update(mean=[float("nan"), 0.4, 0.4]),
        "input_size_0": lambda p: p.update(input_size=0),
        "input_size_60000": lambda p: p.update(input_size=60000),
        "num_classes_2e9": lambda p: p.update(num_classes=2_000_000_000),
        "num_classes_3e6": lambda p: p.update(num_classes=3_000_000, class_names=["x"] * 3_000_000),
        "state_dict_not_tensors": lambda p: p.update(state_dict={"a": 1}),
    }
    paths = {}
    for name, edit in edits.items():
        payload = {**good, "state_dict": dict(good["state_dict"])}
        edit(payload)
        torch.save(payload, folder / f"{name}.pt")
        paths[name] = folder / f"{name}.pt"
    return paths


@pytest.fixture()
def places(tmp_path, built_index, demo_data, tiny_checkpoint) -> dict[str, str]:
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder")
    return {"index": str(built_index), "query": str(next(demo_data.queries_dir.iterdir())),
            "queries": str(demo_data.queries_dir), "truth": str(demo_data.truth_csv),
            "catalog": str(demo_data.catalog_csv), "model": str(tiny_checkpoint), "file": str(a_file),
            "out": str(tmp_path / "out"), "mined": str(tmp_path / "mined")}


BAD_ARGUMENTS = [
    # search, eval, score: results per query
    (["search", "--index", "{index}", "{query}", "-k", "0"], "-k"),
    (["search", "--index", "{index}", "{query}", "-k", "-1"], "-k"),
    (["search", "--index", "{index}", "{query}", "-k", "10000000000"], "-k"),
    (["search", "--index", "{index}", "{query}", "-k", "seven"], "-k"),
    (["search", "--index", "{index}", "{query}", "--qe", "-2"], "--qe"),
    (["search", "--index", "{index}", "{query}", "--device", "foo"], "--device"),
    (["search", "--index", "{index}", "{query}", "--device", "mps"], "MPS"),
    (["search", "--index", "{index}", "{query}", "--device", "cuda:7"], "CUDA"),
    (["eval", "--index", "{index}", "--queries", "{queries}", "--truth", "{truth}", "-k", "0"], "-k"),
    (["eval", "--index", "{index}", "--queries", "{queries}", "--truth", "{truth}", "--device", "foo"], "--device"),
    (["score", "--truth", "{truth}", "--ranking", "{truth}", "-k", "0"], "-k"),
    (["score", "--truth", "{truth}", "--ranking", "{truth}", "-k", "-1"], "-k"),
    # catalog build
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{file}"], "is a file"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--input-size", "-1"],
     "--input-size"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--input-size", "60000"],
     "--input-size"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--scales", "nan"],
     "--scales"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--scales", "1,inf"],
     "--scales"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--scales", "-1"],
     "--scales"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--whiten", "-3"],
     "--whiten"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--batch-size", "0"],
     "--batch-size"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--workers", "0"],
     "--workers"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--workers", "-4"],
     "--workers"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--device", "foo"],
     "--device"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}", "--recall-target", "2"],
     "--recall-target"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--out", "{out}",
      "--memory-budget", "1K", "-q"], "too small"),
    (["catalog", "build", "--catalog", "{catalog}", "--model", "{model}", "--shard-out", "{file}"], "is a file"),
    (["catalog", "merge", "--shards", "{out}", "--out", "{file}"], "is a file"),
    (["catalog", "merge", "--shards", "{out}", "--out", "{out}", "--whiten", "-3"], "--whiten"),
    (["catalog", "add", "--index", "{index}", "--catalog", "{catalog}", "--batch-size", "0"], "--batch-size"),
    (["catalog", "add", "--index", "{index}", "--catalog", "{catalog}", "--device", "foo"], "--device"),
    # train
    (["train", "--data", "{mined}", "--workers", "-1"], "--workers"),
    (["train", "--data", "{mined}", "--batch-size", "0"], "--batch-size"),
    (["train", "--data", "{mined}", "--input-size", "0"], "--input-size"),
    (["train", "--data", "{mined}", "--iterations", "0"], "--iterations"),
    (["train", "--data", "{mined}", "--device", "foo"], "--device"),
    (["train", "--data", "{mined}", "--backbone", "nope"], "--backbone"),
    # dataset, demo, bench, gui
    (["dataset", "mine", "--catalog", "{catalog}", "--out", "{file}"], "is a file"),
    (["dataset", "mine", "--catalog", "{catalog}", "--out", "{mined}", "--workers", "0"], "--workers"),
    (["dataset", "masks", "--data", "{mined}", "--workers", "0"], "--workers"),
    (["demo", "generate", "--out", "{file}"], "is a file"),
    (["demo", "generate", "--out", "{out}", "--size", "1"], "--size"),
    (["demo", "generate", "--out", "{out}", "--products", "0"], "--products"),
    (["bench", "speed", "--workers", "0"], "--workers"),
    (["bench", "build", "--out", "{file}"], "is a file"),
    (["gui", "--device", "foo"], "--device"),
    (["no-such-command"], "invalid choice"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_ARGUMENTS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_arguments_exit_2_with_one_sentence(args, fragment, places, capsys):
    code, err = run_cli([a.format(**places) for a in args], capsys)
    assert_one_sentence(code, err, fragment)


def test_a_too_small_memory_budget_is_refused_before_featurising(places, capsys, monkeypatch):
    """Before: the budget was found too small only when the index was finalised, after every image."""
    from beauty_app.retrieval import build

    def no_featurising(*args, **kwargs):
        raise AssertionError("featurised before the budget was checked")

    monkeypatch.setattr(build, "_featurise_missing", no_featurising)
    code, err = run_cli(["catalog", "build", "--catalog", places["catalog"], "--model", places["model"],
                         "--out", places["out"], "--memory-budget", "1K", "-q"], capsys)
    assert_one_sentence(code, err, "too small")


@pytest.mark.parametrize("name", ["missing_keys", "wrong_types", "zero_std", "nan_mean", "input_size_0",
                                  "input_size_60000", "num_classes_2e9", "num_classes_3e6", "state_dict_not_tensors"])
def test_crafted_checkpoints_are_one_sentence(name, crafted_checkpoints, places, capsys):
    code, err = run_cli(["catalog", "build", "--catalog", places["catalog"], "--model", crafted_checkpoints[name],
                         "--out", places["out"], "-q"], capsys)
    assert_one_sentence(code, err, "cannot be used")
    assert not Path(places["out"]).exists()


@pytest.fixture()
def index_copy(built_index, tmp_path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(built_index, copy)
    return copy


def test_a_folder_named_lock_in_the_index_is_one_sentence(index_copy, capsys):
    lock = index_copy / ".lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    code, err = run_cli(["catalog", "remove", "--index", index_copy, "some-id"], capsys)
    assert_one_sentence(code, err, ".lock")


@pytest.mark.parametrize(("error", "fragment"), [
    (sqlite3.OperationalError("database or disk is full"), "disk is full"),
    (OSError(errno.ENOSPC, "No space left on device", "/idx/catalog.sqlite"), "disk is full"),
    (OSError(errno.EROFS, "Read-only file system", "/idx/catalog.sqlite"), "read-only"),
    (OSError(errno.EACCES, "Permission denied", "/idx/catalog.sqlite"), "permission denied"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
])
def test_disk_and_database_errors_while_writing_are_one_sentence(error, fragment, index_copy, capsys, monkeypatch):
    from beauty_app.retrieval.index import CatalogIndex

    def fail(self, ids):
        raise error

    monkeypatch.setattr(CatalogIndex, "remove_items", fail)
    code, err = run_cli(["catalog", "remove", "--index", index_copy, "some-id"], capsys)
    assert_one_sentence(code, err, fragment)


def test_a_faiss_write_error_is_one_sentence(index_copy, demo_data, capsys, monkeypatch):
    from beauty_app.catalog_io import read_catalog
    from beauty_app.retrieval.index import structures

    def fail(index, path):
        raise RuntimeError("Error in faiss::FileIOWriter::FileIOWriter(const char*) at impl/io.cpp:102: "
                           "Error: 'f' failed: could not open /idx/.index.faiss.tmp for writing: No space left")

    monkeypatch.setattr(structures.faiss, "write_index", fail)
    first_id = read_catalog(demo_data.catalog_csv).entries[0].id  # a removal rewrites the search structure
    code, err = run_cli(["catalog", "remove", "--index", index_copy, first_id], capsys)
    assert_one_sentence(code, err, "could not be written")


def test_defects_are_one_line_too_but_keep_their_traceback_with_verbose(monkeypatch, capsys, places):
    import sys

    main_module = sys.modules["beauty_app.cli.main"]  # the package re-exports main(), the function

    def broken(args):
        raise TypeError("an internal bug")

    parser_args = ["score", "--truth", places["truth"], "--ranking", places["truth"]]
    real_parse = main_module.parse_args

    def parse(argv=None):
        args = real_parse(argv)
        args.func = broken
        return args

    monkeypatch.setattr(main_module, "parse_args", parse)
    code = main_module.main(parser_args)
    err = capsys.readouterr().err
    assert code == 1 and "internal error: TypeError: an internal bug" in err and "Traceback" not in err
    with pytest.raises(TypeError):
        main_module.main([*parser_args, "-v"])


def test_user_sentence_leaves_defects_alone():
    assert user_sentence(KeyError("x")) is None
    assert user_sentence(RuntimeError("shape mismatch")) is None
    assert "disk is full" in user_sentence(OSError(errno.ENOSPC, "No space left on device"))
