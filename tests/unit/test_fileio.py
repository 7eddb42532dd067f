"""Atomic writes and the spreadsheet-safe CSV writer."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beauty_app import fileio
from beauty_app.errors import UserError
from beauty_app.fileio import (atomic_write_bytes, atomic_write_text, ends_inside_quotes, escape_csv_cell,
                               unescape_csv_cell, write_csv)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+41 555", "'+41 555"),
        ("-x", "'-x"),
        ("@foo", "'@foo"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain", "plain"),
        ("\uff1dHYPERLINK(1)", "'\uff1dHYPERLINK(1)"),  # fullwidth ＝, a formula in CJK spreadsheets
        ("\ufe66x", "'\ufe66x"),  # small ﹦
        ("\uff0b1", "'\uff0b1"),  # fullwidth ＋
        ("\uff0dx", "'\uff0dx"),  # fullwidth －
        ("\uff20x", "'\uff20x"),  # fullwidth ＠
        ("x\uff1d1", "x\uff1d1"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-0.5, "-0.5"),
        (-3, "-3"),
        (True, "True"),
    ],
)
def test_escape_csv_cell(value: object, expected: str) -> None:
    assert escape_csv_cell(value) == expected
    if isinstance(value, str):
        assert unescape_csv_cell(escape_csv_cell(value)) == value


def test_escape_numpy_numbers_plain() -> None:
    np = pytest.importorskip("numpy")
    assert escape_csv_cell(np.float32(-1.5)) == "-1.5"
    assert escape_csv_cell(np.int64(-2)) == "-2"


def test_write_csv_escapes_every_cell(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    write_csv(path, ["query", "=score"], [["=evil()", 0.25], ["ok", -1.0], ["@x", None]])
    assert path.read_text(encoding="utf-8") == "query,'=score\n'=evil(),0.25\nok,-1.0\n'@x,\n"


def test_write_csv_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing"):
        write_csv(tmp_path / "missing" / "x.csv", ["a"], [])


def test_atomic_write_replaces_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    atomic_write_bytes(path, b"one")
    path.chmod(0o640)
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    atomic_write_text(tmp_path / "t.txt", "héllo\r\n")
    assert (tmp_path / "t.txt").read_bytes() == "héllo\r\n".encode()


def test_atomic_write_new_file_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o644


def test_atomic_write_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "index.json"
    atomic_write_text(path, "old")

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["index.json"]


def test_atomic_write_through_symlink_keeps_link(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    os.symlink(real, link)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


@pytest.mark.parametrize(("text", "inside"), [
    ('a,"b', True), ('"a', True), ('a,"b""', True), ('a,"b"""', False), ('a,"b\nc",d\n', False),
    ('a,b"c,d', False), ('a,"b"c,"d', True), ('a,"b"c,d"', False), ("", False), ('a\n"b\n', True),
])
def test_ends_inside_quotes_follows_the_csv_module(text: str, inside: bool) -> None:
    import csv

    assert ends_inside_quotes(text) is inside
    # The oracle: a line added after the text is swallowed into the last cell exactly when it is inside quotes.
    rows = list(csv.reader(io.StringIO(text + "\nSENTINEL\n", newline="")))
    assert (rows[-1] != ["SENTINEL"]) is inside


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab,"\n\r ', max_size=30))
def test_ends_inside_quotes_agrees_with_the_csv_module_on_any_text(text: str) -> None:
    import csv

    rows = list(csv.reader(io.StringIO(text + "\nSENTINEL\n", newline="")))
    assert ends_inside_quotes(text) is (rows[-1] != ["SENTINEL"])
