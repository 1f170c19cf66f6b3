"""Byte ranges coalesced into runs: one request per run instead of one per range.

Ranges that touch or overlap always join (that costs no byte). Ranges separated by a gap join when the gap is
at most ``max_gap`` bytes, smallest gaps first, until the bytes read through gaps would pass ``budget`` (a
fraction of the bytes asked for): so a run of consecutive particles is one request, a scatter of particles
close together a few, and the bytes moved stay within ``1 + budget`` of those asked for (``overhead``). All
of it is NumPy on the ranges' arrays: no Python loop per range.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["RunPlan", "plan_runs"]


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Runs ``[run_start[r], run_end[r])``; range ``i`` is bytes ``offset[i]:offset[i] + length[i]`` of run
    ``run_of[i]``. ``order`` lists the ranges by start (the order they arrive in within each run)."""

    run_start: np.ndarray
    run_end: np.ndarray
    run_of: np.ndarray
    offset: np.ndarray
    order: np.ndarray
    overlapping: np.ndarray  # per run: some of its ranges overlap (its bytes cannot be scattered in order)

    @property
    def runs(self) -> int:
        return int(self.run_start.size)

    def moved(self) -> int:
        """Bytes the runs read."""
        return int((self.run_end - self.run_start).sum())


def plan_runs(starts: np.ndarray, lengths: np.ndarray, *, max_gap: int, budget: float) -> RunPlan:
    """Coalesce ranges ``(starts[i], lengths[i])`` into runs (see the module docstring); ``max_gap < 0``:
    none joins (each range is its own run)."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n = starts.size
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], starts[order] + lengths[order]
    reach = np.maximum.accumulate(e) if n else e  # furthest byte of the ranges so far
    gaps = s[1:] - reach[:-1]  # > 0: bytes between a range and everything before it
    join = gaps <= 0 if max_gap >= 0 else np.zeros(gaps.size, dtype=bool)
    candidates = np.flatnonzero((gaps > 0) & (gaps <= max_gap))
    if candidates.size and budget > 0:
        allowed = budget * float(lengths.sum())
        by_size = candidates[np.argsort(gaps[candidates], kind="stable")]
        taken = by_size[np.cumsum(gaps[by_size]) <= allowed]
        join[taken] = True
    first = np.concatenate([[0], np.flatnonzero(~join) + 1]) if n else np.zeros(0, np.int64)
    last = np.concatenate([first[1:] - 1, [n - 1]]) if n else np.zeros(0, np.int64)
    run_start, run_end = s[first], reach[last]
    run_sorted = np.repeat(np.arange(first.size), np.diff(np.concatenate([first, [n]])))
    overlapping = np.zeros(first.size, dtype=bool)
    if n > 1:
        np.logical_or.at(overlapping, run_sorted[1:][(gaps < 0) & join], True)
    run_of = np.empty(n, dtype=np.int64)
    run_of[order] = run_sorted
    offset = starts - run_start[run_of]
    return RunPlan(run_start, run_end, run_of, offset, order, overlapping)
