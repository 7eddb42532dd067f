"""Training losses: InfoNCE over (photo, catalog) identities, temperature, cross-batch memory."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from beauty_app.training.losses import CrossBatchMemory, Temperature, attention_loss, symmetric_info_nce


def _unit(rows: torch.Tensor) -> torch.Tensor:
    return F.normalize(rows, dim=1)


def test_info_nce_with_distinct_identities_is_the_mean_of_both_cross_entropies() -> None:
    torch.manual_seed(0)
    photos, catalog = _unit(torch.randn(6, 8)), _unit(torch.randn(6, 8))
    ids = torch.arange(6)
    expected = 0.5 * (F.cross_entropy(photos @ catalog.T / 0.1, ids) + F.cross_entropy(catalog @ photos.T / 0.1, ids))
    assert symmetric_info_nce(photos, catalog, ids, 0.1).item() == pytest.approx(expected.item(), rel=1e-5)


def test_matching_pairs_score_lower_than_shuffled_ones() -> None:
    torch.manual_seed(1)
    catalog = _unit(torch.randn(8, 16))
    photos = _unit(catalog + 0.05 * torch.randn(8, 16))
    ids = torch.arange(8)
    aligned = symmetric_info_nce(photos, catalog, ids, 0.05)
    shuffled = symmetric_info_nce(photos.roll(1, dims=0), catalog, ids, 0.05)
    assert aligned.item() < 0.1 < shuffled.item()


def test_rows_of_one_identity_are_not_negatives_of_each_other() -> None:
    vector = _unit(torch.ones(1, 4))
    other = _unit(torch.tensor([[1.0, -1.0, 1.0, -1.0]]))
    photos = torch.cat([vector, vector, other])
    as_one = symmetric_info_nce(photos, photos.clone(), torch.tensor([0, 0, 1]), 0.05)
    as_two = symmetric_info_nce(photos, photos.clone(), torch.tensor([0, 1, 2]), 0.05)
    assert as_one.item() == pytest.approx(0.0, abs=1e-4)
    assert as_two.item() == pytest.approx(2 / 3 * math.log(2), rel=1e-3)  # rows 0 and 1 confuse each other


def test_memory_adds_negatives_and_keeps_the_newest_rows() -> None:
    memory = CrossBatchMemory(size=3)
    assert memory.contents() is None
    memory.add(torch.eye(4)[:2], torch.tensor([0, 1]))
    memory.add(torch.eye(4)[2:], torch.tensor([2, 3]))
    vectors, ids = memory.contents()
    assert ids.tolist() == [1, 2, 3] and torch.equal(vectors, torch.eye(4)[1:])
    photos = catalog = torch.eye(4)[:1]
    # A remembered vector close to the photo, of another identity, makes the task harder.
    hard = (_unit(torch.tensor([[1.0, 0.1, 0.0, 0.0]])), torch.tensor([9]))
    base = symmetric_info_nce(photos, catalog, torch.tensor([0]), 0.1)
    assert symmetric_info_nce(photos, catalog, torch.tensor([0]), 0.1, hard).item() > base.item()
    assert CrossBatchMemory(0).contents() is None


def test_temperature_is_fixed_or_learned() -> None:
    assert Temperature(0.05)().item() == pytest.approx(0.05)
    assert list(Temperature(0.05).parameters()) == []
    learned = Temperature(0.07, learnable=True)
    assert [p.shape for p in learned.parameters()] == [torch.Size([])]
    with pytest.raises(ValueError):
        Temperature(0.0)


def test_attention_loss_is_reexported_by_the_trainer() -> None:
    from beauty_app.training import trainer

    assert trainer.attention_loss is attention_loss


def test_the_dice_term_prefers_a_map_on_the_mask_to_a_faint_spread_one():
    import torch

    from beauty_app.training.losses import attention_loss

    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:8, 2:14] = 1.0  # a text line: under a fifth of the map
    valid = torch.ones(2)
    faint = torch.full((2, 1, 16, 16), -2.2)  # about 0.1 everywhere
    on_mask = torch.where(target > 0, torch.tensor(0.5), torch.tensor(-3.0))
    assert torch.equal(attention_loss(faint, target, valid, 0.0), attention_loss(faint, target, valid))

    def dice_part(logits):
        return (attention_loss(logits, target, valid, 1.0) - attention_loss(logits, target, valid, 0.0)).item()

    assert dice_part(on_mask) < 0.5 * dice_part(faint)
    logits = faint.clone().requires_grad_(True)
    attention_loss(logits, target, valid, 1.0).backward()
    # The gradient raises the map on the mask and lowers it off the mask.
    assert logits.grad[target > 0].mean() < 0 < logits.grad[target == 0].mean()


def test_map_dice_and_query_size_follow_the_recipe_and_the_flags():
    import argparse

    from beauty_app.cli.train import config_from_args, register
    from beauty_app.training.config import TrainConfig

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def parsed(*flags):
        return config_from_args(parser.parse_args(["train", "--data", "d", *flags]))

    assert parsed().map_dice_weight == 1.0 and parsed("--recipe", "paper").map_dice_weight == 0.0
    assert parsed("--map-dice-weight", "0").map_dice_weight == 0.0
    assert TrainConfig().map_dice_weight == 0.0  # the paper's BCE for the bench's paper runs
    # The instance recipe is used at 10/7 of its training side unless told; the paper recipe at its own.
    assert parsed().query_size == 320 and parsed("--input-size", "128").query_size == 192
    assert parsed("--recipe", "paper").query_size == 0 and TrainConfig().query_size == 0
    assert parsed("--query-size", "352").query_size == 352 and parsed("--query-size", "0").query_size == 0
    with pytest.raises(SystemExit):
        parsed("--query-size", "5")
