"""Benchmarks: the paper's accuracy tables (A1-A3) on demo data, and speed (indexing, queries, ANN).

Three benches, each returning a :class:`BenchReport` (JSON + a Markdown table, with the machine
and its load recorded) and reusing the product's own code paths:

* :func:`run_accuracy_bench`: generates a training catalog and a separate evaluation catalog of
  unseen products (:func:`~beauty_app.demo.products.generate_demo`), mines the training catalog
  (:func:`~beauty_app.training.mining.mine_dataset`), trains the ablation variants with the
  product's trainer and scores them: validation accuracy (Table A1), MAP@7 of six poolings
  (Table A2) and MAP@7 of the retrieval pipelines (Table A3), each with the paper's numbers
  beside ours and the pairs whose order differs from the paper's listed.
* :func:`run_speed_bench`: catalog indexing throughput and end-to-end query latency, ours
  (batched, mixed precision where supported, threaded decoding) against a naive baseline (fp32,
  batch 1, eager, serial decoding) measured in the same run on the same images.
* :func:`run_ann_bench`: build time, memory, single-query latency, batched throughput and
  recall@7 of the flat / IVF / HNSW / PQ indexes on synthetic clustered unit vectors.

Trained checkpoints, generated data and built indexes are kept in the output folder, so a re-run
with the same settings skips the finished parts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..device import describe_hardware
from ..errors import UserError
from ..jobs import JobControl, report

log = logging.getLogger(__name__)

Echo = Callable[[str], None]

#: Paper numbers (Wang et al. 2020, supplement), for the "paper" columns.
PAPER_A1 = {  # classification accuracy on Perfect-30K, ResNet50 backbone
    "backbone": 0.6517, "dss_saliency": 0.8484, "dss_text": 0.8361, "dss_both": 0.8562,
    "e2e_saliency": 0.8578, "e2e_text": 0.8361, "e2e_both": 0.8726,
}
PAPER_A2 = {"mac": 0.195, "spoc": 0.175, "rmac": 0.212, "ramac": 0.226, "srmac": 0.247}  # VGG16, Perfect-500K
PAPER_A3 = {"offshelf_gap": 0.207, "offshelf_ramac": 0.348, "finetuned_gap": 0.331, "manet_gap": 0.374,
            "manet_srmac": 0.395}  # ResNet50-based rows, Perfect-500K
A3_LABELS = {"offshelf_gap": "off-the-shelf GAP", "offshelf_ramac": "off-the-shelf RA-MAC",
             "finetuned_gap": "fine-tuned GAP", "manet_gap": "MANet GAP", "manet_srmac": "MANet+SR-MAC"}
A2_POOLINGS = ("gap", "mac", "spoc", "rmac", "ramac", "srmac")
POOLING_LABELS = {"gap": "GAP", "mac": "MAC", "spoc": "SPoC", "rmac": "R-MAC", "ramac": "RA-MAC", "srmac": "SR-MAC",
                  "gem": "GeM"}


# ---------------------------------------------------------------------------- reports
@dataclass
class Table:
    """One result table: raw values in `rows` (JSON keeps numbers), formatted only for Markdown."""

    title: str
    columns: list[str]
    rows: list[list[object]]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"title": self.title, "columns": list(self.columns),
                "rows": [dict(zip(self.columns, row)) for row in self.rows], "notes": list(self.notes)}

    def to_markdown(self) -> str:
        numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in self.rows)
                   for i in range(len(self.columns))]
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---:" if is_number else "---" for is_number in numeric) + "|"]
        lines += ["| " + " | ".join(format_cell(cell) for cell in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def format_cell(value: object) -> str:
    """A table cell: n/a for missing values, numbers rounded to what the measurement supports."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        magnitude = abs(value)
        if magnitude == 0:
            return "0"
        if magnitude >= 100:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


@dataclass
class BenchReport:
    """A finished bench: its tables, the machine it ran on, its settings and raw numbers."""

    name: str
    title: str
    tables: list[Table]
    machine: dict
    settings: dict
    results: dict = field(default_factory=dict)
    command: str = ""
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "command": self.command, "elapsed_s": round(self.elapsed_s, 1),
                "machine": self.machine, "settings": self.settings, "tables": [t.as_dict() for t in self.tables],
                "results": self.results}

    def to_markdown(self) -> str:
        m = self.machine
        gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
        load = m.get("load_before"), m.get("load_after")
        lines = [f"## {self.title}", "",
                 f"- Machine: {m.get('cpu')} ({m.get('cpu_count')} logical CPUs; bf16 instructions: "
                 f"{', '.join(m.get('cpu_bf16_flags') or []) or 'none'}){gpu}; torch {m.get('torch')}, "
                 f"faiss {m.get('faiss')}, Python {m.get('python')}; code {m.get('revision') or 'n/a'}",
                 f"- Device: {m.get('device', 'n/a')}; load average (1/5/15 min) before "
                 f"{_load_text(load[0])}, after {_load_text(load[1])}",
                 f"- Wall time: {self.elapsed_s:.0f} s"]
        if self.command:
            lines.append(f"- Command: `{self.command}`")
        lines.append("")
        return "\n".join(lines) + "\n" + "\n".join(t.to_markdown() for t in self.tables)


def _load_text(load) -> str:
    return "n/a" if not load else " / ".join(f"{v:.2f}" for v in load)


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux/macOS
        return None


