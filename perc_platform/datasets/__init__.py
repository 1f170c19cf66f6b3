"""Build xarray objects (particles, volumes) from io and storage."""

from perc_platform.datasets.particles import open_particles as open_particles
from perc_platform.datasets.selection import select_particles as select_particles
from perc_platform.datasets.selection import stack_source as stack_source
from perc_platform.datasets.structures import open_structure as open_structure
from perc_platform.datasets.volumes import open_volume as open_volume

__all__ = ["open_particles", "open_structure", "open_volume", "select_particles", "stack_source"]
