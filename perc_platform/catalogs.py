"""Shipped catalogs, and opening catalogs shared by URL safely.

``open_catalog(url)`` (untrusted, the default) never lets intake read or render the catalog. The platform
reads it once (at most 1 MiB, over http(s) with redirects checked, or from a local file), parses it as
bounded YAML, checks it against a strict schema (``perc_platform._catalog_schema``) and builds the intake
catalog from the validated spec, nested catalogs included. An untrusted catalog may name only allowed
drivers (the platform's own and ``yaml_file_cat``, extendable with ``PERC_ALLOWED_DRIVERS``); its ``args``
may use ``{{ name }}`` of a declared parameter and ``{{ CATALOG_DIR }}``, nothing else of Jinja; parameter
defaults are literals; ``cls``, ``plugins``, environment and shell lookups are refused; URLs must point at
the configured archive endpoints (``PERC_*_URL``), ``PERC_EXTRA_HOSTS`` or the catalog's own host. Anything
else raises :class:`UnsafeCatalogError` naming the catalog, entry and field. ``trusted=True`` opens the
catalog exactly as ``intake.open_catalog`` would.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from perc_platform._catalog_load import is_url, load_yaml, local_dir, read_catalog_text
from perc_platform._catalog_schema import CATALOG_DRIVERS, CheckedCatalog, nested_location, refusal, validate_spec
from perc_platform.config import get_config
from perc_platform.errors import DataNotFoundError, UnsafeCatalogError
from perc_platform.storage import policy

__all__ = ["UnsafeCatalogError", "allowed_drivers", "allowed_hosts", "catalog_path", "check_catalog",
           "open_catalog"]

_MAX_NESTING = 6
_MAX_CATALOGS = 64


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
    """The platform's own drivers, intake's ``yaml_file_cat`` and ``PERC_ALLOWED_DRIVERS`` (comma-separated)."""
    ours = {ep.name for ep in entry_points(group="intake.drivers") if ep.value.startswith("intake_perc")}
    extra = set(get_config().allowed_drivers)
    return ours | set(CATALOG_DRIVERS) | extra


def allowed_hosts(location: str) -> set[str]:
    """Hosts an untrusted catalog at ``location`` may point at: what the network policy allows (endpoints,
    ``PERC_EXTRA_HOSTS``, granted hosts) and the catalog's own host."""
    hosts = set(policy.allowed_hosts())
    if is_url(location):
        parts = urlsplit(location)
        hosts.add(policy.normalise_host(parts.netloc, parts.scheme.lower()))
    return hosts


def _check_tree(location: str, hosts: set[str], root_dir: str, chain: tuple[str, ...],
                budget: list[int]) -> CheckedCatalog:
    if location in chain:
        raise refusal(chain[-1], None, None, f"nests {location}, which nests it again (a cycle)")
    if len(chain) > _MAX_NESTING:
        raise refusal(chain[0], None, None, f"catalogs nest more than {_MAX_NESTING} deep (at {location})")
    budget[0] += 1
    if budget[0] > _MAX_CATALOGS:
        raise refusal(chain[0], None, None, f"nests more than {_MAX_CATALOGS} catalogs in all")
    data = load_yaml(read_catalog_text(location, hosts), location)
    catalog_dir = location.rsplit("/", 1)[0] if is_url(location) else local_dir(location)
    spec = validate_spec(data, location, allowed_drivers(), hosts, catalog_dir)
    children = {}
    for name, source in spec.sources.items():
        if source.driver in CATALOG_DRIVERS:
            target = nested_location(source, name, location, catalog_dir, hosts, root_dir)
            children[name] = _check_tree(target, hosts, root_dir, (*chain, location), budget)
    return CheckedCatalog(location, catalog_dir, spec.model_dump(), children, frozenset(hosts))


def _checked(location: str) -> CheckedCatalog:
    if location.startswith("file://"):
        location = location[len("file://"):]
    root_dir = "" if is_url(location) else os.path.dirname(os.path.realpath(location))
    return _check_tree(location, allowed_hosts(location), root_dir, (), [0])


def check_catalog(location: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate a catalog (and the catalogs it nests) for untrusted use; return its validated spec.

    Raises :class:`UnsafeCatalogError` for anything an untrusted catalog may not hold.
    """
    return _checked(os.fspath(location)).spec


def open_catalog(url_or_path: str | os.PathLike[str], *, trusted: bool = False, **kwargs: Any) -> Any:
    """Open an intake catalog; untrusted (the default) ones are read and validated by the platform first.

    Parameters
    ----------
    url_or_path
        Local path, ``file://`` or http(s) URL of the catalog YAML.
    trusted
        True opens the catalog with ``intake.open_catalog`` (templates, environment and shell lookups as
        intake does them): only for catalogs you wrote or whose author you trust.
    kwargs
        Passed to the intake catalog (``ttl``, ``name``...).
    """
    import warnings

    location = os.fspath(url_or_path)
    if trusted:
        import intake

        with warnings.catch_warnings():  # intake 2.0 warns about shell commands on every string default
            warnings.filterwarnings("ignore", message="Shell command not executed", category=UserWarning)
            return intake.open_catalog(location, **kwargs)
    from perc_platform._catalog_intake import UntrustedCatalog

    checked = _checked(location)
    if is_url(location):  # the sources read the catalog's own host, through the network policy
        policy.grant_host(location)
    return UntrustedCatalog(checked, **kwargs)
