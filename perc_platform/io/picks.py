"""Particle picks in a tomogram: RELION STAR (``rlnCoordinateX/Y/Z``) or CSV (``x, y, z`` columns).

The file does not say whether its numbers are voxels or Angstrom (RELION writes both, depending on the
version and the binning), so the caller states it; this module only reads and checks the numbers.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from perc_platform.errors import DataNotFoundError, FormatError

__all__ = ["read_picks"]

_MAX_BYTES = 256 * 2**20
_STAR_COLUMNS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")


def _star_table(path: str, source: str) -> pd.DataFrame:
    import starfile

    try:
        parsed = starfile.read(path, always_dict=True)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise FormatError(f"{source}: not a readable STAR file ({exc})") from None
    for table in parsed.values():
        if isinstance(table, pd.DataFrame) and set(_STAR_COLUMNS) <= set(table.columns):
            return table[list(_STAR_COLUMNS)]
    raise FormatError(f"{source}: no block with rlnCoordinateX, rlnCoordinateY and rlnCoordinateZ columns")


def _csv_table(text: str, source: str) -> pd.DataFrame:
    import io

    try:
        table = pd.read_csv(io.StringIO(text), sep=None, engine="python")
    except (ValueError, pd.errors.ParserError) as exc:
        raise FormatError(f"{source}: not a readable CSV file ({exc})") from None
    columns = {str(c).strip().lower(): c for c in table.columns}
    for names in (("x", "y", "z"), ("coordinate_x", "coordinate_y", "coordinate_z")):
        if all(n in columns for n in names):
            return table[[columns[n] for n in names]]
    raise FormatError(f"{source}: columns {list(table.columns)[:6]} do not include x, y and z; a pick CSV has a "
                      "header row naming them")


def read_picks(path_or_url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """Pick centres as an ``(n, 3)`` float array of ``(x, y, z)`` in the file's own unit (stated by the caller)."""
    from perc_platform.storage.ranges import open_input  # remote files through the network policy

    source = os.fspath(path_or_url)
    try:
        with open_input(source, storage_options) as handle:
            raw = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise DataNotFoundError(f"pick file {source} does not exist; check the path or URL") from None
    if len(raw) > _MAX_BYTES:
        raise FormatError(f"{source}: larger than {_MAX_BYTES >> 20} MiB; split the pick file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{source}: not UTF-8 text; picks are a STAR or CSV text file") from None
    if source.lower().split("?", 1)[0].endswith(".star"):
        table = _star_table_from_text(text, source)
    else:
        table = _csv_table(text, source)
    try:
        xyz = table.to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise FormatError(f"{source}: a coordinate is not a number") from None
    if xyz.shape[0] == 0:
        raise FormatError(f"{source}: holds no picks")
    if not np.isfinite(xyz).all():
        raise FormatError(f"{source}: a coordinate is missing or not finite")
    return xyz


def _star_table_from_text(text: str, source: str) -> pd.DataFrame:
    import tempfile

    # starfile parses files only; the text was fetched and size-checked above, so it is parsed from a
    # private temporary copy.
    with tempfile.TemporaryDirectory(prefix="perc-picks-") as folder:
        path = os.path.join(folder, "picks.star")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return _star_table(path, source)
