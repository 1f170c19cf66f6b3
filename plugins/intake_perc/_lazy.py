"""The shared base of every perc driver: validated parameters, no I/O before first use, lazy ``to_dask``.

``PercSource`` stores its validated parameters in ``__init__`` (touching nothing), opens on first use
(``_open``), returns xarray objects from ``to_dask`` whose data variables are dask arrays, and
``read() == to_dask().load()``. ``perc_platform.testing.contracts.DriverContract`` checks exactly this for
every driver.
"""

from __future__ import annotations

from typing import Any, ClassVar

import xarray as xr
from intake.source.base import DataSource, Schema

from intake_perc._params import SourceParams, validate_params
from perc_platform._version import __version__


class PercSource(DataSource):
    """Base of the perc drivers; subclasses set ``name`` and ``Params`` and define ``_open`` and ``_dataset``."""

    container = "xarray"
    version = __version__
    partition_access = False
    Params: ClassVar[type[SourceParams]]

    def __init__(self, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.params = validate_params(self.Params, self.name, **kwargs)
        self._opened: Any = None
        super().__init__(metadata=metadata)

    def _open(self) -> Any:
        """Open the data (headers, metadata, downloads into the cache); nothing else may do I/O."""
        raise NotImplementedError

    def _dataset(self, opened: Any) -> xr.Dataset:
        """The lazy Dataset of what ``_open`` returned."""
        raise NotImplementedError

    def _schema_of(self, ds: xr.Dataset) -> Schema:
        first = ds[next(iter(ds.data_vars))]
        return Schema(datashape=None, dtype=str(first.dtype), shape=first.shape, npartitions=1, extra_metadata={})

    def _load(self) -> Any:
        if self._opened is None:
            self._opened = self._open()
        return self._opened

    def _get_schema(self) -> Schema:
        ds = self.to_dask()
        self.metadata.update({k: v for k, v in ds.attrs.items() if k != "history"})
        return self._schema_of(ds)

    def to_dask(self) -> xr.Dataset:
        return self._dataset(self._load())

    def read(self) -> Any:
        return self.to_dask().load()

    def _close(self) -> None:
        self._opened = None


class LazyArraySource(PercSource):
    """A source whose ``_open`` returns one lazy DataArray; ``to_dask()`` is it as a Dataset."""

    def _dataset(self, opened: xr.DataArray) -> xr.Dataset:
        return opened.to_dataset(promote_attrs=True)
