"""Mining a labelled set from catalog descriptions: keyword files, matching rules, TF-IDF proposal,
the output folder the trainer reads, and the user errors."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from beauty_app.catalog_io import read_catalog
from beauty_app.cli import dataset as dataset_cli
from beauty_app.errors import CatalogError, UserError
from beauty_app.jobs import Cancelled, JobControl
from beauty_app.training.keywords import KeywordSet, assign_categories, match_categories
from beauty_app.training.mining import MinedDataset, mine_dataset
from beauty_app.training.propose import propose_keywords

PAPER_CATEGORIES = ("lipstick", "facial cleanser", "sunscreen", "eye shadow", "razor", "mask", "hair dryer",
                    "eye mask", "moisturizer", "spray")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from beauty_app.demo.products import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo"), n_products=60, seed=0, image_size=64, query_fraction=0.0)


@pytest.fixture(scope="module")
def demo_rows(demo):
    catalog = read_catalog(demo.catalog_csv)
    return [e.description for e in catalog.entries], [e.category for e in catalog.entries]


@pytest.fixture(scope="module")
def mined(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("mined") / "set"
    return mine_dataset(demo.catalog_csv, out, min_images=3, per_category=6, seed=1, workers=2)


def purity(labels, truth) -> tuple[float, int]:
    """Share of labelled items whose true kind is the majority kind of their mined label."""
    by_label: dict[str, Counter] = defaultdict(Counter)
    for label, kind in zip(labels, truth):
        if label is not None:
            by_label[label][kind] += 1
    labelled = sum(sum(c.values()) for c in by_label.values())
    majority = sum(c.most_common(1)[0][1] for c in by_label.values())
    return majority / labelled, len(by_label)


# --- keyword files --------------------------------------------------------------------------------


def test_keyword_file_round_trip_normalises_and_keeps_order(tmp_path):
    text = (
        "# my categories\n"
        "Lipstick: Lipstick, lip stick,  LIP-COLOUR   # trailing comment\n"
        "\n"
        "eye shadow: eyeshadow, Eye Shadow, eye shadow\n"
        "mascara:\n"
        "!ignore: Razor Burn\n"
    )
    kw = KeywordSet.parse(text)
    assert kw.names == ["lipstick", "eye shadow", "mascara"]
    assert kw.categories["lipstick"] == ["lipstick", "lip stick", "lip colour"]
    assert kw.categories["eye shadow"] == ["eyeshadow", "eye shadow"]  # duplicate kept once
    assert kw.categories["mascara"] == ["mascara"]  # no synonyms: the name itself
    assert kw.ignore == ["razor burn"]

    path = tmp_path / "kw.txt"
    kw.save(path, header="edited by hand")
    assert path.read_text().startswith("# edited by hand\n")
    again = KeywordSet.load(path)
    assert again == kw


@pytest.mark.parametrize("text, line, words", [
    ("lipstick: lipstick\nmascara mascara\n", 2, "expected"),
    ("lipstick: lipstick\n\nblush: rouge, lipstick\n", 3, "line 1"),
    ("a: x\nb: y: z\n", 2, "two"),
    ("a: x\na: y\n", 2, "already listed"),
    ("!exclude: foo\n", 1, "unknown directive"),
    ("lipstick: lipstick\n!ignore: lipstick\n", 2, "synonym"),
    (": lipstick\n", 1, "empty"),
])
def test_malformed_keyword_lines_name_their_line(tmp_path, text, line, words):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(CatalogError) as info:
        KeywordSet.load(path)
    message = str(info.value)
    assert f"line {line}:" in message and words in message and str(path) in message
    assert message.count(".") >= 1 and "\n" not in message


def test_missing_or_empty_keyword_file_is_a_user_error(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        KeywordSet.load(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(CatalogError, match="no categories"):
        KeywordSet.load(tmp_path / "empty.txt")


def test_builtin_keywords_hold_the_papers_categories():
    kw = KeywordSet.default()
    assert len(kw) == 44
    assert set(PAPER_CATEGORIES) <= set(kw.names)
    assert "fragrance" in kw.categories["perfume"] and "spf" in kw.categories["sunscreen"]


# --- matching rules ---------------------------------------------------------------------------------


@pytest.fixture()
def small_kw():
    return KeywordSet({
        "lipstick": ["lipstick", "lip colour"],
        "mask": ["mask", "sheet mask"],
        "eye mask": ["eye mask", "sleep mask"],
        "perfume": ["perfume", "fragrance", "eau de parfum", "eau de parfum spray"],
        "spray": ["spray"],
        "sunscreen": ["sunscreen", "spf"],
    }, ignore=["lipstick case"])


def test_matching_is_on_whole_words_and_phrases(small_kw):
    labels = assign_categories([
        "ACME Velvet LIPSTICKS, set of 3",  # case and plural
        "Glipstickz Rose Balm",  # only inside another word
        "Acme Lip-Colour No. 5",  # hyphen = space inside a phrase
        "Acme Lip, Colour No. 5",  # a phrase does not run across a comma
        "Acme Lipstick Case, leather",  # ignore phrase
        "Eau de Parfum, 50 ml",
        "",
    ], small_kw)
    assert labels == ["lipstick", None, "lipstick", None, None, "perfume", None]


def test_the_longest_phrase_wins_and_two_categories_are_ambiguous(small_kw):
    descriptions = [
        "Silk Sleeping Eye Mask",  # 'eye mask' contains 'mask': eye mask only
        "Hydrating Sheet Mask 5 pack",  # longer synonym of the same category
        "Eau de Parfum Spray 100 ml",  # 'eau de parfum spray' beats 'spray'
        "Eye Mask and Face Mask Set",  # two separate hits: ambiguous
        "Lipstick with SPF 15",  # two categories: ambiguous
        "Sunscreen, Fragrance Free",  # negated word does not count
        "Sunscreen free of fragrance",
        "Setting Spray",
    ]
    assert match_categories(descriptions, small_kw)[3] == ("eye mask", "mask")
    assert assign_categories(descriptions, small_kw) == [
        "eye mask", "mask", "perfume", None, None, "sunscreen", "sunscreen", "spray"]


def test_keyword_set_rejects_a_synonym_in_two_categories():
    with pytest.raises(CatalogError, match="both"):
        KeywordSet({"a": ["lip colour"], "b": ["Lip-Colour"]})


# --- TF-IDF proposal --------------------------------------------------------------------------------


def test_proposal_recovers_the_demo_kinds(demo_rows):
    descriptions, truth = demo_rows
    kw = propose_keywords(descriptions, n_categories=44, min_images=3)
    labels = assign_categories(descriptions, kw)
    pure, n_found = purity(labels, truth)
    assert pure >= 0.9
    assert n_found >= 8
    assert sum(label is not None for label in labels) >= 0.7 * len(labels)
    assert {"lipstick", "sunscreen", "eye shadow", "razor"} <= set(kw.names)
    assert all(sum(label == name for label in labels) >= 3 for name in kw.names)


def test_proposal_without_vocabulary_is_data_driven(demo_rows):
    descriptions, truth = demo_rows
    kw = propose_keywords(descriptions, n_categories=30, min_images=3, vocabulary=None)
    labels = assign_categories(descriptions, kw)
    pure, n_found = purity(labels, truth)
    assert pure >= 0.9 and n_found >= 8
    assert len(kw) <= 30
    # Marketing words and claims shared by every kind never become categories.
    assert not {"fresh", "gift", "free", "new", "women", "skin"} & set(kw.names)


def test_proposal_finds_new_kinds_and_skips_brands_and_attributes():
    brands = ["Acme", "Zorbo", "Kilo", "Mira", "Tesso", "Vantu"]
    docs = []
    for i in range(24):
        brand = brands[i % len(brands)]
        kind = ("Toothbrush", "Lipstick", "Hair Dryer")[i % 3]
        extra = " Waterproof" if kind == "Lipstick" and i % 2 else ""
        docs.append(f"{brand} Ultra Soft {kind}{extra}, Pack of {i % 4 + 1}, New")
    kw = propose_keywords(docs, n_categories=10, min_images=4)
    assert set(kw.names) == {"toothbrush", "lipstick", "hair dryer"}
    assert kw.categories["toothbrush"] == ["toothbrush"]
    assert kw.categories["lipstick"][0] == "lipstick"  # known: the built-in synonyms come along


def test_proposal_with_nothing_to_count_is_a_user_error():
    with pytest.raises(CatalogError):
        propose_keywords(["123", "45 ml", ""], min_images=2)
    with pytest.raises(CatalogError, match="at least 5"):
        propose_keywords(["Acme Lipstick", "Acme Lipstick, red", "Zorbo Mascara"], min_images=5)


# --- the mined dataset ------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_mined_folder_holds_the_documented_files(mined, demo_rows):
    root = mined.root
    names = {p.name for p in root.iterdir()}
    assert {"classes.txt", "train.csv", "val.csv", "stats.json", "report.md", "keywords.txt",
            "proposed_keywords.txt"} <= names
    classes = (root / "classes.txt").read_text().splitlines()
    assert classes == mined.classes == sorted(classes) and len(classes) >= 8

    train, val = read_rows(root / "train.csv"), read_rows(root / "val.csv")
    assert list(train[0]) == ["id", "path", "label", "category", "description"]
    for row in train + val:
        assert Path(row["path"]).is_absolute() and Path(row["path"]).is_file()
        assert classes[int(row["label"])] == row["category"]
    assert not {r["id"] for r in train} & {r["id"] for r in val}

    # Stratified: every class is in val, about 20 % of each class, at most 6 images per class.
    per_class = Counter(r["category"] for r in train + val)
    val_class = Counter(r["category"] for r in val)
    assert set(val_class) == set(classes)
    for name in classes:
        assert 3 <= per_class[name] <= 6
        assert val_class[name] == max(1, round(per_class[name] * 0.2))

    # Labels agree with the demo's true kinds (which mining did not look at).
    descriptions, truth = demo_rows
    kind_of = dict(zip(descriptions, truth))
    pure, _ = purity([r["category"] for r in train + val], [kind_of[r["description"]] for r in train + val])
    assert pure >= 0.9

    stats = json.loads((root / "stats.json").read_text())
    assert stats["classes"] == classes and stats["keyword_source"] == "tfidf"
    assert stats["split"] == {"train": len(train), "val": len(val), "val_fraction": 0.2}
    assert stats["stats_images"] == len(train) + len(val)
    assert stats["settings"]["per_category"] == 6 and stats["settings"]["seed"] == 1
    assert sum(c["train"] + c["val"] for c in stats["counts"].values()) == len(train) + len(val)

    report = (root / "report.md").read_text()
    for name in classes:
        assert f"### {name}" in report
    assert "ambiguous" in report and "name no category" in report
    assert KeywordSet.load(root / "keywords.txt").names[: len(classes)]  # a valid keyword file


def test_mean_and_std_are_plausible_for_a_white_background_catalog(mined):
    assert all(0.6 < m < 1.0 for m in mined.mean)
    assert all(0.05 < s < 0.45 for s in mined.std)


def test_load_round_trips_the_dataset(mined):
    loaded = MinedDataset.load(mined.root)
    assert loaded.classes == mined.classes
    assert loaded.train == mined.train and loaded.val == mined.val
    assert loaded.mean == mined.mean and loaded.std == mined.std
    assert loaded.stats == mined.stats and loaded.skipped == []
    assert loaded.num_classes == len(mined.classes)


def test_same_seed_same_dataset_and_the_keywords_file_reproduces_it(demo, mined, tmp_path):
    again = mine_dataset(demo.catalog_csv, tmp_path / "again", min_images=3, per_category=6, seed=1,
                         keywords=mined.root / "keywords.txt", workers=1)
    assert [s.id for s in again.train] == [s.id for s in mined.train]
    assert [s.id for s in again.val] == [s.id for s in mined.val]
    assert again.stats["keyword_source"].endswith("keywords.txt")
    assert not (tmp_path / "again" / "proposed_keywords.txt").exists()


def test_unreadable_images_are_replaced_and_reported(demo, tmp_path):
    # A copy of the demo whose lipstick images are all corrupt except those needed to keep the class.
    copy = tmp_path / "demo"
    shutil.copytree(demo.root, copy)
    catalog = read_catalog(copy / "catalog.csv")
    lipsticks = [e for e in catalog.entries if "lipstick" in e.description.lower()]
    broken = lipsticks[0]
    broken.path.write_bytes(b"not a jpeg at all")
    ds = mine_dataset(copy / "catalog.csv", tmp_path / "out", keywords="default", min_images=2, workers=1)
    ids = {s.id for s in ds.train + ds.val}
    assert broken.id not in ids
    assert {e.id for e in lipsticks[1:]} <= ids  # the rest of the class is kept
    assert ds.stats["dropped"]["unreadable"] == 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert broken.id in report and "could not be read" in report


def test_progress_is_reported_and_cancel_writes_nothing(demo, tmp_path):
    events = []
    job = JobControl(events.append, min_interval_s=0.0)
    mine_dataset(demo.catalog_csv, tmp_path / "a", keywords="default", min_images=3, per_category=3, job=job)
    assert events and {e.stage for e in events} == {"mine"}
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert events[-1].done == events[-1].total

    job = JobControl(lambda e: job.cancel() if e.done > 20 else None, min_interval_s=0.0)
    with pytest.raises(Cancelled):
        mine_dataset(demo.catalog_csv, tmp_path / "b", keywords="default", min_images=3, job=job)
    assert not (tmp_path / "b" / "stats.json").exists()


def test_user_errors_are_one_sentence(demo, tmp_path):
    no_text = tmp_path / "plain.csv"
    no_text.write_text("id,path\nc000000,catalog/c000000.jpg\n")
    shutil.copytree(demo.root / "catalog", tmp_path / "catalog")
    with pytest.raises(CatalogError, match="no product descriptions"):
        mine_dataset(no_text, tmp_path / "out")

    keywords = tmp_path / "kw.txt"
    keywords.write_text("toothbrush: toothbrush\n")
    with pytest.raises(CatalogError, match="No category"):
        mine_dataset(demo.catalog_csv, tmp_path / "out", keywords=keywords)

    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        mine_dataset(demo.catalog_csv, tmp_path / "file")
    with pytest.raises(UserError, match="validation fraction"):
        mine_dataset(demo.catalog_csv, tmp_path / "out", val_fraction=1.0)
    with pytest.raises(CatalogError, match="not a mined dataset"):
        MinedDataset.load(tmp_path)


def test_cli_dataset_mine_prints_json_summary(demo, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    dataset_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dataset", "mine", "--catalog", str(demo.catalog_csv), "--out", str(tmp_path / "o"),
                              "--keywords", "default", "--min-images", "3", "--per-category", "5", "--json", "-q"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["keyword_source"] == "default" and summary["train"] + summary["val"] > 0
    assert Path(summary["report"]).is_file() and len(summary["mean"]) == 3

    args = parser.parse_args(["dataset", "mine", "--catalog", str(demo.catalog_csv), "--out", str(tmp_path / "p"),
                              "--min-images", "3", "-q"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("Mined ") and "report.md" in out and "RGB mean" in out
