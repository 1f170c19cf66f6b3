"""Shipped catalogs, and opening catalogs shared by URL safely.

``open_catalog(url, trusted=False)`` reads the catalog (and every catalog it nests) itself before intake
does, and refuses: templates that would read the environment or run a shell (``env(...)``,
``shell(...)``, ``client_env``, ``client_shell``), drivers outside the allow-list (the platform's own and
intake's catalog drivers, extendable with ``PERC_ALLOWED_DRIVERS``), and URLs to hosts other than the
configured archive endpoints (``PERC_*_URL``, ``PERC_EXTRA_HOSTS``) and the catalog's own host. The
catalog is then opened with intake's ``getenv=False, getshell=False``. Trusted catalogs open exactly as
``intake.open_catalog`` would.
"""

from __future__ import annotations

import os
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from perc_platform.config import get_config
from perc_platform.errors import DataNotFoundError, InputError
from perc_platform.storage.ranges import resolve_relative

__all__ = ["UnsafeCatalogError", "allowed_drivers", "catalog_path", "check_catalog", "open_catalog"]

_MAX_CATALOG_BYTES = 4 * 2**20
_MAX_DEPTH = 6
_DANGEROUS = re.compile(r"\b(client_env|client_shell|env|shell)\s*\(")
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^/\s'\"{}]*)")
_CATALOG_DRIVERS = {"yaml_file_cat", "yaml_files_cat", "intake.catalog.local.YAMLFileCatalog"}


class UnsafeCatalogError(InputError):
    """A shared catalog asks for something an untrusted catalog may not do."""


def catalog_path(name: str = "perc.yaml") -> Path:
    """Path of a shipped catalog file, e.g. ``catalog_path("demo.yaml")``.

    The catalogs are package data (``perc_platform._catalogs``, built from the repository's ``catalogs/``
    folder by setup.py), found through ``importlib.resources`` in plain and editable installs alike.
    """
    from importlib.resources import files

    try:
        folder: Any = files("perc_platform._catalogs")
    except ModuleNotFoundError:
        # a source checkout used without installing it (PYTHONPATH=.): catalogs/ beside the package
        folder = Path(__file__).resolve().parents[1] / "catalogs"
    resource = folder / name
    if not resource.is_file():
        raise DataNotFoundError(f"shipped catalog {name!r} is not in this installation of perc-platform "
                                f"(perc_platform._catalogs: {folder}); reinstall it (`pip install perc-platform`)")
    if not isinstance(resource, Path):  # e.g. a zipped install: intake needs a real file
        raise DataNotFoundError(f"shipped catalog {name!r} is inside {folder}, not a file on disk; install "
                                "perc-platform unzipped so that intake can open its catalogs")
    return resource


def allowed_drivers() -> set[str]:
    """The platform's own drivers, intake's catalog drivers, and ``PERC_ALLOWED_DRIVERS``."""
    ours = {ep.name for ep in entry_points(group="intake.drivers") if ep.value.startswith("intake_perc")}
    extra = {d.strip() for d in os.environ.get("PERC_ALLOWED_DRIVERS", "").split(",") if d.strip()}
    return ours | _CATALOG_DRIVERS | extra


def _read_text(location: str) -> str:
    import fsspec

    try:
        with fsspec.open(location, "rb") as handle:
            raw = handle.read(_MAX_CATALOG_BYTES + 1)
    except FileNotFoundError:
        raise DataNotFoundError(f"catalog {location} does not exist; check the path or URL") from None
    if len(raw) > _MAX_CATALOG_BYTES:
        raise UnsafeCatalogError(f"catalog {location} is larger than {_MAX_CATALOG_BYTES >> 20} MiB; refusing it")
    return raw.decode("utf-8", errors="replace")


def _strings(node: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(node, str):
        return [(where, node)]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(v, f"{where}.{k}")]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in _strings(v, f"{where}[{i}]")]
    return []


def check_catalog(location: str, *, depth: int = 0, hosts: set[str] | None = None) -> dict[str, Any]:
    """Validate a catalog (and the catalogs it nests) for untrusted use; return its parsed YAML."""
    if depth > _MAX_DEPTH:
        raise UnsafeCatalogError(f"catalog {location}: catalogs nest more than {_MAX_DEPTH} deep; refusing")
    if hosts is None:
        hosts = get_config().endpoint_hosts()
        if "://" in location:
            hosts = hosts | {urlsplit(location).netloc}
    try:
        spec = yaml.safe_load(_read_text(location))
    except yaml.YAMLError as exc:
        raise UnsafeCatalogError(f"catalog {location} is not valid YAML: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("sources", {}), dict):
        raise UnsafeCatalogError(f"catalog {location} has no 'sources' mapping; it is not an intake catalog")
    for where, text in _strings(spec, "catalog"):
        if _DANGEROUS.search(text):
            raise UnsafeCatalogError(f"catalog {location}: {where} uses {_DANGEROUS.search(text).group(0)!r}..."  # type: ignore[union-attr]
                                     "; shared catalogs may not read environment variables or run shell "
                                     "commands. Open it with trusted=True only if you wrote it.")
        for match in _URL.finditer(text):
            scheme, host = match.group(1).lower(), match.group(2).lower()
            if scheme in ("file", "local") or (scheme in ("http", "https") and host in hosts):
                continue
            raise UnsafeCatalogError(f"catalog {location}: {where} points at {match.group(0)!r}, a host that is "
                                     f"not configured ({', '.join(sorted(hosts))}); add it with "
                                     "PERC_EXTRA_HOSTS if you trust it")
    allowed = allowed_drivers()
    for name, entry in (spec.get("sources") or {}).items():
        if not isinstance(entry, dict):
            raise UnsafeCatalogError(f"catalog {location}: entry {name!r} is not a mapping")
        driver = str(entry.get("driver", ""))
        if driver not in allowed:
            raise UnsafeCatalogError(f"catalog {location}: entry {name!r} uses driver {driver!r}, which is not "
                                     f"allowed for shared catalogs (allowed: {', '.join(sorted(allowed))}); "
                                     "add it to PERC_ALLOWED_DRIVERS if you trust it")
        if driver in _CATALOG_DRIVERS:
            target = str((entry.get("args") or {}).get("path", ""))
            base = location if "://" in location else str(Path(location).resolve())
            target = target.replace("{{ CATALOG_DIR }}", "").replace("{{CATALOG_DIR}}", "").lstrip("/") \
                if "CATALOG_DIR" in target else target
            check_catalog(resolve_relative(base, target), depth=depth + 1, hosts=hosts)
    return spec


def open_catalog(url_or_path: str | os.PathLike[str], *, trusted: bool = False, **kwargs: Any) -> Any:
    """Open an intake catalog; untrusted (the default) ones are checked first (see the module docstring)."""
    import warnings

    import intake

    location = os.fspath(url_or_path)
    if not trusted:
        check_catalog(location)
        kwargs.setdefault("getenv", False)
        kwargs.setdefault("getshell", False)
    with warnings.catch_warnings():  # intake 2.0 warns about shell commands on every string default
        warnings.filterwarnings("ignore", message="Shell command not executed", category=UserWarning)
        return intake.open_catalog(location, **kwargs)
