"""`beauty-app --self-test`: a real search with the shipped model, in the user's cache, leaving nothing."""

from __future__ import annotations

import re

import pytest

from beauty_app.cli import main
from beauty_app.paths import cache_dir, demo_checkpoint


@pytest.mark.skipif(not demo_checkpoint().is_file(), reason="the shipped demo model is not in model_store/")
def test_self_test_searches_the_demo_catalog_and_cleans_up(capsys):
    assert main(["--self-test"]) == 0
    out = capsys.readouterr().out
    assert "Self-test passed" in out
    hits = re.findall(r"^\s+[ *](\d)\. (\d\.\d{4})  (c\d{6})", out, flags=re.MULTILINE)
    assert [int(rank) for rank, _, _ in hits] == [1, 2, 3, 4, 5]
    scores = [float(score) for _, score, _ in hits]
    assert scores == sorted(scores, reverse=True)
    # The shipped MANet finds the query's own product first on the demo data.
    assert re.search(r"^\s+\*1\. ", out, flags=re.MULTILINE)
    # Worked in a temporary folder under the user's cache and removed it.
    assert str(cache_dir()) in out
    assert not list(cache_dir().glob("self-test-*"))


def test_self_test_fails_with_a_reason_when_shipped_files_are_missing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BEAUTYLENS_MODEL_STORE", str(tmp_path / "no-store"))
    assert main(["--self-test"]) == 1
    err = capsys.readouterr().err
    assert "Self-test FAILED" in err and "demo model" in err and "no-store" in err
    assert not list(cache_dir().glob("self-test-*"))


@pytest.mark.parametrize("argv, fragment", [
    ([], "required: COMMAND"),
    (["--self-test", "score", "--truth", "t.csv", "--ranking", "r.csv"], "--self-test takes no COMMAND"),
])
def test_a_command_is_still_required_without_self_test(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert fragment in capsys.readouterr().err
