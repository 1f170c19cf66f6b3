"""A worker plugin that gives every Dask worker the platform's configuration (``PERC_*`` settings).

Workers read files, call archives and fill the cache themselves, so they must see the same endpoints, cache
folder, timeouts and limits as the client that sends them work. :class:`PercConfigPlugin` carries the
client's settings as ``PERC_*`` environment variables and sets them in each worker process (workers that
join later, or are restarted by their nanny, get them too). Hosts granted to the network policy in this
process (``perc_platform.storage.policy.grant_host``) travel in ``PERC_EXTRA_HOSTS``. Settings are per
process: on a cluster shared by several people the last registration wins.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from distributed import Client
from distributed.diagnostics.plugin import WorkerPlugin

from perc_platform.config import PercConfig, get_config
from perc_platform.storage.policy import hosts_to_share

__all__ = ["PLUGIN_NAME", "PercConfigPlugin", "config_environment", "register_config_plugin"]

log = logging.getLogger(__name__)

#: Name the plugin is registered under (registering again replaces it).
PLUGIN_NAME = "perc-config"

#: Settings that stay with the client: the workers are already on the cluster.
_CLIENT_ONLY = frozenset({"scheduler_address"})


def _env_value(value: Any) -> str:
    if isinstance(value, (list, tuple, set, dict)):
        return json.dumps(sorted(value) if isinstance(value, set) else value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def config_environment(config: PercConfig | None = None, **overrides: Any) -> dict[str, str]:
    """``PERC_*`` environment variables that reproduce ``config`` (default: the current settings).

    ``overrides`` replace fields, e.g. ``cache_dir="/shared/perc-cache"`` when workers see the cache under
    another path than the client.
    """
    config = config or get_config()
    values = config.model_dump()
    values["extra_hosts"] = hosts_to_share(config)  # hosts granted in this process (open_catalog) too
    values.update(overrides)
    return {f"PERC_{name.upper()}": _env_value(value) for name, value in values.items()
            if value is not None and name not in _CLIENT_ONLY}


class PercConfigPlugin(WorkerPlugin):
    """Sets ``PERC_*`` variables in every worker process and creates its cache folder.

    Parameters
    ----------
    environment
        Variables to set (see :func:`config_environment`); they replace any ``PERC_*`` already set there.
    """

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = dict(environment)
        self._saved: dict[str, str | None] = {}

    def setup(self, worker: Any) -> None:
        self._saved = {key: os.environ.get(key) for key in self.environment}
        os.environ.update(self.environment)
        cache = self.environment.get("PERC_CACHE_DIR")
        if cache:
            try:
                Path(cache).mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # the worker may not see the client's file system
                log.warning("perc-platform: worker %s cannot create the cache folder %s (%s); set "
                            "cache_dir= when registering the plugin to a path the workers share",
                            getattr(worker, "name", "?"), cache, exc)
        get_config()  # fail loudly here, in the worker's log, if the settings do not validate

    def teardown(self, worker: Any) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def register_config_plugin(client: Client | None = None, config: PercConfig | None = None,
                           **overrides: Any) -> PercConfigPlugin:
    """Register :class:`PercConfigPlugin` with the settings of this process on every worker of ``client``.

    ``overrides`` replace settings for the workers only (see :func:`config_environment`).
    """
    if client is None:
        from perc_platform.cluster._client import get_client

        client = get_client()
    plugin = PercConfigPlugin(config_environment(config, **overrides))
    client.register_plugin(plugin, name=PLUGIN_NAME)
    return plugin
