"""The contract every perc intake driver passes, as a pytest base class (zarr's ``StoreTests`` pattern).

Subclass :class:`DriverContract` in a test module, set ``driver`` (the source class) and define two
fixtures: ``source_kwargs`` (keyword arguments of a readable source) and ``remote_kwargs`` (keyword
arguments of a source whose data would live on the ``counting_server`` given to it, or at a path that does
not exist). The inherited tests check: no I/O in the constructor (nothing asked of that server, no error
for a missing path), sources pickle, ``to_dask()`` is lazy (dask-backed data variables), ``read()`` equals
``to_dask().load()``, and bad parameters (unknown keywords, the values in ``bad_kwargs``) raise
``ParameterError``. :class:`CatalogDriverContract` is the subset for drivers that are catalogs.

Needs pytest (``pip install "perc-platform[test]"``).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import dask.array as da
import pytest
import xarray as xr

from perc_platform.errors import ParameterError
from perc_platform.testing.server import LoopbackServer

__all__ = ["CatalogDriverContract", "DriverContract"]


class CatalogDriverContract:
    """Constructor without I/O, pickling and parameter checks, for drivers that are intake catalogs."""

    driver: ClassVar[type]
    #: Parameter values the driver must refuse with ParameterError (each merged into ``source_kwargs``).
    bad_kwargs: ClassVar[tuple[dict[str, Any], ...]] = ()

    @pytest.fixture
    def counting_server(self, tmp_path: Path) -> Iterator[LoopbackServer]:
        """A loopback server over an empty folder that records every request made to it."""
        root = tmp_path / "counting-server"
        root.mkdir()
        with LoopbackServer(root) as server:
            yield server

    @pytest.fixture
    def source_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError("define the source_kwargs fixture: keywords of a readable source")

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer, tmp_path: Path) -> dict[str, Any]:
        raise NotImplementedError("define the remote_kwargs fixture: keywords pointing at counting_server")

    def make(self, **kwargs: Any) -> Any:
        return self.driver(**kwargs)

    def test_the_constructor_does_no_io(self, remote_kwargs: dict[str, Any], counting_server: LoopbackServer) -> None:
        source = self.make(**remote_kwargs)
        source.yaml()  # what intake prints of a source: its arguments, nothing read
        pickle.loads(pickle.dumps(source))
        assert counting_server.requests == [], f"{self.driver.__name__}() made requests: {counting_server.requests}"

    def test_the_source_pickles_with_its_parameters(self, source_kwargs: dict[str, Any]) -> None:
        source = self.make(**source_kwargs)
        again = pickle.loads(pickle.dumps(source))
        assert type(again) is type(source) and again.params == source.params

    def test_an_unknown_keyword_is_a_parameter_error(self, source_kwargs: dict[str, Any]) -> None:
        with pytest.raises(ParameterError, match="not_a_parameter"):
            self.make(**source_kwargs, not_a_parameter="1")

    def test_bad_values_are_parameter_errors(self, source_kwargs: dict[str, Any]) -> None:
        for bad in self.bad_kwargs:
            with pytest.raises(ParameterError, match=next(iter(bad))):
                self.make(**{**source_kwargs, **bad})


class DriverContract(CatalogDriverContract):
    """The full contract for data sources: also lazy ``to_dask`` and ``read() == to_dask().load()``."""

    def as_dataset(self, read_result: Any) -> xr.Dataset:
        """``read()``'s result as a Dataset (override where ``read`` returns another container)."""
        return read_result

    def test_to_dask_is_lazy(self, source_kwargs: dict[str, Any]) -> None:
        ds = self.make(**source_kwargs).to_dask()
        assert isinstance(ds, xr.Dataset) and ds.data_vars
        for name, var in ds.data_vars.items():
            assert isinstance(var.data, da.Array), f"{name} is {type(var.data).__name__}, not a dask array"

    def test_discover_describes_the_data(self, source_kwargs: dict[str, Any]) -> None:
        info = self.make(**source_kwargs).discover()
        assert info["shape"] and all(n >= 0 for n in info["shape"]) and info["npartitions"] >= 1, info

    def test_read_equals_to_dask_load(self, source_kwargs: dict[str, Any]) -> None:
        source = self.make(**source_kwargs)
        loaded = source.to_dask().load()
        xr.testing.assert_identical(_timeless(self.as_dataset(source.read())), _timeless(loaded))

    def test_a_pickled_source_reads_the_same(self, source_kwargs: dict[str, Any]) -> None:
        source = self.make(**source_kwargs)
        again = pickle.loads(pickle.dumps(source)).to_dask().load()
        xr.testing.assert_identical(_timeless(again), _timeless(source.to_dask().load()))


def _timeless(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without the provenance attributes that carry the time of opening (``retrieved``, ``history``)."""
    out = ds.copy()
    holders: list[Any] = [out, *out.variables.values()]
    for obj in holders:
        obj.attrs = {k: v for k, v in obj.attrs.items() if k not in ("retrieved", "history")}
    return out
