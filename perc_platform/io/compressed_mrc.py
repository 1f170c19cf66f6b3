"""bzip2- and gzip-compressed MRC stacks and movies, read lazily through a seekable index.

Archive mirrors store movies compressed (EMPIAR's PDBj mirror: ``.mrc.bz2``). Rather than decompressing a
whole file into the cache, the first open scans it once with ``indexed_bzip2`` (bzip2 block offsets) or
``indexed_gzip`` (gzip seek points) and caches that index; later reads seek straight to the frames asked for,
decompressing only the blocks that hold them. Remote files are reached through the same ranged reader as
everything else (a buffered file object over byte ranges), so only compressed blocks that hold wanted
frames cross the network once the index exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from perc_platform.config import get_config
from perc_platform.errors import DataNotFoundError, FormatError, TruncatedFileError
from perc_platform.io.mrc_array import MrcHeaderFacts
from perc_platform.io.mrc_header import HEADER_BYTES, MrcHeader, parse_header
from perc_platform.storage.cache import atomic_path, cache_path_for_url, entry_lock
from perc_platform.storage.ranged_file import open_ranged
from perc_platform.storage.ranges import file_size, is_remote, local_path

__all__ = ["CompressedLayout", "CompressedMrcFile", "codec_of", "open_compressed_mrc", "open_decompressed",
           "read_decompressed_into", "stream_index"]

_GZIP_SPACING = 4 * 2**20  # decompressed bytes between gzip seek points (each stores a 32 KiB window)


def codec_of(url: str) -> str:
    """``bz2`` or ``gz``, by the file name."""
    return "bz2" if url.lower().split("?", 1)[0].endswith(".bz2") else "gz"


def open_decompressed(url: str, codec: str, options: dict[str, Any] | None, index: str | None) -> IO[bytes]:
    """A seekable decompressed view of ``url``; with ``index`` (a cached index file), no scan is needed."""
    raw: IO[bytes] = open_ranged(url, options, block_size=2**20) if is_remote(url) else open(url, "rb")  # noqa: SIM115
    if codec == "bz2":
        import indexed_bzip2

        stream = indexed_bzip2.IndexedBzip2File(raw, parallelization=1)
        if index is not None:
            with open(index, encoding="utf-8") as handle:
                stream.set_block_offsets({int(k): int(v) for k, v in json.load(handle).items()})
        return stream  # type: ignore[no-any-return]
    import indexed_gzip

    stream = indexed_gzip.IndexedGzipFile(fileobj=raw, spacing=_GZIP_SPACING)
    if index is not None:
        stream.import_index(index)
    return stream  # type: ignore[no-any-return]


def stream_index(url: str, codec: str, options: dict[str, Any] | None) -> str:
    """The cached index of ``url`` (built by one pass over the file the first time)."""
    if is_remote(url):
        key = f"{url}:{file_size(url, options)}"
    else:
        stat = os.stat(url)
        key = f"{os.path.abspath(url)}:{stat.st_mtime_ns}:{stat.st_size}"
    target = cache_path_for_url(key, kind="index", suffix=f".{codec}idx")
    if target.exists():
        return str(target)
    with entry_lock(target):
        if target.exists():
            return str(target)
        stream = open_decompressed(url, codec, options, None)
        try:
            with atomic_path(target) as tmp:
                if codec == "bz2":
                    stream.seek(0, os.SEEK_END)  # the scan: every block's offset becomes known
                    offsets = stream.block_offsets()  # type: ignore[attr-defined]
                    tmp.write_text(json.dumps({str(k): int(v) for k, v in offsets.items()}), encoding="utf-8")
                else:
                    stream.build_full_index()  # type: ignore[attr-defined]
                    stream.export_index(str(tmp))  # type: ignore[attr-defined]
        except (OSError, ValueError, RuntimeError, EOFError) as exc:
            raise FormatError(f"{url}: the {codec} stream is damaged or truncated ({exc}); download it again") \
                from None
        finally:
            stream.close()
    return str(target)


@dataclasses.dataclass(frozen=True)
class CompressedLayout:
    """Frame ``i`` is ``frame_bytes`` at ``offset + i * frame_bytes`` of the *decompressed* stream."""

    offset: int
    frame_bytes: int
    codec: str
    index: str  # path of the cached index

    def byte_range(self, first: int, count: int = 1) -> tuple[int, int]:
        return (self.offset + first * self.frame_bytes, count * self.frame_bytes)

    def read_ranges_into(self, url: str, ranges: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray],
                         storage_options: dict[str, Any] | None = None) -> list[int]:
        """Fill each buffer with the decompressed bytes of its range (seeking through the index)."""
        return read_decompressed_into(url, self.codec, self.index, ranges, buffers, storage_options)


def read_decompressed_into(url: str, codec: str, index: str, ranges: Sequence[tuple[int, int]],
                           buffers: Sequence[np.ndarray], storage_options: dict[str, Any] | None = None) -> list[int]:
    """Fill each buffer with the decompressed bytes of its ``(start, length)`` range of ``url``, seeking through
    the cached ``index``; a range past the end of the stream is a :class:`TruncatedFileError`."""
    stream = open_decompressed(url, codec, storage_options, index)
    got: list[int] = []
    try:
        for (start, length), buf in zip(ranges, buffers, strict=True):
            stream.seek(start)
            view = memoryview(buf.reshape(-1).view(np.uint8))[:length]  # type: ignore[arg-type]
            n = 0
            while n < length:
                k = stream.readinto(view[n:])  # type: ignore[attr-defined]
                if not k:
                    raise TruncatedFileError(f"{url}: asked for {length} decompressed bytes at {start}, got {n}; "
                                             "the file is shorter than its header says")
                n += k
            got.append(n)
    finally:
        stream.close()
    return got


@dataclasses.dataclass(frozen=True)
class CompressedMrcFile(MrcHeaderFacts):
    """A compressed MRC file of equally shaped sections, as the format layer describes it."""

    url: str
    header: MrcHeader
    layout: CompressedLayout
    storage_options: tuple[tuple[str, Any], ...] = ()


def open_compressed_mrc(url: str, storage_options: dict[str, Any] | None = None) -> CompressedMrcFile:
    """Index a ``.mrc(s).bz2``/``.gz`` file once (cached) and read its header; the data stay compressed."""
    url = os.fspath(url)
    url = url if is_remote(url) else local_path(url)  # file:// URLs as their path
    if not is_remote(url) and not os.path.isfile(url):
        raise DataNotFoundError(f"{url}: no such file; check the path")
    codec = codec_of(url)
    index = stream_index(url, codec, storage_options)
    try:
        stream = open_decompressed(url, codec, storage_options, index)
        try:
            header = parse_header(stream.read(HEADER_BYTES), url, max_bytes=get_config().max_array_bytes)
            size = stream.seek(0, os.SEEK_END)
        finally:
            stream.close()
        need = header.data_offset + header.data_bytes
        if size < need:
            raise TruncatedFileError(f"{url}: header says {need} bytes of MRC data in all, the decompressed stream "
                                     f"has {size}; the file is truncated or its header is wrong")
    except BaseException:
        os.unlink(index)  # an index of a file that does not open is kept nowhere
        raise
    layout = CompressedLayout(header.data_offset, header.section_bytes, codec, index)
    return CompressedMrcFile(url=url if is_remote(url) else os.path.abspath(url), header=header, layout=layout,
                             storage_options=tuple(sorted((storage_options or {}).items())))
