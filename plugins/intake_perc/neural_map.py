"""``neural_map``: a neural map saved with ``NeuralMap.save`` (weights + JSON metadata) as a catalog entry."""

from __future__ import annotations

from typing import Any, cast

import xarray as xr
from intake.source.base import Schema

from intake_perc._lazy import PercSource
from intake_perc._params import SourceParams


class NeuralMapParams(SourceParams):
    urlpath: str
    device: str = "cpu"


class NeuralMapSource(PercSource):
    """A saved neural map; ``read()`` returns the ``NeuralMap``, ``to_dask()`` its density on the fitted grid."""

    container = "python"
    name = "neural_map"
    Params = NeuralMapParams

    def __init__(self, urlpath: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, urlpath=urlpath, **kwargs)

    def _open(self) -> Any:
        from perc_platform.neural_maps import NeuralMap

        p = cast(NeuralMapParams, self.params)
        return NeuralMap.load(p.urlpath, device=p.device)

    def _dataset(self, opened: Any) -> xr.Dataset:
        # The density is sampled here (the weights are in memory, a map is small); dask-backed like every source's.
        return opened.sample().chunk().to_dataset(promote_attrs=True)

    def _schema_of(self, ds: xr.Dataset) -> Schema:
        neural_map = self._load()
        self.metadata.update({k: neural_map.attrs[k] for k in ("source_id", "source_uri") if k in neural_map.attrs})
        return Schema(datashape=None, dtype="float32", shape=neural_map.shape, npartitions=1, extra_metadata={})

    def _get_schema(self) -> Schema:
        return self._schema_of(xr.Dataset())

    def read(self) -> Any:
        """The ``NeuralMap`` itself (``to_dask().load()`` is its sampled density)."""
        return self._load()
