"""RELION STAR metadata (3.0 single block, 3.1+ with optics groups, 5.0) joined to particle images.

``read_star`` returns the particle table and optics table; ``particle_metadata`` turns them into the
stack each row points at (``rlnImageName`` = ``000012@stack.mrcs``, 1-based), per-particle coords named by
the conventions, and optics attrs (pixel size from the optics block, or from detector pixel size and
magnification for RELION 3.0).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd

from perc_platform.conventions import OPTICS_ATTRS, PARTICLE_COORDS
from perc_platform.errors import StarFormatError
from perc_platform.io._star_blocks import StarBlock, parse_blocks

__all__ = ["ParticleMetadata", "StarTable", "parse_star_text", "particle_metadata", "read_star"]

_MAX_STAR_BYTES = 512 * 2**20
_COORD_OF_COLUMN = {column: name for name, column in PARTICLE_COORDS.items()}


@dataclasses.dataclass(frozen=True)
class StarTable:
    """The particle rows and, for RELION 3.1+, the optics groups of one STAR file."""

    particles: pd.DataFrame
    optics: pd.DataFrame | None
    source: str
    #: ``_name value`` pairs given beside a loop, per block (kept apart from the loop's columns).
    values: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


def _particle_block(blocks: dict[str, StarBlock], source: str) -> pd.DataFrame:
    tables = {name: block.table() for name, block in blocks.items() if name != "optics"}
    candidates = {name: t for name, t in tables.items() if t is not None and "rlnImageName" in t.columns}
    if not candidates:
        raise StarFormatError(f"{source}: no block with an rlnImageName column; a particle STAR file needs one "
                              "(blocks found: " + ", ".join(repr(n) for n in blocks) + ")")
    if "particles" in candidates:
        return candidates["particles"]
    if len(candidates) > 1:
        raise StarFormatError(f"{source}: blocks {', '.join('data_' + n for n in candidates)} all have an "
                              "rlnImageName column and none is data_particles; keep one particle table per file")
    return next(iter(candidates.values()))


def parse_star_text(text: str, source: str = "<star>") -> StarTable:
    """Parse STAR text; raise StarFormatError naming ``source`` when it is not a particle STAR file."""
    if "data_" not in text:
        raise StarFormatError(f"{source}: no 'data_' block; this is not a STAR file")
    blocks = parse_blocks(text, source)
    particles = _particle_block(blocks, source)
    optics = blocks["optics"].table() if "optics" in blocks else None
    values = {name: dict(block.values) for name, block in blocks.items() if block.loop is not None and block.values}
    return StarTable(particles=particles.reset_index(drop=True), optics=optics, source=source, values=values)


def read_star(path_or_url: str, storage_options: dict[str, Any] | None = None) -> StarTable:
    """Read a STAR file from a local path or fsspec URL (size-bounded; remote ones through the network policy)."""
    from perc_platform.storage.ranges import open_input

    try:
        with open_input(str(path_or_url), storage_options) as handle:
            raw = handle.read(_MAX_STAR_BYTES + 1)
    except FileNotFoundError:
        from perc_platform.errors import DataNotFoundError

        raise DataNotFoundError(f"STAR file {path_or_url} does not exist; check the path or URL") from None
    if len(raw) > _MAX_STAR_BYTES:
        raise StarFormatError(f"{path_or_url}: larger than {_MAX_STAR_BYTES >> 20} MiB; split the STAR file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StarFormatError(f"{path_or_url}: not UTF-8 text; a STAR file is plain text") from None
    return parse_star_text(text, str(path_or_url))


@dataclasses.dataclass(frozen=True)
class ParticleMetadata:
    """What a STAR file says about each particle row."""

    stack_names: list[str]
    image_index: np.ndarray
    coords: dict[str, np.ndarray]
    attrs: dict[str, float]
    #: Rows whose ``rlnImageName`` names a whole file (no ``@``): a single image, or a subtomogram.
    whole_file: np.ndarray | None = None


def _snake(column: str) -> str:
    name = column[3:] if column.startswith("rln") else column
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _column_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every column as a NumPy array (text as ``str``), taken a dtype at a time: one 2-D array per dtype
    instead of one pandas lookup per column, which dominated on files with 10^5 columns."""
    out: dict[str, np.ndarray] = {}
    dtypes = frame.dtypes
    for dtype in dict.fromkeys(dtypes.tolist()):
        mask = (dtypes == dtype).to_numpy()
        block = frame.loc[:, mask].to_numpy()
        if block.dtype.kind == "O":
            block = block.astype(str)
        for j, column in enumerate(frame.columns[mask]):
            out[column] = block[:, j]
    return {column: out[column] for column in frame.columns}


def _unique_value(values: pd.Series) -> float | None:
    unique = pd.unique(values.dropna())
    return float(unique[0]) if len(unique) == 1 else None


def _group_key(ids: pd.Series) -> np.ndarray:
    """Optics-group ids as join keys: the same number matches however it is written ("1", "1.0"), other
    text matches as text. One key type on both sides, so pandas neither warns nor matches missing ids."""
    numbers = pd.to_numeric(ids, errors="coerce")
    text = ids.astype(str).to_numpy()
    return np.where(numbers.notna(), numbers.astype(float).map(repr).to_numpy(), text)


def particle_metadata(table: StarTable) -> ParticleMetadata:
    """Split ``rlnImageName`` and map columns to convention coords and optics attrs."""
    if len(table.particles) == 0:
        raise StarFormatError(f"{table.source}: the particle block has no rows")
    try:
        return _particle_metadata(table)
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, StarFormatError):
            raise
        raise StarFormatError(f"{table.source}: a column holds values of the wrong kind ({exc}); check the "
                              "STAR file's numeric columns") from None


