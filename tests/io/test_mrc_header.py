"""The MRC2014 header parser against mrcfile, on the real maps and stacks and on files written here."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from perc_platform.io import open_mrc_file, parse_header
from perc_platform.io.mrc_header import HEADER_BYTES

from .mrc_helpers import to_big_endian

REAL = ["maps/EMD-3001.map", "maps/EMD-3197.map", "maps/emd_1832.map", "maps/emd_2566_3J6B_chain9_crop.mrc",
        "maps/emd_5168.map", "maps/emd_5168_monomer_segment.mrc", "maps/emd_5625.map", "maps/emd_6824.mrc",
        "particles/relion31.mrcs", "particles/ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # relion31.mrcs: no MAP tag, no MACHST
@pytest.mark.parametrize("name", REAL)
def test_header_fields_match_mrcfile(shared: Path, name: str) -> None:
    path = shared / name
    ours = parse_header(path.read_bytes()[:HEADER_BYTES], str(path))
    with mrcfile.open(path, permissive=True, header_only=True) as mrc:
        h = mrc.header
        assert (ours.nx, ours.ny, ours.nz) == (int(h.nx), int(h.ny), int(h.nz))
        assert ours.mode == int(h.mode)
        assert (ours.mapc, ours.mapr, ours.maps) == (int(h.mapc), int(h.mapr), int(h.maps))
        assert (ours.nxstart, ours.nystart, ours.nzstart) == (int(h.nxstart), int(h.nystart), int(h.nzstart))
        assert ours.ispg == int(h.ispg)
        assert ours.nsymbt == int(h.nsymbt)
        np.testing.assert_allclose(ours.origin, [float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        voxel = mrc.voxel_size
        np.testing.assert_allclose(ours.voxel_size, [float(voxel.x), float(voxel.y), float(voxel.z)], rtol=1e-6)
    assert ours.byteorder == "<"


def test_emd3001_permuted_axes_and_symmetry_header(shared: Path) -> None:
    head = open_mrc_file(str(shared / "maps/EMD-3001.map")).header
    assert (head.mapc, head.mapr, head.maps) == (3, 1, 2)
    assert head.nsymbt == 160 and head.data_offset == 1184
    # columns run along z (73), rows along x (43), sections along y (25)
    assert head.zyx_axes == (2, 0, 1)
    assert head.start == (-21, -12, 0)


MODES = [("int8", 0), ("int16", 1), ("float32", 2), ("uint16", 6), ("float16", 12)]


@pytest.mark.parametrize(("dtype", "mode"), MODES)
@pytest.mark.parametrize("big_endian", [False, True])
def test_modes_and_byte_orders(tmp_path: Path, dtype: str, mode: int, big_endian: bool) -> None:
    rng = np.random.default_rng(mode)
    data = (rng.standard_normal((3, 5, 7)) * 30).astype(dtype)
    path = tmp_path / f"m{mode}.mrc"
    with mrcfile.new(path, data=data) as mrc:
        mrc.voxel_size = (1.5, 2.0, 2.5)
    if big_endian:
        to_big_endian(path)
    head = open_mrc_file(str(path)).header
    assert head.mode == mode
    assert head.byteorder == (">" if big_endian else "<")
    with mrcfile.open(path) as mrc:
        assert mrc.data.dtype.byteorder in ("<", ">", "=", "|")
        assert head.dtype == mrc.data.dtype.newbyteorder(head.byteorder) or head.dtype.itemsize == 1
    np.testing.assert_allclose(head.voxel_size, (1.5, 2.0, 2.5))
