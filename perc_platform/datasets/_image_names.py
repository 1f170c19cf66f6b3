"""RELION ``image_name`` strings (``000012@stack.mrcs``) for every particle, built column-wise with NumPy.

A 20,000-particle stack needs 20,000 of them when it is opened; formatting them one by one in Python made
opening cost O(particles) in the interpreter. Here the characters are laid out in a ``(particles, width)``
array of code points (the digits from integer arithmetic, the file names gathered by file id) and viewed as
one fixed-width string array: a few NumPy passes whatever the number of particles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["image_names"]

_AT = ord("@")


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """``(n, width)`` code points of ``numbers`` written in decimal, zero-padded to ``width``."""
    rest = numbers.astype(np.uint32 if numbers.size == 0 or numbers.max() < 2**32 else np.uint64)
    out = np.empty((width, numbers.size), dtype=rest.dtype)
    for column in range(width - 1, -1, -1):  # last digit first
        quotient = rest // 10
        np.subtract(rest, quotient * 10, out=out[column])
        rest = quotient
    out += ord("0")
    return out.T


def image_names(file_ids: np.ndarray, local: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``f"{local + 1:06d}@{names[file_id]}"`` per particle, as a NumPy string array."""
    numbers = np.asarray(local, dtype=np.int64) + 1
    file_ids = np.asarray(file_ids, dtype=np.int64)
    n = numbers.size
    if n == 0:
        return np.array([], dtype=str)
    bases = np.array(list(names), dtype=str)
    name_width = max(1, bases.dtype.itemsize // 4)
    name_codes = bases.astype(f"<U{name_width}").view(np.uint32).reshape(len(bases), name_width)
    # digits per particle: at least 6 (RELION's width), more for positions past 999,999
    width = np.maximum(6, np.searchsorted(10 ** np.arange(1, 19, dtype=np.int64), numbers, side="right") + 1)
    low, high = int(width.min()), int(width.max())
    used = high + 1 + int(np.char.str_len(bases)[np.unique(file_ids)].max()) if len(bases) > 1 else \
        high + 1 + name_width
    out = np.zeros((n, high + 1 + name_width), dtype=np.uint32)
    for w in range(low, high + 1):  # one pass per digit count (one in practice)
        rows = slice(None) if low == high else np.flatnonzero(width == w)
        out[rows, :w] = _digits(numbers[rows], w)
        out[rows, w] = _AT
        out[rows, w + 1:w + 1 + name_width] = name_codes[file_ids[rows]]
    return np.ascontiguousarray(out[:, :used]).view(f"<U{used}").reshape(n)
