"""Packaging glue: the repository root *is* the package ``framefold``.

pyproject.toml holds the metadata; this file only lists the sub-packages, found on disk so a new
folder with an ``__init__.py`` is packaged without editing a list.
"""

from setuptools import find_packages, setup

_SUBPACKAGES = find_packages(".", exclude=["tests", "tests.*", "bench", "bench.*", "build", "build.*"])

setup(
    package_dir={"framefold": "."},
    packages=["framefold"] + [f"framefold.{name}" for name in _SUBPACKAGES],
    package_data={
        "framefold": ["example_workflows/*.json", "example_workflows/*.jpg", "web/*", "web/**/*", "default_model/**/*"],
        "": ["*.safetensors", "*.json", "*.txt"],
    },
)
