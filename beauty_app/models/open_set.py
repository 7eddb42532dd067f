"""Open-set honesty: saying "not one of the model's categories" when a photo is far from every class.

The score is the maximum softmax probability (Hendrycks & Gimpel 2017), the number the app already
shows beside the top class. The rule: the threshold is the 5th percentile of that score over
synthetic photos of the validation images at the end of training (each pasted into a scene, as
queries are photos: on plain catalog views a trained model is nearly always sure), so 95% of photos
of known categories are accepted; a photo scoring below it is reported as outside the model's
categories. Training stores the threshold in the checkpoint's metrics (``metrics["open_set"]``;
``train --recalibrate-open-set`` chooses it again for a trained model). A checkpoint without it
(saved before this existed) gets :data:`DEFAULT_THRESHOLD`, and the app says that the threshold is a
default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Share of validation photos the chosen threshold accepts.
KEEP_FRACTION = 0.95
#: For checkpoints that record no threshold: the top class must take at least half the probability.
#: (The demo model shipped before the threshold existed accepted 95% of its synthetic query photos at 0.67.)
DEFAULT_THRESHOLD = 0.5
RULE = "the largest top-class probability that 95% of the validation photos reach"


@dataclass(frozen=True)
class OpenSetRule:
    """A threshold on the top-class probability, and where it came from."""

    threshold: float
    from_validation: bool
    validation_images: int = 0

    def describe(self) -> str:
        """One phrase for the user: the threshold and how it was chosen."""
        if self.from_validation:
            return (f"threshold {self.threshold:.0%}, which {KEEP_FRACTION:.0%} of the {self.validation_images} "
                    f"validation photos reach")
        return f"default threshold {self.threshold:.0%}: this model records none from its validation split"


def choose_threshold(top_probabilities: Sequence[float], keep: float = KEEP_FRACTION) -> dict:
    """The threshold record stored in a checkpoint, from validation images' top-class probabilities.

    Rule: the largest of the validation values that at least `keep` of them reach. With the values
    sorted ascending, that is the value at position floor((1 - keep) * n): at most that many fall
    below it, so at least `keep` of the validation photos are accepted.
    """
    values = np.sort(np.asarray(list(top_probabilities), dtype=np.float64))
    if values.size == 0:
        return {}
    threshold = float(values[int(np.floor((1.0 - keep) * values.size + 1e-9))])
    return {"score": "max_softmax", "threshold": threshold, "keep": keep, "rule": RULE,
            "val_images": int(values.size)}


def rule_for(metadata: dict | None) -> OpenSetRule:
    """The open-set rule of a loaded model (``ModelBundle.metadata``), or the documented default."""
    record = ((metadata or {}).get("metrics") or {}).get("open_set") or {}
    threshold = record.get("threshold")
    if isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0.0 <= threshold <= 1.0:
        return OpenSetRule(float(threshold), True, int(record.get("val_images") or 0))
    return OpenSetRule(DEFAULT_THRESHOLD, False)


def outside_categories(top_probability: float, rule: OpenSetRule) -> bool:
    """True when the photo's top class is too unlikely to call it one of the model's categories."""
    return top_probability < rule.threshold
