"""Inference runtimes for indexing: the MANet feature path run by eager torch, ONNX Runtime or OpenVINO.

Indexing needs from the network only the re-weighted feature map and the saliency map (the
pooling inputs); the logits and the text map stay in torch for queries. A runtime takes letterboxed
uint8 pixels (N,S,S,3) and returns ``(features, saliency)`` as float32 torch tensors; the
normalisation with the model's mean/std is part of the runtime, so in an exported graph it runs on
the runtime's threads and not in the process feeding it.

Which runtime is fastest depends on the processor and the model (oneDNN's bf16 on AVX512-BF16,
OpenVINO's fused kernels, thread counts), so it is measured: :func:`choose_runtime` times the
available runtimes on the model once per machine and caches the answer; every candidate must give
vectors within a cosine of :data:`MIN_COSINE` of eager fp32's. ``BEAUTY_APP_RUNTIME`` (or
``--runtime``) names one instead. ONNX Runtime and OpenVINO come with the ``fast-cpu`` extra;
without it, eager torch is used.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import hashlib
import importlib.util
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..device import autocast
from ..errors import UserError
from ..models.checkpoint import ModelBundle

log = logging.getLogger(__name__)

#: Runtimes by name. "torch" is the reference (eager, NCHW, autocast where the device has native bf16).
RUNTIME_NAMES = ("torch", "torch-channels-last", "torch-compile", "onnxruntime", "openvino")
AUTO = "auto"
#: Environment variable that overrides the automatic choice (a runtime name or "auto").
RUNTIME_ENV = "BEAUTY_APP_RUNTIME"
#: Calibration candidates: those that prepare in seconds (torch.compile takes minutes on 2 cores).
#: OpenVINO is among them since its signal-stack handling is contained (see keep_signal_stack).
AUTO_CANDIDATES = ("torch", "torch-channels-last", "onnxruntime", "openvino")
#: Every runtime's vectors must stay this close (cosine, per image and pooling) to eager fp32's.
MIN_COSINE = 0.99
_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}


def available_runtimes() -> list[str]:
    """Runtimes whose packages are installed here."""
    return [name for name in RUNTIME_NAMES
            if all(importlib.util.find_spec(package) for package in _PACKAGES.get(name, ()))]


def cpu_threads() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


class _FeaturePath(torch.nn.Module):
    """uint8 pixels (N,S,S,3) -> normalised NCHW -> MANet.forward_features -> (features, saliency)."""

    def __init__(self, bundle: ModelBundle):
        super().__init__()
        self.model = bundle.model
        # The exact operations of imaging.image_to_tensor, so eager vectors do not change.
        self.register_buffer("mean", torch.tensor(bundle.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(bundle.std, dtype=torch.float32).view(1, 3, 1, 1))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.permute(0, 3, 1, 2).float().div(255.0).sub(self.mean).div(self.std)

    def forward(self, pixels: torch.Tensor):
        out = self.model.forward_features(self.normalise(pixels))
        return (out.features, out.saliency) if out.saliency is not None else (out.features,)


class InferenceRuntime:
    """Runs the indexing feature path: ``features(pixels) -> (features, saliency or None)``."""

    name = "runtime"

    def features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError


class TorchRuntime(InferenceRuntime):
    """Eager torch on the model's device (optionally channels-last or torch.compile'd).

    The plain variant calls the model itself (``model(batch)``), exactly as before runtimes existed,
    so its vectors are the reference; the others run a copy of the model, never changing the one
    the query path shares.
    """

    def __init__(self, bundle: ModelBundle, *, use_amp: bool = True, channels_last: bool = False,
                 compiled: bool = False):
        self.bundle, self.use_amp, self.channels_last = bundle, use_amp, channels_last
        self.device = next(bundle.model.parameters()).device
        self.name = "torch-compile" if compiled else "torch-channels-last" if channels_last else "torch"
        self.mean = torch.tensor(bundle.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(bundle.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.model = bundle.model
        if channels_last or compiled:
            self.model = copy.deepcopy(bundle.model).eval()
            if channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
            if compiled:
                self.model = torch.compile(self.model, dynamic=False)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels -> the normalised batch, on the device (uint8 crosses to a GPU: 4x fewer bytes)."""
        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = x.div_(255.0).sub_(self.mean).div_(self.std)
        return x if self.channels_last else x.contiguous()

    @torch.inference_mode()
    def features(self, pixels: torch.Tensor):
        batch = self.normalise(pixels)
        with autocast(self.device, self.use_amp):
            out = self.model(batch)
        return out.features.float(), None if out.saliency is None else out.saliency.float()


