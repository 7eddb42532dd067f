"""Progress on the terminal: a tqdm bar per stage on stderr, or JSON lines on stdout for scripts."""

from __future__ import annotations

import contextlib
import json
import sys
import time


@contextlib.contextmanager
def progress_bar(enabled: bool = True):
    """A JobControl whose events drive a tqdm bar on stderr (one bar per stage)."""
    from tqdm import tqdm

    from ..jobs import JobControl

    bars: dict[str, tqdm] = {}

    def on_progress(event):
        if not enabled:
            return
        bar = bars.get(event.stage)
        if bar is None:
            for other in bars.values():
                other.close()
            if event.stage == "read catalog":  # bytes of the catalog CSV
                options = {"unit": "B", "unit_scale": True, "unit_divisor": 1024}
            else:
                counts_images = event.stage in ("index", "search", "generate", "mine", "masks", "scan folder")
                options = {"unit": "img" if counts_images else "step"}
            bar = bars[event.stage] = tqdm(total=event.total, desc=event.stage, file=sys.stderr,
                                           dynamic_ncols=True, leave=True, **options)
        bar.total = event.total
        bar.n = event.done
        if event.message:
            bar.set_postfix_str(event.message, refresh=False)
        bar.refresh()

    job = JobControl(on_progress, min_interval_s=0.1)
    try:
        yield job
    finally:
        for bar in bars.values():
            bar.close()


@contextlib.contextmanager
def progress_jsonl(min_interval_s: float = 0.5):
    """A JobControl that prints each progress event as one JSON object on stdout (for scripts and benches)."""
    from ..jobs import JobControl

    started = time.perf_counter()

    def on_progress(event):
        print(json.dumps({"event": "progress", "stage": event.stage, "done": event.done, "total": event.total,
                          "message": event.message, "t": round(time.perf_counter() - started, 3)}), flush=True)

    yield JobControl(on_progress, min_interval_s=min_interval_s)


def progress_for(args):
    """The progress reporter --progress/-q asks for: a terminal bar, JSON lines on stdout, or nothing."""
    if getattr(args, "progress", "bar") == "jsonl":
        return progress_jsonl()
    return progress_bar(not args.quiet and getattr(args, "progress", "bar") != "none")
