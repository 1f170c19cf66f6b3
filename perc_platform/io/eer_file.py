"""EER (Falcon 4 electron event) movies: each IFD of the TIFF container is one raw frame of electron events.

tifffile parses the IFDs (headers only); the events of a raw frame are its strips, a bitstream of run lengths
and sub-pixel positions (TIFF compression 65000/65001/65002, "rle bits" 8/7/tag 65007 and 2+2 sub-pixel bits
or tags 65008/65009, as tifffile documents them). imagecodecs' EER codec (``imagecodecs.eer_decode``) renders
them on the sensor grid (1x, 4k on a Falcon 4) or with the sub-pixel bits on a 2x (8k) or 4x (16k) grid.

Raw frames (248 per second on a Falcon 4) are far too many and too sparse to process one by one, so frames
are grouped into *fractions* of ``frames_per_fraction`` raw frames, summed (uint16 counts). One fraction is one
frame of the :class:`EerImageFile`: its segments are the strips of its raw frames, so a fraction is read by the
byte ranges of its own IFDs' strips only, locally or over HTTP, and rendered where it is read. A last group
shorter than ``frames_per_fraction`` is dropped (``remainder="drop"``, the default, as RELION's
``--eer_grouping`` does) or kept as a shorter last fraction (``remainder="keep"``; :attr:`frame_counts` says
how many raw frames each fraction holds, so its dose is known).

Dose and pixel size come from the acquisition metadata (tag 65001, parsed by tifffile): ``totalDose`` is
electrons per physical pixel over ``numberOfFrames`` raw frames, ``sensorPixelSize`` is in metres (the same
reading as the ``eerfile`` package); the pixel size of a rendering is the physical one divided by the factor.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from perc_platform.errors import DataNotFoundError, FormatError, ParameterError, TruncatedFileError
from perc_platform.io.layout import SegmentLayout
from perc_platform.storage.ranged_file import open_ranged
from perc_platform.storage.ranges import file_size, is_remote, local_path

__all__ = ["EER_COMPRESSIONS", "SUPER_RESOLUTIONS", "EerCodec", "EerImageFile", "open_eer_file"]

#: TIFF compression code -> (rle bits, horizontal and vertical sub-pixel bits); 65002 states them in tags.
EER_COMPRESSIONS = {65000: (8, 2, 2), 65001: (7, 2, 2), 65002: None}
#: Rendering factor -> imagecodecs' ``superres`` level (sub-pixel bits used per axis).
SUPER_RESOLUTIONS = {1: 0, 2: 1, 4: 2}
REMAINDERS = ("drop", "keep")


@functools.cache
def _decoder_accumulates() -> bool:
    """Whether ``eer_decode(..., out=)`` adds events to ``out`` (it does in imagecodecs 2026.3): then a fraction
    costs the events of its frames, not a frame-sized pass per raw frame. Checked once on a one-event stream."""
    import imagecodecs

    out = np.ones((1, 2), np.uint16)
    try:  # 7-bit run 0, sub-pixel codes 0: one event at pixel 0; then a run of 1 to the end
        imagecodecs.eer_decode(bytes([0x00, 0x08, 0x00, 0x00]), (1, 2), 7, 2, 2, superres=0, out=out)
    except Exception:  # any failure means: do not rely on it
        return False
    return out.tolist() == [[2, 1]]


@dataclasses.dataclass(frozen=True)
class EerCodec:
    """Renders and sums the strips of the raw frames of one fraction (the segments of one layout frame)."""

    name: str  # file name, for errors
    image_shape: tuple[int, int]  # rendered (rows, columns)
    strip_rows: int  # rendered rows per strip
    strips: int  # strips per raw frame
    rlebits: int
    horzbits: int
    vertbits: int
    level: int  # imagecodecs superres level: 0 (1x), 1 (2x), 2 (4x)

    def decode_frame(self, segments: Sequence[memoryview], out: np.ndarray) -> None:
        """Fill ``out`` (uint16, ``image_shape``) with the event counts of every raw frame in ``segments``."""
        import imagecodecs

        out[...] = 0
        ny, nx = self.image_shape
        accumulate = _decoder_accumulates()
        for k, data in enumerate(segments):
            if len(data) == 0:  # padding of a shorter last fraction (remainder="keep")
                continue
            r0 = (k % self.strips) * self.strip_rows
            rows = min(self.strip_rows, ny - r0)
            target = out[r0:r0 + rows]
            blob: Any = data  # imagecodecs reads any buffer (its stub says bytes)
            try:
                if accumulate:
                    imagecodecs.eer_decode(blob, (rows, nx), self.rlebits, self.horzbits, self.vertbits,
                                           superres=self.level, out=target)
                else:
                    target += imagecodecs.eer_decode(blob, (rows, nx), self.rlebits, self.horzbits, self.vertbits,
                                                     superres=self.level)
            except (imagecodecs.EerError, ValueError) as exc:
                raise FormatError(f"{self.name}: EER strip {k % self.strips} of raw frame {k // self.strips} of "
                                  f"this fraction cannot be decoded ({exc}); the file is damaged") from None


@dataclasses.dataclass(frozen=True, eq=False)
class EerImageFile:
    """One EER movie, its raw frames grouped into fractions, as the format layer describes it."""

    url: str
    shape: tuple[int, int, int]  # (fractions, rendered rows, rendered columns)
    layout: SegmentLayout
    super_resolution: int  # 1, 2 or 4
    frames_per_fraction: int
    raw_frames: int  # raw frames in the file
    frame_counts: tuple[int, ...]  # raw frames summed into each fraction
    dose_per_raw_frame: float  # electrons per square Angstrom; nan when the metadata do not say
    exposure_time: float  # seconds; nan when unknown
    storage_options: tuple[tuple[str, Any], ...] = ()
    pixel_size: float = 0.0  # Angstrom per rendered pixel; 0 = unknown
    format: ClassVar[str] = "eer"

    @property
    def dtype(self) -> np.dtype:
        """Counts per pixel summed over a fraction's raw frames."""
        return np.dtype(np.uint16)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.storage_options)

    @property
    def dose_per_frame(self) -> float:
        """Electrons per square Angstrom in one full fraction (a frame of this file)."""
        return self.dose_per_raw_frame * self.frames_per_fraction


