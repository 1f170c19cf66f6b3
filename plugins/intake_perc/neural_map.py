"""``neural_map``: a neural map saved with ``NeuralMap.save`` (weights + JSON metadata) as a catalog entry."""

from __future__ import annotations

from typing import Any

from intake.source.base import DataSource, Schema

from intake_perc._params import SourceParams, validate_params
from perc_platform._version import __version__


class NeuralMapParams(SourceParams):
    urlpath: str
    device: str = "cpu"


class NeuralMapSource(DataSource):
    """A saved neural map; ``read()`` returns the ``NeuralMap``, ``to_dask()`` its density on the fitted grid."""

    container = "python"
    name = "neural_map"
    version = __version__
    partition_access = False

    def __init__(self, urlpath: str, device: str = "cpu", metadata: dict[str, Any] | None = None,
                 **unknown: Any) -> None:
        self.params = validate_params(NeuralMapParams, self.name, urlpath=urlpath, device=device, **unknown)
        self._neural_map: Any = None
        super().__init__(metadata=metadata)

    def _load(self) -> Any:
        if self._neural_map is None:
            from perc_platform.neural_maps import NeuralMap

            self._neural_map = NeuralMap.load(self.params.urlpath, device=self.params.device)
        return self._neural_map

    def _get_schema(self) -> Schema:
        neural_map = self._load()
        self.metadata.update({k: neural_map.attrs[k] for k in ("source_id", "source_uri") if k in neural_map.attrs})
        return Schema(datashape=None, dtype="float32", shape=neural_map.shape, npartitions=1, extra_metadata={})

    def read(self) -> Any:
        return self._load()

    def to_dask(self) -> Any:
        return self._load().sample().to_dataset(promote_attrs=True)

    def _close(self) -> None:
        self._neural_map = None
