"""The demo's pictures: real vs neural map slices and the density graph over the model (matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["graph_picture", "map_slices"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def map_slices(real: xr.DataArray, neural: xr.DataArray, path: Path) -> Path:
    """The same central slices (z, y, x) of the real map and the neural map, side by side."""
    figure = _figure(10, 6.5)
    axes = figure.subplots(2, 3)
    for row, (name, volume) in enumerate((("real map", real), ("neural map", neural))):
        values = np.asarray(volume.values)
        for col, dim in enumerate(("z", "y", "x")):
            index = volume.sizes[dim] // 2
            plane = values.take(index, axis=col)
            ax = axes[row, col]
            ax.imshow(plane, origin="lower", cmap="gray")
            ax.set_title(f"{name}, {dim} = {float(volume[dim][index]):.1f} A", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.suptitle("Central slices: the map (top) and its SIREN neural map sampled on the same grid (bottom)")
    figure.savefig(path)
    return path


def graph_picture(graph: Any, ca: np.ndarray, path: Path) -> Path:
    """Density-graph nodes and edges over the model's C-alpha atoms, in two projections."""
    figure = _figure(10, 5)
    axes = figure.subplots(1, 2)
    positions = np.array([graph.nodes[n]["position"] for n in graph.nodes]) if graph.number_of_nodes() else \
        np.zeros((0, 3))
    for ax, (i, j, label) in zip(axes, ((0, 1, "x-y"), (0, 2, "x-z")), strict=True):
        if len(ca):
            ax.scatter(ca[:, i], ca[:, j], s=8, c="tab:orange", label="C-alpha (model)", alpha=0.6)
        for a, b in graph.edges:
            pa, pb = graph.nodes[a]["position"], graph.nodes[b]["position"]
            ax.plot([pa[i], pb[i]], [pa[j], pb[j]], c="tab:blue", lw=0.6, alpha=0.7)
        if len(positions):
            ax.scatter(positions[:, i], positions[:, j], s=10, c="tab:blue", label="graph nodes")
        ax.set_title(f"density graph, {label} projection (A)", fontsize=9)
        ax.set_aspect("equal")
        ax.legend(fontsize=8, loc="upper right")
    figure.savefig(path)
    return path
