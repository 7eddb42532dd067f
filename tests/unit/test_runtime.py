"""Indexing runtimes: faithful vectors, the automatic choice, its cache, and the fallback without the extra."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from beauty_app.errors import UserError
from beauty_app.models.checkpoint import load_model
from beauty_app.retrieval import runtime as runtime_module
from beauty_app.retrieval.extractor import FeatureExtractor
from beauty_app.retrieval.runtime import (MIN_COSINE, TorchRuntime, calibration_pixels, choose_runtime,
                                          fastest_faithful, feature_cosines, make_runtime)

HAS_ONNX = bool(importlib.util.find_spec("onnx"))
HAS_OPENVINO = HAS_ONNX and bool(importlib.util.find_spec("openvino"))
EXPORTED = ["onnxruntime"] if HAS_ONNX and importlib.util.find_spec("onnxruntime") else []
# The crash keep_signal_stack prevents: two compiled models freed in the order they were made left
# the thread's signal stack on freed memory, and the next handled signal killed the process (SIGSEGV).
_OPENVINO_SIGNAL_CHECK = """
import gc, os, signal, sys, time
from beauty_app.models.checkpoint import load_model
from beauty_app.retrieval.runtime import make_runtime
bundle = load_model(sys.argv[1])
first = make_runtime("openvino", bundle, bundle.input_size, use_amp=False)
second = make_runtime("openvino", bundle, bundle.input_size, use_amp=True)
del first
gc.collect()
del second
gc.collect()
handled = []
signal.signal(signal.SIGUSR1, lambda *args: handled.append(True))
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.05)
print("handled" if handled else "not handled")
"""


@pytest.fixture(scope="module")
def bundle(tiny_checkpoint):
    return load_model(str(tiny_checkpoint))


def test_plain_torch_runtime_gives_the_vectors_of_the_query_path(bundle, demo_data):
    from beauty_app.imaging import letterbox, load_image

    extractor = FeatureExtractor(bundle, "srmac", use_amp=False)
    images = [load_image(p) for p in sorted(demo_data.queries_dir.iterdir())[:3]]
    pixels = torch.from_numpy(np.stack([np.asarray(letterbox(im, extractor.input_size)) for im in images]))
    by_tensor = extractor.pooled(torch.stack([extractor.to_tensor(im) for im in images]), ("srmac",))["srmac"]
    by_pixels = extractor.pooled_pixels(pixels, ("srmac",), TorchRuntime(bundle, use_amp=False))["srmac"]
    np.testing.assert_array_equal(by_pixels, by_tensor)  # same operations in the same order: bit-identical


@pytest.mark.parametrize("name", ["torch-channels-last", *EXPORTED])
def test_each_runtime_keeps_features_and_vectors_within_the_cosine_bound(bundle, name):
    pixels = calibration_pixels(bundle.input_size, 6)
    reference = TorchRuntime(bundle, use_amp=False).features(pixels)
    got = make_runtime(name, bundle, bundle.input_size, use_amp=True).features(pixels)
    assert got[0].shape == reference[0].shape and got[1].shape == reference[1].shape
    assert feature_cosines(reference, got) >= MIN_COSINE
    extractor = FeatureExtractor(bundle, "srmac")
    fp32 = extractor.pooled_pixels(pixels, ("srmac",), TorchRuntime(bundle, use_amp=False))["srmac"]
    fast = extractor.pooled_pixels(pixels, ("srmac",), make_runtime(name, bundle, bundle.input_size))["srmac"]
    assert np.min(np.sum(fp32 * fast, axis=1)) >= MIN_COSINE


@pytest.mark.skipif(not EXPORTED, reason="onnxruntime not installed")
def test_onnxruntime_threads_sleep_between_runs_instead_of_spinning(bundle):
    # Spinning pool threads took the cores the decoding processes and the pooling need.
    options = make_runtime("onnxruntime", bundle, bundle.input_size).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_openvino_keeps_vectors_within_the_cosine_bound_in_fp32_and_bf16(bundle):
    pixels = calibration_pixels(bundle.input_size, 6)
    reference = TorchRuntime(bundle, use_amp=False).features(pixels)
    for use_amp in (False, True):
        got = make_runtime("openvino", bundle, bundle.input_size, use_amp=use_amp).features(pixels)
        assert feature_cosines(reference, got) >= MIN_COSINE


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_freeing_openvino_models_leaves_signal_handling_working(tiny_checkpoint):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _OPENVINO_SIGNAL_CHECK, str(tiny_checkpoint)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.split()[-1] == "handled"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack via the C library on Linux")
def test_keep_signal_stack_puts_back_the_threads_signal_stack():
    import ctypes

    from beauty_app.retrieval.runtime import _SignalStack, keep_signal_stack

    libc = ctypes.CDLL(None)

    def current() -> tuple[int, int]:
        stack = _SignalStack()
        assert libc.sigaltstack(None, ctypes.byref(stack)) == 0
        return stack.ss_sp or 0, stack.ss_size

    before = current()
    replacement = ctypes.create_string_buffer(64 * 1024)  # what a library sets up inside the block
    with keep_signal_stack():
        stack = _SignalStack(ctypes.cast(replacement, ctypes.c_void_p), 0, len(replacement))
        assert libc.sigaltstack(ctypes.byref(stack), None) == 0
        assert current() == (ctypes.addressof(replacement), len(replacement))
    assert current() == before


def test_a_perturbed_runtime_falls_below_the_bound():
    features, saliency = torch.rand(3, 8, 4, 4) + 0.1, torch.rand(3, 1, 4, 4)
    assert feature_cosines((features, saliency), (features * 2, saliency)) == pytest.approx(1.0)
    assert feature_cosines((features, saliency), (torch.rand(3, 8, 4, 4) - 0.5, saliency)) < MIN_COSINE
    assert feature_cosines((features, saliency), (features, 1 - saliency)) < 1.0  # SR-MAC follows the saliency


def test_the_fastest_faithful_runtime_wins_and_torch_is_the_fallback():
    results = {"torch": {"ms_per_image": 9.0, "cosine": 1.0},
               "openvino": {"ms_per_image": 2.0, "cosine": 0.95},  # fastest but unfaithful
               "onnxruntime": {"ms_per_image": 4.0, "cosine": 0.999},
               "torch-channels-last": {"error": "could not build"}}
    assert fastest_faithful(results) == "onnxruntime"
    assert fastest_faithful({"openvino": {"ms_per_image": 1.0, "cosine": 0.5}}) == "torch"


def test_choice_is_measured_once_and_cached_per_machine_and_model(bundle, monkeypatch):
    calls = []

    def fake_measure(bundle_, input_size, runtimes, **kwargs):
        calls.append(sorted(runtimes))
        return {name: {"ms_per_image": 5.0 if name == "torch" else 1.0, "cosine": 0.999} for name in runtimes}

    monkeypatch.delenv(runtime_module.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(runtime_module, "available_runtimes", lambda: ["torch", "torch-channels-last"])
    monkeypatch.setattr(runtime_module, "measure_runtimes", fake_measure)
    runtime_module._choice_file().unlink(missing_ok=True)
    assert choose_runtime(bundle, 96) == "torch-channels-last"
    assert choose_runtime(bundle, 96) == "torch-channels-last"
    assert calls == [["torch", "torch-channels-last"]]  # the second answer came from the cache
    cached = json.loads(runtime_module._choice_file().read_text())
    assert [entry["choice"] for entry in cached.values()] == ["torch-channels-last"]
    choose_runtime(bundle, 128)  # another input size is another calibration
    assert len(calls) == 2


def test_fp32_multiscale_gpu_and_overrides_skip_the_measurement(bundle, monkeypatch):
    monkeypatch.setattr(runtime_module, "measure_runtimes", lambda *a, **k: pytest.fail("measured"))
    monkeypatch.delenv(runtime_module.RUNTIME_ENV, raising=False)
    assert choose_runtime(bundle, 96, use_amp=False) == "torch"  # --fp32 is the exact reference
    assert choose_runtime(bundle, 96, scales=(1.0, 0.7)) == "torch"
    assert choose_runtime(bundle, 96, requested="torch-channels-last") == "torch-channels-last"
    monkeypatch.setenv(runtime_module.RUNTIME_ENV, "torch-compile")
    assert choose_runtime(bundle, 96) == "torch-compile"
    with pytest.raises(UserError, match="Unknown runtime 'tensorrt'"):
        choose_runtime(bundle, 96, requested="tensorrt")


def test_without_the_fast_cpu_extra_auto_falls_back_to_torch_and_a_named_one_says_how_to_install(
        bundle, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(runtime_module.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("onnxruntime", "openvino", "onnx") else real_find_spec(name, *a))
    monkeypatch.delenv(runtime_module.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(runtime_module, "AUTO_CANDIDATES", ("torch", "onnxruntime"))
    assert runtime_module.available_runtimes()[:3] == ["torch", "torch-channels-last", "torch-compile"]
    assert choose_runtime(bundle, 96) == "torch"
    with pytest.raises(UserError, match=r"not installed; install it with .*fast-cpu"):
        make_runtime("openvino", bundle, 96)


def test_small_jobs_use_eager_torch_and_large_ones_the_chosen_runtime(bundle, monkeypatch):
    monkeypatch.delenv(runtime_module.RUNTIME_ENV, raising=False)
    monkeypatch.setattr("beauty_app.retrieval.extractor.choose_runtime", lambda *a, **k: "torch-channels-last")
    extractor = FeatureExtractor(bundle, "srmac", runtime="auto")
    assert extractor.runtime_for(3).name == "torch"
    assert extractor.runtime_for(10_000).name == "torch-channels-last"
    assert FeatureExtractor(bundle, "srmac", runtime="auto", scales=(1.0, 0.5)).runtime_for(10_000).name == "torch"


@pytest.mark.parametrize("name", [*EXPORTED, *(["openvino"] if HAS_OPENVINO else [])])
def test_exported_runtimes_keep_the_text_map_out_of_saliency_retrieval_features(tiny_checkpoint, tmp_path, name):
    from beauty_app.models.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint

    payload = read_checkpoint(tiny_checkpoint)
    model = model_from_checkpoint({**payload, "retrieval_attention": "saliency"})
    path = save_checkpoint(tmp_path / "split.safetensors", model, class_names=payload["class_names"],
                           input_size=payload["input_size"], mean=payload["mean"], std=payload["std"])
    split, paper = load_model(str(path)), load_model(str(tiny_checkpoint))
    pixels = calibration_pixels(split.input_size, 4)
    reference = TorchRuntime(split, use_amp=False).features(pixels)
    got = make_runtime(name, split, split.input_size, use_amp=False).features(pixels)
    assert feature_cosines(reference, got) >= MIN_COSINE
    # The exported graph is the split model's, not the paper's F * (1 + S + T).
    assert feature_cosines(TorchRuntime(paper, use_amp=False).features(pixels), got) < feature_cosines(reference, got)
