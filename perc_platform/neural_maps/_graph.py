"""Density graphs (Neural-EM-Map): seeds climb the neural map's gradient, clusters become nodes.

Seeds on a grid of ``min(0.5 A, voxel size)`` (coarser on large maps, so the grid stays about 2 million
points) where the normalised density is >= ``max(0.1, mean + 3 sd)``; 0.05 A ascent steps until the
density stops rising; DBSCAN with eps 0.2 A and min_samples 1 (the reference, REFERENCE.md). Edges and
the component filter scale with the map's resolution, which must be known: from the map's metadata
(``open_emdb_map`` and the catalogs put the EMDB entry's resolution in ``attrs["resolution"]``, and
``fit_neural_map`` keeps it) or given as ``resolution=``; there is no silent default. The scale factors
(:data:`EDGE_PER_RESOLUTION`, :data:`MIN_COMPONENT_A`) come from the sweep in ``benchmarks/bench_neural.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import gemmi
import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from perc_platform.errors import ParameterError
from perc_platform.neural_maps._neural_map import NeuralMap

__all__ = ["EDGE_PER_RESOLUTION", "MIN_COMPONENT_A", "climb", "dbscan", "density_graph", "graph_to_structure",
           "node_positions", "write_graph_mmcif"]

#: Edges join nodes up to this many times the resolution apart (floored at 4 A, beyond the 3.8 A CA-CA step).
EDGE_PER_RESOLUTION = 1.6
#: Components spanning fewer than this many Angstrom of chain (``MIN_COMPONENT_A / edge length`` nodes) go.
MIN_COMPONENT_A = 20.0
SEED_GRID_POINTS = 2e6


def dbscan(points: np.ndarray, eps: float, min_samples: int = 1,
           weights: np.ndarray | None = None) -> np.ndarray:
    """DBSCAN labels (``-1`` for noise) with a KD-tree and connected components.

    ``weights`` count each point as that many samples (for points that stand for several merged ones).
    """
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    tree = cKDTree(points)
    pairs = tree.query_pairs(eps, output_type="ndarray")
    mass = w.copy()
    np.add.at(mass, pairs[:, 0], w[pairs[:, 1]])
    np.add.at(mass, pairs[:, 1], w[pairs[:, 0]])
    core = mass >= min_samples
    both = core[pairs[:, 0]] & core[pairs[:, 1]]
    cp = pairs[both]
    adjacency = coo_matrix((np.ones(len(cp)), (cp[:, 0], cp[:, 1])), shape=(n, n))
    _, comp = connected_components(adjacency, directed=False)
    labels = np.full(n, -1, dtype=np.int64)
    core_ids = np.flatnonzero(core)
    _, labels[core_ids] = np.unique(comp[core_ids], return_inverse=True)
    # Border points join the cluster of a core neighbour.
    for a, b in pairs[core[pairs[:, 0]] != core[pairs[:, 1]]]:
        inner, outer = (a, b) if core[a] else (b, a)
        if labels[outer] < 0:
            labels[outer] = labels[inner]
    return labels


def climb(neural_map: NeuralMap, points: np.ndarray, step: float = 0.05, max_steps: int = 400,
          batch_size: int = 32768, coarse: tuple[int, ...] = (8, 4, 2)
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move each point uphill along the gradient until the density stops rising; return its end point.

    The climb ends in ``step`` A steps, as in the reference; it starts with steps ``coarse`` times longer
    (each run until the density stops rising), which changes where a point ends by less than ``step`` but
    saves most of the gradient evaluations. ``max_steps`` caps the steps of each stage. After each coarse
    stage, points closer than ``step`` (same ``step`` lattice cell) go on as one, so the fine stage climbs
    once per peak neighbourhood rather than once per seed.

    Returns the end points, their normalised densities and how many seeds each stands for.
    """
    pos = np.array(points, dtype=np.float64).reshape(-1, 3)
    value = neural_map.density(pos, normalized=True, batch_size=batch_size).astype(np.float64)
    counts = np.ones(len(pos), dtype=np.int64)
    for stage, factor in enumerate((*coarse, 1)):
        if stage > 0:
            _, first, inverse = np.unique(np.round(pos / step), axis=0, return_index=True, return_inverse=True)
            counts = np.bincount(inverse.reshape(-1), weights=counts, minlength=len(first)).astype(np.int64)
            pos, value = pos[first], value[first]
        length = step * factor
        active = np.arange(len(pos))
        for _ in range(max_steps):
            if active.size == 0:
                break
            grad = neural_map.gradient(pos[active], normalized=True, batch_size=batch_size)
            norm = np.linalg.norm(grad, axis=1)
            moving = norm > 0
            trial = pos[active] + length * grad / np.where(moving, norm, 1.0)[:, None]
            new = neural_map.density(trial, normalized=True, batch_size=batch_size).astype(np.float64)
            rising = moving & (new > value[active])
            pos[active[rising]] = trial[rising]
            value[active[rising]] = new[rising]
            active = active[rising]
    return pos, value, counts


