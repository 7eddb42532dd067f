"""Self-describing MANet checkpoints and model spec strings.

A checkpoint holds everything needed to rebuild and use the model: backbone, attention branches,
classes, input size, normalisation, feature dimension, training config, metrics and library versions.
It is stored in one of two containers, chosen by the file name and recognised by content:

- ``.safetensors`` (what trained and shipped models are saved as): the weights as safetensors, the
  description in the header's string metadata (strings as they are, everything else JSON-encoded).
  Reading it never unpickles anything.
- any other name (``.pt``, and the ``<out>.resume`` state of an interrupted training run, which also
  carries optimizer state): a plain dict saved with ``torch.save`` and read with
  ``torch.load(weights_only=True)``, so a file carrying pickled code is refused, never run. Models
  saved as ``.pt`` by earlier versions keep loading this way.

``python -m beauty_app.models.checkpoint OLD.pt [NEW.safetensors]`` converts a ``.pt`` model.

Model specs name a model on the command line and in index metadata:
- a path to a checkpoint file (``model_store/demo_manet.safetensors``);
- ``imagenet:<backbone>``: the off-the-shelf ImageNet backbone, no attention, no classifier.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import logging
import math
import os
import pickle
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..errors import ModelError, UserError
from ..limits import MAX_CLASSES, input_size_problem
from .backbones import BACKBONES, backbone_info, resolve_pretrained_path
from .manet import (ATTENTION_HEADS, DEFAULT_RETRIEVAL_ATTENTION, LEGACY_ATTENTION_HEAD, RETRIEVAL_ATTENTIONS, MANet,
                    parse_attention)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "beautylens-manet"
CHECKPOINT_VERSION = 1
IMAGENET_PREFIX = "imagenet:"
MODEL_SUFFIX = ".safetensors"
"""The file name ending under which models are saved and shipped (weights without pickles)."""
CHECKPOINT_SUFFIXES = (MODEL_SUFFIX, ".pt", ".pth")
"""Endings a model file may have: safetensors, or a ``torch.save`` file of an earlier version."""

# Metadata fields stored as plain strings in a safetensors header; every other field is JSON.
_TEXT_FIELDS = frozenset({"format", "arch", "backbone"})


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
    title_names: list[str] = field(default_factory=list)  # the title head's labels (empty: no head)

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
    title_names: list[str] | None = None,
    query_size: int = 0,
) -> Path:
    """Write a self-describing checkpoint atomically (a crash never leaves a half-written file).

    A ``.safetensors`` path gets the safetensors container (what models are saved and shipped as);
    any other name a ``torch.save`` file, readable with ``weights_only=True``.

    Args:
        extra: more weights_only-safe state (e.g. optimizer state and iteration for resuming); only
            for a ``torch.save`` file, such as the ``<out>.resume`` state of a training run.
        title_names: the title head's labels, one per output (required when the model has one).
            Checkpoints without them have no title head.
        query_size: the input side the model is used at for queries and catalog images, when it is
            not the training side `input_size` (0: the same). Loaded models report it as their
            ``input_size``; the training side stays in the file.
    """
    title_names = list(title_names or [])
    if len(title_names) != model.num_titles:
        raise ValueError(f"the model has {model.num_titles} title outputs but {len(title_names)} title names were given")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "arch": "manet",
        "backbone": model.backbone_name,
        "attention": list(model.attention),
        "external_saliency": model.external_saliency,
        "attention_head": model.attention_head,
        **({"retrieval_attention": model.retrieval_attention}
           if model.retrieval_attention != DEFAULT_RETRIEVAL_ATTENTION else {}),
        "num_classes": model.num_classes,
        "class_names": list(class_names),
        **({"title_names": title_names} if title_names else {}),
        "input_size": int(input_size),
        **({"query_size": int(query_size)} if query_size and int(query_size) != int(input_size) else {}),
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
    return _write_payload(Path(path), payload)


def rewrite_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write a read checkpoint's payload back (atomically), e.g. after changing its metrics.

    The file's bytes change, so its fingerprint does: indexes built with the old file ask to be rebuilt.
    """
    return _write_payload(Path(path), payload)


def _is_safetensors_name(path: Path) -> bool:
    return path.suffix.lower() == MODEL_SUFFIX


def _safetensors_bytes(payload: dict) -> bytes:
    """Encode a checkpoint dict as safetensors: weights as tensors, the rest as header metadata."""
    from safetensors.torch import save

    if "extra" in payload:
        # Optimizer state is nested Python data, which safetensors cannot hold; resume states are .pt.
        raise ValueError("Resumable training state cannot be saved as safetensors; give it a .pt name.")
    metadata = {key: value if key in _TEXT_FIELDS else json.dumps(value, sort_keys=True)
                for key, value in payload.items() if key != "state_dict"}
    # safetensors refuses tensors that share memory (views of one buffer); private copies never do.
    tensors = {key: value.detach().to("cpu", copy=True).contiguous() for key, value in payload["state_dict"].items()}
    return save(tensors, metadata=metadata)


