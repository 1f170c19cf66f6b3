"""Neural maps: SIREN representations of density maps, fitted per region, and density graphs.

``fit_neural_map(density)`` tiles a ``density`` DataArray into regions of at most 64^3 voxels and fits,
over a cubic B-spline of the voxels, one SIREN residual per region (step cap, early stopping, all regions
batched in one model; on a GPU, the Dask cluster or in process); it returns a :class:`NeuralMap`, queried
for density and gradient anywhere in Angstrom and saved compactly (``NeuralMap.save``).
``density_graph(neural_map)`` turns its density peaks into a networkx graph; ``evaluate_graph`` scores it
against a model's C-alpha atoms.
"""

from perc_platform.neural_maps._evaluate import GraphScore as GraphScore
from perc_platform.neural_maps._evaluate import evaluate_graph as evaluate_graph
from perc_platform.neural_maps._evaluate import read_ca_positions as read_ca_positions
from perc_platform.neural_maps._fit import RESIDUAL_SIREN as RESIDUAL_SIREN
from perc_platform.neural_maps._fit import fit_neural_map as fit_neural_map
from perc_platform.neural_maps._fit import normalise_map as normalise_map
from perc_platform.neural_maps._fit import print_progress as print_progress
from perc_platform.neural_maps._graph import density_graph as density_graph
from perc_platform.neural_maps._graph import graph_to_structure as graph_to_structure
from perc_platform.neural_maps._graph import write_graph_mmcif as write_graph_mmcif
from perc_platform.neural_maps._graph_io import read_graph as read_graph
from perc_platform.neural_maps._graph_io import write_graph as write_graph
from perc_platform.neural_maps._neural_map import NeuralMap as NeuralMap
from perc_platform.neural_maps._regions import Tiling as Tiling
from perc_platform.neural_maps._regions import tile_map as tile_map
from perc_platform.neural_maps._siren import SirenConfig as SirenConfig
from perc_platform.neural_maps._train import FitSettings as FitSettings
from perc_platform.neural_maps._train import fit_regions as fit_regions

__all__ = [
    "RESIDUAL_SIREN",
    "FitSettings",
    "GraphScore",
    "NeuralMap",
    "SirenConfig",
    "Tiling",
    "density_graph",
    "evaluate_graph",
    "fit_neural_map",
    "fit_regions",
    "graph_to_structure",
    "normalise_map",
    "print_progress",
    "read_ca_positions",
    "read_graph",
    "tile_map",
    "write_graph",
    "write_graph_mmcif",
]
