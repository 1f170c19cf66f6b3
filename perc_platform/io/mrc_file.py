"""Open one MRC file: read and check its header with one small ranged read, nothing else."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from perc_platform.config import get_config
from perc_platform.errors import ParameterError, TruncatedFileError
from perc_platform.io.mrc_array import MrcFile
from perc_platform.io.mrc_header import HEADER_BYTES, parse_header
from perc_platform.storage.ranges import decompressed_copy, is_remote, local_path, read_head

__all__ = ["COMPRESSED_SUFFIXES", "open_mrc_file", "open_mrc_files"]

COMPRESSED_SUFFIXES = (".gz", ".bz2")


def open_mrc_file(url: str, storage_options: dict[str, Any] | None = None) -> MrcFile:
    """Read and check the header of one MRC file (local path or fsspec URL).

    Compressed maps (``.gz``/``.bz2``) are decompressed once into the cache and opened from there.
    """
    url = os.fspath(url)
    if not url:
        raise ParameterError("no MRC file given (empty path); pass a file path or URL")
    if url.lower().endswith(COMPRESSED_SUFFIXES):
        url = str(decompressed_copy(url, storage_options))
        storage_options = None
    config = get_config()
    raw, size = read_head(url, HEADER_BYTES, storage_options)  # remote: one GET, the size in its Content-Range
    header = parse_header(raw, url, max_bytes=config.max_array_bytes)
    need = header.data_offset + header.data_bytes
    if size < need:
        raise TruncatedFileError(
            f"{url}: header says {header.nx}x{header.ny}x{header.nz} mode-{header.mode} data after "
            f"{header.data_offset} header bytes ({need} bytes in all) but the file has {size} bytes; "
            "the file is truncated or its header is wrong")
    options = tuple(sorted((storage_options or {}).items()))
    where = url if is_remote(url) else os.path.abspath(local_path(url))  # file:// URLs as their path
    return MrcFile(url=where, header=header, storage_options=options)


def open_mrc_files(urls: Sequence[str], storage_options: dict[str, Any] | None = None) -> list[MrcFile]:
    """Open many files' headers, concurrently for remote ones."""
    if len(urls) > 1 and any(is_remote(u) for u in urls):
        with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
            return list(pool.map(lambda u: open_mrc_file(u, storage_options), urls))
    return [open_mrc_file(u, storage_options) for u in urls]
