"""Class labels for particles: from a metadata column or from file-name prefixes ``{class}_...`` (CAKED)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from perc_platform.errors import ParameterError

__all__ = ["FILE_PREFIX", "Labels", "file_prefix_classes", "resolve_labels"]

#: Pass ``labels=FILE_PREFIX`` to take each particle's class from its file name, ``{class}_rest.mrc``.
FILE_PREFIX = "file_prefix"


@dataclasses.dataclass(frozen=True)
class Labels:
    """Integer class codes per particle (``codes[i]`` indexes ``classes``) and where they came from."""

    codes: np.ndarray
    classes: tuple[Any, ...]
    source: str

    def class_of(self, code: int) -> Any:
        return self.classes[int(code)]


def _file_names(images: xr.DataArray) -> np.ndarray:
    if "image_name" in images.coords:
        names = np.asarray(images.coords["image_name"].values).astype(str)
        codes, stacks = pd.factorize(names_after_at(names))  # a name per file, not per particle, below
        return np.array([os.path.basename(n) for n in stacks.tolist()] or [""])[codes]
    files = images.attrs.get("stack_files")
    if files and len(files) == 1:
        return np.full(images.shape[0], os.path.basename(str(files[0])))
    raise ParameterError("labels='file_prefix' needs the particles' file names (an `image_name` coord, as "
                         "open_particles adds); open the files with perc_platform.open_particles")


def names_after_at(names: np.ndarray) -> np.ndarray:
    """``stack.mrcs`` of each ``000012@stack.mrcs`` (a name without ``@`` as it is), column-wise."""
    strings = getattr(np, "strings", np.char)  # NumPy 2's string ufuncs; np.char loops on NumPy 1
    parts = strings.partition(names, "@")  # NumPy 2: three arrays; NumPy 1: one (..., 3) array
    head, at, tail = parts if isinstance(parts, tuple) else np.moveaxis(parts, -1, 0)
    return np.asarray(np.where(at == "@", tail, head))


def file_prefix_classes(names: Sequence[str] | np.ndarray) -> np.ndarray:
    """The ``{class}`` part of file names ``{class}_rest`` (CAKED convention)."""
    codes, distinct = pd.factorize(np.asarray(names).astype(str))  # one check per distinct name
    out = []
    for name in distinct.tolist():
        base = os.path.basename(name)
        prefix, sep, _ = base.partition("_")
        if not sep or not prefix:
            raise ParameterError(f"file name {base!r} does not follow the `{{class}}_...` convention; name files "
                                 "like `3_particle0001.mrc`, or take labels from a metadata column")
        out.append(prefix)
    return np.array(out or [""])[codes] if codes.size else np.array([], dtype=str)


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "OUS":
        text = values.astype(str)
        return (text == "") | (text == "None") | (text == "nan")
    return np.zeros(values.shape, dtype=bool)


def _sorted_classes(values: np.ndarray) -> list[Any]:
    unique = np.unique(values)
    return [v.item() if hasattr(v, "item") else v for v in unique]


def resolve_labels(images: xr.DataArray, labels: str | Sequence[Any] | np.ndarray | None,
                   classes: Sequence[Any] | None = None) -> Labels | None:
    """Class codes from ``labels``: a coord name, ``"file_prefix"``, or one value per particle.

    ``classes`` fixes the known classes and their order (codes follow it); a particle whose class is not in
    it, or whose label is missing (NaN or empty), raises a ParameterError naming the particles.
    """
    if labels is None:
        return None
    n = images.shape[0]
    dim = images.dims[0]
    if isinstance(labels, str):
        if labels in images.coords:
            coord = images.coords[labels]
            if coord.dims != (dim,):
                raise ParameterError(f"label column {labels!r} has dims {coord.dims}; it must lie along {dim!r}")
            values, source = np.asarray(coord.values), f"column {labels!r}"
        elif labels == FILE_PREFIX:
            values, source = file_prefix_classes(_file_names(images)), "file-name prefix"
        else:
            columns = sorted(str(c) for c in images.coords if images.coords[c].dims == (dim,))
            raise ParameterError(f"labels={labels!r} is neither a per-particle column nor {FILE_PREFIX!r}; "
                                 f"columns are: {', '.join(columns) or '(none)'}")
    else:
        values, source = np.asarray(labels), "given values"
        if values.shape != (n,):
            raise ParameterError(f"labels has shape {values.shape}; give one label per particle ({n})")
    missing = _missing(values)
    if missing.any():
        where = np.flatnonzero(missing)
        raise ParameterError(f"{missing.sum()} particle(s) have no label in {source} (first at positions "
                             f"{where[:5].tolist()}); fill the labels or select the labelled particles first")
    known = list(classes) if classes is not None else _sorted_classes(values)
    lookup = {str(c): i for i, c in enumerate(known)}
    as_int = values.dtype.kind == "f" and bool(np.all(values == np.round(values)))
    if as_int:
        lookup.update({str(int(c)): i for i, c in enumerate(known) if isinstance(c, (int, float, np.number))})
    # One look-up per distinct value (factorize hashes in C), then one gather: no per-particle Python.
    inverse, distinct = pd.factorize(values)
    keys = [str(int(v)) if as_int else str(v) for v in np.asarray(distinct).tolist()]
    distinct_codes = np.array([lookup.get(key, -1) for key in keys] or [0], dtype=np.int64)
    codes = distinct_codes[inverse] if n else np.empty(0, dtype=np.int64)
    unknown = {key: int(np.argmax(inverse == j)) for j, key in enumerate(keys) if distinct_codes[j] < 0}
    if unknown:
        shown = ", ".join(f"{k!r} (particle {i})" for k, i in list(unknown.items())[:5])
        raise ParameterError(f"unknown class(es) in {source}: {shown}; known classes are {known}. Add them to "
                             "`classes=` or drop those particles")
    return Labels(codes=codes, classes=tuple(known), source=source)
