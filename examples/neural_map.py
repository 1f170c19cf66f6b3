"""Neural map: fit a small SIREN neural map to a density map, query density and gradient, resample, graph.

Run: python examples/neural_map.py [MAP]   (default: a simulated map of a synthetic helix bundle)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import perc_platform as pp
from perc_platform import simulate
from perc_platform.neural_maps import density_graph, fit_neural_map
from perc_platform.testing.structures import helix_bundle


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="perc-neural-"))
    if len(sys.argv) > 1:
        density = pp.open_volume(sys.argv[1]).load()
    else:
        structure = pp.open_structure(str(helix_bundle(folder / "bundle.pdb")))
        density = simulate.density_map(structure, voxel_size=1.5, resolution=6.0).compute()
    print("map:", dict(density.sizes), "voxel", density.attrs.get("voxel_size"))
    # defaults: a cubic spline of the voxels + a small SIREN residual per region (see the README's numbers)
    neural = fit_neural_map(density, device="cpu", progress=True)
    print("voxel MAE on [0, 1]:", neural.attrs["voxel_mae"], "regions above target:", neural.regions_above_target)
    centre = np.array([[float(density[d].mean()) for d in ("x", "y", "z")]])
    print("density at the centre:", neural.density(centre)[0], "gradient (per A):", neural.gradient(centre)[0])
    fine = neural.resample(voxel_size=1.0)
    print("resampled to 1 A:", dict(fine.sizes))
    graph = density_graph(neural, resolution=6.0)  # edges and component filter scale with the resolution
    print(f"density graph: {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges")
    print("saved to", neural.save(folder / "neural_map"))


if __name__ == "__main__":
    main()
