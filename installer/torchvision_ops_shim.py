"""Lets torchvision import beside a CPU-only torch build whose torchvision C++ ops cannot load.

Why: PyPI only has CUDA builds of torchvision for Linux x86_64, and their compiled ops
(``torchvision/_C.so``) link CUDA libraries that a CPU-only torch does not have. torchvision is
meant to carry on without them (``torchvision.extension._has_ops()`` is then False and the ops raise
a clear RuntimeError when called), but its ``_meta_registrations`` module registers fake kernels for
``torchvision::nms`` and ``torchvision::qnms`` without that guard, so ``import torchvision`` fails
with "operator torchvision::nms does not exist". timm imports torchvision, and BeautyLens imports
timm, so the app would not start.

What: right before ``torchvision`` is first imported, this tries to load torchvision's compiled ops.
If they load, nothing else happens. If they do not, the two operators are declared (schema only, no
kernel) so that torchvision's import succeeds; calling them still fails with torchvision's own
message. BeautyLens uses only torchvision's pure-Python parts (model definitions, weight metadata),
which work either way.

Used as a PyInstaller runtime hook (``beautylens.spec``) and, through a ``.pth`` file, in the
installer's build environment (``build.sh``). Nothing is imported until torchvision is.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
from pathlib import Path

log = logging.getLogger("beautylens.installer")

# The two operators that torchvision registers fake kernels for without checking _has_ops().
_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def _compiled_ops_load(package_dir: Path | None) -> bool:
    import torch

    if package_dir is None:
        return False
    for library in sorted(package_dir.glob("_C*")):
        if library.suffix not in (".so", ".pyd", ".dylib"):
            continue
        try:
            torch.ops.load_library(str(library))
            return True
        except (OSError, RuntimeError, ImportError) as exc:
            log.info("torchvision's compiled ops are unavailable (%s); declaring stand-ins", exc)
    return False


def prepare_torchvision(package_dir: Path | None) -> bool:
    """Make ``import torchvision`` work; returns True when stand-in operators were declared."""
    import torch

    if _compiled_ops_load(package_dir):
        return False
    declared = False
    for name, schema in _SCHEMAS.items():
        if not _operator_exists(f"torchvision::{name}"):
            torch.library.define(f"torchvision::{name}", schema)
            declared = True
    return declared


def _operator_exists(qualified: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(qualified, "")
        return True
    except RuntimeError:
        return False


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs :func:`prepare_torchvision` once, when ``torchvision`` is about to be imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)  # once only, and so the lookup below does not come back here
        spec = importlib.util.find_spec("torchvision")
        locations = list(spec.submodule_search_locations or []) if spec else []
        try:
            prepare_torchvision(Path(locations[0]) if locations else None)
        except Exception:  # noqa: BLE001 - never block the import; torchvision then reports its own error
            log.warning("could not prepare torchvision's operators", exc_info=True)
        return None  # the regular finders import it


def install() -> None:
    """Arm the hook (idempotent)."""
    if "torchvision" in sys.modules or any(isinstance(f, _BeforeTorchvision) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _BeforeTorchvision())
