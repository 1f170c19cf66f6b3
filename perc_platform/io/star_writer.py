"""Writing STAR files: the one writer behind every STAR file the platform makes.

``format_star({"optics": optics_df, "particles": particles_df})`` gives RELION-style text: each block starts
with ``# version 30001`` and ``data_<name>``; a DataFrame becomes a ``loop_`` with numbered ``_column #i``
names, a mapping becomes ``_name value`` pairs. Values are written so that they read back exactly:
integers as integers, floats in Python's shortest round-trip form, strings quoted when they hold white space
or could be mistaken for STAR syntax. :func:`write_star` writes the text atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from perc_platform.errors import ParameterError
from perc_platform.storage.cache import write_atomically

__all__ = ["format_star", "write_star"]

Block: TypeAlias = "pd.DataFrame | Mapping[str, Any]"

_SYNTAX_STARTS = ("data_", "loop_", "save_", "global_", "stop_", "_", "#", "'", '"', "$", ";")


def _text(value: str, where: str) -> str:
    if value and not any(c.isspace() for c in value) and not value.startswith(_SYNTAX_STARTS):
        return value
    if any(c in value for c in "\n\r"):
        raise ParameterError(f"{where}: {value!r} holds a line break, which a STAR value cannot; remove it")
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ParameterError(f"{where}: {value!r} holds both kinds of quote and white space; STAR cannot quote it")


def _column(values: Any, where: str) -> list[str]:
    array = np.asarray(values)
    if array.dtype.kind == "b":
        return [str(int(v)) for v in array.tolist()]
    if array.dtype.kind in "iu":
        return [str(v) for v in array.tolist()]
    if array.dtype.kind == "f":
        return [repr(v) for v in array.astype(np.float64).tolist()]
    return [_value(v, where) for v in array.tolist()]


def _value(value: Any, where: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return _text(str(value), where)


def _block_text(name: str, block: Block) -> list[str]:
    if not name or any(c.isspace() for c in name):
        raise ParameterError(f"STAR block name {name!r}: give a non-empty name without white space")
    lines = ["# version 30001", "", f"data_{name}", ""]
    if isinstance(block, pd.DataFrame):
        columns = [str(c) for c in block.columns]
        if not columns:
            raise ParameterError(f"STAR block data_{name} has no columns; give at least one")
        lines.append("loop_")
        lines += [f"_{c.lstrip('_')} #{i + 1}" for i, c in enumerate(columns)]
        cells = [_column(block[c].to_numpy(), f"data_{name} column {c}") for c in block.columns]
        lines += [" ".join(row) for row in zip(*cells, strict=True)]
    else:
        lines += [f"_{str(k).lstrip('_')} {_value(v, f'data_{name} item {k}')}" for k, v in block.items()]
    return [*lines, ""]


def format_star(blocks: Mapping[str, Block]) -> str:
    """STAR text for ``{block name: DataFrame (a loop) or mapping (name-value pairs)}``, in the given order."""
    if not blocks:
        raise ParameterError("no STAR blocks given; pass e.g. {'particles': dataframe}")
    lines: list[str] = []
    for name, block in blocks.items():
        lines += _block_text(str(name), block)
    return "\n".join(lines) + "\n"


def write_star(path: str | os.PathLike[str], blocks: Mapping[str, Block]) -> Path:
    """Write :func:`format_star` text to ``path`` atomically (complete, or not at all); return the path."""
    text = format_star(blocks)
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
