"""The xarray backend engine ``mrc``: ``xr.open_dataset("x.mrcs")`` and ``open_mfdataset`` over MRC files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from perc_platform.conventions import DENSITY_NAME, IMAGE_NAME, PARTICLE_DIMS, VOLUME_DIMS
from perc_platform.datasets.particles import particle_parts
from perc_platform.datasets.volumes import volume_parts
from perc_platform.errors import ParameterError
from perc_platform.io.formats import format_for
from perc_platform.io.mrc_array import MrcVolumeArray
from perc_platform.io.mrc_file import open_mrc_file
from perc_platform.io.mrc_header import MrcHeader
from perc_platform.io.stack_array import StackArray

__all__ = ["MrcBackendArray", "MrcBackendEntrypoint", "guess_kind"]


class MrcBackendArray(BackendArray):
    """xarray's view of a lazy MRC array; supports outer indexing natively."""

    def __init__(self, array: StackArray | MrcVolumeArray) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = np.dtype(array.dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER,
                                                  self.array.__getitem__)


def _nothing_to_close() -> None:
    return None


def guess_kind(url: str, header: MrcHeader) -> str:
    """``"stack"`` or ``"volume"`` for a file whose caller did not say.

    By extension first (the format table's kinds: ``.mrcs``/``.st`` stacks, ``.map``/``.ccp4``/``.rec`` volumes,
    TIFF stacks), then by ISPG (1-400
    volume, 401+ volume stack read as images). ISPG 0 is ambiguous in practice (Chimera writes maps with it,
    cryoSPARC writes stacks as ``.mrc``): a file that carries placement (a non-zero ORIGIN or start) is a
    map, otherwise a stack. Pass ``kind=`` to decide explicitly.
    """
    fmt = format_for(url)
    by_name = fmt.kind_of(url) if fmt is not None else None
    if by_name is not None:
        return by_name
    if 1 <= header.ispg <= 400:
        return "volume"
    if header.ispg >= 401:
        return "stack"
    placed = any(o != 0 for o in header.origin) or any(s != 0 for s in header.start)
    return "volume" if placed and header.nz > 1 else "stack"


class MrcBackendEntrypoint(BackendEntrypoint):
    """Open MRC/MRCS files as lazy Datasets (``image`` for stacks, ``density`` for volumes)."""

    description = "Lazy MRC2014 stacks and maps (perc-platform)"
    url = "https://github.com/perc-platform/perc-platform"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "star", "kind", "storage_options",
                               "mask_and_scale", "decode_times", "decode_timedelta", "use_cftime",
                               "concat_characters", "decode_coords")

    def open_dataset(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                     star: str | None = None, kind: str | None = None,
                     storage_options: dict[str, Any] | None = None, mask_and_scale: Any = None,
                     decode_times: Any = None, decode_timedelta: Any = None, use_cftime: Any = None,
                     concat_characters: Any = None, decode_coords: Any = None) -> xr.Dataset:
        """Open ``filename_or_obj`` lazily (nothing but headers and the STAR file is read).

        The CF decoding keywords that ``xr.open_dataset`` passes (``decode_cf``, ``mask_and_scale``,
        ``decode_times``, ...) are accepted and have nothing to do: MRC data carry no fill values, scale
        factors, time or CF coordinate attributes, so decoded and raw values are the same.
        """
        url = os.fspath(filename_or_obj)
        if kind not in (None, "stack", "volume"):
            raise ParameterError(f"kind={kind!r} for {url}: use 'stack' or 'volume' (or leave it out)")
        fmt = format_for(url)
        if kind is None:
            kind = "stack" if star or (fmt is not None and fmt.name != "mrc") else \
                guess_kind(url, open_mrc_file(url, storage_options).header)
        if kind == "stack":
            array, coords, attrs = particle_parts(url, star, storage_options)
            var = xr.Variable(PARTICLE_DIMS, indexing.LazilyIndexedArray(MrcBackendArray(array)))
            ds = xr.Dataset({IMAGE_NAME: var},
                            coords={k: ("particle", np.asarray(v)) for k, v in coords.items()}, attrs=attrs)
        else:
            volume, coords, attrs = volume_parts(open_mrc_file(url, storage_options))
            var = xr.Variable(VOLUME_DIMS, indexing.LazilyIndexedArray(MrcBackendArray(volume)))
            ds = xr.Dataset({DENSITY_NAME: var}, coords=coords, attrs=attrs)
        ds[next(iter(ds.data_vars))].attrs.update(attrs)
        if drop_variables:
            ds = ds.drop_vars([drop_variables] if isinstance(drop_variables, str) else list(drop_variables))
        # xarray's open_mfdataset calls every part's closer; reads open and close their own handles per call,
        # so there is nothing held open to release.
        ds.set_close(_nothing_to_close)
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        try:
            name = os.fspath(filename_or_obj).lower()
        except TypeError:
            return False
        return format_for(name) is not None