def _bits(page: Any, url: str) -> tuple[int, int, int]:
    compression = int(page.compression)
    if compression not in EER_COMPRESSIONS:
        raise FormatError(f"{url}: page {page.index} has TIFF compression {compression}, not an EER event "
                          f"stream ({', '.join(map(str, EER_COMPRESSIONS))}); is it an EER file?")
    fixed = EER_COMPRESSIONS[compression]
    if fixed is not None:
        return fixed
    return (int(page.tags.valueof(65007, 7)), int(page.tags.valueof(65008, 2)), int(page.tags.valueof(65009, 2)))


def _metadata(tif: Any) -> tuple[float, float, float]:
    """(pixel size in Angstrom at 1x, dose per raw frame in e/A^2, exposure time in s); nan/0 when absent."""
    meta = tif.eer_metadata or {}

    def number(key: str) -> float:
        try:
            value = float(meta[key])
        except (KeyError, TypeError, ValueError):
            return math.nan
        return value if math.isfinite(value) and value > 0 else math.nan

    height, width = number("sensorPixelSize.height") * 1e10, number("sensorPixelSize.width") * 1e10
    pixel = width if math.isfinite(width) else height
    dose = number("totalDose") / (height * width) / number("numberOfFrames")
    return (pixel if math.isfinite(pixel) else 0.0), dose, number("exposureTime")


def _check_options(url: str, super_resolution: int, frames_per_fraction: int, remainder: str) -> None:
    if super_resolution not in SUPER_RESOLUTIONS:
        raise ParameterError(f"{url}: super_resolution={super_resolution!r}; EER renders at 1 (sensor grid, 4k), "
                             "2 (8k) or 4 (16k)")
    if not isinstance(frames_per_fraction, int) or not 1 <= frames_per_fraction <= 65535:
        raise ParameterError(f"{url}: frames_per_fraction={frames_per_fraction!r}; give 1 to 65535 raw frames "
                             "per fraction (counts are summed in uint16)")
    if remainder not in REMAINDERS:
        raise ParameterError(f"{url}: remainder={remainder!r}; give 'drop' (leave out a last, shorter group, as "
                             "RELION does) or 'keep' (a shorter last fraction)")


