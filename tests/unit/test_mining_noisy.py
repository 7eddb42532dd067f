"""Mining a noisy catalog: fragments of names cut by fixed-length descriptions, and proper names
spread over visually unrelated products (visual coherence with a backbone's features)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from beauty_app.training.coherence import Coherence, backbone_embedder, category_coherence, drop_incoherent
from beauty_app.training.keywords import PhraseMatcher, split_clauses
from beauty_app.training.propose import propose_keywords

FRAGMENTS = ("rosew", "rosewo", "rosewood bl", "hydr", "hydra lipstic")


def cut_catalog_descriptions(n: int = 240, seed: int = 0) -> list[str]:
    """Titles cut at 10-25 characters: a name ("Rosewood Blush") alone in a third of them, product kinds
    after a product line ("Hydra") in the rest, so the cuts leave "rosew", "rosewo", "hydr", "lipstic"."""
    rng = np.random.default_rng(seed)
    kinds = ["Lipstick", "Face Cream", "Shampoo", "Mascara"]
    brands = ["Velo", "Tarima", "Obsidia", "Kelp", "Miru", "Sanna"]
    out = []
    for i in range(n):
        brand = brands[rng.integers(len(brands))]
        title = (f"{brand} Rosewood Blush, 30 ml, Gift Idea" if i % 3 == 0
                 else f"{brand} Hydra {kinds[i % 4]}, 50 ml, Paraben Free")
        out.append(title[:int(rng.integers(10, 26))])
    return out


@pytest.mark.parametrize("vocabulary", [None, "default"])
def test_fragments_join_the_name_they_were_cut_from(vocabulary):
    descriptions = cut_catalog_descriptions()
    assert sum(d.lower().endswith(("rosew", "rosewo")) for d in descriptions) >= 10  # the noise is there
    kw = propose_keywords(descriptions, n_categories=20, min_images=5, vocabulary=vocabulary)
    names = list(kw.categories)
    assert not set(FRAGMENTS) & set(names)
    for a in names:
        for b in names:
            assert a == b or not b.startswith(a), f"{a!r} is a fragment of {b!r}"
    if vocabulary is None:
        # merged, not lost: the cut descriptions keep the label of the whole name
        assert {"rosew", "rosewo"} <= set(kw.categories["rosewood blush"])
        matcher = PhraseMatcher(kw)
        cut = [d for d in descriptions if d.lower().endswith("rosewo")]
        assert cut and all(matcher.match(split_clauses(d)) == {"rosewood blush"} for d in cut)
    else:
        assert "lipstic" in kw.categories["lipstick"]


def test_a_word_that_also_stands_inside_titles_is_no_fragment():
    # "lip" ends most of its descriptions and begins the more frequent "lipstick", but it also stands
    # inside titles ("Lip Balm"): a word of its own, which a fixed-length cut never makes.
    descriptions = ([f"Brand{i % 5} Tinted Lip" for i in range(12)] + [f"Brand{i} Lip Balm Stick" for i in range(3)]
                    + [f"Brand{i % 7} Matte Lipstick" for i in range(30)])
    kw = propose_keywords(descriptions, n_categories=5, min_images=5, vocabulary=None)
    lipstick = next(name for name, synonyms in kw.categories.items() if "lipstick" in synonyms)
    assert "lip" not in kw.categories[lipstick] and "tinted lip" not in kw.categories[lipstick]
    assert any(("lip" in synonyms or "tinted lip" in synonyms) for synonyms in kw.categories.values())


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory):
    from beauty_app.demo.products import generate_demo

    root = tmp_path_factory.mktemp("noisy")
    generate_demo(root, n_products=42, seed=3, image_size=64, workers=1)
    rows = list(csv.DictReader((root / "catalog.csv").open(encoding="utf-8")))
    return root, rows


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    import torch

    from beauty_app.models.checkpoint import save_checkpoint
    from beauty_app.models.manet import MANet

    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    torch.manual_seed(0)
    save_checkpoint(path, MANet("tiny", 0, attention="none"), class_names=[], input_size=64, mean=(0.5,) * 3,
                    std=(0.25,) * 3, train_config={"note": "untrained tiny stand-in"})
    return backbone_embedder(str(path), input_size=64)


def test_coherence_ranks_a_product_kind_above_a_name_spread_over_random_images(demo_catalog, tiny_embedder):
    root, rows = demo_catalog
    paths = [root / row["path"] for row in rows]
    kind = [root / row["path"] for row in rows if row["category"] == "lipstick"]
    rng = np.random.default_rng(1)
    name = [paths[i] for i in rng.choice(len(paths), len(kind), replace=False)]
    scores = category_coherence({"lipstick": kind, "rosewood": name}, paths, tiny_embedder)
    assert scores["lipstick"].images == len(kind) >= 3
    assert scores["lipstick"].score > scores["rosewood"].score
    assert scores["lipstick"].baseline == scores["rosewood"].baseline


def test_drop_incoherent_keeps_unmeasured_and_coherent_categories():
    from beauty_app.training.keywords import KeywordSet

    kw = KeywordSet({"lipstick": ["lipstick"], "rosewood": ["rosewood"], "jar": ["jar"]})
    scores = {"lipstick": Coherence(5, 0.9, 0.5, 0.8), "rosewood": Coherence(5, 0.5, 0.5, 0.0)}
    kept, dropped = drop_incoherent(kw, scores, min_score=0.1)
    assert dropped == ["rosewood"] and list(kept.categories) == ["lipstick", "jar"]


def test_mine_drops_a_name_spread_over_unrelated_products(demo_catalog, tmp_path):
    from beauty_app.training.mining import mine_dataset

    # The off-the-shelf ImageNet backbone, as `dataset mine --coherence-model` uses it (tiny images).
    embedder = backbone_embedder("imagenet:efficientnet_lite0", input_size=64)

    root, rows = demo_catalog
    # Every fourth product is re-titled with a name only ("Rosewood Blossom ..."), whatever its kind.
    catalog = tmp_path / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "path", "description"])
        writer.writeheader()
        for i, row in enumerate(rows):
            description = f"Rosewood Blossom No. {i}, Gift Idea" if i % 4 == 0 else row["description"]
            writer.writerow({"id": row["id"], "path": str(root / row["path"]), "description": description})
    ds = mine_dataset(catalog, tmp_path / "mined", n_categories=30, min_images=3, workers=1,
                      coherence=embedder, allow_outside_root=True)
    stats = json.loads((tmp_path / "mined" / "stats.json").read_text())
    assert "rosewood blossom" in stats["coherence"]
    scores = {name: entry["score"] for name, entry in stats["coherence"].items()}
    assert "rosewood blossom" in stats["dropped"]["incoherent"]
    assert min(scores, key=scores.get) == "rosewood blossom"  # below every product kind
    assert "rosewood blossom" not in ds.classes and len(ds.classes) >= 2
    assert all(stats["coherence"][name]["score"] > stats["coherence"]["rosewood blossom"]["score"]
               for name in ds.classes)
    assert "Visual coherence" in (tmp_path / "mined" / "report.md").read_text()
    assert Path(ds.root / "proposed_keywords.txt").read_text().count("rosewood") == 0
