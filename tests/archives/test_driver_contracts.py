"""Every intake driver in plugins/intake_perc passes perc_platform.testing.contracts (one class per driver)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from intake_perc.emdb_map import EmdbMapSource
from intake_perc.empiar import EmpiarCatalog, EmpiarImagesetSource
from intake_perc.movies import MoviesSource
from intake_perc.mrc_stack import MrcStackSource
from intake_perc.mrc_volume import MrcVolumeSource
from intake_perc.neural_map import NeuralMapSource
from intake_perc.simulated_map import SimulatedMapSource
from intake_perc.simulated_particles import SimulatedParticlesSource
from intake_perc.structure import StructureSource
from intake_perc.subtomograms import SubtomogramsSource
from intake_perc.tilt_series import TiltSeriesSource
from intake_perc.tomogram import TomogramSource
from intake_perc.zarr_particles import ZarrParticlesSource

from perc_platform.testing import LoopbackServer, write_stack, write_volume
from perc_platform.testing.archive import ArchiveServer
from perc_platform.testing.contracts import CatalogDriverContract, DriverContract
from perc_platform.testing.empiar import empiar_archive

from .empiar_entry import NUMBER, build_tree

CONTRACTS: dict[str, type] = {}


def contract(name: str) -> Any:
    def register(cls: type) -> type:
        CONTRACTS[name] = cls
        return cls
    return register


def test_every_registered_driver_has_a_contract_test() -> None:
    ours = {ep.name for ep in entry_points(group="intake.drivers") if ep.value.startswith("intake_perc")}
    assert ours == set(CONTRACTS)


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("contract") / "stack.mrcs"
    write_stack(path, 30, (16, 16), seed=4)
    return path


@contract("mrc_stack")
class TestMrcStack(DriverContract):
    driver = MrcStackSource
    bad_kwargs = ({"chunk_size": 0}, {"chunk_size": "many"},)

    @pytest.fixture
    def source_kwargs(self, stack_file: Path) -> dict[str, Any]:
        return {"urlpath": str(stack_file), "chunk_size": 7}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"urlpath": f"{counting_server.url}/stack.mrcs", "star": f"{counting_server.url}/run.star"}


@contract("mrc_volume")
class TestMrcVolume(DriverContract):
    driver = MrcVolumeSource
    bad_kwargs = ({"chunks": -1},)

    @pytest.fixture
    def source_kwargs(self, tmp_path: Path) -> dict[str, Any]:
        data = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
        return {"urlpath": str(write_volume(tmp_path / "map.mrc", data, voxel_size=1.5))}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"urlpath": f"{counting_server.url}/map.mrc"}


@contract("simulated_map")
class TestSimulatedMap(DriverContract):
    driver = SimulatedMapSource
    bad_kwargs = ({"resolution": "-1"}, {"box": "big"},)

    @pytest.fixture
    def source_kwargs(self, shared: Path) -> dict[str, Any]:
        return {"structure": str(shared / "structures" / "1aki.pdb"), "resolution": "8", "voxel_size": "4",
                "box": "12"}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"structure": f"{counting_server.url}/1abc.pdb", "resolution": 6.0,
                "like": f"{counting_server.url}/like.mrc"}


@contract("simulated_particles")
class TestSimulatedParticles(DriverContract):
    driver = SimulatedParticlesSource
    bad_kwargs = ({"n": 0}, {"stage": "blurry"}, {"snr": "loud"},)

    @pytest.fixture
    def source_kwargs(self, shared: Path) -> dict[str, Any]:
        return {"structure": str(shared / "structures" / "1aki.pdb"), "n": "3", "box": "16", "pixel_size": "4",
                "chunk_size": "2"}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"structure": f"{counting_server.url}/1abc.pdb", "n": 10, "box": 32, "pixel_size": 2.0}


@contract("zarr_particles")
class TestZarrParticles(DriverContract):
    driver = ZarrParticlesSource

    @pytest.fixture(scope="class")
    @classmethod
    def store(cls, stack_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        import perc_platform as pp
        from perc_platform.cluster import close_client
        from perc_platform.processing import preprocess

        store = tmp_path_factory.mktemp("zarr") / "pre.zarr"
        try:
            preprocess(pp.open_particles(stack_file, chunk_size=10), store, box=8)
        finally:
            close_client()  # preprocess starts the embedded cluster; later tests must not inherit it
        return store

    @pytest.fixture
    def source_kwargs(self, store: Path) -> dict[str, Any]:
        return {"urlpath": str(store)}

    @pytest.fixture
    def remote_kwargs(self, tmp_path: Path) -> dict[str, Any]:
        return {"urlpath": str(tmp_path / "no-such.zarr")}


@contract("neural_map")
class TestNeuralMap(DriverContract):
    driver = NeuralMapSource
    bad_kwargs = ({"device": 3},)

    @pytest.fixture(scope="class")
    @classmethod
    def saved(cls, shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from perc_platform import neural_maps as nm
        from perc_platform.datasets import open_volume

        segment = open_volume(shared / "maps" / "emd_5168_monomer_segment.mrc").load()
        fitted = nm.fit_neural_map(segment, config=nm.SirenConfig(hidden_layers=1, hidden_width=8), max_region=64,
                                   device="cpu", max_steps=3, batch_size=256, target_mae=1e3, check_every=3)
        return Path(fitted.save(tmp_path_factory.mktemp("neural") / "map"))

    def as_dataset(self, read_result: Any) -> xr.Dataset:
        return read_result.sample().to_dataset(promote_attrs=True)

    @pytest.fixture
    def source_kwargs(self, saved: Path) -> dict[str, Any]:
        return {"urlpath": str(saved)}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"urlpath": f"{counting_server.url}/map"}


@contract("structure")
class TestStructure(DriverContract):
    driver = StructureSource
    bad_kwargs = ({"clean": "maybe"}, {"format": "mmcif"}, {"prefer": "emdb"},)

    @pytest.fixture
    def source_kwargs(self, archive: ArchiveServer) -> dict[str, Any]:
        return {"pdb_id": "1aki", "clean": "false"}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        for name in ("PERC_RCSB_FILES_URL", "PERC_PDBE_API_URL", "PERC_AFDB_API_URL", "PERC_PROTEINS_API_URL"):
            monkeypatch.setenv(name, counting_server.url)
        return {"uniprot_id": "P00698", "clean": "true"}


@contract("emdb_map")
class TestEmdbMap(DriverContract):
    driver = EmdbMapSource
    bad_kwargs = ({"chunks": 0}, {"metadata_fields": "perhaps"},)

    @pytest.fixture
    def source_kwargs(self, archive: ArchiveServer) -> dict[str, Any]:
        return {"emdb_id": "EMD-5168", "chunks": 50}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("PERC_EMDB_FILES_URL", counting_server.url)
        monkeypatch.setenv("PERC_EMDB_API_URL", counting_server.url)
        return {"emdb_id": "EMD-5168"}


@pytest.fixture(scope="module")
def tomography_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-tilt series with its IMOD .tlt file, a 24^3 tomogram and a CSV of picks inside it."""
    folder = tmp_path_factory.mktemp("tomo")
    write_stack(folder / "ts.mrc", 5, (16, 16), seed=5)
    (folder / "ts.tlt").write_text("\n".join(str(a) for a in (-30, -15, 0, 15, 30)) + "\n")
    data = np.random.default_rng(6).normal(size=(24, 24, 24)).astype(np.float32)
    write_volume(folder / "tomo.mrc", data, voxel_size=2.0)
    (folder / "picks.csv").write_text("x,y,z\n8,8,8\n12,10,14\n16,16,16\n")
    return folder


