"""Package layout only; everything else is in pyproject.toml.

The repository keeps the shipped data at its top level (resources/, model_store/), where the
PyInstaller spec, the Makefile and people look for it. A wheel must carry it inside the package, so
the build maps the two folders to ``beauty_app.resources`` and ``beauty_app.model_store``; the files
they ship are the package-data listed in pyproject.toml. pyproject's ``packages.find`` cannot add such
mapped packages beside the ones it discovers, hence this file.
"""

from setuptools import find_packages, setup

# Every folder holding data is a package of its own; setuptools warns about data in a folder that is not.
SHIPPED_DATA = {
    "beauty_app.resources": "resources",
    "beauty_app.resources.icons": "resources/icons",
    "beauty_app.model_store": "model_store",
}

setup(
    packages=[*find_packages(include=["beauty_app", "beauty_app.*"]), *SHIPPED_DATA],
    package_dir=SHIPPED_DATA,
)
