"""A read-only, seekable file object over byte-range reads, for header parsers that want a file (tifffile).

Every read goes through :func:`~perc_platform.storage.ranges.read_bytes` (so through the same ranged reader,
length checks and network policy as the data), wrapped in a :class:`io.BufferedReader` so that the many
small reads a header parser makes become a few block-sized requests.
"""

from __future__ import annotations

import io
from typing import Any

from perc_platform.storage.ranges import file_size, read_bytes

__all__ = ["open_ranged"]


class _RangedRaw(io.RawIOBase):
    def __init__(self, url: str, storage_options: dict[str, Any] | None) -> None:
        self.url = url
        self.name = url
        self._options = storage_options
        self._size = file_size(url, storage_options)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._size - self._pos))
        if want == 0:
            return 0
        data = read_bytes(self.url, self._pos, want, self._options)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def open_ranged(url: str, storage_options: dict[str, Any] | None = None, block_size: int = 2**16) -> io.BufferedReader:
    """A buffered, seekable binary file over ranged reads of ``url`` (local or remote)."""
    return io.BufferedReader(_RangedRaw(url, storage_options), buffer_size=block_size)
