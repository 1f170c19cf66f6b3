"""Set environment variables for the length of a block: variables read by other libraries (``no_proxy`` for
urllib and aiohttp) and, in the shipped test helpers, the loopback archives' ``PERC_*_URL``. Settings of
perc-platform itself are passed as values with :func:`perc_platform.config.override` instead."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

__all__ = ["environment"]


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` inside the block and restore what was there before."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
