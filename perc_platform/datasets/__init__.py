"""Build xarray objects (particles, volumes) from io and storage."""

from perc_platform.datasets.particles import open_particles as open_particles
from perc_platform.datasets.volumes import open_volume as open_volume

__all__ = ["open_particles", "open_volume"]
