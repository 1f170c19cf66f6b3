"""``empiar``: an EMPIAR entry as a catalog with one source per imageset, read lazily by byte range.

``cat.empiar(entry="EMPIAR-10934")`` lists the imagesets (keys ``particles``, ``micrographs``, ``movies``,
``tilt_series``, ``tomograms``, ``subtomograms``, suffixed by folder when a kind repeats);
``sub.particles(pattern="*.mrcs", star="data/.../run.star")`` is a source whose ``to_dask()`` is the lazy
``(particle, y, x)`` Dataset over the matching stacks.
"""

from __future__ import annotations

import time
from typing import Any, cast

import xarray as xr
from intake.catalog import Catalog
from intake.catalog.local import UserParameter
from pydantic import NonNegativeFloat, PositiveInt

from intake_perc._lazy import LazyArraySource
from intake_perc._params import EerParams, SourceParams, validate_params
from perc_platform._catalog_intake import SubstitutingEntry
from perc_platform._version import __version__
from perc_platform.archives.empiar import DEFAULT_TTL


class EmpiarImagesetParams(EerParams):
    entry: str
    imageset: str
    pattern: str | None = None
    regex: str | None = None
    star: str | None = None
    chunk_size: PositiveInt | None = None
    ttl: NonNegativeFloat = DEFAULT_TTL


class EmpiarImagesetSource(LazyArraySource):
    """One imageset: ``(particle, y, x)``, ``(micrograph, y, x)``, ``(movie, frame, y, x)``, ``(tilt, y, x)`` tilt
    series or ``(z, y, x)`` (sub)tomograms; any format of the table (MRC, compressed MRC, TIFF, EER)."""

    name = "empiar_imageset"
    Params = EmpiarImagesetParams

    def __init__(self, entry: str, imageset: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, entry=entry, imageset=imageset, **kwargs)

    def _open(self) -> xr.DataArray:
        from perc_platform.datasets.empiar import open_empiar_imageset

        p = cast(EmpiarImagesetParams, self.params)
        eer = {"super_resolution": p.super_resolution, "frames_per_fraction": p.frames_per_fraction,
               "remainder": p.remainder}
        return open_empiar_imageset(p.entry, p.imageset, pattern=p.pattern, regex=p.regex, star=p.star,
                                    chunk_size=p.chunk_size, ttl=p.ttl,
                                    format_options={k: v for k, v in eer.items() if v is not None} or None)


class EmpiarParams(SourceParams):
    entry: str
    ttl: NonNegativeFloat = DEFAULT_TTL


_SELECTORS = [
    UserParameter("pattern", "glob on file paths below the imageset folder (on the name when it has no '/')",
                  "str", default=""),
    UserParameter("regex", "regular expression searched in file paths below the imageset folder", "str", default=""),
    UserParameter("star", "RELION STAR file (particles): URL or path relative to the entry folder", "str",
                  default=""),
]


_CATALOG_KEYWORDS = {"name", "description", "getenv", "getshell", "persist_mode", "storage_options",
                     "user_parameters", "entries"}


class EmpiarCatalog(Catalog):
    """The imagesets of one EMPIAR entry (metadata fetched from the EMPIAR API, cached for ``ttl`` seconds)."""

    name = "empiar"
    version = __version__
    description: str | None

    def __init__(self, entry: str = "", ttl: float = DEFAULT_TTL, metadata: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        # intake's own Catalog keywords pass through; anything else is a bad parameter (ParameterError)
        own = {k: kwargs.pop(k) for k in _CATALOG_KEYWORDS & set(kwargs)}
        self.params = validate_params(EmpiarParams, self.name, entry=str(entry), ttl=ttl, **kwargs)
        super().__init__(metadata=metadata, ttl=self.params.ttl, **own)

    def force_reload(self) -> None:
        # intake's Catalog loads in its constructor; the entry's metadata is fetched on first use instead
        # (listing, lookup), so building or unpickling the catalog touches no network.
        self.updated = time.time()
        self._loaded = False

    def _get_entries(self) -> Any:
        if not self._loaded:
            self._load()
            self._loaded = True
        return self._entries

    def _load(self) -> None:
        from perc_platform.archives.empiar import fetch_empiar_entry

        p = self.params
        if not p.entry:
            return  # built with defaults when a parent catalog is browsed: no entry, no imagesets
        meta = fetch_empiar_entry(p.entry, ttl=p.ttl)
        self.description = self.description or f"{meta.empiar_id}: {meta.title}"
        self.metadata.update({"empiar_id": meta.empiar_id, "title": meta.title, "emdb_ids": meta.emdb_ids})
        self._entries = {}
        for key, imageset in meta.keyed_imagesets().items():
            count = f"{imageset.num_images_or_tilt_series} images" if imageset.num_images_or_tilt_series else ""
            facts = ", ".join(x for x in (imageset.category, imageset.data_format, count,
                                          f"{imageset.pixel_width} A/px" if imageset.pixel_width else "") if x)
            # Substituted, not rendered by intake's Jinja: the metadata comes from the archive's answer.
            self._entries[key] = SubstitutingEntry(
                key, f"{imageset.name} ({facts}) in {imageset.directory or '/'}", EmpiarImagesetSource,
                args={"entry": meta.empiar_id, "imageset": key, "ttl": p.ttl, "pattern": "{{ pattern }}",
                      "regex": "{{ regex }}", "star": "{{ star }}"},
                parameters=list(_SELECTORS), metadata=imageset.model_dump(), catalog=self)
