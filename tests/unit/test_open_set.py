"""Open-set honesty: the threshold is chosen on validation probabilities by the stated rule; old checkpoints
get the documented default and say so."""

from __future__ import annotations

import numpy as np
import pytest

from beauty_app.models.open_set import (
    DEFAULT_THRESHOLD,
    KEEP_FRACTION,
    choose_threshold,
    outside_categories,
    rule_for,
)


@pytest.mark.parametrize("n", [1, 7, 20, 100, 333])
def test_threshold_is_the_largest_value_that_95_percent_reach(n):
    values = np.random.default_rng(n).uniform(0.05, 1.0, n)
    record = choose_threshold(values)
    threshold = record["threshold"]
    assert record["val_images"] == n and threshold in values
    assert np.mean(values >= threshold) >= KEEP_FRACTION
    higher = values[values > threshold]
    if higher.size:  # any larger threshold would accept fewer than 95%
        assert np.mean(values >= higher.min()) < KEEP_FRACTION


def test_threshold_on_a_known_set():
    values = np.arange(1, 101) / 100  # 0.01 .. 1.00
    assert choose_threshold(values)["threshold"] == pytest.approx(0.06)  # 95 of 100 reach 0.06, 96 reach 0.05
    assert choose_threshold([]) == {}


def test_rule_from_a_checkpoint_and_the_default_for_old_ones():
    stored = rule_for({"metrics": {"open_set": {"threshold": 0.62, "val_images": 80}}})
    assert stored.from_validation and stored.threshold == 0.62 and "80 validation photos" in stored.describe()
    assert outside_categories(0.61, stored) and not outside_categories(0.62, stored)
    for metadata in (None, {}, {"metrics": {"val_accuracy": 0.9}}, {"metrics": {"open_set": {"threshold": "x"}}},
                     {"metrics": {"open_set": {"threshold": 1.5}}}):
        default = rule_for(metadata)
        assert not default.from_validation and default.threshold == DEFAULT_THRESHOLD
        assert "default threshold" in default.describe() and "records none" in default.describe()


def test_the_shipped_demo_model_carries_the_threshold_of_its_validation_split():
    from pathlib import Path

    from beauty_app.models.checkpoint import read_checkpoint

    shipped = Path(__file__).resolve().parents[2] / "model_store" / "demo_manet.safetensors"
    metadata = {k: v for k, v in read_checkpoint(shipped).items() if k != "state_dict"}
    rule = rule_for(metadata)
    assert rule.from_validation and 0.0 < rule.threshold <= 1.0
    assert f"{metadata['metrics']['val_images']} validation photos" in rule.describe()
    # The model it replaced (trained before the rule existed) still gets the documented default.
    legacy = Path(__file__).resolve().parents[1] / "data" / "legacy_coarse_manet.safetensors"
    assert not rule_for({k: v for k, v in read_checkpoint(legacy).items() if k != "state_dict"}).from_validation
