"""Shared base of the drivers that build one lazy DataArray (simulated and preprocessed data)."""

from __future__ import annotations

from typing import Any, ClassVar

import xarray as xr
from intake.source.base import DataSource, Schema

from intake_perc._params import SourceParams, validate_params
from perc_platform._version import __version__


class LazyArraySource(DataSource):
    """A source whose ``to_dask()`` is one lazy DataArray as a Dataset; subclasses set ``Params`` and ``_open``."""

    container = "xarray"
    version = __version__
    partition_access = False
    Params: ClassVar[type[SourceParams]]

    def __init__(self, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.params = validate_params(self.Params, self.name, **kwargs)
        self._array: xr.DataArray | None = None
        super().__init__(metadata=metadata)

    def _open(self) -> xr.DataArray:
        raise NotImplementedError

    def _load(self) -> xr.DataArray:
        if self._array is None:
            self._array = self._open()
        return self._array

    def _get_schema(self) -> Schema:
        array = self._load()
        self.metadata.update({k: v for k, v in array.attrs.items() if k != "history"})
        return Schema(datashape=None, dtype=str(array.dtype), shape=array.shape, npartitions=1, extra_metadata={})

    def to_dask(self) -> xr.Dataset:
        return self._load().to_dataset(promote_attrs=True)

    def read(self) -> xr.Dataset:
        return self.to_dask().load()

    def _close(self) -> None:
        self._array = None