def _write_payload(path: Path, payload: dict) -> Path:
    """Write a checkpoint dict atomically (a crash never leaves a half-written file)."""
    data = _safetensors_bytes(payload) if _is_safetensors_name(path) else None
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    # The pid in the name tells a later save whether the writer of a leftover temp file is gone.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if data is None:
                torch.save(payload, handle)
            else:
                handle.write(data)
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
    """Load a checkpoint dict safely (safetensors, or a weights_only torch file) and check it is ours."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model checkpoint {path} does not exist.")
    payload = _read_safetensors(path) if _looks_like_safetensors(path) else _read_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path.name} is not a BeautyLens MANet checkpoint.")
    if not isinstance(payload.get("format_version", 0), int) or payload.get("format_version", 0) > CHECKPOINT_VERSION:
        raise ModelError(f"{path.name} was written by a newer BeautyLens; update the app to load it.")
    if payload.get("backbone") not in BACKBONES:
        raise ModelError(f"{path.name} uses an unknown backbone {payload.get('backbone')!r}.")
    try:
        validate_checkpoint_metadata(payload)
    except ValueError as exc:
        raise ModelError(f"Checkpoint {path.name} cannot be used: {exc}.") from None
    return payload


def _looks_like_safetensors(path: Path) -> bool:
    """True when the file starts like safetensors: a little-endian header length, then a JSON object.

    Decided by content, not by name, so a renamed file is still read with the right (safe) reader.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    header_length = int.from_bytes(head[:8], "little")
    return 0 < header_length <= path.stat().st_size - 8


def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"Checkpoint {path.name} is not a readable safetensors model file ({exc}).") from exc
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path.name} is not a BeautyLens MANet checkpoint (its safetensors metadata does not "
                         f"describe one).")
    payload: dict = {}
    for key, text in metadata.items():
        if key in _TEXT_FIELDS:
            payload[key] = text
            continue
        try:
            payload[key] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"Checkpoint {path.name} has an unreadable metadata field {key!r}.") from exc
    payload["state_dict"] = state_dict
    return payload


