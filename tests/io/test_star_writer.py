"""The STAR writer: what it writes reads back exactly, with our parser and with the independent ``starfile``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from perc_platform.errors import ParameterError
from perc_platform.io import format_star, read_star, write_star


def tables(n: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    optics = pd.DataFrame({"rlnOpticsGroupName": ["opticsGroup1", "opticsGroup2"], "rlnOpticsGroup": [1, 2],
                           "rlnVoltage": [300.0, 200.0], "rlnImagePixelSize": [1.0825, 0.834]})
    particles = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@stacks/run 1.mrcs" for i in range(n)],  # a space: must be quoted
        "rlnDefocusU": rng.uniform(5000, 30000, n),
        "rlnAnglePsi": rng.uniform(-180, 180, n),
        "rlnOriginXAngst": rng.normal(0, 1e-7, n),  # tiny values keep their digits
        "rlnClassNumber": rng.integers(1, 5, n),
        "rlnOpticsGroup": rng.integers(1, 3, n),
        "rlnMicrographName": ["_odd" if i % 7 == 0 else f"mic_{i}.mrc" for i in range(n)],
    })
    return optics, particles


def test_round_trip_with_our_parser_and_with_starfile(tmp_path: Path) -> None:
    optics, particles = tables()
    path = write_star(tmp_path / "out" / "particles.star", {"optics": optics, "particles": particles})
    ours = read_star(str(path))
    theirs = starfile.read(path, always_dict=True)
    for got in (ours.particles, theirs["particles"]):
        assert list(got.columns) == list(particles.columns)
        for column in particles.columns:
            if particles[column].dtype.kind == "f":
                np.testing.assert_array_equal(got[column].to_numpy(dtype=float), particles[column].to_numpy())
            else:
                assert got[column].astype(str).tolist() == particles[column].astype(str).tolist(), column
    for got in (ours.optics, theirs["optics"]):
        assert got is not None
        assert got["rlnOpticsGroupName"].tolist() == ["opticsGroup1", "opticsGroup2"]
        np.testing.assert_array_equal(got["rlnImagePixelSize"].to_numpy(dtype=float), [1.0825, 0.834])
    assert sorted(p.name for p in path.parent.iterdir()) == ["particles.star"]  # no temp file left


def test_name_value_blocks_and_layout() -> None:
    text = format_star({"general": {"rlnImageSize": 128, "rlnComment": "two words", "rlnRatio": 0.1}})
    assert text.splitlines() == ["# version 30001", "", "data_general", "", "_rlnImageSize 128",
                                 '_rlnComment "two words"', "_rlnRatio 0.1", ""]


@pytest.mark.parametrize("blocks, match", [
    ({}, "no STAR blocks"),
    ({"two words": pd.DataFrame({"a": [1]})}, "block name"),
    ({"p": pd.DataFrame()}, "no columns"),
    ({"p": pd.DataFrame({"rlnImageName": ["a\nb"]})}, "line break"),
    ({"p": pd.DataFrame({"rlnImageName": ["it's \"x\" y"]})}, "both kinds of quote"),
])
def test_values_star_cannot_hold_are_refused(blocks: dict[str, pd.DataFrame], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        format_star(blocks)