def _seeds(neural_map: NeuralMap, spacing: float, threshold: float, batch_size: int) -> np.ndarray:
    """Grid points (``spacing`` A apart) with normalised density >= threshold.

    The fine grid is only built inside voxels whose neural density reaches 0.8 x threshold, so a 100^3
    map does not need ~10^8 evaluations.
    """
    coarse = neural_map.sample(normalized=True)
    voxel = np.asarray(neural_map.voxel_size)
    origin = np.asarray(neural_map.origin)
    zz, yy, xx = np.nonzero(coarse.values >= 0.8 * threshold)
    centres = origin + np.stack([xx, yy, zz], axis=-1) * voxel
    per_axis = [np.arange(np.floor(-v / 2 / spacing), np.ceil(v / 2 / spacing) + 1) * spacing for v in voxel]
    offsets = np.stack(np.meshgrid(*per_axis, indexing="ij"), axis=-1).reshape(-1, 3)
    offsets = offsets[np.all(np.abs(offsets) <= voxel / 2 + 1e-9, axis=1)]
    lattice = np.round((centres[:, None, :] + offsets[None]) / spacing).reshape(-1, 3)
    lattice = np.unique(lattice, axis=0) * spacing
    if lattice.size == 0:
        return lattice.reshape(0, 3)
    values = neural_map.density(lattice, normalized=True, batch_size=batch_size)
    return lattice[values >= threshold]


