"""Settings with environment overrides (``PERC_*``), and settings passed as values (:func:`override`).

``get_config()`` reads the environment at every call, so a test or a worker plugin that changes ``PERC_*``
variables is seen at once; the settings are rebuilt only when one of them changed (building costs ~0.5 ms).
Inside ``with override(cache_dir=..., offline=True):`` those values win over the environment, in every
thread of the process (and on the cluster's workers, which get the settings in force when they connect).
List settings (``PERC_EXTRA_HOSTS``, ``PERC_ALLOWED_DRIVERS``) are comma-separated; a JSON list works too.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from perc_platform.errors import ConfigError

__all__ = ["ENDPOINTS", "PercConfig", "get_config", "override"]

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
    extra_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_drivers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    scheduler_address: str | None = None
    # Bounded so that a socket accepts them (inf or 1e300 overflow its C timeval).
    connect_timeout: float = Field(10.0, gt=0, le=86400)
    read_timeout: float = Field(60.0, gt=0, le=86400)
    retries: int = Field(4, ge=0, le=20)
    backoff: float = Field(0.5, ge=0, le=3600)
    chunk_bytes: int = Field(64 * 2**20, gt=0)
    max_array_bytes: int = Field(64 * 2**30, gt=0)
    max_decompressed_bytes: int = Field(16 * 2**30, gt=0)
    offline: bool = False

    @field_validator("extra_hosts", "allowed_drivers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        # "a,b" (as the README documents and shells write) or a JSON list; never a pydantic SettingsError.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError(f"{text!r} is neither comma-separated names nor a JSON list") from None
            else:
                return [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, (list, tuple, set)):
            return [str(v).strip() for v in value if str(v).strip()]
        return value

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _cache_dir(cls, value: Any) -> Any:
        if isinstance(value, (str, os.PathLike)):
            text = os.fspath(value).strip()
            if not text:
                raise ValueError("is empty, which would put the cache in the working folder; give a folder or "
                                 "unset it for the default ~/.cache/perc-platform")
            return Path(text).expanduser()
        return value

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


_cache: dict[tuple[Any, ...], PercConfig] = {}
_overrides: list[dict[str, Any]] = []
_overrides_lock = threading.Lock()


def _active(extra: dict[str, Any]) -> dict[str, Any]:
    with _overrides_lock:
        merged = {k: v for layer in _overrides for k, v in layer.items()}
    merged.update(extra)
    return merged


def get_config(**overrides: object) -> PercConfig:
    """Current settings: the environment, then any :func:`override` in force, then keyword overrides; raises
    ConfigError when invalid.

    Settings are rebuilt whenever a ``PERC_*`` variable or an override changes and reused otherwise (building
    them costs milliseconds, and clients ask for them on every request).
    """
    values = _active(dict(overrides))
    try:
        key: tuple[Any, ...] = (_environment_key(), tuple(sorted((k, repr(v)) for k, v in values.items())))
    except TypeError:  # an override whose repr cannot be sorted or taken: build without caching
        return _build(values)
    if key in _cache:
        return _cache[key]
    config = _build(values)
    if len(_cache) > 64:
        _cache.clear()
    _cache[key] = config
    return config


@contextlib.contextmanager
def override(**settings: Any) -> Iterator[PercConfig]:
    """Use these settings (field names of :class:`PercConfig`, e.g. ``cache_dir``, ``offline``) inside the block.

    They win over ``PERC_*`` variables for the whole process (all threads) until the block ends, and are
    checked at once: an unknown name or a bad value raises ConfigError before the block runs. Yields the
    settings in force.
    """
    unknown = sorted(set(settings) - set(PercConfig.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; the settings are: "
                          f"{', '.join(PercConfig.model_fields)}")
    layer = dict(settings)
    config = get_config(**_active(layer))
    with _overrides_lock:
        _overrides.append(layer)
    try:
        yield config
    finally:
        with _overrides_lock:
            # by identity: blocks in other threads may end in another order
            index = next(i for i, item in enumerate(_overrides) if item is layer)
            del _overrides[index]


def _build(overrides: dict[str, Any]) -> PercConfig:
    try:
        return PercConfig(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"PERC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid perc-platform configuration: {problems}. Fix the environment "
                          "variable(s) named or the keyword passed.") from None
