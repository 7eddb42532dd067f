"""Choosing the compute device once, and the mixed-precision context that suits it."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def pick_device(preference: str = "auto") -> torch.device:
    """Return the device to run on: CUDA, then MPS, then CPU (or the one asked for).

    Args:
        preference: "auto", "cpu", "cuda", "cuda:N" or "mps".
    """
    if preference and preference != "auto":
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            from .errors import UserError

            raise UserError("CUDA was requested but no CUDA GPU is available; use --device cpu.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AMX or AVX512-BF16).

    Without them bf16 autocast on CPU is emulated and slower than fp32, so we only turn it on here.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype to use on `device`, or None for plain fp32."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, enabled: bool = True):
    """An autocast context for inference/training on `device` (a null context when not useful)."""
    dtype = autocast_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def describe_hardware() -> dict:
    """CPU model, bf16 support and GPU name, for benchmark reports and the status bar."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="ignore").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_bf16": cpu_supports_bf16(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info
