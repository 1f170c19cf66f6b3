"""Dask cluster: the embedded LocalCluster by default, or a lab cluster by address.

``get_client()`` starts (or connects to) the cluster on first use and shares the platform's settings with
its workers (:class:`PercConfigPlugin`). Shared datasets: :func:`publish_dataset` / :func:`attach_dataset`.
Prefetch for trainers: :class:`ClusterChunkReader` (``ParticleLoader(..., reader=...)``) and
:func:`prefetch_chunks`. Stand-alone clusters: :func:`start_cluster` (``perc cluster start``),
:func:`cluster_info` (``perc cluster info``), :func:`slurm_cluster` (dask-jobqueue). Nothing starts at import.
"""

from perc_platform.cluster._client import close_client as close_client
from perc_platform.cluster._client import dashboard_url as dashboard_url
from perc_platform.cluster._client import get_client as get_client
from perc_platform.cluster._jobqueue import slurm_cluster as slurm_cluster
from perc_platform.cluster._launch import cluster_info as cluster_info
from perc_platform.cluster._launch import run_cluster as run_cluster
from perc_platform.cluster._launch import start_cluster as start_cluster
from perc_platform.cluster._plugin import PercConfigPlugin as PercConfigPlugin
from perc_platform.cluster._plugin import config_environment as config_environment
from perc_platform.cluster._plugin import register_config_plugin as register_config_plugin
from perc_platform.cluster._prefetch import FETCH_PREFIX as FETCH_PREFIX
from perc_platform.cluster._prefetch import ClusterChunkReader as ClusterChunkReader
from perc_platform.cluster._prefetch import prefetch_chunks as prefetch_chunks
from perc_platform.cluster._publish import attach_dataset as attach_dataset
from perc_platform.cluster._publish import list_datasets as list_datasets
from perc_platform.cluster._publish import publish_dataset as publish_dataset
from perc_platform.cluster._publish import unpublish_dataset as unpublish_dataset

__all__ = [
    "FETCH_PREFIX",
    "ClusterChunkReader",
    "PercConfigPlugin",
    "attach_dataset",
    "close_client",
    "cluster_info",
    "config_environment",
    "dashboard_url",
    "get_client",
    "list_datasets",
    "prefetch_chunks",
    "publish_dataset",
    "register_config_plugin",
    "run_cluster",
    "slurm_cluster",
    "start_cluster",
    "unpublish_dataset",
]