def _read_torch_file(path: Path) -> dict:
    try:
        # Through a file handle: torch.load picks a reader by the file's name, the name may lie.
        with open(path, "rb") as handle:
            return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only loading stops at the first thing that is not a tensor or plain value, so
        # neither a corrupt file nor one carrying code (a pickled callable) ever gets to run.
        raise ModelError(
            f"Checkpoint {path.name} was refused: it is not plain weights (it is corrupt or carries "
            f"objects that could run code); only BeautyLens checkpoints can be loaded."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any decode failure is a user-facing bad file
        raise ModelError(f"Checkpoint {path.name} is not a readable model file ({type(exc).__name__}).") from exc


def convert_to_safetensors(source: str | os.PathLike, target: str | os.PathLike | None = None) -> Path:
    """Rewrite a ``torch.save`` model checkpoint (``.pt``) as ``.safetensors`` with the same description.

    The weights and every metadata field are carried over unchanged (the versions stay those it was
    trained with); resumable training state is not a model and is refused.

    Args:
        source: the ``.pt`` checkpoint, read with ``weights_only=True``.
        target: where to write; defaults to ``source`` with the ``.safetensors`` ending.

    Returns:
        The path written.
    """
    source = Path(source)
    target = Path(target) if target is not None else source.with_suffix(MODEL_SUFFIX)
    if not _is_safetensors_name(target):
        raise ModelError(f"The converted model must be named *{MODEL_SUFFIX}, not {target.name}.")
    payload = read_checkpoint(source)
    if "extra" in payload:
        raise ModelError(f"{source.name} is the resumable state of a training run, not a finished model; "
                         f"finish or resume the run to get a model to convert.")
    return _write_payload(target, payload)


def validate_checkpoint_metadata(meta: dict) -> None:
    """Check a checkpoint's description against sane bounds before anything is built from it.

    Every number that sizes an allocation (classes, input size) must be in range and agree with the
    weights the file really holds, so a small crafted file cannot make the app allocate gigabytes;
    mean and std must be three finite numbers, std above zero.

    Raises:
        ValueError: what is wrong, as a phrase ("its input_size must be ...").
    """
    missing = [key for key in ("attention", "num_classes", "class_names", "input_size", "mean", "std", "state_dict")
               if key not in meta]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    weights = meta["state_dict"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise ValueError("its state_dict is not a table of named tensors")
    classes = meta["num_classes"]
    if isinstance(classes, bool) or not isinstance(classes, int) or not 0 <= classes <= MAX_CLASSES:
        raise ValueError(f"its num_classes must be a whole number from 0 to {MAX_CLASSES:,}, not {classes!r}")
    names = meta["class_names"]
    if not isinstance(names, list | tuple) or len(names) != classes or not all(isinstance(n, str) for n in names):
        raise ValueError(f"its class_names must be {classes} names, one per class")
    # The classifier is num_classes x features: it must be in the file, not only declared.
    head = weights.get("classifier.weight")
    if (classes > 0) != (head is not None) or (head is not None and (head.dim() != 2 or head.shape[0] != classes)):
        raise ValueError(f"its weights do not hold the classifier its num_classes ({classes}) describes")
    titles = meta.get("title_names", [])
    if (not isinstance(titles, list | tuple) or len(titles) > MAX_CLASSES
            or not all(isinstance(t, str) for t in titles)):
        raise ValueError(f"its title_names must be at most {MAX_CLASSES:,} names")
    title_head = weights.get("title_head.weight")
    if (len(titles) > 0) != (title_head is not None) or (
            title_head is not None and (title_head.dim() != 2 or title_head.shape[0] != len(titles))):
        raise ValueError(f"its weights do not hold the title head its title_names ({len(titles)}) describe")
    for key in ("input_size", "query_size"):
        problem = input_size_problem(meta[key]) if key in meta else None
        if problem:
            raise ValueError(f"its {key} {problem}")
    for key in ("mean", "std"):
        values = meta[key]
        if (not isinstance(values, list | tuple) or len(values) != 3
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                           for v in values)):
            raise ValueError(f"its {key} must be three finite numbers, not {values!r}")
    if any(v <= 0 for v in meta["std"]):
        raise ValueError(f"its std must be above zero, not {meta['std']!r}")
    attention = meta["attention"]
    if not isinstance(attention, list | tuple) or not all(isinstance(a, str) for a in attention):
        raise ValueError(f"its attention must be a list of branch names, not {attention!r}")
    try:
        parse_attention(tuple(attention))
    except (ValueError, KeyError, TypeError, UserError):
        raise ValueError(f"its attention {attention!r} names unknown branches") from None
    if not isinstance(meta.get("external_saliency", False), bool):
        raise ValueError("its external_saliency must be true or false")


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
    # Checkpoints from before the setting existed re-weight the retrieval features with every map.
    retrieval_attention = str(payload.get("retrieval_attention", DEFAULT_RETRIEVAL_ATTENTION))
    if retrieval_attention not in RETRIEVAL_ATTENTIONS:
        raise ModelError(f"The checkpoint has an unknown retrieval attention {retrieval_attention!r}; "
                         "update the app to load it.")
    model = MANet(
        payload["backbone"],
        num_classes=int(payload["num_classes"]),
        attention=tuple(payload["attention"]),
        pretrained=False,
        external_saliency=bool(payload.get("external_saliency", False)),
        # Checkpoints from before the fine head name none: theirs is the coarse one.
        attention_head=head,
        num_titles=len(payload.get("title_names", [])),
        retrieval_attention=retrieval_attention,
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
            # The side it is used at: a model trained on 224 px pasted photos may retrieve best at more.
            int(payload.get("query_size") or payload["input_size"]),
            tuple(payload["mean"]),
            tuple(payload["std"]),
            {k: payload.get(k) for k in ("train_config", "metrics", "versions", "feature_dim", "input_size")},
            list(payload.get("title_names", [])),
        )
    bundle.model.to(device).eval()
    log.info("loaded model %s: %s", spec, bundle.describe())
    return bundle


def main(argv: list[str] | None = None) -> int:
    """``python -m beauty_app.models.checkpoint OLD.pt [NEW.safetensors]``: convert a model file."""
    parser = argparse.ArgumentParser(prog="python -m beauty_app.models.checkpoint",
                                     description="Convert a .pt MANet checkpoint to .safetensors.")
    parser.add_argument("source", help="the .pt checkpoint")
    parser.add_argument("target", nargs="?", help="the .safetensors file (default: beside the source)")
    args = parser.parse_args(argv)
    try:
        written = convert_to_safetensors(args.source, args.target)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(written)
    return 0


__all__ = [
    "ModelBundle", "save_checkpoint", "read_checkpoint", "load_model", "model_from_checkpoint",
    "file_fingerprint", "parse_attention", "convert_to_safetensors", "IMAGENET_PREFIX", "MODEL_SUFFIX",
    "CHECKPOINT_SUFFIXES", "validate_checkpoint_metadata",
]


if __name__ == "__main__":
    sys.exit(main())
