"""Self-describing MANet checkpoints and model spec strings.

A checkpoint is a plain dict of tensors and primitive values (loadable with
``torch.load(weights_only=True)``, so a file carrying pickled code is refused, never run). It holds
everything needed to rebuild and use the model: backbone, attention branches, classes, input size,
normalisation, feature dimension, training config, metrics and library versions.

Model specs name a model on the command line and in index metadata:
- a path to a checkpoint file (``model_store/demo.pt``);
- ``imagenet:<backbone>``: the off-the-shelf ImageNet backbone, no attention, no classifier.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import pickle
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..errors import ModelError
from .backbones import BACKBONES, backbone_info, resolve_pretrained_path
from .manet import ATTENTION_HEADS, LEGACY_ATTENTION_HEAD, MANet, parse_attention

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "beautylens-manet"
CHECKPOINT_VERSION = 1
IMAGENET_PREFIX = "imagenet:"


@dataclass
class ModelBundle:
    """A loaded model plus what is needed to feed it and to name it."""

    model: MANet
    spec: str
    fingerprint: str
    class_names: list[str]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    metadata: dict = field(default_factory=dict)

    @property
    def has_saliency(self) -> bool:
        return "saliency" in self.model.attention

    @property
    def has_text(self) -> bool:
        return "text" in self.model.attention

    def describe(self) -> str:
        """One line for status bars and logs."""
        attention = "+".join(self.model.attention) or "no attention"
        return f"{self.model.backbone_name} ({attention}, {len(self.class_names)} classes)"


def library_versions() -> dict[str, str]:
    """Versions recorded in checkpoints and benchmark reports."""
    import torchvision

    versions = {"beauty_app": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
                "python": platform.python_version()}
    try:
        import timm

        versions["timm"] = str(timm.__version__)
    except ImportError:  # pragma: no cover - timm is a dependency
        pass
    return versions


def save_checkpoint(
    path: str | os.PathLike,
    model: MANet,
    *,
    class_names: list[str],
    input_size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    train_config: dict | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a self-describing checkpoint atomically (a crash never leaves a half-written file).

    Args:
        extra: more weights_only-safe state (e.g. optimizer state and iteration for resuming).
    """
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "arch": "manet",
        "backbone": model.backbone_name,
        "attention": list(model.attention),
        "external_saliency": model.external_saliency,
        "attention_head": model.attention_head,
        "num_classes": model.num_classes,
        "class_names": list(class_names),
        "input_size": int(input_size),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "feature_dim": model.feature_dim,
        "train_config": dict(train_config or {}),
        "metrics": dict(metrics or {}),
        "versions": library_versions(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if extra:
        payload["extra"] = extra
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    # The pid in the name tells a later save whether the writer of a leftover temp file is gone.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the checkpoint the permissions a normal file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _remove_dead_temporaries(path: Path) -> None:
    """Delete temp files left by saves of `path` whose process was killed (each is model-sized)."""
    if os.name != "posix":  # os.kill(pid, 0) only probes on POSIX; elsewhere it would end the process
        return
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue  # not ours, or a save in progress on another thread of this process
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:  # alive but another user's, or unknowable: leave it
            pass


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict safely (weights_only) and check that it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only loading stops at the first thing that is not a tensor or plain value, so
        # neither a corrupt file nor one carrying code (a pickled callable) ever gets to run.
        raise ModelError(
            f"Checkpoint {path.name} was refused: it is not plain weights (it is corrupt or carries "
            f"objects that could run code); only BeautyLens checkpoints can be loaded."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any decode failure is a user-facing bad file
        raise ModelError(f"Checkpoint {path.name} is not a readable model file ({type(exc).__name__}).") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path.name} is not a BeautyLens MANet checkpoint.")
    if payload.get("format_version", 0) > CHECKPOINT_VERSION:
        raise ModelError(f"{path.name} was written by a newer BeautyLens; update the app to load it.")
    if payload.get("backbone") not in BACKBONES:
        raise ModelError(f"{path.name} uses an unknown backbone {payload.get('backbone')!r}.")
    return payload


def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (identifies the exact weights an index was built with)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_from_checkpoint(payload: dict) -> MANet:
    """Rebuild the network described by a checkpoint dict and load its weights."""
    head = str(payload.get("attention_head", LEGACY_ATTENTION_HEAD))
    if head not in ATTENTION_HEADS:
        raise ModelError(f"The checkpoint has an unknown attention head {head!r}; update the app to load it.")
    model = MANet(
        payload["backbone"],
        num_classes=int(payload["num_classes"]),
        attention=tuple(payload["attention"]),
        pretrained=False,
        external_saliency=bool(payload.get("external_saliency", False)),
        # Checkpoints from before the fine head name none: theirs is the coarse one.
        attention_head=head,
    )
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ModelError("The checkpoint's weights do not match its own architecture description.") from exc
    return model


def load_model(spec: str, *, device: torch.device | str = "cpu", allow_download: bool = True) -> ModelBundle:
    """Build a ready-to-use model (eval mode, on `device`) from a model spec string.

    Args:
        spec: a checkpoint path or ``imagenet:<backbone>``.
    """
    spec = str(spec).strip()
    if spec.startswith(IMAGENET_PREFIX):
        name = spec[len(IMAGENET_PREFIX):]
        if name not in BACKBONES:
            raise ModelError(f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.")
        info = backbone_info(name)
        model = MANet(name, num_classes=0, attention="none", pretrained=True, allow_download=allow_download)
        # The fingerprint names the exact weights: the pretrained file's hash when it is local.
        weights = resolve_pretrained_path(name)
        fingerprint = hashlib.sha256(
            f"{spec}|{file_fingerprint(weights) if weights else 'download'}".encode()).hexdigest()
        bundle = ModelBundle(model, spec, fingerprint, [], info.input_size, tuple(info.mean), tuple(info.std),
                             {"versions": library_versions()})
    else:
        path = Path(spec).expanduser()
        payload = read_checkpoint(path)
        model = model_from_checkpoint(payload)
        bundle = ModelBundle(
            model,
            str(path),
            file_fingerprint(path),
            list(payload["class_names"]),
            int(payload["input_size"]),
            tuple(payload["mean"]),
            tuple(payload["std"]),
            {k: payload.get(k) for k in ("train_config", "metrics", "versions", "feature_dim")},
        )
    bundle.model.to(device).eval()
    log.info("loaded model %s: %s", spec, bundle.describe())
    return bundle


__all__ = [
    "ModelBundle", "save_checkpoint", "read_checkpoint", "load_model", "model_from_checkpoint",
    "file_fingerprint", "parse_attention", "IMAGENET_PREFIX",
]
