"""A dask graph optimisation: a fancy index taken from a lazy stack's chunk reads only the indexed frames.

``images.isel(particle=[5, 600])`` on a dask-backed stack becomes, in dask's graph, a read of each touched
chunk (``getter(stack, (slice(a, b), ...))``) followed by dask's shuffle step ``_getitem(chunk, taker)``
that keeps a few frames. Dask fuses consecutive getters (``x[a:b][c:d]``) but not that step, so every
touched chunk is read whole (a 64 MiB chunk for one 64 KiB image). This pass rewrites each such pair
into one ``getter(stack, fused_index)``, so the stack's ``__getitem__`` reads just those frames (runs of
consecutive frames still coalesce into one ranged read). It then hands the graph to the array optimiser
that was configured before (dask's own by default).

It is installed in dask's configuration (``array_optimize``) by the first lazy stack built
(:func:`install`), and rewrites only tasks whose key starts with ``perc-read-``; other graphs pass through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dask.config
import numpy as np
from dask._task_spec import DataNode, Task, TaskRef
from dask.array.core import getter
from dask.array.optimization import fuse_slice
from dask.array.optimization import optimize as dask_optimize
from dask.core import flatten
from dask.utils import ensure_dict

__all__ = ["fuse_stack_reads", "install"]

_PREFIX = "perc-read-"  # selection.READ_PREFIX (not imported: selection imports this module)


def _is_shuffle_take(task: Any) -> bool:
    func = getattr(task, "func", None)
    return getattr(func, "__name__", "") == "_getitem" and getattr(func, "__module__", "") == "dask.array._shuffle"


def _value(node: Any, graph: Mapping[Any, Any]) -> Any:
    """The literal behind ``node`` (a DataNode, a TaskRef to one, or a plain value); ``None`` if it is a task."""
    if isinstance(node, TaskRef):
        node = graph.get(node.key)
    if isinstance(node, DataNode):
        return node.value
    return None if isinstance(node, Task) else node


def _compose(chunk: tuple[Any, ...], taken: Any) -> tuple[Any, ...] | None:
    """The index into the whole stack equal to ``stack[chunk][taken]``; ``None`` where it is not simple."""
    if not isinstance(taken, tuple) or len(taken) != len(chunk):
        return None
    out: list[Any] = []
    for a, b in zip(chunk, taken, strict=True):
        if not isinstance(a, slice) or a.step not in (None, 1):
            return None
        if isinstance(b, (list, np.ndarray)):
            picks = np.asarray(b)
            if picks.ndim != 1 or picks.dtype.kind not in "iu" or (picks.size and picks.min() < 0):
                return None
            out.append(picks.astype(np.intp) + (a.start or 0))
        elif isinstance(b, slice):
            try:
                out.append(fuse_slice(a, b))
            except NotImplementedError:
                return None
        else:
            return None
    return tuple(out)


def _fused(key: Any, take: Task, graph: Mapping[Any, Any]) -> Task | None:
    source, taker = take.args[0], take.args[1]
    if not isinstance(source, TaskRef):
        return None
    name = source.key[0] if isinstance(source.key, tuple) else source.key
    read = graph.get(source.key)
    if not (isinstance(name, str) and name.startswith(_PREFIX) and isinstance(read, Task) and read.func is getter):
        return None
    chunk_index, taken = _value(read.args[1], graph), _value(taker, graph)
    if not isinstance(chunk_index, tuple) or not isinstance(taken, tuple) or len(taken) != 2:
        return None
    index = _compose(chunk_index, taken[1])
    if index is None:
        return None
    return Task(key, getter, read.args[0], DataNode(None, index), **read.kwargs)


def fuse_stack_reads(dsk: Any) -> dict[Any, Any]:
    """``dsk`` (a graph) with every shuffle take from a ``perc-read-`` chunk replaced by one exact read."""
    graph = ensure_dict(dsk)
    out = dict(graph)
    for key, task in graph.items():
        if _is_shuffle_take(task) and len(task.args) == 2:
            fused = _fused(key, task, graph)
            if fused is not None:
                out[key] = fused
    return out


class _FusedReadsOptimize:
    """The array optimiser: this pass, then ``previous``. A module-level class, so dask's configuration (which
    holds it) still pickles when it is sent to spawned worker processes."""

    perc_fused_reads = True

    def __init__(self, previous: Callable[..., Any]) -> None:
        self.previous = previous

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        if any(isinstance(k, tuple) and str(k[0]).startswith(_PREFIX) for k in ensure_dict(dsk)):
            dsk = fuse_stack_reads(dsk)
        return self.previous(dsk, list(flatten(keys)) if not isinstance(keys, (list, set)) else keys, **kwargs)


def install() -> None:
    """Put :func:`fuse_stack_reads` in front of dask's configured array optimiser (once per process)."""
    current = dask.config.get("array_optimize", None)
    if getattr(current, "perc_fused_reads", False) or (current is not None and not current):
        return  # already installed, or the user switched array optimisation off
    dask.config.set({"array_optimize": _FusedReadsOptimize(current or dask_optimize)})
