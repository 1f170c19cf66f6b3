"""The demo's pictures are real plots of the data they are given, not placeholders."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import networkx as nx
import numpy as np
import xarray as xr

from perc_platform.demo._pictures import graph_picture, map_slices


def _blob_volume(offset: float) -> xr.DataArray:
    grid = np.indices((20, 24, 28)).astype(float)
    values = np.exp(-((grid[0] - 10) ** 2 + (grid[1] - 12 - offset) ** 2 + (grid[2] - 9) ** 2) / 8.0)
    coords = {d: np.arange(n) * 1.5 for d, n in zip("zyx", values.shape, strict=True)}
    return xr.DataArray(values, dims=("z", "y", "x"), coords=coords)


def test_map_slices_draws_the_maps(tmp_path: Path) -> None:
    path = map_slices(_blob_volume(0.0), _blob_volume(0.0), tmp_path / "same.png")
    image = mpimg.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert float(image[..., :3].std()) > 0.05  # not a blank canvas
    top, bottom = image[: image.shape[0] // 2, ..., :3], image[image.shape[0] // 2:, ..., :3]
    # the real map (top row) and an identical neural map (bottom row) draw the same panels
    assert np.abs(top.mean() - bottom.mean()) < 0.02
    moved = mpimg.imread(map_slices(_blob_volume(0.0), _blob_volume(5.0), tmp_path / "moved.png"))
    assert np.abs(moved[..., :3] - image[..., :3]).max() > 0.3  # a different neural map shows


def test_graph_picture_draws_nodes_and_atoms(tmp_path: Path) -> None:
    graph = nx.Graph()
    for i in range(6):
        graph.add_node(i, position=(float(i), float(i % 2), 0.0))
    graph.add_edges_from((i, i + 1) for i in range(5))
    ca = np.array([[i + 0.3, 0.5, 0.0] for i in range(6)])
    image = mpimg.imread(graph_picture(graph, ca, tmp_path / "graph.png"))
    blue = (image[..., 2] > 0.6) & (image[..., 0] < 0.4)
    orange = (image[..., 0] > 0.8) & (image[..., 2] < 0.3)
    assert blue.sum() > 50 and orange.sum() > 50  # nodes/edges and C-alpha atoms both drawn
