"""Which system libraries Qt's X11 (xcb) platform plugin needs and this machine lacks.

Qt loads ``libqxcb.so`` when the window opens; if one of its system libraries is missing it aborts with
"Could not load the Qt platform plugin xcb ... xcb-cursor0 or libxcb-cursor0 is needed", whatever the
missing library really is (on a fresh Debian machine: ``libxcb-icccm4`` and ``libxcb-keysyms1``). This
module reads the plugin's dependencies from its ELF header (following the libraries PySide6 bundles),
tries to load each system one, and names the Debian/Ubuntu packages to install. It imports no Qt module,
so ``make demo`` can run it before anything starts (``python -m beauty_app.gui.system_libraries``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import struct
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

# Debian package names that do not follow "soname stem + major version" (see apt_package).
_PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libstdc++.so.6": "libstdc++6",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libz.so.1": "zlib1g",
}
# Loaded with the C library itself; never worth checking.
_ALWAYS_PRESENT = re.compile(r"^(libc|libm|libdl|libpthread|librt|libgcc_s|ld-linux.*)\.so")


def elf_needed(path: str | os.PathLike) -> list[str]:
    """The DT_NEEDED entries (sonames of direct dependencies) of a 64- or 32-bit little-endian ELF file."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[5] != 1:
        raise ValueError(f"{path} is not a little-endian ELF file")
    wide = data[4] == 2
    if wide:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    else:
        shoff, = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    sections = []
    for i in range(shnum):
        base = shoff + i * shentsize
        if wide:
            _, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from("<IIQQQQIIQQ", data, base)
        else:
            _, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from("<IIIIIIIIII", data, base)
        sections.append((kind, offset, size, link, entsize))
    needed = []
    for kind, offset, size, link, entsize in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        strtab_offset = sections[link][1]
        entry = "<qQ" if wide else "<iI"
        step = entsize or struct.calcsize(entry)
        for base in range(offset, offset + size, step):
            tag, value = struct.unpack_from(entry, data, base)
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strtab_offset + value)
                needed.append(data[strtab_offset + value:end].decode())
    return needed


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin, found without importing any Qt module (None if absent)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname, mode=getattr(os, "RTLD_LAZY", 1))
    except OSError:
        return False
    return True


def missing_libraries(plugin: str | os.PathLike | None = None,
                      loads: Callable[[str], bool] = _loads) -> list[str]:
    """Sonames the xcb plugin needs that cannot be loaded here, in the order the plugin lists them.

    Args:
        plugin: the plugin file (default: PySide6's libqxcb.so; no plugin means nothing to check).
        loads: whether a system library can be loaded (default: dlopen it).
    """
    plugin = Path(plugin) if plugin is not None else xcb_plugin()
    if plugin is None:
        return []
    bundled = plugin.parent.parent.parent / "lib"  # PySide6/Qt/lib
    seen, missing = set(), []
    pending = [plugin]
    while pending:
        for soname in elf_needed(pending.pop(0)):
            if soname in seen or _ALWAYS_PRESENT.match(soname):
                continue
            seen.add(soname)
            if (bundled / soname).is_file():
                pending.append(bundled / soname)  # Qt's own library: check what it needs in turn
            elif not loads(soname):
                missing.append(soname)
    return missing


def apt_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships `soname` (libxcb-icccm.so.4 -> libxcb-icccm4)."""
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    stem, _, version = soname.partition(".so.")
    major = version.split(".")[0]
    stem = stem.lower()
    return f"{stem}-{major}" if stem[-1:].isdigit() and major else f"{stem}{major}"


def missing_packages_message(missing: Iterable[str]) -> str | None:
    """One sentence naming the packages to install, or None when nothing is missing."""
    packages = list(dict.fromkeys(apt_package(soname) for soname in missing))
    if not packages:
        return None
    libraries = ", ".join(missing)
    return (f"The window cannot open: this system lacks {libraries}, which Qt needs for X11; install them with "
            f"`sudo apt-get install {' '.join(packages)}` (Debian/Ubuntu).")


def chosen_platform(qt_args: Iterable[str] = (), environ=None) -> str:
    """The Qt platform plugin the window will use: ``-platform`` argument, QT_QPA_PLATFORM, or Qt's default."""
    args = list(qt_args)
    for flag, value in zip(args, args[1:]):
        if flag in ("-platform", "--platform"):
            return value.split(":")[0]
    environ = os.environ if environ is None else environ
    if environ.get("QT_QPA_PLATFORM"):
        return environ["QT_QPA_PLATFORM"].split(";")[0].split(":")[0]
    if not sys.platform.startswith("linux"):
        return "native"
    # Qt 6 prefers Wayland in a Wayland session and X11 (xcb) everywhere else.
    wayland = environ.get("XDG_SESSION_TYPE") == "wayland" and environ.get("WAYLAND_DISPLAY")
    return "wayland" if wayland else "xcb"


def window_problem(qt_args: Iterable[str] = (), environ=None,
                   find_missing: Callable[[], list[str]] | None = None) -> str | None:
    """Why the window cannot open here (one sentence naming the packages), or None when it can.

    Args:
        find_missing: lists the missing sonames (default :func:`missing_libraries`).
    """
    if chosen_platform(qt_args, environ) != "xcb":
        return None
    return missing_packages_message((find_missing or missing_libraries)())


def main() -> int:
    """Print the missing packages' sentence and exit 1, or exit 0 when the window can open."""
    message = window_problem(sys.argv[1:])
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
