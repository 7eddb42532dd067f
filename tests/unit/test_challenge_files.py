"""The challenge's truth and ranking (submission) files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from beauty_app.challenge_files import read_ranking, read_truth, write_ranking
from beauty_app.errors import CatalogError


def test_read_truth_challenge_format(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    text = "\ufeffValidation Image ID,Training Image ID\r\nq1,c1\r\n\r\n q2 , c2 ,c3,,c2, c4\r\nq3,c5,,\r\n"
    path.write_bytes(text.encode("utf-8"))
    assert read_truth(path) == {"q1": ["c1"], "q2": ["c2", "c3", "c4"], "q3": ["c5"]}


def test_read_truth_header_rule(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("query_id,relevant\nsquid,c1\n")
    assert read_truth(path) == {"squid": ["c1"]}
    path.write_text("squid,c1\nid7,c2\n")  # no header: "squid" is an id
    assert read_truth(path) == {"squid": ["c1"], "id7": ["c2"]}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("q1,a\nq2,b\nq1,c\n", "twice"),
        ("q1,a\nq2\n", "without relevant ids"),
        ("q1,a\n,b,c\n", "no query id"),
        ("Validation Image ID,Training Image ID\n", "no queries"),
        ("", "empty"),
    ],
)
def test_read_truth_errors(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "truth.csv"
    path.write_text(text)
    with pytest.raises(CatalogError, match=words):
        read_truth(path)
    with pytest.raises(CatalogError, match="does not exist"):
        read_truth(tmp_path / "missing.csv")


def test_read_ranking_keeps_repeats_and_order(tmp_path: Path) -> None:
    path = tmp_path / "sub.csv"
    path.write_bytes("\ufeffid,ranked\nq1,c3,c1,c3,,c2\nq2\n".encode())
    assert read_ranking(path) == {"q1": ["c3", "c1", "c3", "c2"], "q2": []}
    path.write_text("q1,a\nq1,b\n")
    with pytest.raises(CatalogError, match="twice"):
        read_ranking(path)


def test_write_read_ranking_round_trip(tmp_path: Path) -> None:
    rankings = {
        "q1": ["c1", "c2", "c3", "c4", "c5", "c6", "c7"],
        "-q2": ["=cmd|' /C calc'!A0", "+1", "@SUM(A1)", 'has,"comma', "ünïcode"],
        "q3": [],
    }
    path = tmp_path / "out" / "ranking.csv"
    path.parent.mkdir()
    write_ranking(path, rankings)
    assert read_ranking(path) == rankings
    raw = path.read_text(encoding="utf-8")
    lines = raw.splitlines()
    assert lines[0] == "q1,c1,c2,c3,c4,c5,c6,c7"  # no header
    assert lines[1].startswith("'-q2,'=cmd|")
    assert ",'+1,'@SUM(A1)," in lines[1]
    assert sorted(os.listdir(path.parent)) == ["ranking.csv"]  # no temp file left behind


@pytest.mark.parametrize("reader", [read_truth, read_ranking])
def test_an_unterminated_quote_is_refused_with_its_line(tmp_path: Path, reader) -> None:
    """Before: the quote swallowed the following rows, so `score` silently lost their queries."""
    path = tmp_path / "f.csv"
    path.write_text('query_id,ids\nq1,c1\nq2,"c2\nq3,c3\nq4,c4\n')
    with pytest.raises(CatalogError, match=r"quote opened on line 3 that is never closed"):
        reader(path)
    path.write_text("q1,c1\nq2,\"c2\n" + "".join(f"q{i},c{i}\n" for i in range(3, 30_000)))
    with pytest.raises(CatalogError, match=r"quote opened on line 2 that is never closed"):
        reader(path)
    path.write_text('q1,"c1"\nq2,c"2\nq3,"c,3"\n')
    assert reader(path)["q3"] == ["c,3"]
