"""What every bench returns and writes: result tables, the machine they ran on, JSON + Markdown files."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from beauty_app.device import describe_hardware
from beauty_app.errors import UserError

Echo = Callable[[str], None]
"""Where a bench writes its one-line status messages (the CLI prints them; default: the log)."""


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


def load_average() -> list[float] | None:
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

    root = Path(__file__).resolve().parents[3]
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


def finish_report(report_: BenchReport, started: float, load_before: list[float] | None) -> BenchReport:
    report_.machine["load_before"] = load_before
    report_.machine["load_after"] = load_average()
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


def command_line(argv: Iterable[str] | None = None) -> str:
    """The command as typed (for the reports): program name plus arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["beauty-app", *args])