def exported_model_path(bundle: ModelBundle, input_size: int) -> Path:
    """Where the ONNX export of `bundle`'s feature path is cached (per weights, input size and torch)."""
    from ..paths import cache_dir

    key = f"{bundle.fingerprint}-{input_size}-{torch.__version__}"
    return cache_dir() / "runtimes" / f"manet-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def export_onnx(bundle: ModelBundle, input_size: int) -> Path:
    """Export the feature path (uint8 NHWC pixels -> features, saliency) to ONNX once; returns the file."""
    path = exported_model_path(bundle, input_size)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    module = copy.deepcopy(_FeaturePath(bundle)).cpu().float().eval()
    example = torch.zeros((2, input_size, input_size, 3), dtype=torch.uint8)
    outputs = ["features", "saliency"] if bundle.has_saliency else ["features"]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    import warnings

    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice is not the user's concern
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(temporary), input_names=["pixels"], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in ["pixels", *outputs]},
                          opset_version=17, dynamo=False)
    os.replace(temporary, path)  # whole or not at all: a killed export leaves no half file to load
    return path


class OnnxRuntime(InferenceRuntime):
    """ONNX Runtime (CPU provider, fp32) on the exported feature path."""

    name = "onnxruntime"

    def __init__(self, bundle: ModelBundle, input_size: int, *, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: between runs the cores belong to the decoding
        # processes and the pooling (a build with spinning threads ran 20% slower on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(export_onnx(bundle, input_size)), options,
                                                    providers=["CPUExecutionProvider"])

    def features(self, pixels: torch.Tensor):
        outputs = self.session.run(None, {"pixels": pixels.numpy()})
        return torch.from_numpy(outputs[0]), torch.from_numpy(outputs[1]) if len(outputs) > 1 else None


def _import_openvino():
    """OpenVINO's runtime without its model-conversion tools (we read ONNX files).

    Importing those tools sends a usage event to Intel (no consent asked) on a non-daemon thread
    that keeps a closing app waiting; a None entry in sys.modules makes that optional import fail,
    which openvino's own package import tolerates.
    """
    import sys

    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino.tools.ovc", None)
    import openvino

    return openvino


