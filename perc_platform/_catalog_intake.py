"""A validated catalog handed to intake: the same entries intake would build, rendered without Jinja.

:class:`UntrustedCatalog` is an intake ``Catalog`` built from a
:class:`~perc_platform._catalog_schema.CheckedCatalog` (nothing is read again); its entries are intake
``LocalCatalogEntry`` objects (so ``describe()``, parameters and drivers are what ``intake.open_catalog``
shows) whose arguments are rendered by :func:`~perc_platform._catalog_schema.render` instead of intake's
Jinja environment, with intake's merge rules, and whose rendered strings pass the host check again (user
values included). Entries that nest a catalog return the already validated child, built the same way.

perc_platform does not import intake; this module is imported only by ``perc_platform.open_catalog``.
"""

from __future__ import annotations

import os
from typing import Any

from intake.catalog import Catalog
from intake.catalog.local import LocalCatalogEntry, UserParameter

from perc_platform._catalog_schema import CheckedCatalog, check_values, refusal, render
from perc_platform.errors import ParameterError
from perc_platform.storage import policy

__all__ = ["SubstitutingEntry", "UntrustedCatalog", "UntrustedEntry"]


def _parameters(specs: dict[str, dict[str, Any]]) -> list[UserParameter]:
    return [UserParameter(name, **spec) for name, spec in specs.items()]


def _name_from_path(location: str) -> str:
    """The catalog name intake derives from its file name (``catalog.yaml``: the folder's name)."""
    name = os.path.splitext(os.path.basename(location))[0]
    if name == "catalog":
        name = os.path.basename(os.path.dirname(location))
    return name.replace(".", "_")


class SubstitutingEntry(LocalCatalogEntry):  # type: ignore[misc]
    """A ``LocalCatalogEntry`` whose arguments are filled by substitution, never by Jinja.

    For entries built from data read elsewhere (an archive's API answer in the metadata, say), which intake
    would otherwise render as templates. ``getenv``/``getshell`` are off.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(getenv=False, getshell=False)
        super().__init__(*args, **kwargs)

    def _check(self, open_args: dict[str, Any]) -> None:
        """Refuse the rendered arguments (nothing here; see UntrustedEntry)."""

    def _create_open_args(self, user_parameters: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        # intake's merge_pars, without Jinja: parameters (user value or default, validated) fill the
        # templates; user values that no template used are passed on, except parameters; arguments named
        # like a parameter are coerced to its type.
        user_parameters = dict(user_parameters)
        user_parameters.pop("plugin", None)
        context = {}
        for par in self._user_parameters:
            value = user_parameters.get(par.name, par.default)
            if value is not None:
                context[par.name] = par.validate(value)
        rendered, used = render(self._open_args, {**context, "CATALOG_DIR": self._catalog_dir})
        names = {par.name for par in self._user_parameters}
        open_args: dict[str, Any] = {"metadata": {**self._metadata, "catalog_dir": self._catalog_dir}, **rendered}
        open_args.update({k: v for k, v in user_parameters.items() if k not in used and k not in names})
        for par in self._user_parameters:
            if par.name in open_args:
                open_args[par.name] = par.validate(open_args[par.name])
        self._check(open_args)
        if not self._plugin:
            raise ValueError(f"no intake driver {self._driver!r} is installed for entry {self.name!r}")
        return self._plugin[0], open_args


class UntrustedEntry(SubstitutingEntry):
    """An entry of an untrusted catalog: substituted, and its rendered strings host-checked."""

    def __init__(self, name: str, *, checked: CheckedCatalog, **kwargs: Any) -> None:
        self._checked = checked
        super().__init__(name, catalog_dir=checked.catalog_dir, **kwargs)

    def _check(self, open_args: dict[str, Any]) -> None:
        hosts = set(self._checked.hosts) | policy.allowed_hosts()
        check_values({k: v for k, v in open_args.items() if k != "metadata"}, "args", hosts, False,
                     lambda field, problem: refusal(self._checked.location, self.name, field, problem))

    def get(self, **user_parameters: Any) -> Any:
        child = self._checked.children.get(self.name)
        if child is None:
            return super().get(**user_parameters)
        if user_parameters:
            raise ParameterError(f"entry {self.name!r} of {self._checked.location} is a nested catalog; it takes no "
                                 f"parameters (got {', '.join(sorted(user_parameters))})")
        if getattr(self, "_default_source", None) is None:
            metadata = {**self._metadata, "catalog_dir": self._catalog_dir}
            source = UntrustedCatalog(child, metadata=metadata)
            source.name, source.description = self.name, self._description
            source.catalog_object = source.cat = self._catalog
            self._default_source = source
        return self._default_source


class UntrustedCatalog(Catalog):  # type: ignore[misc]
    """An intake catalog built from a validated spec (see the module docstring); reads nothing itself."""

    def __init__(self, checked: CheckedCatalog, **kwargs: Any) -> None:
        self._checked = checked
        spec = checked.spec
        if kwargs.pop("getenv", False) or kwargs.pop("getshell", False):
            raise ParameterError(f"catalog {checked.location}: getenv/getshell cannot be turned on for an "
                                 "untrusted catalog; open it with trusted=True if you trust its author")
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), **spec["metadata"]}
        kwargs.setdefault("name", spec.get("name") or _name_from_path(checked.location))
        kwargs.setdefault("description", spec.get("description"))
        super().__init__(getenv=False, getshell=False, **kwargs)
        shared = spec["metadata"].get("parameters", {})
        self.user_parameters.update({name: UserParameter(name, **p) for name, p in shared.items()})

    def _load(self) -> None:
        if self._entries:
            return
        for name, source in self._checked.spec["sources"].items():
            self._entries[name] = UntrustedEntry(
                name, checked=self._checked, description=source["description"], driver=source["driver"],
                direct_access=source["direct_access"], args=source["args"],
                parameters=_parameters(source["parameters"]), metadata=source["metadata"], catalog=self)
