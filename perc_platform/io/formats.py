"""The format table: file suffix (and magic bytes) -> opener. Adding a format is one module and one row here.

An opener reads only headers and returns an :class:`~perc_platform.io.layout.ImageFile` (frame shape, dtype,
byte ranges per frame and the decode step). Everything that picks files by format (the xarray engine, EMPIAR
imagesets, ``open_particles``, ``open_movies``) asks this table, so no other module keeps a list of suffixes.
Formats that are recognised but not read are listed in :data:`REFUSED` with the reason, so a refusal can say
which format it met and why. A row may name format options (``options``, e.g. EER's super-resolution): they are
passed to its opener as keywords, and any other format refuses them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from perc_platform.errors import FormatError, ParameterError
from perc_platform.io.compressed_mrc import open_compressed_mrc
from perc_platform.io.compressed_tiff import open_compressed_tiff
from perc_platform.io.eer_file import open_eer_file
from perc_platform.io.layout import ImageFile
from perc_platform.io.mrc_batch import open_local_mrc_files
from perc_platform.io.mrc_file import COMPRESSED_SUFFIXES, open_mrc_file
from perc_platform.io.tiff_file import open_tiff_file
from perc_platform.storage.policy import trusts_caller
from perc_platform.storage.ranges import is_remote, read_bytes

__all__ = ["FORMATS", "REFUSED", "Format", "format_for", "open_image_file", "open_image_files", "readable_suffixes",
           "refusal_for"]

Opener = Callable[..., ImageFile]  # (url, storage_options, **format options) -> ImageFile


@dataclasses.dataclass(frozen=True)
class Format:
    """One row of the table.

    ``kinds`` says what a suffix holds when the header cannot (``stack`` or ``volume``); suffixes not in it
    leave the choice to the header. ``options`` names the keyword options the opener takes.
    """

    name: str
    suffixes: tuple[str, ...]
    open: Opener
    magic: tuple[tuple[int, bytes], ...] = ()  # (offset, bytes) any of which identifies the format
    kinds: tuple[tuple[str, str], ...] = ()
    description: str = ""
    options: tuple[str, ...] = ()

    def kind_of(self, url: str) -> str | None:
        lower = _name(url)
        return next((kind for suffix, kind in self.kinds if lower.endswith(suffix)), None)


FORMATS: tuple[Format, ...] = (
    Format("mrc", (".mrcs", ".mrc", ".st", ".ali", ".map", ".ccp4", ".rec", ".map.gz", ".map.bz2", ".ccp4.gz"),
           open_mrc_file, magic=((208, b"MAP "),),
           kinds=((".mrcs", "stack"), (".st", "stack"), (".ali", "stack"), (".map", "volume"), (".ccp4", "volume"),
                  (".rec", "volume"), (".map.gz", "volume"), (".map.bz2", "volume"), (".ccp4.gz", "volume")),
           description="MRC2014 / CCP4 stacks and maps (compressed maps decompressed once into the cache)"),
    Format("tiff", (".tif", ".tiff"), open_tiff_file, magic=((0, b"II*\x00"), (0, b"MM\x00*"), (0, b"II+\x00")),
           kinds=((".tif", "stack"), (".tiff", "stack")),
           description="TIFF movies and micrographs (uncompressed, LZW, deflate, zstd; 1-32 bit grayscale)"),
    Format("mrc-compressed", (".mrc.bz2", ".mrcs.bz2", ".mrc.gz", ".mrcs.gz"), open_compressed_mrc,
           kinds=((".mrc.bz2", "stack"), (".mrcs.bz2", "stack"), (".mrc.gz", "stack"), (".mrcs.gz", "stack")),
           description="bzip2/gzip MRC stacks and movies, read lazily through a cached seek index"),
    Format("tiff-compressed", (".tif.bz2", ".tiff.bz2", ".tif.gz", ".tiff.gz"), open_compressed_tiff,
           kinds=((".tif.bz2", "stack"), (".tiff.bz2", "stack"), (".tif.gz", "stack"), (".tiff.gz", "stack")),
           description="bzip2/gzip TIFF movies, parsed and read through a cached seek index"),
    Format("eer", (".eer",), open_eer_file, kinds=((".eer", "stack"),),
           options=("super_resolution", "frames_per_fraction", "remainder"),
           description="EER (Falcon 4) electron events rendered at 1x/2x/4x and summed into fractions"),
)

#: Recognised formats that are not read, and why.
REFUSED: dict[str, str] = {
    ".dm4": "Gatan DM4 is not read; convert it to MRC or TIFF (e.g. `dm2mrc` from IMOD)",
    ".dm3": "Gatan DM3 is not read; convert it to MRC or TIFF (e.g. `dm2mrc` from IMOD)",
    ".jpg": "JPEG pictures are not image data for processing",
    ".png": "PNG pictures are not image data for processing",
}


def _name(url: str) -> str:
    return os.path.basename(url.split("?", 1)[0]).lower()


def readable_suffixes() -> tuple[str, ...]:
    """Every suffix some format in the table reads."""
    return tuple(s for f in FORMATS for s in f.suffixes)


def refusal_for(url: str) -> str | None:
    """Why a file of this name is not read (None when some format reads it or nothing is known of it)."""
    lower = _name(url)
    if format_for(url) is not None:
        return None
    return next((why for suffix, why in sorted(REFUSED.items(), key=lambda kv: -len(kv[0]))
                 if lower.endswith(suffix)), None)


def format_for(url: str, head: bytes | None = None) -> Format | None:
    """The format that reads ``url``: by suffix (longest match), else by magic bytes in ``head``."""
    lower = _name(url)
    matches = [(len(s), f) for f in FORMATS for s in f.suffixes if lower.endswith(s)]
    if matches:
        return max(matches, key=lambda m: m[0])[1]
    if head is not None:
        for f in FORMATS:
            if any(head[at:at + len(magic)] == magic for at, magic in f.magic):
                return f
    return None


@trusts_caller("url")
def open_image_file(url: str, storage_options: dict[str, Any] | None = None, **options: Any) -> ImageFile:
    """Open one image file through the table (its headers only); ``options`` go to formats that name them."""
    url = os.fspath(url)
    fmt = format_for(url)
    if fmt is None:
        why = refusal_for(url)
        if why is not None:
            raise FormatError(f"{url}: {why}")
        fmt = format_for(url, read_bytes(url, 0, 1024, storage_options))
    if fmt is None:
        raise FormatError(f"{url}: not a format perc-platform reads (by suffix or content); readable: "
                          f"{', '.join(readable_suffixes())}")
    unknown = sorted(set(options) - set(fmt.options))
    if unknown:
        takes = f"it takes {', '.join(fmt.options)}" if fmt.options else "it takes no format options"
        owners = sorted({f.name.upper() for f in FORMATS for name in unknown if name in f.options})
        hint = f"; {', '.join(unknown)} apply to {', '.join(owners)} files" if owners else ""
        raise ParameterError(f"{url}: {', '.join(unknown)} given, but the file is {fmt.name.upper()} and {takes}{hint}")
    return fmt.open(url, storage_options, **options)


# Suffixes of MRC files read as they are (no other row has a longer suffix ending in one of them).
_PLAIN_MRC = tuple(s for s in FORMATS[0].suffixes if not s.endswith(COMPRESSED_SUFFIXES))


def _plain_local_mrc(url: str) -> bool:
    return _name(url).endswith(_PLAIN_MRC) and not is_remote(url)


@trusts_caller("urls")
def open_image_files(urls: Sequence[str], storage_options: dict[str, Any] | None = None,
                     **options: Any) -> list[ImageFile]:
    """Open many files' headers, in order: concurrently for remote ones; local uncompressed MRC files in one
    column-wise pass (:mod:`perc_platform.io.mrc_batch`), so a folder of thousands opens in milliseconds.
    ``options`` are format options as for :func:`open_image_file` (then every file is opened by its row)."""
    if len(urls) > 1 and any(is_remote(u) for u in urls):
        with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
            return list(pool.map(lambda u: open_image_file(u, storage_options, **options), urls))
    urls = [os.fspath(u) for u in urls]
    batch = [i for i, u in enumerate(urls) if _plain_local_mrc(u)]
    if len(batch) < 2 or options:  # MRC takes no options: each file's row refuses them
        return [open_image_file(u, storage_options, **options) for u in urls]
    files: list[ImageFile | None] = [None] * len(urls)
    for i, f in zip(batch, open_local_mrc_files([urls[i] for i in batch], storage_options), strict=True):
        files[i] = f
    return [f if f is not None else open_image_file(u, storage_options) for f, u in zip(files, urls, strict=True)]
