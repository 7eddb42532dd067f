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