def open_eer_file(url: str, storage_options: dict[str, Any] | None = None, *, super_resolution: int = 1,
                  frames_per_fraction: int = 1, remainder: str = "drop") -> EerImageFile:
    """Read the IFDs of one EER movie and describe each fraction's strips and how it is rendered.

    Parameters
    ----------
    super_resolution
        Rendering grid: 1 (the sensor's pixels), 2 or 4 (sub-pixel positions of the events).
    frames_per_fraction
        Raw frames summed into each fraction (frame of the result).
    remainder
        ``"drop"`` the raw frames after the last full fraction, or ``"keep"`` them as a shorter last fraction.
    """
    import tifffile

    url = os.fspath(url)
    _check_options(url, super_resolution, frames_per_fraction, remainder)
    try:
        source = open_ranged(url, storage_options, block_size=2**12) if is_remote(url) else open(url, "rb")  # noqa: SIM115
        with source as fh, tifffile.TiffFile(fh, name=os.path.basename(url)) as tif:
            pages: list[Any] = list(tif.pages)
            if len(pages) > 1 and int(pages[0].compression) == 1:
                pages = pages[1:]  # an integrated (summed) image may precede the raw frames
            if not pages:
                raise FormatError(f"{url}: the EER file has no frames")
            first = pages[0]
            bits = _bits(first, url)
            offsets = np.asarray([p.dataoffsets for p in pages], np.int64)
            lengths = np.asarray([p.databytecounts for p in pages], np.int64)
            for page in pages:
                if page.shape != first.shape or _bits(page, url) != bits or page.rowsperstrip != first.rowsperstrip:
                    raise FormatError(f"{url}: raw frame {page.index} is {page.shape} ({_bits(page, url)} bits) but "
                                      f"the first is {first.shape} ({bits}); an EER movie's frames must agree")
            pixel, dose, exposure = _metadata(tif)
            sensor = (int(first.imagelength), int(first.imagewidth))
            rows_per_strip = min(int(first.rowsperstrip), sensor[0])
    except FileNotFoundError:
        raise DataNotFoundError(f"{url}: no such file; check the path") from None
    except (tifffile.TiffFileError, ValueError, struct.error, EOFError) as exc:  # tifffile's errors on junk
        raise FormatError(f"{url}: not a readable EER (TIFF) file ({exc or type(exc).__name__})") from None
    size = file_size(url, storage_options)
    end = int((offsets + lengths).max())
    if end > size:
        raise TruncatedFileError(f"{url}: its TIFF tags place EER strips up to byte {end} but the file has {size} "
                                 "bytes; the file is truncated")
    rlebits, horzbits, vertbits = bits
    level = SUPER_RESOLUTIONS[super_resolution]
    if level > min(horzbits, vertbits):
        raise ParameterError(f"{url}: super_resolution={super_resolution} needs {level} sub-pixel bits, the file "
                             f"stores {horzbits}x{vertbits}; render at {2 ** min(horzbits, vertbits)} or less")
    shape = (sensor[0] * super_resolution, sensor[1] * super_resolution)
    strip_rows = rows_per_strip * super_resolution
    last_rows = shape[0] - (-(-sensor[0] // rows_per_strip) - 1) * strip_rows
    uneven = any(n % 2**vertbits for n in (strip_rows, last_rows)) or shape[1] % 2**horzbits
    if level and uneven:
        raise ParameterError(f"{url}: imagecodecs renders EER super-resolution only for strips whose rendered rows "
                             f"and columns are multiples of {2**vertbits} and {2**horzbits}; this file's strips are "
                             f"{rows_per_strip} (last {last_rows // super_resolution}) rows of {sensor[1]}: open it "
                             "with super_resolution=1")
    raw = len(pages)
    full, rest = divmod(raw, frames_per_fraction)
    counts = [frames_per_fraction] * full + ([rest] if rest and remainder == "keep" else [])
    if not counts:
        raise ParameterError(f"{url}: frames_per_fraction={frames_per_fraction} but the file has {raw} raw frames; "
                             f"give at most {raw}, or remainder='keep'")
    strips = offsets.shape[1]
    seg_off = np.empty((len(counts), frames_per_fraction * strips), np.int64)
    seg_len = np.zeros_like(seg_off)
    for i, count in enumerate(counts):
        frames = slice(i * frames_per_fraction, i * frames_per_fraction + count)
        seg_off[i, : count * strips] = offsets[frames].reshape(-1)
        seg_len[i, : count * strips] = lengths[frames].reshape(-1)
        last = seg_off[i, count * strips - 1] + seg_len[i, count * strips - 1]
        seg_off[i, count * strips:] = last  # empty segments right after the last strip merge into its span
    codec = EerCodec(name=os.path.basename(url), image_shape=shape, strip_rows=strip_rows,
                     strips=strips, rlebits=rlebits, horzbits=horzbits, vertbits=vertbits, level=level)
    return EerImageFile(url=url if is_remote(url) else os.path.abspath(local_path(url)),
                        shape=(len(counts), *shape), layout=SegmentLayout(seg_off, seg_len, codec),
                        super_resolution=super_resolution, frames_per_fraction=frames_per_fraction,
                        raw_frames=raw, frame_counts=tuple(counts), dose_per_raw_frame=dose, exposure_time=exposure,
                        storage_options=tuple(sorted((storage_options or {}).items())),
                        pixel_size=pixel / super_resolution)
