"""Dask cluster: the embedded LocalCluster by default, or a lab cluster by address."""

from perc_platform.cluster._client import close_client as close_client
from perc_platform.cluster._client import dashboard_url as dashboard_url
from perc_platform.cluster._client import get_client as get_client

__all__ = ["close_client", "dashboard_url", "get_client"]
