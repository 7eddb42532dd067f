"""The training settings form: backbone, attention, the paper's hyperparameters and the default recipe's schedule."""

from __future__ import annotations

import math

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...training.config import DEFAULT_RECIPE, config_for_recipe

BACKBONES = [
    ("efficientnet_lite0", "EfficientNet-Lite0 (paper)"),
    ("resnet50", "ResNet-50"),
    ("vgg16", "VGG-16"),
    ("tiny", "tiny (tests, smoke runs)"),
]
ATTENTIONS = [
    ("both", "saliency + text (MANet)"),
    ("saliency", "saliency only"),
    ("text", "text only"),
    ("none", "none (plain CNN)"),
]
DEVICES = ["auto", "cuda", "mps", "cpu"]


class SciSpinBox(QDoubleSpinBox):
    """A double spin box that shows and accepts scientific notation (1e-05), with log-scale steps."""

    def __init__(self, minimum: float, maximum: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(12)  # keep the exact value; the text is formatted below
        self.setRange(minimum, maximum)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt API
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt API
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        stripped = text.strip()
        try:
            value = float(stripped)
        except ValueError:
            # Half-typed numbers ("1e-", "0.") may still become valid.
            if stripped == "" or stripped[-1] in "eE.-+":
                return QValidator.State.Intermediate, text, pos
            return QValidator.State.Invalid, text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt API
        # Learning rates and decays span decades: step by about a third of a decade.
        value = self.value()
        if value <= 0:
            self.setValue(self.minimum() or 1e-6)
            return
        self.setValue(min(self.maximum(), max(self.minimum(), value * math.pow(10, steps / 3))))


class TrainForm(QWidget):
    """Backbone, attention variant and hyperparameters, prefilled with the paper's values."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.backbone = QComboBox()
        for key, label in BACKBONES:
            self.backbone.addItem(label, key)
        self.backbone.setToolTip("Feature extractor of MANet; the paper uses EfficientNet-Lite0.")
        self.attention = QComboBox()
        for key, label in ATTENTIONS:
            self.attention.addItem(label, key)
        self.attention.setToolTip("Which attention branches MANet trains (the paper's ablation variants).")
        self.external_saliency = QCheckBox("External saliency (\"MANet with DSS\")")
        self.external_saliency.setToolTip("Use the pseudo-mask generator's saliency as an input instead of "
                                          "learning the saliency branch.")
        self.pretrained = QCheckBox("ImageNet-pretrained backbone")
        self.pretrained.setToolTip("Start from ImageNet weights (from the torch cache); off = random weights.")
        self.amp = QCheckBox("Mixed precision")
        self.amp.setToolTip("Faster on GPUs; turn off if the loss becomes NaN.")
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip("auto: CUDA, then Apple MPS, then the CPU.")

        self.iterations = self._int(1, 1_000_000, "End-to-end iterations of stage 2 (the default instance recipe: 1000; the paper: 500).")
        self.stage1_iterations = self._int(0, 1_000_000, "At most this many iterations training only the "
                                                         "saliency branch (stage 1 stops early when converged).")
        self.batch_size = self._int(1, 4096, "Images per optimisation step.")
        self.lr = SciSpinBox(1e-8, 10.0)
        self.lr.setToolTip("Initial SGD learning rate (paper: 0.01).")
        self.final_lr = SciSpinBox(0.0, 10.0)
        self.final_lr.setToolTip("Learning rate at the end of stage 2 (decayed exponentially; paper: 1e-5).")
        self.momentum = QDoubleSpinBox()
        self.momentum.setRange(0.0, 0.999)
        self.momentum.setDecimals(3)
        self.momentum.setSingleStep(0.01)
        self.weight_decay = SciSpinBox(0.0, 1.0)
        self.weight_decay.setToolTip("L2 weight decay (paper: 5e-4).")
        self.input_size = self._int(32, 1024, "Side of the square network input in pixels (paper: 224).")
        self.input_size.setSingleStep(32)
        self.photo_probability = QDoubleSpinBox()
        self.photo_probability.setRange(0.0, 1.0)
        self.photo_probability.setSingleStep(0.05)
        self.photo_probability.setToolTip("Share of synthetic real-photo samples (cross-domain augmentation).")
        self.workers = self._int(0, 64, "Data-loading processes (0 = load in the training process).")
        self.checkpoint_every = self._int(0, 1_000_000, "Save a resumable state every N iterations (0 = never).")
        self.validate_every = self._int(0, 1_000_000, "Measure validation accuracy every N stage-2 "
                                                      "iterations (0 = only at the end).")
        self.seed = self._int(0, 2**31 - 1, "Random seed of sampling and augmentation.")

        model_box = QGroupBox("Model")
        model_form = QFormLayout(model_box)
        model_form.addRow("Backbone", self.backbone)
        model_form.addRow("Attention", self.attention)
        model_form.addRow(self.external_saliency)
        model_form.addRow(self.pretrained)

        hyper_box = QGroupBox("Hyperparameters (the paper's; 1000 iterations for the instance recipe)")
        hyper_form = QFormLayout(hyper_box)
        for label, widget in (("Iterations (stage 2)", self.iterations), ("Stage 1 iterations", self.stage1_iterations),
                              ("Batch size", self.batch_size), ("Learning rate", self.lr),
                              ("Final learning rate", self.final_lr), ("Momentum", self.momentum),
                              ("Weight decay", self.weight_decay), ("Input size", self.input_size),
                              ("Photo share", self.photo_probability), ("Loader workers", self.workers),
                              ("Checkpoint every", self.checkpoint_every), ("Validate every", self.validate_every),
                              ("Seed", self.seed), ("Device", self.device)):
            hyper_form.addRow(label, widget)
        hyper_form.addRow(self.amp)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(model_box)
        layout.addWidget(hyper_box)

        self.backbone.currentIndexChanged.connect(self._update_enabled)
        self.attention.currentIndexChanged.connect(self._update_enabled)
        self.reset_defaults()

    @staticmethod
    def _int(minimum: int, maximum: int, tip: str) -> QSpinBox:
        box = QSpinBox()
        box.setRange(minimum, maximum)
        box.setToolTip(tip)
        return box

    def reset_defaults(self) -> None:
        """Fill every field with the default recipe's settings (the paper's hyperparameters, the recipe's schedule)."""
        config = config_for_recipe(DEFAULT_RECIPE)
        self.set_choice(self.backbone, config.backbone)
        self.set_choice(self.attention, config.attention)
        self.external_saliency.setChecked(config.external_saliency)
        self.pretrained.setChecked(config.pretrained)
        self.amp.setChecked(config.amp)
        self.device.setCurrentText(config.device)
        self.iterations.setValue(config.iterations)
        self.stage1_iterations.setValue(config.stage1_iterations)
        self.batch_size.setValue(config.batch_size)
        self.lr.setValue(config.lr)
        self.final_lr.setValue(config.final_lr)
        self.momentum.setValue(config.momentum)
        self.weight_decay.setValue(config.weight_decay)
        self.input_size.setValue(config.input_size)
        self.photo_probability.setValue(config.photo_probability)
        self.workers.setValue(config.workers)
        self.checkpoint_every.setValue(config.checkpoint_every)
        self.validate_every.setValue(config.validate_every)
        self.seed.setValue(config.seed)
        self._update_enabled()

    @staticmethod
    def set_choice(combo: QComboBox, key: str) -> None:
        index = combo.findData(key)
        if index >= 0:
            combo.setCurrentIndex(index)

    def _update_enabled(self) -> None:
        self.pretrained.setEnabled(self.backbone.currentData() != "tiny")
        self.external_saliency.setEnabled(self.attention.currentData() in ("both", "saliency"))

    def cli_args(self) -> list[str]:
        """The `beauty-app train` options for these settings (without --data/--out)."""
        args = ["--recipe", DEFAULT_RECIPE,
                "--backbone", self.backbone.currentData(), "--attention", self.attention.currentData(),
                "--iterations", str(self.iterations.value()),
                "--stage1-iterations", str(self.stage1_iterations.value()),
                "--batch-size", str(self.batch_size.value()),
                "--lr", repr(self.lr.value()), "--final-lr", repr(self.final_lr.value()),
                "--momentum", repr(self.momentum.value()), "--weight-decay", repr(self.weight_decay.value()),
                "--input-size", str(self.input_size.value()),
                "--photo-probability", repr(self.photo_probability.value()),
                "--workers", str(self.workers.value()), "--checkpoint-every", str(self.checkpoint_every.value()),
                "--validate-every", str(self.validate_every.value()), "--seed", str(self.seed.value()),
                "--device", self.device.currentText()]
        if self.external_saliency.isEnabled() and self.external_saliency.isChecked():
            args.append("--external-saliency")
        if not self.pretrained.isChecked() and self.backbone.currentData() != "tiny":
            args.append("--no-pretrained")
        if not self.amp.isChecked():
            args.append("--fp32")
        return args

    def stage1_planned(self) -> int:
        """Stage-1 iterations this configuration plans (0 when there is no learned saliency branch)."""
        two_stage = self.attention.currentData() in ("both", "saliency") and not (
            self.external_saliency.isEnabled() and self.external_saliency.isChecked())
        return self.stage1_iterations.value() if two_stage else 0
