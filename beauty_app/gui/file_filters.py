"""File-dialog filters shared by the tabs."""

from __future__ import annotations

from ..models.checkpoint import CHECKPOINT_SUFFIXES


def checkpoint_filter() -> str:
    """Models: safetensors first (what the app writes and ships), then PyTorch files (.pt, .pth)."""
    patterns = " ".join(f"*{suffix}" for suffix in CHECKPOINT_SUFFIXES)
    return f"Models ({patterns});;All files (*)"
