"""Opening costs O(files), not O(particles): per-particle metadata is built column-wise, never per particle.

The cost is checked without timing: the Python lines that run while a stack is opened (``sys.settrace``
counts them; NumPy's C loops are not lines) must not grow with the number of particles, and grow at most
linearly with the number of files.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest

import perc_platform as pp
from perc_platform.datasets._image_names import image_names
from perc_platform.ml import ParticleLoader
from perc_platform.testing import write_stack


def _lines_run(work: Callable[[], Any]) -> int:
    count = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


def _open_and_label(source: Any) -> None:
    images = pp.open_particles(source)
    ParticleLoader(images, batch_size=64, mode="stream", device="cpu", labels="file_prefix")


def test_opening_a_stack_runs_the_same_python_for_1000_and_8000_particles(tmp_path: Path) -> None:
    small = write_stack(tmp_path / "a_small.mrcs", 1000, (4, 4))
    big = write_stack(tmp_path / "a_big.mrcs", 8000, (4, 4))
    _open_and_label(small)  # imports and first-use caches out of the way
    few, many = _lines_run(lambda: _open_and_label(small)), _lines_run(lambda: _open_and_label(big))
    assert abs(many - few) < 50, (few, many)  # 7,000 more particles, (almost) no more lines


def test_opening_many_files_runs_python_linear_in_files_not_in_particles(tmp_path: Path) -> None:
    for i in range(600):
        write_stack(tmp_path / "one" / f"{i % 3}_{i:04d}.mrcs", 1, (4, 4), seed=i)
        if i < 300:
            write_stack(tmp_path / "five" / f"{i % 3}_{i:04d}.mrcs", 5, (4, 4), seed=i)
    one = sorted(str(p) for p in (tmp_path / "one").glob("*.mrcs"))
    five = sorted(str(p) for p in (tmp_path / "five").glob("*.mrcs"))
    _open_and_label(one)
    half = _lines_run(lambda: _open_and_label(one[:300]))
    whole = _lines_run(lambda: _open_and_label(one))
    fives = _lines_run(lambda: _open_and_label(five))
    assert whole < 2.2 * half, (half, whole)  # linear in files (a constant part besides)
    assert abs(fives - half) < 0.02 * half, (half, fives)  # 300 files: 1,500 particles cost what 300 do


@pytest.mark.parametrize("n", [0, 1, 7, 3000])
def test_image_names_match_relion_formatting(n: int) -> None:
    rng = np.random.default_rng(n)
    names = ["stack_a.mrcs", "déjà_vu.mrcs", "c"]
    file_ids = rng.integers(0, len(names), n)
    local = np.where(rng.random(n) < 0.2, rng.integers(999_990, 12_000_000, n), rng.integers(0, 500, n))
    got = image_names(file_ids, local, names)
    expected = [f"{i + 1:06d}@{names[f]}" for f, i in zip(file_ids.tolist(), local.tolist(), strict=True)]
    assert got.tolist() == expected
    assert got.dtype.kind == "U"


def test_image_name_and_file_prefix_labels_of_a_folder(tmp_path: Path) -> None:
    counts = {"apo_0.mrcs": 3, "ribo_1.mrcs": 1, "apo_2.mrcs": 2, "x_3.mrc": 1}
    for name, count in counts.items():
        write_stack(tmp_path / name, count, (5, 5))
    images = pp.open_particles(sorted(str(tmp_path / n) for n in counts))
    ordered = sorted(counts)
    expected_names, expected_class = [], []
    for name in ordered:
        with mrcfile.open(tmp_path / name, header_only=True) as mrc:
            frames = int(mrc.header.nz)
        expected_names += [f"{i + 1:06d}@{name}" for i in range(frames)]
        expected_class += [name.split("_", 1)[0]] * frames
    assert images["image_name"].values.tolist() == expected_names
    loader = ParticleLoader(images, batch_size=4, mode="memory", device="cpu", labels="file_prefix", shuffle=False)
    assert loader.classes == ("apo", "ribo", "x")
    labels = np.concatenate([batch["label"].numpy() for batch in loader])
    assert [loader.classes[c] for c in labels] == expected_class
