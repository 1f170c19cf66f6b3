"""``perc tomo``: describe a tilt series and a tomogram, cut and write subtomograms (checked with xarray/NumPy)."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from perc_platform.cli.main import main
from tests.datasets.test_tomography import write_tilt_stack, write_tlt


def test_tomo_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tilt_stack(tmp_path / "TS.st", 7)
    write_tlt(tmp_path / "TS.tlt", np.arange(-30.0, 31.0, 10.0))
    assert main(["tomo", "tilt-series", str(tmp_path / "TS.st")]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["dims"] == ["tilt", "y", "x"] and described["tilt_angles"] == {"n": 7, "min": -30.0, "max": 30.0}
    volume = np.random.default_rng(4).normal(size=(20, 22, 24)).astype(np.float32)
    with mrcfile.new(tmp_path / "TS.rec") as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = 4.0
    assert main(["tomo", "tomogram", str(tmp_path / "TS.rec")]) == 0
    assert json.loads(capsys.readouterr().out)["voxel_size"] == [4.0, 4.0, 4.0]
    pd.DataFrame({"x": [40.0, 48.0], "y": [40.0, 44.0], "z": [36.0, 40.0]}).to_csv(tmp_path / "p.csv", index=False)
    out = tmp_path / "cubes.zarr"
    assert main(["tomo", "subtomograms", str(tmp_path / "TS.rec"), str(tmp_path / "p.csv"), "--box", "4",
                 "--units", "angstrom", "--out", str(out)]) == 0
    assert "wrote 2 subtomograms" in capsys.readouterr().out
    written = xr.open_zarr(out)["image"].values
    np.testing.assert_array_equal(written[0], volume[7:11, 8:12, 8:12])
    np.testing.assert_array_equal(written[1], volume[8:12, 9:13, 10:14])
    assert main(["tomo", "subtomograms", str(tmp_path / "TS.rec"), str(tmp_path / "p.csv"), "--box", "40",
                 "--units", "pixel"]) == 2  # cubes beyond the border: one line, exit code 2
    assert "edge='pad'" in capsys.readouterr().err
