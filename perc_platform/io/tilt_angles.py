"""Tilt angles of a tilt series: IMOD ``.tlt``/``.rawtlt`` (one angle per line, degrees) or a SerialEM ``.mdoc``.

The IMOD files are a column of numbers, which ``numpy.loadtxt`` cannot bound or explain when they are
wrong, so they are parsed here (a few lines) with a size limit and an error naming the bad line.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from perc_platform.errors import DataNotFoundError, FormatError

__all__ = ["ANGLE_SUFFIXES", "angle_file_candidates", "read_tilt_angles"]

ANGLE_SUFFIXES = (".tlt", ".rawtlt", ".mdoc")
_STACK_SUFFIXES = (".st", ".mrc", ".mrcs", ".ali", ".preali", ".tif", ".tiff")
_MAX_BYTES = 4 * 2**20


def angle_file_candidates(stack: str) -> list[str]:
    """Where IMOD and SerialEM put the angles of ``stack``: ``TS.tlt``, ``TS.rawtlt``, ``TS.st.mdoc``, ``TS.mdoc``."""
    base, _, query = stack.partition("?")
    stem = base
    for suffix in _STACK_SUFFIXES:
        if base.lower().endswith(suffix):
            stem = base[: -len(suffix)]
            break
    tail = f"?{query}" if query else ""
    return [f"{stem}.tlt{tail}", f"{stem}.rawtlt{tail}", f"{base}.mdoc{tail}", f"{stem}.mdoc{tail}"]


def _parse_column(text: str, source: str) -> np.ndarray:
    values: list[float] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            value = float(line.split()[0])
        except ValueError:
            raise FormatError(f"{source}: line {number} is {line[:40]!r}, not a tilt angle in degrees; an IMOD "
                              ".tlt/.rawtlt file holds one number per line") from None
        if not math.isfinite(value) or abs(value) > 180:
            raise FormatError(f"{source}: line {number} gives tilt angle {value}; angles lie within +-180 degrees")
        values.append(value)
    if not values:
        raise FormatError(f"{source}: holds no tilt angles")
    return np.array(values, dtype=np.float64)


def read_tilt_angles(path_or_url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """Tilt angles in degrees, in stack order, from a ``.tlt``/``.rawtlt`` file or a tilt-series ``.mdoc``."""
    source = os.fspath(path_or_url)
    if source.lower().split("?", 1)[0].endswith(".mdoc"):
        from perc_platform.io.mdoc import read_mdoc

        return read_mdoc(source, storage_options).tilt_angles()
    from perc_platform.storage.ranges import open_input  # remote files through the network policy

    try:
        with open_input(source, storage_options) as handle:
            raw = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise DataNotFoundError(f"tilt-angle file {source} does not exist; check the path or URL") from None
    if len(raw) > _MAX_BYTES:
        raise FormatError(f"{source}: larger than {_MAX_BYTES >> 20} MiB; not a tilt-angle file")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError(f"{source}: not plain text; a .tlt/.rawtlt file is one number per line") from None
    return _parse_column(text, source)
