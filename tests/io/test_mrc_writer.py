"""The MRC writer in io, checked with mrcfile (an independent reader) and NumPy statistics."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from perc_platform import open_particles, open_volume
from perc_platform.errors import ParameterError
from perc_platform.io import MrcStackWriter, create_stack, write_stack, write_volume


def test_volume_header_and_data_as_mrcfile_reads_them(tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((6, 5, 4)).astype(np.float32)
    path = write_volume(tmp_path / "map.mrc", data, voxel_size=(1.5, 2.0, 2.5), origin=(10.0, -3.0, 7.5),
                        labels=["made by a test"])
    with mrcfile.open(path, permissive=False) as mrc:
        np.testing.assert_array_equal(mrc.data, data)
        assert tuple(float(v) for v in mrc.voxel_size.tolist()) == (1.5, 2.0, 2.5)
        assert (float(mrc.header.origin.x), float(mrc.header.origin.y), float(mrc.header.origin.z)) == (10, -3, 7.5)
        assert int(mrc.header.ispg) == 1 and int(mrc.header.nversion) == 20141
        assert float(mrc.header.dmin) == pytest.approx(data.min())
        assert float(mrc.header.dmax) == pytest.approx(data.max())
        assert float(mrc.header.dmean) == pytest.approx(data.mean(), abs=1e-6)
        assert float(mrc.header.rms) == pytest.approx(data.std(), rel=1e-5)
        assert str(mrc.get_labels()[0]).strip() == "made by a test"
    assert mrcfile.validate(str(path), print_file=open("/dev/null", "w"))  # noqa: SIM115
    density = open_volume(path)
    assert float(density["x"][0]) == 10.0 and float(density["z"][1]) == 7.5 + 2.5


@pytest.mark.parametrize("dtype", ["float32", "int16", "uint16", "int8", "float16"])
def test_appended_blocks_equal_one_stack(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(1)
    data = (rng.standard_normal((7, 8, 9)) * 20).astype(dtype)
    with MrcStackWriter(tmp_path / "s.mrcs", (8, 9), dtype, voxel_size=1.25) as writer:
        writer.append(data[:3])
        writer.append(data[3])
        writer.append(data[4:])
    with mrcfile.open(tmp_path / "s.mrcs") as mrc:
        np.testing.assert_array_equal(mrc.data, data)
        assert int(mrc.header.ispg) == 0 and float(mrc.voxel_size.x) == 1.25
    np.testing.assert_array_equal(open_particles(tmp_path / "s.mrcs").values, data)
    write_stack(tmp_path / "whole.mrcs", data, pixel_size=1.25)
    assert (tmp_path / "whole.mrcs").read_bytes() == (tmp_path / "s.mrcs").read_bytes()


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="do not fit"), MrcStackWriter(tmp_path / "s.mrcs", (8, 8)) as writer:
        writer.append(np.zeros((2, 8, 8), np.float32))
        writer.append(np.zeros((1, 4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ParameterError, match="float64"):
        write_volume(tmp_path / "v.mrc", np.zeros((2, 2, 2)))
    assert list(tmp_path.iterdir()) == []


def test_presized_stack_is_filled_by_region(tmp_path: Path) -> None:
    offset = create_stack(tmp_path / "p.mrcs", (4, 3, 2), pixel_size=2.0)
    target = np.memmap(tmp_path / "p.mrcs", np.float32, "r+", offset=offset, shape=(4, 3, 2))
    target[2:] = 1.5
    target.flush()
    del target
    with mrcfile.open(tmp_path / "p.mrcs") as mrc:
        assert mrc.data.shape == (4, 3, 2) and float(mrc.data[3, 0, 0]) == 1.5 and float(mrc.data[0, 0, 0]) == 0
        assert float(mrc.voxel_size.x) == 2.0
