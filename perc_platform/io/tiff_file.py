"""Open a TIFF movie or micrograph: tifffile parses the IFDs (headers only), we keep where each strip lies.

Each page is one frame. The result is a :class:`TiffImageFile`: the byte offset and length of every strip or
tile of every page and the decode step (:class:`~perc_platform.io.tiff_codec.TiffCodec`), so a frame is read
by the byte ranges of its own segments, locally or over HTTP, and decoded where it is read.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar

import numpy as np

from perc_platform.errors import DataNotFoundError, FormatError, TruncatedFileError
from perc_platform.io.layout import SegmentLayout
from perc_platform.io.tiff_codec import SUPPORTED_COMPRESSIONS, TiffCodec
from perc_platform.storage.ranged_file import open_ranged
from perc_platform.storage.ranges import file_size, is_remote, local_path

__all__ = ["TiffImageFile", "open_tiff_file"]


@dataclasses.dataclass(frozen=True, eq=False)
class TiffImageFile:
    """One TIFF file of equally shaped grayscale pages, as the format layer describes it."""

    url: str
    shape: tuple[int, int, int]  # (pages, rows, columns)
    dtype: np.dtype  # decoded, native byte order
    layout: SegmentLayout
    storage_options: tuple[tuple[str, Any], ...] = ()
    pixel_size: float = 0.0  # Angstrom, from the resolution tags when they are in centimetres; 0 = unknown
    format: ClassVar[str] = "tiff"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.storage_options)


def _codec(page: Any, url: str) -> TiffCodec:
    if page.samplesperpixel != 1:
        raise FormatError(f"{url}: TIFF pages with {page.samplesperpixel} samples per pixel (colour) are not "
                          "movie or micrograph frames; only grayscale TIFF is read")
    if int(page.compression) not in SUPPORTED_COMPRESSIONS:
        names = ", ".join(sorted(set(SUPPORTED_COMPRESSIONS.values())))
        raise FormatError(f"{url}: TIFF compression {page.compression!r} is not read lazily (only {names}); "
                          "convert it, e.g. `tifffile` or `tiffcp -c lzw`")
    if int(page.predictor) not in (1, 2, 3):
        raise FormatError(f"{url}: TIFF predictor {page.predictor!r} is not supported (only none, horizontal, "
                          "floating point)")
    if page.imagedepth != 1:
        raise FormatError(f"{url}: volumetric TIFF pages (image depth {page.imagedepth}) are not supported")
    tiled = bool(page.is_tiled)
    segment = (page.tilelength, page.tilewidth) if tiled else (page.rowsperstrip, page.imagewidth)
    dtype = np.dtype(page.dtype).newbyteorder(page.parent.byteorder)
    return TiffCodec(image_shape=(page.imagelength, page.imagewidth),
                     segment_shape=(min(segment[0], page.imagelength) if not tiled else segment[0], segment[1]),
                     tiled=tiled, dtype=dtype.str, bitspersample=int(page.bitspersample),
                     compression=int(page.compression), predictor=int(page.predictor),
                     fillorder=int(page.fillorder))


def _pixel_size(page: Any) -> float:
    """Angstrom per pixel when the file states resolution in centimetres (SerialEM does not; most leave it)."""
    try:
        unit = int(page.tags["ResolutionUnit"].value)
        num, den = page.tags["XResolution"].value
    except (KeyError, TypeError, ValueError):
        return 0.0
    if unit != 3 or not num or not den:
        return 0.0
    per_cm = num / den
    return 1e8 / per_cm if per_cm > 1e4 else 0.0  # below 1e4 px/cm (1 um pixels) it is a print setting


def describe_tiff(fh: Any, url: str) -> tuple[np.ndarray, np.ndarray, TiffCodec, float]:
    """Parse the IFDs of the TIFF in file object ``fh``: per page the strip/tile offsets and lengths, the decode
    step shared by every page, and the pixel size (0 when unstated)."""
    import tifffile

    try:
        with tifffile.TiffFile(fh, name=os.path.basename(url)) as tif:
            pages = list(tif.pages)
            if not pages:
                raise FormatError(f"{url}: the TIFF file has no pages")
            first = pages[0]
            codec = _codec(first, url)
            offsets = np.empty((len(pages), len(first.dataoffsets)), np.int64)
            lengths = np.empty_like(offsets)
            for i, page in enumerate(pages):
                if page.shape != first.shape or page.dtype != first.dtype or _codec(page, url) != codec:
                    raise FormatError(f"{url}: page {i} is {page.shape} {page.dtype} but page 0 is {first.shape} "
                                      f"{first.dtype} (or they are stored differently); a movie's frames must "
                                      "share shape, dtype and storage")
                offsets[i] = page.dataoffsets
                lengths[i] = page.databytecounts
            return offsets, lengths, codec, _pixel_size(first)
    except tifffile.TiffFileError as exc:
        raise FormatError(f"{url}: not a readable TIFF file ({exc})") from None


def open_tiff_file(url: str, storage_options: dict[str, Any] | None = None) -> TiffImageFile:
    """Read the IFDs of one TIFF (local path or URL) and describe where every frame's segments lie."""
    url = os.fspath(url)
    try:
        # Remote IFDs are read in small blocks: they sit between the frames, one per page.
        source = open_ranged(url, storage_options, block_size=2**12) if is_remote(url) else open(url, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise DataNotFoundError(f"{url}: no such file; check the path") from None
    with source as fh:
        offsets, lengths, codec, pixel_size = describe_tiff(fh, url)
    size = file_size(url, storage_options)
    end = int((offsets + lengths).max())
    if end > size:
        raise TruncatedFileError(f"{url}: its TIFF tags place strips up to byte {end} but the file has {size} "
                                 "bytes; the file is truncated")
    dtype = np.dtype(codec.dtype).newbyteorder("=")  # the page dtype (uint8 for packed 1-7 bit data)
    return TiffImageFile(url=url if is_remote(url) else os.path.abspath(local_path(url)),
                         shape=(offsets.shape[0], *codec.image_shape), dtype=dtype,
                         layout=SegmentLayout(offsets, lengths, codec),
                         storage_options=tuple(sorted((storage_options or {}).items())), pixel_size=pixel_size)
