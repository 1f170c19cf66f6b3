"""Build xarray objects (particles, movies, volumes, tilt series, tomograms, subtomograms) from io and storage."""

from perc_platform.datasets.movies import apply_gain as apply_gain
from perc_platform.datasets.movies import open_movies as open_movies
from perc_platform.datasets.movies import sum_frames as sum_frames
from perc_platform.datasets.ome_zarr import open_ome_zarr as open_ome_zarr
from perc_platform.datasets.particles import open_particles as open_particles
from perc_platform.datasets.selection import select_particles as select_particles
from perc_platform.datasets.selection import stack_source as stack_source
from perc_platform.datasets.structures import open_structure as open_structure
from perc_platform.datasets.subtomograms import open_subtomograms as open_subtomograms
from perc_platform.datasets.tomography import open_tilt_series as open_tilt_series
from perc_platform.datasets.tomography import open_tomogram as open_tomogram
from perc_platform.datasets.volumes import open_volume as open_volume

__all__ = ["apply_gain", "open_movies", "open_ome_zarr", "open_particles", "open_structure", "open_subtomograms",
           "open_tilt_series", "open_tomogram", "open_volume", "select_particles", "stack_source", "sum_frames"]
