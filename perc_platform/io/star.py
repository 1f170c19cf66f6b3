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

__all__ = ["ParticleMetadata", "StarTable", "parse_star_text", "particle_metadata", "read_star"]

_MAX_STAR_BYTES = 512 * 2**20
_COORD_OF_COLUMN = {column: name for name, column in PARTICLE_COORDS.items()}


@dataclasses.dataclass(frozen=True)
class StarTable:
    """The particle rows and, for RELION 3.1+, the optics groups of one STAR file."""

    particles: pd.DataFrame
    optics: pd.DataFrame | None
    source: str


def _split_row(line: str) -> list[str]:
    if "'" not in line and '"' not in line:
        return line.split()
    return [m.group(1) or m.group(2) or m.group(3) for m in _TOKEN.finditer(line)]


_TOKEN = re.compile(r"'([^']*)'|\"([^\"]*)\"|(\S+)")


def _typed(values: list[str]) -> pd.Series:
    series = pd.Series(values, dtype=object)
    for kind in (np.int64, np.float64):
        try:
            return series.astype(kind)
        except (ValueError, OverflowError):
            continue
    return series.astype(str)


def _parse_blocks(text: str, source: str) -> dict[str, pd.DataFrame]:
    blocks: dict[str, pd.DataFrame] = {}
    lines = text.splitlines()
    i, n = 0, len(lines)
    block: str | None = None
    pairs: dict[str, str] = {}

    def close_pairs() -> None:
        if block is not None and pairs:
            blocks[block] = pd.DataFrame({k: _typed([v]) for k, v in pairs.items()})
            pairs.clear()

    while i < n:
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("data_"):
            close_pairs()
            block = line[5:].strip()
            continue
        if block is None:
            raise StarFormatError(f"{source}: line {i} comes before any 'data_' block")
        if line.startswith("loop_"):
            columns: list[str] = []
            while i < n and lines[i].strip().startswith("_"):
                columns.append(lines[i].split()[0][1:])
                i += 1
            if not columns:
                raise StarFormatError(f"{source}: 'loop_' at line {i} has no column names")
            if len(set(columns)) != len(columns):
                twice = next(c for c in columns if columns.count(c) > 1)
                raise StarFormatError(f"{source}: column _{twice} appears more than once in block data_{block}")
            rows: list[list[str]] = []
            while i < n:
                row_line = lines[i].strip()
                if row_line.startswith(("data_", "loop_", "_")):
                    break
                i += 1
                if not row_line or row_line.startswith("#"):
                    if not row_line and rows:
                        break
                    continue
                row = _split_row(row_line)
                if len(row) != len(columns):
                    raise StarFormatError(f"{source}: line {i} has {len(row)} values for {len(columns)} columns "
                                          f"of block data_{block}")
                rows.append(row)
            table: list[tuple[str, ...]] = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
            blocks[block] = pd.DataFrame({c: _typed(list(v)) for c, v in zip(columns, table, strict=True)})
            continue
        if line.startswith("_"):
            parts = _split_row(line)
            if len(parts) < 2:
                raise StarFormatError(f"{source}: line {i}: '{parts[0]}' has no value")
            pairs[parts[0][1:]] = parts[1]
            continue
        raise StarFormatError(f"{source}: line {i} is neither a loop row nor a '_name value' pair: {line[:60]!r}")
    close_pairs()
    return blocks


def parse_star_text(text: str, source: str = "<star>") -> StarTable:
    """Parse STAR text; raise StarFormatError naming ``source`` when it is not a particle STAR file."""
    if "data_" not in text:
        raise StarFormatError(f"{source}: no 'data_' block; this is not a STAR file")
    blocks = _parse_blocks(text, source)
    optics = blocks.get("optics")
    candidates = [df for name, df in blocks.items() if name != "optics" and "rlnImageName" in df.columns]
    if not candidates:
        raise StarFormatError(f"{source}: no block with an rlnImageName column; a particle STAR file needs one "
                              "(blocks found: " + ", ".join(repr(n) for n in blocks) + ")")
    return StarTable(particles=candidates[0].reset_index(drop=True), optics=optics, source=source)


def read_star(path_or_url: str, storage_options: dict[str, Any] | None = None) -> StarTable:
    """Read a STAR file from a local path or fsspec URL (size-bounded)."""
    import fsspec

    try:
        with fsspec.open(path_or_url, "rb", **(storage_options or {})) as handle:
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


def _snake(column: str) -> str:
    name = column[3:] if column.startswith("rln") else column
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


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


def _particle_metadata(table: StarTable) -> ParticleMetadata:
    df = table.particles
    names = df["rlnImageName"].astype(str)
    parts = names.str.split("@", n=1, expand=True)
    if parts.shape[1] != 2 or parts[1].isna().any():
        bad = names[parts[1].isna()].iloc[0] if parts.shape[1] == 2 else names.iloc[0]
        raise StarFormatError(f"{table.source}: rlnImageName {bad!r} is not of the form 000012@stack.mrcs")
    try:
        index = parts[0].astype(np.int64).to_numpy() - 1
    except (ValueError, OverflowError):
        raise StarFormatError(f"{table.source}: rlnImageName has a non-numeric image index; "
                              "expected 000012@stack.mrcs (1-based)") from None
    if (index < 0).any():
        raise StarFormatError(f"{table.source}: rlnImageName image indices are 1-based; found 0 or below")
    merged = df
    optics = table.optics
    if optics is not None and "rlnOpticsGroup" in df.columns and "rlnOpticsGroup" in optics.columns:
        extra = [c for c in optics.columns if c not in df.columns]
        right = optics[extra].assign(_group=_group_key(optics["rlnOpticsGroup"]))
        merged = df.assign(_group=_group_key(df["rlnOpticsGroup"])).merge(right, on="_group", how="left")
        merged = merged.drop(columns="_group")
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
    for column in merged.columns:
        if column in skip:
            continue
        name = _COORD_OF_COLUMN.get(column, _snake(column))
        values = merged[column].to_numpy()
        if values.dtype == object:
            values = values.astype(str)
        coords.setdefault(name, values)
    coords["image_name"] = names.to_numpy().astype(str)
    # RELION 3.0 shifts are in pixels; the convention stores Angstrom.
    if pixel is not None:
        for axis in ("x", "y"):
            column = f"rlnOrigin{axis.upper()}"
            if column in merged.columns and f"rlnOrigin{axis.upper()}Angst" not in merged.columns:
                coords[f"shift_{axis}"] = merged[column].astype(float).to_numpy() * pixel.to_numpy()
                coords.pop(f"origin_{axis}", None)
    return ParticleMetadata(stack_names=parts[1].tolist(), image_index=index, coords=coords, attrs=attrs)
