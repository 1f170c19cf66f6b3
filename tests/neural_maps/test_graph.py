"""Density graphs: DBSCAN, peak finding on a fitted map of known peaks, mmCIF export, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import gemmi
import networkx as nx
import numpy as np
import pytest
import xarray as xr

import perc_platform.neural_maps as nm
from perc_platform.errors import DataNotFoundError, FormatError, InputError, ParameterError
from perc_platform.neural_maps._graph import dbscan, node_positions

PEAKS = np.array([[8.0, 10.0, 12.0], [11.6, 11.0, 12.5], [14.5, 13.2, 12.0], [17.0, 15.5, 13.0]])


def _naive_dbscan(points: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Textbook DBSCAN (O(n^2)), as the independent check."""
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1)
    neighbours = dist <= eps
    core = neighbours.sum(axis=1) >= min_samples
    labels = np.full(len(points), -1)
    cluster = 0
    for i in np.flatnonzero(core):
        if labels[i] >= 0:
            continue
        stack = [i]
        labels[i] = cluster
        while stack:
            j = stack.pop()
            if not core[j]:
                continue
            for k in np.flatnonzero(neighbours[j]):
                if labels[k] < 0:
                    labels[k] = cluster
                    stack.append(k)
        cluster += 1
    return labels


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.array_equal(a < 0, b < 0):
        return False
    pairs = {(x, y) for x, y in zip(a[a >= 0], b[b >= 0], strict=True)}
    return len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs})


@pytest.mark.parametrize("min_samples", [1, 3, 6])
def test_dbscan_matches_the_textbook(min_samples: int) -> None:
    rng = np.random.default_rng(min_samples)
    points = np.concatenate([rng.normal(c, 0.3, (40, 3)) for c in rng.uniform(0, 6, (6, 3))]
                            + [rng.uniform(0, 6, (30, 3))])
    got = dbscan(points, 0.45, min_samples)
    expected = _naive_dbscan(points, 0.45, min_samples)
    # border points reachable from two clusters may go to either; compare where DBSCAN is unambiguous:
    # which points are noise, and how the core points are partitioned
    core = (np.linalg.norm(points[:, None] - points[None], axis=-1) <= 0.45).sum(1) >= min_samples
    assert np.array_equal(got < 0, expected < 0)
    assert _same_partition(got[core], expected[core])
    assert len(set(got[got >= 0])) == len(set(expected[expected >= 0]))


@pytest.fixture(scope="module")
def blob_map() -> nm.NeuralMap:
    """A neural map fitted to a synthetic map of four Gaussian peaks about 3.8 A apart."""
    axis = np.arange(24) * 1.0 + 1.0
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    grid = np.stack([x, y, z], axis=-1)
    values = sum(np.exp(-np.sum((grid - p) ** 2, axis=-1) / (2 * 1.2**2)) for p in PEAKS)
    density = xr.DataArray(values, dims=("z", "y", "x"), coords={"z": axis, "y": axis, "x": axis},
                           name="density", attrs={"voxel_size": [1.0, 1.0, 1.0], "source_id": "synthetic"})
    return nm.fit_neural_map(density, config=nm.SirenConfig(2, 64), device="cpu", max_steps=400,
                             batch_size=2048, learning_rate=1e-3, target_mae=0.004)


def test_graph_nodes_sit_on_the_peaks(blob_map: nm.NeuralMap) -> None:
    graph = nm.density_graph(blob_map, threshold=0.3, edge_length=4.5, min_component_size=1)
    nodes = node_positions(graph)
    assert len(nodes) == len(PEAKS)
    nearest = np.linalg.norm(nodes[:, None] - PEAKS[None], axis=-1).min(axis=0)
    assert nearest.max() < 0.4
    assert nx.number_connected_components(graph) == 1 and graph.number_of_edges() == 3
    for n in graph.nodes:
        assert graph.nodes[n]["density_normalized"] > 0.8
    # components smaller than min_component_size are dropped
    assert nm.density_graph(blob_map, threshold=0.3, edge_length=4.5, min_component_size=5).number_of_nodes() == 0
    # edges join nodes up to edge_length only
    assert nm.density_graph(blob_map, threshold=0.3, edge_length=3.0, min_component_size=1).number_of_edges() == 0


def test_mmcif_export(blob_map: nm.NeuralMap, tmp_path: Path) -> None:
    graph = nm.density_graph(blob_map, threshold=0.3, edge_length=4.5, min_component_size=1)
    path = nm.write_graph_mmcif(graph, tmp_path / "graph.cif")
    structure = gemmi.read_structure(str(path))
    atoms = np.array([a.pos.tolist() for r in structure[0]["A"] for a in r])
    np.testing.assert_allclose(atoms, node_positions(graph), atol=1e-3)


def _graph_at(points: np.ndarray) -> nx.Graph:
    graph = nx.Graph()
    for i, p in enumerate(points):
        graph.add_node(i, position=tuple(p))
    return graph


