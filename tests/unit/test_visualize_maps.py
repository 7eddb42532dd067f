"""Heatmap helpers behind the legend and the region boxes; the process clock behind launch timing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from beauty_app.visualize import draw_regions, stretch_map, summarize_map, visible_regions


def test_region_boxes_skip_the_whole_photo_dropped_and_weightless_regions():
    regions = [(0, 0, 100, 100, 1.0, True),     # frames the whole 100x100 photo
               (-10, -10, 130, 130, 0.9, True),  # reaches into the letterbox padding, still the whole photo
               (10, 10, 50, 50, 0.8, True),
               (40, 40, 50, 50, 0.3, False),     # dropped by SR-MAC
               (20, 60, 30, 30, 0.0, True)]      # no weight
    assert visible_regions(regions, (100, 100)) == [(10, 10, 50, 50, 0.8, True)]
    image = np.zeros((100, 100, 3), np.uint8)
    drawn = draw_regions(image, regions)
    assert drawn[0].sum() == 0 and drawn[:, 0].sum() == 0  # no frame along the photo's edges
    assert drawn[10, 30].sum() > 0  # the kept region's top edge


def test_stretch_and_summary_keep_the_true_peak():
    weak = np.zeros((10, 10), np.float32)
    weak[2:4, 2:4] = 0.2
    summary = summarize_map(weak)
    assert summary.peak == np.float32(0.2) and not summary.nearly_empty
    assert stretch_map(weak).max() == 1.0 and np.array_equal(stretch_map(weak) > 0, weak > 0)
    assert summarize_map(weak * 0.1).nearly_empty
    assert stretch_map(np.zeros((3, 3), np.float32)).max() == 0.0 and summarize_map(None) is None


def test_process_clock_counts_from_the_process_start():
    # A child that sleeps before asking must see at least that much time since its own start.
    code = ("import time; time.sleep(0.5); from beauty_app.process_clock import seconds_since_process_start as s; "
            "print(s())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 0.5 <= float(out) < 60