@contract("movies")
class TestMovies(DriverContract):
    driver = MoviesSource
    bad_kwargs = ({"chunk_size": 0}, {"dose_per_frame": "lots"}, {"super_resolution": 3}, {"remainder": "last"},
                  {"frames_per_fraction": 0},)

    @pytest.fixture
    def source_kwargs(self, stack_file: Path) -> dict[str, Any]:
        return {"urlpath": str(stack_file), "dose_per_frame": 1.5, "pixel_size": 1.0, "mdoc": "false"}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"urlpath": f"{counting_server.url}/movie.tif", "gain": f"{counting_server.url}/gain.mrc"}


@contract("tilt_series")
class TestTiltSeries(DriverContract):
    driver = TiltSeriesSource
    bad_kwargs = ({"chunk_size": -2},)

    @pytest.fixture
    def source_kwargs(self, tomography_files: Path) -> dict[str, Any]:
        return {"urlpath": str(tomography_files / "ts.mrc")}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"urlpath": f"{counting_server.url}/ts.st"}


@contract("tomogram")
class TestTomogram(DriverContract):
    driver = TomogramSource
    bad_kwargs = ({"level": -1}, {"chunks": 0},)

    @pytest.fixture
    def source_kwargs(self, tomography_files: Path) -> dict[str, Any]:
        return {"urlpath": str(tomography_files / "tomo.mrc")}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"urlpath": f"{counting_server.url}/tomo.rec"}


