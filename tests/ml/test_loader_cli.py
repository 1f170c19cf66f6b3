"""``ParticleLoader(random=N)`` and ``perc loader`` (issue 20) on real particles (219 STA tilt images)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import xarray as xr

from perc_platform.cli.main import main
from perc_platform.errors import ParameterError
from perc_platform.ml import ParticleLoader


def test_random_subset_is_seeded_and_read_right(sta: xr.DataArray, shared: Path) -> None:
    chosen = np.sort(np.random.default_rng(5).choice(219, size=40, replace=False))
    loader = ParticleLoader(sta, 16, "stream", device="cpu", seed=5, random=40, metadata=[])
    seen = np.concatenate([b["index"].numpy() for b in loader])
    assert sorted(seen.tolist()) == chosen.tolist()
    with warnings.catch_warnings():  # its header lacks the MAP ID (mrcfile warns in permissive mode)
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.open(shared / "particles" / "ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs",
                          permissive=True) as mrc:
            stack = np.asarray(mrc.data)
    local = sta.coords["image_name"].values  # "NNNNNN@stack": the STAR rows' images
    batch = next(iter(ParticleLoader(sta, 40, "memory", device="cpu", seed=5, random=40, shuffle=False)))
    for row, image in zip(batch["index"].numpy(), batch["image"].numpy(), strict=True):
        np.testing.assert_array_equal(image, stack[int(str(local[row]).split("@")[0]) - 1])
    inside = ParticleLoader(sta, 16, "memory", device="cpu", seed=5, split=np.arange(100, 150), random=10)
    assert set(inside.dataset.indices.tolist()) <= set(range(100, 150)) and len(inside.dataset) == 10
    with pytest.raises(ParameterError, match="random=300"):
        ParticleLoader(sta, 16, "stream", random=300)


@pytest.mark.parametrize("how", ["star", "entry"])
def test_loader_command_prints_a_table_and_json(how: str, shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    star = shared / "particles" / "sta_testing_bin8.star"
    stack = shared / "particles" / "ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs"
    source = ["--star", str(star)] if how == "star" else \
        ["--entry", "local_particles", "--param", f"urlpath={stack}", "--param", f"star={star}"]
    assert main(["loader", *source, "--batch-size", "32", "--random", "100", "--seed", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["particles"] == 100 and set(figures["modes"]) == {"stream", "memory", "auto"}
    for mode, row in figures["modes"].items():
        assert row["particles"] == 100 and row["batches"] == 4 and row["particles_s"] > 0, mode
    assert figures["modes"]["auto"]["chosen"] == "memory"  # 1.6 MB fit in memory
    table = [line.split() for line in lines if line.split() and line.split()[0] in ("stream", "memory", "auto")]
    assert [r[0] for r in table] == ["stream", "memory", "auto"] and all(r[2] == "100" for r in table)
    assert main(["loader", "--star", str(star), "--stream", "--max-batches", "2", "--batch-size", "50"]) == 0
    only = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(only["modes"]) == ["stream"] and only["modes"]["stream"]["particles"] == 100