def _cpu_bf16_flags() -> list[str]:
    try:
        flags = set(Path("/proc/cpuinfo").read_text(errors="ignore").split())
    except OSError:
        return []
    return [flag for flag in ("amx_bf16", "amx_tile", "avx512_bf16") if flag in flags]


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def code_revision() -> str | None:
    """The git commit the code runs from, with "+local changes" when the tree differs (None outside git)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "beauty_app"],
                               cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + (" +local changes" if dirty.stdout.strip() else "")


def machine_info(device: str | None = None) -> dict:
    """Hardware and software the numbers were measured on, plus the current load average."""
    info = describe_hardware()
    info.update({"cpu_bf16_flags": _cpu_bf16_flags(), "python": platform.python_version(),
                 "revision": code_revision(),
                 "faiss": _package_version("faiss-cpu") or _package_version("faiss-gpu") or _package_version("faiss"),
                 "platform": platform.platform()})
    if device is not None:
        info["device"] = device
    return info


def _finish(report_: BenchReport, started: float, load_before: list[float] | None) -> BenchReport:
    report_.machine["load_before"] = load_before
    report_.machine["load_after"] = _load_average()
    report_.elapsed_s = time.perf_counter() - started
    return report_


def write_report(bench: BenchReport, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.md``; returns both paths."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = out / f"{bench.name}.json", out / f"{bench.name}.md"
        json_path.write_text(json.dumps(bench.as_dict(), indent=2, ensure_ascii=False, default=str) + "\n",
                             encoding="utf-8")
        md_path.write_text(bench.to_markdown(), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Could not write the benchmark results to {out} ({exc.strerror or exc}).") from None
    return json_path, md_path


def percentile_ms(seconds: Sequence[float], q: float) -> float | None:
    """The q-th percentile of durations given in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if len(seconds) else None


def ordering_differences(ours: dict[str, float | None], paper: dict[str, float]) -> list[tuple[str, str, bool]]:
    """Pairs that the paper ranks one way and our numbers do not.

    Returns:
        (paper's higher key, paper's lower key, tie) for every pair our numbers reverse (tie False)
        or tie (tie True). Keys without a number on our side (n/a) and pairs the paper ties are skipped.
    """
    keys = [k for k in paper if ours.get(k) is not None]
    found = []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if paper[a] == paper[b]:
                continue
            high, low = (a, b) if paper[a] > paper[b] else (b, a)
            if ours[high] <= ours[low]:
                found.append((high, low, ours[high] == ours[low]))
    return found


def ordering_notes(ours: dict[str, float | None], paper: dict[str, float], labels: dict[str, str],
                   prefix: str = "") -> list[str]:
    """Our ranking, the paper's, and the pairs where they disagree, as table notes."""
    def ranking(values: dict[str, float | None]) -> str:
        keys = sorted((k for k in paper if values.get(k) is not None), key=lambda k: -values[k])
        return " > ".join(f"{labels[k]} {values[k]:.3f}" for k in keys)

    differences = ordering_differences(ours, paper)
    compared = [k for k in paper if ours.get(k) is not None]
    pairs = sum(1 for i, a in enumerate(compared) for b in compared[i + 1:] if paper[a] != paper[b])
    lines = [f"{prefix}Order here: {ranking(ours)}. Paper: {ranking(paper)}."]
    if not differences:
        lines.append(f"{prefix}Every pair is ordered as in the paper.")
    else:
        reversed_ = [f"{labels[low]} > {labels[high]}" for high, low, tie in differences if not tie]
        ties = [f"{labels[high]} = {labels[low]}" for high, low, tie in differences if tie]
        text = f"{prefix}{len(differences)} of {pairs} pairs differ from the paper's order"
        if reversed_:
            text += f"; reversed here: {', '.join(reversed_)}"
        if ties:
            text += f"; tied here: {', '.join(ties)}"
        lines.append(text + ".")
    return lines


def _settings_match(path: Path, settings: dict) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")) == settings
    except (OSError, ValueError):
        return False


def _write_settings(path: Path, settings: dict) -> None:
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _demo_data(folder: Path, settings: dict, echo: Echo, job: JobControl | None, **kwargs):
    """A generated demo catalog in `folder`, reused when it was made with the same settings."""
    from ..demo.products import DemoDataset, generate_demo

    marker = folder / "bench-settings.json"
    if _settings_match(marker, settings) and (folder / "truth.csv").is_file():
        return DemoDataset(folder, folder / "catalog.csv", folder / "queries", folder / "truth.csv", None,
                           settings["n_products"], -1, -1)  # counts unknown without reading; not needed
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished or foreign folder: stale files would mix in
    echo(f"generating {settings['n_products']} demo products in {folder}")
    stage = f"generate {folder.name}"
    dataset = generate_demo(folder, progress=lambda done, total: report(job, stage, done, total), **kwargs)
    _write_settings(marker, settings)
    return dataset


# ---------------------------------------------------------------------------- accuracy (Tables A1-A3)
@dataclass
class AccuracySettings:
    """Sizes of the accuracy bench (defaults fit in under 30 minutes on a 2-core CPU)."""

    products: int = 200  # training catalog (mined into the classification set)
    eval_products: int = 100  # evaluation catalog of unseen products, one query photo each
    seed: int = 0
    iterations: int = 70  # end-to-end iterations per variant (paper: 500)
    stage1_iterations: int = 20  # at most, saliency branch on a frozen backbone
    batch_size: int = 16
    input_size: int = 160  # training and retrieval input side (paper: 224)
    backbone: str = "efficientnet_lite0"
    image_size: int = 256  # generated image side
    qe: int = 2  # query expansion for the last Table A3 row
    min_images: int = 5
    workers: int = 2
    device: str = "auto"
    amp: bool = True


#: (key, attention, external saliency): the variants Table A1 needs; A3 reuses "backbone" and "e2e_both".
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("backbone", "none", False),
    ("dss_saliency", "saliency", True),
    ("dss_both", "both", True),
    ("text", "text", False),
    ("e2e_saliency", "saliency", False),
    ("e2e_both", "both", False),
)


