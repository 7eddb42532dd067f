"""How long this process has been running, from the kernel's own record of its start.

A clock started in ``main()`` misses the interpreter's start and the imports before it (seconds
for torch and Qt); "launch to first result" is measured from the process start instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def seconds_since_process_start() -> float | None:
    """Seconds since this process was started, or None where the system does not tell.

    Linux: ``/proc/uptime`` minus the start time in ``/proc/self/stat`` (both since boot, 10 ms
    resolution). Elsewhere psutil's creation time, when psutil is installed.
    """
    try:
        # The command name (field 2) may hold spaces and parentheses: count fields after its last ")".
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - psutil missing or not allowed: the time is unknown
        return None