class _SignalStack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def keep_signal_stack():
    """Leave the calling thread's alternate signal stack as it was before the block (Linux).

    OpenVINO's CPU plugin installs a signal stack of its own on the thread that compiles a model and,
    when the compiled model is freed, puts back the one it found. With two compiled models freed in
    the order they were made, that puts back the first model's stack, already freed: the next signal
    handled on the thread (a decoding worker's exit sends SIGCHLD, and Python's handlers run on the
    alternate stack) then cannot be delivered and the kernel kills the process with SIGSEGV. Keeping
    the thread's own stack makes every later "put back" a no-op on memory that stays valid.
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = _SignalStack()
    if libc.sigaltstack(None, ctypes.byref(before)) != 0:
        yield
        return
    try:
        yield
    finally:
        if libc.sigaltstack(ctypes.byref(before), None) != 0:
            log.warning("could not restore the thread's signal stack (errno %d)", ctypes.get_errno())


class OpenVinoRuntime(InferenceRuntime):
    """OpenVINO on the CPU; bf16 inside where the processor has it and amp is on, else fp32."""

    name = "openvino"

    def __init__(self, bundle: ModelBundle, input_size: int, *, use_amp: bool = True, threads: int | None = None):
        openvino = _import_openvino()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or cpu_threads()}
        if not use_amp:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        with keep_signal_stack():
            self.compiled = openvino.Core().compile_model(str(export_onnx(bundle, input_size)), "CPU", config)
            self.request = self.compiled.create_infer_request()

    def features(self, pixels: torch.Tensor):
        result = self.request.infer({0: pixels.numpy()})
        outputs = [torch.from_numpy(result[port].copy()) for port in self.compiled.outputs]
        return outputs[0], outputs[1] if len(outputs) > 1 else None


def make_runtime(name: str, bundle: ModelBundle, input_size: int, *, use_amp: bool = True,
                 threads: int | None = None) -> InferenceRuntime:
    """Build runtime `name` for `bundle`.

    Raises:
        UserError: an unknown runtime, or one whose package is not installed.
    """
    if name not in RUNTIME_NAMES:
        raise UserError(f"Unknown runtime {name!r}; choose one of auto, {', '.join(RUNTIME_NAMES)}.")
    if name not in available_runtimes():
        raise UserError(f"The {name} runtime is not installed; install it with "
                        f"`pip install 'beauty_app[fast-cpu]'` or choose --runtime auto.")
    if name.startswith("torch"):
        return TorchRuntime(bundle, use_amp=use_amp, channels_last=name != "torch",
                            compiled=name == "torch-compile")
    if next(bundle.model.parameters()).device.type != "cpu":
        raise UserError(f"The {name} runtime runs on the CPU; use --device cpu or --runtime torch.")
    if name == "onnxruntime":
        return OnnxRuntime(bundle, input_size, threads=threads)
    return OpenVinoRuntime(bundle, input_size, use_amp=use_amp, threads=threads)


#: Poolings whose vectors a runtime must keep: the plain ones, and SR-MAC where the model has saliency.
CHECKED_POOLINGS = ("gap", "mac", "rmac", "srmac")


def feature_cosines(reference: tuple, candidate: tuple) -> float:
    """The lowest per-image cosine between two runtimes' retrieval vectors, over :data:`CHECKED_POOLINGS`.

    Vectors, not raw feature maps: bf16 moves individual activations by a few percent (map cosine
    about 0.97-0.98 on the demo MANet) while the pooled vectors the index stores stay above 0.999.
    """
    from . import pooling as pooling_ops

    ref_features, ref_saliency = (reference + (None,))[:2]
    got_features, got_saliency = (candidate + (None,))[:2]
    lowest = 1.0
    for name in CHECKED_POOLINGS:
        if name == "srmac" and (ref_saliency is None or got_saliency is None):
            continue
        pool = pooling_ops.POOLINGS[name]
        ref = pool(ref_features.double(), None if ref_saliency is None else ref_saliency.double())
        got = pool(got_features.double(), None if got_saliency is None else got_saliency.double())
        lowest = min(lowest, float(F.cosine_similarity(ref, got, dim=1).min()))
    return lowest


def calibration_pixels(input_size: int, count: int = 8) -> torch.Tensor:
    """Product-like test pixels: white letterbox margins around smooth coloured shapes (seeded)."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand((count, 3, 8, 8), generator=generator)
    image = F.interpolate(coarse, size=(input_size, input_size), mode="bilinear", align_corners=False)
    margin = input_size // 8
    image[:, :, :margin] = 1.0
    image[:, :, -margin:] = 1.0
    return (image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def measure_runtimes(bundle: ModelBundle, input_size: int, runtimes: dict[str, Callable[[], InferenceRuntime]], *,
                     batch: int = 8, rounds: int = 3, batch_one: Sequence[str] = ()) -> dict[str, dict]:
    """Time runtimes on one batch, in turns (so background load weighs on all), and check their features.

    Args:
        runtimes: label -> a function that builds the runtime (its set-up time is measured too).
        batch_one: labels run one image at a time (the naive loop's way).

    Returns {label: {"ms_per_image": median, "cosine": lowest per-image cosine to eager fp32,
    "prepare_s": set-up seconds} or {"error": why it could not run}}.
    """
    pixels = calibration_pixels(input_size, batch)
    reference = TorchRuntime(bundle, use_amp=False).features(pixels)
    results: dict[str, dict] = {}
    built: dict[str, InferenceRuntime] = {}

    def run(label: str):
        if label not in batch_one:
            return built[label].features(pixels)
        parts = [built[label].features(pixels[i:i + 1]) for i in range(len(pixels))]
        return tuple(None if part[0] is None else torch.cat([p[k] for p in parts])
                     for k, part in enumerate(zip(*parts)))

    for label, factory in runtimes.items():
        try:
            started = time.perf_counter()
            built[label] = factory()
            results[label] = {"cosine": feature_cosines(reference, run(label)),
                              "prepare_s": time.perf_counter() - started, "seconds": []}
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot run this model is left out, said why
            log.warning("runtime %s left out: %s", label, exc)
            results[label] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    for _ in range(rounds):
        for label in built:
            started = time.perf_counter()
            run(label)
            results[label]["seconds"].append(time.perf_counter() - started)
    for label in built:
        results[label]["ms_per_image"] = statistics.median(results[label].pop("seconds")) * 1000 / batch
    return results


def fastest_faithful(results: dict[str, dict]) -> str:
    """The fastest runtime among `results` whose features keep :data:`MIN_COSINE`; torch when none does."""
    faithful = {name: r["ms_per_image"] for name, r in results.items()
                if "ms_per_image" in r and r["cosine"] >= MIN_COSINE}
    return min(faithful, key=faithful.get) if faithful else "torch"


def _choice_file() -> Path:
    from ..paths import cache_dir

    return cache_dir() / "runtime-choice.json"


def _machine_key(bundle: ModelBundle, input_size: int, use_amp: bool, candidates: Sequence[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from ..device import describe_hardware

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "-"

    hardware = describe_hardware()
    parts = [hardware["cpu"], str(cpu_threads()), str(hardware["cpu_bf16"]), torch.__version__,
             installed("onnxruntime"), installed("openvino"), bundle.fingerprint, str(input_size), str(use_amp),
             ",".join(candidates)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def choose_runtime(bundle: ModelBundle, input_size: int, *, use_amp: bool = True,
                   requested: str | None = None, scales: Sequence[float] = (1.0,)) -> str:
    """The runtime name for indexing with `bundle`: asked for, or measured once per machine and model.

    Eager torch whenever a faster runtime cannot apply: a GPU or MPS device (torch with channels-last
    there), fp32 asked for (``--fp32`` is the exact reference), or multi-scale extraction.
    """
    requested = requested or os.environ.get(RUNTIME_ENV) or AUTO
    if requested != AUTO:
        if requested not in RUNTIME_NAMES:
            raise UserError(f"Unknown runtime {requested!r}; choose one of auto, {', '.join(RUNTIME_NAMES)}.")
        return requested
    device = next(bundle.model.parameters()).device
    if device.type != "cpu":
        return "torch-channels-last"
    if not use_amp or tuple(float(s) for s in scales) != (1.0,):
        return "torch"
    candidates = [name for name in AUTO_CANDIDATES if name in available_runtimes()]
    if candidates == ["torch"]:
        return "torch"
    key = _machine_key(bundle, input_size, use_amp, candidates)
    cache = _choice_file()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known and known[key].get("choice") in candidates:
        return known[key]["choice"]
    log.info("measuring inference runtimes for this machine and model (once): %s", ", ".join(candidates))
    results = measure_runtimes(bundle, input_size, {
        name: functools.partial(make_runtime, name, bundle, input_size, use_amp=use_amp) for name in candidates})
    choice = fastest_faithful(results)
    log.info("runtime chosen: %s (%s)", choice, results)
    known[key] = {"choice": choice, "results": results, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(known, indent=1))
        os.replace(temporary, cache)
    except OSError as exc:  # a read-only cache costs a calibration next time, nothing else
        log.warning("could not cache the runtime choice: %s", exc)
    return choice
