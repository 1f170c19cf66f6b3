"""Coalescing ranges into runs, checked against a byte-by-byte brute force."""

from __future__ import annotations

import numpy as np
import pytest

from perc_platform.storage._range_plan import plan_runs


@pytest.mark.parametrize("seed", range(6))
def test_every_range_lies_in_its_run_and_the_gaps_read_stay_in_the_budget(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    starts = rng.integers(0, 200_000, n)
    lengths = rng.integers(0, 3_000, n)
    plan = plan_runs(starts, lengths, max_gap=5_000, budget=0.05)
    for i in range(n):  # each range inside its run, at its offset
        r = plan.run_of[i]
        assert plan.run_start[r] + plan.offset[i] == starts[i]
        assert starts[i] + lengths[i] <= plan.run_end[r]
    assert np.all(plan.run_start[1:] > plan.run_end[:-1])  # runs are disjoint, in order, with a gap between
    covered = np.zeros(210_000, dtype=bool)  # brute force: the bytes the ranges need
    for s, length in zip(starts, lengths, strict=True):
        covered[s:s + length] = True
    assert covered.sum() <= plan.moved() <= covered.sum() + 0.05 * lengths.sum()
    for r in range(plan.runs):  # a run is no wider than its ranges and the gaps read through
        inside = plan.run_of == r
        assert plan.run_start[r] == starts[inside].min()
        assert plan.run_end[r] == (starts + lengths)[inside].max()


def test_touching_ranges_join_and_far_ones_do_not() -> None:
    starts = np.array([300, 0, 100, 200, 10_000, 10_050])
    lengths = np.array([100, 100, 100, 100, 40, 40])
    plan = plan_runs(starts, lengths, max_gap=5, budget=1.0)  # the 10-byte gap is over max_gap
    assert plan.run_start.tolist() == [0, 10_000, 10_050] and plan.run_end.tolist() == [400, 10_040, 10_090]
    assert plan.run_of.tolist() == [0, 0, 0, 0, 1, 2] and plan.offset.tolist() == [300, 0, 100, 200, 0, 0]
    joined = plan_runs(starts, lengths, max_gap=20, budget=1.0)
    assert joined.run_start.tolist() == [0, 10_000] and joined.moved() == 400 + 90


def test_the_smallest_gaps_are_read_through_first_and_no_more_than_the_budget() -> None:
    starts = np.array([0, 1_010, 2_110, 3_510])  # gaps of 10, 100, 400 bytes after 1,000-byte ranges
    lengths = np.full(4, 1_000)
    assert plan_runs(starts, lengths, max_gap=1_000, budget=0.0).runs == 4
    assert plan_runs(starts, lengths, max_gap=1_000, budget=10 / 4_000).run_start.tolist() == [0, 2_110, 3_510]
    assert plan_runs(starts, lengths, max_gap=1_000, budget=110 / 4_000).run_start.tolist() == [0, 3_510]
    assert plan_runs(starts, lengths, max_gap=300, budget=1.0).run_start.tolist() == [0, 3_510]
    assert plan_runs(starts, lengths, max_gap=-1, budget=1.0).runs == 4  # nothing joins


def test_overlapping_ranges_are_flagged() -> None:
    plan = plan_runs(np.array([0, 50, 500]), np.array([100, 100, 10]), max_gap=0, budget=0)
    assert plan.run_start.tolist() == [0, 500] and plan.overlapping.tolist() == [True, False]
