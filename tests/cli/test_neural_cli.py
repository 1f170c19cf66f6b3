"""``perc neural fit`` and ``perc neural graph`` as subprocesses on a small real map crop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gemmi
import mrcfile
import pytest

from perc_platform.testing import write_volume


def perc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perc_platform.cli.main", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_fit_then_graph(shared: Path, tmp_path: Path) -> None:
    with mrcfile.open(shared / "maps" / "emd_2566_3J6B_chain9_crop.mrc") as mrc:
        crop = mrc.data[10:34, 14:38, 6:30].copy()
        origin = mrc.header.origin
        voxel = float(mrc.voxel_size.x)
    small = write_volume(tmp_path / "crop.mrc", crop, voxel_size=voxel,
                         origin=(float(origin.x) + 6 * voxel, float(origin.y) + 14 * voxel,
                                 float(origin.z) + 10 * voxel))
    fit = perc("neural", "fit", str(small), "--out", str(tmp_path / "nm"), "--layers", "2", "--width", "32",
               "--steps", "150", "--device", "cpu", "--resample", "2.0")
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert (tmp_path / "nm" / "neural_map.json").exists() and (tmp_path / "nm" / "resampled.mrc").exists()
    with mrcfile.open(tmp_path / "nm" / "resampled.mrc") as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(2.0)
    unknown = perc("neural", "graph", str(tmp_path / "nm"), "--out", str(tmp_path / "graph.cif"))
    assert unknown.returncode != 0 and "resolution" in unknown.stderr  # no silent default
    graph = perc("neural", "graph", str(tmp_path / "nm"), "--out", str(tmp_path / "graph.cif"),
                 "--resolution", "3.2", "--threshold", "0.4")
    assert graph.returncode == 0, graph.stderr[-2000:]
    assert "density graph:" in graph.stdout
    gemmi.read_structure(str(tmp_path / "graph.cif"))  # a valid mmCIF file
    edges = json.loads((tmp_path / "graph.json").read_text())["edges"]  # the edges, beside it
    assert isinstance(edges, list)
