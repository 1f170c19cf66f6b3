"""perc-platform: catalog-driven cryo-EM and structural-biology data as lazy xarray/dask datasets.

Importing the package starts nothing (no cluster, no network, no logging set-up).
"""

from perc_platform._version import __version__ as __version__
from perc_platform.catalogs import open_catalog as open_catalog
from perc_platform.datasets import open_movies as open_movies
from perc_platform.datasets import open_ome_zarr as open_ome_zarr
from perc_platform.datasets import open_particles as open_particles
from perc_platform.datasets import open_structure as open_structure
from perc_platform.datasets import open_subtomograms as open_subtomograms
from perc_platform.datasets import open_tilt_series as open_tilt_series
from perc_platform.datasets import open_tomogram as open_tomogram
from perc_platform.datasets import open_volume as open_volume

__all__ = ["__version__", "open_catalog", "open_movies", "open_ome_zarr", "open_particles", "open_structure",
           "open_subtomograms", "open_tilt_series", "open_tomogram", "open_volume"]