def _train_config(settings: AccuracySettings, mined_root: Path, out: Path, attention: str, external: bool):
    from ..training.config import TrainConfig

    return TrainConfig(
        data=str(mined_root), out=str(out), backbone=settings.backbone, pretrained=settings.backbone != "tiny",
        attention=attention, external_saliency=external, iterations=settings.iterations,
        stage1_iterations=settings.stage1_iterations, batch_size=settings.batch_size, input_size=settings.input_size,
        workers=settings.workers, checkpoint_every=max(10, settings.iterations // 4), seed=settings.seed,
        device=settings.device, amp=settings.amp)


def _train_variant(key: str, attention: str, external: bool, settings: AccuracySettings, mined_root: Path,
                   models_dir: Path, echo: Echo, job: JobControl | None) -> tuple[Path, float]:
    """Train one variant (or reuse its checkpoint trained with the same config); returns (path, seconds)."""
    from ..models.checkpoint import read_checkpoint
    from ..training.trainer import TrainingEvents, resume_path_for, train

    out = models_dir / f"{key}.safetensors"
    config = _train_config(settings, mined_root, out, attention, external)
    wanted = asdict(config)
    if out.is_file() and read_checkpoint(out).get("train_config") == wanted:
        echo(f"{key}: reusing {out}")
        return out, float(read_checkpoint(out).get("metrics", {}).get("train_seconds", 0.0))
    state = resume_path_for(out)
    resume = state.is_file() and read_checkpoint(state).get("train_config") == wanted
    if state.is_file() and not resume:
        state.unlink()
    echo(f"{key}: training {settings.backbone} MANet, attention {attention}"
         f"{' (external saliency)' if external else ''}{' (resuming)' if resume else ''}")
    events = TrainingEvents(on_step=lambda s: report(job, f"train {key} stage {s.stage}", s.iteration, s.total,
                                                     f"loss {s.loss:.3f}"))
    result = train(config, resume=resume, events=events)
    return out, result.elapsed_s


def _offshelf_spec(settings: AccuracySettings, models_dir: Path, mined) -> str:
    """The off-the-shelf model: ImageNet weights, or (tiny test backbone) a saved untrained network."""
    if settings.backbone != "tiny":
        return f"imagenet:{settings.backbone}"
    import torch

    from ..models.checkpoint import save_checkpoint
    from ..models.manet import MANet

    path = models_dir / "offshelf_tiny.safetensors"
    if not path.is_file():
        torch.manual_seed(settings.seed)
        save_checkpoint(path, MANet("tiny", 0, attention="none"), class_names=[], input_size=settings.input_size,
                        mean=mined.mean, std=mined.std, train_config={"note": "untrained tiny stand-in"})
    return str(path)


class _Retrieval:
    """Builds (or reuses) one index per (model, pooling) on the evaluation catalog and scores it."""

    def __init__(self, eval_data, indexes_dir: Path, settings: AccuracySettings, device, job, echo: Echo):
        self.eval_data = eval_data
        self.indexes_dir = indexes_dir
        self.settings = settings
        self.device = device
        self.job = job
        self.echo = echo
        self._bundles: dict[str, object] = {}
        self.timings: dict[str, float] = {}

    def bundle(self, spec: str):
        from ..models.checkpoint import load_model

        if spec not in self._bundles:
            self._bundles[spec] = load_model(spec, device=self.device)
        return self._bundles[spec]

    def _ready(self, index_dir: Path, bundle, pooling: str) -> bool:
        from ..retrieval.index import DB_NAME, CatalogIndex

        if not (index_dir / DB_NAME).is_file():
            return False
        try:
            with CatalogIndex.open(index_dir) as index:
                s = index.settings()
        except UserError:
            return False
        return (bool(s.get("complete")) and s.get("model_fingerprint") == bundle.fingerprint
                and s.get("pooling") == pooling and s.get("input_size") == self.settings.input_size)

    def map_at_7(self, name: str, spec: str, pooling: str, query_expansion: int = 0) -> dict:
        """MAP@7 (paper denominator) with its standard error over the evaluation queries."""
        from ..catalog_io import read_catalog
        from ..retrieval.build import build_index
        from ..retrieval.extractor import FeatureExtractor
        from ..retrieval.search import SearchSession
        from .evaluate import evaluate

        bundle = self.bundle(spec)
        index_dir = self.indexes_dir / f"{name}-{pooling}"
        started = time.perf_counter()
        if not self._ready(index_dir, bundle, pooling):
            if index_dir.exists():
                shutil.rmtree(index_dir)
            self.echo(f"indexing the evaluation catalog: {name}, {POOLING_LABELS.get(pooling, pooling)}")
            extractor = FeatureExtractor(bundle, pooling, batch_size=16, input_size=self.settings.input_size,
                                         use_amp=self.settings.amp)
            build_index(read_catalog(self.eval_data.catalog_csv), extractor, index_dir, job=self.job)
        with SearchSession(index_dir, bundle.spec, device=self.device, bundle=bundle,
                           use_amp=self.settings.amp) as session:
            result = evaluate(session, self.eval_data.queries_dir, self.eval_data.truth_csv, k=7,
                              query_expansion=query_expansion, job=self.job)
        self.timings[f"{name}-{pooling}{'-qe' if query_expansion else ''}"] = round(time.perf_counter() - started, 1)
        aps = np.array(list(result.result.per_query.values()), dtype=np.float64)
        se = float(aps.std(ddof=1) / math.sqrt(len(aps))) if len(aps) > 1 else None
        return {"map": float(result.result.value), "se": se, "queries": len(aps)}


def _accuracy_se(accuracy: float | None, n: int | None) -> float | None:
    if accuracy is None or not n:
        return None
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)