def _image_names(table: StarTable) -> tuple[pd.Series, list[str], np.ndarray, np.ndarray]:
    """``rlnImageName`` split into stack names and 0-based indices; a name without ``@`` names a whole file
    (a single-image file or a RELION subtomogram), marked in the returned mask and given index 0."""
    names = table.particles["rlnImageName"].astype(str)
    whole = ~names.str.contains("@", regex=False).to_numpy(dtype=bool)
    split = names.str.partition("@")
    stacks = split[2].where(~whole, names)
    numbers = split[0].where(~whole, "1")
    empty = stacks.str.strip() == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise StarFormatError(f"{table.source}: rlnImageName {names.iloc[row]!r} (particle row {row + 1}) names no "
                              "file; expected 000012@stack.mrcs or a file name")
    good = numbers.str.fullmatch(r"[0-9]{1,18}").to_numpy(dtype=bool)
    if not good.all():
        row = int(np.flatnonzero(~good)[0])
        raise StarFormatError(f"{table.source}: rlnImageName {names.iloc[row]!r} (particle row {row + 1}) has no "
                              "valid image number before '@'; expected 000012@stack.mrcs (1-based)")
    index = numbers.astype(np.int64).to_numpy() - 1
    if (index < 0).any():
        raise StarFormatError(f"{table.source}: rlnImageName image indices are 1-based; found 0 or below")
    return names, stacks.tolist(), index, whole


def _optics_rows(df: pd.DataFrame, optics: pd.DataFrame, source: str) -> np.ndarray | None:
    """For each particle row, the row of ``optics`` that describes it; errors rather than guesses."""
    grouped = "rlnOpticsGroup" in df.columns
    if "rlnOpticsGroup" not in optics.columns or not grouped:
        if len(optics) == 1:
            return np.zeros(len(df), dtype=np.int64)
        if not grouped and len(optics) == 0:
            return None
        missing = "data_optics" if grouped else "the particle block"
        raise StarFormatError(f"{source}: data_optics has {len(optics)} rows but {missing} has no rlnOpticsGroup "
                              "column, so which optics belong to which particle is unknown; add the column")
    keys = pd.Index(_group_key(optics["rlnOpticsGroup"]))
    if keys.has_duplicates:
        twice = optics["rlnOpticsGroup"].iloc[int(np.flatnonzero(keys.duplicated())[0])]
        raise StarFormatError(f"{source}: optics group {twice} is defined twice in data_optics; each group "
                              "needs exactly one row")
    rows = keys.get_indexer(_group_key(df["rlnOpticsGroup"]))
    if (rows < 0).any():
        row = int(np.flatnonzero(rows < 0)[0])
        defined = ", ".join(str(g) for g in optics["rlnOpticsGroup"].tolist()[:10]) or "none"
        raise StarFormatError(f"{source}: particle row {row + 1} is in optics group "
                              f"{df['rlnOpticsGroup'].iloc[row]}, which data_optics does not define (it defines "
                              f"{defined}); add the group to data_optics or fix the particle's rlnOpticsGroup")
    return np.asarray(rows, dtype=np.int64)


def _particle_metadata(table: StarTable) -> ParticleMetadata:
    df = table.particles.reset_index(drop=True)
    names, stack_names, index, whole = _image_names(table)
    merged = df
    if table.optics is not None:
        rows = _optics_rows(df, table.optics, table.source)
        extra = [c for c in table.optics.columns if c not in df.columns]
        if rows is not None and extra:
            joined = table.optics[extra].iloc[rows].reset_index(drop=True)
            merged = pd.concat([df, joined], axis=1)
    pixel = None
    for column in ("rlnImagePixelSize", "rlnPixelSize", "rlnMicrographPixelSize"):
        if column in merged.columns:
            pixel = merged[column].astype(float)
            break
    if pixel is None and {"rlnDetectorPixelSize", "rlnMagnification"} <= set(merged.columns):
        pixel = merged["rlnDetectorPixelSize"].astype(float) * 1e4 / merged["rlnMagnification"].astype(float)
    coords: dict[str, np.ndarray] = {}
    attrs: dict[str, float] = {}
    if pixel is not None:
        value = _unique_value(pixel)
        if value is not None:
            attrs["pixel_size"] = value
        else:
            coords["pixel_size"] = pixel.to_numpy()
    for name, column in OPTICS_ATTRS.items():
        if column in merged.columns:
            value = _unique_value(merged[column].astype(float))
            if value is not None:
                attrs[name] = value
            else:
                coords[name] = merged[column].astype(float).to_numpy()
    skip = {"rlnImageName", "rlnImagePixelSize", "rlnPixelSize", "rlnMicrographPixelSize", "rlnDetectorPixelSize",
            "rlnMagnification", *OPTICS_ATTRS.values()}
    for column, values in _column_arrays(merged).items():
        if column in skip:
            continue
        coords.setdefault(_COORD_OF_COLUMN.get(column, _snake(column)), values)
    coords["image_name"] = names.to_numpy().astype(str)
    # RELION 3.0 shifts are in pixels; the convention stores Angstrom.
    if pixel is not None:
        for axis in ("x", "y"):
            column = f"rlnOrigin{axis.upper()}"
            if column in merged.columns and f"rlnOrigin{axis.upper()}Angst" not in merged.columns:
                coords[f"shift_{axis}"] = merged[column].astype(float).to_numpy() * pixel.to_numpy()
                coords.pop(f"origin_{axis}", None)
    return ParticleMetadata(stack_names=stack_names, image_index=index, coords=coords, attrs=attrs, whole_file=whole)
