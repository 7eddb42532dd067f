"""Title labels (issue 18): multi-label description n-grams in `dataset mine`, the MANet title head, its
loss, and checkpoints and mined folders with and without a title vocabulary."""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict

import pytest
import torch

from beauty_app.errors import CatalogError, ModelError
from beauty_app.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from beauty_app.models.manet import MANet
from beauty_app.training.keywords import KeywordSet, match_categories
from beauty_app.training.losses import category_loss, title_loss
from beauty_app.training.mining import NO_CATEGORY, MinedDataset, mine_dataset
from beauty_app.training.titles import title_labels
from tests.unit.test_mining_noisy import cut_catalog_descriptions


def assert_no_fragment_with_the_same_images(images_of: dict[str, set]) -> None:
    """No name is a prefix (or any sub-string) of another name with exactly the same images."""
    for short, images in images_of.items():
        for long, others in images_of.items():
            if short != long and short in long:
                assert images != others, f"{short!r} is a fragment of {long!r} with the same images"


# --- the vocabulary -------------------------------------------------------------------------------


def test_fragments_of_cut_descriptions_join_the_name_and_duplicates_go():
    descriptions = cut_catalog_descriptions()
    titles = title_labels(descriptions, min_images=5)
    vocabulary = set(titles.vocabulary)
    assert {"rosewood", "rosewood blush", "hydra lipstick"} <= vocabulary
    assert not {"rosew", "rosewo", "rosewood bl", "hydra lipstic", "lipstic"} & vocabulary
    assert titles.fragments["rosew"] == "rosewood" and titles.fragments["hydra lipstic"] == "hydra lipstick"
    # A cut-off description keeps the label of the whole name.
    cut = [i for i, d in enumerate(descriptions) if d.lower().endswith("rosew")]
    assert cut and all(titles.vocabulary.index("rosewood") in titles.per_description[i] for i in cut)
    images_of: dict[str, set] = defaultdict(set)
    for i, found in enumerate(titles.per_description):
        for label in found:
            images_of[titles.vocabulary[label]].add(i)
    assert_no_fragment_with_the_same_images(images_of)
    assert all(len(images_of[name]) == count for name, count in zip(titles.vocabulary, titles.images))
    # "hydra" is in two thirds of the titles: it tells nothing apart.
    assert "hydra" not in vocabulary
    assert titles.images == sorted(titles.images, reverse=True)


def test_vocabulary_size_and_frequency_limits():
    descriptions = cut_catalog_descriptions()
    assert len(title_labels(descriptions, max_labels=5, min_images=5).vocabulary) == 5
    assert all(n >= 40 for n in title_labels(descriptions, min_images=40).images)
    nothing = title_labels(["123", "45 ml", ""], min_images=2)
    assert nothing.vocabulary == [] and nothing.per_description == [(), (), ()]


def test_sub_string_with_the_same_images_is_dropped():
    # "acme" always comes as "acme velvet": one label, the longer one.
    descriptions = [f"Acme Velvet {kind} No {i}" for i, kind in enumerate(["Lipstick", "Mascara"] * 6)]
    descriptions += [f"Zorbo {kind}" for kind in ["Shampoo", "Razor"] * 6]
    vocabulary = title_labels(descriptions, min_images=3).vocabulary
    assert "acme velvet" in vocabulary and "acme" not in vocabulary and "velvet" not in vocabulary
    assert "acme velvet lipstick" in vocabulary and "velvet lipstick" not in vocabulary


# --- mining a noisy catalog -----------------------------------------------------------------------


KINDS = ("Lipstick", "Mascara", "Face Cream", "Shampoo", "Razor", "Perfume")