def run_accuracy_bench(out_dir: str | os.PathLike, settings: AccuracySettings | None = None, *,
                       job: JobControl | None = None, echo: Echo | None = None, command: str = "") -> BenchReport:
    """Tables A1-A3 of the paper on generated demo data (see the module docstring).

    Everything is cached under ``out_dir/accuracy-work`` (data, mined set, checkpoints, indexes).
    """
    from ..device import pick_device
    from ..models.checkpoint import read_checkpoint
    from ..training.mining import MinedDataset, mine_dataset

    settings = settings or AccuracySettings()
    echo = echo or log.info
    started, load_before = time.perf_counter(), _load_average()
    device = pick_device(settings.device)
    settings = replace(settings, device=str(device))
    work = Path(out_dir) / "accuracy-work"
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # Data: a training catalog to mine and a catalog of other (unseen) products to retrieve from.
    # Folder names carry the settings, so cached models and indexes (which name their data by path)
    # can never be reused for data made with other settings.
    t0 = time.perf_counter()
    train_dir = work / f"train-{settings.products}p-seed{settings.seed}-{settings.image_size}px"
    train_data = _demo_data(train_dir, {"n_products": settings.products, "seed": settings.seed,
                                        "image_size": settings.image_size}, echo, job,
                            n_products=settings.products, seed=settings.seed, image_size=settings.image_size)
    # Another seed gives other products; not seed + 1000, which made the shipped demo model's training catalog.
    eval_seed = settings.seed + 7919
    eval_dir = work / f"eval-{settings.eval_products}p-seed{eval_seed}-{settings.image_size}px"
    eval_data = _demo_data(eval_dir, {"n_products": settings.eval_products, "seed": eval_seed,
                                      "image_size": settings.image_size, "query_fraction": 1.0},
                           echo, job, n_products=settings.eval_products, seed=eval_seed,
                           image_size=settings.image_size, query_fraction=1.0)
    mined_dir = train_dir / f"mined-min{settings.min_images}"
    if (mined_dir / "stats.json").is_file():
        mined = MinedDataset.load(mined_dir)
    else:
        echo("mining the training catalog's descriptions into categories")
        mined = mine_dataset(train_data.catalog_csv, mined_dir, keywords="default", min_images=settings.min_images,
                             seed=settings.seed, workers=2, job=job)
    timings["data"] = round(time.perf_counter() - t0, 1)

    # Table A1: train every variant (cached), read the trainer's validation accuracy.
    models_dir = work / "models"
    checkpoints: dict[str, Path] = {}
    accuracy: dict[str, dict] = {}
    for key, attention, external in VARIANTS:
        path, seconds = _train_variant(key, attention, external, settings, mined.root, models_dir, echo, job)
        checkpoints[key] = path
        metrics = read_checkpoint(path).get("metrics", {})
        value, n = metrics.get("val_accuracy"), metrics.get("val_images")
        accuracy[key] = {"accuracy": value, "se": _accuracy_se(value, n), "val_images": n}
        timings[f"train {key}"] = round(seconds, 1)

    def acc_row(network: str, attention: str, key: str, paper_key: str, note: str = "") -> list[object]:
        a = accuracy[key]
        return [network, attention + note, a["accuracy"], a["se"], PAPER_A1[paper_key]]

    a1 = Table(
        "Table A1: classification accuracy on the mined validation split",
        ["network", "attention", "accuracy", "± s.e.", "paper (ResNet50)"],
        [acc_row(f"{settings.backbone}, no attention (fine-tuned)", "n/a", "backbone", "backbone"),
         acc_row("MANet, external saliency (pseudo masks)", "saliency", "dss_saliency", "dss_saliency"),
         acc_row("MANet, external saliency (pseudo masks)", "text", "text", "dss_text", " *"),
         acc_row("MANet, external saliency (pseudo masks)", "saliency + text", "dss_both", "dss_both"),
         acc_row("End-to-end MANet", "saliency", "e2e_saliency", "e2e_saliency"),
         acc_row("End-to-end MANet", "text", "text", "e2e_text", " *"),
         acc_row("End-to-end MANet", "saliency + text", "e2e_both", "e2e_both")])
    a1.notes += [
        f"{len(mined.classes)} categories mined from {len(mined.train) + len(mined.val)} catalog images "
        f"({len(mined.train)} train / {len(mined.val)} val); {settings.iterations} end-to-end iterations "
        f"(+ at most {settings.stage1_iterations} saliency-branch iterations) of batch {settings.batch_size} at "
        f"{settings.input_size} px, vs the paper's 500 iterations on Perfect-30K at 224 px.",
        "'External saliency' is the paper's 'MANet with DSS': the saliency map comes from outside the network; "
        "here it is the pseudo mask of the training pipeline (no DSS network), at training and validation.",
        "* A text-only MANet has no saliency input, so the external-saliency and end-to-end text rows are the same "
        "model (the paper's two text rows are equal too).",
        "s.e. = binomial standard error of the accuracy; differences within about two s.e. are noise.",
    ]
    ours_a1 = {"backbone": accuracy["backbone"]["accuracy"], "dss_saliency": accuracy["dss_saliency"]["accuracy"],
               "dss_both": accuracy["dss_both"]["accuracy"], "e2e_saliency": accuracy["e2e_saliency"]["accuracy"],
               "e2e_text": accuracy["text"]["accuracy"], "e2e_both": accuracy["e2e_both"]["accuracy"]}
    a1_labels = {"backbone": "backbone only", "dss_saliency": "external saliency",
                 "dss_both": "external saliency+text", "e2e_saliency": "end-to-end saliency",
                 "e2e_text": "text", "e2e_both": "end-to-end saliency+text"}
    a1.notes += ordering_notes(ours_a1, {k: v for k, v in PAPER_A1.items() if k != "dss_text"}, a1_labels)

    # Table A2: six poolings on the off-the-shelf backbone and on the end-to-end MANet's feature map.
    retrieval = _Retrieval(eval_data, work / "indexes" / eval_dir.name, settings, device, job, echo)
    offshelf = _offshelf_spec(settings, models_dir, mined)
    weights = "untrained" if settings.backbone == "tiny" else "ImageNet"  # tiny: the test stand-in
    manet = str(checkpoints["e2e_both"])
    a2_results: dict[str, dict[str, dict | None]] = {"offshelf": {}, "manet": {}}
    for pooling in A2_POOLINGS:
        a2_results["offshelf"][pooling] = (None if pooling == "srmac"
                                           else retrieval.map_at_7("offshelf", offshelf, pooling))
        a2_results["manet"][pooling] = retrieval.map_at_7("manet", manet, pooling)

    def value(entry: dict | None, what: str = "map"):
        return None if entry is None else entry[what]

    a2 = Table(
        "Table A2: MAP@7 of the pooling methods",
        ["pooling", f"off-the-shelf {settings.backbone} ({weights})", "± s.e.",
         f"end-to-end MANet ({settings.backbone}, fine-tuned)", "± s.e.", "paper (VGG16, off-the-shelf)"],
        [[POOLING_LABELS[p], value(a2_results["offshelf"][p]), value(a2_results["offshelf"][p], "se"),
          value(a2_results["manet"][p]), value(a2_results["manet"][p], "se"), PAPER_A2.get(p)]
         for p in A2_POOLINGS])
    n_queries = value(a2_results["manet"]["gap"], "queries")
    a2.notes += [
        f"Evaluation catalog: {settings.eval_products} unseen products (other seed than training), one query photo "
        f"each ({n_queries} queries); MAP@7 with the paper's denominator (all relevant catalog images).",
        "Left column: the pooling applied to the ImageNet backbone's last feature map. Right column: the same "
        "pooling applied to the end-to-end MANet's re-weighted feature map (F' = F (1 + S + T)); SR-MAC uses that "
        "MANet's saliency map. The paper applies MANet's saliency to off-the-shelf VGG16 features instead.",
        "SR-MAC needs a saliency map, which the off-the-shelf backbone does not have (n/a).",
        "s.e. = standard error of the mean AP over the queries.",
    ]
    for column, label in (("offshelf", "Off-the-shelf"), ("manet", "MANet")):
        ours = {p: value(a2_results[column][p]) for p in PAPER_A2}
        a2.notes += ordering_notes(ours, PAPER_A2, POOLING_LABELS, prefix=f"{label} column: ")

    # Table A3: the retrieval pipelines (A1's models reused).
    finetuned = retrieval.map_at_7("finetuned", str(checkpoints["backbone"]), "gap")
    qe = retrieval.map_at_7("manet", manet, "srmac", query_expansion=settings.qe) if settings.qe > 0 else None
    a3_rows = [
        ("offshelf_gap", f"off-the-shelf {settings.backbone} ({weights}), GAP", a2_results["offshelf"]["gap"],
         "Pre-trained ResNet50"),
        ("offshelf_ramac", f"off-the-shelf {settings.backbone} ({weights}), RA-MAC", a2_results["offshelf"]["ramac"],
         "RA-MAC"),
        ("finetuned_gap", f"{settings.backbone} fine-tuned without attention, GAP", finetuned, "ResNet-50 (Perfect-30K)"),
        ("manet_gap", "MANet (end-to-end), GAP", a2_results["manet"]["gap"], "MANet"),
        ("manet_srmac", "MANet + SR-MAC", a2_results["manet"]["srmac"], "MANet+SR-MAC"),
    ]
    a3 = Table("Table A3: MAP@7 of the retrieval pipelines",
               ["method", "MAP@7", "± s.e.", "paper row", "paper MAP@7"],
               [[label, value(entry), value(entry, "se"), paper_label, PAPER_A3[key]]
                for key, label, entry, paper_label in a3_rows])
    if qe is not None:
        a3.rows.append([f"MANet + SR-MAC + query expansion (top {settings.qe})", qe["map"], qe["se"], "(not in paper)",
                        None])
    a3.notes += [
        "The paper's MANet rows use ResNet50 on Perfect-500K; ours use the same backbone for every row and the "
        "evaluation catalog of Table A2. 'MANet with DSS' rows are left out: that model needs an external saliency "
        "mask at inference.",
    ]
    ours_a3 = {key: value(entry) for key, _, entry, _ in a3_rows}
    a3.notes += ordering_notes(ours_a3, PAPER_A3, A3_LABELS)

    timings.update(retrieval.timings)
    results = {"accuracy": accuracy, "a2": a2_results, "a3": {**{k: e for k, _, e, _ in a3_rows}, "manet_srmac_qe": qe},
               "classes": list(mined.classes), "train_images": len(mined.train), "val_images": len(mined.val),
               "timings_s": timings}
    bench = BenchReport("accuracy", "Accuracy: the paper's Tables A1-A3 on the synthetic demo catalog",
                        [a1, a2, a3], machine_info(str(device)), asdict(settings), results, command)
    return _finish(bench, started, load_before)


