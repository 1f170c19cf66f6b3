"""A one-line progress display for chunked work (``done/total chunks``), on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def progress_printer(what: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that rewrites one stderr line and ends it when done."""
    started = time.perf_counter()

    def show(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        end = "\n" if done >= total else ""
        print(f"\r{what}: {done}/{total} chunks ({100 * done / max(total, 1):.0f}%, {elapsed:.1f} s)", end=end,
              file=sys.stderr, flush=True)

    return show
