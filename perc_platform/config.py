"""Settings with environment overrides (``PERC_*``).

``get_config()`` reads the environment at every call, so a test or a worker plugin that changes ``PERC_*``
variables is seen at once; the settings are rebuilt only when one of them changed (building costs ~0.5 ms).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from perc_platform.errors import ConfigError

__all__ = ["ENDPOINTS", "PercConfig", "get_config"]

#: Archive endpoints: setting name -> default base URL (../shared/data/api/SHAPES.md).
ENDPOINTS: dict[str, str] = {
    "rcsb_files_url": "https://files.rcsb.org",
    "pdbe_api_url": "https://www.ebi.ac.uk/pdbe/api",
    "afdb_api_url": "https://alphafold.ebi.ac.uk/api",
    "proteins_api_url": "https://www.ebi.ac.uk/proteins/api",
    "empiar_api_url": "https://www.ebi.ac.uk/empiar/api",
    "empiar_files_url": "https://ftp.ebi.ac.uk/empiar/world_availability",
    "emdb_files_url": "https://ftp.ebi.ac.uk/pub/databases/emdb",
    "emdb_api_url": "https://www.ebi.ac.uk/emdb/api",
}


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "perc-platform"


class PercConfig(BaseSettings):
    """perc-platform settings; every field can be set with ``PERC_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PERC_", extra="ignore", frozen=True)

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    rcsb_files_url: str = ENDPOINTS["rcsb_files_url"]
    pdbe_api_url: str = ENDPOINTS["pdbe_api_url"]
    afdb_api_url: str = ENDPOINTS["afdb_api_url"]
    proteins_api_url: str = ENDPOINTS["proteins_api_url"]
    empiar_api_url: str = ENDPOINTS["empiar_api_url"]
    empiar_files_url: str = ENDPOINTS["empiar_files_url"]
    emdb_files_url: str = ENDPOINTS["emdb_files_url"]
    emdb_api_url: str = ENDPOINTS["emdb_api_url"]
    extra_hosts: list[str] = Field(default_factory=list)
    scheduler_address: str | None = None
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    retries: int = Field(4, ge=0, le=20)
    backoff: float = Field(0.5, ge=0)
    chunk_bytes: int = Field(64 * 2**20, gt=0)
    max_array_bytes: int = Field(64 * 2**30, gt=0)
    max_decompressed_bytes: int = Field(16 * 2**30, gt=0)
    offline: bool = False

    @field_validator(*ENDPOINTS, mode="after")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) base URL")
        return value.rstrip("/")

    def endpoint_hosts(self) -> set[str]:
        """Host names (with port) of the configured endpoints: the only hosts clients follow."""
        hosts = {urlsplit(getattr(self, name)).netloc for name in ENDPOINTS}
        return hosts | set(self.extra_hosts)


def _environment_key() -> tuple[tuple[str, str], ...]:
    # pydantic-settings matches names case-insensitively (perc_offline counts too), so the key must as well.
    return tuple(sorted((k, v) for k, v in os.environ.items()
                        if k.upper().startswith("PERC_") or k in ("XDG_CACHE_HOME", "HOME")))


_cache: dict[tuple[tuple[str, str], ...], PercConfig] = {}


def get_config(**overrides: object) -> PercConfig:
    """Current settings from the environment, with keyword overrides; raises ConfigError when invalid.

    Settings are rebuilt whenever a ``PERC_*`` variable changes and reused otherwise (building them costs
    milliseconds, and clients ask for them on every request).
    """
    key = _environment_key()
    if not overrides and key in _cache:
        return _cache[key]
    config = _build(overrides)
    if not overrides:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = config
    return config


def _build(overrides: dict[str, object]) -> PercConfig:
    try:
        return PercConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"PERC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid perc-platform configuration: {problems}. Fix the environment "
                          "variable(s) named or the keyword passed.") from None