# ---------------------------------------------------------------------------- speed
@dataclass
class SpeedSettings:
    """Sizes of the indexing / query-latency bench."""

    catalog_size: int = 300
    queries: int = 50
    device: str = "auto"
    model: str | None = None  # default: the shipped demo MANet, else the ImageNet backbone
    pooling: str | None = None  # default: srmac with a saliency branch, else ramac
    batch_size: int = 32
    workers: int = 2
    seed: int = 0
    warmup: int = 3


def _timed_queries(sessions: dict, paths: Sequence[Path], warmup: int, job) -> dict[str, list[float]]:
    """End-to-end seconds of `search_image` per query for each session, interleaved query by query.

    On a shared machine the background load drifts; timing the sessions in turns on the same
    query (first one, then the other first) exposes both to the same load instead of one to the
    quiet minutes and the other to the busy ones.
    """
    names = list(sessions)
    for path in list(paths)[:warmup]:
        for session in sessions.values():
            session.search_image(path, k=7)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i, path in enumerate(paths):
        for name in (names if i % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            sessions[name].search_image(path, k=7)
            seconds[name].append(time.perf_counter() - t)
        report(job, "queries", i + 1, len(paths))
    return seconds


def _stage_times(session, paths: Sequence[Path]) -> dict[str, list[float]]:
    """Per-stage seconds of the query path: the three calls `SearchSession.search_image` makes."""
    from ..imaging import load_image
    from ..retrieval.extractor import DECODE_MAX_SIDE

    stages: dict[str, list[float]] = {"decode": [], "analyze": [], "search": []}
    for path in paths:
        t0 = time.perf_counter()
        image = load_image(path, max_side=DECODE_MAX_SIDE)
        t1 = time.perf_counter()
        analysis = session.extractor.analyze(image)
        t2 = time.perf_counter()
        session.index.search(analysis.vector[None], 7)
        t3 = time.perf_counter()
        for name, seconds in (("decode", t1 - t0), ("analyze", t2 - t1), ("search", t3 - t2)):
            stages[name].append(seconds)
    return stages


def _naive_vectors(extractor, entries, job) -> tuple[np.ndarray, float]:
    """The baseline: decode one image, run it alone in fp32, pool it, next image (nothing overlaps)."""
    import torch

    from ..imaging import load_image
    from ..retrieval.extractor import DECODE_MAX_SIDE

    vectors = []
    started = time.perf_counter()
    for i, entry in enumerate(entries):
        image = load_image(entry.path, max_side=DECODE_MAX_SIDE)
        vectors.append(extractor.vectors(extractor.to_tensor(image)[None])[0])
        report(job, "naive indexing", i + 1, len(entries))
    if extractor.device.type == "cuda":
        torch.cuda.synchronize(extractor.device)
    return np.stack(vectors), time.perf_counter() - started


def _sync(device) -> None:
    if getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.synchronize(device)


def run_speed_bench(out_dir: str | os.PathLike, settings: SpeedSettings | None = None, *,
                    job: JobControl | None = None, echo: Echo | None = None, command: str = "") -> BenchReport:
    """Catalog indexing throughput and query latency, ours against the naive baseline, same run and images."""
    import torch

    from ..catalog_io import read_catalog
    from ..demo.runner import default_model_spec
    from ..device import autocast_dtype, pick_device
    from ..models.checkpoint import load_model
    from ..retrieval.build import build_index
    from ..retrieval.extractor import FeatureExtractor
    from ..retrieval.index import CatalogIndex, make_faiss_index
    from ..retrieval.search import SearchSession, query_files_in

    settings = settings or SpeedSettings()
    echo = echo or log.info
    if settings.catalog_size < 1 or settings.queries < 1:
        raise UserError("The speed bench needs a catalog size and a query count of at least 1.")
    started, load_before = time.perf_counter(), _load_average()
    device = pick_device(settings.device)
    work = Path(out_dir) / "speed-work"
    work.mkdir(parents=True, exist_ok=True)
    n_products = math.ceil(settings.catalog_size / 2)
    per_product = math.ceil(settings.queries / n_products)
    data = _demo_data(work / "catalog", {"n_products": n_products, "seed": settings.seed, "views": 2,
                                         "queries_per_product": per_product}, echo, job,
                      n_products=n_products, seed=settings.seed, views_per_product=(2, 2), query_fraction=1.0,
                      queries_per_product=per_product)
    catalog = read_catalog(data.catalog_csv)
    catalog = replace(catalog, entries=catalog.entries[:settings.catalog_size])
    queries = query_files_in(data.queries_dir)[:settings.queries]

    spec, default_pooling = (settings.model, None) if settings.model else default_model_spec()
    bundle = load_model(spec, device=device)
    pooling = settings.pooling or default_pooling or ("srmac" if bundle.has_saliency else "ramac")
    settings = replace(settings, device=str(device), model=bundle.spec, pooling=pooling)
    ours = FeatureExtractor(bundle, pooling, batch_size=settings.batch_size, use_amp=True,
                            decode_workers=settings.workers)
    naive = FeatureExtractor(bundle, pooling, batch_size=1, use_amp=False, decode_workers=1)

    # Warm-up outside the clock: first calls pay for lazy initialisation (kernels, allocator, caches).
    warm = catalog.entries[:max(1, min(settings.warmup, len(catalog.entries)))]
    ours.extract_paths([e.path for e in warm])
    _naive_vectors(naive, warm, None)

    echo(f"indexing {len(catalog.entries)} catalog images: ours (batch {settings.batch_size}, "
         f"{settings.workers} decode threads, autocast {autocast_dtype(device, True) or 'off'})")

    def build(folder: Path):
        if folder.exists():
            shutil.rmtree(folder)
        _sync(device)
        return build_index(catalog, ours, folder, job=job)

    # Ours runs before and after the (long) naive pass, so a change in background load during the
    # run weighs on both sides; its rate is over both builds.
    index_dir = work / "index-ours"
    first = build(index_dir)
    echo("indexing the same images: naive (fp32, batch 1, serial decoding)")
    naive_matrix, naive_seconds = _naive_vectors(naive, catalog.entries, job)
    t = time.perf_counter()
    make_faiss_index(naive_matrix, "flat")
    naive_seconds += time.perf_counter() - t
    naive_rate = len(catalog.entries) / naive_seconds
    echo("indexing with ours again")
    second = build(work / "index-ours-again")
    shutil.rmtree(work / "index-ours-again")
    ours_rate = (first.indexed + second.indexed) / (first.elapsed_s + second.elapsed_s)

    # Do the two paths give the same vectors? (bf16 autocast changes the last digits, not the ranking.)
    with CatalogIndex.open(index_dir) as index:
        ours_matrix = index.raw_vectors()
        order = [item["id"] for item in index.iter_items()]
    position = {entry.id: i for i, entry in enumerate(catalog.entries)}
    matched = naive_matrix[[position[i] for i in order]]
    agreement = float(np.mean(np.sum(ours_matrix * matched, axis=1) /
                              (np.linalg.norm(ours_matrix, axis=1) * np.linalg.norm(matched, axis=1) + 1e-12)))

    echo(f"timing {len(queries)} queries end to end (decode, forward, heatmaps, {pooling}, search)")
    with SearchSession(index_dir, bundle.spec, device=device, bundle=bundle, use_amp=True) as fast, \
            SearchSession(index_dir, bundle.spec, device=device, bundle=bundle, use_amp=False) as slow:
        latency = _timed_queries({"ours": fast, "naive": slow}, queries, settings.warmup, job)
        stages = _stage_times(fast, queries)
    ours_latency, naive_latency = latency["ours"], latency["naive"]

    p50, p95 = percentile_ms(ours_latency, 50), percentile_ms(ours_latency, 95)
    n50, n95 = percentile_ms(naive_latency, 50), percentile_ms(naive_latency, 95)
    main = Table(
        f"Indexing and query speed ({device.type}, {bundle.describe()}, {pooling})",
        ["measure", "ours", "naive baseline", "speed-up (×)"],
        [["catalog indexing (images/s)", ours_rate, naive_rate, ours_rate / naive_rate],
         ["query latency p50 (ms)", p50, n50, n50 / p50],
         ["query latency p95 (ms)", p95, n95, n95 / p95]])
    main.notes += [
        f"{len(catalog.entries)} catalog images and {len(queries)} query photos of the synthetic demo "
        f"(256 px JPEGs); network input {ours.input_size} px; model {bundle.spec}.",
        f"Ours: batches of {settings.batch_size}, {settings.workers} decoding threads one batch ahead of the network, "
        f"autocast {autocast_dtype(device, True) or 'off (no native bf16 here)'}; the indexing time is the whole "
        f"`catalog build` path, which also writes SQLite rows, thumbnails and comparison poolings.",
        "Naive: decode one image, run it alone in fp32, pool it, then the next (no overlap), plus a flat faiss "
        "index; it writes nothing to disk, so the indexing ratio is conservative.",
        "Query latency: `SearchSession.search_image` end to end (decode, MANet forward, heatmaps, pooling, "
        "SR-MAC regions, search) on the same index; naive = the same path in fp32. Both run one image at a time, "
        "taking turns query by query; our indexing rate is over two builds, before and after the naive pass.",
        f"Vectors of the two paths agree to a mean cosine of {agreement:.4f}.",
    ]
    stages["total"] = [sum(parts) for parts in zip(*stages.values())]
    breakdown = Table("Query latency by stage (ours)", ["stage", "p50 (ms)", "p95 (ms)"],
                      [[name, percentile_ms(values, 50), percentile_ms(values, 95)] for name, values in stages.items()])
    breakdown.notes.append("A second pass over the same queries, timing the three calls `search_image` makes; "
                           "analyze = MANet forward + heatmaps upsampled to the image + pooling + SR-MAC regions.")
    results = {"indexing_images_per_s": {"ours": ours_rate, "naive": naive_rate,
                                         "ours_builds": [first.rate, second.rate]},
               "query_latency_ms": {"ours": {"p50": p50, "p95": p95}, "naive": {"p50": n50, "p95": n95}},
               "stage_latency_ms": {name: {"p50": percentile_ms(v, 50), "p95": percentile_ms(v, 95)}
                                    for name, v in stages.items()},
               "vector_agreement_cosine": agreement, "catalog_images": len(catalog.entries), "queries": len(queries),
               "autocast": str(autocast_dtype(device, True)), "torch_threads": torch.get_num_threads()}
    bench = BenchReport("speed", "Speed: catalog indexing and query latency", [main, breakdown],
                        machine_info(str(device)), asdict(settings), results, command)
    return _finish(bench, started, load_before)


# ---------------------------------------------------------------------------- ANN indexes
@dataclass
class AnnSettings:
    """Sizes of the approximate-search bench."""

    sizes: tuple[int, ...] = (100_000, 500_000)
    dim: int = 1280  # EfficientNet-Lite0's feature dimension
    queries: int = 1000  # for recall@7 and batched throughput
    latency_queries: int = 200  # timed one at a time on one thread
    types: tuple[str, ...] = ("flat", "ivf", "hnsw", "pq")
    k: int = 7
    seed: int = 0
    threads: int | None = None  # faiss threads for building and batched search (default: all cores)


def synthetic_vectors(n: int, dim: int, *, seed: int = 0, stream: int = 0, clusters: int | None = None,
                      latent: int = 64) -> np.ndarray:
    """Clustered L2-normalised float32 vectors, a stand-in for CNN retrieval features.

    Points are drawn around cluster centres in a `latent`-dimensional space, mapped to `dim`
    dimensions by a fixed random orthonormal map, given a little isotropic noise and normalised:
    a strongly decaying spectrum like real descriptors, unlike isotropic noise. The centres and the
    map depend only on (seed, dim, clusters); `stream` draws other points (queries) from them.
    """
    latent = min(latent, dim)
    clusters = clusters or max(8, n // 100)
    shape_rng = np.random.default_rng([seed, dim, clusters])
    basis = np.linalg.qr(shape_rng.standard_normal((dim, latent)))[0].T.astype(np.float32)
    centres = shape_rng.standard_normal((clusters, latent)).astype(np.float32)
    rng = np.random.default_rng([seed, dim, clusters, stream + 1])
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 50_000):  # chunks bound the temporary memory at 500K x 1280
        m = min(50_000, n - start)
        z = centres[rng.integers(0, clusters, m)] + 0.5 * rng.standard_normal((m, latent), dtype=np.float32)
        block = z @ basis + 0.02 * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _index_parameters(index) -> str:
    """The search parameters a faiss index was built with, read back from the index itself."""
    parts = []
    for name in ("nlist", "nprobe"):
        if hasattr(index, name):
            parts.append(f"{name} {getattr(index, name)}")
    pq = getattr(index, "pq", None)
    if pq is not None:
        parts.append(f"PQ {pq.M}x{pq.nbits} bit")
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        parts.append(f"efConstruction {hnsw.efConstruction}, efSearch {hnsw.efSearch}")
    return ", ".join(parts) or "exact"


def _ann_report(settings: AnnSettings, results: dict[str, dict], threads: int, machine: dict,
                command: str) -> BenchReport:
    """The ANN report from the measurements so far (one table per catalog size)."""
    tables = []
    for size, per_type in results.items():
        flat_p50 = per_type["flat"]["p50_ms"]
        rows = [[kind, r["faiss_class"], r["parameters"], r["build_s"], r["memory_bytes"] / 2**20, r["bytes_per_vector"], r["p50_ms"],
                 r["p95_ms"], flat_p50 / r["p50_ms"], r["batched_qps"], r["recall_at_k"]] for kind, r in per_type.items()]
        tables.append(Table(f"{int(size):,} vectors of {settings.dim} dimensions",
                            ["index", "faiss class", "parameters", "build (s)", "memory (MiB)", "bytes/vector", "p50 (ms)",
                             "p95 (ms)", "speed-up vs flat (p50)",
                             f"batched (queries/s, {threads} thread{'' if threads == 1 else 's'})",
                             f"recall@{settings.k}"], rows))
    if tables:
        tables[-1].notes += [
            "Indexes exactly as `catalog build --index-type` makes them (`make_faiss_index`), with the parameters "
            "read back from each index; flat = exact inner-product search, the naive baseline.",
            f"Latency: {min(settings.latency_queries, settings.queries)} single queries on one thread "
            f"(`set_search_threads(1)`), top {settings.k}; batched: all {settings.queries} queries in one call on "
            f"{threads} thread(s), the same count that builds. "
            f"Recall@{settings.k}: overlap with the flat index's exact top {settings.k}.",
            "Memory: the serialized size of the index (`faiss_to_bytes`): its vectors/codes, lists and graph, which "
            "is what it holds in RAM apart from allocator overhead. It includes the IVF coarse quantiser's centroids.",
            "Vectors: synthetic, clustered in a 64-dimensional subspace (N/100 clusters) plus a little isotropic "
            "noise, L2-normalised; a stand-in for real features, whose recall for IVF/PQ can be lower.",
        ]
    return BenchReport("ann", "Approximate search: flat, IVF, HNSW and PQ indexes", tables, machine,
                       {**asdict(settings), "threads": threads}, results, command)


def run_ann_bench(out_dir: str | os.PathLike, settings: AnnSettings | None = None, *,
                  job: JobControl | None = None, echo: Echo | None = None, command: str = "",
                  partial: Callable[[BenchReport], None] | None = None) -> BenchReport:
    """Flat / IVF / HNSW / PQ (the product's :func:`make_faiss_index` settings) on synthetic vectors.

    Args:
        partial: called with the report so far after every index, so a long run that is stopped
            still leaves its finished measurements.
    """
    from ..retrieval.index import INDEX_TYPES, faiss_to_bytes, make_faiss_index, set_search_threads
    from .metrics import recall_at_k

    settings = settings or AnnSettings()
    echo = echo or log.info
    unknown = [t for t in settings.types if t not in INDEX_TYPES]
    if unknown:
        raise UserError(f"Unknown index type {unknown[0]!r}; choose from {', '.join(INDEX_TYPES)}.")
    if not settings.sizes or min(settings.sizes) < settings.k or settings.dim < 2 or settings.queries < 1:
        raise UserError(f"The ANN bench needs catalog sizes of at least k={settings.k}, a dimension of at least 2 "
                        f"and at least one query.")
    types = ["flat"] + [t for t in settings.types if t != "flat"]  # flat gives the exact answers
    started, load_before = time.perf_counter(), _load_average()
    threads = settings.threads or os.cpu_count() or 1
    machine = machine_info("cpu (faiss)")
    results: dict[str, dict] = {}
    try:
        for size in settings.sizes:
            echo(f"{size:,} synthetic {settings.dim}-d vectors")
            clusters = max(8, size // 100)
            base = synthetic_vectors(size, settings.dim, seed=settings.seed, clusters=clusters)
            queries = synthetic_vectors(settings.queries, settings.dim, seed=settings.seed, stream=1,
                                        clusters=clusters)
            n_latency = min(settings.latency_queries, settings.queries)
            exact, per_type = None, results.setdefault(str(size), {})
            for kind in types:
                report(job, f"ann {size:,}", types.index(kind), len(types), f"building {kind}")
                set_search_threads(threads)
                t = time.perf_counter()
                index = make_faiss_index(base, kind)
                build_s = time.perf_counter() - t
                memory = len(faiss_to_bytes(index))
                t = time.perf_counter()
                _, ids = index.search(queries, settings.k)
                batched_qps = len(queries) / (time.perf_counter() - t)
                if exact is None:
                    exact = ids
                set_search_threads(1)
                latency = []
                for i in range(n_latency):
                    t = time.perf_counter()
                    index.search(queries[i:i + 1], settings.k)
                    latency.append(time.perf_counter() - t)
                per_type[kind] = {
                    "build_s": build_s, "memory_bytes": memory, "bytes_per_vector": memory / size,
                    "p50_ms": percentile_ms(latency, 50), "p95_ms": percentile_ms(latency, 95),
                    "batched_qps": batched_qps, "recall_at_k": recall_at_k(ids, exact, settings.k),
                    "faiss_class": type(index).__name__, "parameters": _index_parameters(index)}
                del index
                report(job, f"ann {size:,}", types.index(kind) + 1, len(types), f"{kind} done")
                if partial is not None:
                    so_far = _ann_report(settings, results, threads, dict(machine), command)
                    partial(_finish(so_far, started, load_before))
            del base
    finally:
        set_search_threads(os.cpu_count() or 1)
    return _finish(_ann_report(settings, results, threads, machine, command), started, load_before)


def parse_sizes(text: str) -> tuple[int, ...]:
    """"100000,500000" or "100k,0.5M" -> (100000, 500000)."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        scale = 1
        if part[-1] in "km":
            scale = 1000 if part[-1] == "k" else 1_000_000
            part = part[:-1]
        try:
            sizes.append(int(round(float(part) * scale)))
        except ValueError:
            raise UserError(f"--sizes must be comma-separated counts such as 100000,500000, not {text!r}.") from None
    if not sizes or min(sizes) < 1:
        raise UserError("--sizes must list positive counts.")
    return tuple(sizes)


def command_line(argv: Iterable[str] | None = None) -> str:
    """The command as typed (for the reports): program name plus arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["beauty-app", *args])