@contract("subtomograms")
class TestSubtomograms(DriverContract):
    driver = SubtomogramsSource
    bad_kwargs = ({"units": "nanometre"}, {"box": 0}, {"edge": "wrap"},)

    @pytest.fixture
    def source_kwargs(self, tomography_files: Path) -> dict[str, Any]:
        return {"urlpath": str(tomography_files / "tomo.mrc"), "picks": str(tomography_files / "picks.csv"),
                "box": 8, "units": "pixel"}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer) -> dict[str, Any]:
        return {"urlpath": f"{counting_server.url}/tomo.rec", "picks": f"{counting_server.url}/picks.star",
                "box": 8, "units": "angstrom"}


@pytest.fixture(scope="module")
def empiar_tree(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    return build_tree(tmp_path_factory.mktemp("empiar"), shared)


@pytest.fixture
def empiar_server(empiar_tree: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    monkeypatch.setenv("PERC_BACKOFF", "0.01")
    monkeypatch.setenv("PERC_RETRIES", "3")
    with empiar_archive(empiar_tree) as server:
        yield server


def _empiar_at(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_EMPIAR_API_URL", server.url)
    monkeypatch.setenv("PERC_EMPIAR_FILES_URL", server.url)


@contract("empiar_imageset")
class TestEmpiarImageset(DriverContract):
    driver = EmpiarImagesetSource
    bad_kwargs = ({"chunk_size": -3}, {"ttl": "soon"}, {"super_resolution": 8}, {"remainder": "merge"},)

    @pytest.fixture
    def source_kwargs(self, empiar_server: LoopbackServer) -> dict[str, Any]:
        return {"entry": f"EMPIAR-{NUMBER}", "imageset": "particles", "pattern": "*.mrcs", "chunk_size": "20"}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        _empiar_at(counting_server, monkeypatch)
        return {"entry": "EMPIAR-10999", "imageset": "particles", "pattern": "*.mrcs"}


@contract("empiar")
class TestEmpiarCatalog(CatalogDriverContract):
    driver = EmpiarCatalog
    bad_kwargs = ({"ttl": "-1"},)

    @pytest.fixture
    def source_kwargs(self, empiar_server: LoopbackServer) -> dict[str, Any]:
        return {"entry": f"EMPIAR-{NUMBER}"}

    @pytest.fixture
    def remote_kwargs(self, counting_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        _empiar_at(counting_server, monkeypatch)
        return {"entry": "EMPIAR-10999"}
