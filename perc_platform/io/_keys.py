"""NumPy-style keys for the lazy arrays: normalised to one int / slice / 1-D int array per axis."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Key", "indices", "normalize_key", "outer_index"]

Key = tuple[Any, ...]


def normalize_key(key: Any, ndim: int) -> Key:
    """Turn a NumPy-style key into a full tuple of int / slice / 1-D int array, one per axis."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1:]
    key = key + (slice(None),) * (ndim - len(key))
    out: list[Any] = []
    for k in key:
        if isinstance(k, (list, np.ndarray)):
            arr = np.asarray(k)
            if arr.dtype == bool:
                arr = np.flatnonzero(arr)
            out.append(arr.astype(np.int64).reshape(-1))
        else:
            out.append(k)
    return tuple(out)


def indices(k: Any, n: int) -> np.ndarray:
    if isinstance(k, slice):
        return np.arange(n, dtype=np.int64)[k]
    idx = k.copy() if isinstance(k, np.ndarray) else np.asarray([int(k)], dtype=np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"index out of range for axis of length {n}")
    idx[idx < 0] += n
    return idx


def outer_index(array: np.ndarray, key: Key) -> np.ndarray:
    """Index one axis at a time, last axis first, so that array keys index orthogonally (outer indexing)."""
    out = array
    for axis in range(len(key) - 1, -1, -1):
        k = key[axis]
        if isinstance(k, slice) and k == slice(None):
            continue
        index: list[Any] = [slice(None)] * out.ndim
        index[axis] = k
        out = out[tuple(index)]
    return out