@pytest.fixture(scope="module")
def noisy_catalog(tmp_path_factory):
    """A demo catalog re-titled the messy way: titles cut at a fixed length, titles naming two kinds
    ("Lipstick and Mascara Set"), and names without any kind; a third keeps its plain title."""
    from beauty_app.demo.products import generate_demo

    root = tmp_path_factory.mktemp("noisy-titles")
    demo = generate_demo(root / "demo", n_products=30, seed=2, image_size=64, query_fraction=0.0)
    rows = list(csv.DictReader((demo.root / "catalog.csv").open(encoding="utf-8")))
    brands = ("Velo", "Tarima", "Obsidia")
    catalog = root / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "path", "description"])
        writer.writeheader()
        for i, row in enumerate(rows):
            brand, kind, other = brands[i % 3], KINDS[i % 6], KINDS[(i + 1) % 6]
            title = f"{brand} Rosewood {kind}"
            description = [f"{title} Gift Set with {other}, 50 ml",  # two kinds: ambiguous
                           title[:len(title) - len(kind) + 3 + (i // 4) % 2],  # cut: "Velo Rosewood Mas(c)"
                           f"{brand} Rosewood Edition No. {i}",  # a name, no kind
                           f"{title}, 30 ml"][i % 4]
            writer.writerow({"id": row["id"], "path": str(demo.root / row["path"]), "description": description})
    return catalog, len(rows)


@pytest.fixture(scope="module")
def mined_both_ways(noisy_catalog, tmp_path_factory):
    catalog, _ = noisy_catalog
    out = tmp_path_factory.mktemp("mined-titles")
    keywords = KeywordSet({kind.lower(): [kind.lower()] for kind in KINDS})
    common = dict(keywords=keywords, min_images=3, workers=1, allow_outside_root=True, seed=4)
    return (mine_dataset(catalog, out / "paper", **common),
            mine_dataset(catalog, out / "titles", title_labels=300, **common))


def test_mining_with_title_labels_keeps_most_images_where_the_paper_rule_drops_many(noisy_catalog,
                                                                                     mined_both_ways):
    _, n_images = noisy_catalog
    paper, titled = mined_both_ways
    assert len(paper.train) + len(paper.val) < 0.5 * n_images  # the paper's rule drops most of it
    kept = len(titled.train) + len(titled.val)
    assert kept > 0.8 * n_images
    stats = titled.stats
    assert stats["kept"]["with_category"] + stats["kept"]["titles_only"] == kept
    assert stats["kept"]["with_category"] + stats["kept"]["titles_only"] + stats["kept"]["dropped"] == n_images
    # Images with one category keep it; the rest have none and still have title labels.
    assert stats["kept"]["with_category"] == len(paper.train) + len(paper.val)
    for sample in titled.train + titled.val:
        if sample.label == NO_CATEGORY:
            assert sample.category == "" and sample.titles
        else:
            assert titled.classes[sample.label] == sample.category
    assert {s.label for s in titled.val} >= {NO_CATEGORY} and titled.classes == paper.classes
    report = (titled.root / "report.md").read_text(encoding="utf-8")
    assert "## Title labels" in report and f"Kept with a category: {stats['kept']['with_category']} images" in report
    assert f"title labels only (no category, ignored by the category loss): {stats['kept']['titles_only']}" in report
    assert f"| 0 | {titled.titles[0]} |" in report


def test_title_only_images_are_capped_at_the_category_budget(noisy_catalog, tmp_path):
    catalog, _ = noisy_catalog
    keywords = KeywordSet({kind.lower(): [kind.lower()] for kind in KINDS})
    ds = mine_dataset(catalog, tmp_path / "capped", keywords=keywords, n_categories=2, per_category=3, min_images=2,
                      workers=1, allow_outside_root=True, title_labels=300)
    kept = ds.stats["kept"]
    assert kept["titles_only"] == 2 * 3 == sum(s.label == NO_CATEGORY for s in ds.train + ds.val)
    assert kept["over_titles_only_cap"] > 0
    assert "over the cap of 6 such images" in (ds.root / "report.md").read_text(encoding="utf-8")


def test_mined_categories_and_title_labels_hold_no_fragments_of_one_name(noisy_catalog, tmp_path):
    catalog, _ = noisy_catalog
    ds = mine_dataset(catalog, tmp_path / "proposed", min_images=3, workers=1, allow_outside_root=True,
                      title_labels=300)
    samples = ds.train + ds.val
    titles_of: dict[str, set] = defaultdict(set)
    for sample in samples:
        for label in sample.titles:
            titles_of[ds.titles[label]].add(sample.id)
    cut = [s for s in samples if s.description.endswith(("Mas", "Masc"))]
    assert len(cut) >= 4 and ds.stats["titles"]["fragments_merged"] > 0  # the noise is there
    assert not {"mas", "masc", "sha", "sham", "per", "perf", "rosewood mas", "velo rosewood mas"} & set(titles_of)
    assert all(s.id in titles_of["mascara"] for s in cut)  # merged, not lost: they keep the whole name
    assert_no_fragment_with_the_same_images(titles_of)
    keywords = KeywordSet.load(ds.root / "keywords.txt")
    descriptions = [s.description for s in samples]
    categories_of: dict[str, set] = defaultdict(set)
    for sample, found in zip(samples, match_categories(descriptions, keywords)):
        for name in found:
            categories_of[name].add(sample.id)
    assert_no_fragment_with_the_same_images(categories_of)


def test_mined_folder_with_title_labels_round_trips(mined_both_ways):
    _, titled = mined_both_ways
    root = titled.root
    assert (root / "titles.txt").read_text(encoding="utf-8").splitlines() == titled.titles
    header = next(csv.reader((root / "train.csv").open(encoding="utf-8")))
    assert header == ["id", "path", "label", "category", "description", "titles"]
    stats = json.loads((root / "stats.json").read_text())
    assert stats["version"] == 2 and stats["titles"]["labels"] == len(titled.titles) > 0
    loaded = MinedDataset.load(root)
    assert loaded.has_titles and loaded.titles == titled.titles
    assert loaded.train == titled.train and loaded.val == titled.val


def test_old_mined_folder_without_title_labels_still_loads(mined_both_ways, tmp_path):
    import shutil

    paper, _ = mined_both_ways
    old = tmp_path / "old"
    shutil.copytree(paper.root, old)
    stats = json.loads((old / "stats.json").read_text())
    assert stats["version"] == 1 and "titles" not in stats and not (old / "titles.txt").exists()
    del stats["settings"]["title_labels"]  # as an earlier version wrote it
    (old / "stats.json").write_text(json.dumps(stats))
    loaded = MinedDataset.load(old)
    assert not loaded.has_titles and loaded.titles == []
    assert [s.id for s in loaded.train] == [s.id for s in paper.train]
    assert all(s.titles == () and s.label >= 0 for s in loaded.train + loaded.val)


def test_a_title_index_beyond_the_vocabulary_is_a_clear_error(mined_both_ways, tmp_path):
    import shutil

    _, titled = mined_both_ways
    copy = tmp_path / "bad"
    shutil.copytree(titled.root, copy)
    (copy / "titles.txt").write_text("only one\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="title labels"):
        MinedDataset.load(copy)


def test_cli_mines_title_labels_by_default_and_zero_turns_them_off(noisy_catalog, tmp_path, capsys):
    from beauty_app.cli import dataset as dataset_cli
    from beauty_app.training.titles import MAX_TITLE_LABELS

    assert dataset_cli.MAX_TITLE_LABELS == MAX_TITLE_LABELS
    catalog, _ = noisy_catalog
    parser = argparse.ArgumentParser()
    dataset_cli.register(parser.add_subparsers(dest="command"))
    base = ["dataset", "mine", "--catalog", str(catalog), "--min-images", "3", "--allow-outside-root", "--json", "-q",
            "--workers", "1"]
    args = parser.parse_args([*base, "--out", str(tmp_path / "on")])
    assert args.title_labels == MAX_TITLE_LABELS and args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["title_labels"] > 0 and summary["kept"]["titles_only"] > 0
    args = parser.parse_args([*base, "--out", str(tmp_path / "off"), "--title-labels", "0"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["title_labels"] == 0 and summary["kept"] is None


# --- losses and the model -------------------------------------------------------------------------


def test_category_loss_ignores_images_without_a_category():
    logits = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([2, -1, 0, -1])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert category_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    none = category_loss(logits, torch.full((4,), -1))
    assert none.item() == 0.0 and none.requires_grad  # stays in the graph (DDP)


def test_title_loss_is_bce_normalised_by_positives():
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, -3.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    assert title_loss(logits, targets).item() == pytest.approx(bce.item() / 2, rel=1e-6)
    assert title_loss(logits, torch.zeros_like(targets)).item() == pytest.approx(
        torch.nn.functional.softplus(logits).sum().item(), rel=1e-6)
    assert title_loss(torch.tensor([[5.0, -5.0]]), torch.tensor([[1.0, 0.0]])) < title_loss(
        torch.tensor([[-5.0, 5.0]]), torch.tensor([[1.0, 0.0]]))


def test_manet_title_head_gives_multi_label_logits_and_learns():
    torch.manual_seed(0)
    model = MANet("tiny", 3, attention="both", num_titles=7)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.title_logits.shape == (2, 7) and torch.isfinite(out.title_logits).all()
    # Every title starts at probability 1/7 (the loss starts near log(7), not at 7 x log(2)).
    assert torch.allclose(model.title_head.bias, torch.full((7,), -torch.log(torch.tensor(6.0)).item()))
    title_loss(out.title_logits, torch.eye(7)[:2]).backward()
    assert model.title_head.weight.grad is not None and model.title_head.weight.grad.abs().sum() > 0
    assert "titles" in model.parameter_groups() and MANet("tiny", 3).title_head is None
    assert MANet("tiny", 3)(torch.randn(1, 3, 64, 64)).title_logits is None


# --- checkpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["m.safetensors", "m.pt"])
def test_checkpoint_round_trip_with_and_without_title_vocabulary(tmp_path, name):
    torch.manual_seed(0)
    titled = MANet("tiny", 2, attention="saliency", num_titles=3)
    common = dict(class_names=["a", "b"], input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)
    path = save_checkpoint(tmp_path / f"titled-{name}", titled, title_names=["velo", "rosewood", "rosewood blush"],
                           **common)
    bundle = load_model(str(path))
    assert bundle.title_names == ["velo", "rosewood", "rosewood blush"]
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(bundle.model(images).title_logits, titled.eval()(images).title_logits)

    plain = save_checkpoint(tmp_path / f"plain-{name}", MANet("tiny", 2, attention="saliency"), **common)
    assert "title_names" not in read_checkpoint(plain)
    bundle = load_model(str(plain))
    assert bundle.title_names == [] and bundle.model.title_head is None
    with pytest.raises(ValueError, match="title"):
        save_checkpoint(tmp_path / f"wrong-{name}", titled, title_names=["only one"], **common)


def test_crafted_title_names_that_do_not_match_the_weights_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", MANet("tiny", 2, num_titles=2), class_names=["a", "b"], input_size=64,
                           mean=(0.5,) * 3, std=(0.25,) * 3, title_names=["x", "y"])
    payload = torch.load(path, weights_only=True)
    payload["title_names"] = ["x"] * 5
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="title"):
        load_model(str(tmp_path / "bad.pt"))


# --- training -------------------------------------------------------------------------------------


def test_training_with_title_labels_lowers_the_title_loss(mined_both_ways, tmp_path):
    from beauty_app.training.config import TrainConfig
    from beauty_app.training.trainer import TrainingEvents, train

    _, titled = mined_both_ways
    steps = []
    # Constant learning rate and plain catalog views: the title loss then falls steadily in 20 steps.
    config = TrainConfig(data=str(titled.root), out=str(tmp_path / "m.safetensors"), backbone="tiny", pretrained=False,
                         attention="none", iterations=20, batch_size=8, input_size=64, workers=0, checkpoint_every=0,
                         device="cpu", lr=0.05, final_lr=0.05, photo_probability=0.0, title_weight=1.0)
    result = train(config, events=TrainingEvents(on_step=steps.append))
    losses = [s.loss_title for s in steps]
    assert all(loss is not None and loss > 0 for loss in losses)
    assert sum(losses[-4:]) / 4 < 0.9 * sum(losses[:4]) / 4
    payload = read_checkpoint(result.checkpoint)
    assert payload["title_names"] == titled.titles
    assert payload["metrics"]["title_labels"] == len(titled.titles)
    # Accuracy counts only the validation images that have a category.
    assert payload["metrics"]["val_images"] == sum(s.label >= 0 for s in titled.val) < len(titled.val)
    assert load_model(str(result.checkpoint)).model.num_titles == len(titled.titles)


def test_title_weight_zero_builds_no_title_head(mined_both_ways, tmp_path):
    from beauty_app.training.config import TrainConfig
    from beauty_app.training.trainer import TrainingEvents, train

    _, titled = mined_both_ways
    steps = []
    config = TrainConfig(data=str(titled.root), out=str(tmp_path / "m.pt"), backbone="tiny", pretrained=False,
                         attention="none", iterations=2, batch_size=4, input_size=64, workers=0, checkpoint_every=0,
                         device="cpu", title_weight=0.0)
    result = train(config, events=TrainingEvents(on_step=steps.append))
    assert all(s.loss_title is None for s in steps) and all(s.loss_cls >= 0 for s in steps)
    assert "title_names" not in read_checkpoint(result.checkpoint)


def test_title_weight_follows_the_recipe_and_the_flag():
    from beauty_app.cli.train import config_from_args, register
    from beauty_app.training.config import TrainConfig

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert config_from_args(parser.parse_args(["train", "--data", "d"])).title_weight == 1.0
    assert config_from_args(parser.parse_args(["train", "--data", "d", "--recipe", "paper"])).title_weight == 0.0
    assert config_from_args(parser.parse_args(["train", "--data", "d", "--title-weight", "0"])).title_weight == 0.0
    assert TrainConfig().title_weight == 0.0  # the bench's paper runs
