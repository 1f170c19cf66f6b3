"""The saved neural map: a folder with ``neural_map.json`` (metadata) and ``neural_map.npz`` (arrays).

``neural_map.npz`` (``numpy.savez_compressed``, read with ``allow_pickle=False``: no code runs on load)
holds the SIREN weights ``w{i}``/``b{i}`` (float16 unless saved as float32) and the spline base ``base``
as integers (``uint8``/``uint16``: value = q / (2^bits - 1) on the normalised [0, 1] scale) or floats.
``neural_map.json`` holds the format tag, the SIREN shape, tiling, placement, value range, provenance and
the storage precision.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perc_platform.errors import DataNotFoundError, FormatError, ParameterError

if TYPE_CHECKING:
    from perc_platform.neural_maps._neural_map import NeuralMap

__all__ = ["ARRAYS_FILE", "FORMAT", "METADATA_FILE", "load_neural_map", "save_neural_map"]

ARRAYS_FILE = "neural_map.npz"
METADATA_FILE = "neural_map.json"
FORMAT = "perc-neural-map/2"
PRECISIONS = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16, "float32": np.float32}


def save_neural_map(nmap: NeuralMap, folder: Path, precision: str = "uint16") -> Path:
    """Write ``nmap`` into ``folder`` (created); the arrays file is written whole, then renamed into place."""
    if precision not in PRECISIONS:
        raise ParameterError(f"precision={precision!r}: use one of {sorted(PRECISIONS)}")
    weight_type = np.float32 if precision == "float32" else np.float16
    arrays = {k: v.detach().cpu().numpy().astype(weight_type) for k, v in nmap.params.items()}
    if nmap.base is not None:
        arrays["base"] = _quantise(nmap.base.values, precision)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{ARRAYS_FILE}.partial"
    with partial.open("wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
    meta = {"format": FORMAT, "precision": precision, **nmap.metadata()}
    (folder / METADATA_FILE).write_text(json.dumps(meta, indent=1))
    partial.replace(folder / ARRAYS_FILE)
    return folder


def load_neural_map(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray | None]:
    """The metadata, float32 weights and (dequantised) base of a folder written by :func:`save_neural_map`."""
    meta_path, arrays_path = folder / METADATA_FILE, folder / ARRAYS_FILE
    if not meta_path.is_file() or not arrays_path.is_file():
        raise DataNotFoundError(f"{folder}: not a saved neural map (needs {METADATA_FILE} and {ARRAYS_FILE}); "
                                "write one with NeuralMap.save")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{meta_path}: not JSON ({exc}); save the neural map again") from exc
    if meta.get("format") != FORMAT:
        raise FormatError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT!r}; fit and save it again")
    try:
        with np.load(arrays_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise FormatError(f"{arrays_path}: not a readable .npz ({exc}); save the neural map again") from exc
    base = arrays.pop("base", None)
    if base is not None:
        base = _dequantise(base, str(meta.get("precision")))
    return meta, {k: v.astype(np.float32) for k, v in arrays.items()}, base


def _quantise(values: np.ndarray, precision: str) -> np.ndarray:
    kind = np.dtype(PRECISIONS[precision])
    if kind.kind == "u":
        top = 2 ** (8 * kind.itemsize) - 1
        return np.round(np.clip(values, 0.0, 1.0) * top).astype(kind)
    return values.astype(kind)


def _dequantise(stored: np.ndarray, precision: str) -> np.ndarray:
    if precision not in PRECISIONS or stored.dtype != PRECISIONS[precision]:
        raise FormatError(f"the stored base is {stored.dtype}, but the metadata says {precision!r}")
    if np.issubdtype(stored.dtype, np.integer):
        return (stored.astype(np.float64) / (2 ** (8 * stored.dtype.itemsize) - 1)).astype(np.float32)
    return stored.astype(np.float32)
