"""SLURM clusters through dask-jobqueue, from a profile (``deploy/slurm/perc-slurm.yaml``).

A profile is dask-jobqueue's own configuration (a ``jobqueue: slurm:`` section): cores, memory, walltime,
partition, the prologue that activates the environment. :func:`slurm_cluster` reads it, adds ``export
PERC_...`` lines so every worker job starts with this process's platform settings (the profile's own
exports come later and win, e.g. a cache folder on the cluster's shared file system), and returns a
``SLURMCluster``. dask-jobqueue is optional: ``pip install "perc-platform[slurm]"``.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

import dask.config
import yaml

from perc_platform.cluster._plugin import config_environment
from perc_platform.errors import ConfigError

__all__ = ["load_profile", "slurm_cluster"]


def load_profile(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``jobqueue.slurm`` section of a profile file."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such SLURM profile; see deploy/slurm/perc-slurm.yaml for one") from None
    section = (document.get("jobqueue") or {}).get("slurm") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: a SLURM profile needs a 'jobqueue: slurm:' section (dask-jobqueue's format)")
    return section


def slurm_cluster(profile: str | os.PathLike[str] | None = None, *, share_config: bool = True,
                  **kwargs: Any) -> Any:
    """A dask-jobqueue ``SLURMCluster`` from ``profile`` (keywords override it); scale it to start workers.

    With ``share_config`` the job script exports this process's ``PERC_*`` settings before the profile's
    prologue.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ConfigError('SLURM clusters need dask-jobqueue: pip install "perc-platform[slurm]"') from None
    section = load_profile(profile) if profile is not None else {}
    # Profile keys become keywords (dask-jobqueue reads them when each job is made, not only now);
    # what neither the profile nor the keywords give falls back to dask's jobqueue.slurm config.
    options = {("job_name" if key == "name" else key.replace("-", "_")): value
               for key, value in section.items() if value is not None}
    scheduler_options = {**(options.pop("scheduler_options", None) or {}),
                         **(kwargs.pop("scheduler_options", None) or {})}
    options.update(kwargs)
    if share_config:
        prologue = options.get("job_script_prologue") or dask.config.get("jobqueue.slurm.job-script-prologue") or []
        exports = [f"export {key}={shlex.quote(value)}" for key, value in config_environment().items()]
        options["job_script_prologue"] = exports + list(prologue)
    return SLURMCluster(scheduler_options=scheduler_options or None, **options)
