"""What an untrusted catalog may hold, and the only templating it gets.

A strict schema (pydantic): top-level ``sources``, ``metadata``, ``name``, ``description``, ``version: 1``;
sources with an allowed ``driver``, ``args``, typed ``parameters`` with literal defaults, ``metadata``,
``description`` and ``direct_access``. Strings in ``args`` may hold ``{{ name }}`` of a declared parameter or
``{{ CATALOG_DIR }}`` and nothing else of Jinja; no other string may hold template syntax at all. Rendering
is :func:`render`, a substitution of those names by ``str(value)`` (what Jinja prints), so no template can
reach a Python object. Nested catalogs (``yaml_file_cat``) take only a ``path`` rendered from
``CATALOG_DIR``: that rendered path is the one checked and the one opened.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue, TypeAdapter, ValidationError

from perc_platform._catalog_load import TRUST_HINT, is_url, remote_problem
from perc_platform.errors import UnsafeCatalogError

__all__ = ["CATALOG_DRIVERS", "CatalogSpec", "CheckedCatalog", "ParameterSpec", "SourceSpec", "check_values",
           "nested_location", "refusal", "render", "validate_spec"]

CATALOG_DRIVERS = frozenset({"yaml_file_cat", "intake.catalog.local.YAMLFileCatalog"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_JINJA = ("{{", "{%", "{#", "}}", "%}", "#}")
_INTAKE_FUNCTION = re.compile(r"^\s*(client_)?(env|shell)\s*\(")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):[/\\]")
#: Arguments that configure intake or the file system rather than the data (getshell would turn shell on).
_RESERVED_ARGS = frozenset({"getenv", "getshell", "storage_options", "entries", "user_parameters", "text", "fs",
                            "cache", "plugin", "persist_mode", "autoreload"})
_RESERVED_PARAMETERS = frozenset({"CATALOG_DIR", "metadata", "plugin", "cache"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ParameterSpec(_Strict):
    """A user parameter: a type intake knows and literal default, bounds and choices."""

    description: str
    type: Literal["bool", "datetime", "dict", "float", "int", "list", "mlist", "other", "str", "tuple", "unicode"]
    default: JsonValue = None
    min: JsonValue = None
    max: JsonValue = None
    allowed: list[JsonValue] | None = None


class SourceSpec(_Strict):
    """One catalog entry."""

    driver: str
    description: str = ""
    args: dict[str, JsonValue] = {}
    parameters: dict[str, ParameterSpec] = {}
    metadata: dict[str, JsonValue] = {}
    direct_access: Literal["forbid", "allow", "force"] = "forbid"


class CatalogSpec(_Strict):
    """A whole catalog file (intake's version 1 format)."""

    sources: dict[str, SourceSpec]
    metadata: dict[str, JsonValue] = {}
    name: str | None = None
    description: str | None = None
    version: Literal[1] | None = None


@dataclasses.dataclass(frozen=True)
class CheckedCatalog:
    """A validated catalog: where it was read, its ``CATALOG_DIR``, its re-serialised spec and the validated
    catalogs its entries nest (by entry name). Building intake objects from it reads nothing."""

    location: str
    catalog_dir: str
    spec: dict[str, Any]
    children: dict[str, CheckedCatalog]
    hosts: frozenset[str]


_SHARED_PARAMETERS = TypeAdapter(dict[str, ParameterSpec])


def refusal(location: str, entry: str | None, field: str | None, problem: str) -> UnsafeCatalogError:
    """The error for a refused part of a catalog, naming the catalog, the entry, the field and the opt-in."""
    where = f"catalog {location}" + (f", entry {entry!r}" if entry else "") + (f", field {field}" if field else "")
    return UnsafeCatalogError(f"{where}: {problem}. {TRUST_HINT}")


def render(value: Any, context: dict[str, Any]) -> tuple[Any, set[str]]:
    """``value`` with each ``{{ name }}`` replaced by ``str(context[name])`` ("" when absent), and the names used."""
    used: set[str] = set()

    def one(match: re.Match[str]) -> str:
        used.add(match[1])
        found = context.get(match[1])
        return "" if found is None else str(found)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return _PLACEHOLDER.sub(one, v)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(walk(x) for x in v)
        return v

    return walk(value), used


def _strings(value: Any, field: str) -> list[tuple[str, str]]:
    """Every string in ``value`` (dict keys included) with its dotted field name."""
    if isinstance(value, str):
        return [(field, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [(f"{field}.{k}", str(k)), *_strings(v, f"{field}.{k}")]]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{field}[{i}]")]
    return []


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _no_templates(value: Any, field: str, refuse: Any, names: frozenset[str] | None = None) -> None:
    """Refuse template syntax in ``value``; with ``names``, ``{{ name }}`` of those names is allowed."""
    for where, text in _strings(value, field):
        rest = text if names is None else _PLACEHOLDER.sub("", text)
        if any(token in rest for token in _JINJA) or "{{{" in text:
            hint = ("only '{{ name }}' of a declared parameter or '{{ CATALOG_DIR }}' may appear here"
                    if names is not None else "no template may appear here")
            raise refuse(where, f"holds the template {_short(text)}; {hint} (no expressions, filters, attribute "
                                "access, '~' or '{% %}')")
        unknown = set(_PLACEHOLDER.findall(text)) - (names or set()) if names is not None else set()
        if unknown:
            raise refuse(where, f"uses '{{{{ {sorted(unknown)[0]} }}}}', which is not a declared parameter of this "
                                "entry (nor CATALOG_DIR)")


def check_values(value: Any, field: str, hosts: set[str], remote: bool, refuse: Any) -> None:
    """Refuse URLs outside ``hosts``, chained fsspec URLs and, in a catalog read from a URL, local paths."""
    for where, text in _strings(value, field):
        if "::" in text:
            raise refuse(where, f"{_short(text)} chains file systems ('::'); untrusted catalogs may not")
        for match in _SCHEME.finditer(text):
            problem = remote_problem(text[match.start():].split()[0], hosts)
            if problem is not None:
                raise refuse(where, problem)
        if remote and text.lstrip()[:1] in ("/", "\\", "~"):
            raise refuse(where, f"{_short(text)} is a local path, which a catalog read from a URL may not name")


def _check_parameters(parameters: dict[str, ParameterSpec], field: str, refuse: Any) -> None:
    for name, par in parameters.items():
        if name in _RESERVED_PARAMETERS or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise refuse(f"{field}.{name}", f"{name!r} cannot be a parameter name (it must be an identifier, "
                                            f"not one of {', '.join(sorted(_RESERVED_PARAMETERS))})")
        _no_templates(par.model_dump(), f"{field}.{name}", refuse)
        for key in ("default", "min", "max"):
            value = getattr(par, key)
            if isinstance(value, str) and _INTAKE_FUNCTION.match(value):
                raise refuse(f"{field}.{name}.{key}", f"{_short(value)} would read the environment or run a shell "
                                                      "command; defaults must be literal values")


def validate_spec(data: Any, location: str, drivers: set[str], hosts: set[str], catalog_dir: str) -> CatalogSpec:
    """Check one catalog's parsed YAML against the schema and the template and host rules."""
    if not isinstance(data, dict) or "sources" not in data:
        raise refusal(location, None, None, "is not an intake catalog (a mapping with a 'sources' section)")
    try:
        spec = CatalogSpec.model_validate(data)
        shared = _SHARED_PARAMETERS.validate_python(spec.metadata.get("parameters", {}), strict=True)
    except ValidationError as exc:
        raise _schema_refusal(location, exc) from None
    _check_parameters(shared, "metadata.parameters", lambda f, p: refusal(location, None, f, p))
    _no_templates({k: v for k, v in spec.metadata.items() if k != "parameters"}, "metadata",
                  lambda f, p: refusal(location, None, f, p))
    _no_templates([spec.name or "", spec.description or ""], "name/description",
                  lambda f, p: refusal(location, None, f, p))
    remote = is_url(location)
    for entry, source in spec.sources.items():
        def refuse(field: str, problem: str, entry: str = entry) -> UnsafeCatalogError:
            return refusal(location, entry, field, problem)

        if source.driver not in drivers:
            raise refuse("driver", f"driver {source.driver!r} is not allowed for untrusted catalogs (allowed: "
                                   f"{', '.join(sorted(drivers))}); add it to PERC_ALLOWED_DRIVERS if you trust it")
        for key in source.args:
            if key in _RESERVED_ARGS:
                raise refuse(f"args.{key}", f"{key!r} configures intake or the file system; untrusted catalogs "
                                            "may not set it")
        _check_parameters(source.parameters, "parameters", refuse)
        _no_templates([source.description, entry], "description", refuse)
        _no_templates(source.metadata, "metadata", refuse)
        declared = frozenset({*source.parameters, *shared, "CATALOG_DIR"})
        if source.driver in CATALOG_DRIVERS:
            if set(source.args) != {"path"} or not isinstance(source.args["path"], str) or source.parameters:
                raise refuse("args", "a nested catalog takes exactly one argument, a 'path' string (no parameters)")
            declared = frozenset({"CATALOG_DIR"})
        _no_templates(source.args, "args", refuse, declared)
        defaults = {n: p.default for n, p in {**shared, **source.parameters}.items()}
        rendered, _ = render(source.args, {**defaults, "CATALOG_DIR": catalog_dir})
        check_values(rendered, "args", hosts, remote, refuse)
    return spec


def _schema_refusal(location: str, exc: ValidationError) -> UnsafeCatalogError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    in_source = len(loc) > 1 and loc[0] == "sources"
    entry, field = (loc[1], ".".join(loc[2:]) or None) if in_source else (None, ".".join(loc))
    key = loc[-1] if loc else ""
    if err["type"] == "extra_forbidden" and key == "cls":
        problem = "a 'cls' key makes intake import and call an arbitrary Python object"
    elif err["type"] == "extra_forbidden" and key == "plugins" and len(loc) == 1:
        problem = "a 'plugins' section makes intake import arbitrary modules"
    elif err["type"] == "extra_forbidden":
        problem = f"key {key!r} is not part of what an untrusted catalog may hold"
    else:
        shown = err.get("input")
        problem = f"{err['msg']} (got {_short(str(shown)) if isinstance(shown, str) else type(shown).__name__})"
    more = len(exc.errors()) - 1
    return refusal(location, entry, field, problem + (f" (and {more} more problem(s))" if more else ""))


def nested_location(spec: SourceSpec, entry: str, location: str, catalog_dir: str, hosts: set[str],
                    root_dir: str) -> str:
    """Where the nested catalog of ``entry`` lives: its ``path`` rendered, checked, and returned as opened."""
    path, _ = render(spec.args["path"], {"CATALOG_DIR": catalog_dir})
    if is_url(location) or is_url(path):
        problem = (remote_problem(path, hosts) if is_url(path) else
                   f"{_short(path)} is not a URL; a catalog read from a URL nests catalogs by URL "
                   "('{{ CATALOG_DIR }}/name.yaml')")
        if problem is not None:
            raise refusal(location, entry, "args.path", problem)
        return path
    path = os.path.normpath(path[len("file://"):] if path.startswith("file://") else path)
    if os.path.commonpath([os.path.realpath(path), root_dir]) != root_dir:
        raise refusal(location, entry, "args.path", f"{_short(path)} is outside the folder of the catalog opened "
                                                    f"({root_dir}); untrusted catalogs nest only files below it")
    return path
