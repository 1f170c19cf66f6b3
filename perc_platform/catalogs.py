"""Where the shipped catalogs live (``catalogs/`` at the project root)."""

from __future__ import annotations

from pathlib import Path

from perc_platform.errors import DataNotFoundError

__all__ = ["catalog_path"]


def catalog_path(name: str = "perc.yaml") -> Path:
    """Path of a shipped catalog file, e.g. ``catalog_path("demo.yaml")``."""
    path = Path(__file__).resolve().parents[1] / "catalogs" / name
    if not path.exists():
        raise DataNotFoundError(f"shipped catalog {name!r} not found at {path}; install perc-platform from its "
                                "source tree (`pip install -e .`) so that catalogs/ sits beside the package")
    return path