def density_graph(neural_map: NeuralMap, *, threshold: float | None = None, seed_spacing: float | None = None,
                  step: float = 0.05, max_steps: int = 400, eps: float = 0.2, min_samples: int = 1,
                  edge_length: float | None = None, resolution: float | None = None,
                  min_component_size: int | None = None, batch_size: int = 32768) -> nx.Graph:
    """The density graph of a neural map: nodes on density peaks (Angstrom ``position``), edges by distance.

    ``resolution`` (A): default ``neural_map.attrs["resolution"]``; one of them is required unless both
    ``edge_length`` and ``min_component_size`` are given. Defaults: ``edge_length = max(4, 1.6 x
    resolution)``; ``min_component_size = ceil(20 A / edge_length)`` nodes.

    Node attributes: ``position`` (x, y, z), ``density`` (map units), ``density_normalized``, ``seeds``
    (how many seeds reached the node). Edge attribute: ``distance``. Graph attributes: the parameters used.
    Save it with its edges by ``write_graph`` (JSON), read it back with ``read_graph``.
    """
    if step <= 0 or eps <= 0:
        raise ParameterError(f"step={step} and eps={eps} must be positive (Angstrom)")
    mean = float(neural_map.attrs.get("normalised_mean", 0.0))
    sd = float(neural_map.attrs.get("normalised_sd", 0.0))
    threshold = max(0.1, mean + 3 * sd) if threshold is None else float(threshold)
    spacing = seed_spacing or _seed_spacing(neural_map)
    if resolution is None:
        resolution = neural_map.attrs.get("resolution")
    if resolution is None and (edge_length is None or min_component_size is None):
        raise ParameterError(f"the resolution of {neural_map.attrs.get('source_id', 'this map')} is unknown: pass "
                             "density_graph(..., resolution=A) (maps from open_emdb_map or the catalogs carry "
                             "the EMDB entry's), or give both edge_length and min_component_size")
    if resolution is not None and not float(resolution) > 0:
        raise ParameterError(f"resolution={resolution!r} must be positive (Angstrom)")
    if edge_length is not None and not float(edge_length) > 0:
        raise ParameterError(f"edge_length={edge_length!r} must be positive (Angstrom)")
    # 4 A is a floor under the scaled edge (the 3.8 A C-alpha step), not a default resolution
    edge_length = edge_length or max(4.0, EDGE_PER_RESOLUTION * float(resolution))  # type: ignore[arg-type]
    if min_component_size is None:
        min_component_size = int(np.ceil(MIN_COMPONENT_A / edge_length))

    seeds = _seeds(neural_map, spacing, threshold, batch_size)
    peaks, _, weight = climb(neural_map, seeds, step, max_steps, batch_size)
    # Seeds that reached the same peak sit within about one step of each other: merge them on a lattice of
    # eps / 4 first, so DBSCAN sees thousands of points rather than millions of near-duplicate pairs.
    cells, inverse = np.unique(np.round(peaks / (eps / 4)), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, weights=weight, minlength=len(cells))
    sums = np.zeros((len(cells), 3))
    np.add.at(sums, inverse, peaks * weight[:, None])
    centres = sums / np.maximum(counts, 1)[:, None]
    labels = dbscan(centres, eps, min_samples, counts)
    keep = labels >= 0
    n_nodes = int(labels.max()) + 1 if keep.any() else 0
    node_sum = np.zeros((n_nodes, 3))
    node_count = np.zeros(n_nodes)
    np.add.at(node_sum, labels[keep], sums[keep])
    np.add.at(node_count, labels[keep], counts[keep])
    nodes = node_sum / np.maximum(node_count, 1)[:, None]

    graph = nx.Graph(threshold=threshold, seed_spacing=spacing, step=step, eps=eps, min_samples=min_samples,
                     edge_length=edge_length, resolution=None if resolution is None else float(resolution),
                     min_component_size=min_component_size, n_seeds=len(seeds),
                     source_id=neural_map.attrs.get("source_id"))
    if n_nodes:
        dens = neural_map.density(nodes, normalized=True)
        low, high = neural_map.value_range
        for i, (p, d, c) in enumerate(zip(nodes, dens, node_count, strict=True)):
            graph.add_node(i, position=tuple(float(v) for v in p), density=float(d * (high - low) + low),
                           density_normalized=float(d), seeds=int(c))
        pairs = cKDTree(nodes).query_pairs(edge_length, output_type="ndarray")
        dist = np.linalg.norm(nodes[pairs[:, 0]] - nodes[pairs[:, 1]], axis=1)
        graph.add_edges_from((int(a), int(b), {"distance": float(d)}) for (a, b), d in zip(pairs, dist, strict=True))
        small = [c for c in nx.connected_components(graph) if len(c) < min_component_size]
        graph.remove_nodes_from([n for c in small for n in c])
    return graph


def _seed_spacing(neural_map: NeuralMap) -> float:
    """``min(0.5 A, voxel)``, or coarser where the map is so large that the grid would pass ~2e6 points."""
    extent = float(np.prod([(n - 1) * v for n, v in zip(neural_map.shape[::-1], neural_map.voxel_size,
                                                          strict=True)]))
    return max(min(0.5, *neural_map.voxel_size), (extent / SEED_GRID_POINTS) ** (1 / 3))


def node_positions(graph: nx.Graph) -> np.ndarray:
    """``(N, 3)`` Angstrom positions of a density graph's nodes."""
    return np.array([graph.nodes[n]["position"] for n in graph.nodes], dtype=np.float64).reshape(-1, 3)


def graph_to_structure(graph: nx.Graph, name: str = "density_graph") -> gemmi.Structure:
    """The nodes as pseudo-atoms (CA of GLY residues, B-factor = normalised density x 100) for viewing."""
    structure = gemmi.Structure()
    structure.name = name
    model = gemmi.Model(1)
    chain = gemmi.Chain("A")
    for i, n in enumerate(graph.nodes):
        residue = gemmi.Residue()
        residue.name = "GLY"
        residue.seqid = gemmi.SeqId(i + 1, " ")
        residue.het_flag = "H"
        atom = gemmi.Atom()
        atom.name = "CA"
        atom.element = gemmi.Element("C")
        atom.pos = gemmi.Position(*graph.nodes[n]["position"])
        atom.occ = 1.0
        atom.b_iso = float(graph.nodes[n].get("density_normalized", 0.0)) * 100.0
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    return structure


def write_graph_mmcif(graph: nx.Graph, path: str | os.PathLike[str], name: str = "density_graph") -> Path:
    """Write the graph's nodes as mmCIF pseudo-atoms (gemmi)."""
    target = Path(path)
    document = graph_to_structure(graph, name).make_mmcif_document()
    document.write_file(str(target))
    return target