def test_evaluate_graph_against_known_offsets(shared: Path) -> None:
    path = shared / "structures" / "3J6B_chain9.pdb"
    ca = nm.read_ca_positions(path)
    assert len(ca) == 195  # MANIFEST: 195 residues with CA
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(len(ca), 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    near = ca[:100] + 1.0 * direction[:100]  # covered, 1 A off
    extra = ca[:100] + np.array([0.0, 0.0, 40.0])  # far from everything
    score = nm.evaluate_graph(_graph_at(np.concatenate([near, extra])), path)
    # a few shifted nodes may also fall within 2 A of a neighbouring CA; count them independently
    dist_ca = np.linalg.norm(ca[:, None] - near[None], axis=-1).min(axis=1)
    assert score.coverage == pytest.approx((dist_ca <= 2.0).mean())
    assert score.precision == pytest.approx(0.5, abs=0.05)
    assert score.rmsd == pytest.approx(np.sqrt(np.mean(dist_ca[dist_ca <= 2.0] ** 2)))
    assert score.n_nodes == 200 and score.n_ca == 195


def test_evaluate_accepts_structure_datasets(shared: Path) -> None:
    st = gemmi.read_structure(str(shared / "structures" / "3MFP_tempy.pdb"))
    atoms = [(a.pos.tolist(), a.name, a.element.name) for r in st[0]["A"] for a in r]
    ds = xr.Dataset({"position": (("atom", "axis"), np.array([a[0] for a in atoms]))},
                    coords={"atom_name": ("atom", [a[1] for a in atoms]), "element": ("atom", [a[2] for a in atoms])})
    ca = nm.read_ca_positions(ds)
    np.testing.assert_allclose(ca, nm.read_ca_positions(st))
    assert nm.evaluate_graph(_graph_at(ca), ds).coverage == 1.0
    with pytest.raises(DataNotFoundError):
        nm.read_ca_positions("/nonexistent.pdb")


def test_resolution_sets_the_edges_and_is_required(blob_map: nm.NeuralMap) -> None:
    """No silent default: without a resolution the graph asks for one; with one, the filters scale to it."""
    with pytest.raises(ParameterError, match="resolution"):
        nm.density_graph(blob_map, threshold=0.3)
    with pytest.raises(ParameterError, match="must be positive"):
        nm.density_graph(blob_map, threshold=0.3, resolution=0.0)  # not taken as "unknown", nor as 4 A
    with pytest.raises(ParameterError, match="must be positive"):
        nm.density_graph(blob_map, threshold=0.3, resolution=3.0, edge_length=-1.0)
    graph = nm.density_graph(blob_map, threshold=0.3, resolution=3.0)
    assert graph.graph["edge_length"] == pytest.approx(max(4.0, 1.6 * 3.0))
    assert graph.graph["min_component_size"] == int(np.ceil(20.0 / 4.8)) == 5
    assert graph.number_of_nodes() == 0  # the four peaks are one component of 4 < 5 nodes
    coarse = nm.density_graph(blob_map, threshold=0.3, resolution=8.0)  # 12.8 A edges, components of >= 2
    assert coarse.graph["min_component_size"] == 2 and coarse.number_of_nodes() == 4
    assert coarse.number_of_edges() == 6  # every pair within 12.8 A
    blob_map.attrs["resolution"] = 8.0  # from the map's metadata (open_emdb_map puts it there)
    try:
        assert nm.density_graph(blob_map, threshold=0.3).graph["edge_length"] == pytest.approx(12.8)
    finally:
        del blob_map.attrs["resolution"]


def test_graph_json_round_trip_keeps_the_edges(blob_map: nm.NeuralMap, tmp_path: Path) -> None:
    graph = nm.density_graph(blob_map, threshold=0.3, edge_length=4.5, min_component_size=1)
    path = nm.write_graph(graph, tmp_path / "graph.json")
    raw = json.loads(path.read_text())  # independent read of the file
    assert len(raw["edges"]) == graph.number_of_edges() == 3
    back = nm.read_graph(path)
    assert sorted(back.edges) == sorted(graph.edges)
    for a, b in graph.edges:
        assert back.edges[a, b]["distance"] == pytest.approx(graph.edges[a, b]["distance"])
    np.testing.assert_allclose(node_positions(back), node_positions(graph))
    assert back.graph["edge_length"] == 4.5
    assert not list(tmp_path.glob(".*partial"))
    (tmp_path / "bad.json").write_text('{"nodes": []}')
    with pytest.raises(FormatError):
        nm.read_graph(tmp_path / "bad.json")
    with pytest.raises(DataNotFoundError):
        nm.read_graph(tmp_path / "missing.json")


def test_evaluate_graph_takes_an_array_of_ca_positions(shared: Path) -> None:
    ca = nm.read_ca_positions(shared / "structures" / "3J6B_chain9.pdb")
    half = _graph_at(ca[::2])
    by_array = nm.evaluate_graph(half, ca)
    assert by_array == nm.evaluate_graph(half, shared / "structures" / "3J6B_chain9.pdb")
    # every other CA is a node; the others are 3.8 A from their neighbours, beyond the 2 A cutoff
    nearest = np.linalg.norm(ca[:, None] - ca[None, ::2], axis=-1).min(axis=1)
    assert by_array.coverage == pytest.approx((nearest <= 2.0).mean()) and by_array.precision == 1.0
    with pytest.raises(InputError):
        nm.evaluate_graph(half, np.zeros((5, 2)))
