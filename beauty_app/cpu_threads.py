"""How torch's CPU threads wait for each other in the window: asleep, not spinning (set before torch loads).

Measured for issue 16 on a 2-core machine shared with a training job (load 4-7): with OpenMP's
default waiting, the two threads of torch's pool spin at each of the network's barriers while the
other one waits for a core, and one search of a photo took anything from 20 ms to 4 s (the second
search after launch 0.4x to 43x the tenth; a short spin, GOMP_SPINCOUNT=10000, still gave 200 ms).
With sleeping waits the same searches took a steady 25-45 ms. The price, with a core free (load
about 1): 31-38 ms a search instead of 18-27 ms, the threads' wake-ups at each of the demo network's
layers. A window's queries are one image at a time on a machine that also runs other programs, so
the window's commands ask for sleeping waits; the command line keeps OpenMP's default.
"""

from __future__ import annotations

import os
import sys

#: The variable every OpenMP runtime (GNU libgomp, LLVM and Intel libomp) reads once, when it loads.
WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"


_SET_BY_US = False  # whether this process chose the policy (children then get the user's own setting back)


def prefer_sleeping_waits() -> bool:
    """Ask OpenMP to let waiting threads sleep, unless the user chose a policy; call before importing torch.

    Returns whether the choice can still take effect (torch is not loaded yet in this process).
    """
    global _SET_BY_US
    if WAIT_POLICY_VARIABLE not in os.environ:
        os.environ[WAIT_POLICY_VARIABLE] = "PASSIVE"
        _SET_BY_US = True
    return "torch" not in sys.modules


def chosen_for_this_process() -> bool:
    """True when :func:`prefer_sleeping_waits` set the policy here (not the user): a child process such as
    a training run, which works in batches, should not inherit it."""
    return _SET_BY_US


def wait_policy() -> str:
    """The wait policy this process's OpenMP runtime was (or will be) started with, for the log."""
    return os.environ.get(WAIT_POLICY_VARIABLE, "the OpenMP default (spinning)")
