"""Decode the strips or tiles of one TIFF page into a frame, with the codecs tifffile itself uses.

tifffile decodes a page through the page object, which holds an open file; a lazy array needs a plain,
picklable decode step instead. :class:`TiffCodec` keeps the few tags that decoding needs and calls the same
functions tifffile calls (``TIFF.DECOMPRESSORS`` / ``TIFF.UNPREDICTORS``, i.e. imagecodecs, and
``imagecodecs.packints_decode`` for packed 1-7 bit data such as 4-bit counting-mode movies), in the same
order: bit order, decompress, unpack, unpredict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = ["SUPPORTED_COMPRESSIONS", "TiffCodec"]

#: TIFF compression codes read lazily: none, LZW, deflate (Adobe and old), zstd.
SUPPORTED_COMPRESSIONS = {1: "none", 5: "LZW", 8: "deflate", 32946: "deflate", 50000: "zstd"}


@dataclasses.dataclass(frozen=True)
class TiffCodec:
    """The decode step of one TIFF series: each page is ``image_shape`` cut into strips or tiles."""

    image_shape: tuple[int, int]  # (rows, columns) of a page
    segment_shape: tuple[int, int]  # (rows per strip, columns) or (tile length, tile width)
    tiled: bool
    dtype: str  # stored dtype, byte order included (e.g. "<u2"); packed data decodes to uint8
    bitspersample: int
    compression: int = 1
    predictor: int = 1
    fillorder: int = 1

    def _segment(self, data: memoryview, rows: int) -> np.ndarray:
        import imagecodecs
        from tifffile import TIFF

        seg_rows, cols = self.segment_shape
        raw: bytes | bytearray | memoryview = data
        if self.fillorder == 2:
            raw = imagecodecs.bitorder_decode(bytes(raw))
        stored = np.dtype(self.dtype)
        packed = self.bitspersample != stored.itemsize * 8
        if self.compression != 1:
            row_bytes = (cols * self.bitspersample + 7) // 8
            raw = TIFF.DECOMPRESSORS[self.compression](raw, out=seg_rows * row_bytes)
        if packed:
            values = imagecodecs.packints_decode(bytes(raw), stored, self.bitspersample, runlen=cols)
        else:
            dtype = np.dtype(stored.char) if self.predictor == 3 else stored  # floatpred wants raw bytes
            usable = len(raw) // dtype.itemsize * dtype.itemsize
            values = np.frombuffer(raw, dtype, usable // dtype.itemsize)
        values = values[: rows * cols].reshape(rows, cols)
        if self.predictor != 1:
            values = values.astype(stored.newbyteorder("="), copy=True)
            values = TIFF.UNPREDICTORS[self.predictor](values, axis=-1, out=values)
        return values

    def decode_frame(self, segments: Sequence[memoryview], out: np.ndarray) -> None:
        """Fill ``out`` (``image_shape``) from the page's segments, in the page's segment order."""
        ny, nx = self.image_shape
        seg_rows, seg_cols = self.segment_shape
        if not self.tiled:
            for j, data in enumerate(segments):
                r0 = j * seg_rows
                rows = min(seg_rows, ny - r0)
                if len(data) == 0:  # a sparse file leaves empty strips: zeros, as tifffile reads them
                    out[r0:r0 + rows] = 0
                    continue
                out[r0:r0 + rows] = self._segment(data, rows)
            return
        across = -(-nx // seg_cols)
        for j, data in enumerate(segments):
            r0, c0 = (j // across) * seg_rows, (j % across) * seg_cols
            rows, cols = min(seg_rows, ny - r0), min(seg_cols, nx - c0)
            if len(data) == 0:
                out[r0:r0 + rows, c0:c0 + cols] = 0
                continue
            out[r0:r0 + rows, c0:c0 + cols] = self._segment(data, seg_rows)[:rows, :cols]
