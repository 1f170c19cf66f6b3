"""Write small EER movies from a known list of electron events, for tests and benchmarks.

Written by hand because nothing maintained writes EER: ``imagecodecs.eer_encode`` exists but raises
``NotImplementedError`` (imagecodecs 2026.3), tifffile refuses to write compression 65000-65002, and ``eerfile``
only reads. The bitstream follows the EER documentation as imagecodecs' decoder implements it (``imcd.c``,
"EER file format documentation 3.0, section 4"): little-endian bit order; per event a run length of
``rlebits`` (the pixels skipped since the last event; the all-ones value means "skip that many, no event
yet"), then ``horzbits`` and ``vertbits`` sub-pixel codes, each stored XOR 2 (the value 2 is the first
sub-pixel); a final run reaches the end of the strip. The TIFF container is written by tifffile (BigTIFF, one
IFD per raw frame, acquisition metadata in tag 65001) with the strips passed through as pre-encoded bytes under
a stand-in compression tag that is then overwritten with the EER one.

An event is ``(y, x, sy, sx)``: sensor pixel ``(y, x)`` and sub-pixel ``(sy, sx)`` in 0..3, so on the 4x grid
it lies at ``(4 y + sy, 4 x + sx)`` and on the 2x grid at ``(2 y + sy // 2, 2 x + sx // 2)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["encode_eer_strip", "random_events", "write_eer"]

_BITS = {65000: (8, 2, 2), 65001: (7, 2, 2)}


def encode_eer_strip(events: np.ndarray, shape: tuple[int, int], rlebits: int = 7, horzbits: int = 2,
                     vertbits: int = 2) -> bytes:
    """The EER bitstream of one strip of ``shape`` sensor pixels holding ``events`` (rows relative to the strip).

    At most one event per sensor pixel per raw frame (the format cannot say more).
    """
    ev = np.asarray(events, dtype=np.int64).reshape(-1, 4)
    ny, nx = shape
    pix = ev[:, 0] * nx + ev[:, 1]
    order = np.argsort(pix, kind="stable")
    pix, sub = pix[order], ev[order, 2:]
    if np.any(np.diff(pix) == 0):
        raise ValueError("two events on one sensor pixel in one raw frame cannot be written in EER")
    if pix.size and (pix[0] < 0 or pix[-1] >= ny * nx):
        raise ValueError("event outside the strip")
    mask = (1 << rlebits) - 1
    gaps = np.diff(np.concatenate([[-1], pix])) - 1  # pixels skipped before each event
    tail = ny * nx - (pix[-1] + 1 if pix.size else 0)
    event_code = (gaps % mask) | ((sub[:, 1] ^ 2) << rlebits) | ((sub[:, 0] ^ 2) << (rlebits + horzbits))
    # codes in stream order: for each event, its full runs then the event; then the tail's full runs and rest
    full = np.concatenate([gaps // mask, [tail // mask]])
    last = np.concatenate([event_code, [tail % mask]])
    width = np.concatenate([np.full(pix.size, rlebits + horzbits + vertbits), [rlebits]])
    values = np.repeat(np.stack([np.full(full.size, mask), last], axis=1).reshape(-1),
                       np.stack([full, np.ones_like(full)], axis=1).reshape(-1))
    widths = np.repeat(np.stack([np.full(full.size, rlebits), width], axis=1).reshape(-1),
                       np.stack([full, np.ones_like(full)], axis=1).reshape(-1))
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    bitpos = np.arange(int(widths.sum())) - np.repeat(starts, widths)
    bits = (np.repeat(values, widths) >> bitpos) & 1
    # the decoder reads a code only while a whole event code still fits: pad, to an even number of bytes
    pad = rlebits + horzbits + vertbits
    bits = np.concatenate([bits, np.zeros(pad + (-(bits.size + pad)) % 16, np.int64)])
    return np.packbits(bits.astype(np.uint8), bitorder="little").tobytes()


def random_events(n_frames: int, shape: tuple[int, int], per_frame: int, *, seed: int = 0) -> list[np.ndarray]:
    """``n_frames`` arrays of ``(y, x, sy, sx)`` events, ``per_frame`` distinct sensor pixels each."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    out = []
    for _ in range(n_frames):
        pix = rng.choice(ny * nx, size=min(per_frame, ny * nx), replace=False)
        sub = rng.integers(0, 4, (pix.size, 2))
        out.append(np.column_stack([pix // nx, pix % nx, sub]).astype(np.int64))
    return out


def write_eer(path: str | os.PathLike[str], frames: Sequence[np.ndarray], shape: tuple[int, int], *,
              compression: int = 65001, bits: tuple[int, int, int] | None = None, rows_per_strip: int | None = None,
              pixel_size: float = 1.0, total_dose: float | None = None, exposure_time: float = 1.0,
              integrated: bool = False) -> Path:
    """Write an EER movie: one IFD per raw frame of ``frames`` (event arrays), sensor ``shape`` (rows, cols).

    ``pixel_size`` (Angstrom) goes into ``sensorPixelSize`` (metres); ``total_dose`` (electrons per pixel,
    default: the events written per pixel) into ``totalDose``; ``integrated`` puts an uncompressed summed image
    first, as some acquisition software does. ``bits`` = (rle, horizontal, vertical) for compression 65002.
    """
    import tifffile

    path = Path(path)
    rlebits, horzbits, vertbits = bits if bits is not None else _BITS.get(compression, (7, 2, 2))
    ny, nx = shape
    rows = min(rows_per_strip or ny, ny)
    events = sum(len(f) for f in frames)
    dose = events / (ny * nx) if total_dose is None else total_dose
    items = {"numberOfFrames": str(len(frames)), "sensorImageHeight": str(ny), "sensorImageWidth": str(nx),
             "sensorPixelSize.height": f"{pixel_size * 1e-10!r}", "sensorPixelSize.width": f"{pixel_size * 1e-10!r}",
             "totalDose": repr(dose), "exposureTime": repr(exposure_time), "commercialName": "perc-platform test"}
    xml = ("<metadata>" + "".join(f'<item name="{k}">{v}</item>' for k, v in items.items()) + "</metadata>").encode()
    meta_tag = [(65001, 7, len(xml), xml, True)]  # the acquisition metadata, on the first IFD
    bit_tags = [(65007, 3, 1, rlebits, True), (65008, 3, 1, horzbits, True), (65009, 3, 1, vertbits, True)] \
        if compression == 65002 else []
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        if integrated:
            total = np.zeros(shape, np.uint16)
            for f in frames:
                np.add.at(total, (f[:, 0], f[:, 1]), 1)
            tw.write(total, photometric="minisblack", metadata=None, extratags=meta_tag)
        for k, f in enumerate(frames):
            strips = []
            for r0 in range(0, ny, rows):
                inside = (f[:, 0] >= r0) & (f[:, 0] < r0 + rows)
                part = f[inside] - np.array([r0, 0, 0, 0])
                strips.append(encode_eer_strip(part, (min(rows, ny - r0), nx), rlebits, horzbits, vertbits))
            tags = (meta_tag if k == 0 and not integrated else []) + bit_tags
            tw.write(iter(strips), shape=shape, dtype=np.uint8, compression="zlib", rowsperstrip=rows,
                     photometric="minisblack", metadata=None, extratags=tags)
    with tifffile.TiffFile(path, mode="r+") as tif:  # the stand-in compression tag becomes the EER one
        pages: list[Any] = list(tif.pages)
        for page in pages[1:] if integrated else pages:
            page.tags["Compression"].overwrite(compression)
    return path
